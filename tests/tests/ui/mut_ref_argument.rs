use memokit::cached;

#[cached]
fn total(values: &mut Vec<u64>) -> u64 {
    values.iter().sum()
}

fn main() {}
