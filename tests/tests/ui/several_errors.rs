use memokit::cached;

#[cached(sise = 100, ttl = "5 minutes", policy = random)]
fn square(n: u64) -> u64 {
    n * n
}

fn main() {}
