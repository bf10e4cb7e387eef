//! The shared tier, on one thread, against throw-away deployments started for the run (from
//! `memokit-fixtures`: one `redis-server`, and a Redis Cluster of three masters with one
//! replica each, all on loopback, killed at the end):
//!
//! - an L2 hit of a `#[cached(redis(...))]` function: each timed call first drops its key from
//!   the in-process tier (a local `Cache::invalidate`, which does not touch Redis), so that
//!   the call goes in-process miss → Redis hit; the `l2_hits` counter is checked to have grown
//!   by the number of calls;
//! - an L2 miss: a key stored nowhere, so the call looks in Redis, takes the key's lease,
//!   computes, writes the value and releases the lease;
//! - a plain blocking `GET` of the same stored entries with the `redis` crate, the reference;
//! - the latency of an invalidation across processes: from the call of `invalidate` to its
//!   event on another connection's subscription, which is what another process waits for
//!   before it drops its copy.

use std::hint::black_box;
use std::time::{Duration, Instant};

use memokit_fixtures::{RedisCluster, RedisServer};

use crate::latency::best_latency;

/// The prefix of the bench's Redis keys.
const PREFIX: &str = "memokit-bench";

/// A value of about 100 bytes, the same for every call of a key.
#[memokit::cached(size = 100_000, redis(ttl = "10m"), name = "bench.payload")]
pub fn payload(key: u64) -> String {
    format!("{key:020}:{}", "x".repeat(79))
}

/// The next range of keys no call asked for yet (the probe uses `u64::MAX`).
static FRESH: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// The measurement's sizes.
#[derive(Debug, Clone, Copy)]
pub struct SharedSizes {
    /// Distinct keys timed per round and way.
    pub keys: usize,
    /// Rounds per way, alternating; the best of each way is reported.
    pub rounds: usize,
    /// Invalidations timed for the latency percentiles.
    pub invalidations: usize,
}

/// The figures of one deployment.
#[derive(Debug, Clone, PartialEq)]
pub struct Deployment {
    /// "one server" or "cluster (3 masters, 3 replicas)".
    pub name: String,
    /// A plain blocking `GET` of a stored entry, µs.
    pub get_us: f64,
    /// `payload(key)` with the key not in the process but in Redis, µs.
    pub l2_hit_us: f64,
    /// `payload(key)` with the key nowhere: look, lease, compute, write, µs.
    pub l2_miss_us: f64,
    /// Invalidation to its event on another connection, median, µs.
    pub invalidation_p50_us: f64,
    /// The same, 99th percentile, µs.
    pub invalidation_p99_us: f64,
    /// Bytes of one stored (encoded) value.
    pub value_bytes: usize,
    /// L2 hits counted during the timed hit rounds.
    pub l2_hits: u64,
    /// Calls timed in the hit rounds.
    pub calls: u64,
}

impl Deployment {
    /// L2 hit over plain `GET`.
    pub fn ratio(&self) -> f64 {
        self.l2_hit_us / self.get_us
    }

    /// L2 miss over plain `GET`.
    pub fn miss_ratio(&self) -> f64 {
        self.l2_miss_us / self.get_us
    }
}

/// Both deployments' figures; the cluster's may be missing alone (it needs `redis-cli`).
#[derive(Debug, Clone, PartialEq)]
pub struct SharedResult {
    /// One `redis-server`.
    pub server: Deployment,
    /// The cluster, or why it was not measured.
    pub cluster: Result<Deployment, String>,
}

/// A plain `GET` of an entry on the deployment.
type Get = Box<dyn FnMut(&str) -> Result<Vec<u8>, String>>;

/// The names of the deployment's entries that match a pattern (no leases).
type List = Box<dyn FnMut(&str) -> Vec<String>>;

/// What the timing needs of a deployment: a plain `GET`, and a subscription to the events.
struct Target {
    name: &'static str,
    config: memokit::redis::Config,
    get: Get,
    entries: List,
    events: redis::Client,
}

/// Runs the measurement, or says why it could not run (no `redis-server` on `PATH`, or it did
/// not start). Connects the process's shared tier to each deployment in turn and disconnects
/// it at the end.
pub fn measure(sizes: SharedSizes) -> Result<SharedResult, String> {
    let server = RedisServer::start().ok_or("`redis-server` is not on PATH")?;
    let mut conn = server.connection();
    let single = Target {
        name: "one server",
        config: memokit::redis::Config::new(server.url()),
        get: Box::new(move |entry| {
            redis::cmd("GET")
                .arg(entry)
                .query(&mut conn)
                .map_err(|e| e.to_string())
        }),
        entries: {
            let mut conn = server.connection();
            Box::new(move |pattern| {
                memokit_fixtures::entries(
                    redis::cmd("KEYS")
                        .arg(pattern)
                        .query(&mut conn)
                        .unwrap_or_default(),
                )
            })
        },
        events: redis::Client::open(server.url()).map_err(|e| e.to_string())?,
    };
    let single = measure_on(single, sizes)?;
    drop(server);
    let cluster = match RedisCluster::start() {
        None => Err("`redis-server` or `redis-cli` is not on PATH".to_string()),
        Some(cluster) => {
            let mut conn = cluster.connection();
            let urls = cluster.urls();
            let events = redis::Client::open(urls[0].as_str()).map_err(|e| e.to_string())?;
            let cluster = std::rc::Rc::new(cluster);
            let listed = cluster.clone();
            let target = Target {
                name: "cluster (3 masters, 3 replicas)",
                config: memokit::redis::Config::cluster(urls),
                get: Box::new(move |entry| {
                    redis::cmd("GET")
                        .arg(entry)
                        .query(&mut conn)
                        .map_err(|e| e.to_string())
                }),
                entries: Box::new(move |pattern| listed.entries(pattern)),
                events,
            };
            measure_on(target, sizes)
        }
    };
    Ok(SharedResult {
        server: single,
        cluster,
    })
}

fn measure_on(target: Target, sizes: SharedSizes) -> Result<Deployment, String> {
    let Target {
        name,
        config,
        mut get,
        entries: mut list,
        events,
    } = target;
    // A long timeout: on a loaded machine a slow answer must not open the circuit and turn
    // timed calls into skipped ones (the figures are of answers, not of timeouts).
    let config = config
        .prefix(PREFIX)
        .timeout(Duration::from_secs(1))
        .retry_after(Duration::from_millis(10));
    memokit::redis::connect_with(config).map_err(|e| e.to_string())?;
    // A round disturbed by the machine (a skipped Redis call) is measured again, twice at most:
    // the figures are of clean rounds only.
    let mut result = timed(name, &mut get, &mut list, &events, sizes);
    for _ in 0..2 {
        if result.is_ok() {
            break;
        }
        result = timed(name, &mut get, &mut list, &events, sizes);
    }
    memokit::redis::disconnect();
    payload_cache().cache().clear();
    result
}

fn timed(
    name: &str,
    get: &mut dyn FnMut(&str) -> Result<Vec<u8>, String>,
    list: &mut dyn FnMut(&str) -> Vec<String>,
    events: &redis::Client,
    sizes: SharedSizes,
) -> Result<Deployment, String> {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !memokit::redis::is_subscribed() {
        if Instant::now() > deadline {
            return Err(format!("{name}: the tier did not subscribe within 10 s"));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    // Ready when a key dropped from the process comes back from Redis (a loaded machine may
    // need a few attempts before the connection and the subscription settle).
    let probe = u64::MAX;
    loop {
        payload(probe);
        payload_cache().cache().invalidate(&probe);
        let hits = payload_cache().stats().l2_hits;
        payload(probe);
        if payload_cache().stats().l2_hits > hits {
            break;
        }
        if Instant::now() > deadline {
            return Err(format!("{name}: no L2 hit within 10 s"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let keys = sizes.keys.max(1) as u64;
    let rounds = sizes.rounds.max(1) as u64;
    let before = payload_cache().stats();
    let (mut miss_us, mut hit_us, mut get_us) = (Vec::new(), Vec::new(), Vec::new());
    let local = payload_cache().cache();
    let mut value_bytes = 0;
    for round in 0..=rounds {
        // Round 0 warms connections and code paths; it is not kept.
        // Keys never asked before in this process, whichever attempt this is.
        let base = FRESH.fetch_add(1, std::sync::atomic::Ordering::Relaxed) * 1_000_000_000;
        let started = Instant::now();
        for key in base..base + keys {
            black_box(payload(black_box(key)));
        }
        let miss = micros(started, keys);
        let started = Instant::now();
        for key in base..base + keys {
            local.invalidate(&key);
            black_box(payload(black_box(key)));
        }
        let hit = micros(started, keys);
        let entries = list(&format!("{PREFIX}:{{bench.payload:*"));
        let started = Instant::now();
        for entry in &entries {
            value_bytes = black_box(get(entry)?).len();
        }
        let plain = micros(started, entries.len() as u64);
        if round > 0 {
            miss_us.push(miss);
            hit_us.push(hit);
            get_us.push(plain);
        }
    }
    let after = payload_cache().stats();
    let calls = keys * rounds;
    let l2_hits = after.l2_hits - before.l2_hits;
    if l2_hits != calls + keys || after.l2_errors != before.l2_errors {
        return Err(format!(
            "{name}: not every timed call was an L2 hit: {} calls, {l2_hits} L2 hits, {} L2 errors",
            calls + keys,
            after.l2_errors - before.l2_errors
        ));
    }
    let (p50, p99) = invalidation_latency(events, sizes.invalidations.max(1) as u64)?;
    Ok(Deployment {
        name: name.to_string(),
        get_us: best_latency(&get_us),
        l2_hit_us: best_latency(&hit_us),
        l2_miss_us: best_latency(&miss_us),
        invalidation_p50_us: p50,
        invalidation_p99_us: p99,
        value_bytes,
        l2_hits: l2_hits - keys,
        calls,
    })
}

/// Median and 99th percentile, in µs, from `invalidate` to its event on another connection.
fn invalidation_latency(events: &redis::Client, count: u64) -> Result<(f64, f64), String> {
    let mut connection = events.get_connection().map_err(|e| e.to_string())?;
    let mut subscription = connection.as_pubsub();
    subscription
        .subscribe(format!("{PREFIX}:events"))
        .map_err(|e| e.to_string())?;
    subscription
        .set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    let mut latencies = Vec::new();
    for key in 0..count {
        let started = Instant::now();
        payload_cache().invalidate(&key);
        subscription
            .get_message()
            .map_err(|e| format!("the invalidation's event did not arrive: {e}"))?;
        latencies.push(started.elapsed().as_secs_f64() * 1e6);
    }
    latencies.sort_by(f64::total_cmp);
    let at = |p: f64| latencies[((latencies.len() - 1) as f64 * p).round() as usize];
    Ok((at(0.5), at(0.99)))
}

fn micros(started: Instant, n: u64) -> f64 {
    started.elapsed().as_secs_f64() * 1e6 / n.max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_timed_call_is_an_l2_hit_on_both_deployments() {
        let sizes = SharedSizes {
            keys: 50,
            rounds: 2,
            invalidations: 20,
        };
        match measure(sizes) {
            Ok(result) => {
                let cluster = result.cluster.expect("the cluster was measured");
                for deployment in [&result.server, &cluster] {
                    assert_eq!(deployment.l2_hits, 100, "{deployment:?}");
                    assert!(
                        (90..130).contains(&deployment.value_bytes),
                        "{deployment:?}"
                    );
                    assert!(deployment.get_us > 0.0 && deployment.l2_hit_us > 0.0);
                    assert!(deployment.invalidation_p50_us <= deployment.invalidation_p99_us);
                }
            }
            Err(why) if std::env::var("MEMOKIT_REQUIRE_REDIS").as_deref() != Ok("1") => {
                eprintln!("skipped: {why}")
            }
            Err(why) => panic!("{why}"),
        }
    }
}
