use memokit::cached;

#[cached(key_typ = Vec<u8>, sise = 3)]
fn square(id: u64) -> u64 {
    id * id
}

fn main() {}
