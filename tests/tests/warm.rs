//! `warm(keys)` of a `#[cached]` function's handle, and the bulk `insert_many` /
//! `invalidate_many` of handles and caches (with the Redis tier in the last test).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

use memokit::{cached, Cache, Memo, WarmReport};
use memokit_tests::RedisServer;

/// Calls of one function in flight: how many now, and the most seen at once.
struct InFlight {
    now: AtomicUsize,
    max: AtomicUsize,
}

impl InFlight {
    const fn new() -> Self {
        InFlight {
            now: AtomicUsize::new(0),
            max: AtomicUsize::new(0),
        }
    }

    fn enter(&self) -> Leave<'_> {
        let now = self.now.fetch_add(1, SeqCst) + 1;
        self.max.fetch_max(now, SeqCst);
        Leave(self)
    }

    fn max(&self) -> usize {
        self.max.load(SeqCst)
    }
}

struct Leave<'a>(&'a InFlight);

impl Drop for Leave<'_> {
    fn drop(&mut self) {
        self.0.now.fetch_sub(1, SeqCst);
    }
}

fn report(loaded: usize, failed: usize, already_cached: usize) -> (usize, usize, usize) {
    (loaded, failed, already_cached)
}

fn counts(report: WarmReport) -> (usize, usize, usize) {
    (report.loaded, report.failed, report.already_cached)
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{what}: not within 10 s"
        );
        thread::sleep(Duration::from_millis(1));
    }
}

// ---- What warm loads and reports ------------------------------------------------------------

static SQUARE_RUNS: Mutex<Vec<u64>> = Mutex::new(Vec::new());

#[cached(size = 1_000)]
fn square(n: u64) -> u64 {
    SQUARE_RUNS.lock().unwrap().push(n);
    n * n
}

#[test]
fn warm_computes_each_missing_key_once_and_skips_cached_ones() {
    square(3);
    square(5);
    // Duplicates, and keys that were cached before.
    let keys = [1, 2, 3, 4, 5, 6, 2, 4, 6, 6];
    let warmed = square_cache().warm(keys);
    assert_eq!(counts(warmed), report(4, 0, 2));
    let mut runs = SQUARE_RUNS.lock().unwrap().clone();
    runs.sort_unstable();
    assert_eq!(runs, [1, 2, 3, 4, 5, 6], "every key computed exactly once");
    for n in 1..=6 {
        assert_eq!(square_cache().get(&n), Some(n * n));
    }
    // A second warm-up finds everything cached.
    assert_eq!(counts(square_cache().warm(keys)), report(0, 0, 6));
    assert_eq!(SQUARE_RUNS.lock().unwrap().len(), 6);
}

static COUNTED_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached]
fn counted(n: u32) -> u32 {
    COUNTED_RUNS.fetch_add(1, SeqCst);
    n + 1
}

#[test]
fn warm_goes_through_the_normal_call_counted_in_the_stats() {
    let warmed = counted_cache().warm_with_parallelism(0..20, 2);
    assert_eq!(counts(warmed), report(20, 0, 0));
    let stats = counted_cache().stats();
    assert_eq!((stats.misses, stats.loads, stats.hits), (20, 20, 0));
    // Skipped keys are not looked up: no hit counted.
    assert_eq!(counts(counted_cache().warm(0..20)), report(0, 0, 20));
    assert_eq!(counted_cache().stats().hits, 0);
    assert_eq!(counted(7), 8);
    assert_eq!(COUNTED_RUNS.load(SeqCst), 20);
}

#[derive(Debug, Clone, PartialEq)]
struct DbError(u32);

static RISKY_RUNS: AtomicUsize = AtomicUsize::new(0);

/// Fails on multiples of 3, panics on 7.
#[cached]
fn risky(n: u32) -> Result<u32, DbError> {
    RISKY_RUNS.fetch_add(1, SeqCst);
    assert_ne!(n, 7, "risky(7) panics");
    if n % 3 == 0 {
        Err(DbError(n))
    } else {
        Ok(n * 2)
    }
}

#[cached(ttl = "5m")]
fn rate(id: u64) -> u64 {
    thread::sleep(Duration::from_millis(2));
    id
}

#[cached]
fn switched_off(n: u64) -> u64 {
    thread::sleep(Duration::from_millis(2));
    n
}

/// Its calls are the caller's, on whichever of its threads they run: under the caller's
/// mocked clock and with memoization off where the caller turned it off.
#[test]
fn warm_calls_carry_the_callers_test_switches() {
    let clock = memokit::testing::mock_clock();
    clock.advance(Duration::from_secs(3600));
    assert_eq!(
        counts(rate_cache().warm_with_parallelism(0..20, 4)),
        report(20, 0, 0)
    );
    for id in 0..20 {
        rate(id);
    }
    let stats = rate_cache().stats();
    assert_eq!((stats.hits, stats.expirations), (20, 0), "{stats}");
    drop(clock);

    let _off = memokit::testing::disable();
    switched_off_cache().warm_with_parallelism(0..20, 4);
    assert!(switched_off_cache().is_empty());
}

static ACCOUNTS_DOWN: AtomicBool = AtomicBool::new(false);

fn read_account(id: u64) -> Result<u64, String> {
    if ACCOUNTS_DOWN.load(SeqCst) {
        Err("db down".into())
    } else {
        Ok(id)
    }
}

#[cached(ttl = "10s", stale_if_error = "1h")]
fn account(id: u64) -> Result<u64, String> {
    read_account(id)
}

#[cached(ttl = "10s", stale_if_error = "1h")]
async fn account_async(id: u64) -> Result<u64, String> {
    read_account(id)
}

/// A failed call answered with the expired value (stale-if-error) loaded nothing: failed.
#[test]
fn a_failure_answered_with_a_stale_value_is_failed() {
    let clock = memokit::testing::mock_clock();
    assert_eq!(account(1), Ok(1));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    assert_eq!(runtime.block_on(account_async(2)), Ok(2));
    clock.advance(Duration::from_secs(11));
    ACCOUNTS_DOWN.store(true, SeqCst);
    let warmed = account_cache().warm_with_parallelism([1], 1);
    assert_eq!(counts(warmed), report(0, 1, 0));
    let warmed = runtime.block_on(memokit::testing::scope(account_async_cache().warm([2])));
    assert_eq!(counts(warmed), report(0, 1, 0));
    for stats in [account_cache().stats(), account_async_cache().stats()] {
        assert_eq!((stats.load_failures, stats.stale_served), (1, 1), "{stats}");
    }
}

#[test]
fn errors_and_panics_are_counted_and_do_not_stop_the_other_keys() {
    let warmed = risky_cache().warm_with_parallelism(0..12, 3);
    // Errors: 0, 3, 6, 9; the panic: 7.
    assert_eq!(counts(warmed), report(7, 5, 0));
    assert_eq!(RISKY_RUNS.load(SeqCst), 12);
    assert_eq!(risky_cache().len(), 7, "errors are not cached");
    assert_eq!(risky_cache().get(&3), None);
    assert_eq!(risky_cache().get(&7), None);
    assert_eq!(risky_cache().get(&11), Some(22));
}

#[cached(cache_errors = true)]
fn remembered(n: u32) -> Result<u32, DbError> {
    if n % 2 == 0 {
        Err(DbError(n))
    } else {
        Ok(n)
    }
}

#[cached(cache_none = false)]
fn odd_only(n: u32) -> Option<u32> {
    (n % 2 == 1).then_some(n)
}

#[test]
fn the_functions_storage_rules_apply_to_what_warm_loads() {
    // With `cache_errors`, an error is stored, so it is warmed: loaded, not failed.
    assert_eq!(counts(remembered_cache().warm(0..4)), report(4, 0, 0));
    assert_eq!(remembered_cache().len(), 4);
    assert_eq!(remembered_cache().get(&2), Some(Err(DbError(2))));
    // With `cache_none = false`, a `None` is loaded but not stored.
    assert_eq!(counts(odd_only_cache().warm(0..6)), report(6, 0, 0));
    assert_eq!(odd_only_cache().len(), 3);
    assert_eq!(odd_only_cache().get(&2), None);
}

static LABEL_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached]
fn label(name: &str, tags: &[u8], count: u32) -> String {
    LABEL_RUNS.fetch_add(1, SeqCst);
    format!("{name}{tags:?}x{count}")
}

/// An argument named as its function.
#[cached]
fn user(user: &str) -> String {
    user.to_uppercase()
}

#[cached]
fn settings() -> String {
    "loaded".to_string()
}

#[test]
fn keys_of_several_and_of_borrowed_arguments_are_turned_back_into_them() {
    let keys = [("a".to_string(), vec![1], 1), ("b".to_string(), vec![], 2)];
    assert_eq!(counts(label_cache().warm(keys.clone())), report(2, 0, 0));
    assert_eq!(label("a", &[1], 1), "a[1]x1");
    assert_eq!(label("b", &[], 2), "b[]x2");
    assert_eq!(LABEL_RUNS.load(SeqCst), 2, "both calls were hits");
    assert_eq!(
        counts(user_cache().warm(["ann".to_string()])),
        report(1, 0, 0)
    );
    assert_eq!(user_cache().get("ann").as_deref(), Some("ANN"));
    assert_eq!(counts(settings_cache().warm([()])), report(1, 0, 0));
    assert_eq!(settings_cache().get(&()).as_deref(), Some("loaded"));
}

#[deprecated = "warming it must not warn: this file is built with clippy -D warnings"]
#[cached]
fn old_square(n: u32) -> u32 {
    n * n
}

/// A key cannot lend a `&'static str`: no `warm`, but it compiles and caches as before.
#[cached]
fn static_len(name: &'static str) -> usize {
    name.len()
}

#[test]
fn deprecated_functions_warm_and_static_borrows_keep_a_plain_handle() {
    assert_eq!(counts(old_square_cache().warm([3])), report(1, 0, 0));
    assert_eq!(old_square_cache().get(&3), Some(9));
    assert_eq!(static_len("abc"), 3);
    let memo: &'static Memo<String, usize> = static_len_cache();
    assert_eq!(memo.get("abc"), Some(3));
}

// ---- Bounded parallelism ---------------------------------------------------------------------

static SLOW_IN_FLIGHT: InFlight = InFlight::new();

#[cached]
fn slow(n: u32) -> u32 {
    let _in_flight = SLOW_IN_FLIGHT.enter();
    thread::sleep(Duration::from_millis(10));
    n
}

static SERIAL_IN_FLIGHT: InFlight = InFlight::new();

#[cached]
fn serial(n: u32) -> u32 {
    let _in_flight = SERIAL_IN_FLIGHT.enter();
    thread::sleep(Duration::from_millis(2));
    n
}

static DEFAULT_IN_FLIGHT: InFlight = InFlight::new();

#[cached]
fn default_width(n: u32) -> u32 {
    let _in_flight = DEFAULT_IN_FLIGHT.enter();
    thread::sleep(Duration::from_millis(10));
    n
}

#[test]
fn warm_runs_at_most_the_given_number_of_calls_at_once_on_threads() {
    assert_eq!(
        counts(slow_cache().warm_with_parallelism(0..40, 3)),
        report(40, 0, 0)
    );
    let max = SLOW_IN_FLIGHT.max();
    assert!(max <= 3, "{max} calls ran at once, with a parallelism of 3");
    assert!(max > 1, "the calls did not run in parallel (at most {max})");

    assert_eq!(
        counts(serial_cache().warm_with_parallelism(0..10, 0)),
        report(10, 0, 0)
    );
    assert_eq!(SERIAL_IN_FLIGHT.max(), 1, "0 counts as 1");
}

#[test]
fn warm_runs_as_many_calls_at_once_as_the_machine_runs_threads() {
    let threads = thread::available_parallelism().map_or(1, usize::from);
    assert_eq!(counts(default_width_cache().warm(0..40)), report(40, 0, 0));
    let max = DEFAULT_IN_FLIGHT.max();
    assert!(max <= threads, "{max} calls at once on {threads} threads");
    if threads > 1 {
        assert!(max > 1, "the calls did not run in parallel");
    }
}

static GATED_RUNS: AtomicUsize = AtomicUsize::new(0);
static GATE: AtomicBool = AtomicBool::new(false);

#[cached]
fn gated(n: u32) -> u32 {
    GATED_RUNS.fetch_add(1, SeqCst);
    while !GATE.load(SeqCst) {
        thread::sleep(Duration::from_millis(1));
    }
    n * 10
}

#[test]
fn warm_shares_the_computation_of_a_key_a_caller_is_computing() {
    let caller = thread::spawn(|| gated(1));
    wait_until("the caller computes", || GATED_RUNS.load(SeqCst) == 1);
    let warm = thread::spawn(|| gated_cache().warm_with_parallelism([1, 2], 2));
    wait_until("warm waits on key 1", || {
        gated_cache().stats().coalesced_waits == 1 && GATED_RUNS.load(SeqCst) == 2
    });
    GATE.store(true, SeqCst);
    assert_eq!(caller.join().unwrap(), 10);
    assert_eq!(counts(warm.join().unwrap()), report(2, 0, 0));
    assert_eq!(GATED_RUNS.load(SeqCst), 2, "key 1 was computed once");
}

// ---- Async functions -------------------------------------------------------------------------

static FETCH_IN_FLIGHT: InFlight = InFlight::new();
static FETCH_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached]
async fn fetch(n: u32) -> Result<String, String> {
    FETCH_RUNS.fetch_add(1, SeqCst);
    let _in_flight = FETCH_IN_FLIGHT.enter();
    tokio::time::sleep(Duration::from_millis(5)).await;
    match n {
        13 => Err("no page 13".into()),
        _ => Ok(format!("page {n}")),
    }
}

#[test]
fn async_warm_runs_at_most_the_given_number_of_futures_at_once() {
    // One thread: the calls are concurrent only because warm polls several futures.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    runtime.block_on(async {
        fetch(0).await.unwrap();
        let mut keys: Vec<u32> = (0..30).collect();
        keys.push(5);
        let warmed = fetch_cache().warm_with_parallelism(keys, 4).await;
        assert_eq!(counts(warmed), report(28, 1, 1));
    });
    let max = FETCH_IN_FLIGHT.max();
    assert!(max <= 4, "{max} futures at once, with a parallelism of 4");
    assert!(
        max > 1,
        "the futures did not run concurrently (at most {max})"
    );
    assert_eq!(FETCH_RUNS.load(SeqCst), 30, "each key once");
    assert_eq!(fetch_cache().len(), 29, "the error is not cached");
}

static PANICKY_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached]
async fn panicky(n: u32) -> u32 {
    PANICKY_RUNS.fetch_add(1, SeqCst);
    tokio::task::yield_now().await;
    assert_ne!(n, 2, "panicky(2) panics");
    n
}

#[test]
fn async_warm_is_send_and_counts_a_panic_as_a_failure() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    // `tokio::spawn` needs a `Send` future.
    let warmed = runtime
        .block_on(runtime.spawn(panicky_cache().warm(0..5)))
        .unwrap();
    assert_eq!(counts(warmed), report(4, 1, 0));
    assert_eq!(PANICKY_RUNS.load(SeqCst), 5);
    assert_eq!(panicky_cache().len(), 4);
}

/// Its future is not `Send` (an `Rc` lives across an `.await`): it still has `warm`.
#[cached]
async fn local_only(n: u32) -> u32 {
    let shared = std::rc::Rc::new(n);
    tokio::task::yield_now().await;
    *shared + 1
}

#[test]
fn async_functions_whose_future_is_not_send_can_be_warmed_too() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let warmed = runtime.block_on(local_only_cache().warm_with_parallelism(0..3, 2));
    assert_eq!(counts(warmed), report(3, 0, 0));
    assert_eq!(local_only_cache().get(&2), Some(3));
}

#[cached(cache_errors = true)]
async fn remembered_async(n: u32) -> Result<u32, String> {
    tokio::task::yield_now().await;
    if n % 2 == 0 {
        Err(format!("even {n}"))
    } else {
        Ok(n)
    }
}

#[test]
fn an_async_function_with_cache_errors_counts_a_stored_error_as_loaded() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let warmed = runtime.block_on(remembered_async_cache().warm(0..4));
    assert_eq!(counts(warmed), report(4, 0, 0));
    assert_eq!(remembered_async_cache().len(), 4);
    assert_eq!(
        remembered_async_cache().get(&2),
        Some(Err("even 2".to_string()))
    );
}

// ---- Bulk insert and invalidate --------------------------------------------------------------

static PRICE_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached]
fn price(item: &str) -> u32 {
    PRICE_RUNS.fetch_add(1, SeqCst);
    u32::try_from(item.len()).unwrap() * 100
}

#[test]
fn handles_insert_and_invalidate_many_keys() {
    let memo: &Memo<String, u32> = price_cache();
    memo.insert_many([("tea".to_string(), 1), ("coffee".to_string(), 2)]);
    assert_eq!((price("tea"), price("coffee")), (1, 2));
    assert_eq!(PRICE_RUNS.load(SeqCst), 0, "both were hits");
    price("cake");
    assert_eq!(memo.invalidate_many(["tea", "cake", "nothing"]), 2);
    assert_eq!(memo.len(), 1);
    assert_eq!(price("tea"), 300, "computed again");
}

#[test]
fn caches_insert_and_invalidate_many_keys() {
    let cache: Cache<u32, u32> = Cache::new(100);
    cache.insert_many((0..10).map(|n| (n, n * n)));
    assert_eq!(cache.len(), 10);
    assert_eq!(cache.get(&9), Some(81));
    let evens: Vec<u32> = (0..20).step_by(2).collect();
    assert_eq!(cache.invalidate_many(&evens), 5);
    let left: HashMap<u32, u32> = (0..10).filter_map(|n| Some((n, cache.peek(&n)?))).collect();
    assert_eq!(
        left,
        HashMap::from([(1, 1), (3, 9), (5, 25), (7, 49), (9, 81)])
    );
}

// ---- With the Redis tier ---------------------------------------------------------------------

static SHARED_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(size = 100, redis(ttl = "10m"), name = "w::shared")]
fn shared(n: u32) -> u32 {
    SHARED_RUNS.fetch_add(1, SeqCst);
    n * 10
}

#[test]
fn warm_and_bulk_writes_reach_redis_and_are_announced() {
    use redis::Commands;
    // The only test of this binary that connects: the connection is process-wide.
    let Some(server) = RedisServer::start() else {
        return;
    };
    memokit::redis::connect_with(memokit::redis::Config::new(server.url()).prefix("warm"))
        .expect("a valid URL");
    let entry = |n: u8| format!("warm:{{w::shared:0:{n:02x}}}");
    let mut conn = server.connection();
    let mut events = server.connection();
    events
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut events = events.as_pubsub();
    events.subscribe("warm:events").unwrap();

    // Warm-up writes what it computes to Redis too.
    assert_eq!(counts(shared_cache().warm([1, 2, 3])), report(3, 0, 0));
    for n in 1..=3 {
        assert!(
            conn.exists::<_, bool>(entry(n)).unwrap(),
            "key {n} in Redis"
        );
    }
    // Warming an emptied process loads from Redis, without computing.
    shared_cache().cache().clear();
    assert_eq!(counts(shared_cache().warm([1, 2, 3])), report(3, 0, 0));
    assert_eq!(SHARED_RUNS.load(SeqCst), 3);
    assert_eq!(shared_cache().stats().l2_hits, 3);

    shared_cache().insert_many([(4, 44), (5, 55)]);
    assert!(conn.exists::<_, bool>(entry(4)).unwrap());
    shared_cache().cache().clear();
    assert_eq!(shared(5), 55, "read back from Redis");
    assert_eq!(SHARED_RUNS.load(SeqCst), 3);

    // Only 5 is in this process now; each is deleted from Redis.
    assert_eq!(shared_cache().invalidate_many(&[1, 4, 5, 9]), 1);
    for n in [1, 4, 5] {
        assert!(
            !conn.exists::<_, bool>(entry(n)).unwrap(),
            "key {n} deleted"
        );
    }
    assert!(conn.exists::<_, bool>(entry(2)).unwrap(), "left alone");

    // Each write was announced to the other processes: 2 inserts, then 4 invalidations.
    for _ in 0..6 {
        let message = events.get_message().expect("an event within 5 s");
        assert_eq!(message.get_channel_name(), "warm:events");
    }
}
