//! Hit latency: one thread, a full cache, random existing keys; nanoseconds per `get`.

use std::future::Future;
use std::hint::black_box;
use std::time::Instant;

use crate::contenders::{Contender, Measure};
use crate::workloads::SplitMix64;

/// The `i`-th key of a filled cache: distinct, spread over the whole `u64` range (SplitMix64's
/// output function is a bijection).
pub fn key_of(i: u64) -> u64 {
    SplitMix64(i).next_u64()
}

/// The hit-latency measurement.
#[derive(Debug, Clone, Copy)]
pub struct HitLatency {
    /// Capacity, and entries inserted to fill it.
    pub entries: usize,
    /// Timed lookups per round.
    pub lookups: usize,
    /// Timed rounds; the best is reported.
    pub rounds: usize,
}

/// What [`HitLatency`] found for one contender.
#[derive(Debug, Clone, PartialEq)]
pub struct LatencyResult {
    /// Nanoseconds per `get` in the best round.
    pub ns_per_get: f64,
    /// Nanoseconds per `get` in every round, in the order they ran (see [`paired_ratio`]).
    pub rounds: Vec<f64>,
    /// Share of the inserted keys still resident after the fill (a sharded cache can evict a
    /// few while filling to exactly its capacity). Lookups use resident keys only.
    pub resident: f64,
}

/// A filled cache and a shuffled stream of its resident keys, ready to be timed.
pub struct Filled<C> {
    /// The cache, filled to capacity.
    pub cache: C,
    /// Random resident keys, to look up in order.
    pub lookups: Vec<u64>,
    /// Share of the inserted keys that stayed resident.
    pub resident: f64,
}

/// Fills a cache of `entries` with `entries` keys, settles it, and draws `lookups` random keys
/// among those still resident.
pub fn fill<C: Contender>(entries: usize, lookups: usize) -> Filled<C> {
    let cache = C::with_capacity(entries);
    for i in 0..entries as u64 {
        cache.insert(key_of(i), i);
    }
    cache.settle();
    let present: Vec<u64> = (0..entries as u64)
        .map(key_of)
        .filter(|&key| cache.get(key).is_some())
        .collect();
    assert!(!present.is_empty(), "nothing stayed in the cache");
    let mut rng = SplitMix64(0x1a7e);
    let lookups = (0..lookups)
        .map(|_| present[rng.below(present.len() as u64) as usize])
        .collect();
    Filled {
        cache,
        resident: present.len() as f64 / entries as f64,
        lookups,
    }
}

/// Nanoseconds per `get` of `keys` in order; panics if one misses (it would not be a hit
/// latency).
pub fn time_gets<C: Contender>(cache: &C, keys: &[u64]) -> f64 {
    let started = Instant::now();
    let mut hits = 0usize;
    for &key in keys {
        hits += usize::from(black_box(cache.get(black_box(key))).is_some());
    }
    let elapsed = started.elapsed();
    assert_eq!(hits, keys.len(), "a lookup of a resident key missed");
    elapsed.as_nanos() as f64 / keys.len() as f64
}

/// One timed round of a prepared measurement, returning its figure. Boxed so that rounds of
/// different contenders can be interleaved; each round is a long monomorphized loop, so the
/// one indirect call per round costs nothing measurable.
pub type Round<'a> = Box<dyn FnMut() -> f64 + 'a>;

/// Runs one warm-up round of each, then `rounds` rounds of each, interleaved (contender 1, 2,
/// …, 1, 2, …) so that a change in the machine's load touches every contender alike. Returns
/// every round's figure, per contender.
pub fn interleave(prepared: &mut [Round<'_>], rounds: usize) -> Vec<Vec<f64>> {
    for round in prepared.iter_mut() {
        round();
    }
    let mut figures = vec![Vec::with_capacity(rounds); prepared.len()];
    for _ in 0..rounds.max(1) {
        for (round, figures) in prepared.iter_mut().zip(&mut figures) {
            figures.push(round());
        }
    }
    figures
}

/// The fastest of `rounds`: other work on the machine can only slow a round down, so the best
/// round is the one least disturbed.
pub fn best_latency(rounds: &[f64]) -> f64 {
    rounds.iter().copied().fold(f64::INFINITY, f64::min)
}

/// How one contender's rounds compare with another's run back to back with them (see
/// [`interleave`]): the median of the round-by-round ratios `a / b`, and the lowest and highest.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PairedRatio {
    /// The median ratio (of the middle two, their mean).
    pub median: f64,
    /// The lowest ratio of one pair of rounds.
    pub low: f64,
    /// The highest ratio of one pair of rounds.
    pub high: f64,
}

/// The ratios of `a`'s rounds to `b`'s, round by round; `None` without rounds. A slow spell of
/// the machine slows both rounds of a pair, so their ratio moves less than either figure, and
/// the median does not rest on one lucky round as the best round does.
pub fn paired_ratio(a: &[f64], b: &[f64]) -> Option<PairedRatio> {
    let mut ratios: Vec<f64> = a.iter().zip(b).map(|(a, b)| a / b).collect();
    ratios.sort_by(f64::total_cmp);
    let n = ratios.len();
    (n > 0).then(|| PairedRatio {
        median: (ratios[(n - 1) / 2] + ratios[n / 2]) / 2.0,
        low: ratios[0],
        high: ratios[n - 1],
    })
}

/// [`HitLatency`] prepared for [`interleave`]: the filled cache inside the round.
#[derive(Debug, Clone, Copy)]
pub struct PrepareLatency(pub HitLatency);

impl Measure for PrepareLatency {
    /// Share of keys resident, and the round.
    type Output = (f64, Round<'static>);

    fn measure<C: Contender>(self) -> Self::Output {
        let filled = fill::<C>(self.0.entries, self.0.lookups);
        let resident = filled.resident;
        (
            resident,
            Box::new(move || time_gets(&filled.cache, &filled.lookups)),
        )
    }
}

/// Hit latency of each of `kinds`, rounds interleaved; the best round of each.
pub fn measure_all(kinds: &[crate::contenders::Kind], sizes: HitLatency) -> Vec<LatencyResult> {
    let (resident, mut rounds): (Vec<f64>, Vec<Round<'static>>) = kinds
        .iter()
        .map(|kind| kind.measure(PrepareLatency(sizes)))
        .unzip();
    interleave(&mut rounds, sizes.rounds)
        .into_iter()
        .zip(resident)
        .map(|(figures, resident)| LatencyResult {
            ns_per_get: best_latency(&figures),
            rounds: figures,
            resident,
        })
        .collect()
}

/// moka's future cache driven the usual way, for comparison with polling it in place (what
/// [`MokaFuture`](crate::contenders::MokaFuture) does): `get(&key).await` in a loop inside one
/// task of a current-thread tokio runtime. Nanoseconds per `get`, best round.
pub fn moka_future_in_tokio(sizes: HitLatency) -> f64 {
    let filled = fill::<crate::contenders::MokaFuture>(sizes.entries, sizes.lookups);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a tokio runtime");
    let cache = &filled.cache.0;
    let round: Round<'_> =
        Box::new(|| ns_per_await(&runtime, &filled.lookups, |key| cache.get(key)));
    let figures = interleave(&mut [round], sizes.rounds);
    best_latency(&figures[0])
}

/// Nanoseconds per call of `call` on each of `items`, each call awaited in turn in one task of
/// `runtime` (as an async caller runs them; polling each future in place would time the
/// future's copy as well).
pub fn ns_per_await<'a, T, F: Future>(
    runtime: &tokio::runtime::Runtime,
    items: &'a [T],
    mut call: impl FnMut(&'a T) -> F,
) -> f64 {
    runtime.block_on(async {
        let started = Instant::now();
        for item in items {
            black_box(call(black_box(item)).await);
        }
        started.elapsed().as_nanos() as f64 / items.len().max(1) as f64
    })
}

impl Measure for HitLatency {
    type Output = LatencyResult;

    fn measure<C: Contender>(self) -> LatencyResult {
        let (resident, round) = PrepareLatency(self).measure::<C>();
        let figures = interleave(&mut [round], self.rounds);
        LatencyResult {
            ns_per_get: best_latency(&figures[0]),
            rounds: figures[0].clone(),
            resident,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contenders::Kind;

    #[test]
    fn keys_are_distinct() {
        let mut keys: Vec<u64> = (0..10_000).map(key_of).collect();
        keys.sort_unstable();
        keys.dedup();
        assert_eq!(keys.len(), 10_000);
    }

    #[test]
    fn rounds_interleave_after_a_warm_up() {
        let log = std::cell::RefCell::new(Vec::new());
        let mut rounds: Vec<Round<'_>> = (0..2)
            .map(|i| {
                let log = &log;
                let mut n = 0.0;
                Box::new(move || {
                    log.borrow_mut().push(i);
                    n += 1.0;
                    n
                }) as Round<'_>
            })
            .collect();
        let figures = interleave(&mut rounds, 2);
        drop(rounds);
        assert_eq!(log.into_inner(), [0, 1, 0, 1, 0, 1]);
        // The warm-up round (figure 1) is not among the figures.
        assert_eq!(figures, [[2.0, 3.0], [2.0, 3.0]]);
        assert_eq!(best_latency(&figures[0]), 2.0);
    }

    #[test]
    fn paired_ratios_are_taken_round_by_round() {
        // Round by round 2, 0.5, 1 and 4: the best rounds alone (2 and 1) would say 2.
        let paired = paired_ratio(&[2.0, 4.0, 3.0, 8.0], &[1.0, 8.0, 3.0, 2.0]).unwrap();
        assert_eq!(paired.median, 1.5);
        assert_eq!((paired.low, paired.high), (0.5, 4.0));
        let odd = paired_ratio(&[3.0, 1.0, 2.0], &[1.0, 1.0, 1.0]).unwrap();
        assert_eq!(odd.median, 2.0);
        assert_eq!(paired_ratio(&[], &[]), None);
    }

    #[test]
    fn every_contender_serves_its_filled_keys() {
        let measurement = HitLatency {
            entries: 2_000,
            lookups: 1_000,
            rounds: 1,
        };
        for kind in Kind::ALL {
            let result = kind.measure(measurement);
            assert!(result.ns_per_get > 0.0, "{}", kind.name());
            assert!(
                result.resident > 0.8,
                "{}: {}",
                kind.name(),
                result.resident
            );
        }
    }
}
