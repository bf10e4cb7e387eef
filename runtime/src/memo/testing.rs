//! Test switches for `#[cached]` functions: memoization off, a cache cleared at the end of a
//! test, and a clock the test moves, each for one test without touching the code under test.
//!
//! # Scope: the thread
//!
//! `cargo test` runs tests as threads of one process, and every `#[cached]` function has one
//! cache for the whole process. A switch is therefore **per thread**: it acts on the calls made
//! on the thread that turned it on, from then until its guard is dropped, and on no other
//! thread, so tests running in parallel never see each other's switches.
//!
//! - A synchronous call sees the switches of the thread that makes it.
//! - An `async` call sees the switches of the thread that first polls it. The body of a
//!   `#[tokio::test]` (either flavour: `block_on` polls it on the test's thread) sees the
//!   test's switches; a task spawned with `tokio::spawn` or a thread spawned by the test runs
//!   elsewhere and does not, unless wrapped: [`scope`] carries the switches of the thread that
//!   calls it into a future (every poll of it, on whatever thread), [`inherit`] into a closure
//!   (run on another thread).
//! - What the switches change: [`disable`] makes each call run its body (nothing looked up,
//!   stored or counted); [`mock_clock`] moves the time that `#[cached]` functions with `ttl`,
//!   `tti` or `refresh` read on this thread. A [`Cache`](crate::Cache) built by hand keeps
//!   the clock it was built with ([`CacheBuilder::clock`](crate::CacheBuilder::clock)).
//! - The caches themselves are shared by every thread: a test that wants them empty clears
//!   them ([`Memo::clear_on_drop`](crate::Memo::clear_on_drop) does it when the test ends,
//!   even by a panic).
//!
//! ```
//! use memokit::cached;
//!
//! #[cached]
//! fn square(n: u64) -> u64 { n * n }
//!
//! let _cleared = square_cache().clear_on_drop(); // the cache is emptied when the test ends
//! {
//!     let _off = memokit::testing::disable();
//!     square(3); // runs the body, stores nothing
//!     assert!(square_cache().is_empty());
//! }
//! square(3); // memoized again
//! assert_eq!(square_cache().len(), 1);
//! ```

use std::cell::{Cell, RefCell};
use std::fmt;
use std::future::Future;
use std::hash::Hash;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::OnceLock;
use std::task::{Context, Poll};
use std::time::Duration;

use crate::cache::expiry::{Clock, MockClock};
use crate::cache::stopwatch::Stopwatch;
use crate::memo::Memo;

thread_local! {
    /// How many [`Disabled`] guards (and entered scopes that disable) are alive on this thread.
    static DISABLED: Cell<u32> = const { Cell::new(0) };
    /// The clock installed on this thread by [`mock_clock`], if any.
    static CLOCK: RefCell<Option<MockClock>> = const { RefCell::new(None) };
    /// The [`mock_clock`] guards alive on this thread, oldest first, with the clock that was
    /// there before the first: the clock is the newest guard's, whatever order they drop in.
    static GUARDS: RefCell<LiveGuards> = const { RefCell::new((None, Vec::new())) };
}

/// The clock before the first live [`mock_clock`] guard, and each live guard's id and clock.
type LiveGuards = (Option<MockClock>, Vec<(u64, MockClock)>);

/// Whether memoization is off on this thread (see [`disable`]).
#[inline]
pub(crate) fn is_disabled() -> bool {
    DISABLED.with(|disabled| disabled.get() != 0)
}

/// Guards are `!Send`: each restores the thread it was made on.
type NotSend = PhantomData<*const ()>;

/// Turns memoization off on this thread until the returned guard is dropped: every call of a
/// `#[cached]` function made on this thread (see the [module](self) for `async` calls and
/// other threads) runs its body, as if it were not memoized. Nothing is looked up, stored,
/// coalesced or counted in the stats, and the shared tier is not used; the cache keeps what it
/// had, and other threads use it as usual. Guards nest.
///
/// ```
/// use std::sync::atomic::{AtomicU32, Ordering};
///
/// static RUNS: AtomicU32 = AtomicU32::new(0);
///
/// #[memokit::cached]
/// fn load(id: u32) -> u32 {
///     RUNS.fetch_add(1, Ordering::Relaxed);
///     id
/// }
///
/// let off = memokit::testing::disable();
/// load(1);
/// load(1);
/// assert_eq!(RUNS.load(Ordering::Relaxed), 2); // the body ran each time
/// assert_eq!(load_cache().stats().misses, 0); // and nothing was counted
/// drop(off);
/// load(1);
/// load(1);
/// assert_eq!(RUNS.load(Ordering::Relaxed), 3);
/// ```
#[must_use = "memoization is back on when the guard is dropped"]
pub fn disable() -> Disabled {
    DISABLED.with(|disabled| disabled.set(disabled.get() + 1));
    Disabled(PhantomData)
}

/// The guard of [`disable`]: memoization is back on (on this thread) when it is dropped.
#[derive(Debug)]
pub struct Disabled(NotSend);

impl Drop for Disabled {
    fn drop(&mut self) {
        DISABLED.with(|disabled| disabled.set(disabled.get() - 1));
    }
}

/// The time every `#[cached]` function reads when no [`mock_clock`] is installed on the
/// thread: one origin for the process, so that the values written under a mock clock and
/// those written under the real one are measured from the same point.
fn real_now() -> Duration {
    static ORIGIN: OnceLock<Stopwatch> = OnceLock::new();
    ORIGIN.get_or_init(Stopwatch::start).elapsed()
}

/// The clock of `#[cached]` functions: the real time, or on a thread with a [`mock_clock`]
/// installed, that clock's. Not part of the stable API.
#[doc(hidden)]
#[derive(Debug, Default, Clone, Copy)]
pub struct ThreadClock;

impl Clock for ThreadClock {
    fn now(&self) -> Duration {
        CLOCK
            .with(|clock| clock.borrow().as_ref().map(Clock::now))
            .unwrap_or_else(real_now)
    }
}

/// Installs on this thread, until the returned guard is dropped, a clock that stands still
/// and moves only by [`MockClockGuard::advance`]: `#[cached]` functions with `ttl`, `tti` or
/// `refresh` read it for the calls made on this thread (see the [module](self)), so a test
/// sees a result expire without sleeping. It starts at the real time, so results cached by
/// other threads keep their age. Time moved forward is not given back when the guard is
/// dropped: a result stored under a moved clock expires by that time; clear the cache if the
/// test's values must not outlive it.
///
/// ```
/// use std::time::Duration;
///
/// #[memokit::cached(ttl = "5m")]
/// fn rate(currency: &str) -> u64 { currency.len() as u64 }
///
/// let clock = memokit::testing::mock_clock();
/// rate("EUR");
/// clock.advance(Duration::from_secs(299));
/// rate("EUR");
/// assert_eq!(rate_cache().stats().hits, 1); // still fresh
/// clock.advance(Duration::from_secs(1));
/// rate("EUR");
/// assert_eq!(rate_cache().stats().misses, 2); // expired after 5 minutes
/// ```
#[must_use = "the clock is the real one again when the guard is dropped"]
pub fn mock_clock() -> MockClockGuard {
    static IDS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let clock = MockClock::starting_at(ThreadClock.now());
    let id = IDS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let previous = CLOCK.with(|slot| slot.replace(Some(clock.clone())));
    GUARDS.with(|guards| {
        let (before, alive) = &mut *guards.borrow_mut();
        if alive.is_empty() {
            *before = previous;
        }
        alive.push((id, clock.clone()));
    });
    MockClockGuard {
        clock,
        id,
        _not_send: PhantomData,
    }
}

/// The guard of [`mock_clock`]: moves the clock, and puts the previous one back when dropped
/// (the one of the newest guard still alive, in whatever order guards are dropped).
#[derive(Debug)]
pub struct MockClockGuard {
    clock: MockClock,
    id: u64,
    _not_send: NotSend,
}

impl MockClockGuard {
    /// Moves this thread's clock forward by `by`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use memokit::Clock;
    ///
    /// let guard = memokit::testing::mock_clock();
    /// let before = guard.clock().now();
    /// guard.advance(Duration::from_secs(60));
    /// assert_eq!(guard.clock().now() - before, Duration::from_secs(60));
    /// ```
    pub fn advance(&self, by: Duration) {
        self.clock.advance(by);
    }

    /// The installed clock (clones share its time; a clone can be given to a
    /// [`Cache`](crate::Cache) built in the test).
    pub fn clock(&self) -> &MockClock {
        &self.clock
    }
}

impl Drop for MockClockGuard {
    fn drop(&mut self) {
        let current = GUARDS.with(|guards| {
            let (before, alive) = &mut *guards.borrow_mut();
            alive.retain(|(id, _)| *id != self.id);
            match alive.last() {
                Some((_, newest)) => Some(newest.clone()),
                None => before.take(),
            }
        });
        CLOCK.with(|slot| *slot.borrow_mut() = current);
    }
}

/// The switches of one thread, taken to another by [`scope`] and [`inherit`].
#[derive(Debug, Clone)]
struct Switches {
    disabled: bool,
    clock: Option<MockClock>,
}

impl Switches {
    fn current() -> Self {
        Switches {
            disabled: is_disabled(),
            clock: CLOCK.with(|clock| clock.borrow().clone()),
        }
    }

    /// Sets this thread's switches to these until the returned value is dropped.
    fn enter(&self) -> Entered {
        let disabled = DISABLED.with(|disabled| disabled.replace(u32::from(self.disabled)));
        let clock = CLOCK.with(|slot| slot.replace(self.clock.clone()));
        Entered {
            disabled,
            clock,
            _not_send: PhantomData,
        }
    }
}

/// A thread's switches as they were before [`Switches::enter`].
struct Entered {
    disabled: u32,
    clock: Option<MockClock>,
    _not_send: NotSend,
}

impl Drop for Entered {
    fn drop(&mut self) {
        DISABLED.with(|disabled| disabled.set(self.disabled));
        CLOCK.with(|slot| *slot.borrow_mut() = self.clock.take());
    }
}

/// `future` with the switches of the thread that calls `scope` ([`disable`], [`mock_clock`])
/// as they are now, on whatever thread polls it: for a task spawned by a test, or a future
/// that a multi-thread runtime may move between its threads.
///
/// ```
/// # #[tokio::main(flavor = "multi_thread", worker_threads = 2)] async fn main() {
/// #[memokit::cached]
/// async fn fetch(id: u32) -> u32 { id }
///
/// let _off = memokit::testing::disable();
/// let task = tokio::spawn(memokit::testing::scope(async { fetch(1).await }));
/// assert_eq!(task.await.unwrap(), 1);
/// assert!(fetch_cache().is_empty()); // the spawned task ran with memoization off
/// # }
/// ```
pub fn scope<F: Future>(future: F) -> Scoped<F> {
    Scoped {
        switches: Switches::current(),
        future: Box::pin(future),
    }
}

/// The future of [`scope`].
#[derive(Debug)]
#[must_use = "futures do nothing unless polled"]
pub struct Scoped<F> {
    switches: Switches,
    future: Pin<Box<F>>,
}

impl<F: Future> Future for Scoped<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let _entered = self.switches.enter();
        self.future.as_mut().poll(cx)
    }
}

/// `f` with the switches of the thread that calls `inherit` as they are now, on whatever
/// thread runs it: for a thread spawned by a test.
///
/// ```
/// #[memokit::cached]
/// fn square(n: u64) -> u64 { n * n }
///
/// let _off = memokit::testing::disable();
/// std::thread::spawn(memokit::testing::inherit(|| square(2))).join().unwrap();
/// assert!(square_cache().is_empty());
/// ```
pub fn inherit<R>(f: impl FnOnce() -> R) -> impl FnOnce() -> R {
    let switches = Switches::current();
    move || {
        let _entered = switches.enter();
        f()
    }
}

/// The guard of [`Memo::clear_on_drop`]: clears the function's cache (as
/// [`Memo::clear`] does) when dropped, also when the test panics.
#[must_use = "the cache is cleared when the guard is dropped"]
pub struct ClearOnDrop<'a, K: Hash + Eq + Clone, V: Clone> {
    pub(crate) memo: &'a Memo<K, V>,
}

impl<K: Hash + Eq + Clone, V: Clone> fmt::Debug for ClearOnDrop<'_, K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ClearOnDrop")
            .field(&self.memo.name())
            .finish()
    }
}

impl<K: Hash + Eq + Clone, V: Clone> Drop for ClearOnDrop<'_, K, V> {
    fn drop(&mut self) {
        self.memo.clear()
    }
}
