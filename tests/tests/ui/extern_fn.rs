use memokit::cached;

#[cached]
extern "C" fn square(n: u64) -> u64 {
    n * n
}

fn main() {}
