//! The queue shared by the handles and the flusher task: one value per key, in order, and
//! the writes still to apply to the target.

use std::cell::Cell;
use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::{Mutex, ReentrantMutex};
use tokio::sync::Notify;
use tokio::time::Instant;

use super::{WriteBehindStats, WriteError, WriteTarget};

/// Held by the handles only (the task holds `Shared`): its drop is the last handle's.
pub(super) struct Owner<K, V> {
    pub(super) shared: Arc<Shared<K, V>>,
}

impl<K, V> Drop for Owner<K, V> {
    fn drop(&mut self) {
        self.shared.close();
    }
}

pub(super) struct Shared<K, V> {
    pub(super) queue: Mutex<Queue<K, V>>,
    pub(super) target: Box<dyn WriteTarget<K, V>>,
    /// Held while writes are applied to the target, one at a time, in `Queue::to_apply`'s
    /// order; set while a thread drains that list. Reentrant: a write made by the target
    /// itself (a removal listener) on the draining thread finds it set and leaves its write to
    /// that drain, which applies it next.
    pub(super) applying: ReentrantMutex<Cell<bool>>,
    pub(super) batch_size: usize,
    pub(super) flush_interval: Duration,
    pub(super) max_pending: usize,
    /// Wakes the task: a first key or a full batch is queued, a flush or the shutdown is asked.
    pub(super) wake_flusher: Notify,
    /// Wakes writers waiting for room.
    pub(super) room: Notify,
    /// Wakes `flush` and `shutdown`: a batch is done, or the task stopped.
    pub(super) progress: Notify,
}

pub(super) struct Queue<K, V> {
    /// The queued value of each key.
    pub(super) values: HashMap<K, V, ahash::RandomState>,
    /// Each queued key once, in the order of its first queued write.
    pub(super) order: VecDeque<Queued<K>>,
    /// The sequence number of the next newly queued key (from 1).
    pub(super) next_seq: u64,
    /// Keys queued up to this sequence number are sent without waiting (by `flush`).
    pub(super) flush_through: u64,
    /// The batch being delivered: its first sequence number and its length.
    pub(super) in_flight: Option<(u64, usize)>,
    /// Accepted writes not yet applied to the target, in the order they were accepted.
    pub(super) to_apply: VecDeque<(K, V)>,
    /// No more writes are accepted.
    pub(super) closed: bool,
    /// The task has stopped.
    pub(super) stopped: bool,
    pub(super) stats: WriteBehindStats,
}

pub(super) struct Queued<K> {
    pub(super) key: K,
    pub(super) seq: u64,
    pub(super) since: Instant,
}

impl<K, V> Queue<K, V> {
    pub(super) fn stats(&self) -> WriteBehindStats {
        WriteBehindStats {
            pending: (self.values.len() + self.in_flight.map_or(0, |(_, len)| len)) as u64,
            ..self.stats
        }
    }

    /// The sequence number of the oldest key not yet delivered or failed.
    pub(super) fn oldest_outstanding(&self) -> u64 {
        match (self.in_flight, self.order.front()) {
            (Some((seq, _)), _) => seq,
            (None, Some(front)) => front.seq,
            (None, None) => self.next_seq,
        }
    }
}

impl<K, V> Shared<K, V> {
    pub(super) fn close(&self) {
        self.queue.lock().closed = true;
        self.room.notify_waiters();
        self.wake_flusher.notify_one();
    }

    /// Waits until `done` holds for the queue (checked after each batch and when the task
    /// stops).
    pub(super) async fn wait_until(&self, done: impl Fn(&Queue<K, V>) -> bool) {
        loop {
            let mut progress = pin!(self.progress.notified());
            progress.as_mut().enable();
            {
                let queue = self.queue.lock();
                if queue.stopped || done(&queue) {
                    return;
                }
            }
            progress.await;
        }
    }
}

impl<K, V> Shared<K, V>
where
    K: Hash + Eq + Clone + 'static,
    V: Clone + 'static,
{
    pub(super) fn try_enqueue(&self, key: K, value: V) -> Result<(), WriteError<K, V>> {
        let mut queue = self.queue.lock();
        if queue.closed {
            return Err(WriteError::Closed(key, value));
        }
        let mut wake = false;
        if let Some(queued) = queue.values.get_mut(&key) {
            *queued = value.clone();
            queue.stats.coalesced += 1;
        } else {
            if queue.values.len() >= self.max_pending {
                return Err(WriteError::Full(key, value));
            }
            let seq = queue.next_seq;
            queue.next_seq += 1;
            queue.order.push_back(Queued {
                key: key.clone(),
                seq,
                since: Instant::now(),
            });
            queue.values.insert(key.clone(), value.clone());
            // A first key starts the interval; a full batch is sent now.
            let queued = queue.values.len();
            wake = queued == 1 || queued == self.batch_size;
        }
        queue.stats.queued += 1;
        // In the queue's order, so that two writers of one key update the target in that order;
        // applied outside the lock, so that the target may write to this buffer.
        queue.to_apply.push_back((key, value));
        drop(queue);
        self.apply();
        if wake {
            self.wake_flusher.notify_one();
        }
        Ok(())
    }

    /// Applies the accepted writes to the target, in order, until none is left. A writer
    /// returns only once its own write is applied: by itself, or by the thread it waited for.
    /// Nested in a drain on this thread (the target wrote to this buffer), it returns at once:
    /// the drain applies the write next.
    pub(super) fn apply(&self) {
        let draining = self.applying.lock();
        if draining.replace(true) {
            return;
        }
        /// Ends the drain even if the target panics.
        struct Drain<'a>(&'a Cell<bool>);
        impl Drop for Drain<'_> {
            fn drop(&mut self) {
                self.0.set(false);
            }
        }
        let _drain = Drain(&draining);
        loop {
            let next = self.queue.lock().to_apply.pop_front();
            let Some((key, value)) = next else { break };
            self.target.write(key, value);
        }
    }
}
