use memokit::cached;

#[derive(Clone, PartialEq)]
struct Point {
    x: i32,
}

// A float is neither `Hash` nor `Eq`: the error points at the argument, not the attribute.
#[cached]
fn scaled(factor: f64, id: u32) -> u64 {
    (factor * id as f64) as u64
}

// Nor is a struct without the derives, behind a reference too.
#[cached]
fn nearest(point: &Point) -> i32 {
    point.x
}

fn main() {}
