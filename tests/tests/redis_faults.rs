//! The shared tier under faults of the network and of Redis's data, against real servers that
//! each test starts (and stops) itself, some behind an in-test TCP proxy that can cut every
//! connection (a partition) and heal: writes made during a partition are not lost, a process
//! that lost its subscription does not serve stale copies, one bad key stays one bad key, two
//! functions of one name do not share entries, and a value stored just before the lease is
//! taken is not computed again. Tests run one at a time
//! (the connection is process-wide); the two-process tests run this binary again as a child
//! with a role.

use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::{Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use memokit::cached;
use memokit::redis::{connect_with, Config};
use memokit_tests::{entries, role, wait_until, ChildTest, Proxy, RedisServer};
use redis::Commands;

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// In the test's own process (not a child it spawned): the lock that runs these tests one at a
/// time, and a Redis server of its own; `None` in a child, or when Redis is skipped.
fn parent_with_server() -> Option<(MutexGuard<'static, ()>, RedisServer)> {
    if role().is_some() {
        return None;
    }
    let serial = serial();
    Some((serial, RedisServer::start()?))
}

// ---- No lost writes ------------------------------------------------------------------------

/// The source of `versioned`: what it returns depends on it, as a database row would.
static VERSION: AtomicU64 = AtomicU64::new(1);

fn source(k: u32) -> u64 {
    VERSION.load(SeqCst) * 1_000_000 + u64::from(k)
}

#[cached(size = 1_000, redis(ttl = "10m"), name = "faults::versioned")]
fn versioned(k: u32) -> u64 {
    source(k)
}

#[cached(size = 1_000, redis(ttl = "10m"), name = "faults::cleared")]
fn cleared(k: u32) -> u64 {
    source(k)
}

const KEYS: u32 = 200;

/// Reads every key through the shared tier of a process that made none of the writes (no
/// in-process copies, Redis reached without the proxy) and prints how many were stale.
#[test]
fn reader_role() {
    if role().as_deref() != Some("reader") {
        return;
    }
    let url = std::env::var("MEMOKIT_TEST_URL").expect("set by the parent");
    connect_with(Config::new(url).prefix("partition")).unwrap();
    // The source as the writer changed it: a stale value is one Redis kept from before.
    VERSION.store(2, SeqCst);
    let stale = (0..KEYS)
        .filter(|&k| versioned(k) != source(k))
        .chain((0..KEYS).filter(|&k| cleared(k) != source(k)))
        .count();
    let stats = versioned_cache().stats();
    println!("STALE {stale} L2_HITS {}", stats.l2_hits);
}

#[test]
fn writes_during_a_partition_reach_redis_before_anyone_reads_it() {
    let Some((_serial, server)) = parent_with_server() else {
        return;
    };
    let proxy = Proxy::start(&server);
    connect_with(
        Config::new(proxy.url())
            .prefix("partition")
            .retry_after(Duration::from_millis(200)),
    )
    .unwrap();
    for k in 0..KEYS {
        assert_eq!(versioned(k), source(k));
        assert_eq!(cleared(k), source(k));
    }
    let mut direct = server.connection();
    let in_redis = entries(direct.keys("partition:{faults::versioned:0:*").unwrap());
    assert_eq!(in_redis.len(), KEYS as usize, "every value is in Redis");

    proxy.partition();
    // The source changes, and the application says so through every kind of write.
    VERSION.store(2, SeqCst);
    for k in 0..50 {
        versioned_cache().invalidate(&k);
    }
    for k in 50..100 {
        versioned_cache().insert(k, source(k));
    }
    let invalidated: Vec<u32> = (100..150).collect();
    versioned_cache().invalidate_many(&invalidated);
    versioned_cache().insert_many((150..KEYS).map(|k| (k, source(k))));
    cleared_cache().clear();
    let during = versioned_cache().stats();
    assert_eq!(
        during.l2_pending_writes,
        u64::from(KEYS),
        "each write that did not reach Redis waits: {during}"
    );
    assert_eq!(cleared_cache().stats().l2_pending_writes, 1);
    // While cut off, the writer itself answers with the new values.
    versioned_cache().cache().clear();
    cleared_cache().cache().clear();
    for k in 0..KEYS {
        assert_eq!(versioned(k), source(k), "during the partition, key {k}");
        assert_eq!(cleared(k), source(k), "during the partition, key {k}");
    }

    proxy.heal();
    // Applied without any call of the functions: the process's subscriber does it once Redis
    // answers again.
    wait_until("pending writes replayed", Duration::from_secs(10), || {
        versioned_cache().stats().l2_pending_writes == 0
            && cleared_cache().stats().l2_pending_writes == 0
    });
    let after = versioned_cache().stats();
    assert_eq!(after.l2_replayed_writes, u64::from(KEYS), "{after}");
    assert!(
        after
            .to_string()
            .ends_with(&format!("l2_pending_writes=0 l2_replayed_writes={KEYS}")),
        "{after}"
    );

    // Another process that never saw the writes reads no value from before them.
    let env = [("MEMOKIT_TEST_URL", server.url())];
    let reader = ChildTest::spawn("reader_role", "reader", &env);
    let line = reader.expect_line("STALE", Duration::from_secs(30));
    reader.success();
    assert!(
        line.starts_with("0 "),
        "stale reads in another process: {line}"
    );

    // Nor does the writer, once its in-process copies are gone.
    versioned_cache().cache().clear();
    cleared_cache().cache().clear();
    for k in 0..KEYS {
        assert_eq!(versioned(k), source(k), "after the heal, key {k}");
        assert_eq!(cleared(k), source(k), "after the heal, key {k}");
    }
    eprintln!("partition: {}", versioned_cache().stats());
}

// ---- Coherent in-process copies ------------------------------------------------------------

/// Reads its value from the source, a key of the test server (reached without any proxy).
#[cached(size = 100, redis(ttl = "10m"), name = "faults::coherent")]
fn coherent(k: u32) -> u64 {
    let url = std::env::var("MEMOKIT_TEST_URL").expect("set by the parent");
    let mut conn = redis::Client::open(url).unwrap().get_connection().unwrap();
    conn.get(format!("source:{k}")).unwrap()
}

/// Reaches Redis through the parent's proxy, which the parent cuts while it invalidates.
#[test]
fn cut_off_role() {
    if role().as_deref() != Some("cut_off") {
        return;
    }
    let url = std::env::var("MEMOKIT_TEST_PROXY_URL").expect("set by the parent");
    // A long retry: the subscription does not come back by itself before the reads below.
    connect_with(
        Config::new(url)
            .prefix("coherent")
            .retry_after(Duration::from_secs(3)),
    )
    .unwrap();
    wait_until(
        "subscribed",
        Duration::from_secs(10),
        memokit::redis::is_subscribed,
    );
    println!("FIRST {}", coherent(1));
    wait_until("subscription lost", Duration::from_secs(10), || {
        !memokit::redis::is_subscribed()
    });
    println!("LOST");
    let direct = std::env::var("MEMOKIT_TEST_URL").unwrap();
    let mut conn = redis::Client::open(direct)
        .unwrap()
        .get_connection()
        .unwrap();
    wait_until("go", Duration::from_secs(10), || {
        conn.exists::<_, bool>("go").unwrap()
    });
    println!("DURING {}", coherent(1));
    wait_until("healed", Duration::from_secs(10), || {
        conn.exists::<_, bool>("healed").unwrap()
    });
    println!("AFTER {}", coherent(1));
}

#[test]
fn a_process_that_lost_its_subscription_serves_no_stale_copy() {
    let Some((_serial, server)) = parent_with_server() else {
        return;
    };
    let proxy = Proxy::start(&server);
    connect_with(Config::new(server.url()).prefix("coherent")).unwrap();
    std::env::set_var("MEMOKIT_TEST_URL", server.url());
    let mut direct = server.connection();
    let () = direct.set("source:1", 100).unwrap();
    let env = [
        ("MEMOKIT_TEST_URL", server.url()),
        ("MEMOKIT_TEST_PROXY_URL", proxy.url()),
    ];
    let child = ChildTest::spawn("cut_off_role", "cut_off", &env);
    assert_eq!(child.expect_line("FIRST", Duration::from_secs(30)), "100");
    assert_eq!(coherent(1), 100, "from Redis, computed by the child");

    proxy.partition();
    child.expect_line("LOST", Duration::from_secs(10));
    // The source changes and this process says so; the child cannot hear it.
    let () = direct.set("source:1", 200).unwrap();
    coherent_cache().invalidate(&1);
    let () = direct.set("go", 1).unwrap();
    let during = child.expect_line("DURING", Duration::from_secs(10));
    proxy.heal();
    let () = direct.set("healed", 1).unwrap();
    let after = child.expect_line("AFTER", Duration::from_secs(10));
    child.success();
    assert_eq!(
        during, "200",
        "a stale in-process copy served while cut off"
    );
    assert_eq!(
        after, "200",
        "a stale in-process copy served after the heal"
    );
}

static WATCHED_RUNS: AtomicU64 = AtomicU64::new(0);

#[cached(size = 100, redis(ttl = "10m"), name = "faults::watched")]
fn watched(k: u32) -> u32 {
    WATCHED_RUNS.fetch_add(1, SeqCst);
    k
}

fn signal(pid: u32, signal: &str) {
    let status = std::process::Command::new("kill")
        .args([signal, &pid.to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
}

#[test]
fn a_subscription_that_stops_answering_is_noticed_and_its_copies_go() {
    let Some((_serial, server)) = parent_with_server() else {
        return;
    };
    connect_with(Config::new(server.url()).prefix("watched")).unwrap();
    wait_until(
        "subscribed",
        Duration::from_secs(10),
        memokit::redis::is_subscribed,
    );
    assert_eq!(watched(1), 1);
    // A healthy subscription keeps its copies across several health checks.
    thread::sleep(Duration::from_millis(2_500));
    assert!(memokit::redis::is_subscribed());
    assert_eq!(watched(1), 1);
    assert_eq!(WATCHED_RUNS.load(SeqCst), 1, "a copy went while subscribed");
    // A stalled server sends no reset: only an unanswered check shows the loss.
    let pid = server.pid().expect("running");
    signal(pid, "-STOP");
    let lost = Instant::now();
    let noticed = std::panic::catch_unwind(|| {
        wait_until("loss noticed", Duration::from_secs(10), || {
            !memokit::redis::is_subscribed()
        });
    });
    signal(pid, "-CONT");
    assert!(noticed.is_ok(), "a silent subscription was not noticed");
    assert!(
        watched_cache().is_empty(),
        "the in-process copies outlived the subscription"
    );
    eprintln!(
        "silent subscription loss noticed after {:?}",
        lost.elapsed()
    );
}

// ---- One bad key ---------------------------------------------------------------------------

#[cached(redis, name = "faults::wrongtype")]
fn wrongtype(n: u32) -> u32 {
    n + 1
}

#[cached(redis, name = "faults::wrongtype_async")]
async fn wrongtype_async(n: u32) -> u32 {
    n + 2
}

#[cached(redis, name = "faults::bystander")]
fn bystander(n: u32) -> u32 {
    n + 3
}

#[test]
fn a_key_of_another_type_is_a_miss_of_that_key_alone_and_is_repaired() {
    let Some((_serial, server)) = parent_with_server() else {
        return;
    };
    connect_with(Config::new(server.url()).prefix("bad")).unwrap();
    let mut conn = server.connection();
    // Someone pushed onto the entries' keys.
    for entry in [
        "bad:{faults::wrongtype:0:01}",
        "bad:{faults::wrongtype_async:0:01}",
    ] {
        let _: u64 = conn.lpush(entry, "not a value").unwrap();
    }
    assert_eq!(wrongtype(1), 2);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    assert_eq!(runtime.block_on(wrongtype_async(1)), 3);
    // Every other key and function still uses Redis at once.
    assert_eq!(bystander(1), 4);
    assert!(
        conn.exists::<_, bool>("bad:{faults::bystander:0:01}")
            .unwrap(),
        "one bad key shut Redis off for the other functions"
    );
    for entry in [
        "bad:{faults::wrongtype:0:01}",
        "bad:{faults::wrongtype_async:0:01}",
    ] {
        let kind: String = redis::cmd("TYPE").arg(entry).query(&mut conn).unwrap();
        assert_eq!(kind, "string", "{entry} was not repaired");
    }
    let stats = wrongtype_cache().stats();
    assert_eq!((stats.l2_errors, stats.l2_misses), (1, 1), "{stats}");
    assert_eq!(wrongtype_async_cache().stats().l2_errors, 1);
    // Repaired: read from Redis from now on.
    wrongtype_cache().cache().clear();
    assert_eq!(wrongtype(1), 2);
    assert_eq!(wrongtype_cache().stats().l2_hits, 1);
}

// ---- Two functions, one name ---------------------------------------------------------------

#[cached(redis, name = "faults::same_name")]
fn same_name_first(n: u32) -> u32 {
    n + 100
}

#[cached(redis, name = "faults::same_name")]
fn same_name_second(n: u32) -> u32 {
    n + 200
}

#[test]
fn two_functions_of_one_name_never_return_each_others_values() {
    let Some((_serial, server)) = parent_with_server() else {
        return;
    };
    connect_with(Config::new(server.url()).prefix("dup")).unwrap();
    assert_eq!(same_name_first(1), 101);
    let seen = memokit_tests::tracing_capture::capture(|| {
        assert_eq!(same_name_second(1), 201, "the other function's value");
    });
    let message = seen
        .events
        .iter()
        .filter(|event| event.target == "memokit::redis")
        .filter_map(|event| event.fields.get("message"))
        .find(|message| message.contains("faults::same_name"))
        .cloned()
        .expect("an error names the duplicate");
    assert!(
        message.matches("redis_faults.rs").count() >= 2,
        "the message says where both are: {message}"
    );
    // The first keeps Redis; the second is in-process only.
    same_name_first_cache().cache().clear();
    same_name_second_cache().cache().clear();
    assert_eq!(same_name_first(1), 101);
    assert_eq!(same_name_second(1), 201);
    assert_eq!(same_name_first_cache().stats().l2_hits, 1);
    assert_eq!(same_name_second_cache().stats().l2_hits, 0);
}

// ---- A value stored just before the lease is taken -----------------------------------------

static RECHECK_RUNS: AtomicU64 = AtomicU64::new(0);

#[cached(redis(lease = "5s"), name = "faults::recheck")]
fn recheck(n: u32) -> u32 {
    RECHECK_RUNS.fetch_add(1, SeqCst);
    n * 7
}

#[test]
fn a_value_stored_between_the_look_and_the_lease_is_not_computed_again() {
    let Some((_serial, server)) = parent_with_server() else {
        return;
    };
    let proxy = Proxy::start(&server);
    connect_with(Config::new(proxy.url()).prefix("recheck")).unwrap();
    // The stored form of a value, as another process writes it.
    assert_eq!(recheck(2), 14);
    let mut conn = server.connection();
    let stored: Vec<u8> = conn.get("recheck:{faults::recheck:0:02}").unwrap();
    // Another process finishes key 1 right after this one looked at Redis and found nothing:
    // its value lands (and its lease goes) just before this one's take reaches Redis.
    let url = server.url();
    proxy.before_forwarding(b"local holder", move || {
        let mut conn = redis::Client::open(url).unwrap().get_connection().unwrap();
        let () = conn.set("recheck:{faults::recheck:0:01}", stored).unwrap();
    });
    assert_eq!(recheck(1), 14, "the other process's value");
    assert_eq!(RECHECK_RUNS.load(SeqCst), 1, "computed a second time");
}

// ---- Bounded waits against a paused server -----------------------------------------------------

#[cached(size = 1_000, redis(ttl = "10m"), name = "faults::paused")]
fn paused(k: u32) -> u32 {
    k + 1
}

/// A stalled server (`SIGSTOP`) answers nothing: a call, and a bulk write of 50 entries, each
/// wait about one timeout, not one per command or per reply.
#[test]
fn a_call_and_a_bulk_write_against_a_paused_server_wait_one_timeout() {
    let Some((_serial, server)) = parent_with_server() else {
        return;
    };
    let timeout = Duration::from_millis(300);
    let retry_after = Duration::from_millis(500);
    connect_with(
        Config::new(server.url())
            .prefix("paused")
            .timeout(timeout)
            .retry_after(retry_after),
    )
    .unwrap();
    // The generation is known, and idle connections are made.
    for k in 0..10 {
        assert_eq!(paused(k), k + 1);
    }
    thread::sleep(Duration::from_millis(100));
    let pid = server.pid().expect("running");
    signal(pid, "-STOP");
    let started = Instant::now();
    paused_cache().insert_many((100..150).map(|k| (k, k + 1)));
    let bulk = started.elapsed();
    // The circuit opened; once it lets calls try again, the next call meets the stall.
    thread::sleep(retry_after + Duration::from_millis(100));
    let started = Instant::now();
    let value = paused(1_000);
    let call = started.elapsed();
    thread::sleep(retry_after + Duration::from_millis(100));
    let started = Instant::now();
    let value_async = block_on_async(paused_async(8));
    let call_async = started.elapsed();
    signal(pid, "-CONT");
    eprintln!("paused server: bulk write {bulk:?}, sync call {call:?}, async call {call_async:?}");
    assert_eq!((value, value_async), (1_001, 10));
    assert_eq!(
        paused_cache().stats().l2_pending_writes,
        50,
        "the 50 writes wait to be applied"
    );
    // One timeout each; half of one more for a loaded machine.
    for (what, took) in [
        ("bulk write", bulk),
        ("sync call", call),
        ("async call", call_async),
    ] {
        assert!(
            took < timeout * 3 / 2,
            "{what} took {took:?} with a {timeout:?} timeout"
        );
    }
}

#[cached(size = 1_000, redis(ttl = "10m"), name = "faults::paused_async")]
async fn paused_async(k: u32) -> u32 {
    k + 2
}

fn block_on_async<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(future)
}

// ---- A take answered too late --------------------------------------------------------------

static LATE_TAKE_RUNS: AtomicU64 = AtomicU64::new(0);

#[cached(redis(lease = "5s"), name = "faults::late_take")]
fn late_take(n: u32) -> u32 {
    LATE_TAKE_RUNS.fetch_add(1, SeqCst);
    n * 3
}

/// Redis runs the take of a lease, but its answer comes after the timeout: the process computes
/// without the lease (and writes nothing), and releases the lease it may hold, so that the
/// other processes do not wait the whole lease (5 s) for a value nobody writes.
#[test]
fn a_take_answered_too_late_leaves_no_lease_behind() {
    let Some((_serial, server)) = parent_with_server() else {
        return;
    };
    let proxy = Proxy::start(&server);
    connect_with(
        Config::new(proxy.url())
            .prefix("late")
            .timeout(Duration::from_millis(100)),
    )
    .unwrap();
    assert_eq!(late_take(1), 3);
    // The take reaches Redis 400 ms late, long after the caller stopped waiting for it.
    proxy.before_forwarding(b"local holder", || {
        thread::sleep(Duration::from_millis(400))
    });
    let started = Instant::now();
    assert_eq!(late_take(2), 6);
    assert!(
        started.elapsed() < Duration::from_millis(350),
        "one timeout"
    );
    assert_eq!(LATE_TAKE_RUNS.load(SeqCst), 2);
    // Well after the take ran, and well before its lease would have expired.
    thread::sleep(Duration::from_millis(1_500));
    let mut conn = server.connection();
    let leases: Vec<String> = conn.keys("late:*:lease").unwrap();
    assert!(leases.is_empty(), "a lease left behind: {leases:?}");
}
