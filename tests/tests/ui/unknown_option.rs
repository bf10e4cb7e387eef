use memokit::cached;

#[cached(capacity = 100)]
fn square(n: u64) -> u64 {
    n * n
}

fn main() {}
