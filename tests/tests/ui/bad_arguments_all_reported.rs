use memokit::cached;

#[cached(ttl = "x", ttl = 5, type = 3, size)]
fn square(id: u64) -> u64 {
    id * id
}

fn main() {}
