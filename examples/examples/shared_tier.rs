//! The shared tier: two worker processes share one Redis. One of them computes a report, the
//! other gets it from Redis; an invalidation in one reaches the other's in-process tier.
//!
//! Start Redis first (`redis-server --save '' --appendonly no`, or `docker run -p 6379:6379
//! redis`), then run `cargo run -p memokit-examples --example shared_tier`. It uses
//! `redis://127.0.0.1:6379`, or `MEMOKIT_REDIS_URL`.

use std::process::{Command, ExitCode};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use memokit::cached;
use memokit::redis::{connect_with, Config};

/// Stands in for an expensive query: 500 ms, once per key across every process.
#[cached(size = 1_000, ttl = "1m", redis(ttl = "10m"), name = "reports::build")]
fn report(id: u32) -> String {
    println!("  [{}] computing report {id} (500 ms)...", worker());
    thread::sleep(Duration::from_millis(500));
    format!("report {id}: 1234 rows")
}

fn worker() -> String {
    std::env::var("SHARED_TIER_WORKER").unwrap_or_else(|_| "main".into())
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| {
            u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
        })
}

fn sleep_until_ms(at: u64) {
    let now = now_ms();
    if at > now {
        thread::sleep(Duration::from_millis(at - now));
    }
}

fn url() -> String {
    std::env::var("MEMOKIT_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// Connects with the run's prefix and waits for the events subscription.
fn connect(prefix: &str) -> bool {
    if let Err(error) = connect_with(Config::new(url()).prefix(prefix)) {
        eprintln!("{error}");
        return false;
    }
    let started = Instant::now();
    while !memokit::redis::is_subscribed() {
        if started.elapsed() > Duration::from_secs(2) {
            return false;
        }
        thread::sleep(Duration::from_millis(10));
    }
    true
}

fn run_worker(name: &str, prefix: &str, start: u64) -> ExitCode {
    if !connect(prefix) {
        return ExitCode::FAILURE;
    }
    // Both workers ask for report 7 at the same moment: one computes, the other waits for it.
    sleep_until_ms(start);
    let started = Instant::now();
    let value = report(7);
    println!(
        "  [{name}] report(7) = {value:?} after {:?}; {}",
        started.elapsed(),
        report_cache().stats()
    );
    // Worker a invalidates report 7 a second later; worker b sees it leave its own memory.
    sleep_until_ms(start + 1_500);
    if name == "a" {
        println!("  [a] report_cache().invalidate(&7)");
        report_cache().invalidate(&7);
    } else {
        let waiting = Instant::now();
        while report_cache().get(&7).is_some() {
            if waiting.elapsed() > Duration::from_secs(5) {
                println!("  [b] the invalidation did not arrive");
                return ExitCode::FAILURE;
            }
            thread::sleep(Duration::from_millis(1));
        }
        println!(
            "  [b] report 7 left this process's memory {:?} after a's invalidation was due",
            waiting.elapsed()
        );
    }
    ExitCode::SUCCESS
}

fn main() -> ExitCode {
    let (Ok(name), Ok(prefix), Ok(start)) = (
        std::env::var("SHARED_TIER_WORKER"),
        std::env::var("SHARED_TIER_PREFIX"),
        std::env::var("SHARED_TIER_START_MS"),
    ) else {
        return run_parent();
    };
    run_worker(&name, &prefix, start.parse().unwrap_or_else(|_| now_ms()))
}

fn run_parent() -> ExitCode {
    // A prefix of this run's own, so that a second run starts from an empty Redis namespace.
    let prefix = format!("memokit-example-{}", std::process::id());
    if !connect(&prefix) {
        eprintln!(
            "Redis does not answer at {}.\nStart one with `redis-server --save '' --appendonly no` \
             (Debian/Ubuntu: `apt-get install redis-server`) or set MEMOKIT_REDIS_URL, then run again.",
            url()
        );
        return ExitCode::FAILURE;
    }
    println!(
        "Redis at {}: starting workers a and b (prefix {prefix})",
        url()
    );
    let start = now_ms() + 1_000;
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(error) => {
            eprintln!("cannot find this example's binary: {error}");
            return ExitCode::FAILURE;
        }
    };
    let mut workers = Vec::new();
    for name in ["a", "b"] {
        match Command::new(&exe)
            .env("SHARED_TIER_WORKER", name)
            .env("SHARED_TIER_PREFIX", &prefix)
            .env("SHARED_TIER_START_MS", start.to_string())
            .spawn()
        {
            Ok(child) => workers.push(child),
            Err(error) => {
                eprintln!("cannot start worker {name}: {error}");
                return ExitCode::FAILURE;
            }
        }
    }
    let mut ok = true;
    for mut child in workers {
        ok &= child.wait().is_ok_and(|status| status.success());
    }
    println!(
        "Done: \"computing report 7\" was printed once for two workers, and the invalidation crossed over."
    );
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
