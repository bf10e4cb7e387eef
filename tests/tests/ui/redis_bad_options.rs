use memokit::cached;

#[cached(redis(ttl = "10 minutes"))]
fn bad_duration(n: u64) -> u64 {
    n
}

#[cached(redis(tll = "10m"))]
fn unknown_option(n: u64) -> u64 {
    n
}

#[cached(redis(ttl = "10m", ttl = "1m", lease))]
fn repeated_and_without_value(n: u64) -> u64 {
    n
}

#[cached(redis = true)]
fn with_equals(n: u64) -> u64 {
    n
}

#[cached(redis(lease = 0))]
fn zero_lease(n: u64) -> u64 {
    n
}

fn main() {}
