use memokit::cached;

#[cached(size = -5)]
fn negative(n: u64) -> u64 {
    n
}

#[cached(size = true)]
fn boolean(n: u64) -> u64 {
    n
}

#[cached(size = 99_999_999_999_999_999_999)]
fn too_large(n: u64) -> u64 {
    n
}

#[cached(size = "many")]
fn text(n: u64) -> u64 {
    n
}

const FRACTION: f64 = 1.5;

#[cached(size = FRACTION)]
fn float_constant(n: u64) -> u64 {
    n
}

fn main() {}
