//! memokit depended on under another name (`mk`), with no dependency named `memokit`: the
//! code `#[cached(crate = "mk")]` and the writers generate reaches the runtime through `mk`
//! alone, for every shape (sync, async, batch, method, writer). That it compiles is most of
//! the test.

use std::collections::HashMap;

/// A plain function.
#[mk::cached(crate = "mk", size = 10)]
pub fn double(n: u64) -> u64 {
    n * 2
}

/// An async function.
#[mk::cached(crate = "mk")]
pub async fn triple(n: u64) -> u64 {
    n * 3
}

/// A batch function.
#[mk::cached(crate = "mk", batch)]
pub fn squares(ids: &[u64]) -> HashMap<u64, u64> {
    ids.iter().map(|&id| (id, id * id)).collect()
}

/// A writer of `double`'s cache.
#[mk::cache_put(double, key = n, crate = "mk")]
pub fn set_double(n: u64, value: u64) -> u64 {
    let _ = n;
    value
}

/// A method.
pub struct Repo;

impl Repo {
    /// Cached per key.
    #[mk::cached(crate = "mk", key = id)]
    pub fn get(&self, id: u64) -> String {
        format!("row {id}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::Future;

    #[test]
    fn every_shape_reaches_the_runtime_through_the_renamed_crate() {
        assert_eq!((double(2), double(2)), (4, 4));
        assert_eq!(double_cache().stats().hits, 1);
        assert_eq!(set_double(2, 5), 5);
        assert_eq!(double(2), 5);
        assert_eq!(squares(&[2, 3]).len(), 2);
        assert_eq!(squares_cache().len(), 2);
        assert_eq!(Repo.get(1), "row 1");
        assert_eq!(Repo::get_cache().len(), 1);
        // An async function's future, polled to its end without a runtime.
        let waker = std::task::Waker::noop();
        let mut context = std::task::Context::from_waker(waker);
        let mut call = std::pin::pin!(triple(3));
        assert_eq!(call.as_mut().poll(&mut context), std::task::Poll::Ready(9));
    }
}
