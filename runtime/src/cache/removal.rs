//! Why an entry left the cache: what eviction listeners and removal events are told.

/// Why an entry left the cache, as told to an
/// [eviction listener](crate::CacheBuilder::eviction_listener).
///
/// ```
/// use std::sync::{Arc, Mutex};
/// use memokit::{Cache, RemovalCause};
///
/// let seen = Arc::new(Mutex::new(Vec::new()));
/// let log = seen.clone();
/// let cache: Cache<u32, &str> = Cache::builder()
///     .eviction_listener(move |key, value, cause| log.lock().unwrap().push((key, value, cause)))
///     .build();
/// cache.insert(1, "a");
/// cache.insert(1, "b");
/// cache.invalidate(&1);
/// assert_eq!(
///     *seen.lock().unwrap(),
///     [(1, "a", RemovalCause::Replaced), (1, "b", RemovalCause::Invalidated)]
/// );
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RemovalCause {
    /// Evicted by the policy to stay within capacity (or too heavy to be stored at all).
    Size,
    /// Its time-to-live or time-to-idle passed.
    Expired,
    /// Removed by `invalidate`, `invalidate_if` or `clear`.
    Invalidated,
    /// Its value was replaced by an insert (a value already expired then is reported as
    /// `Expired`).
    Replaced,
}
