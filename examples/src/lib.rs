//! Runnable examples of memokit live in `examples/`; run one with `cargo run -p memokit-examples --example NAME`.
