use memokit::cached;

#[cached]
struct Config {
    size: u64,
}

fn main() {}
