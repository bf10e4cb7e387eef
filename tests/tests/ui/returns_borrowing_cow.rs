use memokit::cached;
use std::borrow::Cow;

#[cached]
fn trimmed<'a>(text: &'a str) -> Cow<'a, str> {
    Cow::Borrowed(text.trim())
}

fn main() {}
