//! Throughput: 90 % `get`, 10 % `insert` of Zipf(1.0) keys over a large key space, on several
//! threads; million operations per second of wall time.

use std::hint::black_box;
use std::sync::Barrier;
use std::time::{Duration, Instant};

use crate::contenders::{Contender, Kind, Measure};
use crate::latency::{interleave, Round};
use crate::workloads::{mixed_ops, Op, SplitMix64, Zipf, SEED};

/// The throughput workload's shape.
#[derive(Debug, Clone, Copy)]
pub struct ThroughputSizes {
    /// Distinct keys the Zipf draws from.
    pub keys: usize,
    /// Cache capacity.
    pub capacity: usize,
    /// Operations per thread per round.
    pub ops_per_thread: usize,
    /// Timed rounds; the best is reported.
    pub rounds: usize,
    /// Zipf exponent.
    pub exponent: f64,
    /// Share of inserts among the operations.
    pub insert_share: f64,
}

/// Pre-generated operation streams, one per thread, so that no thread draws random numbers
/// while timed. Each thread has its own seed.
pub fn streams(sizes: &ThroughputSizes, threads: usize) -> Vec<Vec<Op>> {
    let zipf = Zipf::new(sizes.keys, sizes.exponent);
    (0..threads)
        .map(|t| {
            let mut rng = SplitMix64(SEED ^ (t as u64 + 1).wrapping_mul(0x9e37_79b9));
            mixed_ops(&zipf, sizes.insert_share, sizes.ops_per_thread, &mut rng)
        })
        .collect()
}

/// Runs one stream on a cache.
#[inline]
pub fn run_ops<C: Contender>(cache: &C, ops: &[Op]) {
    for &op in ops {
        match op {
            Op::Get(key) => {
                black_box(cache.get(black_box(key)));
            }
            Op::Insert(key) => cache.insert(key, key),
        }
    }
}

/// The untimed warm-up before the rounds: every key of `streams` is looked up and inserted on
/// a miss, so that the cache holds the hot keys the way the timed rounds use it; then settled.
pub fn warm_up<C: Contender>(cache: &C, streams: &[Vec<Op>]) {
    for ops in streams {
        for &op in ops {
            let (Op::Get(key) | Op::Insert(key)) = op;
            if cache.get(key).is_none() {
                cache.insert(key, key);
            }
        }
    }
    cache.settle();
}

/// Runs `streams[t]` on thread `t`, all started together behind a barrier; the wall time from
/// the start until the last thread is done.
pub fn timed_round<C: Contender>(cache: &C, streams: &[Vec<Op>]) -> Duration {
    let start = Barrier::new(streams.len() + 1);
    std::thread::scope(|scope| {
        let workers: Vec<_> = streams
            .iter()
            .map(|ops| {
                let start = &start;
                scope.spawn(move || {
                    start.wait();
                    run_ops(cache, ops);
                })
            })
            .collect();
        start.wait();
        let started = Instant::now();
        for worker in workers {
            worker.join().expect("a throughput thread panicked");
        }
        started.elapsed()
    })
}

/// The throughput measurement on the given streams (one per thread).
#[derive(Debug, Clone, Copy)]
pub struct Throughput<'a> {
    /// Sizes; `capacity` and `rounds` are used here.
    pub sizes: ThroughputSizes,
    /// One operation stream per thread.
    pub streams: &'a [Vec<Op>],
}

/// [`Throughput`] prepared for [`interleave`]: a warmed cache inside the round, which returns
/// million operations per second.
#[derive(Debug, Clone, Copy)]
pub struct PrepareThroughput<'a>(pub Throughput<'a>);

impl<'a> Measure for PrepareThroughput<'a> {
    type Output = Round<'a>;

    fn measure<C: Contender>(self) -> Round<'a> {
        let Throughput { sizes, streams } = self.0;
        let cache = C::with_capacity(sizes.capacity);
        warm_up(&cache, streams);
        let ops: usize = streams.iter().map(Vec::len).sum();
        Box::new(move || ops as f64 / timed_round(&cache, streams).as_secs_f64() / 1e6)
    }
}

/// The best of `rounds` (Mops/s): other work on the machine can only slow a round down.
pub fn best_throughput(rounds: &[f64]) -> f64 {
    rounds.iter().copied().fold(0.0, f64::max)
}

/// Throughput of each of `kinds` on `streams`, rounds interleaved: every round of each, in the
/// order they ran (Mops/s).
pub fn measure_all(kinds: &[Kind], sizes: ThroughputSizes, streams: &[Vec<Op>]) -> Vec<Vec<f64>> {
    let mut rounds: Vec<Round<'_>> = kinds
        .iter()
        .map(|kind| kind.measure(PrepareThroughput(Throughput { sizes, streams })))
        .collect();
    interleave(&mut rounds, sizes.rounds)
}

impl Measure for Throughput<'_> {
    /// Million operations per second in the best round.
    type Output = f64;

    fn measure<C: Contender>(self) -> f64 {
        let round = PrepareThroughput(self).measure::<C>();
        best_throughput(&interleave(&mut [round], self.sizes.rounds)[0])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny() -> ThroughputSizes {
        ThroughputSizes {
            keys: 10_000,
            capacity: 1_000,
            ops_per_thread: 20_000,
            rounds: 1,
            exponent: 1.0,
            insert_share: 0.1,
        }
    }

    #[test]
    fn streams_differ_per_thread_and_repeat_per_run() {
        let a = streams(&tiny(), 2);
        assert_eq!(a.len(), 2);
        assert_eq!(a[0].len(), 20_000);
        assert_ne!(a[0], a[1]);
        assert_eq!(a, streams(&tiny(), 2));
    }

    #[test]
    fn every_contender_runs_on_two_threads() {
        let streams = streams(&tiny(), 2);
        for kind in Kind::ALL {
            let mops = kind.measure(Throughput {
                sizes: tiny(),
                streams: &streams,
            });
            assert!(mops.is_finite() && mops > 0.0, "{}: {mops}", kind.name());
        }
        let all = measure_all(&Kind::ALL[..3], tiny(), &streams);
        assert_eq!(all.len(), 3);
        assert!(all.iter().all(|rounds| rounds.len() == tiny().rounds));
        assert_eq!(best_throughput(&[1.0, 3.0, 2.0]), 3.0);
    }
}
