//! Where a hit's time goes: memokit's and quick_cache's `get` beside bare structures on the
//! hit-latency workload of the report (10,000 resident `u64` keys, random order, one thread):
//! the layout both caches use (a read lock around a table of slot numbers and a slab of entries)
//! with nothing else, maps that keep the value in the table's bucket behind a read lock, and
//! maps read without a lock (`scc::HashIndex` and `papaya::HashMap`, by epochs). Rounds alternate between the structures; the median of
//! each is printed with its ratio to quick_cache.
//!
//! `taskset -c 1 cargo run -p memokit-bench --release --example read_paths [ROUNDS]`
//!
//! It answers one question of issue 21 (a hit at 0.9× quick_cache): is the shard's read lock
//! what a lock-free read path would save? See bench/analysis.md for what it measured.

use std::hint::black_box;
use std::time::Instant;

use memokit_bench::latency::key_of;
use memokit_bench::workloads::SplitMix64;

const ENTRIES: u64 = 10_000;
const LOOKUPS: usize = 2_000_000;

type Hasher = ahash::RandomState;

/// A timed loop over the lookups: nanoseconds per hit.
type TimedLoop<'a> = Box<dyn Fn(&[u64]) -> f64 + 'a>;

/// One structure under test.
struct Candidate<'a> {
    name: &'static str,
    time: TimedLoop<'a>,
}

/// The layout of memokit's and quick_cache's shards with nothing else: a table of slot numbers,
/// a slab of entries (24 bytes each, as memokit's `u64 -> u64` entry), one read lock.
struct SlotTable {
    table: hashbrown::HashTable<u32>,
    slots: Vec<Option<(u64, u64, std::num::NonZeroU32)>>,
}

impl SlotTable {
    fn new(keys: &[u64], hasher: &Hasher) -> Self {
        let slots: Vec<_> = keys
            .iter()
            .map(|&key| Some((key, key, std::num::NonZeroU32::MIN)))
            .collect();
        let mut table = hashbrown::HashTable::with_capacity(keys.len());
        for (idx, &key) in keys.iter().enumerate() {
            table.insert_unique(hasher.hash_one(key), idx as u32, |&idx| {
                hasher.hash_one(slots[idx as usize].expect("filled").0)
            });
        }
        SlotTable { table, slots }
    }

    fn get(&self, hash: u64, key: u64) -> Option<u64> {
        let mut found = None;
        self.table
            .find(hash, |&idx| match &self.slots[idx as usize] {
                Some((k, v, _)) if *k == key => {
                    found = Some(*v);
                    true
                }
                _ => false,
            });
        found
    }
}

/// Nanoseconds per lookup of `keys` through `get`, which must hit every time.
fn ns_per_hit(keys: &[u64], get: impl Fn(u64) -> Option<u64>) -> f64 {
    let started = Instant::now();
    let mut hits = 0usize;
    for &key in keys {
        hits += usize::from(black_box(get(black_box(key))).is_some());
    }
    let elapsed = started.elapsed();
    assert_eq!(hits, keys.len(), "a resident key missed");
    elapsed.as_nanos() as f64 / keys.len() as f64
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

fn main() {
    let rounds: usize = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(7);
    let keys: Vec<u64> = (0..ENTRIES).map(key_of).collect();
    let mut rng = SplitMix64(0x1a7e);
    let lookups: Vec<u64> = (0..LOOKUPS)
        .map(|_| keys[rng.below(ENTRIES) as usize])
        .collect();

    // Both caches get room for a few more than they hold, so that no key is evicted while
    // filling and every lookup hits.
    let capacity = ENTRIES + ENTRIES / 10;
    let memokit = memokit::Cache::<u64, u64>::new(capacity);
    let quick = quick_cache::sync::Cache::<u64, u64>::new(capacity as usize);
    let hasher = Hasher::new();
    let slot_table = parking_lot::RwLock::new(SlotTable::new(&keys, &hasher));
    let locked = parking_lot::RwLock::new(hashbrown::HashMap::with_hasher(Hasher::new()));
    let scc = scc::HashIndex::with_hasher(Hasher::new());
    let papaya = papaya::HashMap::with_hasher(Hasher::new());
    for &key in &keys {
        memokit.insert(key, key);
        quick.insert(key, key);
        locked.write().insert(key, key);
        scc.insert(key, key).expect("distinct keys");
        papaya.pin().insert(key, key);
    }

    let lookups = &lookups;
    let candidates = [
        Candidate {
            name: "quick_cache Cache::get",
            time: Box::new(|keys| ns_per_hit(keys, |k| quick.get(&k))),
        },
        Candidate {
            name: "memokit Cache::get",
            time: Box::new(|keys| ns_per_hit(keys, |k| memokit.get(&k))),
        },
        Candidate {
            name: "RwLock<slot numbers + slab>, nothing else",
            time: Box::new(|keys| {
                ns_per_hit(keys, |k| slot_table.read().get(hasher.hash_one(k), k))
            }),
        },
        Candidate {
            name: "RwLock<hashbrown::HashMap> (value in the bucket)",
            time: Box::new(|keys| ns_per_hit(keys, |k| locked.read().get(&k).copied())),
        },
        Candidate {
            name: "scc::HashIndex::peek_with (lock-free)",
            time: Box::new(|keys| ns_per_hit(keys, |k| scc.peek_with(&k, |_, v| *v))),
        },
        Candidate {
            name: "papaya::HashMap, pin + get (lock-free)",
            time: Box::new(|keys| ns_per_hit(keys, |k| papaya.pin().get(&k).copied())),
        },
    ];

    let mut times: Vec<Vec<f64>> = vec![Vec::new(); candidates.len()];
    for _ in 0..rounds {
        for (candidate, times) in candidates.iter().zip(&mut times) {
            times.push((candidate.time)(lookups));
        }
    }
    let medians: Vec<f64> = times.into_iter().map(median).collect();
    println!(
        "{ENTRIES} resident u64 keys, {LOOKUPS} random hits per round, median of {rounds} rounds"
    );
    for (candidate, ns) in candidates.iter().zip(&medians) {
        println!(
            "{:<50} {ns:>6.2} ns  {:.2}× quick_cache",
            candidate.name,
            ns / medians[0]
        );
    }
}
