//! Time: the clock a cache reads, and per-entry deadlines.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A monotonic clock. Caches read it only when they have a time-to-live or time-to-idle.
///
/// Implement it to drive expiry from your own time source; tests use [`MockClock`].
///
/// ```
/// use std::time::Duration;
/// use memokit::Clock;
///
/// #[derive(Debug)]
/// struct Frozen;
/// impl Clock for Frozen {
///     fn now(&self) -> Duration { Duration::from_secs(42) }
/// }
/// assert_eq!(Frozen.now(), Duration::from_secs(42));
/// ```
pub trait Clock: Send + Sync + fmt::Debug + 'static {
    /// Time elapsed since an arbitrary fixed origin. Must never go backwards.
    fn now(&self) -> Duration;
}

/// The real monotonic clock ([`Instant`]); the default.
///
/// ```
/// use memokit::{Clock, SystemClock};
/// let clock = SystemClock::default();
/// assert!(clock.now() <= clock.now());
/// ```
#[derive(Debug, Clone, Copy)]
pub struct SystemClock {
    origin: Instant,
}

impl Default for SystemClock {
    fn default() -> Self {
        SystemClock {
            origin: Instant::now(),
        }
    }
}

impl Clock for SystemClock {
    fn now(&self) -> Duration {
        self.origin.elapsed()
    }
}

/// A clock that moves only when told to, for testing expiry without sleeping.
/// Clones share the same time.
///
/// ```
/// use std::time::Duration;
/// use memokit::{Cache, MockClock};
///
/// let clock = MockClock::new();
/// let cache: Cache<&str, u32> = Cache::builder()
///     .time_to_live(Duration::from_secs(60))
///     .clock(clock.clone())
///     .build();
/// cache.insert("a", 1);
/// clock.advance(Duration::from_secs(59));
/// assert_eq!(cache.get("a"), Some(1));
/// clock.advance(Duration::from_secs(1));
/// assert_eq!(cache.get("a"), None);
/// ```
#[derive(Debug, Clone, Default)]
pub struct MockClock {
    nanos: Arc<AtomicU64>,
}

impl MockClock {
    /// A clock standing at zero.
    ///
    /// ```
    /// use memokit::{Clock, MockClock};
    /// assert_eq!(MockClock::new().now(), std::time::Duration::ZERO);
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// Moves the clock forward by `by`; every clone sees the new time.
    ///
    /// ```
    /// use std::time::Duration;
    /// use memokit::{Clock, MockClock};
    /// let clock = MockClock::new();
    /// let shared = clock.clone();
    /// clock.advance(Duration::from_millis(1500));
    /// assert_eq!(shared.now(), Duration::from_millis(1500));
    /// ```
    pub fn advance(&self, by: Duration) {
        self.nanos.fetch_add(duration_nanos(by), Relaxed);
    }
}

impl Clock for MockClock {
    fn now(&self) -> Duration {
        Duration::from_nanos(self.nanos.load(Relaxed))
    }
}

/// Nanoseconds, saturating: durations beyond ~584 years mean "never".
pub(crate) fn duration_nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// A deadline that never comes.
pub(crate) const NEVER: u64 = u64::MAX;

/// The expiry settings of a cache, in clock nanoseconds.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct ExpiryPolicy {
    pub(crate) ttl: Option<u64>,
    pub(crate) tti: Option<u64>,
}

impl ExpiryPolicy {
    pub(crate) fn is_enabled(&self) -> bool {
        self.ttl.is_some() || self.tti.is_some()
    }

    /// The deadlines of an entry written at `now`.
    pub(crate) fn deadline_for_write(&self, now: u64) -> Deadline {
        Deadline {
            live_until: self.ttl.map_or(NEVER, |ttl| now.saturating_add(ttl)),
            idle_until: AtomicU64::new(self.tti.map_or(NEVER, |tti| now.saturating_add(tti))),
        }
    }

    /// Pushes the idle deadline on a read at `now`.
    pub(crate) fn on_read(&self, deadline: &Deadline, now: u64) {
        if let Some(tti) = self.tti {
            // fetch_max: a reader holding an older clock reading must not pull the deadline back.
            deadline
                .idle_until
                .fetch_max(now.saturating_add(tti), Relaxed);
        }
    }
}

/// When one entry stops being returned. The idle part moves on reads under the shared lock.
#[derive(Debug)]
pub(crate) struct Deadline {
    live_until: u64,
    idle_until: AtomicU64,
}

impl Deadline {
    pub(crate) fn is_expired(&self, now: u64) -> bool {
        now >= self.live_until || now >= self.idle_until.load(Relaxed)
    }
}
