//! Runnable examples of memokit live in `examples/`; run one with `cargo run -p memokit-examples --example NAME`.
//! What an example shares with its tests lives here.

pub mod shop;
pub mod warm_restart;
pub mod web_service;
