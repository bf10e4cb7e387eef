//! The primitives of the blocking hand-over in `flight.rs` (`Handover`): the standard ones (and
//! `parking_lot`'s mutex), or under `--cfg shuttle` their models from the `shuttle` crate, so that
//! a test explores the interleavings of the production code (see `flight::shuttle_tests`).

#[cfg(not(shuttle))]
pub(crate) use parking_lot::Mutex;
#[cfg(not(shuttle))]
pub(crate) use std::sync::OnceLock;
#[cfg(not(shuttle))]
pub(crate) use std::thread::{current, park, Thread};

#[cfg(shuttle)]
pub(crate) use model::{Mutex, OnceLock};
#[cfg(shuttle)]
pub(crate) use shuttle::thread::{current, park, Thread};

#[cfg(shuttle)]
mod model {
    use shuttle::sync::atomic::{AtomicBool, Ordering};

    /// `shuttle`'s mutex with `parking_lot`'s `lock` (no poisoning).
    pub(crate) struct Mutex<T>(shuttle::sync::Mutex<T>);

    impl<T> Mutex<T> {
        pub(crate) fn new(value: T) -> Self {
            Mutex(shuttle::sync::Mutex::new(value))
        }

        pub(crate) fn lock(&self) -> shuttle::sync::MutexGuard<'_, T> {
            self.0
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
        }
    }

    /// The subset of `std::sync::OnceLock` the hand-over uses (`shuttle` 0.8 has none): the
    /// value is set with no scheduling point (no other thread can read it yet) and published by
    /// a modelled atomic store, which each `get` loads first, so that every publication and
    /// every read is a point where `shuttle` may switch threads.
    pub(crate) struct OnceLock<T> {
        value: std::sync::OnceLock<T>,
        published: AtomicBool,
    }

    impl<T> OnceLock<T> {
        pub(crate) fn new() -> Self {
            OnceLock {
                value: std::sync::OnceLock::new(),
                published: AtomicBool::new(false),
            }
        }

        pub(crate) fn get(&self) -> Option<&T> {
            if self.published.load(Ordering::SeqCst) {
                self.value.get()
            } else {
                None
            }
        }

        pub(crate) fn set(&self, value: T) -> Result<(), T> {
            self.value.set(value)?;
            self.published.store(true, Ordering::SeqCst);
            Ok(())
        }
    }
}
