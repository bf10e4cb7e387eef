//! [`Stopwatch`]: the time elapsed since a point, read the same way on every target.
//!
//! Where std has a clock (every native target, `wasm32-wasip1`) a stopwatch is an [`Instant`],
//! and nothing else in this file is compiled. On `wasm32-unknown-unknown` std has none
//! (`Instant::now` panics there): a stopwatch reads the time source the embedder installed with
//! `memokit::set_time_source` (JavaScript's `performance.now()`, say), and without one stands
//! still at zero, so that measured times are zero and nothing expires by age.

use std::time::Duration;

#[cfg(not(all(target_family = "wasm", target_os = "unknown")))]
use std::time::Instant;

/// A point in time to measure from: [`SystemClock`](crate::SystemClock)'s origin, a load's
/// start.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Stopwatch {
    #[cfg(not(all(target_family = "wasm", target_os = "unknown")))]
    started: Instant,
    /// The installed time source's reading at the start (zero without one).
    #[cfg(all(target_family = "wasm", target_os = "unknown"))]
    started: Duration,
}

#[cfg(not(all(target_family = "wasm", target_os = "unknown")))]
impl Stopwatch {
    #[inline]
    pub(crate) fn start() -> Self {
        Stopwatch {
            started: Instant::now(),
        }
    }

    #[inline]
    pub(crate) fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }
}

#[cfg(all(target_family = "wasm", target_os = "unknown"))]
impl Stopwatch {
    #[inline]
    pub(crate) fn start() -> Self {
        Stopwatch {
            started: no_clock::now(),
        }
    }

    /// Never goes backwards, even should the source: a reading below the start counts as none.
    #[inline]
    pub(crate) fn elapsed(&self) -> Duration {
        no_clock::now().saturating_sub(self.started)
    }
}

#[cfg(all(target_family = "wasm", target_os = "unknown"))]
pub(crate) mod no_clock {
    use std::sync::OnceLock;
    use std::time::Duration;

    static SOURCE: OnceLock<fn() -> Duration> = OnceLock::new();

    /// The installed source's reading, or zero.
    pub(crate) fn now() -> Duration {
        SOURCE.get().map_or(Duration::ZERO, |now| now())
    }

    /// Installs the clock that memokit reads on `wasm32-unknown-unknown`, where the standard
    /// library has none (`std::time::Instant::now` panics there): the clock of time-to-live,
    /// time-to-idle and refresh-ahead for every cache built without
    /// [`CacheBuilder::clock`](crate::CacheBuilder::clock) (so for every `#[cached]` function),
    /// and of the load times in [`Stats`](crate::Stats).
    ///
    /// `now` returns the time since any fixed origin and must never go backwards: in a browser
    /// or Node.js, `performance.now()` (milliseconds, as an `f64`) through your bindings, e.g.
    /// `|| Duration::from_secs_f64(performance_now_ms() / 1000.0)`. Install it once, before the
    /// first cache is built: the clock of a cache built before stands at zero until then, and
    /// then jumps to the source's reading, which may expire at once what was written meanwhile.
    ///
    /// Without a source, time stands still at zero: entries never expire by age, are never due
    /// for a refresh, and load times are zero; everything else works. Returns `false`, and
    /// changes nothing, if a source was installed already.
    ///
    /// This function exists only on `wasm32-unknown-unknown`: every other target (`wasm32-wasip1`
    /// included) has a clock.
    pub fn set_time_source(now: fn() -> Duration) -> bool {
        SOURCE.set(now).is_ok()
    }
}
