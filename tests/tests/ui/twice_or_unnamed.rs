use memokit::cached;

#[cached(size = 10)]
#[cached(ttl = "1m")]
fn twice(n: u64) -> u64 {
    n
}

#[cached]
fn unnamed(_: u64) -> u64 {
    1
}

fn main() {}
