//! Why a write or a build was refused.

use std::fmt;
use std::time::Duration;

/// A write that was not accepted, with its key and value.
///
/// ```
/// use memokit::write_behind::WriteError;
///
/// let error = WriteError::Full("clicks", 3);
/// assert!(error.is_full());
/// assert_eq!(error.to_string(), "the write-behind queue is full");
/// assert_eq!(error.into_inner(), ("clicks", 3));
/// ```
#[derive(Clone, PartialEq, Eq)]
pub enum WriteError<K, V> {
    /// `max_pending` keys are queued (from [`WriteBehind::try_write`](super::WriteBehind::try_write) only).
    Full(K, V),
    /// The buffer was shut down (or its last handle dropped, or its task stopped).
    Closed(K, V),
}

impl<K, V> WriteError<K, V> {
    /// Whether the queue was full.
    ///
    /// ```
    /// assert!(memokit::write_behind::WriteError::Full(1, 2).is_full());
    /// ```
    pub fn is_full(&self) -> bool {
        matches!(self, WriteError::Full(..))
    }

    /// Whether the buffer was shut down.
    ///
    /// ```
    /// assert!(memokit::write_behind::WriteError::Closed(1, 2).is_closed());
    /// ```
    pub fn is_closed(&self) -> bool {
        matches!(self, WriteError::Closed(..))
    }

    /// The rejected key and value.
    ///
    /// ```
    /// let error = memokit::write_behind::WriteError::Closed(1, 2);
    /// assert_eq!(error.into_inner(), (1, 2));
    /// ```
    pub fn into_inner(self) -> (K, V) {
        match self {
            WriteError::Full(key, value) | WriteError::Closed(key, value) => (key, value),
        }
    }
}

// Without `K: Debug` or `V: Debug`, so that `?` and `unwrap` work for any key and value.
impl<K, V> fmt::Debug for WriteError<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            WriteError::Full(..) => "Full(..)",
            WriteError::Closed(..) => "Closed(..)",
        })
    }
}

impl<K, V> fmt::Display for WriteError<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            WriteError::Full(..) => "the write-behind queue is full",
            WriteError::Closed(..) => "the write-behind buffer is shut down",
        })
    }
}

impl<K, V> std::error::Error for WriteError<K, V> {}

/// A setting [`WriteBehindBuilder::build`](super::WriteBehindBuilder::build) cannot work with.
///
/// ```
/// use memokit::{Cache, WriteBehind};
///
/// let error = WriteBehind::builder(Cache::<u32, u32>::new(10), |_b| async { Ok::<(), ()>(()) })
///     .build()
///     .unwrap_err();
/// assert_eq!(
///     error.to_string(),
///     "a write-behind buffer must be built inside a tokio runtime (it spawns its flusher task there)"
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BuildError {
    /// `build` was called outside a tokio runtime.
    NoRuntime,
    /// `batch_size(0)`.
    ZeroBatchSize,
    /// `max_pending` is smaller than `batch_size`: a full batch could never be queued.
    MaxPendingBelowBatchSize {
        /// The `max_pending` setting.
        max_pending: usize,
        /// The `batch_size` setting.
        batch_size: usize,
    },
    /// The longest backoff is shorter than the first.
    BackoffOutOfOrder {
        /// The first wait.
        first: Duration,
        /// The longest wait.
        max: Duration,
    },
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BuildError::NoRuntime => f.write_str(
                "a write-behind buffer must be built inside a tokio runtime (it spawns its \
                 flusher task there)",
            ),
            BuildError::ZeroBatchSize => f.write_str("batch_size must be at least 1"),
            BuildError::MaxPendingBelowBatchSize {
                max_pending,
                batch_size,
            } => write!(
                f,
                "max_pending ({max_pending}) must be at least batch_size ({batch_size})"
            ),
            BuildError::BackoffOutOfOrder { first, max } => write!(
                f,
                "the longest backoff ({max:?}) must be at least the first ({first:?})"
            ),
        }
    }
}

impl std::error::Error for BuildError {}

/// Why a batch failed after its last attempt, as handed to
/// [`on_failure`](super::WriteBehindBuilder::on_failure).
///
/// ```
/// use std::time::Duration;
/// use memokit::write_behind::SinkFailure;
///
/// let failure: SinkFailure<&str> = SinkFailure::Error("database down");
/// assert_eq!(failure.to_string(), "database down");
/// assert_eq!(SinkFailure::<&str>::Panicked.to_string(), "the sink panicked");
/// let timed_out = SinkFailure::<&str>::TimedOut(Duration::from_secs(30));
/// assert_eq!(timed_out.to_string(), "the sink did not complete within 30s");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SinkFailure<E> {
    /// The sink returned this error.
    Error(E),
    /// The sink panicked (in the call or in its future).
    Panicked,
    /// The sink's future did not complete within the
    /// [`attempt_timeout`](super::WriteBehindBuilder::attempt_timeout) (it was dropped).
    TimedOut(Duration),
}

impl<E: fmt::Display> fmt::Display for SinkFailure<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SinkFailure::Error(error) => error.fmt(f),
            SinkFailure::Panicked => f.write_str("the sink panicked"),
            SinkFailure::TimedOut(timeout) => {
                write!(f, "the sink did not complete within {timeout:?}")
            }
        }
    }
}

impl<E: std::error::Error + 'static> std::error::Error for SinkFailure<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SinkFailure::Error(error) => Some(error),
            SinkFailure::Panicked | SinkFailure::TimedOut(_) => None,
        }
    }
}
