use memokit::cached;

#[cached(seed = "42")]
fn quoted(n: u64) -> u64 {
    n
}

#[cached(seed = 1.5)]
fn fraction(n: u64) -> u64 {
    n
}

#[cached(seed = -1)]
fn negative(n: u64) -> u64 {
    n
}

#[cached(seed = 18446744073709551616)]
fn too_large(n: u64) -> u64 {
    n
}

#[cached(seed = 7u32)]
fn suffixed(n: u64) -> u64 {
    n
}

#[cached(seed = true)]
fn flag(n: u64) -> u64 {
    n
}

const SMALL_SEED: u32 = 7;

#[cached(seed = SMALL_SEED)]
fn wrong_type(n: u64) -> u64 {
    n
}

fn main() {}
