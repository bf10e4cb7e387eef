//! An async "database" behind a memoized lookup, under 1,000 concurrent requests: one load per
//! key, the hit ratio, and cache-aside with invalidation after a write.
//!
//! Run it with `cargo run -p memokit-examples --example async_service`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{LazyLock, Mutex};
use std::time::{Duration, Instant};

use memokit::cached;

#[derive(Debug, Clone, PartialEq)]
struct User {
    id: u64,
    name: String,
}

#[derive(Debug, Clone, PartialEq)]
enum DbError {
    NotFound(u64),
}

/// The slow source of truth: 20 ms per query, counted.
struct Database {
    users: Mutex<HashMap<u64, String>>,
    queries: AtomicUsize,
}

static DB: LazyLock<Database> = LazyLock::new(|| Database {
    users: Mutex::new((0..10).map(|id| (id, format!("user-{id}"))).collect()),
    queries: AtomicUsize::new(0),
});

impl Database {
    async fn select_user(&self, id: u64) -> Result<User, DbError> {
        self.queries.fetch_add(1, Ordering::Relaxed);
        tokio::time::sleep(Duration::from_millis(20)).await;
        let name = self.users.lock().unwrap().get(&id).cloned();
        name.map(|name| User { id, name })
            .ok_or(DbError::NotFound(id))
    }

    async fn update_name(&self, id: u64, name: &str) {
        tokio::time::sleep(Duration::from_millis(5)).await;
        self.users.lock().unwrap().insert(id, name.to_string());
    }
}

/// Cache-aside read: `Ok` users are cached for a minute; `NotFound` is not cached.
#[cached(size = 10_000, ttl = "1m")]
async fn load_user(id: u64) -> Result<User, DbError> {
    DB.select_user(id).await
}

/// Write, then invalidate, so the next read sees the new name.
async fn rename_user(id: u64, name: &str) {
    DB.update_name(id, name).await;
    load_user_cache().invalidate(&id);
}

#[tokio::main]
async fn main() {
    let started = Instant::now();
    let requests: Vec<_> = (0..1_000u64)
        .map(|i| tokio::spawn(load_user(i % 10)))
        .collect();
    let mut ok = 0;
    for request in requests {
        if request.await.expect("request task").is_ok() {
            ok += 1;
        }
    }
    let stats = load_user_cache().stats();
    println!(
        "1,000 concurrent requests over 10 users in {:?}: {ok} ok",
        started.elapsed()
    );
    println!(
        "database queries: {} (one per key)",
        DB.queries.load(Ordering::Relaxed)
    );
    println!(
        "all 1,000 found the cache empty (misses={}), but {} of them waited for another request's \
         query instead of running their own",
        stats.misses, stats.coalesced_waits
    );

    // A second wave finds every user cached.
    let started = Instant::now();
    let requests: Vec<_> = (0..1_000u64)
        .map(|i| tokio::spawn(load_user(i % 10)))
        .collect();
    for request in requests {
        request.await.expect("request task").expect("known user");
    }
    println!(
        "second wave of 1,000 in {:?}: {}",
        started.elapsed(),
        load_user_cache().stats()
    );

    let unknown = load_user(404).await;
    println!("unknown user: {unknown:?} (errors are not cached)");

    rename_user(3, "ada").await;
    let renamed = load_user(3).await.expect("user 3");
    println!("after rename_user(3): {renamed:?}");
    println!("database queries: {}", DB.queries.load(Ordering::Relaxed));
    println!("final stats: {}", load_user_cache().stats());
}
