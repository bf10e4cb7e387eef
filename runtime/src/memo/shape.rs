//! How a memoized function's return type maps onto what the cache stores. `#[cached]` picks a
//! shape from the written return type; everything here is `#[doc(hidden)]` glue for it.

use std::convert::Infallible;
use std::fmt;
use std::marker::PhantomData;

use crate::cache::flight::{LoadFailed, ShareError};

/// A return type `Output` seen as "a value to store, or an error to pass through".
pub trait Shape {
    /// The function's return type.
    type Output;
    /// What the cache stores.
    type Value;
    /// What is passed through uncached.
    type Error;
    /// Splits a result into what to store and what not to.
    fn split(output: Self::Output) -> Result<Self::Value, Self::Error>;
    /// Puts a result back together.
    fn join(result: Result<Self::Value, Self::Error>) -> Self::Output;
    /// Which computed values are stored.
    fn store_rule(cache_none: bool) -> fn(&Self::Value) -> bool {
        let _ = cache_none;
        |_| true
    }
}

/// Any return type, stored whole (also `Result` with `cache_errors = true`).
pub struct Plain<R>(PhantomData<R>);

impl<R> Shape for Plain<R> {
    type Output = R;
    type Value = R;
    type Error = Infallible;

    fn split(output: R) -> Result<R, Infallible> {
        Ok(output)
    }

    fn join(result: Result<R, Infallible>) -> R {
        match result {
            Ok(value) => value,
            Err(never) => match never {},
        }
    }
}

/// `Option<T>`: stored whole; `None` only with `cache_none` (the default).
pub struct OptionShape<R>(PhantomData<R>);

impl<T> Shape for OptionShape<Option<T>> {
    type Output = Option<T>;
    type Value = Option<T>;
    type Error = Infallible;

    fn split(output: Option<T>) -> Result<Option<T>, Infallible> {
        Ok(output)
    }

    fn join(result: Result<Option<T>, Infallible>) -> Option<T> {
        Plain::join(result)
    }

    fn store_rule(cache_none: bool) -> fn(&Option<T>) -> bool {
        if cache_none {
            |_| true
        } else {
            Option::is_some
        }
    }
}

/// `Result<T, E>` (or an alias of it): `Ok` values are stored, errors pass through.
pub struct ResultShape<R>(PhantomData<R>);

impl<T, E> Shape for ResultShape<Result<T, E>> {
    type Output = Result<T, E>;
    type Value = T;
    type Error = E;

    fn split(output: Result<T, E>) -> Result<T, E> {
        output
    }

    fn join(result: Result<T, E>) -> Result<T, E> {
        result
    }
}

/// Picks, at the concrete error type, how waiters get a leader's error: a clone (when it is
/// `Clone + Send + Sync`), else a [`LoadFailed`] converted to it (when it converts from one
/// and is `Display`), else none: each waiter computes on its own. Use as
/// `(&&ErrorSharing::<E>::new()).share_error()` with the three traits in scope.
///
/// Method lookup on `&&ErrorSharing<E>` tries the impls for `&ErrorSharing<E>` (by value),
/// then for `&&ErrorSharing<E>` (by reference), then for `ErrorSharing<E>` (one deref): the
/// first whose bounds hold is picked.
pub struct ErrorSharing<E>(PhantomData<fn() -> E>);

impl<E> ErrorSharing<E> {
    /// The probe.
    pub const fn new() -> Self {
        ErrorSharing(PhantomData)
    }
}

impl<E> Default for ErrorSharing<E> {
    fn default() -> Self {
        Self::new()
    }
}

/// Chosen when the error type is `Clone + Send + Sync`: waiters get a clone.
pub trait ShareClonedError<E> {
    /// How waiters get the error.
    fn share_error(&self) -> Option<ShareError<E>>;
}

impl<E: Clone + Send + Sync + 'static> ShareClonedError<E> for &ErrorSharing<E> {
    fn share_error(&self) -> Option<ShareError<E>> {
        Some(ShareError::BY_CLONE)
    }
}

/// Chosen when the error type is not `Clone` but converts from [`LoadFailed`]: waiters get a
/// `LoadFailed` with the leader's message.
pub trait ShareErrorAsLoadFailed<E> {
    /// How waiters get the error.
    fn share_error(&self) -> Option<ShareError<E>>;
}

impl<E: From<LoadFailed> + fmt::Display> ShareErrorAsLoadFailed<E> for &&ErrorSharing<E> {
    fn share_error(&self) -> Option<ShareError<E>> {
        Some(ShareError::AS_LOAD_FAILED)
    }
}

/// Chosen otherwise: one waiter runs the computation again, then (if it fails too) each.
pub trait RetryOnError<E> {
    /// How waiters get the error: they do not.
    fn share_error(&self) -> Option<ShareError<E>>;
}

impl<E> RetryOnError<E> for ErrorSharing<E> {
    fn share_error(&self) -> Option<ShareError<E>> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[allow(dead_code)]
    struct NotClone;

    #[test]
    #[allow(clippy::needless_borrow)] // the double reference is what selects the impl
    fn errors_are_shared_exactly_when_they_can_be_cloned() {
        assert!((&&ErrorSharing::<String>::new()).share_error().is_some());
        assert!((&&ErrorSharing::<NotClone>::new()).share_error().is_none());
        assert!((&&ErrorSharing::<std::rc::Rc<u8>>::new())
            .share_error()
            .is_none());
    }

    #[test]
    #[allow(clippy::needless_borrow)]
    fn errors_that_convert_from_load_failed_are_shared_too() {
        type Boxed = Box<dyn std::error::Error + Send + Sync>;
        assert!((&&ErrorSharing::<Boxed>::new()).share_error().is_some());
    }
}
