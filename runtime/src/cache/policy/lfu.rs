//! Least frequently used in O(1) (Shah, Mitra & Matani, 2010), with aging.
//!
//! Entries sit in frequency buckets kept in increasing order; a hit moves an entry to the next
//! bucket, the victim is the oldest entry of the lowest bucket (least recently used among the
//! least frequently used). Aging: once the shard has seen ten accesses per resident entry since
//! the last aging, every frequency is halved (at least 1), so an entry that was hot long ago
//! cannot stay forever. Halving walks every entry once, which is O(1) amortised over the accesses
//! that trigger it. Within a bucket, entries keep their previous relative order, and entries from
//! the lower old bucket stay older than those from the higher one.

use super::list::{Links, List, NIL};
use super::SlotInfo;

/// Accesses per resident entry between two agings.
const AGING_PERIOD: u64 = 10;
/// Small shards still age, but not on every few accesses.
const MIN_AGING_ENTRIES: u64 = 16;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    freq: u32,
    entries: List,
    prev: u32,
    next: u32,
}

#[derive(Debug)]
pub(crate) struct Lfu {
    links: Links,
    /// Per slot: the bucket it sits in.
    bucket_of: Vec<u32>,
    buckets: Vec<Bucket>,
    free_buckets: Vec<u32>,
    /// The lowest-frequency bucket.
    first: u32,
    resident: u64,
    accesses_since_aging: u64,
}

impl Default for Lfu {
    fn default() -> Self {
        Lfu {
            links: Links::default(),
            bucket_of: Vec::new(),
            buckets: Vec::new(),
            free_buckets: Vec::new(),
            first: NIL,
            resident: 0,
            accesses_since_aging: 0,
        }
    }
}

impl Lfu {
    pub(crate) fn on_hit(&mut self, idx: u32) {
        let from = self.bucket_of[idx as usize];
        let freq = self.buckets[from as usize].freq.saturating_add(1);
        let next = self.buckets[from as usize].next;
        let to = if next != NIL && self.buckets[next as usize].freq == freq {
            next
        } else {
            self.new_bucket_after(from, freq)
        };
        self.detach(idx);
        self.attach(idx, to);
        self.record_access();
    }

    pub(crate) fn on_insert(&mut self, idx: u32) {
        if self.bucket_of.len() <= idx as usize {
            self.bucket_of.resize(idx as usize + 1, NIL);
        }
        let to = if self.first != NIL && self.buckets[self.first as usize].freq == 1 {
            self.first
        } else {
            self.new_bucket_after(NIL, 1)
        };
        self.attach(idx, to);
        self.resident += 1;
        self.record_access();
    }

    pub(crate) fn on_remove(&mut self, idx: u32) {
        self.detach(idx);
        self.resident -= 1;
    }

    pub(crate) fn evict(&mut self, _slots: &(impl SlotInfo + ?Sized)) -> Option<u32> {
        let first = self.first;
        let idx = self.buckets.get(first as usize)?.entries.tail()?;
        self.on_remove(idx);
        Some(idx)
    }

    /// Room in the per-slot links and buckets for `slots` slots.
    pub(crate) fn reserve(&mut self, slots: usize) {
        self.links.reserve(slots);
        self.bucket_of
            .reserve_exact(slots.saturating_sub(self.bucket_of.len()));
    }

    pub(crate) fn clear(&mut self) {
        *self = Lfu::default();
    }

    fn attach(&mut self, idx: u32, bucket: u32) {
        self.buckets[bucket as usize]
            .entries
            .push_head(&mut self.links, idx);
        self.bucket_of[idx as usize] = bucket;
    }

    /// Takes `idx` out of its bucket, dropping the bucket if it empties.
    fn detach(&mut self, idx: u32) {
        let bucket = self.bucket_of[idx as usize];
        let b = &mut self.buckets[bucket as usize];
        b.entries.unlink(&mut self.links, idx);
        if b.entries.is_empty() {
            let Bucket { prev, next, .. } = *b;
            if prev != NIL {
                self.buckets[prev as usize].next = next;
            } else {
                self.first = next;
            }
            if next != NIL {
                self.buckets[next as usize].prev = prev;
            }
            self.free_buckets.push(bucket);
        }
    }

    /// A new empty bucket for `freq` right after `after` (or first, for `NIL`).
    fn new_bucket_after(&mut self, after: u32, freq: u32) -> u32 {
        let next = if after == NIL {
            self.first
        } else {
            self.buckets[after as usize].next
        };
        let bucket = Bucket {
            freq,
            entries: List::default(),
            prev: after,
            next,
        };
        let id = match self.free_buckets.pop() {
            Some(id) => {
                self.buckets[id as usize] = bucket;
                id
            }
            None => {
                self.buckets.push(bucket);
                (self.buckets.len() - 1) as u32
            }
        };
        if after == NIL {
            self.first = id;
        } else {
            self.buckets[after as usize].next = id;
        }
        if next != NIL {
            self.buckets[next as usize].prev = id;
        }
        id
    }

    fn record_access(&mut self) {
        self.accesses_since_aging += 1;
        if self.accesses_since_aging >= AGING_PERIOD * self.resident.max(MIN_AGING_ENTRIES) {
            self.age();
        }
    }

    /// Halves every frequency, keeping the eviction order among entries of equal new frequency.
    fn age(&mut self) {
        let mut order = Vec::with_capacity(self.resident as usize);
        let mut bucket = self.first;
        while bucket != NIL {
            let b = self.buckets[bucket as usize];
            let mut idx = b.entries.tail().unwrap_or(NIL);
            while idx != NIL {
                order.push((idx, (b.freq / 2).max(1)));
                idx = self.links.prev(idx);
            }
            bucket = b.next;
        }
        self.links.clear();
        self.buckets.clear();
        self.free_buckets.clear();
        self.first = NIL;
        let mut last = NIL;
        for (idx, freq) in order {
            if last == NIL || self.buckets[last as usize].freq != freq {
                last = self.new_bucket_after(last, freq);
            }
            self.attach(idx, last);
        }
        self.accesses_since_aging = 0;
    }
}
