//! Compile-fail tests of `#[cached]`: every misuse is one error at the offending tokens that
//! says the fix. Regenerate the expected output with
//! `TRYBUILD=overwrite cargo test -p memokit-tests --test ui` and read the diff.
//!
//! rustc words its messages a little differently from one release to the next, so the expected
//! output holds for the toolchain that `rust-toolchain.toml` pins, and these tests run only on
//! it: on another toolchain (`cargo +1.92.0 test`) they are skipped, loudly.

use std::process::Command;

/// The `channel` that `rust-toolchain.toml` pins, e.g. `1.95.0`.
fn pinned_toolchain() -> &'static str {
    include_str!("../../rust-toolchain.toml")
        .lines()
        .find_map(|line| line.trim().strip_prefix("channel = "))
        .map(|channel| channel.trim_matches('"'))
        .expect("rust-toolchain.toml names a channel")
}

/// The version of the `rustc` that trybuild's cargo will run, e.g. `1.95.0`.
fn running_rustc() -> String {
    let output = Command::new("rustc")
        .arg("--version")
        .output()
        .expect("rustc runs");
    let version = String::from_utf8_lossy(&output.stdout);
    version
        .split_whitespace()
        .nth(1)
        .expect("`rustc --version` prints `rustc X.Y.Z …`")
        .to_string()
}

#[test]
fn ui() {
    let (pinned, running) = (pinned_toolchain(), running_rustc());
    if running != pinned {
        memokit_tests::report_skip(
            &format!(
                "the expected compiler messages are rustc {pinned}'s and this is rustc {running}"
            ),
            &format!("Run `cargo test` without `+toolchain` (rust-toolchain.toml pins {pinned})."),
        );
        return;
    }
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*.rs");
}

#[test]
fn the_pinned_toolchain_is_read_from_rust_toolchain_toml() {
    let pinned = pinned_toolchain();
    let parts: Vec<&str> = pinned.split('.').collect();
    assert_eq!(
        parts.len(),
        3,
        "a full version, not a channel name: {pinned}"
    );
    assert!(
        parts.iter().all(|part| part.parse::<u32>().is_ok()),
        "{pinned}"
    );
}
