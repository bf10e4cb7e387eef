use memokit::cached;

#[cached]
const fn square(n: u64) -> u64 {
    n * n
}

fn main() {}
