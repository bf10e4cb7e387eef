//! [`WriteTarget`]: what a [`WriteBehind`](super::WriteBehind) updates at once.

use std::hash::Hash;

use crate::cache::Cache;
use crate::memo::Memo;
use crate::warm::LoadingMemo;

/// What a [`WriteBehind`](super::WriteBehind) updates at once: a [`Cache`] or a `#[cached]` function's
/// `&'static` [`Memo`].
///
/// `write` is called outside the buffer's queue lock, one write at a time and in the order the
/// buffer accepted them, so that the target and the queue agree on the last value of every key.
/// It may write to the same [`WriteBehind`](super::WriteBehind) (a removal listener of the target cache that does
/// is fine): such a nested write reaches the target right after the one in progress. (A `Memo`
/// with the Redis tier writes to Redis there, as its `insert` does.)
///
/// ```
/// use memokit::write_behind::WriteTarget;
///
/// #[memokit::cached]
/// fn views(page: u32) -> u64 { 0 }
///
/// let cache: memokit::Cache<u32, u64> = memokit::Cache::new(10);
/// cache.write(1, 5);
/// views_cache().write(1, 7);
/// assert_eq!((cache.get(&1), views(1)), (Some(5), 7));
/// ```
pub trait WriteTarget<K, V>: Send + Sync + 'static {
    /// Stores `value` under `key`.
    fn write(&self, key: K, value: V);
}

impl<K, V> WriteTarget<K, V> for Cache<K, V>
where
    K: Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    fn write(&self, key: K, value: V) {
        self.insert(key, value);
    }
}

impl<K, V> WriteTarget<K, V> for &'static Memo<K, V>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    fn write(&self, key: K, value: V) {
        self.insert(key, value);
    }
}

/// The handle of a `#[cached]` function that `warm` can call (see [`crate::LoadingMemo`]).
impl<K, V, L> WriteTarget<K, V> for &'static LoadingMemo<K, V, L>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    L: Sync,
{
    fn write(&self, key: K, value: V) {
        self.insert(key, value);
    }
}
