use memokit::cached;

#[cached(redis(codec = xml))]
fn unknown_codec(n: u64) -> u64 {
    n
}

#[cached(redis(ttl = "10m", codec = "json"))]
fn quoted_codec(n: u64) -> u64 {
    n
}

#[cached(redis(codec = 3))]
fn not_a_name(n: u64) -> u64 {
    n
}

#[cached(redis(codec))]
fn without_value(n: u64) -> u64 {
    n
}

#[cached(redis(codec = json, codec = postcard))]
fn twice(n: u64) -> u64 {
    n
}

fn main() {}
