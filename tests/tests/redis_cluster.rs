//! The shared tier on a Redis Cluster of three masters with one replica each, which every test
//! starts (and stops) itself on loopback: entries spread over every master, every kind of write
//! reaches the cluster and the other processes, a process that lost its subscription serves no
//! stale copy, and a master killed with `kill -9` fails over with no wrong answer, bounded
//! calls, and L2 hits again afterwards. Tests run one at a time (the connection is
//! process-wide); the two-process tests run this binary again as a child with a role.

use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::{Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use memokit::cached;
use memokit::redis::{connect_with, Config};
use memokit_tests::{role, wait_until, ChildTest, RedisCluster};
use redis::Commands;

static SERIAL: Mutex<()> = Mutex::new(());

/// In the test's own process (not a child it spawned): the lock that runs these tests one at a
/// time, and a cluster of its own; `None` in a child, or when Redis is skipped.
fn parent_with_cluster() -> Option<(MutexGuard<'static, ()>, RedisCluster)> {
    if role().is_some() {
        return None;
    }
    let serial = SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    Some((serial, RedisCluster::start()?))
}

/// The cluster of a child process, from the parent's node list.
fn child_config(prefix: &str) -> Config {
    let nodes = std::env::var("MEMOKIT_TEST_NODES").expect("set by the parent");
    Config::cluster(nodes.split(','))
        .prefix(prefix)
        .timeout(Duration::from_millis(250))
}

fn nodes_env(cluster: &RedisCluster) -> (&'static str, String) {
    ("MEMOKIT_TEST_NODES", cluster.urls().join(","))
}

// ---- Entries, writes and other processes ----------------------------------------------------

static VERSION: AtomicU64 = AtomicU64::new(1);

fn source(k: u32) -> u64 {
    VERSION.load(SeqCst) * 1_000_000 + u64::from(k)
}

#[cached(size = 1_000, redis(ttl = "10m"), name = "cluster::spread")]
fn spread(k: u32) -> u64 {
    source(k)
}

#[cached(size = 1_000, redis(ttl = "10m"), name = "cluster::cleared")]
fn cleared(k: u32) -> u64 {
    source(k)
}

const KEYS: u32 = 200;

/// Reads every key through the cluster in a process that made none of the writes, and prints
/// how many were stale and how many came from Redis.
#[test]
fn cluster_reader_role() {
    if role().as_deref() != Some("reader") {
        return;
    }
    connect_with(child_config("spread")).unwrap();
    // The source as the parent changed it; keys 150.. were not written, so Redis still holds
    // the parent's first values for them.
    VERSION.store(2, SeqCst);
    let stale = (0..150)
        .filter(|&k| spread(k) != source(k))
        .chain((0..KEYS).filter(|&k| cleared(k) != source(k)))
        .count();
    let kept = (150..KEYS)
        .filter(|&k| spread(k) == 1_000_000 + u64::from(k))
        .count();
    println!(
        "STALE {stale} KEPT {kept} L2_HITS {} ERRORS {}",
        spread_cache().stats().l2_hits,
        spread_cache().stats().l2_errors
    );
}

#[test]
fn entries_spread_over_every_master_and_every_write_reaches_the_cluster() {
    let Some((_serial, cluster)) = parent_with_cluster() else {
        return;
    };
    connect_with(
        Config::cluster(cluster.urls())
            .prefix("spread")
            .timeout(Duration::from_millis(250)),
    )
    .unwrap();
    // Another test of this binary may have moved the source on.
    VERSION.store(1, SeqCst);
    for k in 0..KEYS {
        assert_eq!(spread(k), source(k));
        assert_eq!(cleared(k), source(k));
    }
    assert_eq!(spread_cache().stats().l2_errors, 0);
    let entries = cluster.entries("spread:{cluster::spread:0:*");
    assert_eq!(
        entries.len(),
        KEYS as usize,
        "every value is in the cluster"
    );
    let masters: std::collections::HashSet<u16> = entries
        .iter()
        .map(|entry| cluster.master_of(entry))
        .collect();
    assert_eq!(
        masters.len(),
        3,
        "one function's entries are on every master"
    );

    // The source changes; bulk writes cross slots (one pipeline per slot).
    VERSION.store(2, SeqCst);
    spread_cache().invalidate_many(&(0..50).collect::<Vec<_>>());
    spread_cache().insert_many((50..100).map(|k| (k, source(k))));
    for k in 100..150 {
        spread_cache().invalidate(&k);
    }
    cleared_cache().clear();
    let stats = spread_cache().stats();
    assert_eq!((stats.l2_errors, stats.l2_pending_writes), (0, 0));
    assert_eq!(
        cluster.entries("spread:{cluster::spread:0:*").len(),
        50 + 50,
        "50 invalidated one by one and 50 at once are gone; 50 inserted and 50 untouched stay"
    );
    let mut conn = cluster.connection();
    assert_eq!(
        conn.get::<_, u64>("spread:cluster::cleared:gen").unwrap(),
        1,
        "clear() started a new generation"
    );

    let child = ChildTest::spawn("cluster_reader_role", "reader", &[nodes_env(&cluster)]);
    let report = child.expect_line("STALE", Duration::from_secs(60));
    child.success();
    assert_eq!(
        report, "0 KEPT 50 L2_HITS 100 ERRORS 0",
        "in the other process"
    );

    // A large bulk write on a healthy cluster is no outage: one pipeline per slot and one
    // announcement per key, all sent at once (the announcements one after the other took
    // longer than the timeout from about 100 keys on).
    let many: Vec<u32> = (1_000..2_000).collect();
    spread_cache().insert_many(many.iter().map(|&k| (k, source(k))));
    let started = Instant::now();
    spread_cache().invalidate_many(&many);
    let took = started.elapsed();
    let stats = spread_cache().stats();
    assert_eq!(
        (stats.l2_errors, stats.l2_pending_writes),
        (0, 0),
        "1,000 keys written and invalidated in {took:?}"
    );
}

// ---- A process that lost its subscription ---------------------------------------------------

/// Reads its value from the source, a key of the cluster.
#[cached(size = 100, redis(ttl = "10m"), name = "cluster::coherent")]
fn coherent(k: u32) -> u64 {
    let nodes = std::env::var("MEMOKIT_TEST_NODES").expect("set by the parent");
    let mut conn = redis::cluster::ClusterClient::new(nodes.split(',').collect::<Vec<_>>())
        .unwrap()
        .get_connection()
        .unwrap();
    conn.get(format!("source:{k}")).unwrap()
}

fn signal_set(name: &str) -> bool {
    let nodes = std::env::var("MEMOKIT_TEST_NODES").expect("set by the parent");
    let mut conn = redis::cluster::ClusterClient::new(nodes.split(',').collect::<Vec<_>>())
        .unwrap()
        .get_connection()
        .unwrap();
    conn.exists(name).unwrap()
}

#[test]
fn cluster_cut_off_role() {
    if role().as_deref() != Some("cut_off") {
        return;
    }
    // A long retry: the subscription does not come back by itself before the read below.
    connect_with(child_config("coherent").retry_after(Duration::from_secs(3))).unwrap();
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
    wait_until("go", Duration::from_secs(10), || signal_set("go"));
    println!("DURING {}", coherent(1));
}

#[test]
fn a_process_that_lost_its_subscription_reads_fresh_values() {
    let Some((_serial, cluster)) = parent_with_cluster() else {
        return;
    };
    connect_with(
        Config::cluster(cluster.urls())
            .prefix("coherent")
            .timeout(Duration::from_millis(250)),
    )
    .unwrap();
    let env = nodes_env(&cluster);
    std::env::set_var(env.0, &env.1);
    let mut conn = cluster.connection();
    let () = conn.set("source:1", 100).unwrap();
    let child = ChildTest::spawn("cluster_cut_off_role", "cut_off", &[env]);
    assert_eq!(child.expect_line("FIRST", Duration::from_secs(30)), "100");
    assert_eq!(coherent(1), 100, "from the cluster, computed by the child");

    cluster.kill_subscriptions();
    child.expect_line("LOST", Duration::from_secs(10));
    // The source changes and this process says so; the child does not hear it.
    let () = conn.set("source:1", 200).unwrap();
    coherent_cache().invalidate(&1);
    assert_eq!(coherent_cache().stats().l2_errors, 0);
    let () = conn.set("go", 1).unwrap();
    let during = child.expect_line("DURING", Duration::from_secs(10));
    child.success();
    assert_eq!(
        during, "200",
        "a stale in-process copy served after the loss"
    );
}

// ---- Failover ---------------------------------------------------------------------------------

const FAILOVER_KEYS: u32 = 100;

static VERSIONS: [AtomicU64; FAILOVER_KEYS as usize] =
    [const { AtomicU64::new(1) }; FAILOVER_KEYS as usize];

fn versioned_source(k: u32) -> u64 {
    VERSIONS[k as usize].load(SeqCst) * 1_000 + u64::from(k)
}

#[cached(size = 1_000, redis(ttl = "10m"), name = "cluster::failover")]
fn failover(k: u32) -> u64 {
    if role().is_some() {
        // The child only reads: a value it computes is marked as such.
        return u64::MAX;
    }
    versioned_source(k)
}

/// Reads every key of `failover` from the cluster and prints the values.
#[test]
fn cluster_failover_reader_role() {
    if role().as_deref() != Some("failover_reader") {
        return;
    }
    connect_with(child_config("failover")).unwrap();
    let values: Vec<String> = (0..FAILOVER_KEYS)
        .map(|k| failover(k).to_string())
        .collect();
    println!("VALUES {}", values.join(","));
    println!("L2_HITS {}", failover_cache().stats().l2_hits);
}

/// The promise under a failover, with the default timeout: no call returns a value the
/// application has replaced, none waits longer than a bound, and once a replica has taken over
/// the cluster serves hits again.
#[test]
fn a_master_killed_during_reads_and_writes_fails_over_without_a_wrong_answer() {
    let Some((_serial, mut cluster)) = parent_with_cluster() else {
        return;
    };
    let timeout = Duration::from_millis(100);
    connect_with(
        Config::cluster(cluster.urls())
            .prefix("failover")
            .timeout(timeout)
            .retry_after(Duration::from_millis(200)),
    )
    .unwrap();
    for k in 0..FAILOVER_KEYS {
        assert_eq!(failover(k), versioned_source(k));
    }
    let victim = cluster.master_of(&format!("failover:{{cluster::failover:0:{:02x}}}", 7));

    let mut slowest = Duration::ZERO;
    let mut wrong = Vec::new();
    let mut round = 0u32;
    let mut killed_at = None;
    let mut healthy_at = None;
    let started = Instant::now();
    // Writes and reads in turn: every write is followed by a read that must see it.
    while healthy_at.is_none_or(|at: Instant| at.elapsed() < Duration::from_secs(1)) {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no failover within a minute"
        );
        let k = round % FAILOVER_KEYS;
        VERSIONS[k as usize].fetch_add(1, SeqCst);
        let call = Instant::now();
        if round % 2 == 0 {
            failover_cache().invalidate(&k);
        } else {
            failover_cache().insert(k, versioned_source(k));
        }
        let got = failover(k);
        slowest = slowest.max(call.elapsed());
        if got != versioned_source(k) {
            wrong.push((k, got, versioned_source(k)));
        }
        round += 1;
        if killed_at.is_none() && started.elapsed() > Duration::from_millis(300) {
            cluster.kill(victim);
            killed_at = Some(Instant::now());
        }
        // Cheap enough every 50 rounds: a few commands to each live node.
        if killed_at.is_some() && healthy_at.is_none() && round % 50 == 0 && cluster.is_healthy() {
            healthy_at = Some(Instant::now());
        }
    }
    let stats = failover_cache().stats();
    println!(
        "failover: {round} rounds, slowest call {slowest:?}, L2 errors {}, pending {}, healthy \
         {:?} after the kill",
        stats.l2_errors,
        stats.l2_pending_writes,
        healthy_at
            .zip(killed_at)
            .map(|(healthy, killed)| healthy - killed),
    );
    assert!(wrong.is_empty(), "wrong answers: {wrong:?}");
    assert!(stats.l2_errors > 0, "the killed master was noticed");
    // Each call makes a few Redis operations; the first failure opens the circuit, so the
    // others are skipped: a call waits about two timeouts at most. The bound allows for a
    // loaded machine.
    assert!(
        slowest < timeout * 10,
        "a call took {slowest:?} with a {timeout:?} timeout"
    );

    let child = ChildTest::spawn(
        "cluster_failover_reader_role",
        "failover_reader",
        &[nodes_env(&cluster)],
    );
    let values = child.expect_line("VALUES", Duration::from_secs(60));
    let hits: u64 = child
        .expect_line("L2_HITS", Duration::from_secs(10))
        .parse()
        .unwrap();
    child.success();
    for (k, value) in values.split(',').enumerate() {
        let value: u64 = value.parse().unwrap();
        let k = u32::try_from(k).unwrap();
        assert!(
            value == versioned_source(k) || value == u64::MAX,
            "key {k}: the other process read {value} from the cluster, not {} (or nothing)",
            versioned_source(k)
        );
    }
    assert!(hits > 0, "no L2 hit after the failover");
}

// ---- Bad input ----------------------------------------------------------------------------------

#[cached(size = 10, redis, name = "cluster::unreachable")]
fn unreachable(k: u32) -> u32 {
    k * 2
}

#[test]
fn bad_cluster_configurations_are_errors_at_connect_and_a_down_cluster_is_computed_around() {
    if role().is_some() {
        return;
    }
    let _serial = SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    for (nodes, why) in [
        (vec![], "no node"),
        (vec!["not a url"], "a URL that does not parse"),
        (
            vec!["redis://127.0.0.1:7000", "rediss://127.0.0.1:7001"],
            "TLS and plain mixed",
        ),
        (
            vec!["redis://:a@127.0.0.1:7000", "redis://:b@127.0.0.1:7001"],
            "two passwords",
        ),
        (vec!["redis+unix:///tmp/redis.sock"], "a Unix socket"),
    ] {
        let error = connect_with(Config::cluster(nodes)).expect_err(why);
        assert!(
            error.to_string().starts_with("bad Redis URL: "),
            "{why}: {error}"
        );
    }
    // Nothing listens on these ports: every call is computed, counted, and none hangs.
    let closed: Vec<String> = (0..3)
        .map(|_| {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            format!("redis://{}", listener.local_addr().unwrap())
        })
        .collect();
    connect_with(Config::cluster(closed).retry_after(Duration::from_millis(1))).unwrap();
    let started = Instant::now();
    for k in 0..20 {
        assert_eq!(unreachable(k), k * 2);
        // Past `retry_after`: the next call asks the cluster again.
        thread::sleep(Duration::from_millis(5));
    }
    assert!(unreachable_cache().stats().l2_errors > 0);
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    memokit::redis::disconnect();
}

// ---- A write the dead master never passed on -------------------------------------------------

#[cached(size = 100, redis(ttl = "10m"), name = "cluster::unreplicated")]
fn unreplicated(k: u32) -> u64 {
    source(k)
}

/// Reads key 1 of `unreplicated` from the cluster, with the source as the parent changed it.
#[test]
fn cluster_unreplicated_reader_role() {
    if role().as_deref() != Some("unreplicated_reader") {
        return;
    }
    connect_with(child_config("unreplicated")).unwrap();
    VERSION.store(2, SeqCst);
    println!("VALUE {}", unreplicated(1));
}

/// Redis replicates asynchronously: a master can acknowledge an invalidation and die before
/// its replica has it. The replica that takes over must not bring the old value back.
#[test]
fn an_invalidation_the_dead_master_never_replicated_is_applied_again() {
    let Some((_serial, mut cluster)) = parent_with_cluster() else {
        return;
    };
    connect_with(
        Config::cluster(cluster.urls())
            .prefix("unreplicated")
            .timeout(Duration::from_millis(200))
            .retry_after(Duration::from_millis(200)),
    )
    .unwrap();
    VERSION.store(1, SeqCst);
    assert_eq!(unreplicated(1), source(1));
    let entry = cluster.entries("unreplicated:{cluster::unreplicated:0:*");
    assert_eq!(entry.len(), 1);
    let master = cluster.master_of(&entry[0]);
    let replica = cluster.replica_of(master);
    // A replica still syncing right after the cluster formed may miss a write: write again.
    let mut looks = 0;
    wait_until("the entry replicated", Duration::from_secs(30), || {
        looks += 1;
        if looks % 100 == 0 {
            unreplicated_cache().invalidate(&1);
            assert_eq!(unreplicated(1), source(1));
        }
        cluster.node_has(replica, &entry[0])
    });
    // The replica hears nothing of what follows: stopped, and its link to the master closed
    // (so that it cannot connect again) until the master is gone.
    cluster.pause(replica, true);
    cluster.cut_replication(master);
    VERSION.store(2, SeqCst);
    unreplicated_cache().invalidate(&1);
    assert_eq!(
        unreplicated_cache().stats().l2_pending_writes,
        0,
        "acknowledged"
    );
    cluster.kill(master);
    cluster.pause(replica, false);
    // This process goes on reading other keys (some on the dead master's slots), and meets
    // the failure; it writes nothing more.
    let started = Instant::now();
    let mut k = 1_000;
    while !cluster.is_healthy() {
        assert!(started.elapsed() < Duration::from_secs(60), "no failover");
        assert_eq!(unreplicated(k), source(k));
        k += 1;
        thread::sleep(Duration::from_millis(20));
    }
    assert!(
        unreplicated_cache().stats().l2_errors > 0,
        "the failure was met"
    );
    wait_until("writes applied again", Duration::from_secs(30), || {
        unreplicated_cache().stats().l2_pending_writes == 0
    });
    let child = ChildTest::spawn(
        "cluster_unreplicated_reader_role",
        "unreplicated_reader",
        &[nodes_env(&cluster)],
    );
    let value: u64 = child
        .expect_line("VALUE", Duration::from_secs(60))
        .parse()
        .unwrap();
    child.success();
    assert_eq!(
        value,
        source(1),
        "the promoted replica served the value from before"
    );
}

// ---- Batches ------------------------------------------------------------------------------------

static BATCH_CALLS: AtomicU64 = AtomicU64::new(0);

#[cached(batch, size = 1_000, redis(ttl = "10m"), name = "cluster::batch")]
fn batch_doubles(ids: &[u32]) -> std::collections::HashMap<u32, u64> {
    BATCH_CALLS.fetch_add(1, SeqCst);
    ids.iter().map(|&id| (id, u64::from(id) * 2)).collect()
}

/// A batch's keys span every slot: reads and writes go as one pipeline per slot.
#[test]
fn a_batch_reads_and_writes_across_slots() {
    let Some((_serial, cluster)) = parent_with_cluster() else {
        return;
    };
    connect_with(
        Config::cluster(cluster.urls())
            .prefix("batch")
            .timeout(Duration::from_millis(250)),
    )
    .unwrap();
    let ids: Vec<u32> = (0..100).collect();
    assert_eq!(batch_doubles(&ids).len(), 100);
    assert_eq!(cluster.entries("batch:{cluster::batch:0:*").len(), 100);
    batch_doubles_cache().cache().clear();
    let found = batch_doubles(&ids);
    assert!(ids.iter().all(|id| found[id] == u64::from(*id) * 2));
    assert_eq!(
        BATCH_CALLS.load(SeqCst),
        1,
        "the second batch came from the cluster"
    );
    let stats = batch_doubles_cache().stats();
    assert_eq!((stats.l2_hits, stats.l2_errors), (100, 0));
}
