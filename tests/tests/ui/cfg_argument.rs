use memokit::cached;

#[cached]
fn area(width: u32, #[cfg(test)] height: u32) -> u32 {
    width
}

fn main() {}
