//! The disk tier in front of the shared one (`#[cached(disk, redis(...))]`), against a real
//! `redis-server` started by each test (skipped loudly without one unless
//! `MEMOKIT_REQUIRE_REDIS=1`): the lookup order is in-process → file → Redis → computation, a
//! Redis hit fills the file, the handles write both, and another process's writes, heard over
//! pub/sub, reach the file too, so that a copy there never outlives an invalidation. The other
//! process is this binary again, with a role and a file of its own.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use memokit::cached;
use memokit::redis::{connect_with, Config};
use memokit_tests::{role, run_folder, wait_until, ChildTest, RedisServer};
use redis::Commands;

static SERIAL: Mutex<()> = Mutex::new(());

const PREFIX: &str = "chain";

/// A fresh file in this run's folder (see `run_folder`), which its children's files share.
fn file(name: &str) -> PathBuf {
    static FOLDER: OnceLock<PathBuf> = OnceLock::new();
    let dir = FOLDER.get_or_init(|| run_folder("memokit-chain-"));
    let path = dir.join(name);
    let _ = std::fs::remove_file(&path);
    path
}

/// Connects this process to `url` (and waits for its subscription) and opens its file.
fn connect(url: &str, path: &std::path::Path) {
    connect_with(
        Config::new(url)
            .prefix(PREFIX)
            .timeout(Duration::from_secs(1)),
    )
    .unwrap();
    wait_until(
        "subscribed",
        Duration::from_secs(10),
        memokit::redis::is_subscribed,
    );
    memokit::disk::open(memokit::disk::Config::new(path)).unwrap();
}

/// The test's server, this process connected to it; `None`: skipped.
fn setup(name: &str) -> Option<(MutexGuard<'static, ()>, RedisServer)> {
    let guard = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let server = RedisServer::start()?;
    static OPENED: OnceLock<PathBuf> = OnceLock::new();
    // One file for this process (a process opens a file once).
    let path = OPENED.get_or_init(|| file(&format!("parent-{name}.redb")));
    connect(&server.url(), path);
    Some((guard, server))
}

/// A child running `role`, connected to `server`, with the file `extra` names or else a fresh
/// one in this process's folder (so that a child leaves no folder of its own behind).
fn child(test: &str, role: &str, server: &RedisServer, extra: &[(&str, String)]) -> ChildTest {
    static CHILDREN: AtomicU64 = AtomicU64::new(0);
    let mut env = vec![("MEMOKIT_TEST_REDIS", server.url())];
    if !extra.iter().any(|(name, _)| *name == "MEMOKIT_TEST_DISK") {
        let n = CHILDREN.fetch_add(1, SeqCst);
        let path = file(&format!("child-{n}.redb"));
        env.push(("MEMOKIT_TEST_DISK", path.display().to_string()));
    }
    env.extend(extra.iter().cloned());
    ChildTest::spawn(test, role, &env)
}

/// In a child: connected to the parent's server, with the file the parent named.
fn child_setup() {
    let url = std::env::var("MEMOKIT_TEST_REDIS").unwrap();
    let path = std::env::var("MEMOKIT_TEST_DISK").expect("the parent names the file");
    connect(&url, path.as_ref());
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

static ORDER_RUNS: AtomicU64 = AtomicU64::new(0);

#[cached(disk, redis(ttl = "10m"), name = "chain::order")]
fn ordered(n: u64) -> String {
    ORDER_RUNS.fetch_add(1, SeqCst);
    format!("computed {n}")
}

#[test]
fn lookups_go_memory_disk_redis_compute_and_a_redis_hit_fills_the_disk() {
    const TEST: &str = "lookups_go_memory_disk_redis_compute_and_a_redis_hit_fills_the_disk";
    if let Some(role) = role() {
        if role == "compute" {
            child_setup();
            assert_eq!(ordered(2), "computed 2");
            println!("DONE");
        }
        return;
    }
    let Some((_serial, server)) = setup("order") else {
        return;
    };
    let memo = ordered_cache();
    let stats = || memo.stats();

    assert_eq!(ordered(1), "computed 1");
    let s = stats();
    assert_eq!(
        (s.disk_misses, s.l2_misses, ORDER_RUNS.load(SeqCst)),
        (1, 1, 1)
    );
    memo.cache().clear(); // the in-process copies only
    assert_eq!(ordered(1), "computed 1");
    let s = stats();
    assert_eq!(
        (s.disk_hits, s.l2_hits),
        (1, 0),
        "from the file, Redis not asked"
    );

    // Another process computes 2: this one finds it in Redis, then in its file.
    child(TEST, "compute", &server, &[]).expect_line("DONE", secs(30));
    assert_eq!(ordered(2), "computed 2");
    let s = stats();
    assert_eq!((s.disk_misses, s.l2_hits), (2, 1), "{s}");
    memo.cache().clear();
    assert_eq!(ordered(2), "computed 2");
    let s = stats();
    assert_eq!(
        (s.disk_hits, s.l2_hits),
        (2, 1),
        "the Redis hit filled the file: {s}"
    );
    assert_eq!(ORDER_RUNS.load(SeqCst), 1);

    // The handles write both.
    let mut conn = server.connection();
    let in_redis = |conn: &mut redis::Connection, n: u8| -> bool {
        let key = format!("{PREFIX}:{{chain::order:0:{n:02x}}}");
        conn.exists(key).unwrap()
    };
    assert!(in_redis(&mut conn, 1));
    memo.invalidate(&1);
    assert!(!in_redis(&mut conn, 1), "invalidate reached Redis");
    memo.cache().clear();
    memo.insert(3, "inserted".into());
    assert!(in_redis(&mut conn, 3), "insert reached Redis");
    let _: () = conn.del(format!("{PREFIX}:{{chain::order:0:03}}")).unwrap();
    memo.cache().clear();
    assert_eq!(ordered(3), "inserted", "insert reached the file");
    assert_eq!(ordered(1), "computed 1");
    assert_eq!(
        ORDER_RUNS.load(SeqCst),
        2,
        "invalidate removed it from the file too"
    );
}

static REMOTE_RUNS: AtomicU64 = AtomicU64::new(0);

#[cached(disk, redis(ttl = "10m"), name = "chain::remote")]
fn remote(n: u64) -> u64 {
    REMOTE_RUNS.fetch_add(1, SeqCst);
    n * 10
}

#[test]
fn another_process_s_invalidation_insert_and_clear_reach_the_disk_copy() {
    const TEST: &str = "another_process_s_invalidation_insert_and_clear_reach_the_disk_copy";
    if let Some(role) = role() {
        child_setup();
        let memo = remote_cache();
        match role.as_str() {
            "invalidate" => {
                memo.invalidate(&1);
            }
            "insert" => memo.insert(2, 99),
            "clear" => memo.clear(),
            _ => return,
        }
        println!("DONE");
        return;
    }
    let Some((_serial, server)) = setup("remote") else {
        return;
    };
    let memo = remote_cache();
    for n in 1..=4 {
        remote(n);
    }
    assert_eq!(REMOTE_RUNS.load(SeqCst), 4);
    let in_process = |n: u64| memo.cache().get(&n).is_some();

    child(TEST, "invalidate", &server, &[]).expect_line("DONE", secs(30));
    wait_until("the invalidation is heard", secs(10), || !in_process(1));
    child(TEST, "insert", &server, &[]).expect_line("DONE", secs(30));
    wait_until("the insert is heard", secs(10), || {
        memo.cache().get(&2) == Some(99)
    });
    memo.cache().clear();
    let hits = memo.stats().disk_hits;
    // Redis no longer has 1: only a stale copy in the file could answer without computing.
    assert_eq!(remote(1), 10);
    assert_eq!(
        REMOTE_RUNS.load(SeqCst),
        5,
        "the file's copy of 1 was removed"
    );
    assert_eq!(remote(2), 99, "the file holds the other process's value");
    assert_eq!(memo.stats().disk_hits, hits + 1);

    // 2 is in process (3 and 4 only in the file, since the clear above): its going tells that
    // the clear was heard. Waiting on 3 waited for nothing, and 3 and 4 were sometimes read
    // from the file before the clear reached it.
    assert!(in_process(2));
    child(TEST, "clear", &server, &[]).expect_line("DONE", secs(30));
    wait_until("the clear is heard", secs(10), || !in_process(2));
    memo.cache().clear();
    assert_eq!((remote(3), remote(4)), (30, 40));
    assert_eq!(
        REMOTE_RUNS.load(SeqCst),
        7,
        "the clear emptied the file too"
    );
}

static LOST_RUNS: AtomicU64 = AtomicU64::new(0);

#[cached(disk, redis(ttl = "10m"), name = "chain::lost")]
fn lost(n: u64) -> u64 {
    LOST_RUNS.fetch_add(1, SeqCst);
    n + 1
}

#[test]
fn a_lost_subscription_or_a_restart_drops_the_disk_copies() {
    const TEST: &str = "a_lost_subscription_or_a_restart_drops_the_disk_copies";
    if let Some(role) = role() {
        if role == "restart" {
            child_setup();
            assert_eq!(lost(7), 8);
            let stats = lost_cache().stats();
            println!("RUNS {}", LOST_RUNS.load(SeqCst));
            println!("DISK_HITS {}", stats.disk_hits);
            println!("L2_HITS {}", stats.l2_hits);
            memokit::disk::flush().unwrap();
        }
        return;
    }
    let Some((_serial, server)) = setup("lost") else {
        return;
    };
    let memo = lost_cache();
    assert_eq!(lost(1), 2);
    // Invalidations published while this process does not listen are lost to it: its file's
    // copies go with the in-process ones.
    let mut conn = server.connection();
    let _: () = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("pubsub")
        .query(&mut conn)
        .unwrap();
    wait_until("the in-process copy is dropped", secs(10), || {
        memo.cache().get(&1).is_none()
    });
    wait_until("subscribed again", secs(10), memokit::redis::is_subscribed);
    let _: () = conn.del(format!("{PREFIX}:{{chain::lost:0:01}}")).unwrap();
    memo.cache().clear();
    assert_eq!(lost(1), 2);
    assert_eq!(LOST_RUNS.load(SeqCst), 2, "the file's copy was dropped too");

    // A restarted process: its file's entries from the last run are dropped at the first
    // call; Redis serves instead.
    let path = file("restart.redb");
    let env = [("MEMOKIT_TEST_DISK", path.display().to_string())];
    let first = child(TEST, "restart", &server, &env);
    assert_eq!(first.expect_line("RUNS", secs(30)), "1");
    first.success();
    let second = child(TEST, "restart", &server, &env);
    assert_eq!(second.expect_line("RUNS", secs(30)), "0");
    assert_eq!(second.expect_line("DISK_HITS", secs(5)), "0");
    assert_eq!(second.expect_line("L2_HITS", secs(5)), "1");
    second.success();
}
