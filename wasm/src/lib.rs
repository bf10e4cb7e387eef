//! memokit with its default features, on WebAssembly: the checks that `.ci/run` runs under
//! Node.js on `wasm32-wasip1` (the binary) and `wasm32-unknown-unknown` (this library as a
//! module with a few exports, instantiated by `run.mjs` with no JavaScript glue), and natively
//! as a test.
//!
//! [`check`] runs everywhere: `#[cached]` hits, misses and evictions, the registry, the test
//! switch, an `async` function polled without a runtime, expiry on a mock clock, two seeded caches that end alike, and the
//! calls that would start threads where there are none. [`check_real_clock`] needs std's clock
//! (not on `wasm32-unknown-unknown`, where `run.mjs` drives [`expiring`] through
//! `memokit::set_time_source` instead).

use std::fmt::Write as _;
use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicU32, Ordering::Relaxed};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use memokit::{cached, Cache};

static SQUARE_RUNS: AtomicU32 = AtomicU32::new(0);

#[cached(size = 2)]
fn square(n: u64) -> u64 {
    SQUARE_RUNS.fetch_add(1, Relaxed);
    n * n
}

static LOOKUP_RUNS: AtomicU32 = AtomicU32::new(0);

#[cached]
async fn lookup(id: u32) -> String {
    LOOKUP_RUNS.fetch_add(1, Relaxed);
    format!("user {id}")
}

static STAMP_RUNS: AtomicU32 = AtomicU32::new(0);

/// The number of the run that computed `id`'s value: a new one once the value expired.
#[cached(ttl = "1m")]
fn stamp(id: u32) -> u32 {
    let _ = id;
    STAMP_RUNS.fetch_add(1, Relaxed) + 1
}

static EXPIRING_RUNS: AtomicU32 = AtomicU32::new(0);

/// As `stamp`, for the clock of the target: the real one, or on `wasm32-unknown-unknown` the
/// one `run.mjs` installs.
#[cached(ttl = "1m")]
pub fn expiring(id: u32) -> u32 {
    let _ = id;
    EXPIRING_RUNS.fetch_add(1, Relaxed) + 1
}

/// Fails the check with a message, as `assert!` would panic (a panic aborts a wasm module with
/// no message to read).
macro_rules! ensure {
    ($condition:expr, $($message:tt)+) => {
        if !$condition {
            return Err(format!($($message)+));
        }
    };
}

/// Polls a future that never waits: there is no runtime (and no thread to block) here.
fn ready<F: Future>(future: F) -> F::Output {
    match pin!(future).poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("the future waited with nothing to wake it"),
    }
}

/// Every check that needs no clock; returns what it saw, one line per check, or what failed.
pub fn check() -> Result<String, String> {
    let mut report = String::new();

    // Hits, misses and an eviction (`size = 2`).
    for n in [2, 2, 3, 2, 4] {
        ensure!(square(n) == n * n, "square({n})");
    }
    let stats = square_cache().stats();
    ensure!(
        SQUARE_RUNS.load(Relaxed) == 3,
        "square ran {} times",
        SQUARE_RUNS.load(Relaxed)
    );
    ensure!(
        (stats.hits, stats.misses, stats.evictions, stats.len) == (2, 3, 1, 2),
        "square: {stats:?}"
    );
    writeln!(report, "#[cached(size = 2)] square: {stats}").unwrap();
    let listed = memokit::registry().stats(square_cache().name());
    ensure!(
        listed == Some(stats),
        "the registry lists square with {listed:?}"
    );
    let text = memokit::registry().prometheus();
    ensure!(
        text.contains("memokit_hits_total{function=\"memokit_wasm_check::square\"} 2"),
        "the Prometheus text: {text}"
    );

    // An `async` function, polled without a runtime.
    ensure!(ready(lookup(7)) == "user 7", "lookup(7)");
    ensure!(ready(lookup(7)) == "user 7", "lookup(7) again");
    let stats = lookup_cache().stats();
    ensure!(
        LOOKUP_RUNS.load(Relaxed) == 1 && (stats.hits, stats.misses) == (1, 1),
        "lookup ran {} times: {stats:?}",
        LOOKUP_RUNS.load(Relaxed)
    );
    writeln!(report, "#[cached] async lookup: {stats}").unwrap();

    // The test switch: the body runs, nothing is counted.
    {
        let _off = memokit::testing::disable();
        ensure!(square(2) == 4, "square(2) with memoization off");
    }
    ensure!(
        SQUARE_RUNS.load(Relaxed) == 4 && square_cache().stats().hits == 2,
        "memoization off still counted or skipped the body"
    );

    // Expiry on the test clock: no real clock needed.
    {
        let clock = memokit::testing::mock_clock();
        let first = stamp(1);
        clock.advance(Duration::from_secs(59));
        ensure!(stamp(1) == first, "stamp(1) expired before its ttl");
        clock.advance(Duration::from_secs(1));
        ensure!(
            stamp(1) == first + 1,
            "stamp(1) did not expire after its ttl"
        );
    }
    let stats = stamp_cache().stats();
    writeln!(report, "#[cached(ttl = \"1m\")] on a mock clock: {stats}").unwrap();

    // Two caches with one seed, replaying one sequence, end alike.
    let replay = |cache: &Cache<u64, u64>| {
        for i in 0..5_000u64 {
            let key = (i * i + 7 * i) % 1_009;
            cache.get_or_insert_with(key, || key);
        }
        let mut stats = cache.stats();
        stats.total_load_time = Duration::ZERO;
        let resident: Vec<u64> = (0..1_009).filter(|key| cache.peek(key).is_some()).collect();
        (stats, resident)
    };
    let seeded = || Cache::builder().max_capacity(128).shards(2).seed(7).build();
    let (first, second) = (replay(&seeded()), replay(&seeded()));
    ensure!(
        first == second,
        "two caches with seed 7 differ: {:?} and {:?}",
        first.0,
        second.0
    );
    ensure!(first.0.evictions > 0, "the replay evicted nothing");
    let (random, _) = replay(&Cache::builder().max_capacity(128).shards(2).build());
    ensure!(
        random.hits + random.misses == 5_000 && random.len == 128,
        "unseeded: {random:?}"
    );
    writeln!(report, "two caches with seed 7: {}", first.0).unwrap();

    // Where no thread can start: warm-up runs on this thread, the sweeper is left out.
    let warmed = square_cache().warm_with_parallelism([10, 11], 4);
    ensure!(warmed.loaded == 2, "warm-up: {warmed:?}");
    let swept: Cache<u32, u32> = Cache::builder()
        .time_to_live(Duration::from_secs(60))
        .sweep_interval(Duration::from_secs(1))
        .build();
    swept.insert(1, 1);
    ensure!(
        swept.get(&1) == Some(1),
        "the cache with a sweeper lost its entry"
    );
    writeln!(report, "warm-up on 4 threads asked: {warmed:?}").unwrap();

    Ok(report)
}

/// Expiry and load times on std's clock: every target but `wasm32-unknown-unknown`.
#[cfg(not(all(target_family = "wasm", target_os = "unknown")))]
pub fn check_real_clock() -> Result<String, String> {
    use std::sync::atomic::AtomicU64;
    use std::time::Instant;

    /// What the loads' bodies took, on the same clock: a sleep may end early (under Node's
    /// WASI a sleep of 2 ms has lasted 1.7 ms), so the stats are held to what really passed.
    static SLEPT_NANOS: AtomicU64 = AtomicU64::new(0);

    #[cached(ttl = "50ms")]
    fn fresh(id: u32) -> u32 {
        let start = Instant::now();
        std::thread::sleep(Duration::from_millis(2));
        SLEPT_NANOS.fetch_add(start.elapsed().as_nanos() as u64, Relaxed);
        id
    }

    fresh(1);
    fresh(1);
    std::thread::sleep(Duration::from_millis(80));
    fresh(1);
    let stats = fresh_cache().stats();
    ensure!(
        (stats.hits, stats.misses, stats.loads) == (1, 2, 2),
        "fresh: {stats:?}"
    );
    let slept = Duration::from_nanos(SLEPT_NANOS.load(Relaxed));
    ensure!(
        stats.total_load_time >= slept && slept > Duration::ZERO,
        "two loads whose bodies took {slept:?} were counted as {:?}",
        stats.total_load_time
    );
    Ok(format!(
        "#[cached(ttl = \"50ms\")] on the real clock: {stats}\n"
    ))
}

/// The exports of the `wasm32-unknown-unknown` module, called by `run.mjs`.
#[cfg(all(target_family = "wasm", target_os = "unknown"))]
#[allow(unsafe_code)] // `no_mangle` only: an export needs its name as written. No `unsafe` block.
mod exports {
    use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
    use std::sync::Mutex;
    use std::time::Duration;

    /// What the last `memokit_check` saw or what failed, for JavaScript to read.
    static REPORT: Mutex<String> = Mutex::new(String::new());
    /// The time `set_now_ms` gave, in milliseconds (the bits of an `f64`).
    static NOW_MS: AtomicU64 = AtomicU64::new(0);

    fn now() -> Duration {
        Duration::from_secs_f64(f64::from_bits(NOW_MS.load(Relaxed)) / 1000.0)
    }

    /// Runs [`check`](crate::check): 1 if it passed, 0 if not; the report says what it saw.
    #[no_mangle]
    pub extern "C" fn memokit_check() -> u32 {
        let result = crate::check();
        let passed = result.is_ok();
        *REPORT.lock().unwrap() = result.unwrap_or_else(|failure| failure);
        u32::from(passed)
    }

    /// Where the report's UTF-8 bytes start in the module's memory.
    #[no_mangle]
    pub extern "C" fn report_ptr() -> usize {
        REPORT.lock().unwrap().as_ptr() as usize
    }

    /// How many bytes the report has.
    #[no_mangle]
    pub extern "C" fn report_len() -> usize {
        REPORT.lock().unwrap().len()
    }

    /// Installs the clock that `set_now_ms` moves as memokit's time source; 1 if it was
    /// installed, 0 if one was already.
    #[no_mangle]
    pub extern "C" fn install_clock() -> u32 {
        u32::from(memokit::set_time_source(now))
    }

    /// Sets the time the installed clock reads, as `performance.now()` would give it.
    #[no_mangle]
    pub extern "C" fn set_now_ms(ms: f64) {
        NOW_MS.store(ms.to_bits(), Relaxed);
    }

    /// [`expiring`](crate::expiring)`(id)`: the number of the run that computed its value.
    #[no_mangle]
    pub extern "C" fn expiring(id: u32) -> u32 {
        crate::expiring(id)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_check_passes_natively() {
        super::check().unwrap();
        #[cfg(not(all(target_family = "wasm", target_os = "unknown")))]
        super::check_real_clock().unwrap();
    }
}
