//! The size of the futures callers await. Every caller of a key carries its future whole, and
//! tokio copies a task's whole future when the task completes, so after a flight ends each
//! waiter pays for every byte of it (issue #4). A computation's own state must be on the heap,
//! made only by the caller that computes; these bounds catch it coming back inline.

use std::mem::size_of_val;

use memokit::{cached, Cache};

/// What the runtime may add to a call's future besides the caller's `init` (or, for a
/// `#[cached]` function, what its arguments take): the key, the wait for a flight, a few words.
/// 288 to 328 bytes here with a `u64` key (where the first look left off among them: a hit
/// looks before the load's future is made), where the body's state inline took over 37 KB.
const OVERHEAD: usize = 352;

/// A computation whose state is large: a 4 KiB buffer held across an await.
async fn large_computation(n: u64) -> u64 {
    let buffer = [n as u8; 4096];
    tokio::task::yield_now().await;
    buffer.iter().map(|&b| u64::from(b)).sum()
}

#[cached]
async fn large_body(n: u64) -> u64 {
    let buffer = [n as u8; 4096];
    tokio::task::yield_now().await;
    buffer.iter().map(|&b| u64::from(b)).sum()
}

#[cached]
async fn large_body_fallible(n: u64) -> Result<u64, String> {
    Ok(large_computation(n).await)
}

#[cached]
async fn large_body_borrowing(name: &str) -> usize {
    name.len() + large_computation(1).await as usize
}

#[cached(refresh = "1h")]
async fn large_body_refreshed(n: u64) -> u64 {
    large_computation(n).await
}

struct Service;

impl Service {
    #[cached(key = n)]
    async fn large_method(&self, n: u64) -> u64 {
        large_computation(n).await
    }
}

#[tokio::test]
async fn a_cached_async_fn_future_does_not_hold_its_body() {
    let sizes = [
        size_of_val(&large_body(1)),
        size_of_val(&large_body_fallible(1)),
        size_of_val(&large_body_borrowing("a")),
        size_of_val(&large_body_refreshed(1)),
        size_of_val(&Service.large_method(1)),
    ];
    eprintln!("#[cached] async fn futures: {sizes:?} B");
    for size in sizes {
        assert!(size <= OVERHEAD, "{size} B in {sizes:?}");
    }
    // And the bodies still run, once per key.
    assert_eq!(large_body(1).await, 4096);
    assert_eq!(large_body(1).await, 4096);
    assert_eq!(large_body_fallible(2).await, Ok(8192));
    assert_eq!(large_body_borrowing("ab").await, 4098);
    assert_eq!(large_body_refreshed(1).await, 4096);
    assert_eq!(Service.large_method(1).await, 4096);
    assert_eq!(large_body_cache().stats().loads, 1);
}

#[tokio::test]
async fn a_loading_future_holds_init_once() {
    let cache: Cache<u64, u64> = Cache::new(10);
    let init = size_of_val(&large_computation(1));
    assert!(init > 4096);
    let call = cache.get_or_insert_with_async(1, large_computation(1));
    eprintln!(
        "init {init} B, get_or_insert_with_async {} B",
        size_of_val(&call)
    );
    assert!(
        size_of_val(&call) <= init + OVERHEAD,
        "{} B for an init of {init} B",
        size_of_val(&call)
    );
    assert_eq!(call.await, 4096);
    let fallible = async { Ok::<_, String>(large_computation(2).await) };
    let init = size_of_val(&fallible);
    let call = cache.try_get_or_insert_with_async(2, fallible);
    assert!(
        size_of_val(&call) <= init + OVERHEAD,
        "{} B for an init of {init} B",
        size_of_val(&call)
    );
    assert_eq!(call.await, Ok(8192));
}
