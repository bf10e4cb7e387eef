use memokit::cached;

#[cached(policy = "lru")]
fn square(id: u64) -> u64 {
    id * id
}

fn main() {}
