//! A bounded FIFO set of key hashes, the memory of keys a policy turned away: S3-FIFO's ghost
//! queue, and W-TinyLFU's when its tuner turns it on.

use hashbrown::HashTable;

/// A bounded FIFO set of key hashes: a ring of hashes plus an index from hash to ring position.
#[derive(Debug)]
pub(super) struct Ghost {
    ring: Vec<u64>,
    next: usize,
    capacity: usize,
    index: HashTable<u32>,
}

impl Ghost {
    /// A ghost that remembers at most `capacity` hashes; allocates nothing until the first.
    pub(super) fn new(capacity: usize) -> Self {
        Ghost {
            ring: Vec::new(),
            next: 0,
            capacity,
            index: HashTable::new(),
        }
    }

    pub(super) fn contains(&self, hash: u64) -> bool {
        self.index
            .find(hash, |&pos| self.ring[pos as usize] == hash)
            .is_some()
    }

    /// Forgets `hash`; returns whether it was there. Its ring slot stays until overwritten.
    pub(super) fn remove(&mut self, hash: u64) -> bool {
        let ring = &self.ring;
        match self
            .index
            .find_entry(hash, |&pos| ring[pos as usize] == hash)
        {
            Ok(found) => {
                found.remove();
                true
            }
            Err(_) => false,
        }
    }

    /// Remembers `hash`, forgetting the oldest one when full; no effect if it is there.
    pub(super) fn insert(&mut self, hash: u64) {
        if self.contains(hash) {
            return;
        }
        let pos = if self.ring.len() < self.capacity {
            self.ring.push(hash);
            self.ring.len() - 1
        } else {
            let pos = self.next;
            self.next = (self.next + 1) % self.capacity;
            let old = self.ring[pos];
            if let Ok(entry) = self.index.find_entry(old, |&p| p as usize == pos) {
                entry.remove();
            }
            self.ring[pos] = hash;
            pos
        };
        let ring = &self.ring;
        self.index
            .insert_unique(hash, pos as u32, |&p| ring[p as usize]);
    }
}

/// A [`Ghost`] made on its first insert and sized then, from the entries its policy holds at
/// that moment: a shard's capacity may be counted in a weigher's units (bytes, say), which say
/// nothing of how many keys it holds, and a policy that never turns a key away allocates nothing.
#[derive(Debug, Default)]
pub(super) struct LazyGhost(Option<Ghost>);

impl LazyGhost {
    /// Forgets `hash`; returns whether it was there.
    pub(super) fn remove(&mut self, hash: u64) -> bool {
        self.0.as_mut().is_some_and(|ghost| ghost.remove(hash))
    }

    /// Remembers `hash`; the first time, in a ghost of `capacity()` hashes (at least one).
    pub(super) fn insert(&mut self, hash: u64, capacity: impl FnOnce() -> usize) {
        self.0
            .get_or_insert_with(|| Ghost::new(capacity().max(1)))
            .insert(hash);
    }

    /// How many hashes it holds at most, once made.
    #[cfg(test)]
    pub(super) fn capacity(&self) -> Option<usize> {
        self.0.as_ref().map(|ghost| ghost.capacity)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ghost_forgets_oldest_hash_first() {
        let mut ghost = Ghost::new(3);
        for h in [10, 20, 30, 40] {
            ghost.insert(h);
        }
        assert!(!ghost.contains(10));
        assert!(ghost.contains(20) && ghost.contains(30) && ghost.contains(40));
        ghost.insert(20); // already present: no effect on order
        ghost.insert(50);
        assert!(!ghost.contains(20));
        assert!(ghost.contains(50));
    }

    #[test]
    fn a_lazy_ghost_is_sized_on_its_first_insert() {
        let mut ghost = LazyGhost::default();
        assert!(!ghost.remove(10));
        assert_eq!(ghost.capacity(), None);
        ghost.insert(10, || 2);
        ghost.insert(20, || unreachable!("sized once"));
        ghost.insert(30, || unreachable!("sized once"));
        assert_eq!(ghost.capacity(), Some(2));
        assert!(!ghost.remove(10), "the oldest of three in a ghost of two");
        assert!(ghost.remove(20) && ghost.remove(30));
    }

    #[test]
    fn ghost_remove_forgets_a_hash_until_it_is_inserted_again() {
        let mut ghost = Ghost::new(3);
        for h in [10, 20, 30] {
            ghost.insert(h);
        }
        assert!(ghost.remove(20));
        assert!(!ghost.remove(20) && !ghost.contains(20));
        ghost.insert(20); // a new ring slot (10's); its old slot still holds a stale 20
        ghost.insert(40); // overwrites the stale slot, which must not drop the live 20
        assert!(ghost.contains(20) && ghost.contains(30) && ghost.contains(40));
        assert!(!ghost.contains(10));
    }
}
