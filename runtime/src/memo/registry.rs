//! The process-wide list of memoized functions.

use std::sync::{Arc, OnceLock};

use parking_lot::RwLock;

use crate::cache::stats::Stats;

/// Every `#[cached]` function of the process that has been used, by name.
///
/// A function is listed from its first call (or the first use of its `…_cache()` handle), not
/// from program start: until then it has no cache, nothing to clear and no counters.
///
/// ```
/// #[memokit::cached(name = "docs::triple")]
/// fn triple(n: u64) -> u64 { n * 3 }
///
/// triple(1);
/// let registry = memokit::registry();
/// let listed = registry.functions();
/// let info = listed.iter().find(|f| f.name == "docs::triple").unwrap();
/// assert_eq!(info.stats.misses, 1);
/// assert!(registry.clear("docs::triple"));
/// assert!(!registry.clear("no::such::function"));
/// registry.clear_all();
/// ```
pub struct Registry {
    memos: RwLock<Vec<Listed>>,
}

/// A listed memo: a function's `static` one, or the cache of one instance (`#[cached(instance
/// = …)]`), listed while the instance lives.
#[derive(Clone)]
enum Listed {
    Function(&'static dyn ErasedMemo),
    Instance(Arc<dyn ErasedMemo>),
    /// The counters of a per-instance function's dropped instances, one per name: the
    /// function's counters never go down when an instance goes.
    Retired(Arc<Retired>),
}

impl Listed {
    fn memo(&self) -> &dyn ErasedMemo {
        match self {
            Listed::Function(memo) => *memo,
            Listed::Instance(memo) => memo.as_ref(),
            Listed::Retired(retired) => retired.as_ref(),
        }
    }
}

/// The counters kept from a function's dropped instances.
struct Retired {
    name: &'static str,
    stats: parking_lot::Mutex<Stats>,
}

impl ErasedMemo for Retired {
    fn name(&self) -> &'static str {
        self.name
    }

    fn stats(&self) -> Option<Stats> {
        Some(*self.stats.lock())
    }

    fn clear(&self) {}
}

/// One memoized function as listed by [`Registry::functions`].
///
/// ```
/// #[memokit::cached(name = "docs::listed")]
/// fn listed(n: u8) -> u8 { n }
///
/// listed(1);
/// let found = memokit::registry().functions().into_iter().find(|f| f.name == "docs::listed");
/// assert_eq!(found.map(|f| f.stats.loads), Some(1));
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct FunctionStats {
    /// Its registry name.
    pub name: &'static str,
    /// Its counters, size and capacity.
    pub stats: Stats,
}

/// The process-wide registry of memoized functions.
///
/// ```
/// for f in memokit::registry().functions() {
///     println!("{}: {}", f.name, f.stats);
/// }
/// ```
pub fn registry() -> &'static Registry {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    REGISTRY.get_or_init(|| Registry {
        memos: RwLock::new(Vec::new()),
    })
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.live()).finish()
    }
}

impl Registry {
    pub(crate) fn register(&self, memo: &'static dyn ErasedMemo) {
        self.memos.write().push(Listed::Function(memo));
    }

    /// Lists the cache of one instance until it is dropped; the dropped ones go at the next
    /// listing, so that instances that come and go do not make the registry grow.
    pub(crate) fn register_instance(&self, memo: Arc<dyn ErasedMemo>) {
        let mut memos = self.memos.write();
        // The listings whose cache went: out, their kept counters added to their name's.
        let mut kept: Vec<(&'static str, Stats)> = Vec::new();
        memos.retain(|listed| {
            let memo = listed.memo();
            if memo.alive() {
                return true;
            }
            kept.extend(memo.retired().map(|stats| (memo.name(), stats)));
            false
        });
        for (name, stats) in kept {
            let total = memos.iter().find_map(|listed| match listed {
                Listed::Retired(retired) if retired.name == name => Some(retired),
                _ => None,
            });
            match total {
                Some(total) => {
                    let mut counts = total.stats.lock();
                    *counts = counts.merged(&stats);
                }
                None => memos.push(Listed::Retired(Arc::new(Retired {
                    name,
                    stats: parking_lot::Mutex::new(stats),
                }))),
            }
        }
        memos.push(Listed::Instance(memo));
    }

    /// The names of the listed memos whose cache still exists.
    fn live(&self) -> Vec<&'static str> {
        self.memos
            .read()
            .iter()
            .map(Listed::memo)
            .filter(|memo| memo.alive())
            .map(|memo| memo.name())
            .collect()
    }

    /// Runs `f` on every listed memo (one whose cache went has no stats, unless it kept its
    /// counters), with the list's lock released: `f` may clear a cache, whose removal
    /// listener is user code that may call a function for the first time (which lists it) or
    /// read the registry while another thread lists one.
    fn each(&self, mut f: impl FnMut(&dyn ErasedMemo)) {
        let listed: Vec<Listed> = self.memos.read().clone();
        for listed in &listed {
            f(listed.memo());
        }
    }

    /// Every listed function with its stats, sorted by name, each name once: the live
    /// instances of a per-instance cache (`#[cached(instance = …)]`), or functions given one
    /// `name`, are added up, as [`stats`](Self::stats) adds them, so that a metrics endpoint
    /// that writes one series per entry writes each name once.
    ///
    /// ```
    /// let names: Vec<&str> = memokit::registry().functions().iter().map(|f| f.name).collect();
    /// # let _ = names;
    /// ```
    pub fn functions(&self) -> Vec<FunctionStats> {
        let mut listed: Vec<FunctionStats> = Vec::new();
        self.each(|memo| {
            if let Some(stats) = memo.stats() {
                listed.push(FunctionStats {
                    name: memo.name(),
                    stats,
                });
            }
        });
        listed.sort_by(|a, b| a.name.cmp(b.name));
        let mut merged: Vec<FunctionStats> = Vec::with_capacity(listed.len());
        for function in listed {
            match merged.last_mut() {
                Some(last) if last.name == function.name => {
                    last.stats = last.stats.merged(&function.stats);
                }
                _ => merged.push(function),
            }
        }
        merged
    }

    /// The stats of the function called `name`, if it is listed. With several functions of one
    /// (custom) name, their counters are added up.
    ///
    /// ```
    /// assert!(memokit::registry().stats("never::called").is_none());
    /// ```
    pub fn stats(&self, name: &str) -> Option<Stats> {
        let mut sum: Option<Stats> = None;
        self.each(|memo| {
            if let Some(stats) = memo.stats().filter(|_| memo.name() == name) {
                sum = Some(match sum.take() {
                    Some(sum) => sum.merged(&stats),
                    None => stats,
                });
            }
        });
        sum
    }

    /// Clears the cache of the function called `name` (every one, if several share the name);
    /// returns whether any was listed.
    ///
    /// ```
    /// assert!(!memokit::registry().clear("never::called"));
    /// ```
    pub fn clear(&self, name: &str) -> bool {
        let mut found = false;
        self.each(|memo| {
            if memo.name() == name {
                memo.clear();
                found = true;
            }
        });
        found
    }

    /// Clears the cache of every listed function.
    ///
    /// ```
    /// memokit::registry().clear_all();
    /// ```
    pub fn clear_all(&self) {
        self.each(|memo| memo.clear());
    }
}

/// What the registry can do with any memoized function, whatever its key and value types.
pub(crate) trait ErasedMemo: Send + Sync {
    fn name(&self) -> &'static str;
    /// Its stats; `None` once its cache is gone (an instance dropped after it was listed).
    fn stats(&self) -> Option<Stats>;
    fn clear(&self);
    /// Whether its cache still exists (an instance's goes with the instance).
    fn alive(&self) -> bool {
        true
    }

    /// The counters it kept when its cache went (an instance's), once it has gone.
    fn retired(&self) -> Option<Stats> {
        None
    }
}
