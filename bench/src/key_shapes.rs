//! The cost of a `#[cached]` hit for each key shape the macro is used with (`u64`, `&str`,
//! `(&str, u64)`, `&[u8]`), against quick_cache's `get` by the borrowed key on a cache of the
//! owned keys, and against the `cached` crate's `#[cached]` on the same function (which needs
//! `key` and `convert` to take a borrowed argument, and so builds the owned key on every call).
//! Every timed call is a hit.

use std::future::Future;
use std::hash::{Hash, Hasher};
use std::hint::black_box;
use std::time::Instant;

use crate::contenders::poll_to_completion;
use crate::latency::{best_latency, ns_per_await};
use crate::workloads::SplitMix64;

/// The measurement's sizes.
#[derive(Debug, Clone, Copy)]
pub struct ShapeSizes {
    /// Keys cached before timing (all stay cached).
    pub entries: usize,
    /// Timed calls per round and way.
    pub lookups: usize,
    /// Rounds, alternating the ways; the best round of each is reported.
    pub rounds: usize,
}

/// Nanoseconds per hit of one key shape, three ways.
#[derive(Debug, Clone, PartialEq)]
pub struct ShapeResult {
    /// How the key is written, e.g. "`&str`".
    pub shape: &'static str,
    /// memokit's `#[cached]`.
    pub memokit_ns: f64,
    /// quick_cache's `get` by the borrowed key.
    pub quick_cache_ns: f64,
    /// The `cached` crate's `#[cached]`.
    pub cached_ns: f64,
}

const CAPACITY: usize = 100_000;

#[memokit::cached(size = 100_000)]
fn m_u64(k: u64) -> u64 {
    k ^ 1
}

#[memokit::cached(size = 100_000)]
fn m_str(s: &str) -> usize {
    s.len()
}

#[memokit::cached(size = 100_000)]
fn m_str_u64(s: &str, n: u64) -> u64 {
    s.len() as u64 + n
}

#[memokit::cached(size = 100_000)]
fn m_bytes(b: &[u8]) -> usize {
    b.len()
}

#[cached::proc_macro::cached(max_size = 100_000)]
fn c_u64(k: u64) -> u64 {
    k ^ 1
}

#[memokit::cached(size = 100_000)]
async fn m_async_u64(k: u64) -> u64 {
    k ^ 1
}

#[cached::proc_macro::cached(max_size = 100_000)]
async fn c_async_u64(k: u64) -> u64 {
    k ^ 1
}

#[cached::proc_macro::cached(max_size = 100_000, key = "String", convert = r#"{ s.to_string() }"#)]
fn c_str(s: &str) -> usize {
    s.len()
}

#[cached::proc_macro::cached(
    max_size = 100_000,
    key = "(String, u64)",
    convert = r#"{ (s.to_string(), n) }"#
)]
fn c_str_u64(s: &str, n: u64) -> u64 {
    s.len() as u64 + n
}

#[cached::proc_macro::cached(max_size = 100_000, key = "Vec<u8>", convert = r#"{ b.to_vec() }"#)]
fn c_bytes(b: &[u8]) -> usize {
    b.len()
}

/// `(&str, u64)` looked up in a cache of `(String, u64)`: hashes as the owned pair.
struct StrU64<'a>(&'a str, u64);

impl Hash for StrU64<'_> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        (self.0, self.1).hash(state);
    }
}

impl quick_cache::Equivalent<(String, u64)> for StrU64<'_> {
    fn equivalent(&self, key: &(String, u64)) -> bool {
        self.0 == key.0 && self.1 == key.1
    }
}

/// Nanoseconds per call of `way` over `indices`.
fn time(indices: &[usize], mut way: impl FnMut(usize)) -> f64 {
    let started = Instant::now();
    for &index in indices {
        way(black_box(index));
    }
    started.elapsed().as_nanos() as f64 / indices.len().max(1) as f64
}

/// One way of calling, as a timer: nanoseconds per call over the indices it is given.
type Timer<'a> = Box<dyn FnMut(&[usize]) -> f64 + 'a>;

/// A way of calling one index at a time, plainly.
fn blocking<'a>(mut way: impl FnMut(usize) + 'a) -> Timer<'a> {
    Box::new(move |indices| time(indices, &mut way))
}

/// An `async` way, awaited in a loop inside one task of a current-thread tokio runtime, as an
/// async caller runs it.
fn in_a_task<'a, F: Future>(
    runtime: &'a tokio::runtime::Runtime,
    mut way: impl FnMut(usize) -> F + 'a,
) -> Timer<'a> {
    Box::new(move |indices| ns_per_await(runtime, indices, |&index| way(index)))
}

/// The best round of each of three ways, timed in turn round after round.
fn three_ways(
    shape: &'static str,
    rounds: usize,
    indices: &[usize],
    mut memokit: Timer<'_>,
    mut quick: Timer<'_>,
    mut cached: Timer<'_>,
) -> ShapeResult {
    let (mut m, mut q, mut c) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rounds.max(1) {
        m.push(memokit(indices));
        q.push(quick(indices));
        c.push(cached(indices));
    }
    ShapeResult {
        shape,
        memokit_ns: best_latency(&m),
        quick_cache_ns: best_latency(&q),
        cached_ns: best_latency(&c),
    }
}

/// Runs the measurement: every shape, three ways.
pub fn measure(sizes: ShapeSizes) -> Vec<ShapeResult> {
    let entries = sizes.entries.clamp(1, CAPACITY / 2);
    let names: Vec<String> = (0..entries).map(|i| format!("user-name-{i:08}")).collect();
    let bytes: Vec<Vec<u8>> = names.iter().map(|name| name.clone().into_bytes()).collect();
    let q_u64 = quick_cache::sync::Cache::<u64, u64>::new(CAPACITY);
    let q_str = quick_cache::sync::Cache::<String, usize>::new(CAPACITY);
    let q_pair = quick_cache::sync::Cache::<(String, u64), u64>::new(CAPACITY);
    let q_bytes = quick_cache::sync::Cache::<Vec<u8>, usize>::new(CAPACITY);
    for (i, name) in names.iter().enumerate() {
        let n = i as u64;
        m_u64(n);
        poll_to_completion(m_async_u64(n));
        m_str(name);
        m_str_u64(name, n);
        m_bytes(&bytes[i]);
        c_u64(n);
        poll_to_completion(c_async_u64(n));
        c_str(name);
        c_str_u64(name, n);
        c_bytes(&bytes[i]);
        q_u64.insert(n, n ^ 1);
        q_str.insert(name.clone(), name.len());
        q_pair.insert((name.clone(), n), name.len() as u64 + n);
        q_bytes.insert(bytes[i].clone(), bytes[i].len());
    }
    let mut rng = SplitMix64(0x5ca1e);
    let indices: Vec<usize> = (0..sizes.lookups.max(1))
        .map(|_| rng.below(entries as u64) as usize)
        .collect();
    let misses_before = [
        m_u64_cache().stats().misses,
        m_async_u64_cache().stats().misses,
        m_str_cache().stats().misses,
        m_str_u64_cache().stats().misses,
        m_bytes_cache().stats().misses,
    ];
    let rounds = sizes.rounds;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a tokio runtime");
    let results = vec![
        three_ways(
            "`u64`",
            rounds,
            &indices,
            blocking(|i| {
                black_box(m_u64(i as u64));
            }),
            blocking(|i| {
                black_box(q_u64.get(&(i as u64)));
            }),
            blocking(|i| {
                black_box(c_u64(i as u64));
            }),
        ),
        three_ways(
            "`u64`, `async fn`",
            rounds,
            &indices,
            in_a_task(&runtime, |i| m_async_u64(i as u64)),
            blocking(|i| {
                black_box(q_u64.get(&(i as u64)));
            }),
            in_a_task(&runtime, |i| c_async_u64(i as u64)),
        ),
        three_ways(
            "`&str`",
            rounds,
            &indices,
            blocking(|i| {
                black_box(m_str(&names[i]));
            }),
            blocking(|i| {
                black_box(q_str.get(names[i].as_str()));
            }),
            blocking(|i| {
                black_box(c_str(&names[i]));
            }),
        ),
        three_ways(
            "`(&str, u64)`",
            rounds,
            &indices,
            blocking(|i| {
                black_box(m_str_u64(&names[i], i as u64));
            }),
            blocking(|i| {
                black_box(q_pair.get(&StrU64(&names[i], i as u64)));
            }),
            blocking(|i| {
                black_box(c_str_u64(&names[i], i as u64));
            }),
        ),
        three_ways(
            "`&[u8]`",
            rounds,
            &indices,
            blocking(|i| {
                black_box(m_bytes(&bytes[i]));
            }),
            blocking(|i| {
                black_box(q_bytes.get(bytes[i].as_slice()));
            }),
            blocking(|i| {
                black_box(c_bytes(&bytes[i]));
            }),
        ),
    ];
    let misses_after = [
        m_u64_cache().stats().misses,
        m_async_u64_cache().stats().misses,
        m_str_cache().stats().misses,
        m_str_u64_cache().stats().misses,
        m_bytes_cache().stats().misses,
    ];
    assert_eq!(misses_before, misses_after, "every timed call is a hit");
    results
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shape_is_measured_three_ways() {
        let results = measure(ShapeSizes {
            entries: 100,
            lookups: 1_000,
            rounds: 2,
        });
        let shapes: Vec<&str> = results.iter().map(|r| r.shape).collect();
        assert_eq!(
            shapes,
            [
                "`u64`",
                "`u64`, `async fn`",
                "`&str`",
                "`(&str, u64)`",
                "`&[u8]`"
            ]
        );
        for r in &results {
            assert!(
                r.memokit_ns > 0.0 && r.quick_cache_ns > 0.0 && r.cached_ns > 0.0,
                "{r:?}"
            );
        }
    }
}
