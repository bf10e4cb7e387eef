//! Doubly linked lists threaded through slot indices.
//!
//! Every policy keeps its order in one or more lists over the shard's slot numbers. The links live
//! in one [`Links`] array per policy, so a slot can move between a policy's lists (S3-FIFO's small
//! and main queues, LFU's frequency buckets) without allocating.

/// Marks the absence of a neighbour.
pub(crate) const NIL: u32 = u32::MAX;

/// `prev`/`next` for every slot of a shard.
#[derive(Debug, Default)]
pub(crate) struct Links {
    nodes: Vec<[u32; 2]>,
}

const PREV: usize = 0;
const NEXT: usize = 1;

impl Links {
    /// Makes room for slot `idx`.
    pub(crate) fn ensure(&mut self, idx: u32) {
        let needed = idx as usize + 1;
        if self.nodes.len() < needed {
            self.nodes.resize(needed, [NIL, NIL]);
        }
    }

    /// Makes room for `slots` slots without growing again: the shard calls this (through its
    /// policy) when its slab grows, so the links grow with the slab, never past it (their own
    /// doubling would leave up to half of them unused in a full shard).
    pub(crate) fn reserve(&mut self, slots: usize) {
        self.nodes
            .reserve_exact(slots.saturating_sub(self.nodes.len()));
    }

    #[cfg(test)]
    pub(crate) fn allocated(&self) -> usize {
        self.nodes.capacity()
    }

    pub(crate) fn prev(&self, idx: u32) -> u32 {
        self.nodes[idx as usize][PREV]
    }

    pub(crate) fn clear(&mut self) {
        self.nodes.clear();
    }
}

/// One list: its ends and its length. Head is the most recently pushed slot.
#[derive(Debug, Clone, Copy)]
pub(crate) struct List {
    head: u32,
    tail: u32,
    len: u32,
}

impl Default for List {
    fn default() -> Self {
        List {
            head: NIL,
            tail: NIL,
            len: 0,
        }
    }
}

impl List {
    pub(crate) fn len(&self) -> u32 {
        self.len
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The oldest slot (the one pushed first), if any.
    pub(crate) fn tail(&self) -> Option<u32> {
        (self.tail != NIL).then_some(self.tail)
    }

    pub(crate) fn push_head(&mut self, links: &mut Links, idx: u32) {
        links.ensure(idx);
        links.nodes[idx as usize] = [NIL, self.head];
        if self.head != NIL {
            links.nodes[self.head as usize][PREV] = idx;
        } else {
            self.tail = idx;
        }
        self.head = idx;
        self.len += 1;
    }

    pub(crate) fn unlink(&mut self, links: &mut Links, idx: u32) {
        let [prev, next] = links.nodes[idx as usize];
        if prev != NIL {
            links.nodes[prev as usize][NEXT] = next;
        } else {
            self.head = next;
        }
        if next != NIL {
            links.nodes[next as usize][PREV] = prev;
        } else {
            self.tail = prev;
        }
        links.nodes[idx as usize] = [NIL, NIL];
        self.len -= 1;
    }

    pub(crate) fn pop_tail(&mut self, links: &mut Links) -> Option<u32> {
        let tail = self.tail()?;
        self.unlink(links, tail);
        Some(tail)
    }

    pub(crate) fn move_to_head(&mut self, links: &mut Links, idx: u32) {
        if self.head != idx {
            self.unlink(links, idx);
            self.push_head(links, idx);
        }
    }

    /// Slots from tail (oldest) to head (newest).
    #[cfg(test)]
    pub(crate) fn iter_from_tail<'a>(&self, links: &'a Links) -> impl Iterator<Item = u32> + 'a {
        let mut cur = self.tail;
        std::iter::from_fn(move || {
            (cur != NIL).then(|| {
                let idx = cur;
                cur = links.prev(idx);
                idx
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_unlink_and_pop_keep_order() {
        let mut links = Links::default();
        let mut list = List::default();
        for i in 0..5 {
            list.push_head(&mut links, i);
        }
        list.unlink(&mut links, 2);
        list.move_to_head(&mut links, 0);
        assert_eq!(
            list.iter_from_tail(&links).collect::<Vec<_>>(),
            vec![1, 3, 4, 0]
        );
        assert_eq!(list.pop_tail(&mut links), Some(1));
        assert_eq!(list.len, 3);
        assert_eq!(list.head, 0);
        assert_eq!(links.nodes[0][PREV], NIL);
    }
}
