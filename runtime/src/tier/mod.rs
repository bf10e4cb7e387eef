//! Tiers behind the in-process cache: each one optional, each with its own counters.
