//! `ttl` and `tti` through `#[cached]`, on the real clock: short times, generous margins, and
//! only lower bounds on elapsed time (a result must still be cached right after it was computed,
//! and must be recomputed once well past its lifetime; nothing asserts that something happened
//! *before* a deadline other than an immediate second call).

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::thread::sleep;
use std::time::{Duration, Instant};

use memokit::cached;

fn runs(counter: &AtomicUsize) -> usize {
    counter.load(SeqCst)
}

static TTL_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(ttl = "200ms")]
fn ttl_subject(n: u32) -> u32 {
    TTL_RUNS.fetch_add(1, SeqCst);
    n
}

#[test]
fn ttl_expires_a_result_after_its_time_to_live() {
    ttl_subject(1);
    ttl_subject(1);
    assert_eq!(runs(&TTL_RUNS), 1, "called again at once: cached");
    sleep(Duration::from_millis(400));
    assert_eq!(ttl_subject_cache().get(&1), None, "a peek sees the expiry");
    ttl_subject(1);
    assert_eq!(runs(&TTL_RUNS), 2, "past its ttl: recomputed");
    ttl_subject(1);
    assert_eq!(runs(&TTL_RUNS), 2, "the new result is cached");
    assert!(ttl_subject_cache().stats().expirations >= 1);
}

static TTL_SECS_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(ttl = 1)]
fn ttl_secs_subject(n: u32) -> u32 {
    TTL_SECS_RUNS.fetch_add(1, SeqCst);
    n
}

#[test]
fn ttl_in_integer_seconds() {
    ttl_secs_subject(1);
    ttl_secs_subject(1);
    assert_eq!(runs(&TTL_SECS_RUNS), 1);
    sleep(Duration::from_millis(1500));
    ttl_secs_subject(1);
    assert_eq!(runs(&TTL_SECS_RUNS), 2);
}

static TTL_READ_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(ttl = "300ms")]
fn ttl_read_subject(n: u32) -> u32 {
    TTL_READ_RUNS.fetch_add(1, SeqCst);
    n
}

#[test]
fn reads_do_not_extend_a_time_to_live() {
    let start = Instant::now();
    ttl_read_subject(1);
    // Read it often: a ttl counts from the write, so reads cannot keep it alive.
    while start.elapsed() < Duration::from_millis(700) {
        ttl_read_subject(1);
        sleep(Duration::from_millis(50));
    }
    assert!(runs(&TTL_READ_RUNS) >= 2, "never recomputed");
}

static TTI_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(tti = "300ms")]
fn tti_subject(n: u32) -> u32 {
    TTI_RUNS.fetch_add(1, SeqCst);
    n
}

#[test]
fn tti_is_refreshed_by_calls_and_expires_when_idle() {
    let start = Instant::now();
    tti_subject(1);
    // Calls every 50ms for 700ms, more than twice the tti: each call keeps it alive.
    while start.elapsed() < Duration::from_millis(700) {
        sleep(Duration::from_millis(50));
        tti_subject(1);
    }
    assert_eq!(runs(&TTI_RUNS), 1, "a call restarts the idle time");
    sleep(Duration::from_millis(700));
    tti_subject(1);
    assert_eq!(runs(&TTI_RUNS), 2, "idle past its tti: recomputed");
}

static TTI_PEEK_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(tti = "300ms")]
fn tti_peek_subject(n: u32) -> u32 {
    TTI_PEEK_RUNS.fetch_add(1, SeqCst);
    n
}

#[test]
fn peeking_with_get_does_not_refresh_a_time_to_idle() {
    let start = Instant::now();
    tti_peek_subject(1);
    while start.elapsed() < Duration::from_millis(700) {
        let _ = tti_peek_subject_cache().get(&1);
        sleep(Duration::from_millis(50));
    }
    tti_peek_subject(1);
    assert_eq!(runs(&TTI_PEEK_RUNS), 2, "peeks kept the entry alive");
}

static BOTH_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(ttl = "400ms", tti = "10s")]
fn both_subject(n: u32) -> u32 {
    BOTH_RUNS.fetch_add(1, SeqCst);
    n
}

#[test]
fn with_ttl_and_tti_the_ttl_still_applies() {
    let start = Instant::now();
    both_subject(1);
    both_subject(1);
    assert_eq!(runs(&BOTH_RUNS), 1);
    while start.elapsed() < Duration::from_millis(900) {
        both_subject(1);
        sleep(Duration::from_millis(50));
    }
    assert!(runs(&BOTH_RUNS) >= 2, "a long tti kept it past its ttl");
}

static ASYNC_TTL_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(ttl = "200ms")]
async fn async_ttl_subject(n: u32) -> u32 {
    ASYNC_TTL_RUNS.fetch_add(1, SeqCst);
    tokio::task::yield_now().await;
    n
}

#[tokio::test]
async fn ttl_on_an_async_function() {
    async_ttl_subject(1).await;
    async_ttl_subject(1).await;
    assert_eq!(runs(&ASYNC_TTL_RUNS), 1);
    tokio::time::sleep(Duration::from_millis(400)).await;
    async_ttl_subject(1).await;
    assert_eq!(runs(&ASYNC_TTL_RUNS), 2);
}

static PER_KEY_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(ttl = "300ms", size = 100, policy = lru)]
fn per_key_subject(n: u32) -> u32 {
    PER_KEY_RUNS.fetch_add(1, SeqCst);
    n
}

#[test]
fn each_key_expires_on_its_own() {
    per_key_subject(1);
    sleep(Duration::from_millis(600));
    per_key_subject(2); // written now
    per_key_subject(2);
    assert_eq!(runs(&PER_KEY_RUNS), 2, "the fresh key is cached");
    per_key_subject(1);
    assert_eq!(runs(&PER_KEY_RUNS), 3, "the old key expired");
    let memo = per_key_subject_cache();
    assert_eq!(memo.cache().capacity(), Some(100));
}
