//! The cost of a `#[cached]` hit for each key shape (`&str`, `&[u8]`, `&T`, `(&str, u32)`,
//! `u64`), next to `Cache::get` and quick_cache's `get` by the borrowed key. Prints one line
//! per way: the best of a few rounds, in nanoseconds per hit, over keys all cached.
//!
//! ```sh
//! cargo run -p memokit-bench --release --example hit_shapes
//! ```
//!
//! Timed figures on a shared machine move between runs: compare ways of one run.

use std::hint::black_box;
use std::time::Instant;

use memokit::cached;

const ENTRIES: usize = 1_000;
const LOOKUPS: usize = 1_000_000;
const ROUNDS: usize = 7;

#[cached(size = 10_000)]
fn by_str(name: &str) -> usize {
    name.len()
}

#[cached(size = 10_000)]
fn by_slice(bytes: &[u8]) -> usize {
    bytes.len()
}

/// A key that is a struct holding a `String`: cloning it allocates.
#[derive(Clone, PartialEq, Eq, Hash)]
struct User {
    name: String,
    id: u32,
}

#[cached(size = 10_000)]
fn by_struct(user: &User) -> u32 {
    user.id
}

#[cached(size = 10_000)]
fn by_str_and_u32(name: &str, n: u32) -> usize {
    name.len() + n as usize
}

#[cached(size = 10_000)]
fn by_u64(n: u64) -> u64 {
    n.wrapping_mul(n)
}

/// Nanoseconds per call of `lookup` over `indices`, the best of [`ROUNDS`].
fn time(indices: &[usize], mut lookup: impl FnMut(usize)) -> f64 {
    (0..ROUNDS)
        .map(|_| {
            let started = Instant::now();
            for &index in indices {
                lookup(black_box(index));
            }
            started.elapsed().as_nanos() as f64 / indices.len() as f64
        })
        .fold(f64::INFINITY, f64::min)
}

fn main() {
    let names: Vec<String> = (0..ENTRIES).map(|i| format!("user-name-{i:08}")).collect();
    let bytes: Vec<Vec<u8>> = names.iter().map(|name| name.clone().into_bytes()).collect();
    let users: Vec<User> = names
        .iter()
        .enumerate()
        .map(|(i, name)| User {
            name: name.clone(),
            id: i as u32,
        })
        .collect();
    let memokit_cache: memokit::Cache<String, usize> = memokit::Cache::new(10_000);
    let quick: quick_cache::sync::Cache<String, usize> = quick_cache::sync::Cache::new(10_000);
    let quick_u64: quick_cache::sync::Cache<u64, u64> = quick_cache::sync::Cache::new(10_000);
    for i in 0..ENTRIES {
        by_str(&names[i]);
        by_slice(&bytes[i]);
        by_struct(&users[i]);
        by_str_and_u32(&names[i], i as u32);
        by_u64(i as u64);
        memokit_cache.insert(names[i].clone(), i);
        quick.insert(names[i].clone(), i);
        quick_u64.insert(i as u64, i as u64);
    }
    // A fixed pseudo-random order (SplitMix64), the same for every way.
    let mut state = 0x9e37_79b9_u64;
    let indices: Vec<usize> = (0..LOOKUPS)
        .map(|_| {
            state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            ((z ^ (z >> 31)) % ENTRIES as u64) as usize
        })
        .collect();

    let rows = [
        (
            "#[cached] fn(&str)",
            time(&indices, |i| {
                black_box(by_str(&names[i]));
            }),
        ),
        (
            "#[cached] fn(&[u8])",
            time(&indices, |i| {
                black_box(by_slice(&bytes[i]));
            }),
        ),
        (
            "#[cached] fn(&User)",
            time(&indices, |i| {
                black_box(by_struct(&users[i]));
            }),
        ),
        (
            "#[cached] fn(&str, u32)",
            time(&indices, |i| {
                black_box(by_str_and_u32(&names[i], i as u32));
            }),
        ),
        (
            "#[cached] fn(u64)",
            time(&indices, |i| {
                black_box(by_u64(i as u64));
            }),
        ),
        (
            "memokit Cache<String, _>::get(&str)",
            time(&indices, |i| {
                black_box(memokit_cache.get(names[i].as_str()));
            }),
        ),
        (
            "quick_cache Cache<String, _>::get(&str)",
            time(&indices, |i| {
                black_box(quick.get(names[i].as_str()));
            }),
        ),
        (
            "quick_cache Cache<u64, _>::get(&u64)",
            time(&indices, |i| {
                black_box(quick_u64.get(&(i as u64)));
            }),
        ),
    ];
    for stats in [by_str_cache().stats(), by_u64_cache().stats()] {
        assert_eq!(stats.misses, ENTRIES as u64, "every timed call is a hit");
    }
    println!("ns per hit, best of {ROUNDS} rounds of {LOOKUPS} over {ENTRIES} keys:");
    for (way, nanos) in rows {
        println!("{way:<42} {nanos:>6.1}");
    }
}
