//! First in, first out: insertion order only; hits and updates change nothing.

use super::list::{Links, List};
use super::SlotInfo;

#[derive(Debug, Default)]
pub(crate) struct Fifo {
    links: Links,
    order: List,
}

impl Fifo {
    pub(crate) fn on_insert(&mut self, idx: u32) {
        self.order.push_head(&mut self.links, idx);
    }

    pub(crate) fn on_remove(&mut self, idx: u32) {
        self.order.unlink(&mut self.links, idx);
    }

    pub(crate) fn evict(&mut self, _slots: &(impl SlotInfo + ?Sized)) -> Option<u32> {
        self.order.pop_tail(&mut self.links)
    }

    /// Room in the per-slot links for `slots` slots.
    pub(crate) fn reserve(&mut self, slots: usize) {
        self.links.reserve(slots);
    }

    pub(crate) fn clear(&mut self) {
        *self = Fifo::default();
    }
}
