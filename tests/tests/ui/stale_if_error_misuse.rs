use memokit::cached;

#[derive(Debug, Clone)]
struct Down;

// No `ttl`: nothing ever expires.
#[cached(stale_if_error = "1h")]
fn no_ttl(id: u64) -> Result<u64, Down> {
    Ok(id)
}

// Not a `Result`: there is no error to answer.
#[cached(ttl = "5m", stale_if_error = "1h")]
fn not_a_result(id: u64) -> Option<u64> {
    Some(id)
}

// `cache_errors = true` stores the error as the new value.
#[cached(ttl = "5m", stale_if_error = "1h", cache_errors = true)]
fn caching_errors(id: u64) -> Result<u64, Down> {
    Ok(id)
}

// Zero.
#[cached(ttl = "5m", stale_if_error = "0s")]
fn zero(id: u64) -> Result<u64, Down> {
    Ok(id)
}

fn main() {}
