use memokit::cached;

#[cached(size = 100, ttl = 30, size = 200)]
fn square(n: u64) -> u64 {
    n * n
}

fn main() {}
