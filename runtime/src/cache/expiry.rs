//! Time: the clock a cache reads, and per-entry deadlines.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use crate::cache::stopwatch::Stopwatch;

/// A monotonic clock. Caches read it only when they have a time-to-live, time-to-idle or refresh.
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

/// The real monotonic clock ([`Instant`](std::time::Instant)); the default.
///
/// On `wasm32-unknown-unknown`, where std has no clock, it reads the time source installed with
/// `memokit::set_time_source`, and without one stands still at zero: entries then never expire
/// by age and are never due for a refresh (see README.md, "WebAssembly").
///
/// ```
/// use memokit::{Clock, SystemClock};
/// let clock = SystemClock::default();
/// assert!(clock.now() <= clock.now());
/// ```
#[derive(Debug, Clone, Copy)]
pub struct SystemClock {
    origin: Stopwatch,
}

impl Default for SystemClock {
    fn default() -> Self {
        SystemClock {
            origin: Stopwatch::start(),
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

    /// A clock standing at `now`.
    pub(crate) fn starting_at(now: Duration) -> Self {
        let clock = Self::new();
        clock.advance(now);
        clock
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
    /// Refresh-ahead: an entry older than this is recomputed by the load path's next hit.
    pub(crate) refresh: Option<u64>,
    /// The fraction (in `[0, 1)`) by which each entry's `ttl` and `refresh` are spread.
    pub(crate) jitter: f64,
    /// Stale-if-error: how long after it expired an entry is kept, to be returned in place of
    /// a failed recomputation's error (see `CacheBuilder::stale_if_error`).
    pub(crate) stale_if_error: Option<u64>,
}

impl ExpiryPolicy {
    /// Whether the cache reads the clock: entries expire, or are refreshed by age.
    pub(crate) fn is_enabled(&self) -> bool {
        // Not short-circuiting: one branch on the hit path instead of three.
        self.ttl.is_some() | self.tti.is_some() | self.refresh.is_some()
    }

    /// The deadlines of an entry written at `now`; `seed` (the key's hash) draws its jitter.
    pub(crate) fn deadline_for_write(&self, now: u64, seed: u64) -> Deadline {
        Deadline {
            live_until: self.ttl.map_or(NEVER, |ttl| {
                now.saturating_add(self.jittered(ttl, now, seed))
            }),
            idle_until: AtomicU64::new(self.tti.map_or(NEVER, |tti| now.saturating_add(tti))),
        }
    }

    /// When an entry written at `now` is due for a refresh. Jittered by the same factor as its
    /// time-to-live, so that it always comes first.
    pub(crate) fn refresh_at(&self, now: u64, seed: u64) -> u64 {
        self.refresh.map_or(NEVER, |refresh| {
            now.saturating_add(self.jittered(refresh, now, seed))
        })
    }

    /// How long after a failed refresh the next one may start: a quarter of the time between
    /// `refresh` and `ttl` (of `refresh` without a ttl), so that a failing source sees about
    /// four attempts per key before the old value expires, never one per hit.
    pub(crate) fn refresh_backoff(&self) -> u64 {
        let refresh = self.refresh.unwrap_or(0);
        let window = self.ttl.map_or(refresh, |ttl| ttl.saturating_sub(refresh));
        (window / 4).max(1)
    }

    /// How long an entry is kept once expired: its stale-if-error window, or nothing.
    pub(crate) fn grace(&self) -> u64 {
        self.stale_if_error.unwrap_or(0)
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

    /// `span` scaled by a factor drawn uniformly from `[1 - jitter, 1 + jitter]`, the same for
    /// every span of one write (same `now` and `seed`).
    fn jittered(&self, span: u64, now: u64, seed: u64) -> u64 {
        if self.jitter == 0.0 {
            return span;
        }
        // 53 random bits: a uniform number in [0, 1).
        let unit = (mix64(seed ^ now) >> 11) as f64 / (1u64 << 53) as f64;
        let factor = 1.0 + self.jitter * (2.0 * unit - 1.0);
        // `as` saturates: a span beyond u64 stays "never".
        (span as f64 * factor) as u64
    }
}

/// The splitmix64 finalizer: spreads nearby inputs over the whole range.
pub(crate) fn mix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// When one entry stops being returned. The idle part moves on reads under the shared lock.
#[derive(Debug)]
pub(crate) struct Deadline {
    live_until: u64,
    idle_until: AtomicU64,
}

impl Deadline {
    /// Brings its time to live forward to `until`, if that is sooner.
    pub(crate) fn expire_by(&mut self, until: u64) {
        self.live_until = self.live_until.min(until);
    }

    pub(crate) fn is_expired(&self, now: u64) -> bool {
        now >= self.live_until || now >= self.idle_until.load(Relaxed)
    }

    /// Whether the entry expired at least `grace` ago at `now`, so may be reclaimed: kept until
    /// then (expired, never returned as a hit) for stale-if-error. With no grace, whether it is
    /// expired.
    pub(crate) fn is_reclaimable(&self, now: u64, grace: u64) -> bool {
        now.checked_sub(grace)
            .is_some_and(|then| self.is_expired(then))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_spreads_a_lifetime_within_its_bounds_and_keeps_refresh_first() {
        let policy = ExpiryPolicy {
            ttl: Some(1_000_000),
            refresh: Some(800_000),
            jitter: 0.1,
            ..ExpiryPolicy::default()
        };
        let mut lifetimes = std::collections::HashSet::new();
        for seed in 0..1_000u64 {
            let live = policy.deadline_for_write(0, seed).live_until;
            assert!((900_000..=1_100_000).contains(&live), "{live}");
            assert!(policy.refresh_at(0, seed) < live);
            lifetimes.insert(live / 10_000);
        }
        assert!(
            lifetimes.len() > 15,
            "{} distinct lifetimes",
            lifetimes.len()
        );
        let plain = ExpiryPolicy {
            jitter: 0.0,
            ..policy
        };
        assert_eq!(plain.deadline_for_write(5, 77).live_until, 1_000_005);
    }

    #[test]
    fn an_expired_entry_is_reclaimable_once_its_grace_has_passed() {
        let policy = ExpiryPolicy {
            ttl: Some(100),
            stale_if_error: Some(50),
            ..ExpiryPolicy::default()
        };
        let deadline = policy.deadline_for_write(0, 1);
        let grace = policy.grace();
        assert!(!deadline.is_expired(99) && !deadline.is_reclaimable(99, grace));
        assert!(deadline.is_expired(100) && !deadline.is_reclaimable(149, grace));
        assert!(deadline.is_reclaimable(150, grace));
        assert!(
            deadline.is_reclaimable(100, 0),
            "without a grace: as soon as expired"
        );
        assert!(
            !deadline.is_reclaimable(10, u64::MAX),
            "a grace beyond the clock"
        );
    }

    #[test]
    fn a_failed_refresh_waits_a_quarter_of_the_refresh_window() {
        let policy = ExpiryPolicy {
            ttl: Some(1_000),
            refresh: Some(600),
            ..ExpiryPolicy::default()
        };
        assert_eq!(policy.refresh_backoff(), 100);
    }
}
