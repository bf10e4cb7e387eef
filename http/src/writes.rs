//! The writes the layer has seen (successful unsafe requests, `invalidate_path`), kept as marks
//! on the layer's count of handler calls, so that a stored response asked for before a write of
//! its target is never served after it.
//!
//! A response carries the count at which its handler call started (its generation). A write
//! takes the next count (its mark) once it has succeeded, and notes it under its target. A
//! stored response is trusted only if it was asked for after the last write noted for its
//! target URI and for its path: one handler call that was running while a `POST` changed the
//! resource, and stored its older answer after the `POST` ended, is not served to later
//! requests. Noting a write is O(1), unlike a scan of the stored responses.
//!
//! The marks live in a fixed table of slots, like a count-min sketch with `max` for `+`: a
//! write raises two slots of its target to its mark, and a target's last write is read as the
//! smaller of its two slots. Another target's write that falls in both slots can only make
//! the estimate later than the truth, so a collision costs a needless handler call, never a
//! stale answer; and nothing is ever evicted, so no mark is lost.

use std::hash::{BuildHasher, Hash, RandomState};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};

/// The slots of a layer's marks: a power of two, 8 bytes each.
const MIN_SLOTS: u64 = 1 << 10;
const MAX_SLOTS: u64 = 1 << 16;

/// What a write names: the target URI of an unsafe request (on its host), or a path that
/// `invalidate_path` was called for.
#[derive(Hash)]
pub(crate) enum Written<'a, T: Hash> {
    Target(T),
    Path(&'a str),
}

#[derive(Debug)]
pub(crate) struct Writes {
    /// The count of handler calls and writes: generations and marks, from 1.
    counter: AtomicU64,
    /// Whether any write was noted: until then a stored response is trusted without hashing.
    any: AtomicBool,
    slots: Box<[AtomicU64]>,
    hasher: RandomState,
}

impl Writes {
    /// Marks for a layer that stores up to about `entries` responses.
    pub(crate) fn new(entries: u64) -> Self {
        let slots = entries.clamp(MIN_SLOTS, MAX_SLOTS).next_power_of_two();
        Writes {
            counter: AtomicU64::new(1),
            any: AtomicBool::new(false),
            slots: (0..slots).map(|_| AtomicU64::new(0)).collect(),
            hasher: RandomState::new(),
        }
    }

    /// The generation of a handler call starting now.
    pub(crate) fn next_generation(&self) -> u64 {
        self.counter.fetch_add(1, SeqCst)
    }

    /// Notes a write of `written` that has just succeeded.
    pub(crate) fn note<T: Hash>(&self, written: Written<'_, T>) {
        let mark = self.counter.fetch_add(1, SeqCst);
        for slot in self.slots_of(&written) {
            self.slots[slot].fetch_max(mark, SeqCst);
        }
        self.any.store(true, SeqCst);
    }

    /// Whether a response asked for at `generation` was asked for after every write noted for
    /// each of `written`.
    pub(crate) fn trusts<T: Hash>(&self, generation: u64, written: [Written<'_, T>; 2]) -> bool {
        !self.any.load(SeqCst) || written.iter().all(|one| generation > self.last(one))
    }

    /// The mark of the last write of `written`, or a later one (a collision), never an earlier.
    fn last<T: Hash>(&self, written: &Written<'_, T>) -> u64 {
        let [first, second] = self.slots_of(written);
        self.slots[first]
            .load(SeqCst)
            .min(self.slots[second].load(SeqCst))
    }

    fn slots_of<T: Hash>(&self, written: &Written<'_, T>) -> [usize; 2] {
        let hash = self.hasher.hash_one(written);
        let mask = self.slots.len() as u64 - 1;
        // Two slots from the two halves of one hash, kept apart when the halves agree.
        let first = hash & mask;
        let mut second = (hash >> 32) & mask;
        if second == first {
            second ^= 1;
        }
        [first as usize, second as usize]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(uri: &str) -> Written<'static, &str> {
        Written::Target(uri)
    }

    #[test]
    fn a_response_asked_before_a_write_of_its_target_is_not_trusted() {
        let writes = Writes::new(0);
        let before = writes.next_generation();
        assert!(writes.trusts(before, [target("/a"), Written::Path("/a")]));
        writes.note(target("/a"));
        let after = writes.next_generation();
        assert!(!writes.trusts(before, [target("/a"), Written::Path("/a")]));
        assert!(writes.trusts(after, [target("/a"), Written::Path("/a")]));
        writes.note(Written::<&str>::Path("/b"));
        assert!(!writes.trusts(after, [target("/b?q"), Written::Path("/b")]));
    }

    /// With far more written targets than slots, every estimate is still at least the truth.
    #[test]
    fn collisions_only_make_the_last_write_later() {
        let writes = Writes::new(0);
        let mut truth = Vec::new();
        for i in 0..20_000u32 {
            let name = format!("/t/{}", i % 5_000);
            writes.note(Written::Target(name.as_str()));
            truth.push((name, writes.counter.load(SeqCst) - 1));
        }
        for (name, mark) in truth {
            let generation = writes.next_generation();
            assert!(writes.last(&Written::Target(name.as_str())) >= mark);
            assert!(writes.trusts(
                generation,
                [Written::Target(name.as_str()), Written::Path("/x")]
            ));
        }
    }
}
