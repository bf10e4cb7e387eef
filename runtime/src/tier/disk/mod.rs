//! The disk tier: [`Disk`], one function's view of a file, implements [`Tier`]; the file
//! itself, shared by the functions that name it, is a `store::Store`. What users configure is
//! re-exported by `crate::disk`, which also documents the behaviour.

// redb's error is large; it is only built on the rare failing path, never on a hit.
#![allow(clippy::result_large_err)]

mod store;

use std::fmt;
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Waker};
use std::time::Duration;

use crate::cache::flight::Superseded;
use crate::cache::stats::Stats;
use crate::cache::Cache;
use crate::tier::{
    BlockingWork, Claim, ClaimMany, Fetched, FoundMany, Tier, TierFuture, TierHandle,
};
use store::Found;
pub(crate) use store::{default_path, flush_all, open, Store, FORMAT};
pub use store::{Config, Error};

/// One function's view of a disk file: its name (the prefix of its entries), its time to
/// live, its codec and its counters.
pub struct Disk<K, V>(Arc<Inner<K, V>>);

struct Inner<K, V> {
    path: Option<&'static str>,
    ttl: Option<Duration>,
    encode_key: fn(&K) -> Option<Vec<u8>>,
    encode_value: fn(&V) -> Option<Vec<u8>>,
    decode_value: fn(&[u8]) -> Option<V>,
    /// The file and the prefix of the function's entries, set by `attach`; an error at open
    /// leaves the function in-process only.
    state: OnceLock<Result<Attached, String>>,
    counters: Counters,
}

struct Attached {
    store: Arc<Store>,
    prefix: Vec<u8>,
}

#[derive(Default)]
struct Counters {
    hits: AtomicU64,
    misses: AtomicU64,
    errors: AtomicU64,
    write_errors: AtomicU64,
    decode_errors: AtomicU64,
    evictions: AtomicU64,
}

impl<K, V> fmt::Debug for Disk<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Disk")
            .field("path", &self.0.path)
            .field("ttl", &self.0.ttl)
            .finish()
    }
}

/// Takes `name` on the file at `path` (`None`: the default file) for the function defined at
/// `defined_at`; `Err` with where the function that has it is defined.
fn claim_name(
    path: Option<&'static str>,
    name: &'static str,
    defined_at: &'static std::panic::Location<'static>,
) -> Result<(), &'static std::panic::Location<'static>> {
    type Named = (
        Option<&'static str>,
        &'static str,
        &'static std::panic::Location<'static>,
    );
    static NAMES: parking_lot::Mutex<Vec<Named>> = parking_lot::Mutex::new(Vec::new());
    let mut names = NAMES.lock();
    match names
        .iter()
        .find(|(taken_path, taken, _)| *taken_path == path && *taken == name)
    {
        Some(&(_, _, first)) => Err(first),
        None => {
            names.push((path, name, defined_at));
            Ok(())
        }
    }
}

impl<K, V> Disk<K, V> {
    /// The tier of a function stored in the file at `path` (`None`: the default file), each
    /// entry kept for `ttl` (`None`: until evicted or removed).
    pub(crate) fn new(
        path: Option<&'static str>,
        ttl: Option<Duration>,
        encode_key: fn(&K) -> Option<Vec<u8>>,
        encode_value: fn(&V) -> Option<Vec<u8>>,
        decode_value: fn(&[u8]) -> Option<V>,
    ) -> Self {
        Disk(Arc::new(Inner {
            path,
            ttl,
            encode_key,
            encode_value,
            decode_value,
            state: OnceLock::new(),
            counters: Counters::default(),
        }))
    }
}

impl<K: Clone, V: Clone> Inner<K, V> {
    /// The file and prefix, or `None` (counted as an error) when the file did not open.
    fn attached(&self) -> Option<&Attached> {
        match self.state.get() {
            Some(Ok(attached)) => Some(attached),
            _ => {
                self.counters.errors.fetch_add(1, Relaxed);
                None
            }
        }
    }

    fn entry_key(&self, attached: &Attached, key: &K) -> Option<Vec<u8>> {
        let Some(bytes) = (self.encode_key)(key) else {
            self.counters.errors.fetch_add(1, Relaxed);
            return None;
        };
        let mut full = attached.prefix.clone();
        full.extend_from_slice(&bytes);
        Some(full)
    }

    /// `entries` encoded for the file, each with its place in `entries`: those whose value
    /// does not encode are left out (counted).
    fn entries(&self, attached: &Attached, entries: &[(K, V)]) -> Vec<(usize, Encoded)> {
        entries
            .iter()
            .enumerate()
            .filter_map(|(at, (key, value))| {
                let key = self.entry_key(attached, key)?;
                match (self.encode_value)(value) {
                    Some(value) => Some((at, (key, value))),
                    None => {
                        self.counters.errors.fetch_add(1, Relaxed);
                        None
                    }
                }
            })
            .collect()
    }

    /// Writes `entries` but those `skip` (asked with each one's place, under the file's write
    /// lock) says not to; `durable`: a write of the program (`insert`), on disk when it
    /// returns, not a computed value.
    fn write(&self, entries: &[(K, V)], skip: impl Fn(usize) -> bool, durable: bool) {
        let Some(attached) = self.attached() else {
            return;
        };
        let (places, encoded): (Vec<usize>, Vec<_>) =
            self.entries(attached, entries).into_iter().unzip();
        if encoded.is_empty() {
            return;
        }
        match attached
            .store
            .put(&encoded, self.ttl, |at| skip(places[at]), durable)
        {
            Ok(written) => {
                self.counters.evictions.fetch_add(written.evicted, Relaxed);
            }
            Err(e) => self.failed_write(&attached.store, e),
        }
    }

    /// The value of `key` in the file, with how long it has left to live.
    fn look(&self, key: &K) -> Option<(V, Option<Duration>)> {
        let attached = self.attached()?;
        let key = self.entry_key(attached, key)?;
        match attached.store.get(&key) {
            Ok(Found::Value(bytes, left)) => match (self.decode_value)(&bytes) {
                Some(value) => {
                    self.counters.hits.fetch_add(1, Relaxed);
                    Some((value, left))
                }
                None => {
                    // Another type or format: a miss, overwritten by the computed value.
                    self.counters.decode_errors.fetch_add(1, Relaxed);
                    self.counters.misses.fetch_add(1, Relaxed);
                    None
                }
            },
            Ok(Found::Expired) => {
                self.counters.misses.fetch_add(1, Relaxed);
                if let Err(e) = attached.store.remove(&[key], false) {
                    self.failed_write(&attached.store, e);
                }
                None
            }
            Ok(Found::Absent) => {
                self.counters.misses.fetch_add(1, Relaxed);
                None
            }
            Err(e) => {
                self.failed(&attached.store, e);
                None
            }
        }
    }

    fn remove_keys(&self, keys: &[K]) {
        let Some(attached) = self.attached() else {
            return;
        };
        let keys: Vec<Vec<u8>> = keys
            .iter()
            .filter_map(|key| self.entry_key(attached, key))
            .collect();
        // Durable at once: an invalidation a restart brought back would serve what it removed.
        if let Err(e) = attached.store.remove(&keys, true) {
            self.failed_write(&attached.store, e);
        }
    }

    /// A failed operation: counted, and (feature `tracing`) a warning.
    #[cfg_attr(not(feature = "tracing"), allow(unused_variables))]
    fn failed(&self, store: &Store, error: redb::Error) {
        self.counters.errors.fetch_add(1, Relaxed);
        #[cfg(feature = "tracing")]
        tracing::warn!(target: "memokit::disk", "{}", store.error(error));
    }

    /// A failed write (a full disk, a file size limit): counted among the errors and apart.
    fn failed_write(&self, store: &Store, error: redb::Error) {
        self.counters.write_errors.fetch_add(1, Relaxed);
        self.failed(store, error);
    }
}

/// An entry as the file holds it: its key (with the function's prefix) and its encoded value.
type Encoded = (Vec<u8>, Vec<u8>);

/// The right to store the computed value of one key.
struct DiskClaim<K, V> {
    tier: Arc<Inner<K, V>>,
    key: K,
}

/// The right to store the values a batch computed.
struct DiskBatchClaim<K, V>(Arc<Inner<K, V>>);

impl<K, V> Claim<V> for DiskClaim<K, V>
where
    K: Clone + Send + Sync,
    V: Clone + Send + Sync,
{
    fn store(self: Box<Self>, value: &V, superseded: Superseded<V>) -> TierFuture<'static, ()> {
        // `superseded` is read under the file's write lock: a write of the key that came
        // first made it true, one that comes later removes or replaces this value.
        self.tier
            .write(&[(self.key, value.clone())], |_| superseded.get(), false);
        Box::pin(std::future::ready(()))
    }
}

impl<K, V> ClaimMany<K, V> for DiskBatchClaim<K, V>
where
    K: Clone + Send + Sync,
    V: Clone + Send + Sync,
{
    fn store<'a>(
        &'a self,
        entries: &'a [(K, V)],
        superseded: &'a [Superseded<V>],
    ) -> TierFuture<'a, ()> {
        // As for one key: each mark is read under the file's write lock.
        self.0.write(entries, |at| superseded[at].get(), false);
        Box::pin(std::future::ready(()))
    }
}

impl<K, V> Tier<K, V> for Disk<K, V>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    fn attach(
        &self,
        name: &'static str,
        _local: &Cache<K, V>,
        defined_at: &'static std::panic::Location<'static>,
    ) {
        self.0.state.get_or_init(|| {
            if let Err(first) = claim_name(self.0.path, name, defined_at) {
                // Sharing entries, the two would return each other's values.
                let message = format!(
                    "two functions are named {name:?} on one disk file, at {first} and at \
                     {defined_at}: they would read each other's entries, so the one at \
                     {defined_at} does not use the file (in-process only, counted in \
                     disk_errors). Give one of them another `name = \"…\"`."
                );
                #[cfg(feature = "tracing")]
                tracing::error!(target: "memokit::disk", "{message}");
                return Err(message);
            }
            let store = store::open_for(self.0.path).map_err(|e| {
                #[cfg(feature = "tracing")]
                tracing::error!(target: "memokit::disk", "{e}; `{name}` runs in-process only");
                e.to_string()
            })?;
            let mut prefix = Vec::with_capacity(2 + name.len());
            let len = u16::try_from(name.len()).unwrap_or(u16::MAX);
            prefix.extend_from_slice(&len.to_le_bytes());
            prefix.extend_from_slice(&name.as_bytes()[..usize::from(len)]);
            Ok(Attached { store, prefix })
        });
    }

    fn get<'a>(&'a self, key: &'a K, superseded: &'a Superseded<V>) -> TierFuture<'a, Fetched<V>> {
        // A file that did not open is a counted error, no claim; a refresh reads nothing but
        // stores its value.
        let fetched = if self.0.attached().is_none() {
            Fetched::Miss(None)
        } else {
            let found = match superseded.is_refresh() {
                true => None,
                false => self.0.look(key),
            };
            match found {
                Some((value, left)) => {
                    // In the process too, it lives only what it has left: its ttl counts from
                    // when it was computed, not from when it was read back.
                    if let Some(left) = left {
                        superseded.limit_lifetime(left);
                    }
                    Fetched::Hit(value)
                }
                None => Fetched::Miss(Some(Box::new(DiskClaim {
                    tier: self.0.clone(),
                    key: key.clone(),
                }) as Box<dyn Claim<V>>)),
            }
        };
        Box::pin(std::future::ready(fetched))
    }

    fn get_many<'a>(
        &'a self,
        keys: &'a [K],
        _superseded: &'a [Superseded<V>],
    ) -> TierFuture<'a, FoundMany<K, V>> {
        let found = keys.iter().map(|key| self.0.look(key)).collect();
        let claim = Box::new(DiskBatchClaim(self.0.clone()));
        Box::pin(std::future::ready(FoundMany { found, claim }))
    }

    fn put(&self, key: &K, value: &V) {
        self.0
            .write(&[(key.clone(), value.clone())], |_| false, true);
    }

    fn put_many(&self, entries: &[(K, V)]) {
        self.0.write(entries, |_| false, true);
    }

    fn remove(&self, key: &K) {
        self.0.remove_keys(std::slice::from_ref(key));
    }

    fn remove_many(&self, keys: &[K]) {
        self.0.remove_keys(keys);
    }

    fn clear(&self) {
        let Some(attached) = self.0.attached() else {
            return;
        };
        if let Err(e) = attached.store.remove_prefix(&attached.prefix, true) {
            self.0.failed_write(&attached.store, e);
        }
    }

    fn add_stats(&self, stats: &mut Stats) {
        let c = &self.0.counters;
        stats.disk_hits += c.hits.load(Relaxed);
        stats.disk_misses += c.misses.load(Relaxed);
        stats.disk_errors += c.errors.load(Relaxed);
        stats.disk_write_errors += c.write_errors.load(Relaxed);
        stats.disk_decode_errors += c.decode_errors.load(Relaxed);
        stats.disk_evictions += c.evictions.load(Relaxed);
    }

    fn reset_stats(&self) {
        let c = &self.0.counters;
        for counter in [
            &c.hits,
            &c.misses,
            &c.errors,
            &c.write_errors,
            &c.decode_errors,
            &c.evictions,
        ] {
            counter.store(0, Relaxed);
        }
    }

    fn block_on(&self, mut work: BlockingWork<'_>) {
        // Every operation of the disk tier is done when its future is made: one poll ends it.
        let mut cx = Context::from_waker(Waker::noop());
        while work.as_mut().poll(&mut cx).is_pending() {
            std::thread::yield_now();
        }
    }
}

impl<K, V> From<Disk<K, V>> for TierHandle<K, V>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    fn from(disk: Disk<K, V>) -> Self {
        TierHandle(Some(Box::new(disk)))
    }
}
