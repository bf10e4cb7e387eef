use memokit::cached;

#[cached(cache_none = false)]
fn square(n: u64) -> u64 {
    n * n
}

fn main() {}
