use memokit::cached;

#[cached(jitter = 0.1)]
fn without_ttl(n: u64) -> u64 {
    n
}

#[cached(ttl = "10m", jitter = 1.5)]
fn fraction_too_large(n: u64) -> u64 {
    n
}

#[cached(ttl = "10m", jitter = 0.0)]
fn fraction_zero(n: u64) -> u64 {
    n
}

#[cached(ttl = "10m", jitter = 30)]
fn integer(n: u64) -> u64 {
    n
}

#[cached(ttl = "10m", jitter = "10m")]
fn duration_not_shorter_than_ttl(n: u64) -> u64 {
    n
}

#[cached(ttl = "10m", jitter = "30 s")]
fn bad_duration(n: u64) -> u64 {
    n
}

#[cached(ttl = "10m", jitter = "0s")]
fn zero_duration(n: u64) -> u64 {
    n
}

fn main() {}
