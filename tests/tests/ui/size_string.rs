use memokit::cached;

#[cached(size = "1000")]
fn square(n: u64) -> u64 {
    n * n
}

fn main() {}
