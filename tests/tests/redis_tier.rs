//! The shared tier against a real `redis-server` (started by each test on a free port; skipped
//! loudly without one unless `MEMOKIT_REQUIRE_REDIS=1`). The connection is process-wide, so the
//! tests of this file run one at a time; the two-process tests run this binary again as a
//! child with a role.

use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use memokit::cached;
use memokit::redis::{connect_with, Config};
use memokit_tests::{entries, role, wait_until, ChildTest, RedisServer};
use redis::Commands;

static SERIAL: Mutex<()> = Mutex::new(());

/// The test's server, connected as the process's tier with `prefix`; `None`: skipped.
fn setup(prefix: &str) -> Option<(MutexGuard<'static, ()>, RedisServer)> {
    let guard = SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let server = RedisServer::start()?;
    connect_with(Config::new(server.url()).prefix(prefix)).expect("a valid URL");
    Some((guard, server))
}

static PLAIN_RUNS: AtomicU64 = AtomicU64::new(0);

static SUPERSEDED_RUNS: AtomicU64 = AtomicU64::new(0);
static SUPERSEDED_GATE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Computes `n * 10` once `SUPERSEDED_GATE` opens.
#[cached(size = 100, redis(ttl = "10m"), name = "t::superseded")]
fn superseded(n: u32) -> u32 {
    SUPERSEDED_RUNS.fetch_add(1, SeqCst);
    while !SUPERSEDED_GATE.load(SeqCst) {
        thread::sleep(Duration::from_millis(1));
    }
    n * 10
}

#[test]
fn a_computation_superseded_while_running_is_not_written_to_redis() {
    let Some((_serial, server)) = setup("stale") else {
        return;
    };
    let one = thread::spawn(|| superseded(1));
    let two = thread::spawn(|| superseded(2));
    wait_until("both computations run", Duration::from_secs(5), || {
        SUPERSEDED_RUNS.load(SeqCst) == 2
    });
    // Written while the computations run: their results predate these writes.
    superseded_cache().invalidate(&1);
    superseded_cache().insert(2, 99);
    SUPERSEDED_GATE.store(true, SeqCst);
    assert_eq!(one.join().unwrap(), 10, "the caller still gets its value");
    assert_eq!(two.join().unwrap(), 20);
    let mut conn = server.connection();
    assert!(
        !conn
            .exists::<_, bool>("stale:{t::superseded:0:01}")
            .unwrap(),
        "the result of a computation superseded by `invalidate` is not written"
    );
    // In neither tier: the next call computes again; the inserted value is what Redis has.
    superseded_cache().cache().clear();
    assert_eq!(
        superseded(2),
        99,
        "`insert` is not overwritten by an older result"
    );
    assert_eq!(SUPERSEDED_RUNS.load(SeqCst), 2);
    assert_eq!(superseded(1), 10);
    assert_eq!(SUPERSEDED_RUNS.load(SeqCst), 3);
    assert!(conn
        .exists::<_, bool>("stale:{t::superseded:0:01}")
        .unwrap());
}

#[cached(size = 100, redis(ttl = "10m"), name = "t::plain")]
fn plain(n: u32) -> String {
    PLAIN_RUNS.fetch_add(1, SeqCst);
    format!("value {n}")
}

#[test]
fn a_redis_hit_fills_the_process_and_skips_the_computation() {
    let Some((_serial, server)) = setup("basic") else {
        return;
    };
    assert_eq!(plain(1), "value 1");
    assert_eq!(PLAIN_RUNS.load(SeqCst), 1);
    // The entry is in Redis under prefix:function:generation:hexkey, with the Redis TTL.
    let mut conn = server.connection();
    let ttl: i64 = conn.pttl("basic:{t::plain:0:01}").unwrap();
    assert!(ttl > 590_000 && ttl <= 600_000, "PTTL {ttl}");
    // Only the in-process tier is emptied: the next call is a Redis hit.
    plain_cache().cache().clear();
    assert_eq!(plain(1), "value 1");
    assert_eq!(PLAIN_RUNS.load(SeqCst), 1);
    assert_eq!(
        plain_cache().len(),
        1,
        "a Redis hit fills the in-process tier"
    );
    // And then a local hit: Redis is not asked.
    assert_eq!(plain(1), "value 1");
    let stats = plain_cache().stats();
    assert_eq!((stats.l2_hits, stats.l2_misses, stats.l2_errors), (1, 1, 0));
    assert_eq!((stats.hits, stats.misses), (1, 2));
    assert!(
        stats
            .to_string()
            .ends_with("l2_hits=1 l2_misses=1 l2_errors=0"),
        "{stats}"
    );
}

static FAILING_RUNS: AtomicU64 = AtomicU64::new(0);

#[cached(redis, name = "t::failing")]
fn failing(n: u32) -> Result<u32, String> {
    FAILING_RUNS.fetch_add(1, SeqCst);
    if n == 0 {
        Err("zero".into())
    } else {
        Ok(n)
    }
}

#[cached(redis, cache_none = false, name = "t::maybe")]
fn maybe(n: u32) -> Option<u32> {
    (n > 0).then_some(n)
}

#[test]
fn what_the_process_would_not_store_is_not_written() {
    let Some((_serial, server)) = setup("rules") else {
        return;
    };
    let mut conn = server.connection();
    assert_eq!(failing(0), Err("zero".into()));
    assert_eq!(failing(7), Ok(7));
    assert!(!conn.exists::<_, bool>("rules:{t::failing:0:00}").unwrap());
    assert!(conn.exists::<_, bool>("rules:{t::failing:0:07}").unwrap());
    // `redis` alone: one hour without a local ttl.
    let ttl: i64 = conn.pttl("rules:{t::failing:0:07}").unwrap();
    assert!(ttl > 3_590_000, "PTTL {ttl}");
    assert_eq!(maybe(0), None);
    assert_eq!(maybe(3), Some(3));
    assert!(!conn.exists::<_, bool>("rules:{t::maybe:0:00}").unwrap());
    assert!(conn.exists::<_, bool>("rules:{t::maybe:0:03}").unwrap());
    // The error is computed again, even in another "process" (local tier emptied).
    failing_cache().cache().clear();
    assert_eq!(failing(0), Err("zero".into()));
    assert_eq!(FAILING_RUNS.load(SeqCst), 3);
}

#[cached(redis, name = "t::left")]
fn left(n: u32) -> String {
    format!("left {n}")
}

#[cached(redis, name = "t::right")]
fn right(n: u32) -> String {
    format!("right {n}")
}

#[cached(redis, name = "t::pair")]
fn pair(a: u32, b: u32) -> String {
    format!("{a}-{b}")
}

static PREFIXED_RUNS: AtomicU64 = AtomicU64::new(0);

#[cached(redis, name = "t::prefixed")]
fn prefixed(n: u32) -> u32 {
    PREFIXED_RUNS.fetch_add(1, SeqCst);
    n
}

#[test]
fn functions_prefixes_and_arguments_never_share_an_entry() {
    let Some((_serial, server)) = setup("app1") else {
        return;
    };
    assert_eq!(left(1), "left 1");
    assert_eq!(right(1), "right 1");
    assert_eq!(pair(1, 2), "1-2");
    assert_eq!(pair(2, 1), "2-1");
    for clear in [left_cache().cache(), right_cache().cache()] {
        clear.clear();
    }
    pair_cache().cache().clear();
    // From Redis now: each its own.
    assert_eq!(left(1), "left 1");
    assert_eq!(right(1), "right 1");
    assert_eq!(pair(1, 2), "1-2");
    assert_eq!(pair(2, 1), "2-1");
    assert_eq!(left_cache().stats().l2_hits, 1);
    assert_eq!(pair_cache().stats().l2_hits, 2);

    // Another application (prefix) on the same server shares nothing.
    assert_eq!(prefixed(5), 5);
    connect_with(Config::new(server.url()).prefix("app2")).unwrap();
    prefixed_cache().cache().clear();
    assert_eq!(prefixed(5), 5);
    assert_eq!(
        PREFIXED_RUNS.load(SeqCst),
        2,
        "app2 does not see app1's entry"
    );
    connect_with(Config::new(server.url()).prefix("app1")).unwrap();
    prefixed_cache().cache().clear();
    assert_eq!(prefixed(5), 5);
    assert_eq!(PREFIXED_RUNS.load(SeqCst), 2, "app1 still has its own");
    let mut conn = server.connection();
    assert!(conn.exists::<_, bool>("app1:{t::prefixed:0:05}").unwrap());
    assert!(conn.exists::<_, bool>("app2:{t::prefixed:0:05}").unwrap());
}

static DECODED_RUNS: AtomicU64 = AtomicU64::new(0);

#[cached(redis, name = "t::decoded")]
fn decoded(n: u32) -> (u64, String) {
    DECODED_RUNS.fetch_add(1, SeqCst);
    (u64::from(n), "fresh".into())
}

#[test]
fn a_value_that_does_not_decode_is_a_counted_miss_and_is_overwritten() {
    let Some((_serial, server)) = setup("decode") else {
        return;
    };
    let mut conn = server.connection();
    let garbage: [&[u8]; 4] = [
        b"garbage",
        &[],
        &[0, 1, 2, 3, 4, 5],             // format version 0
        &[2, 0, 0, 0, 0, 0, 1, 1, 0x61], // the current version, another type's fingerprint
    ];
    for (n, bytes) in (1_u32..).zip(garbage) {
        let entry = format!("decode:{{t::decoded:0:{n:02x}}}");
        let () = conn.set(&entry, bytes).unwrap();
        assert_eq!(decoded(n), (u64::from(n), "fresh".to_string()));
        let stored: Vec<u8> = conn.get(&entry).unwrap();
        assert_eq!(stored[0], 2, "overwritten with the current format");
        decoded_cache().cache().clear();
        assert_eq!(decoded(n), (u64::from(n), "fresh".to_string()));
    }
    assert_eq!(
        DECODED_RUNS.load(SeqCst),
        4,
        "computed once per key, then read"
    );
    let stats = decoded_cache().stats();
    assert_eq!(
        (stats.l2_decode_errors, stats.l2_hits, stats.l2_misses),
        (4, 4, 4)
    );
    assert!(stats.to_string().ends_with("l2_decode_errors=4"), "{stats}");
}

static GENERATION_RUNS: AtomicU64 = AtomicU64::new(0);

#[cached(redis(ttl = "1m"), name = "t::generation")]
fn generation(n: u32) -> u32 {
    GENERATION_RUNS.fetch_add(1, SeqCst);
    n * 10
}

#[test]
fn clear_is_a_new_generation_and_old_entries_age_out() {
    let Some((_serial, server)) = setup("gen") else {
        return;
    };
    let mut conn = server.connection();
    assert_eq!(generation(1), 10);
    assert_eq!(generation(2), 20);
    generation_cache().clear();
    assert_eq!(conn.get::<_, u64>("gen:t::generation:gen").unwrap(), 1);
    assert!(generation_cache().is_empty());
    assert_eq!(generation(1), 10);
    assert_eq!(GENERATION_RUNS.load(SeqCst), 3, "generation 1 starts empty");
    // The old entries are left to their TTL, not scanned.
    let old: i64 = conn.pttl("gen:{t::generation:0:02}").unwrap();
    assert!(old > 0 && old <= 60_000, "PTTL {old}");
    assert!(conn.exists::<_, bool>("gen:{t::generation:1:01}").unwrap());
    // invalidate deletes the entry of the current generation.
    assert!(generation_cache().invalidate(&1));
    assert!(!conn.exists::<_, bool>("gen:{t::generation:1:01}").unwrap());
    // insert writes it.
    generation_cache().insert(3, 333);
    assert_eq!(
        conn.get::<_, Vec<u8>>("gen:{t::generation:1:03}").unwrap()[0],
        2
    );
    generation_cache().cache().clear();
    assert_eq!(generation(3), 333);
}

static LEASED_RUNS: AtomicU64 = AtomicU64::new(0);

#[cached(redis(lease = "1s"), name = "t::leased")]
fn leased(n: u32) -> u32 {
    LEASED_RUNS.fetch_add(1, SeqCst);
    n + 1
}

#[test]
fn a_crashed_holder_only_delays_the_others_until_its_lease_expires() {
    let Some((_serial, server)) = setup("lease") else {
        return;
    };
    let mut conn = server.connection();
    // A "process" took the lease of key 1 and died: nobody releases it.
    let taken: Option<String> = redis::cmd("SET")
        .arg("lease:{t::leased:0:01}:lease")
        .arg("crashed-holder")
        .arg("NX")
        .arg("PX")
        .arg(1_000)
        .query(&mut conn)
        .unwrap();
    assert!(taken.is_some());
    let started = Instant::now();
    assert_eq!(leased(1), 2);
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(3),
        "waited {waited:?}"
    );
    assert_eq!(LEASED_RUNS.load(SeqCst), 1);
    // Our own lease is released (token-checked) and the value is in Redis.
    wait_until("lease released", Duration::from_secs(2), || {
        !conn
            .exists::<_, bool>("lease:{t::leased:0:01}:lease")
            .unwrap()
    });
    assert!(conn.exists::<_, bool>("lease:{t::leased:0:01}").unwrap());
    eprintln!("lease expiry: waited {waited:?} for a 1 s lease of a crashed holder");
}

/// The lease token this process holds while `orphaned` computes, read from Redis.
static SEEN_TOKEN: Mutex<Option<String>> = Mutex::new(None);
static ORPHANED_URL: OnceLock<String> = OnceLock::new();
static ORPHANED_RUNS: AtomicU64 = AtomicU64::new(0);

#[cached(redis(lease = "5s"), name = "t::orphaned")]
fn orphaned(n: u32) -> u32 {
    ORPHANED_RUNS.fetch_add(1, SeqCst);
    let url = ORPHANED_URL.get().expect("set by the test");
    let mut conn = redis::Client::open(url.as_str())
        .unwrap()
        .get_connection()
        .unwrap();
    let lease = format!("orphan:{{t::orphaned:0:{n:02x}}}:lease");
    *SEEN_TOKEN.lock().unwrap() = conn.get(lease).unwrap();
    n + 1
}

#[test]
fn a_lease_this_process_left_behind_does_not_make_it_wait() {
    let Some((_serial, server)) = setup("orphan") else {
        return;
    };
    ORPHANED_URL.set(server.url()).unwrap();
    assert_eq!(orphaned(1), 2);
    let token = SEEN_TOKEN
        .lock()
        .unwrap()
        .take()
        .expect("the leader held a lease");
    // What an outage leaves: a release that never arrived, or a take that timed out in the
    // client while Redis ran it. Either way the lease names this process, and no computation.
    let (process, _) = token.rsplit_once(':').expect("token is process:counter");
    let mut conn = server.connection();
    let () = redis::cmd("SET")
        .arg("orphan:{t::orphaned:0:02}:lease")
        .arg(format!("{process}:ffff"))
        .arg("PX")
        .arg(5_000)
        .query(&mut conn)
        .unwrap();
    let started = Instant::now();
    assert_eq!(orphaned(2), 3);
    let waited = started.elapsed();
    assert!(
        waited < Duration::from_secs(2),
        "waited {waited:?} for its own orphan"
    );
    assert_eq!(ORPHANED_RUNS.load(SeqCst), 2);
    // It took the lease over: the token seen during the computation is a new one of ours.
    let during = SEEN_TOKEN
        .lock()
        .unwrap()
        .take()
        .expect("the leader held a lease");
    assert!(during.starts_with(process) && during != format!("{process}:ffff"));
    eprintln!("orphaned lease of this process: waited {waited:?} (lease 5 s)");
}

static LONG_URL: OnceLock<String> = OnceLock::new();

/// Watches `lease` for `for_how_long` as another process would: returns whether it could have
/// taken it (the lease was gone) at any moment, and the holder's token.
fn lease_ever_free(lease: &str, for_how_long: Duration) -> (bool, Option<String>) {
    let url = LONG_URL.get().expect("set by the test");
    let mut conn = redis::Client::open(url.as_str())
        .unwrap()
        .get_connection()
        .unwrap();
    let started = Instant::now();
    let mut holder = None;
    while started.elapsed() < for_how_long {
        let token: Option<String> = conn.get(lease).unwrap();
        match token {
            None => return (true, holder),
            Some(token) => holder = Some(token),
        }
        thread::sleep(Duration::from_millis(10));
    }
    (false, holder)
}

/// Computes for four times its 300 ms lease, watching the lease meanwhile.
#[cached(redis(lease = "300ms"), name = "t::long")]
fn long_computation(n: u32) -> (bool, Option<String>) {
    lease_ever_free(
        &format!("keepalive:{{t::long:0:{n:02x}}}:lease"),
        Duration::from_millis(1_200),
    )
}

#[cached(redis(lease = "300ms"), name = "t::long_async")]
async fn long_async_computation(n: u32) -> (bool, Option<String>) {
    let lease = format!("keepalive:{{t::long_async:0:{n:02x}}}:lease");
    tokio::task::spawn_blocking(move || lease_ever_free(&lease, Duration::from_millis(1_200)))
        .await
        .unwrap()
}

#[test]
fn a_computation_longer_than_its_lease_keeps_it_until_it_ends() {
    let Some((_serial, server)) = setup("keepalive") else {
        return;
    };
    LONG_URL.set(server.url()).unwrap();
    let (free, holder) = long_computation(1);
    assert!(holder.is_some(), "the computation held the lease");
    assert!(!free, "the lease of a sync computation lapsed while it ran");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (free, holder) = runtime.block_on(long_async_computation(1));
    assert!(holder.is_some(), "the computation held the lease");
    assert!(
        !free,
        "the lease of an async computation lapsed while it ran"
    );
    // Released at the end, and not extended after.
    let mut conn = server.connection();
    for lease in [
        "keepalive:{t::long:0:01}:lease",
        "keepalive:{t::long_async:0:01}:lease",
    ] {
        wait_until("lease released", Duration::from_secs(2), || {
            !conn.exists::<_, bool>(lease).unwrap()
        });
    }
    thread::sleep(Duration::from_millis(400));
    assert!(!conn
        .exists::<_, bool>("keepalive:{t::long:0:01}:lease")
        .unwrap());
}

#[cached(redis, name = "t::async")]
async fn fetch(n: u32) -> Result<String, String> {
    tokio::task::yield_now().await;
    Ok(format!("async {n}"))
}

#[test]
fn async_functions_use_the_tier_on_any_runtime() {
    let Some((_serial, server)) = setup("async") else {
        return;
    };
    // A runtime without the time driver: the tier needs nothing of the caller's runtime.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    runtime.block_on(async {
        assert_eq!(fetch(1).await.unwrap(), "async 1");
        fetch_cache().cache().clear();
        assert_eq!(fetch(1).await.unwrap(), "async 1");
    });
    let stats = fetch_cache().stats();
    assert_eq!((stats.l2_hits, stats.l2_misses), (1, 1));
    let mut conn = server.connection();
    assert!(conn.exists::<_, bool>("async:{t::async:0:01}").unwrap());
}

// ---- Two processes -------------------------------------------------------------------------

/// Counts computations across processes, in Redis itself.
#[cached(redis(lease = "5s"), name = "t::shared_slow")]
fn shared_slow(n: u32) -> u64 {
    let url = std::env::var("MEMOKIT_TEST_URL").expect("set by the parent");
    let mut conn = redis::Client::open(url).unwrap().get_connection().unwrap();
    let () = conn.incr("computations", 1).unwrap();
    thread::sleep(Duration::from_millis(300));
    u64::from(n) * 1000
}

#[test]
fn child_role() {
    let Some(role) = role() else { return };
    let url = std::env::var("MEMOKIT_TEST_URL").expect("set by the parent");
    connect_with(Config::new(url).prefix("two")).unwrap();
    wait_until(
        "subscribed",
        Duration::from_secs(5),
        memokit::redis::is_subscribed,
    );
    match role.as_str() {
        "compute" => {
            println!("READY");
            let start = std::env::var("MEMOKIT_TEST_START_MS").unwrap();
            sleep_until_ms(start.parse().unwrap());
            println!("VALUE {}", shared_slow(7));
        }
        "listen" => {
            assert_eq!(plain(9), "value 9");
            println!("READY");
            // The parent replaces the value.
            let took = wait_until("remote insert", Duration::from_secs(5), || {
                plain_cache().get(&9).as_deref() == Some("replaced")
            });
            println!("INSERTED {}", took.as_micros());
            // Then invalidates it.
            let took = wait_until("remote invalidate", Duration::from_secs(5), || {
                plain_cache().get(&9).is_none()
            });
            println!("INVALIDATED {}", took.as_micros());
            // Then clears the function.
            assert_eq!(plain(10), "value 10");
            println!("FILLED");
            let took = wait_until("remote clear", Duration::from_secs(5), || {
                plain_cache().is_empty()
            });
            println!("CLEARED {}", took.as_micros());
        }
        "race_reader" => {
            println!("READY");
            for key in 0..RACE_KEYS {
                race_row(key);
            }
            println!("DONE");
        }
        "race_reader_batch" => {
            println!("READY");
            for key in 0..RACE_KEYS {
                race_rows(&[key]);
            }
            println!("DONE");
        }
        "flushed_reader" => {
            assert_eq!(flushed(1), 1);
            println!("READY");
            // The parent, still on the generation of before the flush, writes the source and
            // invalidates the key.
            wait_until("the parent's invalidation", Duration::from_secs(10), || {
                flushed(1) == 2
            });
            println!("FRESH");
        }
        other => panic!("unknown role {other}"),
    }
}

// ---- A generation counter lost in Redis (FLUSHALL, an eviction) ---------------------------

/// Reads its source, the key `source` of the test's server (shared by both processes).
#[cached(ttl = "10m", redis, name = "t::flushed")]
fn flushed(id: u64) -> u64 {
    let _ = id;
    let url = std::env::var("MEMOKIT_TEST_URL").expect("set for both processes");
    let mut conn = redis::Client::open(url).unwrap().get_connection().unwrap();
    conn.get::<_, Option<u64>>("source").unwrap().unwrap_or(1)
}

/// After `FLUSHALL` took the generation counter, a `clear` starts a generation this process
/// has not used (the counter alone would give back one already used, whose entries survived
/// the clear), and a process that read the counter after the flush and one that did not
/// converge on the first write either announces (each kept reading its own entries, and the
/// older one never saw the newer one's invalidation).
#[test]
fn a_generation_counter_lost_in_redis_neither_undoes_a_clear_nor_splits_processes() {
    if role().is_some() {
        return;
    }
    let Some((_serial, server)) = setup("two") else {
        return;
    };
    std::env::set_var("MEMOKIT_TEST_URL", server.url());
    let mut raw = server.connection();
    let _: () = raw.set("source", 1).unwrap();
    assert_eq!(flushed(1), 1);
    flushed_cache().clear();
    flushed_cache().clear();
    let _: () = redis::cmd("FLUSHALL").query(&mut raw).unwrap();
    let _: () = raw.set("source", 1).unwrap();
    assert_eq!(flushed(1), 1);
    let _: () = raw.set("source", 2).unwrap();
    flushed_cache().clear();
    assert_eq!(flushed(1), 2, "the clear after the flush took effect");

    // A second process starts after another flush: it reads no counter (generation 0).
    let _: () = redis::cmd("FLUSHALL").query(&mut raw).unwrap();
    let _: () = raw.set("source", 1).unwrap();
    flushed_cache().invalidate(&1);
    assert_eq!(flushed(1), 1);
    let child = ChildTest::spawn(
        "child_role",
        "flushed_reader",
        &[("MEMOKIT_TEST_URL", server.url())],
    );
    child.expect_line("READY", Duration::from_secs(30));
    let _: () = raw.set("source", 2).unwrap();
    flushed_cache().invalidate(&1);
    child.expect_line("FRESH", Duration::from_secs(15));
    child.success();
    assert_eq!(flushed(1), 2);
}

// ---- A write in one process against a computation running in another ----------------------

const RACE_KEYS: u64 = 300;

/// The source of `race_row`: one file per key in the folder `MEMOKIT_TEST_DB`.
fn race_source(key: u64) -> std::path::PathBuf {
    let folder = std::env::var("MEMOKIT_TEST_DB").expect("set by the parent");
    std::path::Path::new(&folder).join(key.to_string())
}

fn read_race_source(key: u64) -> u64 {
    std::fs::read_to_string(race_source(key)).map_or(0, |text| text.parse().unwrap())
}

/// Reads its source, says it has, and takes a moment before it returns what it read.
#[cached(ttl = "10m", redis, name = "t::race_row")]
fn race_row(key: u64) -> u64 {
    let value = read_race_source(key);
    std::fs::write(race_source(key).with_extension("started"), "").unwrap();
    thread::sleep(Duration::from_millis(2));
    value
}

/// `race_row` as a batch function.
#[cached(batch, ttl = "10m", redis, name = "t::race_rows")]
fn race_rows(keys: &[u64]) -> std::collections::HashMap<u64, u64> {
    let values = keys
        .iter()
        .map(|&key| (key, read_race_source(key)))
        .collect();
    for &key in keys {
        std::fs::write(race_source(key).with_extension("started"), "").unwrap();
    }
    thread::sleep(Duration::from_millis(2));
    values
}

/// One process computes each key while another writes its source and invalidates it, at
/// scattered moments around the computation; afterwards Redis holds no value older than the
/// source. Without the lease revoked by the write, a computation that read the old source
/// stored its value after the invalidation (1 to 20 keys of 300 in every run).
#[test]
fn an_invalidation_is_not_undone_by_a_computation_running_in_another_process() {
    invalidations_race_computations_in_another_process(
        "race_reader",
        |key| {
            race_row_cache().invalidate(&key);
        },
        race_row,
    );
}

/// The same for a batch function, whose batches take the leases of the keys they compute (27 to
/// 39 keys of 300 kept the older value in three runs when they took none).
#[test]
fn an_invalidation_is_not_undone_by_a_batch_running_in_another_process() {
    invalidations_race_computations_in_another_process(
        "race_reader_batch",
        |key| {
            race_rows_cache().invalidate(&key);
        },
        |key| race_rows(&[key])[&key],
    );
}

/// A child in `role_name` computes every key once; this process writes each key's source and
/// invalidates the key as each computation starts, then `read`s every key.
fn invalidations_race_computations_in_another_process(
    role_name: &str,
    invalidate: impl Fn(u64),
    read: impl Fn(u64) -> u64,
) {
    if role().is_some() {
        return;
    }
    let Some((_serial, server)) = setup("two") else {
        return;
    };
    let folder = memokit_tests::run_folder("memokit-race-").join(role_name);
    let _ = std::fs::remove_dir_all(&folder);
    std::fs::create_dir_all(&folder).unwrap();
    std::env::set_var("MEMOKIT_TEST_DB", &folder);
    let env = [
        ("MEMOKIT_TEST_URL", server.url()),
        ("MEMOKIT_TEST_DB", folder.display().to_string()),
    ];
    let reader = ChildTest::spawn("child_role", role_name, &env);
    reader.expect_line("READY", Duration::from_secs(30));
    for key in 0..RACE_KEYS {
        let started = race_source(key).with_extension("started");
        wait_until("the computation started", Duration::from_secs(10), || {
            started.exists()
        });
        thread::sleep(Duration::from_micros(key * 7919 % 2500));
        std::fs::write(race_source(key), "1").unwrap();
        invalidate(key);
    }
    reader.expect_line("DONE", Duration::from_secs(30));
    reader.success();
    // This process has nothing of its own: each call reads Redis, or computes.
    let stale: Vec<u64> = (0..RACE_KEYS).filter(|&key| read(key) != 1).collect();
    assert!(stale.is_empty(), "older values in Redis: {stale:?}");
}

fn now_ms() -> u64 {
    u64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap()
}

fn sleep_until_ms(at: u64) {
    let now = now_ms();
    if at > now {
        thread::sleep(Duration::from_millis(at - now));
    }
}

#[test]
fn two_processes_compute_a_key_once() {
    if role().is_some() {
        return;
    }
    let Some((_serial, server)) = setup("two") else {
        return;
    };
    let start = now_ms() + 1_500;
    let env = [
        ("MEMOKIT_TEST_URL", server.url()),
        ("MEMOKIT_TEST_START_MS", start.to_string()),
    ];
    let children: Vec<ChildTest> = (0..2)
        .map(|_| ChildTest::spawn("child_role", "compute", &env))
        .collect();
    for child in &children {
        child.expect_line("READY", Duration::from_secs(30));
    }
    std::env::set_var("MEMOKIT_TEST_URL", server.url());
    sleep_until_ms(start);
    // This process takes part too: three callers, one computation.
    assert_eq!(shared_slow(7), 7000);
    for child in &children {
        assert_eq!(child.expect_line("VALUE", Duration::from_secs(10)), "7000");
    }
    for child in children {
        child.success();
    }
    let mut conn = server.connection();
    assert_eq!(conn.get::<_, u64>("computations").unwrap(), 1);
}

#[test]
fn writes_through_a_handle_reach_the_other_process() {
    if role().is_some() {
        return;
    }
    let Some((_serial, server)) = setup("two") else {
        return;
    };
    let env = [("MEMOKIT_TEST_URL", server.url())];
    let child = ChildTest::spawn("child_role", "listen", &env);
    child.expect_line("READY", Duration::from_secs(30));
    plain_cache().insert(9, "replaced".into());
    let inserted: u128 = child
        .expect_line("INSERTED", Duration::from_secs(10))
        .parse()
        .unwrap();
    plain_cache().invalidate(&9);
    let invalidated: u128 = child
        .expect_line("INVALIDATED", Duration::from_secs(10))
        .parse()
        .unwrap();
    child.expect_line("FILLED", Duration::from_secs(10));
    plain_cache().clear();
    let cleared: u128 = child
        .expect_line("CLEARED", Duration::from_secs(10))
        .parse()
        .unwrap();
    child.success();
    eprintln!(
        "cross-process: insert seen after {inserted} µs, invalidate {invalidated} µs, clear {cleared} µs \
         (each measured from when the child was ready for it)"
    );
}

// ---- Connecting from the environment ------------------------------------------------------

#[cached(redis, name = "t::from_env")]
fn from_env(n: u32) -> String {
    format!("env {n}")
}

/// Runs in a child process that never calls `connect`: `MEMOKIT_REDIS_URL` alone must turn the
/// shared tier on at the first use.
#[test]
fn env_child_role() {
    let Some(role) = role() else { return };
    assert_eq!(role, "from_env");
    assert_eq!(from_env(3), "env 3");
    let stats = from_env_cache().stats();
    println!("L2 {} {}", stats.l2_misses, stats.l2_errors);
}

#[test]
fn memokit_redis_url_connects_without_a_call() {
    if role().is_some() {
        return;
    }
    let Some((_serial, server)) = setup("env") else {
        return;
    };
    let env = [("MEMOKIT_REDIS_URL", server.url())];
    let child = ChildTest::spawn("env_child_role", "from_env", &env);
    // One L2 miss (then a write), no error: the tier was on without any `connect` call.
    assert_eq!(child.expect_line("L2", Duration::from_secs(10)), "1 0");
    child.success();
    let mut conn = server.connection();
    let keys = entries(conn.keys("memokit:{t::from_env:*").unwrap());
    assert!(
        !keys.is_empty(),
        "the child's value was not written to Redis"
    );
}

// ---- Batches -------------------------------------------------------------------------------

static BATCH_ASKED: std::sync::Mutex<Vec<Vec<u32>>> = std::sync::Mutex::new(Vec::new());

#[cached(batch, size = 100, redis(ttl = "10m"), name = "t::batch")]
fn batch_squares(ids: &[u32]) -> std::collections::HashMap<u32, u32> {
    BATCH_ASKED.lock().unwrap().push(ids.to_vec());
    ids.iter().map(|&id| (id, id * id)).collect()
}

#[cached(batch, size = 100, redis(ttl = "10m"), name = "t::batch_async")]
async fn batch_cubes(ids: Vec<u32>) -> Vec<(u32, u32)> {
    BATCH_ASKED.lock().unwrap().push(ids.clone());
    ids.into_iter().map(|id| (id, id * id * id)).collect()
}

/// A batch reads its missing keys from Redis in one round trip, and stores what it computed.
#[test]
fn a_batch_reads_and_fills_redis() {
    let Some((_serial, server)) = setup("batch") else {
        return;
    };
    assert_eq!(batch_squares(&[1, 2, 3]).len(), 3);
    assert_eq!(
        std::mem::take(&mut *BATCH_ASKED.lock().unwrap()),
        vec![vec![1, 2, 3]]
    );
    let mut conn = server.connection();
    let stored = entries(conn.keys("batch:{t::batch:0:*").unwrap());
    assert_eq!(stored.len(), 3, "each computed value is in Redis");
    // Another process (here: the in-process tier emptied) finds them there.
    batch_squares_cache().cache().clear();
    let found = batch_squares(&[1, 2, 3, 4]);
    assert_eq!(found[&2], 4);
    assert_eq!(found[&4], 16);
    assert_eq!(
        std::mem::take(&mut *BATCH_ASKED.lock().unwrap()),
        vec![vec![4]],
        "only the key Redis did not hold was computed"
    );
    let stats = batch_squares_cache().stats();
    assert_eq!((stats.l2_hits, stats.l2_misses, stats.l2_errors), (3, 4, 0));

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        assert_eq!(batch_cubes(vec![2, 3]).await.len(), 2);
        batch_cubes_cache().cache().clear();
        let mut again = batch_cubes(vec![2, 3, 5]).await;
        again.sort();
        assert_eq!(again, vec![(2, 8), (3, 27), (5, 125)]);
    });
    assert_eq!(
        std::mem::take(&mut *BATCH_ASKED.lock().unwrap()),
        vec![vec![2, 3], vec![5]]
    );
}
