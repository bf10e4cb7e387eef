//! Hit/miss counters, kept per shard so that a hit never writes a cache line shared by all
//! shards, and the [`Stats`] snapshot summed from them.

use std::cell::Cell;
use std::fmt;
use std::sync::atomic::{
    AtomicU64, AtomicUsize, Ordering::Acquire, Ordering::Relaxed, Ordering::Release,
};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

/// One shard's counters of writes and loads, on their own cache lines. Hits and misses are
/// counted apart, in [`LookupCounters`]. The first four are written only under the shard's
/// exclusive lock (with a load and a store, see `shard::bump_locked`), the others with [`bump`].
#[derive(Debug, Default)]
#[repr(align(128))]
pub(crate) struct Counters {
    pub(crate) inserts: AtomicU64,
    pub(crate) evictions: AtomicU64,
    pub(crate) expirations: AtomicU64,
    pub(crate) invalidations: AtomicU64,
    pub(crate) loads: AtomicU64,
    pub(crate) load_failures: AtomicU64,
    pub(crate) coalesced_waits: AtomicU64,
    pub(crate) load_nanos: AtomicU64,
    pub(crate) refreshes: AtomicU64,
    pub(crate) refresh_failures: AtomicU64,
    pub(crate) stale_served: AtomicU64,
}

pub(crate) fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Relaxed);
}

/// Hits and misses, striped by thread rather than by shard: under skewed traffic every thread
/// reads the same hot shards, and a per-shard counter would be a cache line they all write.
///
/// Each live thread has a number of its own (see [`thread_stripe`]); the thread numbered `i`
/// owns stripe `i` and is the only one to write its `owned` counters, so it counts with a load
/// and a store instead of an atomic read-modify-write (a locked instruction on x86, which also
/// keeps the next lookup's memory reads from starting early). Threads numbered beyond the
/// stripes, and threads already tearing down their thread-locals, count in the `shared`
/// counters of a stripe with `fetch_add`. Every lookup is therefore counted exactly once.
#[derive(Debug)]
pub(crate) struct LookupCounters {
    stripes: Box<[LookupStripe]>,
}

#[derive(Debug, Default)]
#[repr(align(128))]
struct LookupStripe {
    /// Written by the stripe's owner only.
    owned: HitsMisses,
    /// Written with `fetch_add` by threads without a stripe of their own.
    shared: HitsMisses,
    /// The totals at the last [`LookupCounters::reset`]: counters only go up (a reset storing
    /// zero could be undone by an owner's store of the value it had just loaded), and a reset
    /// moves this baseline instead.
    baseline: HitsMisses,
}

#[derive(Debug, Default)]
struct HitsMisses {
    hits: AtomicU64,
    misses: AtomicU64,
}

impl HitsMisses {
    fn get(&self, hit: bool) -> &AtomicU64 {
        if hit {
            &self.hits
        } else {
            &self.misses
        }
    }
}

/// At most this many stripes per cache (64 × 128 bytes).
const MAX_STRIPES: usize = 64;

impl LookupCounters {
    pub(crate) fn new() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let stripes = (cores * 2).next_power_of_two().min(MAX_STRIPES);
        LookupCounters {
            stripes: (0..stripes).map(|_| LookupStripe::default()).collect(),
        }
    }

    #[inline]
    pub(crate) fn record(&self, hit: bool) {
        // `NOT_TAKEN` and `HANDED_BACK` are beyond any stripe: one test covers them.
        match self.stripes.get(CACHED_NUMBER.get()) {
            Some(stripe) => stripe.record_owned(hit),
            None => self.record_unowned(hit),
        }
    }

    /// [`LookupCounters::record`] before the thread took its number, or by a thread that owns
    /// no stripe here.
    #[cold]
    #[inline(never)]
    fn record_unowned(&self, hit: bool) {
        match thread_stripe() {
            Some(number) if number < self.stripes.len() => self.stripes[number].record_owned(hit),
            number => {
                let stripe = number.unwrap_or(0) & (self.stripes.len() - 1);
                self.stripes[stripe].shared.get(hit).fetch_add(1, Relaxed);
            }
        }
    }

    pub(crate) fn add_to(&self, stats: &mut Stats) {
        for stripe in self.stripes.iter() {
            // Acquire: the counters read below are at least what `reset` read for the baseline.
            let (hits_base, misses_base) = (
                stripe.baseline.hits.load(Acquire),
                stripe.baseline.misses.load(Acquire),
            );
            stats.hits += stripe.total(true).saturating_sub(hits_base);
            stats.misses += stripe.total(false).saturating_sub(misses_base);
        }
    }

    pub(crate) fn reset(&self) {
        for stripe in self.stripes.iter() {
            stripe.baseline.hits.store(stripe.total(true), Release);
            stripe.baseline.misses.store(stripe.total(false), Release);
        }
    }
}

impl LookupStripe {
    /// Counts a lookup of this stripe's owner, the only thread that calls this (see
    /// [`thread_stripe`]): no update can come between the load and the store.
    #[inline]
    fn record_owned(&self, hit: bool) {
        let counter = self.owned.get(hit);
        counter.store(counter.load(Relaxed) + 1, Relaxed);
    }

    /// Hits (or misses) counted in this stripe since the cache was built.
    fn total(&self, hit: bool) -> u64 {
        self.owned.get(hit).load(Relaxed) + self.shared.get(hit).load(Relaxed)
    }
}

/// Numbers handed back by threads that ended, for the next threads to take.
static FREE_NUMBERS: Mutex<Vec<usize>> = Mutex::new(Vec::new());
/// The next number never handed out.
static NEXT_NUMBER: AtomicUsize = AtomicUsize::new(0);

/// A thread's stripe number, unique among live threads and handed back when the thread ends,
/// so that numbers stay small (below the stripe count) while no more threads than stripes
/// count lookups at once.
struct StripeNumber(usize);

impl StripeNumber {
    fn take() -> Self {
        let mut free = FREE_NUMBERS.lock().unwrap_or_else(PoisonError::into_inner);
        // The smallest free number: the likeliest to own a stripe in every cache.
        let smallest = free
            .iter()
            .enumerate()
            .min_by_key(|&(_, &number)| number)
            .map(|(at, _)| at);
        StripeNumber(match smallest {
            Some(at) => free.swap_remove(at),
            None => NEXT_NUMBER.fetch_add(1, Relaxed),
        })
    }
}

impl Drop for StripeNumber {
    fn drop(&mut self) {
        CACHED_NUMBER.set(HANDED_BACK);
        // The lock orders this thread's last counts before the next owner's first load.
        FREE_NUMBERS
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(self.0);
    }
}

/// [`CACHED_NUMBER`] before the thread took a number.
const NOT_TAKEN: usize = usize::MAX;
/// [`CACHED_NUMBER`] once the thread handed its number back.
const HANDED_BACK: usize = usize::MAX - 1;

thread_local! {
    /// The number held by [`STRIPE`], read without the lazy initialization check of `STRIPE`
    /// (a constant-initialized thread-local without a destructor is always there).
    static CACHED_NUMBER: Cell<usize> = const { Cell::new(NOT_TAKEN) };
    /// Holds the thread's number, and hands it back when the thread ends.
    static STRIPE: StripeNumber = {
        let number = StripeNumber::take();
        CACHED_NUMBER.set(number.0);
        number
    };
}

/// This thread's stripe number, or `None` once its thread-locals are being destroyed (the
/// number is then back in the free list and may belong to another thread).
#[inline]
fn thread_stripe() -> Option<usize> {
    match CACHED_NUMBER.get() {
        NOT_TAKEN => first_stripe(),
        HANDED_BACK => None,
        number => Some(number),
    }
}

#[cold]
fn first_stripe() -> Option<usize> {
    STRIPE.try_with(|stripe| stripe.0).ok()
}

impl Counters {
    pub(crate) fn add_to(&self, stats: &mut Stats) {
        stats.inserts += self.inserts.load(Relaxed);
        stats.evictions += self.evictions.load(Relaxed);
        stats.expirations += self.expirations.load(Relaxed);
        stats.invalidations += self.invalidations.load(Relaxed);
        stats.loads += self.loads.load(Relaxed);
        stats.load_failures += self.load_failures.load(Relaxed);
        stats.coalesced_waits += self.coalesced_waits.load(Relaxed);
        stats.total_load_time += Duration::from_nanos(self.load_nanos.load(Relaxed));
        stats.refreshes += self.refreshes.load(Relaxed);
        stats.refresh_failures += self.refresh_failures.load(Relaxed);
        stats.stale_served += self.stale_served.load(Relaxed);
    }

    pub(crate) fn reset(&self) {
        for counter in [
            &self.inserts,
            &self.evictions,
            &self.expirations,
            &self.invalidations,
            &self.loads,
            &self.load_failures,
            &self.coalesced_waits,
            &self.load_nanos,
            &self.refreshes,
            &self.refresh_failures,
            &self.stale_served,
        ] {
            counter.store(0, Relaxed);
        }
    }
}

/// A snapshot of a cache's counters, taken by [`Cache::stats`](crate::Cache::stats).
///
/// Counters are read shard by shard without stopping writers, so a snapshot taken under load is
/// a consistent sum of each shard's counters, not a single instant.
///
/// ```
/// use memokit::Cache;
///
/// let cache: Cache<u32, u32> = Cache::builder().max_capacity(100).build();
/// cache.insert(1, 1);
/// cache.get(&1);
/// cache.get(&2);
/// let stats = cache.stats();
/// assert_eq!((stats.hits, stats.misses), (1, 1));
/// assert_eq!(stats.hit_ratio(), 0.5);
/// assert_eq!(
///     stats.to_string(),
///     "hits=1 misses=1 hit_ratio=50.0% size=1/100 evictions=0 expirations=0 \
///      invalidations=0 loads=0 load_failures=0 coalesced_waits=0 avg_load=0µs"
/// );
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Lookups that found a live entry.
    pub hits: u64,
    /// Lookups that found nothing (or only an expired entry).
    pub misses: u64,
    /// Values stored (new keys and replacements).
    pub inserts: u64,
    /// Entries evicted to stay within capacity.
    pub evictions: u64,
    /// Entries removed because their time-to-live or time-to-idle passed.
    pub expirations: u64,
    /// Entries removed by `invalidate`, `invalidate_if` or `clear`.
    pub invalidations: u64,
    /// Loads run by `get_or_insert_with` and its variants: a computation, or for a function
    /// with a tier, a read of the tier that found the value (also in `l2_hits` or `disk_hits`).
    pub loads: u64,
    /// Computations that returned an error or panicked (or, async, were cancelled).
    pub load_failures: u64,
    /// Callers that waited for another caller's computation instead of running their own.
    pub coalesced_waits: u64,
    /// Time spent in computations (those counted in `loads`), including the time a computation
    /// ran before it failed, panicked or (async) was cancelled.
    pub total_load_time: Duration,
    /// Entries resident when the snapshot was taken.
    pub len: u64,
    /// Total weight resident (equals `len` without a weigher).
    pub weighted_size: u64,
    /// The configured maximum weight, if bounded.
    pub capacity: Option<u64>,
    /// Shared tier (feature `redis`): values found in Redis, including those another process
    /// computed while this one waited for its lease. The Redis lookup is part of the in-process
    /// load, so each is also counted in `loads` (and its time in `total_load_time`).
    pub l2_hits: u64,
    /// Shared tier: lookups in Redis that found nothing usable.
    pub l2_misses: u64,
    /// Shared tier: Redis operations that failed or timed out (the call went on without Redis),
    /// or that Redis refused for their key alone (a key of another type, `WRONGTYPE`), and
    /// values that did not encode (their `Serialize` failed; not written).
    pub l2_errors: u64,
    /// Shared tier: values in Redis that did not decode (another format or type); each is
    /// also a miss, and is overwritten.
    pub l2_decode_errors: u64,
    /// Shared tier: lookups and writes that went on without Redis because it had just failed
    /// (the circuit is open until `retry_after`, and Redis was not asked). With `l2_errors`,
    /// everything Redis did not serve during an outage.
    pub l2_skipped: u64,
    /// Shared tier: writes (`invalidate`, `insert`, `clear`, their `_many` forms and the writer
    /// attributes) that could not reach Redis and wait to be applied there, as removals, before
    /// this function reads Redis again (a gauge, not a counter).
    pub l2_pending_writes: u64,
    /// Shared tier: writes applied to Redis late, after an outage (each counted once).
    pub l2_replayed_writes: u64,
    /// Disk tier (feature `disk`): values found in the file. Each is also counted in `loads`
    /// (the file is read by the caller that computes).
    pub disk_hits: u64,
    /// Disk tier: lookups in the file that found nothing usable (absent, expired, or not
    /// decoding).
    pub disk_misses: u64,
    /// Disk tier: operations on the file that failed (a full disk, a file that did not open:
    /// then each lookup counts one); the call went on without the file.
    pub disk_errors: u64,
    /// Disk tier: the writes among `disk_errors` (a computed value, an `insert`, an
    /// `invalidate`, a `clear`, the removal of an expired entry) that the file refused, as a
    /// full disk or a file size limit does; the caller still got its value.
    pub disk_write_errors: u64,
    /// Disk tier: values in the file that did not decode (another format or type); each is
    /// also a miss, and is overwritten.
    pub disk_decode_errors: u64,
    /// Disk tier: entries evicted from the file to stay within its byte bound by this
    /// function's writes.
    pub disk_evictions: u64,
    /// Refresh-ahead (`refresh_after`): recomputations of entries due for a refresh, each
    /// finished or failed. Not counted in `loads`.
    pub refreshes: u64,
    /// Refreshes that returned an error or panicked (or, async, were cancelled); the old value
    /// stays until it expires.
    pub refresh_failures: u64,
    /// Stale-if-error (`stale_if_error`): failed computations answered with the key's expired
    /// value instead of their error (their caller and the callers waiting on them get it).
    /// Each is also counted in `loads` and `load_failures`.
    pub stale_served: u64,
}

impl Stats {
    /// `hits / (hits + misses)`, or 0 before any lookup.
    ///
    /// ```
    /// let cache: memokit::Cache<u32, u32> = memokit::Cache::new(10);
    /// assert_eq!(cache.stats().hit_ratio(), 0.0);
    /// cache.insert(1, 1);
    /// cache.get(&1);
    /// cache.get(&1);
    /// cache.get(&1);
    /// cache.get(&2);
    /// assert_eq!(cache.stats().hit_ratio(), 0.75);
    /// ```
    pub fn hit_ratio(&self) -> f64 {
        let lookups = self.hits + self.misses;
        if lookups == 0 {
            0.0
        } else {
            self.hits as f64 / lookups as f64
        }
    }

    /// Average time of one computation (`total_load_time / loads`), or zero before any. Failed,
    /// panicked and cancelled computations count with the time they ran.
    ///
    /// ```
    /// use std::time::Duration;
    /// let cache: memokit::Cache<u32, u32> = memokit::Cache::new(10);
    /// assert_eq!(cache.stats().average_load_time(), Duration::ZERO);
    /// cache.get_or_insert_with(1, || {
    ///     std::thread::sleep(Duration::from_millis(5));
    ///     1
    /// });
    /// assert!(cache.stats().average_load_time() >= Duration::from_millis(5));
    /// ```
    pub fn average_load_time(&self) -> Duration {
        match u32::try_from(self.loads) {
            Ok(0) => Duration::ZERO,
            Ok(loads) => self.total_load_time / loads,
            Err(_) => {
                Duration::from_secs_f64(self.total_load_time.as_secs_f64() / self.loads as f64)
            }
        }
    }
}

impl Stats {
    /// The sum of two snapshots (capacities add up; unbounded wins).
    /// The counters alone: sizes zero, capacity zero (so that added to a live cache's it
    /// leaves that one's), for a cache that is gone.
    pub(crate) fn counters_only(self) -> Stats {
        Stats {
            len: 0,
            weighted_size: 0,
            capacity: Some(0),
            l2_pending_writes: 0,
            ..self
        }
    }

    pub(crate) fn merged(&self, other: &Stats) -> Stats {
        Stats {
            hits: self.hits + other.hits,
            misses: self.misses + other.misses,
            inserts: self.inserts + other.inserts,
            evictions: self.evictions + other.evictions,
            expirations: self.expirations + other.expirations,
            invalidations: self.invalidations + other.invalidations,
            loads: self.loads + other.loads,
            load_failures: self.load_failures + other.load_failures,
            coalesced_waits: self.coalesced_waits + other.coalesced_waits,
            total_load_time: self.total_load_time + other.total_load_time,
            len: self.len + other.len,
            weighted_size: self.weighted_size + other.weighted_size,
            capacity: self.capacity.zip(other.capacity).map(|(a, b)| a + b),
            l2_hits: self.l2_hits + other.l2_hits,
            l2_misses: self.l2_misses + other.l2_misses,
            l2_errors: self.l2_errors + other.l2_errors,
            l2_decode_errors: self.l2_decode_errors + other.l2_decode_errors,
            l2_skipped: self.l2_skipped + other.l2_skipped,
            l2_pending_writes: self.l2_pending_writes + other.l2_pending_writes,
            l2_replayed_writes: self.l2_replayed_writes + other.l2_replayed_writes,
            disk_hits: self.disk_hits + other.disk_hits,
            disk_misses: self.disk_misses + other.disk_misses,
            disk_errors: self.disk_errors + other.disk_errors,
            disk_write_errors: self.disk_write_errors + other.disk_write_errors,
            disk_decode_errors: self.disk_decode_errors + other.disk_decode_errors,
            disk_evictions: self.disk_evictions + other.disk_evictions,
            refreshes: self.refreshes + other.refreshes,
            refresh_failures: self.refresh_failures + other.refresh_failures,
            stale_served: self.stale_served + other.stale_served,
        }
    }
}

impl fmt::Display for Stats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "hits={} misses={} hit_ratio={:.1}% size={}/",
            self.hits,
            self.misses,
            self.hit_ratio() * 100.0,
            self.weighted_size
        )?;
        match self.capacity {
            Some(capacity) => write!(f, "{capacity}")?,
            None => f.write_str("unbounded")?,
        }
        write!(
            f,
            " evictions={} expirations={} invalidations={} loads={} load_failures={} \
             coalesced_waits={} avg_load={}µs",
            self.evictions,
            self.expirations,
            self.invalidations,
            self.loads,
            self.load_failures,
            self.coalesced_waits,
            self.average_load_time().as_micros()
        )?;
        // Only caches that used a shared tier show its counters.
        if self.l2_hits + self.l2_misses + self.l2_errors + self.l2_decode_errors + self.l2_skipped
            > 0
        {
            write!(
                f,
                " l2_hits={} l2_misses={} l2_errors={}",
                self.l2_hits, self.l2_misses, self.l2_errors
            )?;
            if self.l2_decode_errors > 0 {
                write!(f, " l2_decode_errors={}", self.l2_decode_errors)?;
            }
            if self.l2_skipped > 0 {
                write!(f, " l2_skipped={}", self.l2_skipped)?;
            }
        }
        // Only caches that used a disk tier show its counters.
        if self.disk_hits + self.disk_misses + self.disk_errors > 0 {
            write!(
                f,
                " disk_hits={} disk_misses={} disk_errors={}",
                self.disk_hits, self.disk_misses, self.disk_errors
            )?;
            if self.disk_write_errors > 0 {
                write!(f, " disk_write_errors={}", self.disk_write_errors)?;
            }
            if self.disk_decode_errors > 0 {
                write!(f, " disk_decode_errors={}", self.disk_decode_errors)?;
            }
            if self.disk_evictions > 0 {
                write!(f, " disk_evictions={}", self.disk_evictions)?;
            }
        }
        // Only after an outage that delayed writes.
        if self.l2_pending_writes + self.l2_replayed_writes > 0 {
            write!(
                f,
                " l2_pending_writes={} l2_replayed_writes={}",
                self.l2_pending_writes, self.l2_replayed_writes
            )?;
        }
        // Only caches that refreshed show the refresh counters.
        if self.refreshes + self.refresh_failures > 0 {
            write!(
                f,
                " refreshes={} refresh_failures={}",
                self.refreshes, self.refresh_failures
            )?;
        }
        // Only caches that served a stale value in place of an error.
        if self.stale_served > 0 {
            write!(f, " stale_served={}", self.stale_served)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups_are_counted_exactly_by_owners_and_sharers_and_reset_moves_the_baseline() {
        let counters = LookupCounters::new();
        // More threads at once than stripes: some own a stripe, the others share.
        let threads = counters.stripes.len() * 3;
        let per_thread = 10_000u64;
        let start = std::sync::Barrier::new(threads);
        std::thread::scope(|scope| {
            for t in 0..threads {
                let (counters, start) = (&counters, &start);
                scope.spawn(move || {
                    start.wait();
                    for i in 0..per_thread {
                        counters.record((i + t as u64) % 4 != 0);
                    }
                });
            }
        });
        let mut stats = Stats::default();
        counters.add_to(&mut stats);
        let total = threads as u64 * per_thread;
        assert_eq!(stats.hits + stats.misses, total);
        assert_eq!(stats.misses, total / 4);
        counters.reset();
        counters.record(true);
        let mut stats = Stats::default();
        counters.add_to(&mut stats);
        assert_eq!((stats.hits, stats.misses), (1, 0));
    }

    #[test]
    fn an_ended_thread_hands_its_stripe_number_to_the_next() {
        let first = std::thread::spawn(thread_stripe).join().unwrap();
        let next = std::thread::spawn(thread_stripe).join().unwrap();
        assert!(first.is_some() && next.is_some());
        // Other tests run threads meanwhile, so only a bound holds: numbers stay small.
        assert!(next.unwrap() < 1_000, "{next:?}");
    }
}
