//! `quick_cache::sync::Cache`: sharded CLOCK-Pro-like policy.

use super::Contender;

/// A `quick_cache::sync::Cache<u64, u64>` built with `Cache::new(capacity)`.
#[derive(Debug)]
pub struct QuickCache(pub quick_cache::sync::Cache<u64, u64>);

impl Contender for QuickCache {
    fn with_capacity(capacity: usize) -> Self {
        QuickCache(quick_cache::sync::Cache::new(capacity))
    }

    #[inline]
    fn get(&self, key: u64) -> Option<u64> {
        self.0.get(&key)
    }

    #[inline]
    fn insert(&self, key: u64, value: u64) {
        self.0.insert(key, value);
    }

    fn resident(&self) -> usize {
        self.0.len()
    }
}
