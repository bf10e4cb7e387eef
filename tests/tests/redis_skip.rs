//! Without `redis-server`, a shared-tier test passes without testing anything; a newcomer must
//! see that in a plain `cargo test`, whose harness hides what a passing test prints with
//! `eprintln!`. This binary runs its own `needs_redis` test again with an empty `PATH` and reads
//! what the child's harness let through.

use std::process::{Command, Output};

use memokit_tests::RedisServer;

#[test]
fn needs_redis() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    server.connection();
}

/// `needs_redis` run by the harness as usual (output captured), with no `redis-server` on
/// `PATH`.
fn run_without_redis_server(require: bool) -> Output {
    let mut command = Command::new(std::env::current_exe().expect("the test binary"));
    command
        .args(["needs_redis", "--exact", "--test-threads=2"])
        .env("PATH", "")
        .env_remove("MEMOKIT_REQUIRE_REDIS");
    if require {
        command.env("MEMOKIT_REQUIRE_REDIS", "1");
    }
    command.output().expect("the test binary runs")
}

#[test]
fn a_skipped_shared_tier_test_is_shown_by_a_plain_cargo_test() {
    let output = run_without_redis_server(false);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "the skipped test passes: {stderr}");
    assert!(
        stderr.contains("=== SKIPPED needs_redis: `redis-server` is not on PATH"),
        "the skip is on the real standard error, with the test's name: {stderr:?}"
    );
}

#[test]
fn with_memokit_require_redis_a_missing_server_fails_the_test() {
    let output = run_without_redis_server(true);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        !output.status.success(),
        "a required Redis cannot be skipped"
    );
    assert!(
        stdout.contains("MEMOKIT_REQUIRE_REDIS=1 but `redis-server` is not on PATH"),
        "the failure says why: {stdout}"
    );
}
