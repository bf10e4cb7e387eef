//! Stale-if-error (`stale_if_error`, `#[cached(stale_if_error = …)]`): a failed recomputation
//! of an expired entry returns the expired value within the window, and the entry is kept that
//! long (within capacity) and no longer. The runtime's behaviour is driven by a [`MockClock`];
//! the macro tests use the real clock with a 50 ms `ttl` and margins of hundreds of
//! milliseconds.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::Barrier;
use std::thread;
use std::time::{Duration, Instant};

use memokit::{cached, Cache, MockClock, RemovalCause};

const TTL: Duration = Duration::from_secs(300);
const WINDOW: Duration = Duration::from_secs(3600);
const NS: Duration = Duration::from_nanos(1);
/// A bound that only a hang reaches.
const HANG: Duration = Duration::from_secs(20);

fn stale_if_error(clock: &MockClock) -> Cache<u32, u32> {
    Cache::builder()
        .time_to_live(TTL)
        .stale_if_error(WINDOW)
        .clock(clock.clone())
        .build()
}

fn fail(cache: &Cache<u32, u32>, key: u32) -> Result<u32, &'static str> {
    cache.try_get_or_insert_with(key, || Err("down"))
}

#[test]
fn a_failed_load_returns_the_expired_value_until_the_window_ends() {
    let clock = MockClock::new();
    let cache = stale_if_error(&clock);
    cache.insert(1, 10);
    clock.advance(TTL);
    assert_eq!(cache.get(&1), None, "an expired value is never a hit");
    assert_eq!(fail(&cache, 1), Ok(10));
    clock.advance(WINDOW - NS);
    assert_eq!(fail(&cache, 1), Ok(10), "the window's last nanosecond");
    let stats = cache.stats();
    assert_eq!(
        (stats.loads, stats.load_failures, stats.stale_served),
        (2, 2, 2)
    );
    assert!(stats.to_string().ends_with(" stale_served=2"), "{stats}");
    clock.advance(NS);
    assert_eq!(fail(&cache, 1), Err("down"), "expired `WINDOW` ago");
    assert_eq!(cache.stats().stale_served, 2);
    // A success stores the new value, which is fresh again.
    assert_eq!(
        cache.try_get_or_insert_with(1, || Ok::<_, &str>(11)),
        Ok(11)
    );
    assert_eq!(cache.get(&1), Some(11));
}

/// An optional load's `None` says the value is gone, not that the source failed: no stale
/// value answers it. Its error is a failure, which one does.
#[test]
fn an_optional_load_finding_nothing_gets_no_stale_value_but_its_error_does() {
    let clock = MockClock::new();
    let cache = stale_if_error(&clock);
    cache.insert(1, 10);
    clock.advance(TTL);
    assert_eq!(
        cache.try_optionally_get_or_insert_with(1, || Err("down")),
        Ok(Some(10))
    );
    assert_eq!(cache.optionally_get_or_insert_with(1, || None), None);
    let stats = cache.stats();
    assert_eq!(
        (stats.loads, stats.load_failures, stats.stale_served),
        (2, 1, 1)
    );
}

#[test]
fn the_stale_value_is_not_stored_so_the_next_call_computes_again() {
    let clock = MockClock::new();
    let cache = stale_if_error(&clock);
    cache.insert(1, 10);
    clock.advance(TTL);
    assert_eq!(fail(&cache, 1), Ok(10));
    let runs = AtomicUsize::new(0);
    let loaded = cache.try_get_or_insert_with(1, || {
        runs.fetch_add(1, SeqCst);
        Ok::<_, &str>(12)
    });
    assert_eq!((loaded, runs.load(SeqCst)), (Ok(12), 1));
}

#[test]
fn expired_entries_are_kept_for_the_window_and_reclaimed_after_it() {
    let clock = MockClock::new();
    let cache = stale_if_error(&clock);
    cache.insert(1, 10);
    clock.advance(TTL + Duration::from_secs(60));
    cache.purge_expired();
    // A lookup of it and writes of other keys (which sweep a few slots each) keep it too.
    assert_eq!(cache.get(&1), None);
    for key in 2..10 {
        cache.insert(key, key);
    }
    assert_eq!(cache.len(), 9, "kept within its window");
    assert_eq!(cache.stats().expirations, 0);
    clock.advance(WINDOW - Duration::from_secs(60));
    cache.purge_expired();
    assert_eq!(cache.len(), 8, "1 expired `WINDOW` ago, the others later");
    assert_eq!(fail(&cache, 1), Err("down"));
    clock.advance(TTL + Duration::from_secs(60));
    cache.purge_expired();
    assert_eq!(cache.len(), 0, "every entry expired `WINDOW` ago or more");
    assert_eq!(cache.stats().expirations, 9);
}

#[test]
fn entries_kept_for_the_window_still_make_room_within_capacity() {
    let clock = MockClock::new();
    let removed = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = removed.clone();
    let cache: Cache<u32, u32> = Cache::builder()
        .max_capacity(1)
        .shards(1)
        .time_to_live(TTL)
        .stale_if_error(WINDOW)
        .clock(clock.clone())
        .eviction_listener(move |key, _, cause| seen.lock().unwrap().push((key, cause)))
        .build();
    cache.insert(1, 10);
    clock.advance(TTL);
    cache.insert(2, 20);
    assert_eq!(cache.len(), 1);
    assert_eq!(*removed.lock().unwrap(), [(1, RemovalCause::Expired)]);
    assert_eq!(fail(&cache, 1), Err("down"), "evicted: nothing to serve");
}

#[test]
fn an_invalidated_key_has_no_stale_value() {
    let clock = MockClock::new();
    let cache = stale_if_error(&clock);
    cache.insert(1, 10);
    clock.advance(TTL);
    cache.invalidate(&1);
    assert_eq!(fail(&cache, 1), Err("down"));
    cache.insert(2, 20);
    clock.advance(TTL);
    cache.clear();
    assert_eq!(fail(&cache, 2), Err("down"));
    assert_eq!(cache.stats().stale_served, 0);
}

#[test]
fn without_the_option_an_expired_value_is_never_served() {
    let clock = MockClock::new();
    let cache: Cache<u32, u32> = Cache::builder()
        .time_to_live(TTL)
        .clock(clock.clone())
        .build();
    cache.insert(1, 10);
    clock.advance(TTL);
    assert_eq!(fail(&cache, 1), Err("down"));
}

#[test]
fn composes_with_refresh_a_failed_refresh_keeps_the_value_then_a_failed_load_serves_it() {
    let clock = MockClock::new();
    let cache: Cache<u32, u32> = Cache::builder()
        .time_to_live(TTL)
        .refresh_after(Duration::from_secs(240))
        .stale_if_error(WINDOW)
        .clock(clock.clone())
        .build();
    cache.insert(1, 10);
    clock.advance(Duration::from_secs(250));
    // Due for a refresh, which fails: the old value, as without the option.
    assert_eq!(fail(&cache, 1), Ok(10));
    let stats = cache.stats();
    assert_eq!((stats.refresh_failures, stats.stale_served), (1, 0));
    clock.advance(TTL);
    // Expired: the failed load is answered by the expired value.
    assert_eq!(fail(&cache, 1), Ok(10));
    assert_eq!(cache.stats().stale_served, 1);
}

#[test]
fn async_loads_serve_the_expired_value_too() {
    let clock = MockClock::new();
    let cache = stale_if_error(&clock);
    cache.insert(1, 10);
    clock.advance(TTL);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let failed: Result<u32, &str> =
        runtime.block_on(cache.try_get_or_insert_with_async(1, async { Err("down") }));
    assert_eq!(failed, Ok(10));
    assert_eq!(cache.stats().stale_served, 1);
}

// ---------------------------------------------------------------------------------------------
// `#[cached(stale_if_error = …)]`, on the real clock.

/// Not `Clone`: without stale-if-error, callers waiting on a failed run would run the body
/// again themselves.
#[derive(Debug, PartialEq)]
struct Down;

static PRICE_FAILS: AtomicBool = AtomicBool::new(false);
static PRICE_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(ttl = "50ms", stale_if_error = "1h")]
fn price(id: u32) -> Result<String, Down> {
    let run = PRICE_RUNS.fetch_add(1, SeqCst) + 1;
    if PRICE_FAILS.load(SeqCst) {
        return Err(Down);
    }
    Ok(format!("price {id} of run {run}"))
}

#[test]
fn a_cached_function_returns_its_expired_value_when_recomputing_fails() {
    assert_eq!(price(1).as_deref(), Ok("price 1 of run 1"));
    thread::sleep(Duration::from_millis(200));
    PRICE_FAILS.store(true, SeqCst);
    assert_eq!(price(1).as_deref(), Ok("price 1 of run 1"));
    assert_eq!(PRICE_RUNS.load(SeqCst), 2, "the body ran, and failed");
    assert_eq!(price_cache().get(&1), None, "still expired");
    assert_eq!(price(2), Err(Down), "no old value: the error");
    PRICE_FAILS.store(false, SeqCst);
    assert_eq!(price(1).as_deref(), Ok("price 1 of run 4"));
    let stats = price_cache().stats();
    assert_eq!((stats.load_failures, stats.stale_served), (2, 1));
}

static SHORT_FAILS: AtomicBool = AtomicBool::new(false);

#[cached(ttl = "50ms", stale_if_error = "50ms")]
fn short(id: u32) -> Result<u32, Down> {
    if SHORT_FAILS.load(SeqCst) {
        return Err(Down);
    }
    Ok(id)
}

#[test]
fn a_cached_function_returns_the_error_once_the_window_is_over() {
    assert_eq!(short(1), Ok(1));
    // Expired at 50 ms, its window over at 100 ms.
    thread::sleep(Duration::from_millis(400));
    SHORT_FAILS.store(true, SeqCst);
    assert_eq!(short(1), Err(Down));
    assert_eq!(short_cache().stats().stale_served, 0);
}

static QUOTE_FAILS: AtomicBool = AtomicBool::new(false);

#[cached(ttl = "50ms", stale_if_error = "1h")]
async fn quote(symbol: String) -> Result<String, Down> {
    tokio::task::yield_now().await;
    if QUOTE_FAILS.load(SeqCst) {
        return Err(Down);
    }
    Ok(format!("{symbol} at 42"))
}

#[tokio::test]
async fn an_async_cached_function_returns_its_expired_value_when_recomputing_fails() {
    assert_eq!(quote("ACME".into()).await.as_deref(), Ok("ACME at 42"));
    tokio::time::sleep(Duration::from_millis(200)).await;
    QUOTE_FAILS.store(true, SeqCst);
    assert_eq!(quote("ACME".into()).await.as_deref(), Ok("ACME at 42"));
    assert_eq!(quote_cache().stats().stale_served, 1);
}

const CALLERS: usize = 8;
static STOCK_FAILS: AtomicBool = AtomicBool::new(false);
static STOCK_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(ttl = "50ms", stale_if_error = "1h")]
fn stock(item: u32) -> Result<u32, Down> {
    STOCK_RUNS.fetch_add(1, SeqCst);
    if !STOCK_FAILS.load(SeqCst) {
        return Ok(item * 10);
    }
    // Fails only once every other caller waits on this run.
    let started = Instant::now();
    while stock_cache().stats().coalesced_waits < CALLERS as u64 - 1 {
        assert!(started.elapsed() < HANG, "the other callers never waited");
        thread::sleep(Duration::from_millis(1));
    }
    Err(Down)
}

#[test]
fn callers_waiting_on_a_failed_run_get_the_expired_value_too() {
    assert_eq!(stock(3), Ok(30));
    thread::sleep(Duration::from_millis(200));
    STOCK_FAILS.store(true, SeqCst);
    stock_cache().reset_stats();
    let start = Barrier::new(CALLERS);
    let results: Vec<Result<u32, Down>> = thread::scope(|scope| {
        let callers: Vec<_> = (0..CALLERS)
            .map(|_| {
                scope.spawn(|| {
                    start.wait();
                    stock(3)
                })
            })
            .collect();
        callers.into_iter().map(|c| c.join().unwrap()).collect()
    });
    assert!(results.iter().all(|r| *r == Ok(30)), "{results:?}");
    assert_eq!(
        STOCK_RUNS.load(SeqCst),
        2,
        "one failed run for every caller"
    );
    let stats = stock_cache().stats();
    assert_eq!((stats.load_failures, stats.stale_served), (1, 1));
}

static SEATS_FAILS: AtomicBool = AtomicBool::new(false);
static SEATS_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(ttl = "50ms", stale_if_error = "1h")]
async fn seats(flight: u32) -> Result<u32, Down> {
    SEATS_RUNS.fetch_add(1, SeqCst);
    if !SEATS_FAILS.load(SeqCst) {
        return Ok(flight + 100);
    }
    // Fails only once every other task waits on this run.
    let started = Instant::now();
    while seats_cache().stats().coalesced_waits < CALLERS as u64 - 1 {
        assert!(started.elapsed() < HANG, "the other tasks never waited");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    Err(Down)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_waiting_on_a_failed_async_run_get_the_expired_value_too() {
    assert_eq!(seats(7).await, Ok(107));
    tokio::time::sleep(Duration::from_millis(200)).await;
    SEATS_FAILS.store(true, SeqCst);
    seats_cache().reset_stats();
    let tasks: Vec<_> = (0..CALLERS).map(|_| tokio::spawn(seats(7))).collect();
    for task in tasks {
        assert_eq!(task.await.unwrap(), Ok(107));
    }
    assert_eq!(SEATS_RUNS.load(SeqCst), 2, "one failed run for every task");
    let stats = seats_cache().stats();
    assert_eq!((stats.load_failures, stats.stale_served), (1, 1));
}

/// A caller that finds the key expired while its refresh runs waits on the refresh; if the
/// refresh fails, it gets the old value within the window, as the waiters of a failed load do,
/// whatever the error's type (with a `Clone` error it got the error).
#[test]
fn a_waiter_of_a_failed_refresh_gets_the_stale_value() {
    let clock = MockClock::new();
    let cache: Cache<u32, u32> = Cache::builder()
        .time_to_live(TTL)
        .refresh_after(TTL - Duration::from_secs(60))
        .stale_if_error(WINDOW)
        .clock(clock.clone())
        .build();
    cache.insert(1, 10);
    clock.advance(TTL - Duration::from_secs(30));
    let started = AtomicBool::new(false);
    let release = AtomicBool::new(false);
    thread::scope(|scope| {
        let refresher = scope.spawn(|| {
            cache.try_get_or_insert_with(1, || {
                started.store(true, SeqCst);
                let waiting = Instant::now();
                while !release.load(SeqCst) && waiting.elapsed() < HANG {
                    thread::sleep(Duration::from_millis(1));
                }
                Err("down")
            })
        });
        while !started.load(SeqCst) {
            thread::sleep(Duration::from_millis(1));
        }
        // The key expires while the refresh runs: the next caller waits on it.
        clock.advance(Duration::from_secs(60));
        let late = scope.spawn(|| cache.try_get_or_insert_with(1, || Ok::<u32, &str>(99)));
        while cache.stats().coalesced_waits == 0 {
            thread::sleep(Duration::from_millis(1));
        }
        release.store(true, SeqCst);
        assert_eq!(
            refresher.join().unwrap(),
            Ok(10),
            "the refresher keeps the old value"
        );
        assert_eq!(
            late.join().unwrap(),
            Ok(10),
            "and so does the caller that waited on it"
        );
    });
}
