//! `moka::future::Cache`, driven synchronously: its futures are polled in place with a no-op
//! waker. They do not wait on anything in these workloads, so they complete on the first poll;
//! a pending one is polled again (spinning) rather than parked.
//!
//! This measures the cache itself, not an executor: a `get` inside a tokio task pays the same
//! plus the task's own cost, which is the same for any async cache.

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use super::Contender;

/// A `moka::future::Cache<u64, u64>` built with `Cache::new(capacity)`.
#[derive(Debug)]
pub struct MokaFuture(pub moka::future::Cache<u64, u64>);

/// Polls `future` until it is ready, with a waker that does nothing.
#[inline]
pub fn poll_to_completion<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    let mut context = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut context) {
            return output;
        }
        std::hint::spin_loop();
    }
}

impl Contender for MokaFuture {
    fn with_capacity(capacity: usize) -> Self {
        MokaFuture(moka::future::Cache::new(capacity as u64))
    }

    #[inline]
    fn get(&self, key: u64) -> Option<u64> {
        poll_to_completion(self.0.get(&key))
    }

    #[inline]
    fn insert(&self, key: u64, value: u64) {
        poll_to_completion(self.0.insert(key, value));
    }

    fn resident(&self) -> usize {
        // `entry_count` is itself brought up to date by maintenance only.
        self.0.iter().count()
    }

    fn settle(&self) {
        poll_to_completion(self.0.run_pending_tasks());
    }
}
