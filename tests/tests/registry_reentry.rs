//! The registry calls no user code while it holds its list: a removal listener that runs during
//! `registry().clear(…)` may call a `#[cached]` function for the first time (which lists it) or
//! read the registry while another thread lists a function.

use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use memokit::{cached, Cache};

#[cached]
fn audit(key: u32) -> u32 {
    key
}

#[cached]
fn first_called_elsewhere(key: u32) -> u32 {
    key
}

/// Runs `work` on a thread of its own and fails if it has not returned within five seconds
/// (a deadlocked thread is left behind).
fn returns_in_time(what: &str, work: impl FnOnce() + Send + 'static) {
    let (done, finished) = mpsc::channel();
    thread::spawn(move || {
        work();
        let _ = done.send(());
    });
    assert!(
        finished.recv_timeout(Duration::from_secs(5)).is_ok(),
        "{what} did not return: a deadlock"
    );
}

#[test]
fn a_listener_may_list_a_function_while_the_registry_clears() {
    let sessions: Cache<u32, u32> = Cache::builder()
        .eviction_listener(|key: u32, _, _| {
            audit(key);
        })
        .build();
    memokit::registry().register_cache("reentry::sessions", sessions.clone());
    sessions.insert(1, 1);
    returns_in_time("registry().clear", || {
        assert!(memokit::registry().clear("reentry::sessions"));
    });
    assert_eq!(audit_cache().len(), 1, "the listener ran");
}

#[test]
fn a_listener_may_read_the_registry_while_another_thread_lists_a_function() {
    let tokens: Cache<u32, u32> = Cache::builder()
        .eviction_listener(|_, _, _| {
            // Long enough for the other thread to wait for the list's write lock.
            thread::sleep(Duration::from_millis(300));
            let _ = memokit::registry().stats("reentry::tokens");
        })
        .build();
    memokit::registry().register_cache("reentry::tokens", tokens.clone());
    tokens.insert(1, 1);
    let lister = thread::spawn(|| {
        thread::sleep(Duration::from_millis(100));
        first_called_elsewhere(1);
    });
    returns_in_time("registry().clear", || {
        memokit::registry().clear("reentry::tokens");
    });
    lister.join().unwrap();
}
