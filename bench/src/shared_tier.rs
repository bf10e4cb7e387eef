//! The shared tier: an L2 hit of a `#[cached(redis(...))]` function against a plain blocking
//! `GET` of the same stored value with the `redis` crate, on one thread, against a throw-away
//! `redis-server` (started on a free port without persistence and killed at the end).
//!
//! Each timed call of [`payload`] first drops its key from the in-process tier (a local
//! `Cache::invalidate`, which does not touch Redis), so that the call goes in-process miss →
//! Redis hit; the `l2_hits` counter is checked to have grown by the number of calls.

use std::hint::black_box;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::latency::best_latency;

/// The prefix of the bench's Redis keys.
const PREFIX: &str = "memokit-bench";

/// A value of about 100 bytes, the same for every call of a key.
#[memokit::cached(size = 10_000, redis(ttl = "10m"), name = "bench.payload")]
pub fn payload(key: u64) -> String {
    format!("{key:020}:{}", "x".repeat(79))
}

/// The measurement's sizes.
#[derive(Debug, Clone, Copy)]
pub struct SharedSizes {
    /// Distinct keys stored in Redis before timing; every timed round calls each once.
    pub keys: usize,
    /// Rounds per way, alternating; the best of each way is reported.
    pub rounds: usize,
}

/// Microseconds per operation both ways.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SharedResult {
    /// A plain blocking `GET` of a stored entry.
    pub get_us: f64,
    /// `payload(key)` with the key not in the process: an L2 hit.
    pub l2_hit_us: f64,
    /// Bytes of one stored (encoded) value.
    pub value_bytes: usize,
    /// L2 hits counted during the timed rounds.
    pub l2_hits: u64,
    /// Calls timed through `payload`.
    pub calls: u64,
}

impl SharedResult {
    /// L2 hit over plain `GET`.
    pub fn ratio(&self) -> f64 {
        self.l2_hit_us / self.get_us
    }
}

fn find_redis_server() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("redis-server"))
        .find(|candidate| candidate.is_file())
}

/// A `redis-server` child, killed when dropped.
struct Server {
    child: Child,
    url: String,
}

impl Server {
    fn start(binary: &PathBuf) -> Result<Server, String> {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .map_err(|e| format!("no free port: {e}"))?
            .port();
        let child = Command::new(binary)
            .args(["--port", &port.to_string()])
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("redis-server does not start: {e}"))?;
        let server = Server {
            child,
            url: format!("redis://127.0.0.1:{port}"),
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let ping = server.connection().and_then(|mut conn| {
                redis::cmd("PING")
                    .query::<String>(&mut conn)
                    .map_err(|e| e.to_string())
            });
            match ping {
                Ok(_) => return Ok(server),
                Err(e) if Instant::now() >= deadline => {
                    return Err(format!("redis-server does not answer: {e}"))
                }
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    }

    fn connection(&self) -> Result<redis::Connection, String> {
        redis::Client::open(self.url.as_str())
            .and_then(|client| client.get_connection_with_timeout(Duration::from_secs(1)))
            .map_err(|e| e.to_string())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Microseconds per `GET` of each of `entries` on `conn`.
fn time_get(conn: &mut redis::Connection, entries: &[String]) -> f64 {
    let started = Instant::now();
    for entry in entries {
        let bytes: Vec<u8> = redis::cmd("GET")
            .arg(entry)
            .query(conn)
            .expect("the entry is stored");
        black_box(bytes);
    }
    started.elapsed().as_secs_f64() * 1e6 / entries.len() as f64
}

/// Microseconds per `payload(key)` of each of `0..keys`, each dropped from the process first.
fn time_l2_hit(keys: u64) -> f64 {
    let local = payload_cache().cache();
    let started = Instant::now();
    for key in 0..keys {
        local.invalidate(&key);
        black_box(payload(black_box(key)));
    }
    started.elapsed().as_secs_f64() * 1e6 / keys as f64
}

/// Runs the measurement, or says why it could not run (no `redis-server` on `PATH`, or it did
/// not start). Connects the process's shared tier to the server and disconnects it at the end.
pub fn measure(sizes: SharedSizes) -> Result<SharedResult, String> {
    let binary = find_redis_server().ok_or("`redis-server` is not on PATH")?;
    let server = Server::start(&binary)?;
    memokit::redis::connect_with(memokit::redis::Config::new(&server.url).prefix(PREFIX))
        .map_err(|e| e.to_string())?;
    let result = measure_on(&server, sizes);
    memokit::redis::disconnect();
    payload_cache().cache().clear();
    result
}

fn measure_on(server: &Server, sizes: SharedSizes) -> Result<SharedResult, String> {
    let keys = sizes.keys.max(1) as u64;
    for key in 0..keys {
        payload(key);
    }
    let mut conn = server.connection()?;
    let mut entries: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{PREFIX}:{{bench.payload:*"))
        .query(&mut conn)
        .map_err(|e| e.to_string())?;
    entries.retain(|name| !name.ends_with(":gen") && !name.ends_with(":lease"));
    if entries.len() as u64 != keys {
        return Err(format!(
            "{} entries in Redis after storing {keys} keys",
            entries.len()
        ));
    }
    let value: Vec<u8> = redis::cmd("GET")
        .arg(&entries[0])
        .query(&mut conn)
        .map_err(|e| e.to_string())?;
    // Warm-up of both ways (connections, caches).
    time_get(&mut conn, &entries);
    time_l2_hit(keys);
    let before = payload_cache().stats();
    let (mut get_us, mut l2_hit_us) = (Vec::new(), Vec::new());
    for _ in 0..sizes.rounds.max(1) {
        get_us.push(time_get(&mut conn, &entries));
        l2_hit_us.push(time_l2_hit(keys));
    }
    let after = payload_cache().stats();
    let calls = keys * sizes.rounds.max(1) as u64;
    let l2_hits = after.l2_hits - before.l2_hits;
    if l2_hits != calls || after.misses - before.misses != calls {
        return Err(format!(
            "not every timed call was an in-process miss and an L2 hit: {calls} calls, \
             {l2_hits} L2 hits, {} misses, {} L2 errors",
            after.misses - before.misses,
            after.l2_errors - before.l2_errors
        ));
    }
    Ok(SharedResult {
        get_us: best_latency(&get_us),
        l2_hit_us: best_latency(&l2_hit_us),
        value_bytes: value.len(),
        l2_hits,
        calls,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_timed_call_is_an_l2_hit() {
        match measure(SharedSizes {
            keys: 50,
            rounds: 2,
        }) {
            Ok(result) => {
                assert_eq!(result.l2_hits, 100);
                assert_eq!(result.calls, 100);
                assert!((90..130).contains(&result.value_bytes), "{result:?}");
                assert!(result.get_us > 0.0 && result.l2_hit_us > 0.0);
            }
            Err(why) if find_redis_server().is_none() => eprintln!("skipped: {why}"),
            Err(why) => panic!("{why}"),
        }
    }
}
