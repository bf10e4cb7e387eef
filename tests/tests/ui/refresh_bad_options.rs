use memokit::cached;

#[cached(ttl = "10m", refresh = "10m")]
fn not_shorter_than_ttl(n: u64) -> u64 {
    n
}

#[cached(ttl = "10m", refresh = "8 minutes")]
fn bad_duration(n: u64) -> u64 {
    n
}

#[cached(ttl = "10m", refresh = "0s")]
fn zero(n: u64) -> u64 {
    n
}

fn main() {}
