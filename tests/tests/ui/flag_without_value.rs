use memokit::cached;

#[cached(cache_errors)]
fn square(id: u64) -> Result<u64, String> {
    Ok(id * id)
}

fn main() {}
