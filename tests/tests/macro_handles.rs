//! The handle `#[cached]` generates (`foo_cache()`, `Type::method_cache()`) and the
//! process-wide registry: counters, clearing, invalidation, write-through, peeking, names, and
//! when a function gets listed.
//!
//! Tests of one binary run on parallel threads and share the registry, so every test uses
//! functions of its own and never assumes the registry holds only them. The one test calling
//! `clear_all()` takes [`REGISTRY_WIDE`] for writing; every other test takes it for reading.

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{PoisonError, RwLock, RwLockReadGuard};

use memokit::{cached, registry, Memo};

/// Held for writing by the test that clears every cache of the process.
static REGISTRY_WIDE: RwLock<()> = RwLock::new(());

/// Keeps `clear_all()` from running during the calling test.
fn no_clear_all() -> RwLockReadGuard<'static, ()> {
    REGISTRY_WIDE.read().unwrap_or_else(PoisonError::into_inner)
}

fn runs(counter: &AtomicUsize) -> usize {
    counter.load(SeqCst)
}

fn listed(name: &str) -> bool {
    registry().functions().iter().any(|f| f.name == name)
}

// ---------------------------------------------------------------------------------------------
// The handle.

static STATS_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached]
fn stats_subject(n: u32) -> u32 {
    STATS_RUNS.fetch_add(1, SeqCst);
    n + 1
}

#[test]
fn stats_count_hits_misses_and_loads_and_reset() {
    let _guard = no_clear_all();
    let memo = stats_subject_cache();
    let stats = memo.stats();
    assert_eq!((stats.hits, stats.misses, stats.loads), (0, 0, 0));
    stats_subject(1); // miss + load
    stats_subject(1); // hit
    stats_subject(1); // hit
    stats_subject(2); // miss + load
    let stats = memo.stats();
    assert_eq!((stats.hits, stats.misses, stats.loads), (2, 2, 2));
    assert_eq!(stats.len, 2);
    assert_eq!(stats.load_failures, 0);
    assert_eq!(runs(&STATS_RUNS), 2);

    memo.reset_stats();
    let stats = memo.stats();
    assert_eq!((stats.hits, stats.misses, stats.loads), (0, 0, 0));
    assert_eq!(memo.len(), 2, "reset_stats keeps the entries");
    stats_subject(1);
    assert_eq!(memo.stats().hits, 1);
    assert_eq!(runs(&STATS_RUNS), 2);
}

static CLEAR_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached]
fn clear_subject(n: u32) -> u32 {
    CLEAR_RUNS.fetch_add(1, SeqCst);
    n
}

#[test]
fn clear_removes_everything_and_the_body_runs_again() {
    let _guard = no_clear_all();
    for n in 0..5 {
        clear_subject(n);
    }
    let memo = clear_subject_cache();
    assert_eq!(memo.len(), 5);
    assert!(!memo.is_empty());
    memo.clear();
    assert_eq!(memo.len(), 0);
    assert!(memo.is_empty());
    assert_eq!(memo.get(&0), None);
    assert_eq!(runs(&CLEAR_RUNS), 5);
    clear_subject(0);
    assert_eq!(runs(&CLEAR_RUNS), 6);
}

static INVALIDATE_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached]
fn invalidate_subject(name: &str, n: u32) -> String {
    INVALIDATE_RUNS.fetch_add(1, SeqCst);
    format!("{name}{n}")
}

#[test]
fn invalidate_removes_one_key() {
    let _guard = no_clear_all();
    invalidate_subject("a", 1);
    invalidate_subject("b", 1);
    let memo: &Memo<(String, u32), String> = invalidate_subject_cache();
    assert!(memo.invalidate(&("a".to_string(), 1)));
    assert!(!memo.invalidate(&("a".to_string(), 1)), "already gone");
    assert!(!memo.invalidate(&("never".to_string(), 0)));
    assert_eq!(memo.len(), 1);
    assert_eq!(memo.get(&("b".to_string(), 1)).as_deref(), Some("b1"));
    assert_eq!(runs(&INVALIDATE_RUNS), 2);
    invalidate_subject("b", 1);
    assert_eq!(runs(&INVALIDATE_RUNS), 2, "the other key is still cached");
    invalidate_subject("a", 1);
    assert_eq!(
        runs(&INVALIDATE_RUNS),
        3,
        "the invalidated key is computed again"
    );
}

static BORROWED_INVALIDATE_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached]
fn greet(name: &str) -> String {
    BORROWED_INVALIDATE_RUNS.fetch_add(1, SeqCst);
    format!("hello {name}")
}

#[test]
fn invalidate_and_get_take_the_borrowed_form_of_the_key() {
    let _guard = no_clear_all();
    greet("ann");
    assert_eq!(greet_cache().get("ann").as_deref(), Some("hello ann"));
    assert!(greet_cache().invalidate("ann"));
    assert_eq!(greet_cache().get("ann"), None);
    greet("ann");
    assert_eq!(runs(&BORROWED_INVALIDATE_RUNS), 2);
}

static INSERT_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached]
fn price(id: u32) -> u32 {
    INSERT_RUNS.fetch_add(1, SeqCst);
    id * 100
}

#[test]
fn insert_writes_through() {
    let _guard = no_clear_all();
    let memo = price_cache();
    // A key never computed: the inserted value is returned and the body never runs.
    memo.insert(1, 150);
    assert_eq!(price(1), 150);
    assert_eq!(runs(&INSERT_RUNS), 0);
    // A computed key: the inserted value replaces it.
    assert_eq!(price(2), 200);
    assert_eq!(runs(&INSERT_RUNS), 1);
    memo.insert(2, 250);
    assert_eq!(price(2), 250);
    assert_eq!(runs(&INSERT_RUNS), 1);
    assert_eq!(memo.len(), 2);
    assert_eq!(memo.stats().hits, 2);
}

static INSERT_RESULT_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached]
fn fallible_price(id: u32) -> Result<u32, String> {
    INSERT_RESULT_RUNS.fetch_add(1, SeqCst);
    Err(format!("no price for {id}"))
}

#[test]
fn insert_into_a_result_function_takes_the_ok_type() {
    let _guard = no_clear_all();
    let memo: &Memo<u32, u32> = fallible_price_cache();
    assert!(fallible_price(1).is_err());
    memo.insert(1, 99);
    assert_eq!(fallible_price(1), Ok(99));
    assert_eq!(runs(&INSERT_RESULT_RUNS), 1);
}

static PEEK_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached]
fn peek_subject(n: u32) -> u32 {
    PEEK_RUNS.fetch_add(1, SeqCst);
    n * 2
}

#[test]
fn get_peeks_without_computing_or_counting() {
    let _guard = no_clear_all();
    let memo = peek_subject_cache();
    assert_eq!(memo.get(&1), None);
    assert_eq!(runs(&PEEK_RUNS), 0, "a peek never computes");
    assert_eq!(memo.len(), 0);
    peek_subject(1);
    let before = memo.stats();
    for _ in 0..5 {
        assert_eq!(memo.get(&1), Some(2));
        assert_eq!(memo.get(&2), None);
    }
    let after = memo.stats();
    assert_eq!((after.hits, after.misses), (before.hits, before.misses));
    assert_eq!(runs(&PEEK_RUNS), 1);
}

static PEEK_LRU_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(size = 2, policy = lru)]
fn peek_lru(n: u32) -> u32 {
    PEEK_LRU_RUNS.fetch_add(1, SeqCst);
    n
}

#[test]
fn get_does_not_mark_an_entry_used() {
    let _guard = no_clear_all();
    let memo = peek_lru_cache();
    peek_lru(1);
    peek_lru(2);
    assert_eq!(memo.get(&1), Some(1)); // a peek: 1 stays the least recently used
    peek_lru(3);
    assert_eq!(memo.get(&1), None);
    assert_eq!(memo.get(&2), Some(2));
    assert_eq!(runs(&PEEK_LRU_RUNS), 3);
}

#[cached(name = "handles::custom_len")]
fn len_subject(n: u32) -> u32 {
    n
}

#[test]
fn len_and_name() {
    let _guard = no_clear_all();
    let memo = len_subject_cache();
    assert_eq!(memo.len(), 0);
    for n in 0..10 {
        len_subject(n);
        len_subject(n);
    }
    assert_eq!(memo.len(), 10);
    assert_eq!(memo.stats().len, 10);
    assert_eq!(memo.name(), "handles::custom_len");
}

// ---------------------------------------------------------------------------------------------
// The registry.

#[cached]
fn listed_on_first_call(n: u32) -> u32 {
    n
}

#[cached]
fn listed_on_first_handle_use(n: u32) -> u32 {
    n
}

#[test]
fn a_function_is_listed_from_its_first_call() {
    let _guard = no_clear_all();
    let name = concat!(module_path!(), "::listed_on_first_call");
    assert!(!listed(name), "listed before its first call");
    assert!(registry().stats(name).is_none());
    assert!(!registry().clear(name));
    listed_on_first_call(1);
    assert!(listed(name));
    let stats = registry().stats(name).expect("listed");
    assert_eq!((stats.misses, stats.loads), (1, 1));
    // Listed once, however often it is called.
    listed_on_first_call(2);
    let count = registry()
        .functions()
        .iter()
        .filter(|f| f.name == name)
        .count();
    assert_eq!(count, 1);
}

#[test]
fn a_function_is_listed_from_the_first_use_of_its_handle() {
    let _guard = no_clear_all();
    let name = concat!(module_path!(), "::listed_on_first_handle_use");
    assert!(!listed(name));
    assert_eq!(listed_on_first_handle_use_cache().len(), 0);
    assert!(listed(name));
}

mod names {
    pub(crate) struct Catalog;

    impl Catalog {
        #[memokit::cached(key = id)]
        pub(crate) fn item(&self, id: u32) -> String {
            format!("item {id}")
        }
    }

    #[memokit::cached]
    pub(crate) fn nested(n: u32) -> u32 {
        n
    }
}

#[test]
fn default_names_are_the_module_path_and_function() {
    let _guard = no_clear_all();
    names::nested(1);
    names::Catalog.item(1);
    assert_eq!(names::nested_cache().name(), "macro_handles::names::nested");
    assert_eq!(
        names::Catalog::item_cache().name(),
        "macro_handles::names::Catalog::item"
    );
    assert!(listed("macro_handles::names::nested"));
    assert!(listed("macro_handles::names::Catalog::item"));
    let stats = registry()
        .stats("macro_handles::names::Catalog::item")
        .unwrap();
    assert_eq!(stats.misses, 1);
}

#[test]
fn functions_are_sorted_by_name() {
    let _guard = no_clear_all();
    names::nested(2);
    let functions = registry().functions();
    let names: Vec<&str> = functions.iter().map(|f| f.name).collect();
    let mut sorted = names.clone();
    sorted.sort_unstable();
    assert_eq!(names, sorted);
}

static REGISTRY_STATS_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(name = "handles::registry_stats")]
fn registry_stats_subject(n: u32) -> u32 {
    REGISTRY_STATS_RUNS.fetch_add(1, SeqCst);
    n
}

#[test]
fn registry_stats_and_functions_match_the_handle() {
    let _guard = no_clear_all();
    registry_stats_subject(1);
    registry_stats_subject(1);
    registry_stats_subject(2);
    let from_registry = registry().stats("handles::registry_stats").unwrap();
    let from_handle = registry_stats_subject_cache().stats();
    assert_eq!(
        (
            from_registry.hits,
            from_registry.misses,
            from_registry.loads
        ),
        (1, 2, 2)
    );
    assert_eq!(
        (from_handle.hits, from_handle.misses, from_handle.loads),
        (1, 2, 2)
    );
    assert_eq!(from_registry.len, 2);
    let listed = registry()
        .functions()
        .into_iter()
        .find(|f| f.name == "handles::registry_stats")
        .unwrap();
    assert_eq!(listed.stats.hits, 1);
    assert!(registry().stats("handles::no_such_function").is_none());
}

static REGISTRY_CLEAR_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(name = "handles::registry_clear")]
fn registry_clear_subject(n: u32) -> u32 {
    REGISTRY_CLEAR_RUNS.fetch_add(1, SeqCst);
    n
}

#[test]
fn registry_clear_by_name() {
    let _guard = no_clear_all();
    registry_clear_subject(1);
    registry_clear_subject(2);
    assert_eq!(registry_clear_subject_cache().len(), 2);
    assert!(registry().clear("handles::registry_clear"));
    assert_eq!(registry_clear_subject_cache().len(), 0);
    registry_clear_subject(1);
    assert_eq!(runs(&REGISTRY_CLEAR_RUNS), 3);
    assert!(!registry().clear("handles::registry_clear_no_such_function"));
    assert_eq!(registry_clear_subject_cache().len(), 1);
}

#[cached(name = "handles::shared_name")]
fn shared_name_a(n: u32) -> u32 {
    n
}

#[cached(name = "handles::shared_name")]
fn shared_name_b(n: u32) -> u64 {
    u64::from(n)
}

#[test]
fn functions_sharing_a_name_are_summed_and_cleared_together() {
    let _guard = no_clear_all();
    shared_name_a(1);
    shared_name_a(1);
    shared_name_b(1);
    shared_name_b(2);
    let stats = registry().stats("handles::shared_name").unwrap();
    assert_eq!((stats.hits, stats.misses), (1, 3));
    assert_eq!(stats.len, 3);
    assert!(registry().clear("handles::shared_name"));
    assert_eq!(shared_name_a_cache().len(), 0);
    assert_eq!(shared_name_b_cache().len(), 0);
}

static CLEAR_ALL_A_RUNS: AtomicUsize = AtomicUsize::new(0);
static CLEAR_ALL_B_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached]
fn clear_all_a(n: u32) -> u32 {
    CLEAR_ALL_A_RUNS.fetch_add(1, SeqCst);
    n
}

struct ClearAll;

impl ClearAll {
    #[cached(key = n)]
    fn b(&self, n: u32) -> u32 {
        CLEAR_ALL_B_RUNS.fetch_add(1, SeqCst);
        n
    }
}

#[test]
fn clear_all_clears_every_listed_function() {
    let _exclusive = REGISTRY_WIDE
        .write()
        .unwrap_or_else(PoisonError::into_inner);
    clear_all_a(1);
    ClearAll.b(1);
    ClearAll.b(2);
    assert_eq!(clear_all_a_cache().len(), 1);
    assert_eq!(ClearAll::b_cache().len(), 2);
    registry().clear_all();
    assert_eq!(clear_all_a_cache().len(), 0);
    assert_eq!(ClearAll::b_cache().len(), 0);
    for function in registry().functions() {
        assert_eq!(function.stats.len, 0, "{} kept entries", function.name);
    }
    clear_all_a(1);
    ClearAll.b(1);
    assert_eq!(runs(&CLEAR_ALL_A_RUNS), 2);
    assert_eq!(runs(&CLEAR_ALL_B_RUNS), 3);
}
