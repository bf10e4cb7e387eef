//! `mini_moka::sync::Cache`: moka's W-TinyLFU in a lighter crate. It has no public way to run
//! its deferred maintenance, so [`Contender::settle`] does nothing here.

use super::Contender;

/// A `mini_moka::sync::Cache<u64, u64>` built with `Cache::new(capacity)`.
#[derive(Debug)]
pub struct MiniMoka(pub mini_moka::sync::Cache<u64, u64>);

impl Contender for MiniMoka {
    fn with_capacity(capacity: usize) -> Self {
        MiniMoka(mini_moka::sync::Cache::new(capacity as u64))
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
        // `entry_count` is itself brought up to date by maintenance only.
        self.0.iter().count()
    }
}
