//! Warm-up: [`LoadingMemo`], the handle of a `#[cached]` function that can call the function
//! for a key by itself, and its `warm(keys)`.

use std::collections::HashSet;
use std::fmt;
use std::future::{poll_fn, Future};
use std::hash::Hash;
use std::marker::PhantomData;
use std::num::NonZeroUsize;
use std::ops::{AddAssign, Deref};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::OnceLock;
use std::task::Poll;
use std::thread;

use parking_lot::Mutex;

use crate::memo::{get_or_init_registered, testing, Memo};

/// What a warm-up did: every distinct key given is counted in exactly one field.
///
/// ```
/// #[memokit::cached]
/// fn parse(text: String) -> Result<u32, std::num::ParseIntError> {
///     text.parse()
/// }
///
/// parse("1".to_string()).unwrap();
/// let report = parse_cache().warm(["1", "2", "x"].map(String::from));
/// assert_eq!((report.loaded, report.failed, report.already_cached), (1, 1, 1));
/// assert_eq!(report.to_string(), "loaded=1 failed=1 already_cached=1");
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct WarmReport {
    /// Keys the function was called for and returned without an error (a value, an `Ok`, or
    /// any `Option`; a `None` with `cache_none = false` is counted here but not stored), or
    /// with an `Err` that `cache_errors = true` stores. With the shared tier, a key found in
    /// Redis is loaded from there, not computed. A call whose `Err` `stale_if_error` answered
    /// with the expired value is not loaded (nothing was stored): it is failed.
    pub loaded: usize,
    /// Keys whose call returned an `Err` it does not store (without `cache_errors`, and also
    /// when `stale_if_error` answered it with the expired value) or panicked
    /// (the panic hook still prints the message; the other keys are warmed anyway).
    pub failed: usize,
    /// Keys already cached in this process when their turn came: skipped, not recomputed.
    pub already_cached: usize,
}

impl AddAssign for WarmReport {
    fn add_assign(&mut self, other: WarmReport) {
        self.loaded += other.loaded;
        self.failed += other.failed;
        self.already_cached += other.already_cached;
    }
}

impl fmt::Display for WarmReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "loaded={} failed={} already_cached={}",
            self.loaded, self.failed, self.already_cached
        )
    }
}

impl WarmReport {
    fn count_call(&mut self, succeeded: bool) {
        if succeeded {
            self.loaded += 1;
        } else {
            self.failed += 1;
        }
    }
}

/// The handle of a `#[cached]` free function whose key is its arguments (no `key = …`, no
/// `#[skip]`): a
/// [`Memo`] (every method of which it has, through `Deref`) that can also call the function
/// for a key, to fill the cache ahead of the first callers with `warm(keys)` (below).
///
/// `L` is how it calls the function: [`SyncLoader`] for a synchronous one (`warm` runs the
/// calls on threads), [`AsyncLoader`] for an `async` one (`warm(keys).await` runs them as
/// concurrent futures). Code that only needs the cache can take `&Memo<K, V>`:
/// `&LoadingMemo` converts to it.
///
/// Functions with `key = …` or a `#[skip]` argument, methods (their `self` is not in the key),
/// `unsafe fn`s and functions with a `&'static` argument (a key cannot lend one) have a plain
/// `&'static Memo<K, V>` handle: a key cannot be turned back into their arguments, so `warm`
/// on it is a compile error. Call the function for each key instead.
///
/// ```
/// #[memokit::cached(size = 1_000)]
/// fn square(n: u64) -> u64 {
///     n * n
/// }
///
/// let report = square_cache().warm(1..=100);
/// assert_eq!(report.loaded, 100);
/// assert_eq!(square_cache().get(&7), Some(49)); // through `Deref` to `Memo`
/// let memo: &memokit::Memo<u64, u64> = square_cache();
/// assert_eq!(memo.len(), 100);
/// ```
pub struct LoadingMemo<K, V, L> {
    memo: Memo<K, V>,
    loader: L,
}

/// How a [`LoadingMemo`] calls a synchronous function: a function pointer made by
/// `#[cached]`, which calls it with the arguments taken from the key and tells whether it
/// returned without an error.
///
/// ```
/// use memokit::{LoadingMemo, SyncLoader};
///
/// #[memokit::cached]
/// fn square(n: u64) -> u64 {
///     n * n
/// }
///
/// let handle: &LoadingMemo<u64, u64, SyncLoader<u64>> = square_cache();
/// assert_eq!(handle.warm([2]).loaded, 1);
/// ```
pub struct SyncLoader<K>(fn(K) -> bool);

impl<K> SyncLoader<K> {
    /// Used by `#[cached]`; not part of the stable API.
    #[doc(hidden)]
    pub fn __new(load: fn(K) -> bool) -> Self {
        SyncLoader(load)
    }
}

/// How a [`LoadingMemo`] calls an `async` function: `L` is a type made by `#[cached]` (its
/// name is not part of the API) that calls it.
///
/// ```
/// use memokit::{AsyncLoader, LoadingMemo};
///
/// #[memokit::cached]
/// async fn fetch(id: u32) -> String {
///     format!("page {id}")
/// }
///
/// fn is_async<K, V, L>(_handle: &LoadingMemo<K, V, AsyncLoader<L>>) -> bool {
///     true
/// }
/// assert!(is_async(fetch_cache()));
/// ```
pub struct AsyncLoader<L>(PhantomData<fn() -> L>);

impl<L> AsyncLoader<L> {
    /// Used by `#[cached]`; not part of the stable API.
    #[doc(hidden)]
    pub fn __new() -> Self {
        AsyncLoader(PhantomData)
    }
}

/// Implemented by `#[cached]` for each `async` function with a [`LoadingMemo`]: a named type
/// for it, so that the future of a warm-up is `Send` exactly when the function's is.
#[doc(hidden)]
pub trait LoadAsync<K> {
    /// Calls the function with the arguments taken from `key`; resolves to whether it returned
    /// without an error.
    fn load(key: K) -> impl Future<Output = bool>;
}

impl<K, V, L> Deref for LoadingMemo<K, V, L> {
    type Target = Memo<K, V>;

    fn deref(&self) -> &Memo<K, V> {
        &self.memo
    }
}

impl<K, V, L> fmt::Debug for LoadingMemo<K, V, L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoadingMemo")
            .field("memo", &self.memo)
            .field("loader", &std::any::type_name::<L>())
            .finish()
    }
}

impl<K, V, L> LoadingMemo<K, V, L> {
    /// Used by `#[cached]`; not part of the stable API.
    #[doc(hidden)]
    pub fn __new(memo: Memo<K, V>, loader: L) -> Self {
        LoadingMemo { memo, loader }
    }
}

impl<K, V, L> LoadingMemo<K, V, L>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    L: Send + Sync + 'static,
{
    /// The `static` behind a `#[cached]` function that has a loader: built on first use and
    /// then listed in the [`registry`](crate::registry()). Not part of the stable API.
    #[doc(hidden)]
    pub fn __get_or_init(
        slot: &'static OnceLock<Self>,
        init: impl FnOnce() -> Self,
    ) -> &'static Self {
        get_or_init_registered(slot, init, |loading| &loading.memo)
    }
}

/// The warm-up of a synchronous function.
impl<K, V> LoadingMemo<K, V, SyncLoader<K>>
where
    K: Hash + Eq + Clone + Send + Sync,
    V: Clone + Send + Sync,
{
    /// Calls the function for each of `keys` not cached yet, on at most as many threads as
    /// the machine runs in parallel ([`std::thread::available_parallelism`]; this thread is
    /// one of them), and stores the results as a call would. See
    /// [`warm_with_parallelism`](Self::warm_with_parallelism).
    ///
    /// ```
    /// #[memokit::cached(size = 1_000)]
    /// fn square(n: u64) -> u64 {
    ///     n * n
    /// }
    ///
    /// square(3);
    /// let report = square_cache().warm([1, 2, 3, 3]);
    /// assert_eq!((report.loaded, report.already_cached), (2, 1)); // 3 was cached (counted once)
    /// ```
    pub fn warm(&self, keys: impl IntoIterator<Item = K>) -> WarmReport {
        self.warm_with_parallelism(keys, default_parallelism())
    }

    /// Calls the function for each of `keys` not cached yet, at most `parallelism` calls at a
    /// time (`0` counts as `1`, which runs them one after the other on this thread), and waits
    /// until all are done.
    ///
    /// Each call goes the way of a normal call: it is coalesced with concurrent callers of the
    /// same key, counted in the stats, looked up in and written to the shared tier, and stored
    /// or not under the function's `cache_errors` / `cache_none` rules. Duplicate keys are
    /// warmed once. Errors and panics are counted in the [`WarmReport`], not returned: one key
    /// failing does not stop the others. The calls run on this thread and up to
    /// `parallelism - 1` scoped threads, so a function that reads thread-locals sees those of
    /// the thread its call runs on.
    ///
    /// ```
    /// #[memokit::cached]
    /// fn load(id: u32) -> Result<String, String> {
    ///     if id == 0 { Err("no row 0".into()) } else { Ok(format!("row {id}")) }
    /// }
    ///
    /// let report = load_cache().warm_with_parallelism(0..10, 4);
    /// assert_eq!((report.loaded, report.failed), (9, 1));
    /// assert_eq!(load_cache().len(), 9); // the error was not cached
    /// ```
    pub fn warm_with_parallelism(
        &self,
        keys: impl IntoIterator<Item = K>,
        parallelism: usize,
    ) -> WarmReport {
        let keys = distinct(keys);
        let workers = parallelism.clamp(1, keys.len().max(1));
        let queue = Mutex::new(keys.into_iter());
        let work = || {
            let mut report = WarmReport::default();
            loop {
                // Its own statement: the lock is released before the call.
                let next = queue.lock().next();
                let Some(key) = next else { return report };
                if self.memo.cache().contains_key(&key) {
                    report.already_cached += 1;
                    continue;
                }
                let load = self.loader.0;
                let probe = self.probe(&key);
                let succeeded = catch_unwind(AssertUnwindSafe(|| load(key))).unwrap_or(false);
                report.count_call(self.warmed(succeeded, probe.as_ref()));
            }
        };
        thread::scope(|scope| {
            // A thread that cannot be started leaves its share to the others.
            let helpers: Vec<_> = (1..workers)
                .filter_map(|_| {
                    thread::Builder::new()
                        .name("memokit-warm".into())
                        // With the caller's test switches: the calls are its calls.
                        .spawn_scoped(scope, testing::inherit(work))
                        .ok()
                })
                .collect();
            let mut report = work();
            for helper in helpers {
                // Calls cannot panic through `work`: their panics are caught.
                report += helper.join().unwrap_or_default();
            }
            report
        })
    }
}

impl<K, V, L> LoadingMemo<K, V, L>
where
    K: Hash + Eq + Clone,
    V: Clone,
{
    /// A copy of `key` to look for after its call, where a call that returns without an
    /// error may still have loaded nothing: under stale-if-error, a failed recomputation
    /// answers with the expired value and stores nothing.
    fn probe(&self, key: &K) -> Option<K> {
        self.memo
            .cache()
            .serves_stale_on_error()
            .then(|| key.clone())
    }

    /// Whether a call counts as loaded: it returned without an error and, where that is not
    /// enough ([`probe`](Self::probe)), stored its key.
    fn warmed(&self, succeeded: bool, probe: Option<&K>) -> bool {
        succeeded && probe.is_none_or(|key| self.memo.cache().contains_key(key))
    }
}

/// The warm-up of an `async` function.
impl<K, V, L> LoadingMemo<K, V, AsyncLoader<L>>
where
    K: Hash + Eq + Clone,
    V: Clone,
    L: LoadAsync<K>,
{
    /// Calls the function for each of `keys` not cached yet, with at most as many calls in
    /// flight as the machine runs threads in parallel
    /// ([`std::thread::available_parallelism`]), and stores the results as a call would. See
    /// [`warm_with_parallelism`](Self::warm_with_parallelism).
    ///
    /// ```
    /// #[memokit::cached]
    /// async fn fetch(id: u32) -> String {
    ///     format!("page {id}")
    /// }
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let report = fetch_cache().warm(1..=3).await;
    /// assert_eq!(report.loaded, 3);
    /// assert_eq!(fetch_cache().get(&2).as_deref(), Some("page 2"));
    /// # });
    /// ```
    pub async fn warm(&self, keys: impl IntoIterator<Item = K>) -> WarmReport {
        self.warm_with_parallelism(keys, default_parallelism())
            .await
    }

    /// Calls the function for each of `keys` not cached yet, with at most `parallelism` calls
    /// in flight (`0` counts as `1`), as concurrent futures polled by this one: no task is
    /// spawned and no runtime is needed besides the one the function's body needs. Resolves
    /// when all are done; the future is `Send` when the function's is. Dropping it drops the
    /// calls in flight, as dropping a call's future does (a waiting caller takes over).
    ///
    /// Calls go the way of normal calls and failures are counted, not returned, as for a
    /// synchronous function's `warm_with_parallelism` (a panic while polling one call drops
    /// that call only).
    ///
    /// ```
    /// #[memokit::cached]
    /// async fn fetch(id: u32) -> Result<String, String> {
    ///     if id == 0 { Err("no page 0".into()) } else { Ok(format!("page {id}")) }
    /// }
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let report = fetch_cache().warm_with_parallelism(0..100, 16).await;
    /// assert_eq!((report.loaded, report.failed), (99, 1));
    /// # });
    /// ```
    pub async fn warm_with_parallelism(
        &self,
        keys: impl IntoIterator<Item = K>,
        parallelism: usize,
    ) -> WarmReport {
        let mut keys = distinct(keys).into_iter();
        let parallelism = parallelism.max(1);
        let mut report = WarmReport::default();
        let mut running = Vec::with_capacity(parallelism.min(keys.len()));
        poll_fn(|cx| loop {
            while running.len() < parallelism {
                let Some(key) = keys.next() else { break };
                if self.memo.cache().contains_key(&key) {
                    report.already_cached += 1;
                } else {
                    running.push((self.probe(&key), Box::pin(L::load(key))));
                }
            }
            if running.is_empty() {
                return Poll::Ready(());
            }
            let before = running.len();
            running.retain_mut(|(probe, call)| {
                match catch_unwind(AssertUnwindSafe(|| call.as_mut().poll(cx))) {
                    Ok(Poll::Pending) => true,
                    Ok(Poll::Ready(succeeded)) => {
                        report.count_call(self.warmed(succeeded, probe.as_ref()));
                        false
                    }
                    Err(_panic) => {
                        report.failed += 1;
                        false
                    }
                }
            });
            // Every call still running has registered the waker; finished ones make room.
            if running.len() == before {
                return Poll::Pending;
            }
        })
        .await;
        report
    }
}

/// What makes `warm` on a handle without a loader a compile error that says why. Implemented
/// by no type (and not nameable outside this crate), so that no such handle has `warm`.
#[diagnostic::on_unimplemented(
    message = "this handle has no `warm`: its key `{Self}` cannot be turned back into the function's arguments",
    label = "`warm` needs a free function whose key is its arguments (no `key = …`, no `#[skip]`, not `unsafe`, not generic, not `batch`, no `&'static` argument)",
    note = "warm-up calls the function with the arguments taken from each key; a method's `self` and the arguments left out of `key = …` or marked `#[skip]` are not in the key, a key cannot lend a `&'static` borrow, and a generic function's handle is one per instantiation, which a loader of its own cannot name",
    note = "call the function for each key instead (from several threads or tasks to run the calls in parallel)"
)]
pub trait WarmNeedsArgumentsAsKey {}

/// `warm` of the handle of a function without a loader: a compile error (see
/// [`LoadingMemo`]).
impl<K, V> Memo<K, V> {
    /// Not available: see [`LoadingMemo`].
    #[doc(hidden)]
    pub fn warm(&self, keys: impl IntoIterator<Item = K>) -> WarmReport
    where
        K: WarmNeedsArgumentsAsKey,
    {
        let _ = keys;
        WarmReport::default()
    }

    /// Not available: see [`LoadingMemo`].
    #[doc(hidden)]
    pub fn warm_with_parallelism(
        &self,
        keys: impl IntoIterator<Item = K>,
        _parallelism: usize,
    ) -> WarmReport
    where
        K: WarmNeedsArgumentsAsKey,
    {
        self.warm(keys)
    }
}

fn default_parallelism() -> usize {
    thread::available_parallelism().map_or(1, NonZeroUsize::get)
}

/// The keys in their order, each once.
fn distinct<K: Hash + Eq + Clone>(keys: impl IntoIterator<Item = K>) -> Vec<K> {
    let mut seen = HashSet::new();
    keys.into_iter()
        .filter(|key| seen.insert(key.clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distinct_keeps_the_first_of_each_key_in_order() {
        assert_eq!(distinct([3, 1, 3, 2, 1]), [3, 1, 2]);
        assert!(distinct(Vec::<u8>::new()).is_empty());
    }

    #[test]
    fn reports_add_up_field_by_field() {
        let mut report = WarmReport {
            loaded: 1,
            failed: 2,
            already_cached: 3,
        };
        report += report;
        assert_eq!(
            report,
            WarmReport {
                loaded: 2,
                failed: 4,
                already_cached: 6
            }
        );
    }
}
