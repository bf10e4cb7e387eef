use memokit::cached;

#[cached(disk = 3)]
fn not_a_string(n: u64) -> u64 {
    n
}

#[cached(disk = "")]
fn empty_path(n: u64) -> u64 {
    n
}

#[cached(disk(path = "cache.redb"))]
fn parentheses(n: u64) -> u64 {
    n
}

fn main() {}
