//! Generic `#[cached]` functions: one cache per instantiation, each with its own stats and its
//! own line in the registry; methods, async functions, batches and writers included.

use std::collections::HashMap;
use std::fmt::Debug;
use std::hash::Hash;
use std::str::FromStr;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Barrier};
use std::thread;

use memokit::{cache_evict, cache_put, cached};

static PARSES: AtomicUsize = AtomicUsize::new(0);

#[cached(size = 100)]
fn parse<T: FromStr + Clone + Send + Sync + 'static>(text: &str) -> Option<T> {
    PARSES.fetch_add(1, SeqCst);
    text.parse().ok()
}

#[test]
fn each_instantiation_has_its_own_cache_and_stats() {
    assert_eq!(parse::<i32>("42"), Some(42));
    assert_eq!(parse::<i32>("42"), Some(42));
    // The same text for another type is another entry, not the `i32` one.
    assert_eq!(parse::<u8>("42"), Some(42u8));
    assert_eq!(parse::<u8>("300"), None);
    assert_eq!(parse::<f64>("42"), Some(42.0));
    assert_eq!(PARSES.load(SeqCst), 4);

    let ints = parse_cache::<i32>().stats();
    assert_eq!((ints.hits, ints.misses), (1, 1));
    let bytes = parse_cache::<u8>().stats();
    assert_eq!((bytes.hits, bytes.misses), (0, 2));
    assert_eq!(parse_cache::<u8>().get("42"), Some(Some(42)));

    // Clearing one instantiation leaves the others.
    parse_cache::<i32>().clear();
    assert_eq!(parse_cache::<i32>().len(), 0);
    assert_eq!(parse_cache::<u8>().len(), 2);

    // Each is listed under the function's path with its type arguments.
    let names: Vec<&str> = memokit::registry()
        .functions()
        .iter()
        .map(|function| function.name)
        .collect();
    for ty in ["i32", "u8", "f64"] {
        let name = format!("generic::parse::<{ty}>");
        assert!(names.contains(&name.as_str()), "{name} not in {names:?}");
    }
    let listed = memokit::registry().stats("generic::parse::<u8>").unwrap();
    assert_eq!(listed.misses, 2);
}

/// Type parameters that do not appear in the key or the value still get caches of their own.
trait Unit {
    const SCALE: u64;
}
struct Meters;
struct Feet;
impl Unit for Meters {
    const SCALE: u64 = 1;
}
impl Unit for Feet {
    const SCALE: u64 = 3;
}

#[cached]
fn scaled<U: Unit + 'static>(value: u64) -> u64 {
    value * U::SCALE
}

#[test]
fn a_type_parameter_outside_key_and_value_still_separates_the_caches() {
    assert_eq!(scaled::<Meters>(10), 10);
    assert_eq!(scaled::<Feet>(10), 30);
    assert_eq!(scaled::<Meters>(10), 10);
    assert!(!std::ptr::eq(
        scaled_cache::<Meters>(),
        scaled_cache::<Feet>()
    ));
}

static LOADS: AtomicUsize = AtomicUsize::new(0);

#[cached]
fn load_slowly<K: Hash + Eq + Clone + Send + Sync + Debug + 'static>(key: K) -> String {
    LOADS.fetch_add(1, SeqCst);
    thread::sleep(std::time::Duration::from_millis(50));
    format!("{key:?}")
}

#[test]
fn concurrent_first_calls_share_one_cache_and_one_computation() {
    let barrier = Arc::new(Barrier::new(8));
    let handles: Vec<_> = (0..8)
        .map(|_| {
            let barrier = barrier.clone();
            thread::spawn(move || {
                barrier.wait();
                (
                    load_slowly::<u64>(7),
                    load_slowly_cache::<u64>() as *const _ as usize,
                )
            })
        })
        .collect();
    let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert!(results.iter().all(|(value, _)| value == "7"));
    assert!(results.windows(2).all(|pair| pair[0].1 == pair[1].1));
    assert_eq!(LOADS.load(SeqCst), 1);
}

struct Store;

impl Store {
    #[cached(key = id, key_type = u64)]
    fn fetch<T: Default + Clone + Send + Sync + 'static>(&self, id: u64) -> T {
        let _ = id;
        T::default()
    }
}

#[test]
fn methods_have_one_cache_per_instantiation() {
    let store = Store;
    assert_eq!(store.fetch::<String>(1), String::new());
    assert_eq!(store.fetch::<u32>(1), 0);
    assert_eq!(store.fetch::<u32>(1), 0);
    assert_eq!(Store::fetch_cache::<u32>().stats().hits, 1);
    assert_eq!(Store::fetch_cache::<String>().stats().hits, 0);
    assert!(memokit::registry()
        .functions()
        .iter()
        .any(|function| function.name.ends_with("Store::fetch::<u32>")));
}

#[cached]
async fn describe<T: Debug + Clone + Hash + Eq + Send + Sync + 'static>(value: T) -> String {
    format!("{value:?}")
}

#[tokio::test]
async fn async_functions_too() {
    assert_eq!(describe(1u8).await, "1");
    assert_eq!(describe("a".to_owned()).await, "\"a\"");
    assert_eq!(describe(1u8).await, "1");
    assert_eq!(describe_cache::<u8>().stats().hits, 1);
    assert_eq!(describe_cache::<String>().stats().misses, 1);
}

#[cached(batch)]
fn doubled<T: Copy + Hash + Eq + Send + Sync + Into<u64> + 'static>(keys: &[T]) -> HashMap<T, u64> {
    keys.iter().map(|&key| (key, key.into() * 2)).collect()
}

#[test]
fn batches_too() {
    let first = doubled::<u32>(&[1, 2]);
    assert_eq!(first[&2], 4);
    let second = doubled::<u32>(&[2, 3]);
    assert_eq!(second[&3], 6);
    let stats = doubled_cache::<u32>().stats();
    assert_eq!((stats.hits, stats.misses), (1, 3));
    assert_eq!(doubled_cache::<u8>().len(), 0);
}

static PRICES: AtomicUsize = AtomicUsize::new(0);

#[cached]
fn price<T: 'static>(item: u64) -> u64 {
    PRICES.fetch_add(1, SeqCst);
    item * 10
}

#[cache_put(price::<u32>, key = item)]
fn set_price(item: u64, value: u64) -> u64 {
    value
}

#[cache_evict(price::<u32>, key = item)]
fn forget_price(item: u64) {
    let _ = item;
}

#[test]
fn writers_name_the_instantiation() {
    assert_eq!(price::<u32>(1), 10);
    assert_eq!(price::<u64>(1), 10);
    set_price(1, 99);
    assert_eq!(price::<u32>(1), 99);
    // The other instantiation is untouched.
    assert_eq!(price::<u64>(1), 10);
    forget_price(1);
    let before = PRICES.load(SeqCst);
    assert_eq!(price::<u32>(1), 10);
    assert_eq!(PRICES.load(SeqCst), before + 1);
}

struct Shelf<T>(std::marker::PhantomData<T>);

impl<T> Shelf<T> {
    #[cached(key = id)]
    fn count(&self, id: u64) -> u64 {
        id
    }
}

/// A method of a generic `impl` has one cache for every instantiation (its key and value
/// cannot name `T`), listed under the type's name without its arguments, whichever
/// instantiation is called first.
#[test]
fn a_generic_impls_method_is_named_without_the_impls_arguments() {
    Shelf::<u16>(std::marker::PhantomData).count(1);
    Shelf::<String>(std::marker::PhantomData).count(1);
    let name = Shelf::<u8>::count_cache().name();
    assert!(name.ends_with("::Shelf::count"), "{name}");
    assert_eq!(Shelf::<u8>::count_cache().stats().hits, 1);
}
