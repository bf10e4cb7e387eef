use memokit::cached;

#[cached(sise = 100)]
const fn fill(buffer: &mut Vec<u8>) {
    let _ = buffer.len();
}

fn main() {}
