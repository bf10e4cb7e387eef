//! The shared tier under faults of Redis's data, against a real server that each test starts
//! (and stops) itself, some behind an in-test TCP proxy: one bad key stays one bad key, and a
//! value stored just before the lease is taken is not computed again. Tests run one at a time
//! (the connection is process-wide).

use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::{Mutex, MutexGuard};

use memokit::cached;
use memokit::redis::{connect_with, Config};
use memokit_tests::{Proxy, RedisServer};
use redis::Commands;

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn role() -> Option<String> {
    std::env::var("MEMOKIT_TEST_ROLE").ok()
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
    if role().is_some() {
        return;
    }
    let _serial = serial();
    let Some(server) = RedisServer::start() else {
        return;
    };
    connect_with(Config::new(server.url()).prefix("bad")).unwrap();
    let mut conn = server.connection();
    // Someone pushed onto the entries' keys.
    for entry in [
        "bad:faults::wrongtype:0:01",
        "bad:faults::wrongtype_async:0:01",
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
        conn.exists::<_, bool>("bad:faults::bystander:0:01")
            .unwrap(),
        "one bad key shut Redis off for the other functions"
    );
    for entry in [
        "bad:faults::wrongtype:0:01",
        "bad:faults::wrongtype_async:0:01",
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

// ---- A value stored just before the lease is taken -----------------------------------------

static RECHECK_RUNS: AtomicU64 = AtomicU64::new(0);

#[cached(redis(lease = "5s"), name = "faults::recheck")]
fn recheck(n: u32) -> u32 {
    RECHECK_RUNS.fetch_add(1, SeqCst);
    n * 7
}

#[test]
fn a_value_stored_between_the_look_and_the_lease_is_not_computed_again() {
    if role().is_some() {
        return;
    }
    let _serial = serial();
    let Some(server) = RedisServer::start() else {
        return;
    };
    let proxy = Proxy::start(&server);
    connect_with(Config::new(proxy.url()).prefix("recheck")).unwrap();
    // The stored form of a value, as another process writes it.
    assert_eq!(recheck(2), 14);
    let mut conn = server.connection();
    let stored: Vec<u8> = conn.get("recheck:faults::recheck:0:02").unwrap();
    // Another process finishes key 1 right after this one looked at Redis and found nothing:
    // its value lands (and its lease goes) just before this one's take reaches Redis.
    let url = server.url();
    proxy.before_forwarding(b"local holder", move || {
        let mut conn = redis::Client::open(url).unwrap().get_connection().unwrap();
        let () = conn.set("recheck:faults::recheck:0:01", stored).unwrap();
    });
    assert_eq!(recheck(1), 14, "the other process's value");
    assert_eq!(RECHECK_RUNS.load(SeqCst), 1, "computed a second time");
}
