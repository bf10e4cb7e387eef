//! memokit's [`Cache`], one contender per eviction policy.

use memokit::{Cache, Policy};

use super::Contender;

/// [`Memokit`]'s policy parameter: [`Policy::S3Fifo`].
pub const S3FIFO: u8 = 0;
/// [`Memokit`]'s policy parameter: [`Policy::Lru`].
pub const LRU: u8 = 1;
/// [`Memokit`]'s policy parameter: [`Policy::Lfu`].
pub const LFU: u8 = 2;
/// [`Memokit`]'s policy parameter: [`Policy::Fifo`].
pub const FIFO: u8 = 3;
/// [`Memokit`]'s policy parameter: [`Policy::S3FifoTinyLfu`].
pub const S3FIFO_TINYLFU: u8 = 4;
/// [`Memokit`]'s policy parameter: [`Policy::WTinyLfu`], the default.
pub const W_TINYLFU: u8 = 5;

/// A `memokit::Cache<u64, u64>` with the policy `POLICY` (one of [`S3FIFO`], [`LRU`], [`LFU`],
/// [`FIFO`], [`S3FIFO_TINYLFU`], [`W_TINYLFU`]; a const parameter so that each policy is its own type), default sharding.
#[derive(Debug, Clone)]
pub struct Memokit<const POLICY: u8>(pub Cache<u64, u64>);

impl<const POLICY: u8> Memokit<POLICY> {
    /// The policy this type stands for.
    pub fn policy() -> Policy {
        match POLICY {
            S3FIFO => Policy::S3Fifo,
            LRU => Policy::Lru,
            LFU => Policy::Lfu,
            FIFO => Policy::Fifo,
            S3FIFO_TINYLFU => Policy::S3FifoTinyLfu,
            W_TINYLFU => Policy::WTinyLfu,
            other => panic!("no memokit policy numbered {other}"),
        }
    }
}

impl<const POLICY: u8> Contender for Memokit<POLICY> {
    fn with_capacity(capacity: usize) -> Self {
        Memokit(
            Cache::builder()
                .max_capacity(capacity as u64)
                .policy(Self::policy())
                .build(),
        )
    }

    fn seeded(capacity: usize, seed: u64) -> Option<Self> {
        Some(Memokit(
            Cache::builder()
                .max_capacity(capacity as u64)
                .policy(Self::policy())
                .seed(seed)
                .build(),
        ))
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
        self.0.len() as usize
    }
}
