use memokit::cached;

#[cached(size = 100, policy = random)]
fn square(n: u64) -> u64 {
    n * n
}

fn main() {}
