//! `memokit::testing`: memoization off, a moved clock and a cache cleared at the end of a test,
//! each for the thread that asks (cargo runs tests as threads of one process).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering::SeqCst};
use std::sync::{Barrier, Mutex};
use std::thread;
use std::time::Duration;

use memokit::{cached, testing};

/// How many times each function body ran for each key.
static RUNS: Mutex<Option<HashMap<(&'static str, u32), u32>>> = Mutex::new(None);

fn ran(function: &'static str, key: u32) {
    *RUNS
        .lock()
        .unwrap()
        .get_or_insert_with(HashMap::new)
        .entry((function, key))
        .or_default() += 1;
}

fn runs(function: &'static str, key: u32) -> u32 {
    RUNS.lock()
        .unwrap()
        .as_ref()
        .and_then(|runs| runs.get(&(function, key)).copied())
        .unwrap_or(0)
}

#[cached]
fn off_alone(n: u32) -> u32 {
    ran("off_alone", n);
    n
}

#[test]
fn disable_runs_the_body_every_time_and_stores_and_counts_nothing() {
    off_alone(1);
    let before = off_alone_cache().stats();
    {
        let _off = testing::disable();
        for _ in 0..3 {
            assert_eq!(off_alone(1), 1);
            assert_eq!(off_alone(2), 2);
        }
        {
            let _nested = testing::disable();
            off_alone(2);
        }
        off_alone(2); // still off: the outer guard is alive
    }
    assert_eq!((runs("off_alone", 1), runs("off_alone", 2)), (4, 5));
    let after = off_alone_cache().stats();
    assert_eq!((after.hits, after.misses), (before.hits, before.misses));
    assert_eq!(off_alone_cache().get(&2), None, "nothing stored while off");
    off_alone(1);
    assert_eq!(
        runs("off_alone", 1),
        4,
        "on again: the value cached before is used"
    );
}

#[cached]
fn shared_by_threads(n: u32) -> u32 {
    ran("shared_by_threads", n);
    thread::yield_now();
    n
}

#[test]
fn a_thread_with_memoization_off_leaves_a_parallel_thread_memoized() {
    const CALLS: u32 = 200;
    let start = Barrier::new(2);
    thread::scope(|threads| {
        threads.spawn(|| {
            let _off = testing::disable();
            start.wait();
            for _ in 0..CALLS {
                shared_by_threads(1);
            }
        });
        threads.spawn(|| {
            start.wait();
            for _ in 0..CALLS {
                shared_by_threads(2);
            }
        });
    });
    assert_eq!(runs("shared_by_threads", 1), CALLS, "off: every call ran");
    assert_eq!(runs("shared_by_threads", 2), 1, "on: one run");
    assert_eq!(shared_by_threads_cache().stats().hits, u64::from(CALLS - 1));
}

#[cached]
fn spawned_elsewhere(n: u32) -> u32 {
    ran("spawned_elsewhere", n);
    n
}

#[test]
fn a_spawned_thread_sees_the_switch_only_when_it_inherits_it() {
    let _off = testing::disable();
    thread::spawn(|| spawned_elsewhere(1)).join().unwrap();
    thread::spawn(testing::inherit(|| spawned_elsewhere(2)))
        .join()
        .unwrap();
    assert_eq!(spawned_elsewhere_cache().get(&1), Some(1));
    assert_eq!(spawned_elsewhere_cache().get(&2), None);
}

static ASYNC_RUNS: AtomicU32 = AtomicU32::new(0);

#[cached]
async fn fetch(n: u32) -> u32 {
    ASYNC_RUNS.fetch_add(1, SeqCst);
    tokio::task::yield_now().await;
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_calls_of_the_test_and_scoped_tasks_see_the_switch_plain_tasks_do_not() {
    let _off = testing::disable();
    fetch(1).await;
    fetch(1).await;
    assert_eq!(ASYNC_RUNS.load(SeqCst), 2, "the test's own calls: off");
    assert_eq!(fetch_cache().get(&1), None);

    let scoped = (0..4).map(|_| tokio::spawn(testing::scope(async { fetch(2).await })));
    for task in scoped.collect::<Vec<_>>() {
        task.await.unwrap();
    }
    assert_eq!(
        ASYNC_RUNS.load(SeqCst),
        6,
        "scoped tasks, on the workers: off"
    );
    assert_eq!(fetch_cache().get(&2), None);

    tokio::spawn(async { fetch(3).await }).await.unwrap();
    tokio::spawn(async { fetch(3).await }).await.unwrap();
    assert_eq!(ASYNC_RUNS.load(SeqCst), 7, "a plain task: memoized");
    assert_eq!(fetch_cache().get(&3), Some(3));
}

#[cached(ttl = "5m")]
fn rate(n: u32) -> u32 {
    ran("rate", n);
    n
}

#[test]
fn a_mocked_clock_expires_results_on_its_thread_only() {
    let start = Barrier::new(2);
    let moved = Barrier::new(2);
    thread::scope(|threads| {
        threads.spawn(|| {
            let clock = testing::mock_clock();
            rate(1);
            start.wait();
            clock.advance(Duration::from_secs(299));
            rate(1);
            assert_eq!(runs("rate", 1), 1, "fresh before 5 minutes");
            clock.advance(Duration::from_secs(1));
            rate(1);
            assert_eq!(runs("rate", 1), 2, "expired at 5 minutes");
            moved.wait();
        });
        threads.spawn(|| {
            rate(2);
            start.wait();
            moved.wait();
            // The other thread's clock moved 5 minutes; this one's did not.
            rate(2);
            assert_eq!(runs("rate", 2), 1);
        });
    });
}

#[test]
fn the_clock_is_the_real_one_again_after_its_guard() {
    let clock = testing::mock_clock();
    rate(3);
    clock.advance(Duration::from_secs(600));
    drop(clock);
    // Real time again: the value written at the real time is still fresh.
    rate(3);
    assert_eq!(runs("rate", 3), 1);
}

/// `rate` for the last check of the next test alone: a write to a cache under a clock moved
/// ahead (there, `rate(6)`'s) reclaims the entries that clock finds expired, which would take
/// this value away whatever the clock of the thread that reads it next.
#[cached(ttl = "5m")]
fn rate_at_real_time(n: u32) -> u32 {
    ran("rate_at_real_time", n);
    n
}

#[test]
fn guards_dropped_in_any_order_leave_the_newest_clock_then_the_real_one() {
    // Stored at the real time, by another thread.
    thread::scope(|threads| {
        threads.spawn(|| (rate(6), rate_at_real_time(7)));
    });
    let older = testing::mock_clock();
    let newer = testing::mock_clock();
    older.advance(Duration::from_secs(600));
    drop(newer);
    // The older guard is alive: its clock, 10 minutes ahead, counts.
    rate(6);
    assert_eq!(runs("rate", 6), 2, "expired by the older guard's clock");
    drop(older);

    let older = testing::mock_clock();
    let newer = testing::mock_clock();
    older.advance(Duration::from_secs(600));
    drop(older);
    drop(newer);
    // No guard left: the real time, at which the value is fresh.
    rate_at_real_time(7);
    assert_eq!(runs("rate_at_real_time", 7), 1, "the real clock again");
}

#[cached]
fn cleared(n: u32) -> u32 {
    n
}

#[test]
fn clear_on_drop_clears_when_the_test_panics() {
    let failed = std::panic::catch_unwind(|| {
        let _cleared = cleared_cache().clear_on_drop();
        cleared(1);
        assert_eq!(cleared_cache().len(), 1);
        panic!("the test fails");
    });
    assert!(failed.is_err());
    assert!(cleared_cache().is_empty());
}
