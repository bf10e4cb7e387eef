//! `moka::sync::Cache`: W-TinyLFU with deferred (batched) policy maintenance.

use super::Contender;

/// A `moka::sync::Cache<u64, u64>` built with `Cache::new(capacity)`.
#[derive(Debug)]
pub struct MokaSync(pub moka::sync::Cache<u64, u64>);

impl Contender for MokaSync {
    fn with_capacity(capacity: usize) -> Self {
        MokaSync(moka::sync::Cache::new(capacity as u64))
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

    fn settle(&self) {
        self.0.run_pending_tasks();
    }
}
