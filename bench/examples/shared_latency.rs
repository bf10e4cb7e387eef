//! The shared tier on one Redis server and on a Redis Cluster (three masters, three replicas,
//! all on loopback), one thread: an L2 hit and an L2 miss of a `#[cached(redis(...))]` function
//! against a plain `GET` on the same deployment, and the latency of an invalidation from the
//! call of `invalidate` to its event on another connection's subscription (what another process
//! hears before it drops its copy), p50 and p99.
//!
//! `cargo run --release -p memokit-bench --example shared_latency`; the figures are in
//! `bench/results/SHARED.md`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use memokit::redis::{connect_with, disconnect, Config};
use memokit_tests::{RedisCluster, RedisServer};

const KEYS: u64 = 2_000;
const ROUNDS: usize = 5;
const INVALIDATIONS: u64 = 2_000;

#[memokit::cached(size = 100_000, redis(ttl = "10m"), name = "bench.shared")]
fn shared(key: u64) -> String {
    format!("{key:020}:{}", "x".repeat(79))
}

/// A plain `GET` on the deployment, for comparison.
type Get = Box<dyn FnMut(&str) -> Option<Vec<u8>>>;

fn micros(started: Instant, n: u64) -> f64 {
    started.elapsed().as_secs_f64() * 1e6 / n as f64
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let at = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[at]
}

fn measure(name: &str, config: Config, mut get: Get, subscriber: redis::Client) {
    connect_with(config.prefix("bench")).unwrap();
    while !memokit::redis::is_subscribed() {
        std::thread::sleep(Duration::from_millis(10));
    }
    let local = shared_cache().cache();
    let (mut hit, mut miss, mut plain) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..ROUNDS as u64 {
        // Misses: keys never stored (a new range each round): lease, compute, SET, release.
        let base = (round + 1) * 1_000_000;
        let started = Instant::now();
        for key in base..base + KEYS {
            black_box(shared(key));
        }
        miss.push(micros(started, KEYS));
        // Hits: the same keys, dropped from the process first.
        let started = Instant::now();
        for key in base..base + KEYS {
            local.invalidate(&key);
            black_box(shared(key));
        }
        hit.push(micros(started, KEYS));
        let names: Vec<String> = (base..base + KEYS)
            .map(|key| format!("bench:{{bench.shared:0:{}}}", hex(&postcard_u64(key))))
            .collect();
        let started = Instant::now();
        for name in &names {
            assert!(black_box(get(name)).is_some(), "{name} is stored");
        }
        plain.push(micros(started, KEYS));
    }
    let stats = shared_cache().stats();
    assert_eq!(stats.l2_errors, 0, "{stats:?}");
    let best = |v: &[f64]| v.iter().copied().fold(f64::INFINITY, f64::min);

    // Invalidation latency: from the call to the event on another connection.
    let mut connection = subscriber.get_connection().unwrap();
    let mut pubsub = connection.as_pubsub();
    pubsub.subscribe("bench:events").unwrap();
    pubsub
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut latencies = Vec::new();
    for key in 0..INVALIDATIONS {
        let started = Instant::now();
        shared_cache().invalidate(&key);
        pubsub.get_message().expect("the invalidation's event");
        latencies.push(started.elapsed());
    }
    latencies.sort();
    println!(
        "| {name} | {:.1} | {:.1} ({:.2}×) | {:.1} ({:.2}×) | {:.0} | {:.0} |",
        best(&plain),
        best(&hit),
        best(&hit) / best(&plain),
        best(&miss),
        best(&miss) / best(&plain),
        percentile(&latencies, 0.5).as_secs_f64() * 1e6,
        percentile(&latencies, 0.99).as_secs_f64() * 1e6,
    );
    drop(pubsub);
    disconnect();
    shared_cache().clear();
}

/// The postcard encoding of a `u64` key (a varint), as memokit writes it in entry names.
fn postcard_u64(mut n: u64) -> Vec<u8> {
    let mut bytes = Vec::new();
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            bytes.push(byte);
            return bytes;
        }
        bytes.push(byte | 0x80);
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn main() {
    println!(
        "| deployment | plain GET µs | L2 hit µs (× GET) | L2 miss µs (× GET) | invalidation p50 µs | p99 µs |"
    );
    println!("|---|---|---|---|---|---|");
    let server = RedisServer::start().expect("redis-server on PATH");
    let mut conn = server.connection();
    measure(
        "one server",
        Config::new(server.url()),
        Box::new(move |name| redis::cmd("GET").arg(name).query(&mut conn).ok()),
        redis::Client::open(server.url()).unwrap(),
    );
    drop(server);
    let cluster = RedisCluster::start().expect("redis-server and redis-cli on PATH");
    let mut conn = cluster.connection();
    let first = cluster.urls()[0].clone();
    measure(
        "cluster, 3 masters + 3 replicas",
        Config::cluster(cluster.urls()),
        Box::new(move |name| redis::cmd("GET").arg(name).query(&mut conn).ok()),
        redis::Client::open(first).unwrap(),
    );
}
