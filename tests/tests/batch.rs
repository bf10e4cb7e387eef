//! `#[cached(batch)]`: a function of many keys. Cached keys are served from the cache, only the
//! missing ones reach the body, in one call, and each key is shared with concurrent calls that
//! compute it.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Barrier, Mutex};
use std::thread;
use std::time::Duration;

use memokit::{cached, Memo};

/// What each call of a body was asked for.
static ASKED: Mutex<Vec<Vec<u64>>> = Mutex::new(Vec::new());

fn asked() -> Vec<Vec<u64>> {
    std::mem::take(&mut *ASKED.lock().unwrap())
}

#[cached(batch, size = 1_000)]
fn squares(ids: &[u64]) -> HashMap<u64, u64> {
    ASKED.lock().unwrap().push(ids.to_vec());
    // Odd numbers above 100 do not exist in the source.
    ids.iter()
        .filter(|&&id| id < 100 || id % 2 == 0)
        .map(|&id| (id, id * id))
        .collect()
}

#[test]
fn only_missing_keys_reach_the_body_in_one_call() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    squares_cache().clear();
    squares_cache().reset_stats();
    asked();
    let first = squares(&[1, 2, 3]);
    assert_eq!(first, HashMap::from([(1, 1), (2, 4), (3, 9)]));
    let second = squares(&[2, 3, 4, 5, 4]);
    assert_eq!(second, HashMap::from([(2, 4), (3, 9), (4, 16), (5, 25)]));
    assert_eq!(
        asked(),
        vec![vec![1, 2, 3], vec![4, 5]],
        "cached keys and repeats left out"
    );
    assert_eq!(squares(&[1, 5]).len(), 2);
    assert!(asked().is_empty(), "all cached: no call");
    let stats = squares_cache().stats();
    assert_eq!((stats.hits, stats.misses, stats.loads), (4, 5, 5));
    assert_eq!(squares_cache().get(&4), Some(16), "each key is an entry");
}

#[test]
fn keys_left_out_of_the_answer_are_not_stored() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    squares_cache().clear();
    asked();
    assert_eq!(squares(&[101, 102]), HashMap::from([(102, 102 * 102)]));
    assert_eq!(squares(&[101, 102]), HashMap::from([(102, 102 * 102)]));
    assert_eq!(asked(), vec![vec![101, 102], vec![101]], "101 asked again");
    assert_eq!(squares_cache().get(&101), None);
}

static SERIAL: Mutex<()> = Mutex::new(());

static SLOW_CALLS: AtomicUsize = AtomicUsize::new(0);
static SLOW_KEYS: Mutex<Vec<u64>> = Mutex::new(Vec::new());

#[cached(batch)]
fn slow(ids: Vec<u64>) -> Vec<(u64, String)> {
    SLOW_CALLS.fetch_add(1, SeqCst);
    SLOW_KEYS.lock().unwrap().extend(&ids);
    thread::sleep(Duration::from_millis(100));
    ids.into_iter().map(|id| (id, id.to_string())).collect()
}

#[test]
fn concurrent_batches_compute_each_key_once() {
    let start = Arc::new(Barrier::new(4));
    let batches: Vec<Vec<u64>> = vec![vec![1, 2, 3], vec![3, 4], vec![2, 4, 5], vec![1, 5, 6]];
    let threads: Vec<_> = batches
        .into_iter()
        .map(|ids| {
            let start = start.clone();
            thread::spawn(move || {
                start.wait();
                let found = slow(ids.clone());
                (ids, found)
            })
        })
        .collect();
    for thread in threads {
        let (ids, found) = thread.join().unwrap();
        let mut found: Vec<(u64, String)> = found;
        found.sort();
        let expected: Vec<(u64, String)> = ids.iter().map(|&id| (id, id.to_string())).collect();
        let mut expected = expected;
        expected.sort();
        assert_eq!(found, expected, "every key of {ids:?}");
    }
    let mut keys = SLOW_KEYS.lock().unwrap().clone();
    keys.sort();
    assert_eq!(keys, vec![1, 2, 3, 4, 5, 6], "each key computed once");
    assert!(SLOW_CALLS.load(SeqCst) <= 4);
    assert_eq!(slow_cache().stats().loads, 6);
}

#[derive(Debug, Clone, PartialEq)]
struct SourceDown;

static FAILING_CALLS: AtomicUsize = AtomicUsize::new(0);

#[cached(batch)]
fn failing(ids: &[u32]) -> Result<BTreeMap<u32, u32>, SourceDown> {
    if FAILING_CALLS.fetch_add(1, SeqCst) == 0 {
        return Err(SourceDown);
    }
    Ok(ids.iter().map(|&id| (id, id + 1)).collect())
}

#[test]
fn an_error_is_returned_and_nothing_is_stored() {
    assert_eq!(failing(&[1, 2]), Err(SourceDown));
    assert!(failing_cache().is_empty());
    assert_eq!(failing(&[1, 2]), Ok(BTreeMap::from([(1, 2), (2, 3)])));
    assert_eq!(
        failing_cache().stats().load_failures,
        2,
        "both keys failed once"
    );
}

static ASYNC_KEYS: Mutex<Vec<u64>> = Mutex::new(Vec::new());

#[cached(batch)]
async fn lookup(ids: &[u64]) -> HashMap<u64, u64> {
    ASYNC_KEYS.lock().unwrap().extend(ids);
    tokio::time::sleep(Duration::from_millis(50)).await;
    ids.iter().map(|&id| (id, id + 1_000)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn async_batches_share_keys_with_each_other() {
    let calls = [vec![1, 2], vec![2, 3], vec![3, 1], vec![1, 2, 3, 4]]
        .into_iter()
        .map(|ids| tokio::spawn(async move { (lookup(&ids).await, ids) }));
    for call in calls {
        let (found, ids) = call.await.unwrap();
        assert_eq!(found.len(), ids.len(), "{ids:?}: {found:?}");
        assert!(ids.iter().all(|id| found[id] == id + 1_000));
    }
    let mut keys = ASYNC_KEYS.lock().unwrap().clone();
    keys.sort();
    assert_eq!(keys, vec![1, 2, 3, 4], "each key computed once");
}

struct Catalog {
    markup: u64,
    prices: Memo<u64, u64>,
}

impl Catalog {
    #[cached(batch, instance = prices)]
    fn prices(&self, ids: &[u64]) -> HashMap<u64, u64> {
        ids.iter().map(|&id| (id, id * self.markup)).collect()
    }
}

#[test]
fn a_batch_method_keeps_its_cache_in_its_instance() {
    let cheap = Catalog {
        markup: 1,
        prices: Catalog::new_prices_cache(),
    };
    let dear = Catalog {
        markup: 3,
        prices: Catalog::new_prices_cache(),
    };
    assert_eq!(cheap.prices(&[10]), HashMap::from([(10, 10)]));
    assert_eq!(dear.prices(&[10]), HashMap::from([(10, 30)]));
    assert_eq!(cheap.prices.stats().misses, 1);
}

/// What each call of `fragile`'s body was asked for, and whether the next call panics.
static FRAGILE_ASKED: Mutex<Vec<Vec<u64>>> = Mutex::new(Vec::new());
static FRAGILE_PANICS: AtomicUsize = AtomicUsize::new(0);

#[cached(batch)]
fn fragile(ids: &[u64], #[skip] started: &std::sync::mpsc::Sender<()>) -> HashMap<u64, u64> {
    FRAGILE_ASKED.lock().unwrap().push(ids.to_vec());
    let _ = started.send(());
    thread::sleep(Duration::from_millis(100));
    if FRAGILE_PANICS.swap(0, SeqCst) == 1 {
        panic!("the source failed");
    }
    ids.iter().map(|&id| (id, id * 10)).collect()
}

#[test]
fn a_key_whose_batch_panicked_is_computed_by_the_batch_waiting_for_it() {
    FRAGILE_PANICS.store(1, SeqCst);
    let (started, first_started) = std::sync::mpsc::channel();
    let panicking = thread::spawn(move || fragile(&[1, 2], &started));
    first_started.recv().unwrap();
    // 2 is being computed by the call that will panic: this call waits for it, then takes it
    // over with its own key 3, in its one call of the body.
    let (started, _) = std::sync::mpsc::channel();
    assert_eq!(
        fragile(&[2, 3], &started),
        HashMap::from([(2, 20), (3, 30)])
    );
    assert!(panicking.join().is_err());
    assert_eq!(
        std::mem::take(&mut *FRAGILE_ASKED.lock().unwrap()),
        vec![vec![1, 2], vec![2, 3]]
    );
    assert_eq!(
        fragile_cache().get(&1),
        None,
        "nothing of the panicked call stored"
    );
    let stats = fragile_cache().stats();
    assert_eq!((stats.loads, stats.load_failures), (4, 2), "{stats:?}");
}

static ABSENT_ASKED: Mutex<Vec<Vec<u64>>> = Mutex::new(Vec::new());

/// Keys above 100 do not exist in the source.
#[cached(batch)]
fn sparse(ids: &[u64], #[skip] started: &std::sync::mpsc::Sender<()>) -> HashMap<u64, u64> {
    ABSENT_ASKED.lock().unwrap().push(ids.to_vec());
    let _ = started.send(());
    thread::sleep(Duration::from_millis(100));
    ids.iter()
        .filter(|&&id| id <= 100)
        .map(|&id| (id, id))
        .collect()
}

#[test]
fn a_key_another_batch_left_out_is_left_out_without_asking_again() {
    let (started, first_started) = std::sync::mpsc::channel();
    let first = thread::spawn(move || sparse(&[1, 101], &started));
    first_started.recv().unwrap();
    let (started, _) = std::sync::mpsc::channel();
    assert_eq!(sparse(&[101, 2], &started), HashMap::from([(2, 2)]));
    assert_eq!(first.join().unwrap(), HashMap::from([(1, 1)]));
    assert_eq!(
        std::mem::take(&mut *ABSENT_ASKED.lock().unwrap()),
        vec![vec![1, 101], vec![2]],
        "101 asked once, by the call that computed it"
    );
}

static CANCELLED_ASKED: Mutex<Vec<Vec<u64>>> = Mutex::new(Vec::new());

#[cached(batch)]
async fn cancellable(
    ids: &[u64],
    #[skip] started: &tokio::sync::mpsc::UnboundedSender<()>,
) -> HashMap<u64, u64> {
    CANCELLED_ASKED.lock().unwrap().push(ids.to_vec());
    let _ = started.send(());
    tokio::time::sleep(Duration::from_millis(150)).await;
    ids.iter().map(|&id| (id, id + 7)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_whose_batch_was_cancelled_is_computed_by_the_batch_waiting_for_it() {
    let (started, mut first_started) = tokio::sync::mpsc::unbounded_channel();
    let cancelled = tokio::spawn(async move {
        tokio::time::timeout(Duration::from_millis(40), cancellable(&[1, 2], &started)).await
    });
    first_started.recv().await.unwrap();
    let (started, _) = tokio::sync::mpsc::unbounded_channel();
    assert_eq!(
        cancellable(&[2, 3], &started).await,
        HashMap::from([(2, 9), (3, 10)])
    );
    assert!(
        cancelled.await.unwrap().is_err(),
        "the first call timed out"
    );
    assert_eq!(
        std::mem::take(&mut *CANCELLED_ASKED.lock().unwrap()),
        vec![vec![1, 2], vec![2, 3]]
    );
}

#[cached(batch, size = 64)]
fn doubled(ids: &[u64]) -> HashMap<u64, u64> {
    thread::sleep(Duration::from_micros(200));
    ids.iter().map(|&id| (id, id * 2)).collect()
}

#[test]
fn batches_of_overlapping_keys_in_any_order_all_finish_with_every_key() {
    let (done, finished) = std::sync::mpsc::channel();
    let threads: Vec<_> = (0..6u64)
        .map(|t| {
            let done = done.clone();
            thread::spawn(move || {
                let mut rng = t.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
                for round in 0..200 {
                    let ids: Vec<u64> = (0..5)
                        .map(|_| {
                            rng ^= rng << 13;
                            rng ^= rng >> 7;
                            rng ^= rng << 17;
                            rng % 12
                        })
                        .collect();
                    let found = doubled(&ids);
                    assert!(
                        ids.iter().all(|id| found[id] == id * 2),
                        "{ids:?}: {found:?}"
                    );
                    if round % 20 == t {
                        doubled_cache().clear();
                    }
                }
                done.send(()).unwrap();
            })
        })
        .collect();
    for _ in 0..threads.len() {
        finished
            .recv_timeout(Duration::from_secs(60))
            .expect("a batch waited in a circle");
    }
    for thread in threads {
        thread.join().unwrap();
    }
}

#[cached(batch, size = 100)]
async fn awaits_its_own_key(ids: Vec<u64>) -> HashMap<u64, u64> {
    if ids.contains(&1) {
        tokio::task::yield_now().await;
        return Box::pin(awaits_its_own_key(vec![1])).await;
    }
    ids.iter().map(|&id| (id, id)).collect()
}

/// An async batch whose body awaits its own function for one of its keys would wait for
/// itself: it panics with a message instead, as the sync form and single-key functions do.
#[tokio::test]
async fn an_async_batch_awaiting_its_own_key_panics_instead_of_hanging() {
    let task = tokio::spawn(awaits_its_own_key(vec![1, 2]));
    let outcome = tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("the batch waits for itself");
    let panic = outcome.unwrap_err().into_panic();
    let message = panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_default();
    assert!(message.contains("called itself"), "{message}");
    // Nothing is left stuck: the keys compute again.
    assert_eq!(awaits_its_own_key(vec![2, 3]).await.len(), 2);
}
