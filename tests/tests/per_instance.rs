//! `#[cached(instance = field)]`: each instance owns the cache of a method, which goes when the
//! instance is dropped; stats and clearing go through the instance, and the registry lists the
//! live instances' caches under the method's name.

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::Duration;

use memokit::{cached, Memo};

/// A value that counts how many of it are alive, to see the cache go with its instance.
#[derive(Debug)]
struct Tracked;

static ALIVE: AtomicUsize = AtomicUsize::new(0);

impl Clone for Tracked {
    fn clone(&self) -> Tracked {
        ALIVE.fetch_add(1, SeqCst);
        Tracked
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        ALIVE.fetch_sub(1, SeqCst);
    }
}

struct Session {
    tracked: Memo<u64, Tracked>,
}

impl Session {
    #[cached(instance = tracked, name = "per_instance::Session::track")]
    fn track(&self, _id: u64) -> Tracked {
        ALIVE.fetch_add(1, SeqCst);
        Tracked
    }
}

#[derive(Clone, Debug, PartialEq)]
struct Counted(u64);

impl Counted {
    fn new(n: u64) -> Counted {
        Counted(n)
    }
}

struct Repo {
    tenant: u64,
    loads: AtomicUsize,
    users: Memo<u64, Counted>,
}

impl Repo {
    fn new(tenant: u64) -> Repo {
        Repo {
            tenant,
            loads: AtomicUsize::new(0),
            users: Repo::new_user_cache(),
        }
    }

    /// Depends on `self.tenant`: a cache shared by all instances would mix tenants.
    #[cached(size = 100, instance = users, name = "per_instance::Repo::user")]
    fn user(&self, id: u64) -> Counted {
        self.loads.fetch_add(1, SeqCst);
        thread::sleep(Duration::from_millis(20));
        Counted::new(self.tenant * 1_000 + id)
    }
}

struct Prices {
    factor: u64,
    cache: Memo<(String, u32), u64>,
}

impl Prices {
    /// The receiver written out (`self: &Self`) is `&self` (it was refused).
    #[allow(clippy::needless_arbitrary_self_type)]
    #[cached(instance = cache)]
    async fn price(self: &Self, symbol: &str, day: u32) -> u64 {
        symbol.len() as u64 * u64::from(day) * self.factor
    }
}

#[test]
fn each_instance_computes_and_keeps_its_own_values() {
    let (a, b) = (Repo::new(1), Repo::new(2));
    assert_eq!(a.user(7), Counted(1_007));
    assert_eq!(b.user(7), Counted(2_007), "not instance a's value");
    assert_eq!(a.user(7), Counted(1_007));
    assert_eq!((a.users.stats().hits, a.users.stats().misses), (1, 1));
    assert_eq!((b.users.stats().hits, b.users.stats().misses), (0, 1));
    b.users.clear();
    assert_eq!(a.users.len(), 1, "clearing b leaves a alone");
    assert_eq!(b.user(7), Counted(2_007));
    assert_eq!(b.loads.load(SeqCst), 2);
    assert_eq!(a.loads.load(SeqCst), 1);
}

#[test]
fn concurrent_callers_of_one_instance_share_one_computation() {
    let repo = Arc::new(Repo::new(3));
    let start = Arc::new(Barrier::new(8));
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let (repo, start) = (repo.clone(), start.clone());
            thread::spawn(move || {
                start.wait();
                repo.user(1)
            })
        })
        .collect();
    for thread in threads {
        assert_eq!(thread.join().unwrap(), Counted(3_001));
    }
    assert_eq!(repo.loads.load(SeqCst), 1);
}

#[tokio::test]
async fn async_methods_and_borrowed_keys_work_per_instance() {
    let cheap = Prices {
        factor: 1,
        cache: Prices::new_price_cache(),
    };
    let dear = Prices {
        factor: 10,
        cache: Prices::new_price_cache(),
    };
    assert_eq!(cheap.price("ACME", 2).await, 8);
    assert_eq!(dear.price("ACME", 2).await, 80);
    assert_eq!(cheap.price("ACME", 2).await, 8);
    assert_eq!(cheap.cache.get(&("ACME".to_string(), 2)), Some(8));
    assert_eq!(cheap.cache.stats().hits, 1);
}

#[test]
fn the_cache_goes_with_its_instance_and_the_registry_follows() {
    let name = "per_instance::Session::track";
    let session = Session {
        tracked: Session::new_track_cache(),
    };
    for id in 0..10 {
        drop(session.track(id));
    }
    assert_eq!(ALIVE.load(SeqCst), 10, "ten values held by the cache");
    let other = Session {
        tracked: Session::new_track_cache(),
    };
    drop(other.track(1));
    let listed = || {
        memokit::registry()
            .functions()
            .into_iter()
            .filter(|f| f.name == name)
            .map(|f| (f.stats.misses, f.stats.len))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        listed(),
        [(11, 11)],
        "listed once, the live instances added up"
    );
    let misses = memokit::registry().stats(name).unwrap().misses;
    assert_eq!(misses, 11, "the registry adds up the live instances");
    drop(session);
    assert_eq!(ALIVE.load(SeqCst), 1, "the values went with the instance");
    assert_eq!(
        listed(),
        [(11, 1)],
        "the dropped one's entries gone, its counts kept: the counters never go down"
    );
    // A new instance lists itself, which folds the dropped one's counts into the name's.
    let third = Session {
        tracked: Session::new_track_cache(),
    };
    assert_eq!(listed(), [(11, 1)], "the counts kept through the fold");
    drop(third);
    assert!(memokit::registry().clear(name));
    assert_eq!(ALIVE.load(SeqCst), 0, "cleared through the registry");
    assert!(other.tracked.is_empty());
}
