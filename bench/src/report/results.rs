//! Everything one run measured, as plain data, and what it says about the targets.
//! Nothing here measures, formats a report or writes a file.

use std::time::Duration;

use crate::coalescing::{FutureSizes, ScenarioResult};
use crate::contenders::Kind;
use crate::disk_tier::DiskResult;
use crate::hit_rows::Row;
use crate::key_shapes::ShapeResult;
use crate::latency::{paired_ratio, LatencyResult, PairedRatio};
use crate::machine::Machine;
use crate::macro_overhead::MacroResult;
use crate::memory::MemoryResult;
use crate::shared_tier::SharedResult;
use crate::targets::{at_least, at_most, hit_ratio_shortfalls, Target};

use super::Sizes;

/// Everything one run measured.
#[derive(Debug)]
pub struct Results {
    /// Where it ran.
    pub machine: Machine,
    /// Load averages when it ended.
    pub load_at_end: String,
    /// The sizes used.
    pub sizes: Sizes,
    /// The contenders, in table order.
    pub kinds: Vec<Kind>,
    /// Hit latency per contender.
    pub latency: Vec<LatencyResult>,
    /// moka's future cache awaited inside a tokio task, ns per hit.
    pub moka_future_in_tokio: f64,
    /// Throughput: per thread count, Mops/s per contender.
    pub throughput: Vec<(usize, Vec<f64>)>,
    /// The same of a small cache ([`Sizes::small_throughput`]).
    pub small_throughput: Vec<(usize, Vec<f64>)>,
    /// memokit's default against quick_cache round by round, for the hit latency and each
    /// throughput table.
    pub paired: Vec<Paired>,
    /// Hit-ratio rows.
    pub hit_rows: Vec<Row>,
    /// [`hit_ratio::overfill`](crate::hit_ratio::overfill): the most entries each contender held at once on the smallest
    /// row when not settled after each insert.
    pub overfill: Option<(String, usize, Vec<usize>)>,
    /// Memory per contender.
    pub memory: Vec<Result<MemoryResult, String>>,
    /// Coalescing scenarios.
    pub coalescing: Vec<ScenarioResult>,
    /// The size of the futures the async coalescing scenarios await.
    pub coalescing_futures: FutureSizes,
    /// Macro overhead.
    pub macro_overhead: MacroResult,
    /// The `#[cached]` hit per key shape, against quick_cache and the `cached` crate.
    pub key_shapes: Vec<ShapeResult>,
    /// Shared tier, or why it was skipped.
    pub shared: Result<SharedResult, String>,
    /// Disk tier, or why it was not measured.
    pub disk: Result<DiskResult, String>,
    /// Wall time of each part.
    pub phases: Vec<(&'static str, Duration)>,
    /// The shared trace directory, or why there was none.
    pub traces: String,
    /// The day it ran, as `YYYY-MM-DD` (UTC).
    pub date: String,
    /// The commit it ran at.
    pub commit: String,
    /// The versions of the crates compared, as `Cargo.lock` names them.
    pub versions: Vec<(String, String)>,
}

/// One figure of memokit's default against quick_cache: the ratio of their best rounds, and
/// the ratios of the rounds that ran back to back.
#[derive(Debug, Clone, PartialEq)]
pub struct Paired {
    /// What was measured.
    pub figure: String,
    /// memokit's best round over quick_cache's.
    pub best: f64,
    /// memokit's rounds over quick_cache's, round by round.
    pub rounds: PairedRatio,
}

impl Paired {
    /// The name of the throughput figure at `threads` threads and `capacity` entries.
    pub fn throughput_figure(threads: usize, capacity: usize) -> String {
        format!("throughput, {threads} thread(s), capacity {capacity}")
    }

    /// memokit's default against quick_cache, from every contender's `rounds` and `best`
    /// (in the order of `kinds`); `None` without either.
    pub fn against_quick_cache(
        figure: String,
        kinds: &[Kind],
        rounds: &[Vec<f64>],
        best: &[f64],
    ) -> Option<Paired> {
        let me = kinds.iter().position(|&k| k == Kind::REFERENCE)?;
        let quick = kinds.iter().position(|&k| k == Kind::QuickCache)?;
        Some(Paired {
            figure,
            best: best[me] / best[quick],
            rounds: paired_ratio(&rounds[me], &rounds[quick])?,
        })
    }
}

impl Results {
    /// Where `kind` is in [`Results::kinds`], and so in every per-contender list.
    pub(super) fn index(&self, kind: Kind) -> Option<usize> {
        self.kinds.iter().position(|&k| k == kind)
    }

    /// Nanoseconds per hit of `kind`.
    pub fn latency_of(&self, kind: Kind) -> Option<f64> {
        Some(self.latency[self.index(kind)?].ns_per_get)
    }

    /// Mops/s of `kind` at `threads`.
    pub fn throughput_of(&self, kind: Kind, threads: usize) -> Option<f64> {
        self.mops_of(&self.throughput, kind, threads)
    }

    /// Mops/s of `kind` at `threads` in `runs` (one of the throughput tables).
    pub(super) fn mops_of(
        &self,
        runs: &[(usize, Vec<f64>)],
        kind: Kind,
        threads: usize,
    ) -> Option<f64> {
        let (_, mops) = runs.iter().find(|(t, _)| *t == threads)?;
        Some(mops[self.index(kind)?])
    }

    /// Bytes per entry of `kind`.
    pub fn bytes_of(&self, kind: Kind) -> Option<f64> {
        self.memory[self.index(kind)?]
            .as_ref()
            .ok()
            .map(MemoryResult::bytes_per_entry)
    }

    /// The hit ratio of `kind` on the first Zipf(1.0) row at the smaller capacity (1 %).
    pub fn zipf_headline(&self, kind: Kind) -> Option<f64> {
        let row = self.hit_rows.iter().find(|r| r.workload == "zipf(1.0)")?;
        Some(row.ratios[self.index(kind)?])
    }

    /// `target`, judged on the best rounds, with the median of the paired rounds of `figure`
    /// beside it (see [`Paired`]).
    fn with_paired(&self, mut target: Target, figure: &str) -> Target {
        if let Some(paired) = self.paired.iter().find(|p| p.figure == figure) {
            target.measured += &format!(
                " (best rounds; median of paired rounds {:.2}×)",
                paired.rounds.median
            );
        }
        target
    }

    /// The targets, judged on this run.
    pub fn targets(&self) -> Vec<Target> {
        let me = Kind::REFERENCE;
        let mut targets = Vec::new();
        if let (Some(m), Some(q), Some(moka)) = (
            self.latency_of(me),
            self.latency_of(Kind::QuickCache),
            self.latency_of(Kind::MokaSync),
        ) {
            targets.push(self.with_paired(
                at_most("hit latency ≤ 1.0× quick_cache", m, q, 1.0, "ns"),
                "hit latency",
            ));
            targets.push(at_most(
                "hit latency ≤ 0.5× moka (sync)",
                m,
                moka,
                0.5,
                "ns",
            ));
        }
        if let (Some(m), Some(q), Some(moka)) = (
            self.throughput_of(me, 2),
            self.throughput_of(Kind::QuickCache, 2),
            self.throughput_of(Kind::MokaSync, 2),
        ) {
            targets.push(self.with_paired(
                at_least(
                    "2-thread throughput ≥ 1.0× quick_cache",
                    m,
                    q,
                    1.0,
                    "Mops/s",
                ),
                &Paired::throughput_figure(2, self.sizes.throughput.capacity),
            ));
            targets.push(at_least(
                "2-thread throughput ≥ 2× moka (sync)",
                m,
                moka,
                2.0,
                "Mops/s",
            ));
        }
        let shortfalls = hit_ratio_shortfalls(&self.hit_rows, &self.kinds, 0.005);
        targets.push(Target {
            goal: "hit ratio ≥ best peer − 0.5 points on every row".to_string(),
            met: shortfalls.is_empty(),
            measured: format!(
                "short on {} of {} rows{}",
                shortfalls.len(),
                self.hit_rows.len(),
                shortfalls
                    .iter()
                    .map(|s| s.points())
                    .max_by(f64::total_cmp)
                    .map_or(String::new(), |worst| format!(
                        ", by up to {worst:.2} points"
                    ))
            ),
        });
        if let (Some(m), Some(q)) = (self.bytes_of(me), self.bytes_of(Kind::QuickCache)) {
            targets.push(at_most("bytes per entry ≤ quick_cache", m, q, 1.0, "B"));
        }
        let memokit_scenarios: Vec<&ScenarioResult> = self
            .coalescing
            .iter()
            .filter(|s| s.name.starts_with("memokit"))
            .collect();
        let most_loads = memokit_scenarios.iter().map(|s| s.max_loads()).max();
        targets.push(Target {
            goal: "coalescing: exactly 1 load".to_string(),
            met: memokit_scenarios
                .iter()
                .all(|s| s.runs.iter().all(|r| r.loads == 1)),
            measured: format!(
                "at most {} load(s) in any run of {} memokit scenarios",
                most_loads.unwrap_or(0),
                memokit_scenarios.len()
            ),
        });
        let slowest = memokit_scenarios
            .iter()
            .map(|s| (s.max(|r| r.after_load), s.name, &s.callers))
            .max();
        if let Some((slowest, name, callers)) = slowest {
            targets.push(Target {
                goal: "coalescing: every waiter served ≤ 2 ms after the load ends".to_string(),
                met: slowest <= Duration::from_millis(2),
                measured: format!(
                    "worst {:.2} ms ({name}, {callers}), over every run",
                    ms(slowest)
                ),
            });
        }
        match &self.shared {
            Ok(r) => targets.push(at_most(
                "L2 hit ≤ 1.2× plain Redis GET",
                r.server.l2_hit_us,
                r.server.get_us,
                1.2,
                "µs",
            )),
            Err(why) => targets.push(Target {
                goal: "L2 hit ≤ 1.2× plain Redis GET".to_string(),
                met: false,
                measured: format!("not measured: {why}"),
            }),
        }
        targets
    }
}

/// Milliseconds, for figures stated in ms.
pub(super) fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}
