//! With Redis unreachable, the shared tier warns (target `memokit::redis`) once per
//! `warn_every`, however many operations fail, from whichever thread.

use std::net::TcpListener;
use std::time::{Duration, Instant};

use memokit::cached;
use memokit_tests::tracing_capture::Capture;

#[cached(redis, name = "warn::lookup")]
fn lookup(n: u64) -> u64 {
    n
}

#[test]
fn an_outage_is_one_warning_per_interval() {
    let capture = Capture::default();
    tracing::subscriber::set_global_default(capture.clone()).expect("the only global subscriber");
    // A port nobody listens on: every Redis operation fails at once.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    memokit::redis::connect_with(
        memokit::redis::Config::new(format!("redis://127.0.0.1:{port}"))
            .prefix("warn")
            .retry_after(Duration::from_millis(1))
            .warn_every(Duration::from_secs(3600)),
    )
    .unwrap();

    let deadline = Instant::now() + Duration::from_secs(10);
    let mut n = 0;
    while lookup_cache().stats().l2_errors < 5 {
        assert!(Instant::now() < deadline, "{}", lookup_cache().stats());
        n += 1;
        assert_eq!(lookup(n), n, "served without Redis");
        std::thread::sleep(Duration::from_millis(2));
    }
    let warnings: Vec<String> = capture
        .take()
        .events
        .into_iter()
        .filter(|e| e.target == "memokit::redis" && e.level == tracing::Level::WARN)
        .map(|e| e.fields["message"].clone())
        .collect();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].contains("unreachable"), "{}", warnings[0]);
    memokit::redis::disconnect();
}
