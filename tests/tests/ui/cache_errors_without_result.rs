use memokit::cached;

#[cached(cache_errors = true)]
fn square(n: u64) -> u64 {
    n * n
}

fn main() {}
