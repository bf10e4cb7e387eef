use memokit::cached;

struct Report {
    lines: Vec<String>,
}

// Every caller gets a clone of the cached value: the error points at the return type.
#[cached]
fn report(id: u32) -> Report {
    Report { lines: vec![id.to_string()] }
}

// Also when the cached value is a `Result`'s `Ok` type.
#[cached]
fn fallible(id: u32) -> Result<Report, String> {
    Ok(Report { lines: vec![id.to_string()] })
}

fn main() {}
