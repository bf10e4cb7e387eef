use memokit::cached;

const TTL: u64 = 30;

#[cached(ttl = TTL)]
fn square(n: u64) -> u64 {
    n * n
}

fn main() {}
