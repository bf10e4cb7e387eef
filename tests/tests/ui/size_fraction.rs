use memokit::cached;

#[cached(size = 1.5)]
fn square(n: u64) -> u64 {
    n * n
}

fn main() {}
