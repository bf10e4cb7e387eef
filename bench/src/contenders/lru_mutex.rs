//! `lru::LruCache` behind a `parking_lot::Mutex`, as users of the lru crate share it.

use std::num::NonZeroUsize;

use parking_lot::Mutex;

use super::Contender;

/// A `Mutex<lru::LruCache<u64, u64>>` built with `LruCache::new(capacity)`.
#[derive(Debug)]
pub struct LruMutex(pub Mutex<lru::LruCache<u64, u64>>);

impl Contender for LruMutex {
    fn with_capacity(capacity: usize) -> Self {
        let capacity = NonZeroUsize::new(capacity).unwrap_or(NonZeroUsize::MIN);
        LruMutex(Mutex::new(lru::LruCache::new(capacity)))
    }

    #[inline]
    fn get(&self, key: u64) -> Option<u64> {
        self.0.lock().get(&key).copied()
    }

    #[inline]
    fn insert(&self, key: u64, value: u64) {
        self.0.lock().put(key, value);
    }

    fn resident(&self) -> usize {
        self.0.lock().len()
    }
}
