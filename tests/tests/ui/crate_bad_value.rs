use memokit::cached;

#[cached(crate = memokit)]
fn unquoted(n: u64) -> u64 {
    n
}

#[cached(crate = "not a path")]
fn not_a_path(n: u64) -> u64 {
    n
}

fn main() {}
