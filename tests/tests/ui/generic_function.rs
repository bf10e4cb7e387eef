use memokit::cached;

#[cached]
fn echo<T: Clone>(value: T) -> T {
    value
}

fn main() {}
