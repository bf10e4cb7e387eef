use memokit::cached;

#[derive(Clone)]
struct Point {
    x: u64,
}

impl Point {
    #[cached(key = x)]
    fn moved(&self, x: u64) -> Self {
        Point { x: self.x + x }
    }
}

fn main() {}
