//! The layer's own counters (what `memokit::Stats` has no field for), and their Prometheus text.

use std::fmt;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, PoisonError, Weak};

/// Counts of how an [`HttpCacheLayer`](crate::HttpCacheLayer) answered, from
/// [`HttpCacheLayer::stats`](crate::HttpCacheLayer::stats). The entries, evictions and
/// coalesced waits are in [`cache`](Self::cache), which `memokit::registry()` lists too.
///
/// ```
/// let layer = memokit_http::HttpCacheLayer::builder("docs::stats").build();
/// let stats = layer.stats();
/// assert_eq!((stats.hits, stats.misses, stats.stale), (0, 0, 0));
/// println!("{stats}");
/// ```
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct HttpStats {
    /// Answered from a fresh stored response (coalesced waiters included).
    pub hits: u64,
    /// Answered by calling the handler with no usable stored response.
    pub misses: u64,
    /// Answered with a stale stored response (stale-while-revalidate or stale-if-error).
    pub stale: u64,
    /// Stored responses revalidated with the handler (in the background or not).
    pub revalidations: u64,
    /// Requests not cacheable at all (not `GET`/`HEAD`, or a bypassed route).
    pub bypasses: u64,
    /// Handler responses the rules did not let it store (passed through).
    pub not_stored: u64,
    /// Handler bodies larger than the limit, or that failed part way (passed through).
    pub too_large: u64,
    /// `304 Not Modified` answers to conditional requests.
    pub not_modified: u64,
    /// The underlying `memokit::Cache`'s counters and size.
    pub cache: memokit::Stats,
}

impl fmt::Display for HttpStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "hits={} misses={} stale={} revalidations={} bypasses={} not_stored={} too_large={} \
             not_modified={} entries={}",
            self.hits,
            self.misses,
            self.stale,
            self.revalidations,
            self.bypasses,
            self.not_stored,
            self.too_large,
            self.not_modified,
            self.cache.len
        )
    }
}

/// The live counters of one layer.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) hits: AtomicU64,
    pub(crate) misses: AtomicU64,
    pub(crate) stale: AtomicU64,
    pub(crate) revalidations: AtomicU64,
    pub(crate) bypasses: AtomicU64,
    pub(crate) not_stored: AtomicU64,
    pub(crate) too_large: AtomicU64,
    pub(crate) not_modified: AtomicU64,
}

pub(crate) fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Relaxed);
}

impl Counters {
    pub(crate) fn snapshot(&self, cache: memokit::Stats) -> HttpStats {
        HttpStats {
            hits: self.hits.load(Relaxed),
            misses: self.misses.load(Relaxed),
            stale: self.stale.load(Relaxed),
            revalidations: self.revalidations.load(Relaxed),
            bypasses: self.bypasses.load(Relaxed),
            not_stored: self.not_stored.load(Relaxed),
            too_large: self.too_large.load(Relaxed),
            not_modified: self.not_modified.load(Relaxed),
            cache,
        }
    }
}

/// Every layer of the process still alive, by name, for [`prometheus`]: a layer dropped with
/// its services is forgotten.
fn layers() -> &'static Mutex<Vec<(&'static str, Weak<Counters>)>> {
    static LAYERS: Mutex<Vec<(&'static str, Weak<Counters>)>> = Mutex::new(Vec::new());
    &LAYERS
}

pub(crate) fn list(name: &'static str, counters: &Arc<Counters>) {
    let mut layers = layers().lock().unwrap_or_else(PoisonError::into_inner);
    layers.retain(|(_, counters)| counters.strong_count() > 0);
    layers.push((name, Arc::downgrade(counters)));
}

type Read = fn(&Counters) -> &AtomicU64;

#[rustfmt::skip]
const FAMILIES: [(&str, &str, Read); 8] = [
    ("memokit_http_hits_total", "Requests answered from a fresh stored response.", |c| &c.hits),
    ("memokit_http_misses_total", "Requests answered by the handler with no usable stored response.", |c| &c.misses),
    ("memokit_http_stale_total", "Requests answered with a stale stored response.", |c| &c.stale),
    ("memokit_http_revalidations_total", "Stored responses revalidated with the handler.", |c| &c.revalidations),
    ("memokit_http_bypasses_total", "Requests not cacheable (method or route).", |c| &c.bypasses),
    ("memokit_http_not_stored_total", "Handler responses the rules did not let the layer store.", |c| &c.not_stored),
    ("memokit_http_too_large_total", "Handler bodies over the size limit or failed, passed through.", |c| &c.too_large),
    ("memokit_http_not_modified_total", "304 answers to conditional requests.", |c| &c.not_modified),
];

/// The counters of every [`HttpCacheLayer`](crate::HttpCacheLayer) of the process as
/// Prometheus text (format 0.0.4), one sample per layer with the label `layer`. Serve it
/// after `memokit::registry().prometheus()`, which lists each layer's cache (entries,
/// evictions, …) under the label `function`.
///
/// ```
/// let _layer = memokit_http::HttpCacheLayer::builder("docs::metrics").build();
/// let text = memokit_http::prometheus();
/// assert!(text.contains("memokit_http_hits_total{layer=\"docs::metrics\"} 0\n"));
/// assert!(memokit::registry().prometheus().contains("function=\"docs::metrics\""));
/// ```
pub fn prometheus() -> String {
    let layers: Vec<(&str, Arc<Counters>)> = layers()
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .iter()
        .filter_map(|(name, counters)| Some((*name, counters.upgrade()?)))
        .collect();
    let mut text = String::new();
    for (family, help, read) in FAMILIES {
        // `write!` to a String cannot fail.
        let _ = write!(text, "# HELP {family} {help}\n# TYPE {family} counter\n");
        // One sample per name: layers built under one name are added up, as
        // `memokit::registry()` adds up caches of one name.
        let mut by_name: Vec<(&str, u64)> = Vec::new();
        for (name, counters) in layers.iter() {
            let count = read(counters).load(Relaxed);
            match by_name.iter_mut().find(|(listed, _)| listed == name) {
                Some((_, sum)) => *sum += count,
                None => by_name.push((name, count)),
            }
        }
        for (name, count) in by_name {
            let name = name
                .replace('\\', "\\\\")
                .replace('"', "\\\"")
                .replace('\n', "\\n");
            let _ = writeln!(text, "{family}{{layer=\"{name}\"}} {count}");
        }
    }
    text
}
