//! `cached::LruCache` (the store called `SizedCache` before cached 3) behind a
//! `parking_lot::Mutex`, as a user of cached's stores would share it.

use cached::Cached;
use parking_lot::Mutex;

use super::Contender;

/// A `Mutex<cached::LruCache<u64, u64>>` built with `LruCache::new(capacity)`; with
/// `default-features = false` it hashes with the standard library's SipHash.
#[derive(Debug)]
pub struct CachedLru(pub Mutex<cached::LruCache<u64, u64>>);

impl Contender for CachedLru {
    fn with_capacity(capacity: usize) -> Self {
        CachedLru(Mutex::new(cached::LruCache::new(capacity.max(1))))
    }

    #[inline]
    fn get(&self, key: u64) -> Option<u64> {
        self.0.lock().cache_get(&key).copied()
    }

    #[inline]
    fn insert(&self, key: u64, value: u64) {
        self.0.lock().cache_set(key, value);
    }

    fn resident(&self) -> usize {
        self.0.lock().cache_size()
    }
}
