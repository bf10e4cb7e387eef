//! What the `tracing` feature emits: a span per computation and a debug event per removed
//! entry, both with the function's name. Without the feature every item here is empty and
//! every call compiles to nothing.

use std::future::Future;
use std::time::Duration;

use crate::cache::removal::RemovalCause;

/// The name traces give a cache: its function's registry name, set once by its `Memo`; empty
/// for a [`Cache`](crate::Cache) used directly.
#[derive(Debug, Default)]
pub(crate) struct TraceName {
    #[cfg(feature = "tracing")]
    name: std::sync::OnceLock<&'static str>,
}

impl TraceName {
    #[cfg_attr(not(feature = "tracing"), allow(unused_variables))]
    pub(crate) fn set(&self, name: &'static str) {
        #[cfg(feature = "tracing")]
        let _ = self.name.set(name);
    }

    #[cfg(feature = "tracing")]
    fn get(&self) -> &'static str {
        self.name.get().copied().unwrap_or("")
    }
}

/// How a computation ended, as its span's `outcome` field says.
#[derive(Debug, Clone, Copy)]
pub(crate) enum LoadOutcome {
    Ok,
    Error,
    Panic,
    Cancelled,
    /// A batch's lead given up before its computation started (another call computes the key).
    Released,
}

/// The span of one computation (`memokit` target, name `load`, level INFO) with the fields
/// `function`, and once it ends `outcome` (`ok`, `error`, `panic`, `cancelled`, or `released`
/// for a batch's lead given up before it ran) and `duration`.
/// The computation runs inside it, so its own events carry the function's name.
#[derive(Debug)]
pub(crate) struct LoadSpan {
    #[cfg(feature = "tracing")]
    span: tracing::Span,
}

impl LoadSpan {
    #[cfg_attr(not(feature = "tracing"), allow(unused_variables))]
    pub(crate) fn start(name: &TraceName) -> Self {
        LoadSpan {
            #[cfg(feature = "tracing")]
            span: tracing::info_span!(
                target: "memokit",
                "load",
                function = name.get(),
                outcome = tracing::field::Empty,
                duration = tracing::field::Empty,
            ),
        }
    }

    #[cfg_attr(not(feature = "tracing"), allow(unused_variables))]
    pub(crate) fn end(&self, outcome: LoadOutcome, elapsed: Duration) {
        #[cfg(feature = "tracing")]
        {
            let outcome = match outcome {
                LoadOutcome::Ok => "ok",
                LoadOutcome::Error => "error",
                LoadOutcome::Panic => "panic",
                LoadOutcome::Cancelled => "cancelled",
                LoadOutcome::Released => "released",
            };
            self.span.record("outcome", outcome);
            self.span.record("duration", tracing::field::debug(elapsed));
        }
    }

    /// Runs a blocking computation inside the span.
    #[inline]
    pub(crate) fn in_scope<R>(&self, run: impl FnOnce() -> R) -> R {
        #[cfg(feature = "tracing")]
        return self.span.in_scope(run);
        #[cfg(not(feature = "tracing"))]
        run()
    }

    /// An async computation that runs inside the span each time it is polled.
    #[inline]
    pub(crate) fn instrument<F: Future>(&self, future: F) -> impl Future<Output = F::Output> {
        #[cfg(feature = "tracing")]
        return tracing::Instrument::instrument(future, self.span.clone());
        #[cfg(not(feature = "tracing"))]
        future
    }
}

/// A debug event (`memokit` target) for an entry that left `name`'s cache, with the fields
/// `function` and `cause` (`Size`, `Expired` or `Invalidated`; replaced values are not
/// reported). Emitted under the shard's lock, where the removal happens.
#[inline]
#[cfg_attr(not(feature = "tracing"), allow(unused_variables))]
pub(crate) fn removed(name: &TraceName, cause: RemovalCause) {
    #[cfg(feature = "tracing")]
    if cause != RemovalCause::Replaced {
        tracing::debug!(target: "memokit", function = name.get(), cause = ?cause, "entry removed");
    }
}
