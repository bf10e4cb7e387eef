//! `#[cache_put]` and `#[cache_evict]`: writers that change a `#[cached]` function's cache.
//! Arguments are parsed in `attr.rs`, checked in `valid.rs` and emitted in `expand.rs`.

mod attr;
mod expand;
mod valid;

pub(crate) use attr::Kind;
pub(crate) use expand::writer;
