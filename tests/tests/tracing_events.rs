//! Feature `tracing`: a `load` span per computation (function, outcome, duration) that the
//! computation runs in, and a debug event per removed entry with its cause. Captured per test
//! with [`capture`] (on the test's own thread only).

use std::panic::catch_unwind;
use std::time::Duration;

use memokit::{cached, Cache, MockClock};
use memokit_tests::tracing_capture::{capture, Seen, SpanSeen};

/// The `load` spans of `function`, in creation order.
fn loads(seen: &Seen, function: &str) -> Vec<(u64, SpanSeen)> {
    let mut found: Vec<(u64, SpanSeen)> = seen
        .spans
        .iter()
        .filter(|(_, span)| span.name == "load" && span.fields["function"] == function)
        .map(|(id, span)| (*id, span.clone()))
        .collect();
    found.sort_by_key(|(id, _)| *id);
    for (_, span) in &found {
        assert_eq!(span.target, "memokit");
    }
    found
}

fn removals(seen: &Seen, function: &str) -> Vec<String> {
    seen.events
        .iter()
        .filter(|e| {
            e.target == "memokit" && e.fields.get("function").map(String::as_str) == Some(function)
        })
        .map(|e| {
            assert_eq!(e.level, tracing::Level::DEBUG);
            assert_eq!(e.fields["message"], "entry removed");
            e.fields["cause"].clone()
        })
        .collect()
}

#[cached(name = "trace::square")]
fn square(n: u64) -> u64 {
    tracing::info!(n, "computing");
    std::thread::sleep(Duration::from_millis(2));
    n * n
}

#[test]
fn a_computation_runs_in_a_load_span_with_outcome_and_duration() {
    let seen = capture(|| {
        assert_eq!(square(3), 9);
        assert_eq!(square(3), 9); // a hit: no span
    });
    let spans = loads(&seen, "trace::square");
    assert_eq!(spans.len(), 1, "{seen:?}");
    let (id, span) = &spans[0];
    assert_eq!(span.fields["outcome"], "ok");
    let duration = &span.fields["duration"];
    assert!(
        duration.ends_with("ms") || duration.ends_with('s'),
        "{duration}"
    );
    // The body's own event happened inside the span.
    let computing = seen
        .events
        .iter()
        .find(|e| e.fields.get("message").map(String::as_str) == Some("computing"))
        .expect("the body's event");
    assert_eq!(computing.span, Some(*id));
}

#[cached(name = "trace::fallible")]
fn fallible(n: u64) -> Result<u64, String> {
    if n == 0 {
        Err("zero".into())
    } else {
        Ok(n)
    }
}

#[cached(name = "trace::panics")]
fn panics(n: u64) -> u64 {
    if n == 0 {
        panic!("boom");
    }
    n
}

#[test]
fn errors_and_panics_are_outcomes() {
    let seen = capture(|| {
        assert!(fallible(0).is_err());
        assert!(fallible(1).is_ok());
        assert!(catch_unwind(|| panics(0)).is_err());
    });
    let outcomes = |function| -> Vec<String> {
        loads(&seen, function)
            .into_iter()
            .map(|(_, span)| span.fields["outcome"].clone())
            .collect()
    };
    assert_eq!(outcomes("trace::fallible"), ["error", "ok"]);
    assert_eq!(outcomes("trace::panics"), ["panic"]);
}

#[cached(name = "trace::fetch")]
async fn fetch(n: u64) -> u64 {
    tokio::task::yield_now().await;
    tracing::info!("fetched");
    if n == 0 {
        std::future::pending::<()>().await;
    }
    n
}

#[test]
fn async_computations_run_in_their_span_and_cancellation_is_an_outcome() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let seen = capture(|| {
        runtime.block_on(async {
            assert_eq!(fetch(5).await, 5);
            let cancelled = tokio::time::timeout(Duration::from_millis(20), fetch(0)).await;
            assert!(cancelled.is_err());
        })
    });
    let spans = loads(&seen, "trace::fetch");
    let outcomes: Vec<&str> = spans
        .iter()
        .map(|(_, s)| s.fields["outcome"].as_str())
        .collect();
    assert_eq!(outcomes, ["ok", "cancelled"]);
    // Each `fetched` event (after an await) is inside its own computation's span.
    let in_spans: Vec<Option<u64>> = seen
        .events
        .iter()
        .filter(|e| e.fields.get("message").map(String::as_str) == Some("fetched"))
        .map(|e| e.span)
        .collect();
    assert_eq!(in_spans, [Some(spans[0].0), Some(spans[1].0)]);
}

#[cached(name = "trace::small", size = 1, policy = fifo)]
fn small(n: u64) -> u64 {
    n
}

#[test]
fn removals_are_debug_events_with_their_cause() {
    let seen = capture(|| {
        small(1);
        small(2); // evicts 1
        small_cache().invalidate(&2);
        small_cache().insert(3, 3);
        small_cache().insert(3, 4); // replaced: not reported
    });
    assert_eq!(removals(&seen, "trace::small"), ["Size", "Invalidated"]);

    // A cache used directly has no function name.
    let clock = MockClock::new();
    let cache: Cache<u32, u32> = Cache::builder()
        .time_to_live(Duration::from_secs(1))
        .clock(clock.clone())
        .build();
    let seen = capture(|| {
        cache.insert(1, 1);
        clock.advance(Duration::from_secs(2));
        cache.purge_expired();
    });
    assert_eq!(removals(&seen, ""), ["Expired"]);
}

static ROWS_GATE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(true);
static ROWS_BLOCKED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// A batch function whose single-key call waits for `ROWS_GATE`.
#[cached(batch, name = "trace::rows")]
fn rows(ids: &[u64]) -> std::collections::HashMap<u64, u64> {
    use std::sync::atomic::Ordering::SeqCst;
    if ids.len() == 1 {
        ROWS_BLOCKED.store(true, SeqCst);
        while !ROWS_GATE.load(SeqCst) {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    ids.iter().map(|&id| (id, id * 10)).collect()
}

/// A batch gives up the leads it took when it meets a key another call computes (it takes
/// them again after): each given-up lead's span ends as `released`, and every span has an
/// outcome. Each key of two in turn is the one computed elsewhere, so that in one of the two
/// rounds the batch takes a lead before it meets that key, whatever the hashes' order.
#[test]
fn a_batch_lead_given_up_is_a_released_outcome() {
    use std::sync::atomic::Ordering::SeqCst;
    let mut outcomes = Vec::new();
    for elsewhere in [1, 2] {
        rows_cache().clear();
        ROWS_GATE.store(false, SeqCst);
        ROWS_BLOCKED.store(false, SeqCst);
        // Under a capture of its own: the `load` span's callsite must not be registered while
        // no subscriber exists (tracing would cache it as never enabled, and another test of
        // this binary running at that moment would see no span).
        let blocker =
            std::thread::spawn(move || capture(|| assert_eq!(rows(&[elsewhere]).len(), 1)));
        while !ROWS_BLOCKED.load(SeqCst) {
            std::thread::sleep(Duration::from_millis(1));
        }
        let opener = std::thread::spawn(|| {
            std::thread::sleep(Duration::from_millis(100));
            ROWS_GATE.store(true, SeqCst);
        });
        let seen = capture(|| assert_eq!(rows(&[1, 2]).len(), 2));
        blocker.join().unwrap();
        opener.join().unwrap();
        outcomes.extend(
            loads(&seen, "trace::rows")
                .into_iter()
                .map(|(_, span)| span.fields.get("outcome").cloned().unwrap_or_default()),
        );
    }
    assert!(outcomes.iter().any(|o| o == "released"), "{outcomes:?}");
    assert!(outcomes.iter().all(|o| !o.is_empty()), "{outcomes:?}");
}
