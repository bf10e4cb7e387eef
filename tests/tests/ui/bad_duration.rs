use memokit::cached;

#[cached(ttl = "5 minutes")]
fn square(n: u64) -> u64 {
    n * n
}

fn main() {}
