use memokit::cached;

#[cached(key = idd)]
fn square(id: u64, _trace: u64) -> u64 {
    id * id
}

fn main() {}
