use memokit::cached;

#[derive(Clone)]
struct Opaque(u64);

#[cached(redis)]
fn load(n: u64) -> Opaque {
    Opaque(n)
}

fn main() {}
