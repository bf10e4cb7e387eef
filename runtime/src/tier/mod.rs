//! Tiers behind the in-process cache: each one optional, each with its own counters.

#[cfg(feature = "redis")]
pub mod redis;
