//! `WriteBehind` (feature `write-behind`): the target is updated at once, the sink receives
//! batches by size, by interval and on flush; writes coalesce by key; a full queue pushes back;
//! a failing sink is retried with backoff; shutdown delivers everything; and under concurrent
//! writers every accepted key's last value reaches the sink, per key in order.
//!
//! The sink is a real one: [`Store`] records every batch it accepts and can be told to fail a
//! number of calls, to fail until told otherwise, or to hold calls until released.
//! Tests of timing run on a current-thread runtime with paused time (it advances only when
//! every task waits), so their timing assertions are exact and not flaky.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use memokit::write_behind::{SinkFailure, WriteError};
use memokit::{cached, Cache, WriteBehind};
use tokio::sync::{OwnedRwLockWriteGuard, RwLock};
use tokio::time::Instant;

type Entry = (u32, u64);
type SinkFuture = Pin<Box<dyn Future<Output = Result<(), SinkDown>> + Send>>;

/// The error of a failing [`Store`] call.
#[derive(Debug, Clone, PartialEq, Eq)]
struct SinkDown(u64);

/// A sink that keeps the batches it accepted, with the (tokio) time of each.
#[derive(Clone, Default)]
struct Store(Arc<StoreState>);

#[derive(Default)]
struct StoreState {
    accepted: Mutex<Vec<(Instant, Vec<Entry>)>>,
    calls: AtomicU64,
    /// Calls still to fail.
    fail_next: AtomicU64,
    /// Fail every call while set.
    down: AtomicBool,
    /// Calls wait for a read lock: a test holding the write lock holds every call.
    gate: Arc<RwLock<()>>,
    /// Each call takes a millisecond, so that writes arrive while a batch is in flight.
    slow: AtomicBool,
}

impl Store {
    fn sink(&self) -> impl Fn(Vec<Entry>) -> SinkFuture + Send + Sync + 'static {
        let store = self.clone();
        move |batch| Box::pin(store.clone().accept(batch))
    }

    async fn accept(self, batch: Vec<Entry>) -> Result<(), SinkDown> {
        let call = self.0.calls.fetch_add(1, SeqCst) + 1;
        let _open = self.0.gate.read().await;
        if self.0.slow.load(SeqCst) {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let fail_once = self
            .0
            .fail_next
            .fetch_update(SeqCst, SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if fail_once || self.0.down.load(SeqCst) {
            return Err(SinkDown(call));
        }
        self.accepted().push((Instant::now(), batch));
        Ok(())
    }

    fn accepted(&self) -> std::sync::MutexGuard<'_, Vec<(Instant, Vec<Entry>)>> {
        self.0
            .accepted
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn batches(&self) -> Vec<Vec<Entry>> {
        self.accepted().iter().map(|(_, b)| b.clone()).collect()
    }

    fn entries(&self) -> Vec<Entry> {
        self.batches().concat()
    }

    fn calls(&self) -> u64 {
        self.0.calls.load(SeqCst)
    }

    fn fail_next(&self, calls: u64) {
        self.0.fail_next.store(calls, SeqCst);
    }

    fn set_slow(&self, slow: bool) {
        self.0.slow.store(slow, SeqCst);
    }

    fn set_down(&self, down: bool) {
        self.0.down.store(down, SeqCst);
    }

    /// Holds every call (from now on) until the guard is dropped.
    async fn hold(&self) -> OwnedRwLockWriteGuard<()> {
        self.0.gate.clone().write_owned().await
    }
}

/// Lets the buffer's task run (paused time only moves when everything waits).
async fn settle() {
    tokio::time::sleep(Duration::from_millis(1)).await;
}

const HOUR: Duration = Duration::from_secs(3600);

/// The batches handed to `on_failure`, with their failures.
type Lost = Arc<Mutex<Vec<(Vec<Entry>, SinkFailure<SinkDown>)>>>;

/// An `on_failure` that keeps what it is handed in `lost`.
fn keep_in(lost: &Lost) -> impl Fn(Vec<Entry>, SinkFailure<SinkDown>) + Send + Sync + 'static {
    let lost = lost.clone();
    move |batch, failure| lost.lock().unwrap().push((batch, failure))
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn the_cache_is_updated_at_once_and_the_store_on_flush() {
    let store = Store::default();
    let cache: Cache<u32, u64> = Cache::new(100);
    let buffer = WriteBehind::builder(cache.clone(), store.sink())
        .flush_interval(HOUR)
        .build()
        .unwrap();

    buffer.write(1, 10).await.unwrap();
    buffer.try_write(2, 20).unwrap();
    assert_eq!((cache.get(&1), cache.get(&2)), (Some(10), Some(20)));
    settle().await;
    assert_eq!(
        store.calls(),
        0,
        "nothing sent before the batch fills or the hour passes"
    );
    assert_eq!(buffer.stats().pending, 2);

    buffer.flush().await;
    assert_eq!(store.batches(), [vec![(1, 10), (2, 20)]]);
    let stats = buffer.stats();
    assert_eq!(
        (stats.queued, stats.flushed, stats.batches, stats.pending),
        (2, 2, 1, 0)
    );
    buffer.flush().await; // nothing queued: returns, sends nothing
    assert_eq!(store.calls(), 1);
}

static VISITS_RUNS: AtomicU64 = AtomicU64::new(0);

#[cached(size = 100)]
fn visits(page: u32) -> u64 {
    VISITS_RUNS.fetch_add(1, SeqCst);
    u64::from(page) * 1000
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_cached_function_is_a_target_too() {
    let store = Store::default();
    let buffer = WriteBehind::builder(visits_cache(), store.sink())
        .build()
        .unwrap();
    buffer.write(7, 42).await.unwrap();
    assert_eq!(visits(7), 42, "the written value, not a computation");
    assert_eq!(VISITS_RUNS.load(SeqCst), 0);
    buffer.shutdown().await;
    assert_eq!(store.entries(), [(7, 42)]);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_full_batch_is_sent_at_once_and_the_rest_waits_for_the_interval() {
    let store = Store::default();
    let start = Instant::now();
    let buffer = WriteBehind::builder(Cache::new(100), store.sink())
        .batch_size(3)
        .flush_interval(Duration::from_secs(5))
        .build()
        .unwrap();
    buffer.write(1, 1).await.unwrap();
    settle().await; // the task now waits for the interval of key 1
    for key in 2..=4 {
        buffer.write(key, 1).await.unwrap();
    }
    settle().await;
    assert_eq!(store.batches(), [vec![(1, 1), (2, 1), (3, 1)]]);
    let waited = store.accepted()[0].0 - start;
    assert!(
        waited < Duration::from_millis(10),
        "sent without waiting, not after {waited:?}"
    );

    // Key 4 was queued at about `start`; key 5 three seconds later rides in the same batch.
    tokio::time::sleep(Duration::from_secs(3)).await;
    buffer.write(5, 1).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1990)).await;
    assert_eq!(store.calls(), 1, "the oldest write is not 5 s old yet");
    tokio::time::sleep(Duration::from_millis(20)).await;
    let accepted = store.accepted().clone();
    assert_eq!(accepted.len(), 2);
    assert_eq!(accepted[1].1, [(4, 1), (5, 1)]);
    let waited = accepted[1].0 - start;
    assert!(
        waited >= Duration::from_secs(5) && waited < Duration::from_millis(5010),
        "5 s after key 4, not {waited:?}"
    );
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn writes_to_a_queued_key_coalesce_the_last_wins_and_keeps_the_first_place() {
    let store = Store::default();
    let cache = Cache::new(100);
    let buffer = WriteBehind::builder(cache.clone(), store.sink())
        .batch_size(3)
        .flush_interval(HOUR)
        .build()
        .unwrap();
    buffer.write(1, 1).await.unwrap();
    buffer.write(2, 1).await.unwrap();
    buffer.write(1, 2).await.unwrap();
    buffer.try_write(1, 3).unwrap();
    assert_eq!(buffer.stats().pending, 2, "one entry per key");
    buffer.write(3, 1).await.unwrap();
    settle().await;

    assert_eq!(store.batches(), [vec![(1, 3), (2, 1), (3, 1)]]);
    assert_eq!(cache.get(&1), Some(3));
    let stats = buffer.stats();
    assert_eq!(
        (stats.queued, stats.coalesced, stats.flushed),
        (5, 2, 3),
        "{stats}"
    );
}

/// `flush` waits for the writes before it, not for a queue that never empties.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flush_returns_while_writes_go_on() {
    let store = Store::default();
    store.set_slow(true); // the writer outpaces the sink: the queue never empties
    let buffer = WriteBehind::builder(Cache::builder().build(), store.sink())
        .batch_size(10)
        .max_pending(2000)
        .flush_interval(HOUR)
        .build()
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let writer = tokio::spawn({
        let (buffer, stop) = (buffer.clone(), stop.clone());
        async move {
            for key in 0.. {
                if stop.load(SeqCst) {
                    break;
                }
                buffer.write(key, 1).await.unwrap();
                tokio::task::yield_now().await;
            }
        }
    });
    while buffer.stats().queued < 1000 {
        tokio::task::yield_now().await;
    }
    let before = buffer.stats().queued;
    let flushed = tokio::time::timeout(Duration::from_secs(30), buffer.flush()).await;
    stop.store(true, SeqCst);
    writer.await.unwrap();
    assert!(flushed.is_ok(), "flush returned");
    let delivered: std::collections::HashSet<u32> =
        store.entries().into_iter().map(|(key, _)| key).collect();
    let before = u32::try_from(before).unwrap();
    assert!(
        (0..before).all(|key| delivered.contains(&key)),
        "every write before the flush was delivered"
    );
    buffer.shutdown().await;
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_full_queue_makes_writers_wait_and_try_write_fail() {
    let store = Store::default();
    let cache = Cache::new(100);
    let buffer = WriteBehind::builder(cache.clone(), store.sink())
        .batch_size(2)
        .max_pending(2)
        .flush_interval(HOUR)
        .build()
        .unwrap();
    let held = store.hold().await;
    buffer.write(1, 1).await.unwrap();
    buffer.write(2, 1).await.unwrap();
    settle().await; // the task takes keys 1 and 2; their sink call is held
    buffer.write(3, 1).await.unwrap();
    buffer.write(4, 1).await.unwrap();

    let full = buffer.try_write(5, 1).unwrap_err();
    assert!(full.is_full(), "{full}");
    assert_eq!(full.into_inner(), (5, 1));
    buffer.try_write(4, 2).unwrap(); // a queued key always has room
    assert_eq!(cache.get(&5), None, "a rejected write changes nothing");

    // A cancelled wait leaves nothing behind.
    let gave_up = tokio::time::timeout(Duration::from_secs(60), buffer.write(5, 1)).await;
    assert!(gave_up.is_err(), "the writer waited for room");
    assert_eq!(cache.get(&5), None);

    let waiting = tokio::spawn({
        let buffer = buffer.clone();
        async move { buffer.write(5, 2).await }
    });
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert!(
        !waiting.is_finished(),
        "still no room while the sink is held"
    );
    assert_eq!(cache.get(&5), None);

    drop(held);
    waiting.await.unwrap().unwrap();
    assert_eq!(cache.get(&5), Some(2));
    buffer.flush().await;
    assert_eq!(
        store.entries(),
        [(1, 1), (2, 1), (3, 1), (4, 2), (5, 2)],
        "every accepted write, in order, once"
    );
    assert_eq!(
        buffer.stats().queued,
        6,
        "the rejected and cancelled writes are not counted"
    );
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_failing_sink_is_retried_with_backoff_and_the_batch_delivered_once() {
    let store = Store::default();
    let start = Instant::now();
    let buffer = WriteBehind::builder(Cache::new(100), store.sink())
        .retries(5)
        .backoff(Duration::from_millis(100), Duration::from_millis(300))
        .build()
        .unwrap();
    store.fail_next(4);
    buffer.write(1, 1).await.unwrap();
    buffer.write(2, 1).await.unwrap();
    buffer.flush().await;

    assert_eq!(store.batches(), [vec![(1, 1), (2, 1)]], "delivered once");
    assert_eq!(store.calls(), 5);
    // Waits of 100, 200, 300 (the longest) and 300 ms.
    let waited = store.accepted()[0].0 - start;
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_millis(910),
        "{waited:?}"
    );
    let stats = buffer.stats();
    assert_eq!(
        (stats.retried, stats.failed, stats.flushed, stats.batches),
        (4, 0, 2, 1),
        "{stats}"
    );
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_batch_failing_past_its_retries_goes_to_on_failure_and_counts_as_failed() {
    let store = Store::default();
    let lost = Lost::default();
    let buffer = WriteBehind::builder(Cache::new(100), store.sink())
        .retries(2)
        .backoff(Duration::from_millis(10), Duration::from_secs(1))
        .on_failure(keep_in(&lost))
        .build()
        .unwrap();
    store.set_down(true);
    buffer.write(1, 1).await.unwrap();
    buffer.write(2, 1).await.unwrap();
    buffer.flush().await;
    assert_eq!(store.calls(), 3, "the first call and two retries");
    assert_eq!(
        *lost.lock().unwrap(),
        [(vec![(1, 1), (2, 1)], SinkFailure::Error(SinkDown(3)))],
        "the batch with the last error"
    );
    let stats = buffer.stats();
    assert_eq!((stats.retried, stats.failed, stats.pending), (2, 2, 0));

    store.set_down(false);
    buffer.write(1, 2).await.unwrap();
    buffer.shutdown().await;
    assert_eq!(store.entries(), [(1, 2)], "later writes go through");
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn writes_during_retries_are_kept_and_sent_after_the_older_batch() {
    let store = Store::default();
    let cache = Cache::new(100);
    let buffer = WriteBehind::builder(cache.clone(), store.sink())
        .retry_forever()
        .backoff(Duration::from_millis(100), Duration::from_secs(1))
        .build()
        .unwrap();
    store.set_down(true);
    buffer.write(1, 1).await.unwrap();
    buffer.write(2, 1).await.unwrap();
    let flushed = tokio::spawn({
        let buffer = buffer.clone();
        async move { buffer.flush().await }
    });
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert!(store.calls() > 5, "retried");
    assert!(!flushed.is_finished(), "flush waits through retries");

    // Key 1 is in the failing batch: its new value must neither be lost nor overtake it.
    buffer.write(1, 2).await.unwrap();
    buffer.write(3, 1).await.unwrap();
    assert_eq!(buffer.stats().pending, 4);
    store.set_down(false);
    flushed.await.unwrap();
    buffer.shutdown().await;

    assert_eq!(
        store.batches(),
        [vec![(1, 1), (2, 1)], vec![(1, 2), (3, 1)]]
    );
    assert_eq!(cache.get(&1), Some(2));
    let stats = buffer.stats();
    assert_eq!((stats.failed, stats.flushed, stats.pending), (0, 4, 0));
    assert_eq!(stats.retried, store.calls() - 2);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn shutdown_delivers_everything_and_closes_every_handle() {
    let store = Store::default();
    let buffer = WriteBehind::builder(Cache::new(1000), store.sink())
        .batch_size(7)
        .flush_interval(HOUR)
        .build()
        .unwrap();
    let other = buffer.clone();
    for key in 0..100 {
        buffer.write(key, 1).await.unwrap();
    }
    store.fail_next(2);
    other.shutdown().await;

    let mut entries = store.entries();
    entries.sort_unstable();
    assert_eq!(entries, (0..100).map(|k| (k, 1)).collect::<Vec<_>>());
    assert!(store.batches().iter().all(|b| b.len() <= 7));
    assert!(matches!(
        buffer.write(1, 2).await,
        Err(WriteError::Closed(1, 2))
    ));
    assert!(buffer.try_write(1, 2).unwrap_err().is_closed());
    buffer.shutdown().await; // again: returns
    buffer.flush().await;
    assert_eq!(buffer.stats().queued, 100);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_writer_waiting_for_room_at_shutdown_is_told_it_is_closed() {
    let store = Store::default();
    let buffer = WriteBehind::builder(Cache::new(100), store.sink())
        .batch_size(1)
        .max_pending(1)
        .build()
        .unwrap();
    let held = store.hold().await;
    buffer.write(1, 1).await.unwrap();
    settle().await; // key 1 in flight, held
    buffer.write(2, 1).await.unwrap(); // the queue is full
    let waiting = tokio::spawn({
        let buffer = buffer.clone();
        async move { buffer.write(3, 1).await }
    });
    settle().await;
    let shutdown = tokio::spawn({
        let buffer = buffer.clone();
        async move { buffer.shutdown().await }
    });
    let refused = waiting.await.unwrap().unwrap_err();
    assert!(refused.is_closed());
    drop(held);
    shutdown.await.unwrap();
    assert_eq!(store.entries(), [(1, 1), (2, 1)]);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn dropping_the_last_handle_delivers_in_the_background() {
    let store = Store::default();
    let buffer = WriteBehind::builder(Cache::new(100), store.sink())
        .flush_interval(HOUR)
        .build()
        .unwrap();
    let clone = buffer.clone();
    buffer.write(1, 1).await.unwrap();
    drop(buffer);
    settle().await;
    assert_eq!(store.calls(), 0, "another handle is alive");
    clone.write(2, 1).await.unwrap();
    drop(clone);
    settle().await;
    assert_eq!(store.entries(), [(1, 1), (2, 1)]);
}

/// A sink that panics on its first two calls (in the call itself, then in its future), then
/// stores the batch: the panics cost retries, not the buffer.
#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_panicking_sink_is_a_failed_attempt_and_the_batch_is_retried() {
    let cache = Cache::new(100);
    let store = Store::default();
    let calls = Arc::new(AtomicU64::new(0));
    let sink = {
        let (store, calls) = (store.clone(), calls.clone());
        move |batch: Vec<Entry>| -> SinkFuture {
            let call = calls.fetch_add(1, SeqCst);
            assert!(call != 0, "a sink bug in the call (expected by this test)");
            let store = store.clone();
            Box::pin(async move {
                assert!(
                    call != 1,
                    "a sink bug in the future (expected by this test)"
                );
                store.accept(batch).await
            })
        }
    };
    let buffer = WriteBehind::builder(cache, sink).build().unwrap();
    buffer.write(1, 1).await.unwrap();
    buffer.flush().await;
    assert_eq!(store.entries(), [(1, 1)]);
    assert_eq!(calls.load(SeqCst), 3);
    let stats = buffer.stats();
    assert_eq!(
        (stats.retried, stats.flushed, stats.failed),
        (2, 1, 0),
        "{stats}"
    );
    // The buffer still works.
    buffer.write(2, 1).await.unwrap();
    buffer.shutdown().await;
    assert_eq!(store.entries(), [(1, 1), (2, 1)]);
}

/// A sink that always panics: after its retries the batch counts as failed, and nobody is
/// left waiting.
#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_sink_that_always_panics_fails_its_batches_after_the_retries() {
    let cache = Cache::new(100);
    async fn broken_sink(batch: Vec<Entry>) -> Result<(), SinkDown> {
        panic!(
            "a sink bug, with {} entries (expected by this test)",
            batch.len()
        )
    }
    let buffer = WriteBehind::builder(cache, broken_sink)
        .retries(2)
        .build()
        .unwrap();
    buffer.write(1, 1).await.unwrap();
    buffer.flush().await;
    let stats = buffer.stats();
    assert_eq!(
        (stats.retried, stats.failed, stats.pending),
        (2, 1, 0),
        "{stats}"
    );
    buffer.shutdown().await;
    assert!(buffer.write(2, 1).await.unwrap_err().is_closed());
}

/// Many tasks write many keys with increasing values while the sink fails now and then and the
/// queue is small enough to push back; after the shutdown, every key's last value has reached
/// the sink, and per key the delivered values only increase.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_lose_nothing_and_never_see_an_older_value_after_a_newer_one() {
    const TASKS: u32 = 8;
    const KEYS: u32 = 200;
    const ROUNDS: u64 = 50;
    let store = Store::default();
    store.set_slow(true);
    let cache: Cache<u32, u64> = Cache::builder().build(); // unbounded: nothing evicted
    let buffer = WriteBehind::builder(cache.clone(), store.sink())
        .batch_size(16)
        .max_pending(32)
        .flush_interval(Duration::from_millis(1))
        .retry_forever()
        .backoff(Duration::from_micros(100), Duration::from_millis(2))
        .build()
        .unwrap();

    let writers: Vec<_> = (0..TASKS)
        .map(|task| {
            let buffer = buffer.clone();
            let store = store.clone();
            tokio::spawn(async move {
                let mut written = 0;
                for round in 1..=ROUNDS {
                    // Each task owns the keys `task, task + TASKS, …`: per key, one writer and
                    // increasing values.
                    for key in (task..KEYS).step_by(TASKS as usize) {
                        buffer.write(key, round).await.unwrap();
                        written += 1;
                    }
                    if round % 10 == task as u64 % 10 {
                        store.fail_next(2);
                    }
                    if round % 5 == 0 {
                        buffer.flush().await;
                    }
                }
                written
            })
        })
        .collect();
    let mut written = 0;
    for writer in writers {
        written += writer.await.unwrap();
    }
    let shutdown = tokio::time::timeout(Duration::from_secs(60), buffer.shutdown()).await;
    assert!(shutdown.is_ok(), "shutdown finished");

    let mut delivered: HashMap<u32, Vec<u64>> = HashMap::new();
    for (key, value) in store.entries() {
        delivered.entry(key).or_default().push(value);
    }
    assert_eq!(delivered.len(), KEYS as usize, "every key reached the sink");
    for (key, values) in &delivered {
        assert!(
            values.windows(2).all(|pair| pair[0] < pair[1]),
            "key {key}: delivered {values:?}"
        );
        assert_eq!(values.last(), Some(&ROUNDS), "key {key}: the last value");
        assert_eq!(cache.get(key), Some(ROUNDS));
    }
    let stats = buffer.stats();
    eprintln!("{stats}");
    let delivered_count: u64 = delivered.values().map(|v| v.len() as u64).sum();
    assert_eq!(stats.queued, written, "{stats}");
    assert_eq!(stats.flushed, delivered_count, "{stats}");
    assert_eq!((stats.failed, stats.pending), (0, 0), "{stats}");
    assert_eq!(stats.queued, stats.coalesced + stats.flushed, "{stats}");
    assert!(stats.retried > 0, "the sink failed on the way: {stats}");
}

/// A removal listener of the target cache that writes into the same buffer: the target is
/// updated outside the queue's lock, so the nested write is queued (and applied right after
/// the write in progress) instead of deadlocking. Run on a thread of its own, so that a
/// deadlock fails the test instead of hanging it.
#[test]
fn a_removal_listener_may_write_into_the_same_buffer() {
    let (done, finished) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let outcome = runtime.block_on(async {
            let store = Store::default();
            let buffer: Arc<std::sync::OnceLock<WriteBehind<u32, u64>>> = Arc::default();
            let handle = buffer.clone();
            // One entry: each write evicts the previous key, which the listener moves to
            // `key + 100` (once: moved keys are not moved again).
            let cache: Cache<u32, u64> = Cache::builder()
                .shards(1)
                .max_capacity(1)
                .eviction_listener(move |key, value, _cause| {
                    if key < 100 {
                        handle.get().unwrap().try_write(key + 100, value).unwrap();
                    }
                })
                .build();
            let built = WriteBehind::builder(cache.clone(), store.sink())
                .build()
                .unwrap();
            let buffer = buffer.get_or_init(|| built);
            buffer.write(1, 10).await.unwrap();
            buffer.write(2, 20).await.unwrap();
            // 2 evicted 1 (moved to 101), 101 evicted 2 (moved to 102), 102 evicted 101.
            let cached: Vec<_> = [1, 2, 101, 102].map(|k| cache.get(&k)).to_vec();
            buffer.shutdown().await;
            (cached, store.entries())
        });
        done.send(outcome).unwrap();
    });
    let (cached, delivered) = finished
        .recv_timeout(Duration::from_secs(20))
        .expect("no deadlock: the writes return");
    assert_eq!(cached, [None, None, None, Some(20)]);
    assert_eq!(delivered, [(1, 10), (2, 20), (101, 10), (102, 20)]);
}

/// A target that takes its time over each write, so that writes racing to it overlap.
struct Slow(Cache<u32, u64>);

impl memokit::write_behind::WriteTarget<u32, u64> for Slow {
    fn write(&self, key: u32, value: u64) {
        for _ in 0..20 {
            std::thread::yield_now();
        }
        self.0.insert(key, value);
    }
}

/// Writers racing on the same keys: the target is updated outside the queue's lock, yet in the
/// queue's order, so each key's cached value is the last value the sink received for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_writers_of_one_key_leave_the_target_with_the_queues_last_value() {
    for _ in 0..50 {
        let store = Store::default();
        let cache: Cache<u32, u64> = Cache::builder().build();
        let buffer = WriteBehind::builder(Slow(cache.clone()), store.sink())
            .build()
            .unwrap();
        let writers: Vec<_> = (0..4u64)
            .map(|task| {
                let buffer = buffer.clone();
                tokio::task::spawn_blocking(move || {
                    for round in 0..50u64 {
                        buffer.try_write(0, round * 4 + task).unwrap();
                    }
                })
            })
            .collect();
        for writer in writers {
            writer.await.unwrap();
        }
        buffer.shutdown().await;
        let delivered = store.entries();
        assert_eq!(cache.get(&0), delivered.last().map(|&(_, value)| value));
    }
}

/// A sink that panics on its last attempt: the batch still reaches `on_failure` (a dead-letter
/// path), not only the `failed` count.
#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_batch_whose_last_attempt_panics_goes_to_on_failure() {
    async fn broken_sink(_batch: Vec<Entry>) -> Result<(), SinkDown> {
        panic!("a sink bug (expected by this test)")
    }
    let lost = Lost::default();
    let buffer = WriteBehind::builder(Cache::new(100), broken_sink)
        .retries(1)
        .on_failure(keep_in(&lost))
        .build()
        .unwrap();
    buffer.write(1, 1).await.unwrap();
    buffer.flush().await;
    assert_eq!(
        *lost.lock().unwrap(),
        [(vec![(1, 1)], SinkFailure::Panicked)],
        "the batch was lost silently"
    );
    assert_eq!(buffer.stats().failed, 1);
}

/// A sink whose future never completes: each attempt times out (default 30 s), is retried,
/// then goes to `on_failure`; `flush` and `shutdown` return.
#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_sink_that_never_completes_times_out_instead_of_hanging_flush() {
    let store = Store::default();
    let stuck = store.hold().await;
    let lost = Lost::default();
    let buffer = WriteBehind::builder(Cache::new(100), store.sink())
        .retries(2)
        .backoff(Duration::from_millis(10), Duration::from_secs(1))
        .on_failure(keep_in(&lost))
        .build()
        .unwrap();
    buffer.write(1, 1).await.unwrap();
    let started = Instant::now();
    tokio::time::timeout(HOUR, buffer.flush())
        .await
        .expect("flush hangs on a sink that never completes");
    assert_eq!(store.calls(), 3, "the first attempt and two retries");
    assert!(
        started.elapsed() >= Duration::from_secs(90),
        "three 30 s attempts"
    );
    let timed_out = SinkFailure::TimedOut(Duration::from_secs(30));
    assert_eq!(*lost.lock().unwrap(), [(vec![(1, 1)], timed_out)]);
    let stats = buffer.stats();
    assert_eq!(
        (stats.retried, stats.failed, stats.pending),
        (2, 1, 0),
        "{stats}"
    );
    drop(stuck);
    buffer.write(2, 2).await.unwrap();
    tokio::time::timeout(HOUR, buffer.shutdown())
        .await
        .expect("shutdown hangs");
    assert_eq!(store.entries(), [(2, 2)]);
}

/// An `on_failure` that panics does not close the buffer: later writes are accepted and
/// delivered.
#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_panicking_on_failure_leaves_the_buffer_working() {
    let store = Store::default();
    let buffer = WriteBehind::builder(Cache::new(100), store.sink())
        .retries(0)
        .on_failure(|_, _| panic!("a dead-letter bug (expected by this test)"))
        .build()
        .unwrap();
    store.set_down(true);
    buffer.write(1, 1).await.unwrap();
    buffer.flush().await;
    let stats = buffer.stats();
    assert_eq!((stats.failed, stats.on_failure_panics), (1, 1), "{stats}");
    assert!(
        stats.to_string().ends_with(" on_failure_panics=1"),
        "{stats}"
    );
    store.set_down(false);
    buffer
        .write(2, 2)
        .await
        .expect("the buffer still accepts writes");
    buffer.shutdown().await;
    assert_eq!(store.entries(), [(2, 2)]);
}
