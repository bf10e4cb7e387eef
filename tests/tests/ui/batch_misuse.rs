use std::collections::HashMap;

use memokit::cached;

#[cached(batch)]
fn two_arguments(ids: &[u64], region: u32) -> HashMap<u64, u32> {
    ids.iter().map(|&id| (id, region)).collect()
}

#[cached(batch)]
fn not_a_slice(id: u64) -> HashMap<u64, u64> {
    HashMap::from([(id, id)])
}

#[cached(batch)]
fn not_a_map(ids: &[u64]) -> u64 {
    ids.len() as u64
}

#[cached(batch, key = ids, cache_none = false)]
fn with_options(ids: &[u64]) -> HashMap<u64, u64> {
    ids.iter().map(|&id| (id, id)).collect()
}

#[cached(batch = true)]
fn with_value(ids: &[u64]) -> HashMap<u64, u64> {
    ids.iter().map(|&id| (id, id)).collect()
}

struct Repo;

impl Repo {
    #[cached(batch)]
    fn method(&self, ids: &[u64]) -> HashMap<u64, u64> {
        ids.iter().map(|&id| (id, id)).collect()
    }
}

fn main() {}
