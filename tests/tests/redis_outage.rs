//! The shared tier when Redis dies (`kill -9`), stalls (`SIGSTOP`) and comes back: every call
//! still returns the right value within a bounded extra latency, errors are counted, and the
//! tier resumes by itself.

use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use memokit::cached;
use memokit::redis::{connect_with, Config};
use memokit_tests::RedisServer;

fn expected(n: u32) -> u64 {
    u64::from(n) * 3 + 1
}

/// A small in-process tier, so that most calls go to Redis.
#[cached(size = 16, redis(ttl = "1m", lease = "1s"), name = "t::outage")]
fn outage(n: u32) -> u64 {
    thread::sleep(Duration::from_micros(200));
    expected(n)
}

/// Callers on 4 threads until `stop`: (calls, wrong answers, slowest call).
fn hammer(stop: Arc<AtomicBool>) -> Vec<thread::JoinHandle<(u64, u64, Duration)>> {
    (0..4_u32)
        .map(|t| {
            let stop = stop.clone();
            thread::spawn(move || {
                let (mut calls, mut wrong, mut slowest) = (0, 0, Duration::ZERO);
                let mut state = 0x9e37_79b9_7f4a_7c15_u64 ^ u64::from(t + 1);
                while !stop.load(SeqCst) {
                    // xorshift: keys 0..200 in no particular order.
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    let n = u32::try_from(state % 200).unwrap();
                    let started = Instant::now();
                    let value = outage(n);
                    slowest = slowest.max(started.elapsed());
                    calls += 1;
                    if value != expected(n) {
                        wrong += 1;
                    }
                }
                (calls, wrong, slowest)
            })
        })
        .collect()
}

fn signal(server_pid: u32, signal: &str) {
    let status = Command::new("kill")
        .args([signal, &server_pid.to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
}

#[test]
fn kill_stall_and_restart_of_redis_never_give_a_wrong_answer() {
    let Some(mut server) = RedisServer::start() else {
        return;
    };
    let timeout = Duration::from_millis(50);
    connect_with(
        Config::new(server.url())
            .prefix("outage")
            .timeout(timeout)
            .retry_after(Duration::from_millis(200)),
    )
    .unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let threads = hammer(stop.clone());
    thread::sleep(Duration::from_millis(500));
    let before = outage_cache().stats();
    assert!(
        before.l2_hits > 0,
        "the tier works before the outage: {before}"
    );
    // A 50 ms timeout can expire on a heavily loaded machine (it did once at load 7.5), so a
    // few timeouts are tolerated; a tier that does not work fails most of its calls.
    assert!(
        before.l2_errors * 20 <= before.l2_hits,
        "errors before the outage are rare: {before}"
    );

    // Stalled: the server takes connections but does not answer.
    let pid = server.pid().expect("running");
    signal(pid, "-STOP");
    thread::sleep(Duration::from_millis(700));
    signal(pid, "-CONT");
    thread::sleep(Duration::from_millis(500));
    let stalled = outage_cache().stats();
    assert!(stalled.l2_errors > 0, "timeouts are counted: {stalled}");

    // Killed.
    server.kill();
    thread::sleep(Duration::from_millis(800));
    let killed = outage_cache().stats();
    assert!(
        killed.l2_errors > stalled.l2_errors,
        "failures are counted: {killed}"
    );
    // Between the failures, the circuit is open: calls go on without asking Redis, and are
    // counted too, far more of them than the failures that opened it.
    assert!(
        killed.l2_skipped > killed.l2_errors,
        "calls without Redis are counted: {killed}"
    );

    // Back, empty.
    server.restart();
    let restarted = Instant::now();
    let hits_at_restart = outage_cache().stats().l2_hits;
    let resumed = loop {
        if outage_cache().stats().l2_hits > hits_at_restart + 10 {
            break restarted.elapsed();
        }
        assert!(
            restarted.elapsed() < Duration::from_secs(10),
            "L2 hits did not resume: {}",
            outage_cache().stats()
        );
        thread::sleep(Duration::from_millis(10));
    };
    stop.store(true, SeqCst);
    let (mut calls, mut wrong, mut slowest) = (0, 0, Duration::ZERO);
    for thread in threads {
        let (c, w, s) = thread.join().expect("no caller panicked");
        calls += c;
        wrong += w;
        slowest = slowest.max(s);
    }
    let stats = outage_cache().stats();
    eprintln!(
        "outage: {calls} calls, {wrong} wrong, slowest call {slowest:?} (timeout {timeout:?}), \
         L2 hits resumed {resumed:?} after the restart; {stats}"
    );
    assert_eq!(wrong, 0);
    // The slowest call waited for at most a few Redis timeouts (a lookup and a write), plus
    // scheduling noise on a loaded machine.
    assert!(
        slowest < Duration::from_millis(600),
        "slowest call {slowest:?}"
    );
}
