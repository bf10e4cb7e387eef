//! The background task: sends batches one at a time, retries, and reports final failures.

use std::future::Future;
use std::hash::Hash;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use tokio::time::Instant;

use super::queue::{Queue, Shared};
use super::SinkFailure;

pub(super) type SinkFn<K, V, E> =
    Box<dyn Fn(Vec<(K, V)>) -> Pin<Box<dyn Future<Output = Result<(), E>> + Send>> + Send + Sync>;
pub(super) type FailureFn<K, V, E> = Box<dyn Fn(Vec<(K, V)>, SinkFailure<E>) + Send + Sync>;

/// The background task: sends batches one at a time.
pub(super) struct Flusher<K, V, E> {
    pub(super) shared: Arc<Shared<K, V>>,
    pub(super) sink: SinkFn<K, V, E>,
    pub(super) retries: Option<u32>,
    pub(super) backoff: (Duration, Duration),
    pub(super) attempt_timeout: Duration,
    pub(super) on_failure: Option<FailureFn<K, V, E>>,
}

pub(super) enum Step<K, V> {
    Send(Vec<(K, V)>),
    WaitUntil(Instant),
    Wait,
    Stop,
}

/// Marks the task stopped however it ends (done, runtime shut down, a panic of the target), so that no
/// writer, `flush` or `shutdown` waits for it forever.
pub(super) struct StopOnDrop<'a, K, V>(&'a Shared<K, V>);

impl<K, V> Drop for StopOnDrop<'_, K, V> {
    fn drop(&mut self) {
        {
            let mut queue = self.0.queue.lock();
            queue.closed = true;
            queue.stopped = true;
        }
        self.0.room.notify_waiters();
        self.0.progress.notify_waiters();
    }
}

impl<K, V, E> Flusher<K, V, E>
where
    K: Hash + Eq + Clone + Send + 'static,
    V: Clone + Send + 'static,
    E: Send + 'static,
{
    pub(super) async fn run(self) {
        let _stop = StopOnDrop(&self.shared);
        loop {
            match self.next_step() {
                Step::Send(batch) => self.deliver(batch).await,
                Step::WaitUntil(deadline) => {
                    let _ = tokio::time::timeout_at(deadline, self.shared.wake_flusher.notified())
                        .await;
                }
                Step::Wait => self.shared.wake_flusher.notified().await,
                Step::Stop => return,
            }
        }
    }

    pub(super) fn next_step(&self) -> Step<K, V> {
        let shared = &*self.shared;
        let mut queue = shared.queue.lock();
        let Some(oldest) = queue.order.front() else {
            return if queue.closed { Step::Stop } else { Step::Wait };
        };
        // `None`: an interval too long to represent, never reached.
        let due = oldest.since.checked_add(shared.flush_interval);
        let send_now = queue.closed
            || queue.order.len() >= shared.batch_size
            || oldest.seq <= queue.flush_through
            || due.is_some_and(|due| due <= Instant::now());
        if !send_now {
            return due.map_or(Step::Wait, Step::WaitUntil);
        }
        let len = queue.order.len().min(shared.batch_size);
        queue.in_flight = Some((oldest.seq, len));
        let Queue { order, values, .. } = &mut *queue;
        let batch: Vec<(K, V)> = order
            .drain(..len)
            .filter_map(|queued| values.remove_entry(&queued.key))
            .collect();
        drop(queue);
        shared.room.notify_waiters();
        Step::Send(batch)
    }

    /// One sink call; a panic in it is a failed attempt, so that a sink bug costs retries, not
    /// the buffer and everything queued in it; so is a call that outlasts `attempt_timeout`,
    /// so that a sink that never completes does not hold `flush` and `shutdown` forever.
    pub(super) async fn attempt(&self, batch: Vec<(K, V)>) -> Result<(), SinkFailure<E>> {
        let call = std::panic::catch_unwind(AssertUnwindSafe(|| (self.sink)(batch)));
        let Ok(mut sending) = call else {
            return Err(SinkFailure::Panicked);
        };
        let polled = std::future::poll_fn(|cx| {
            match std::panic::catch_unwind(AssertUnwindSafe(|| sending.as_mut().poll(cx))) {
                Ok(Poll::Pending) => Poll::Pending,
                Ok(Poll::Ready(result)) => Poll::Ready(Some(result)),
                Err(_) => Poll::Ready(None),
            }
        });
        match tokio::time::timeout(self.attempt_timeout, polled).await {
            Ok(Some(Ok(()))) => Ok(()),
            Ok(Some(Err(error))) => Err(SinkFailure::Error(error)),
            Ok(None) => Err(SinkFailure::Panicked),
            Err(_) => Err(SinkFailure::TimedOut(self.attempt_timeout)),
        }
    }

    /// Sends `batch` until the sink accepts it or the retries run out.
    pub(super) async fn deliver(&self, batch: Vec<(K, V)>) {
        let len = batch.len() as u64;
        let mut retried = 0;
        let mut wait = self.backoff.0;
        let outcome = loop {
            let last = self.retries.is_some_and(|retries| retried >= retries);
            match self.attempt(batch.clone()).await {
                Ok(()) => break Ok(()),
                Err(failure) if last => break Err(failure),
                Err(_) => {
                    retried += 1;
                    self.shared.queue.lock().stats.retried += 1;
                    tokio::time::sleep(wait).await;
                    wait = wait.saturating_mul(2).min(self.backoff.1);
                }
            }
        };
        {
            let mut queue = self.shared.queue.lock();
            queue.in_flight = None;
            match outcome {
                Ok(()) => {
                    queue.stats.flushed += len;
                    queue.stats.batches += 1;
                }
                Err(_) => queue.stats.failed += len,
            }
        }
        if let (Err(failure), Some(on_failure)) = (outcome, &self.on_failure) {
            // Caught: a bug in the dead-letter path must not stop the buffer for good.
            let called = std::panic::catch_unwind(AssertUnwindSafe(|| on_failure(batch, failure)));
            if called.is_err() {
                self.shared.queue.lock().stats.on_failure_panics += 1;
            }
        }
        self.shared.progress.notify_waiters();
    }
}
