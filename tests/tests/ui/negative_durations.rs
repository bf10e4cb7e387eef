use memokit::cached;

#[cached(ttl = -5)]
fn negative_ttl(n: u64) -> u64 {
    n
}

#[cached(ttl = "10m", refresh = -60)]
fn negative_refresh(n: u64) -> u64 {
    n
}

#[cached(ttl = "10m", jitter = -0.1)]
fn negative_jitter(n: u64) -> u64 {
    n
}

#[cached(redis(lease = -1))]
fn negative_lease(n: u64) -> u64 {
    n
}

fn main() {}
