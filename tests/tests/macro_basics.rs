//! `#[cached]` on real functions: what runs the body and what does not, the key each shape of
//! signature gets, the `Result` / `Option` rules, every option of the attribute, and that the
//! function itself (visibility, attributes, `return`, `?`, recursion) behaves as written.
//!
//! Every function has its own call counter, so each test proves exactly when a body ran. Static
//! type annotations (`let _: &Memo<K, V> = …`) pin the key and value types the macro chose.

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;

use memokit::{cached, Memo, Policy};

/// How many times a body has run.
fn runs(counter: &AtomicUsize) -> usize {
    counter.load(SeqCst)
}

// ---------------------------------------------------------------------------------------------
// Free functions, sync and async.

static SQUARE_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached]
fn square(n: u64) -> u64 {
    SQUARE_RUNS.fetch_add(1, SeqCst);
    n * n
}

#[test]
fn sync_function_runs_its_body_once_per_key() {
    assert_eq!(square(3), 9);
    assert_eq!(square(3), 9);
    assert_eq!(runs(&SQUARE_RUNS), 1);
    assert_eq!(square(4), 16);
    assert_eq!(square(4), 16);
    assert_eq!(runs(&SQUARE_RUNS), 2);
    let memo: &'static Memo<u64, u64> = square_cache();
    assert_eq!(memo.len(), 2);
    assert_eq!(memo.get(&3), Some(9));
}

static SHOUT_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached]
async fn shout(word: String) -> String {
    SHOUT_RUNS.fetch_add(1, SeqCst);
    tokio::task::yield_now().await;
    word.to_uppercase()
}

#[tokio::test]
async fn async_function_stays_async_and_runs_its_body_once_per_key() {
    assert_eq!(shout("hi".into()).await, "HI");
    assert_eq!(shout("hi".into()).await, "HI");
    assert_eq!(runs(&SHOUT_RUNS), 1);
    // The future is `Send`: it can be spawned on a multi-thread runtime.
    let spawned = tokio::spawn(shout("hi".into())).await.unwrap();
    assert_eq!(spawned, "HI");
    assert_eq!(runs(&SHOUT_RUNS), 1);
    assert_eq!(shout("yo".into()).await, "YO");
    assert_eq!(runs(&SHOUT_RUNS), 2);
    let _: &Memo<String, String> = shout_cache();
}

// ---------------------------------------------------------------------------------------------
// Methods: `key` with `key_type`, `key` made of argument names, async methods.

struct Repo {
    tenant: u32,
}

static ROW_RUNS: AtomicUsize = AtomicUsize::new(0);
static BY_REGION_RUNS: AtomicUsize = AtomicUsize::new(0);
static FETCH_RUNS: AtomicUsize = AtomicUsize::new(0);

impl Repo {
    #[cached(key = (id, self.tenant), key_type = (u64, u32))]
    fn row(&self, id: u64, _trace: u128) -> String {
        ROW_RUNS.fetch_add(1, SeqCst);
        format!("row {id} of tenant {}", self.tenant)
    }

    #[cached(key = (id, region))]
    fn by_region(&self, id: u64, region: &str, _trace: u128) -> String {
        BY_REGION_RUNS.fetch_add(1, SeqCst);
        format!("{id}@{region} seen by tenant {}", self.tenant)
    }

    #[cached(key = id)]
    async fn fetch(&self, id: u64) -> u64 {
        FETCH_RUNS.fetch_add(1, SeqCst);
        tokio::task::yield_now().await;
        id + u64::from(self.tenant)
    }
}

#[test]
fn method_keyed_by_an_expression_of_self_and_arguments() {
    let seven = Repo { tenant: 7 };
    let eight = Repo { tenant: 8 };
    assert_eq!(seven.row(1, 100), "row 1 of tenant 7");
    assert_eq!(seven.row(1, 200), "row 1 of tenant 7"); // `_trace` is not in the key
    assert_eq!(runs(&ROW_RUNS), 1);
    assert_eq!(eight.row(1, 100), "row 1 of tenant 8"); // the tenant is
    assert_eq!(runs(&ROW_RUNS), 2);
    let memo: &Memo<(u64, u32), String> = Repo::row_cache();
    assert_eq!(memo.get(&(1, 7)).as_deref(), Some("row 1 of tenant 7"));
    assert_eq!(memo.get(&(1, 8)).as_deref(), Some("row 1 of tenant 8"));
    assert_eq!(memo.len(), 2);
}

#[test]
fn method_keyed_by_argument_names_reads_the_key_type_from_the_signature() {
    let seven = Repo { tenant: 7 };
    let eight = Repo { tenant: 8 };
    assert_eq!(seven.by_region(1, "eu", 1), "1@eu seen by tenant 7");
    assert_eq!(seven.by_region(1, "eu", 2), "1@eu seen by tenant 7");
    assert_eq!(runs(&BY_REGION_RUNS), 1);
    // `self` is not in this key: another instance gets the cached value (documented semantics).
    assert_eq!(eight.by_region(1, "eu", 3), "1@eu seen by tenant 7");
    assert_eq!(runs(&BY_REGION_RUNS), 1);
    assert_eq!(eight.by_region(1, "us", 3), "1@us seen by tenant 8");
    assert_eq!(runs(&BY_REGION_RUNS), 2);
    let memo: &Memo<(u64, String), String> = Repo::by_region_cache();
    assert!(memo.get(&(1, "eu".to_string())).is_some());
}

#[tokio::test]
async fn async_method() {
    let repo = Repo { tenant: 10 };
    assert_eq!(repo.fetch(5).await, 15);
    assert_eq!(repo.fetch(5).await, 15);
    assert_eq!(runs(&FETCH_RUNS), 1);
    let memo: &Memo<u64, u64> = Repo::fetch_cache();
    assert_eq!(memo.get(&5), Some(15));
}

// ---------------------------------------------------------------------------------------------
// Reference arguments are stored owned; one argument vs a tuple; no argument; custom keys.

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Point {
    x: i32,
    y: i32,
}

static STR_LEN_RUNS: AtomicUsize = AtomicUsize::new(0);
static BYTE_SUM_RUNS: AtomicUsize = AtomicUsize::new(0);
static MANHATTAN_RUNS: AtomicUsize = AtomicUsize::new(0);
static LABEL_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached]
fn str_len(text: &str) -> usize {
    STR_LEN_RUNS.fetch_add(1, SeqCst);
    text.len()
}

#[cached]
fn byte_sum(bytes: &[u8]) -> u32 {
    BYTE_SUM_RUNS.fetch_add(1, SeqCst);
    bytes.iter().map(|&b| u32::from(b)).sum()
}

#[cached]
fn manhattan(point: &Point) -> i32 {
    MANHATTAN_RUNS.fetch_add(1, SeqCst);
    point.x.abs() + point.y.abs()
}

#[cached]
fn label<'a>(prefix: &'a str, n: u8) -> String {
    LABEL_RUNS.fetch_add(1, SeqCst);
    format!("{prefix}-{n}")
}

#[test]
fn reference_arguments_are_stored_owned() {
    // The borrowed argument is gone before the second call: the key owns its copy.
    let text = String::from("hello");
    assert_eq!(str_len(&text), 5);
    drop(text);
    assert_eq!(str_len("hello"), 5);
    assert_eq!(runs(&STR_LEN_RUNS), 1);
    let memo: &Memo<String, usize> = str_len_cache();
    assert_eq!(memo.get("hello"), Some(5)); // looked up by `&str` through `Borrow`

    let bytes = vec![1u8, 2, 3];
    assert_eq!(byte_sum(&bytes), 6);
    drop(bytes);
    assert_eq!(byte_sum(&[1, 2, 3]), 6);
    assert_eq!(runs(&BYTE_SUM_RUNS), 1);
    let memo: &Memo<Vec<u8>, u32> = byte_sum_cache();
    assert_eq!(memo.get(&[1u8, 2, 3][..]), Some(6));

    let point = Point { x: -2, y: 3 };
    assert_eq!(manhattan(&point), 5);
    assert_eq!(manhattan(&Point { x: -2, y: 3 }), 5);
    assert_eq!(runs(&MANHATTAN_RUNS), 1);
    let memo: &Memo<Point, i32> = manhattan_cache();
    assert_eq!(memo.get(&point), Some(5));

    // An explicit lifetime on the reference changes nothing.
    let prefix = String::from("id");
    assert_eq!(label(&prefix, 1), "id-1");
    drop(prefix);
    assert_eq!(label("id", 1), "id-1");
    assert_eq!(runs(&LABEL_RUNS), 1);
    let memo: &Memo<(String, u8), String> = label_cache();
    assert!(memo.get(&("id".to_string(), 1)).is_some());
}

static ONE_ARG_RUNS: AtomicUsize = AtomicUsize::new(0);
static TWO_ARGS_RUNS: AtomicUsize = AtomicUsize::new(0);
static NO_ARGS_RUNS: AtomicUsize = AtomicUsize::new(0);
static ONE_TUPLE_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached]
fn one_arg(n: u32) -> u32 {
    ONE_ARG_RUNS.fetch_add(1, SeqCst);
    n + 1
}

#[cached]
fn two_args(n: u32, negate: bool) -> i64 {
    TWO_ARGS_RUNS.fetch_add(1, SeqCst);
    if negate {
        -i64::from(n)
    } else {
        i64::from(n)
    }
}

#[cached]
fn no_args() -> String {
    NO_ARGS_RUNS.fetch_add(1, SeqCst);
    "computed once".to_string()
}

#[cached(key = (n,))]
fn one_tuple(n: u32, _ignored: u32) -> u32 {
    ONE_TUPLE_RUNS.fetch_add(1, SeqCst);
    n * 10
}

#[test]
fn one_argument_is_the_key_several_make_a_tuple() {
    assert_eq!(one_arg(1), 2);
    assert_eq!(one_arg(1), 2);
    assert_eq!(runs(&ONE_ARG_RUNS), 1);
    let memo: &Memo<u32, u32> = one_arg_cache();
    assert_eq!(memo.get(&1), Some(2));

    assert_eq!(two_args(3, true), -3);
    assert_eq!(two_args(3, false), 3); // every argument is part of the key
    assert_eq!(two_args(3, true), -3);
    assert_eq!(runs(&TWO_ARGS_RUNS), 2);
    let memo: &Memo<(u32, bool), i64> = two_args_cache();
    assert_eq!(memo.get(&(3, true)), Some(-3));
    assert_eq!(memo.get(&(3, false)), Some(3));

    assert_eq!(no_args(), "computed once");
    assert_eq!(no_args(), "computed once");
    assert_eq!(runs(&NO_ARGS_RUNS), 1);
    let memo: &Memo<(), String> = no_args_cache();
    assert_eq!(memo.len(), 1);

    // `key = (n,)` is a one-element tuple, as written.
    assert_eq!(one_tuple(2, 0), 20);
    assert_eq!(one_tuple(2, 1), 20);
    assert_eq!(runs(&ONE_TUPLE_RUNS), 1);
    let memo: &Memo<(u32,), u32> = one_tuple_cache();
    assert_eq!(memo.get(&(2,)), Some(20));
}

static BY_ID_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(key = id)]
fn by_id(id: u64, name: &str, _request: std::time::Instant) -> String {
    BY_ID_RUNS.fetch_add(1, SeqCst);
    format!("{id}:{name}")
}

#[test]
fn custom_key_ignores_the_other_arguments() {
    let now = std::time::Instant::now();
    assert_eq!(by_id(1, "first", now), "1:first");
    // Same id, other name: the cached value of the first call.
    assert_eq!(by_id(1, "second", now), "1:first");
    assert_eq!(runs(&BY_ID_RUNS), 1);
    assert_eq!(by_id(2, "second", now), "2:second");
    assert_eq!(runs(&BY_ID_RUNS), 2);
    let memo: &Memo<u64, String> = by_id_cache();
    assert_eq!(memo.len(), 2);
}

// `#[skip]`: an argument left out of the key. The skipped types here are neither `Hash`,
// `Clone` nor `'static`: they could not be in a key.

/// A connection: no `Hash`, no `Clone`, no `Eq`.
struct Db {
    name: &'static str,
}

static USER_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached]
fn user(id: u64, #[skip] db: &Db, region: &str) -> String {
    USER_RUNS.fetch_add(1, SeqCst);
    format!("user {id}@{region} from {}", db.name)
}

#[test]
fn skip_leaves_an_argument_out_of_the_key() {
    let (primary, replica) = (Db { name: "primary" }, Db { name: "replica" });
    assert_eq!(user(1, &primary, "eu"), "user 1@eu from primary");
    // Another connection, same key: the cached value.
    assert_eq!(user(1, &replica, "eu"), "user 1@eu from primary");
    assert_eq!(runs(&USER_RUNS), 1);
    assert_eq!(user(1, &replica, "us"), "user 1@us from replica");
    assert_eq!(runs(&USER_RUNS), 2);
    let memo: &Memo<(u64, String), String> = user_cache();
    assert_eq!(
        memo.get(&(1, "eu".to_string())).as_deref(),
        Some("user 1@eu from primary")
    );
}

static PROFILE_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached]
async fn profile(#[skip] db: &Db, id: u64) -> String {
    PROFILE_RUNS.fetch_add(1, SeqCst);
    tokio::task::yield_now().await;
    format!("profile {id} from {}", db.name)
}

#[tokio::test]
async fn skip_on_an_async_function_leaves_one_argument_as_the_key() {
    let (primary, replica) = (Db { name: "primary" }, Db { name: "replica" });
    assert_eq!(profile(&primary, 5).await, "profile 5 from primary");
    assert_eq!(profile(&replica, 5).await, "profile 5 from primary");
    assert_eq!(runs(&PROFILE_RUNS), 1);
    // One argument left: it is the key itself, not a one-element tuple.
    let memo: &Memo<u64, String> = profile_cache();
    assert_eq!(memo.len(), 1);
}

static SETTINGS_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached]
fn settings(#[skip] db: &Db, #[skip] _attempt: u32) -> String {
    SETTINGS_RUNS.fetch_add(1, SeqCst);
    format!("settings from {}", db.name)
}

#[test]
fn skip_on_every_argument_caches_one_value_under_the_unit_key() {
    let (primary, replica) = (Db { name: "primary" }, Db { name: "replica" });
    assert_eq!(settings(&primary, 1), "settings from primary");
    assert_eq!(settings(&replica, 2), "settings from primary");
    assert_eq!(runs(&SETTINGS_RUNS), 1);
    let memo: &Memo<(), String> = settings_cache();
    assert!(memo.invalidate(&()));
    assert_eq!(settings(&replica, 3), "settings from replica");
}

static LOOKUP_RUNS: AtomicUsize = AtomicUsize::new(0);

impl Repo {
    // No `key = …`: on a method, `#[skip]` says the key is the other arguments.
    #[cached]
    fn lookup(&self, id: u64, #[skip] db: &Db) -> String {
        LOOKUP_RUNS.fetch_add(1, SeqCst);
        format!("{id} for tenant {} from {}", self.tenant, db.name)
    }
}

#[test]
fn skip_on_a_method_keys_it_by_the_other_arguments() {
    let (seven, eight) = (Repo { tenant: 7 }, Repo { tenant: 8 });
    let db = Db { name: "primary" };
    assert_eq!(seven.lookup(1, &db), "1 for tenant 7 from primary");
    // `self` is not in the key, as with `key = id`.
    assert_eq!(
        eight.lookup(1, &Db { name: "replica" }),
        "1 for tenant 7 from primary"
    );
    assert_eq!(runs(&LOOKUP_RUNS), 1);
    let memo: &Memo<u64, String> = Repo::lookup_cache();
    assert_eq!(memo.len(), 1);
}

static COUNTDOWN_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached]
fn countdown(mut n: u32) -> u32 {
    COUNTDOWN_RUNS.fetch_add(1, SeqCst);
    while n >= 10 {
        n -= 10;
    }
    n
}

#[test]
fn mut_arguments_are_keyed_by_their_value_at_the_call() {
    assert_eq!(countdown(42), 2);
    assert_eq!(countdown(42), 2);
    assert_eq!(countdown(2), 2); // another key, though the body ended with n == 2
    assert_eq!(runs(&COUNTDOWN_RUNS), 2);
    assert_eq!(countdown_cache().get(&42), Some(2));
}

// ---------------------------------------------------------------------------------------------
// `Result`: only `Ok` is cached, unless `cache_errors = true`.

#[derive(Debug, Clone, PartialEq)]
struct Odd(u32);

static HALVE_RUNS: AtomicUsize = AtomicUsize::new(0);
static HALVE_ALL_RUNS: AtomicUsize = AtomicUsize::new(0);
static READ_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached]
fn halve(n: u32) -> Result<u32, Odd> {
    HALVE_RUNS.fetch_add(1, SeqCst);
    if n % 2 == 0 {
        Ok(n / 2)
    } else {
        Err(Odd(n))
    }
}

#[cached(cache_errors = true)]
fn halve_all(n: u32) -> Result<u32, Odd> {
    HALVE_ALL_RUNS.fetch_add(1, SeqCst);
    if n % 2 == 0 {
        Ok(n / 2)
    } else {
        Err(Odd(n))
    }
}

/// `io::Result` is an alias ending in `Result`: same rules, and its error is not `Clone`.
#[cached]
fn read(n: u32) -> std::io::Result<u32> {
    READ_RUNS.fetch_add(1, SeqCst);
    if n == 0 {
        Err(std::io::Error::other("zero"))
    } else {
        Ok(n)
    }
}

#[test]
fn ok_is_cached_err_is_not() {
    assert_eq!(halve(4), Ok(2));
    assert_eq!(halve(4), Ok(2));
    assert_eq!(runs(&HALVE_RUNS), 1);
    assert_eq!(halve(3), Err(Odd(3)));
    assert_eq!(halve(3), Err(Odd(3)));
    assert_eq!(runs(&HALVE_RUNS), 3);
    // The cache stores the `Ok` type.
    let memo: &Memo<u32, u32> = halve_cache();
    assert_eq!(memo.len(), 1);
    assert_eq!(memo.get(&4), Some(2));
    assert_eq!(memo.get(&3), None);
}

#[test]
fn cache_errors_caches_err_too() {
    assert_eq!(halve_all(3), Err(Odd(3)));
    assert_eq!(halve_all(3), Err(Odd(3)));
    assert_eq!(runs(&HALVE_ALL_RUNS), 1);
    assert_eq!(halve_all(4), Ok(2));
    assert_eq!(halve_all(4), Ok(2));
    assert_eq!(runs(&HALVE_ALL_RUNS), 2);
    // The whole `Result` is stored.
    let memo: &Memo<u32, Result<u32, Odd>> = halve_all_cache();
    assert_eq!(memo.get(&3), Some(Err(Odd(3))));
    assert_eq!(memo.len(), 2);
}

#[test]
fn result_alias_follows_the_result_rules() {
    assert_eq!(read(1).unwrap(), 1);
    assert_eq!(read(1).unwrap(), 1);
    assert_eq!(runs(&READ_RUNS), 1);
    assert!(read(0).is_err());
    assert!(read(0).is_err());
    assert_eq!(runs(&READ_RUNS), 3);
    let memo: &Memo<u32, u32> = read_cache();
    assert_eq!(memo.len(), 1);
}

// ---------------------------------------------------------------------------------------------
// `Option`: `None` is cached, unless `cache_none = false`.

static FIND_RUNS: AtomicUsize = AtomicUsize::new(0);
static FIND_SOME_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached]
fn find(n: u32) -> Option<u32> {
    FIND_RUNS.fetch_add(1, SeqCst);
    (n > 0).then_some(n)
}

#[cached(cache_none = false)]
fn find_some(n: u32) -> Option<u32> {
    FIND_SOME_RUNS.fetch_add(1, SeqCst);
    (n > 0).then_some(n)
}

#[test]
fn none_is_cached_by_default() {
    assert_eq!(find(0), None);
    assert_eq!(find(0), None);
    assert_eq!(runs(&FIND_RUNS), 1);
    assert_eq!(find(1), Some(1));
    assert_eq!(find(1), Some(1));
    assert_eq!(runs(&FIND_RUNS), 2);
    let memo: &Memo<u32, Option<u32>> = find_cache();
    assert_eq!(memo.get(&0), Some(None));
    assert_eq!(memo.len(), 2);
}

#[test]
fn cache_none_false_does_not_cache_none() {
    assert_eq!(find_some(0), None);
    assert_eq!(find_some(0), None);
    assert_eq!(runs(&FIND_SOME_RUNS), 2);
    assert_eq!(find_some(1), Some(1));
    assert_eq!(find_some(1), Some(1));
    assert_eq!(runs(&FIND_SOME_RUNS), 3);
    let memo: &Memo<u32, Option<u32>> = find_some_cache();
    assert_eq!(memo.get(&0), None);
    assert_eq!(memo.len(), 1);
}

// ---------------------------------------------------------------------------------------------
// `size`, `weight`, `policy`.

static LRU_RUNS: AtomicUsize = AtomicUsize::new(0);

/// A `const` works as the size: it is any expression.
const THREE: usize = 3;

#[cached(size = THREE, policy = lru)]
fn lru_three(n: u32) -> u32 {
    LRU_RUNS.fetch_add(1, SeqCst);
    n * 2
}

#[test]
fn size_bounds_the_cache_and_lru_evicts_the_least_recently_used() {
    let memo = lru_three_cache();
    assert_eq!(memo.cache().capacity(), Some(3));
    assert_eq!(memo.cache().policy(), Policy::Lru);
    lru_three(1);
    lru_three(2);
    lru_three(3);
    assert_eq!(memo.len(), 3);
    assert_eq!(lru_three(1), 2); // a hit: 1 is now the most recently used
    assert_eq!(runs(&LRU_RUNS), 3);
    lru_three(4); // evicts 2, the least recently used
    assert_eq!(memo.len(), 3);
    assert_eq!(memo.get(&2), None);
    assert_eq!(memo.get(&1), Some(2));
    assert_eq!(memo.get(&3), Some(6));
    assert_eq!(memo.get(&4), Some(8));
    assert_eq!(runs(&LRU_RUNS), 4);
    assert_eq!(lru_three(2), 4); // recomputed
    assert_eq!(runs(&LRU_RUNS), 5);
    assert_eq!(memo.get(&3), None); // 3 was then the least recently used
    assert!(memo.stats().evictions >= 2);
}

static FIFO_RUNS: AtomicUsize = AtomicUsize::new(0);
static LFU_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(size = 3, policy = fifo)]
fn fifo_three(n: u32) -> u32 {
    FIFO_RUNS.fetch_add(1, SeqCst);
    n
}

#[cached(size = 3, policy = lfu)]
fn lfu_three(n: u32) -> u32 {
    LFU_RUNS.fetch_add(1, SeqCst);
    n
}

#[test]
fn fifo_evicts_the_oldest_even_if_used() {
    let memo = fifo_three_cache();
    assert_eq!(memo.cache().policy(), Policy::Fifo);
    for n in 1..=3 {
        fifo_three(n);
    }
    fifo_three(1); // a hit does not save it under FIFO
    assert_eq!(runs(&FIFO_RUNS), 3);
    fifo_three(4);
    assert_eq!(memo.get(&1), None);
    assert_eq!(memo.get(&2), Some(2));
    assert_eq!(memo.len(), 3);
}

#[test]
fn lfu_evicts_the_least_frequently_used() {
    let memo = lfu_three_cache();
    assert_eq!(memo.cache().policy(), Policy::Lfu);
    for _ in 0..3 {
        lfu_three(1);
        lfu_three(2);
    }
    lfu_three(3);
    assert_eq!(runs(&LFU_RUNS), 3);
    lfu_three(4); // 3 was used once, 1 and 2 three times
    assert_eq!(memo.get(&3), None);
    assert_eq!(memo.get(&1), Some(1));
    assert_eq!(memo.get(&2), Some(2));
    assert_eq!(memo.len(), 3);
}

macro_rules! policy_fn {
    ($name:ident, $runs:ident, $($policy:tt)*) => {
        static $runs: AtomicUsize = AtomicUsize::new(0);

        #[cached(size = 4, $($policy)*)]
        fn $name(n: u32) -> u32 {
            $runs.fetch_add(1, SeqCst);
            n * 3
        }
    };
}

policy_fn!(with_lru, WITH_LRU_RUNS, policy = lru);
policy_fn!(with_lfu, WITH_LFU_RUNS, policy = lfu);
policy_fn!(with_fifo, WITH_FIFO_RUNS, policy = fifo);
policy_fn!(with_s3fifo, WITH_S3FIFO_RUNS, policy = s3fifo);
policy_fn!(with_tinylfu, WITH_TINYLFU_RUNS, policy = s3fifo_tinylfu);
policy_fn!(with_w_tinylfu, WITH_W_TINYLFU_RUNS, policy = w_tinylfu);
policy_fn!(with_default, WITH_DEFAULT_RUNS,);

/// A function, its handle, its run counter and the policy it was given.
type PolicyCase = (
    fn(u32) -> u32,
    &'static Memo<u32, u32>,
    &'static AtomicUsize,
    Policy,
);

#[test]
fn every_policy_keeps_the_cache_within_size_and_returns_right_values() {
    let cases: [PolicyCase; 7] = [
        (with_lru, with_lru_cache(), &WITH_LRU_RUNS, Policy::Lru),
        (with_lfu, with_lfu_cache(), &WITH_LFU_RUNS, Policy::Lfu),
        (with_fifo, with_fifo_cache(), &WITH_FIFO_RUNS, Policy::Fifo),
        (
            with_s3fifo,
            with_s3fifo_cache(),
            &WITH_S3FIFO_RUNS,
            Policy::S3Fifo,
        ),
        (
            with_tinylfu,
            with_tinylfu_cache(),
            &WITH_TINYLFU_RUNS,
            Policy::S3FifoTinyLfu,
        ),
        (
            with_w_tinylfu,
            with_w_tinylfu_cache(),
            &WITH_W_TINYLFU_RUNS,
            Policy::WTinyLfu,
        ),
        (
            with_default,
            with_default_cache(),
            &WITH_DEFAULT_RUNS,
            Policy::WTinyLfu,
        ),
    ];
    for (function, memo, counter, policy) in cases {
        assert_eq!(memo.cache().policy(), policy);
        assert_eq!(memo.cache().capacity(), Some(4));
        for round in 0..3 {
            for n in 0..20 {
                assert_eq!(function(n % (5 + round)), (n % (5 + round)) * 3);
                assert!(memo.len() <= 4, "{policy:?}: {} entries", memo.len());
            }
        }
        // Repeating a resident key is a hit.
        let before = runs(counter);
        function(100);
        function(100);
        assert_eq!(runs(counter), before + 1, "{policy:?}");
        assert!(memo.stats().evictions > 0, "{policy:?}");
    }
}

static BLOB_RUNS: AtomicUsize = AtomicUsize::new(0);

// The weigher takes `&V`, so `&Vec<u8>`, which clippy would rather see as `&[u8]`.
#[allow(clippy::ptr_arg)]
fn blob_weight(_id: &u32, value: &Vec<u8>) -> u32 {
    value.len() as u32
}

#[cached(size = 100, weight = blob_weight, policy = lru)]
fn blob(len: u32) -> Vec<u8> {
    BLOB_RUNS.fetch_add(1, SeqCst);
    vec![7; len as usize]
}

#[test]
fn weight_makes_size_a_total_weight() {
    let memo: &Memo<u32, Vec<u8>> = blob_cache();
    assert_eq!(memo.cache().capacity(), Some(100));
    blob(40);
    blob(41);
    assert_eq!(memo.cache().weighted_size(), 81);
    assert_eq!(memo.len(), 2);
    blob(42); // 123 > 100: the least recently used (40) goes
    assert_eq!(memo.cache().weighted_size(), 83);
    assert_eq!(memo.len(), 2);
    assert_eq!(memo.get(&40), None);
    assert!(memo.cache().weighted_size() <= 100);
    // Heavier than the whole capacity: returned but never stored, so it runs every time.
    assert_eq!(blob(150).len(), 150);
    assert_eq!(blob(150).len(), 150);
    assert_eq!(memo.get(&150), None);
    assert_eq!(runs(&BLOB_RUNS), 5);
    assert!(memo.cache().weighted_size() <= 100);
}

/// `size` is any integer expression; the cast the expansion applies to it is not the user's to
/// lint (run `cargo clippy` to check: these lints are errors there with `-D warnings`).
mod size_casts {
    #![warn(clippy::unnecessary_cast, clippy::cast_lossless)]

    const CAPACITY: u32 = 2;

    #[memokit::cached(size = CAPACITY)]
    pub(crate) fn from_a_u32_const(n: u32) -> u32 {
        n
    }

    #[memokit::cached(size = 2)]
    pub(crate) fn from_a_literal(n: u32) -> u32 {
        n
    }
}

#[test]
fn size_from_a_const_or_a_literal() {
    for n in 0..10 {
        size_casts::from_a_u32_const(n);
        size_casts::from_a_literal(n);
    }
    assert_eq!(size_casts::from_a_u32_const_cache().len(), 2);
    assert_eq!(size_casts::from_a_literal_cache().len(), 2);
}

// ---------------------------------------------------------------------------------------------
// `name`, visibility, attributes.

#[cached(name = "basics::renamed")]
fn renamed(n: u8) -> u8 {
    n
}

#[cached]
fn unnamed(n: u8) -> u8 {
    n
}

#[test]
fn name_sets_the_registry_name() {
    renamed(1);
    unnamed(1);
    assert_eq!(renamed_cache().name(), "basics::renamed");
    assert_eq!(unnamed_cache().name(), "macro_basics::unnamed");
    assert_eq!(unnamed_cache().name(), concat!(module_path!(), "::unnamed"));
    assert!(memokit::registry().stats("basics::renamed").is_some());
}

mod inner {
    use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

    pub(crate) static TRIPLE_RUNS: AtomicUsize = AtomicUsize::new(0);

    #[memokit::cached]
    pub(crate) fn triple(n: u32) -> u32 {
        TRIPLE_RUNS.fetch_add(1, SeqCst);
        n * 3
    }

    pub(crate) mod deeper {
        #[memokit::cached]
        pub(super) fn quadruple(n: u32) -> u32 {
            n * 4
        }

        pub(crate) fn quadruple_len() -> u64 {
            super::deeper::quadruple(1);
            quadruple_cache().len()
        }
    }

    pub(crate) fn quadruple_from_parent() -> (u32, u64) {
        // `pub(super)` accessor: reachable from the parent module.
        (deeper::quadruple(2), deeper::quadruple_cache().len())
    }
}

#[test]
fn accessor_has_the_function_visibility() {
    assert_eq!(inner::triple(2), 6);
    assert_eq!(inner::triple(2), 6);
    assert_eq!(runs(&inner::TRIPLE_RUNS), 1);
    let memo: &Memo<u32, u32> = inner::triple_cache();
    assert_eq!(memo.get(&2), Some(6));
    assert_eq!(memo.name(), "macro_basics::inner::triple");
    assert_eq!(inner::deeper::quadruple_len(), 1);
    assert_eq!(inner::quadruple_from_parent(), (8, 2));
}

/// Attributes and doc comments on the function stay on it. The lints below make the test
/// crate fail to compile if they were dropped: without its doc comment the public function
/// would trip `missing_docs`, and without its `#[allow]` the unused argument would trip
/// `unused_variables`.
pub mod attributes {
    #![deny(missing_docs, unused_variables)]

    use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

    /// Counts the runs of [`documented`].
    pub static DOCUMENTED_RUNS: AtomicUsize = AtomicUsize::new(0);

    /// Doubles `id`; `note` is ignored.
    #[must_use]
    #[memokit::cached(key = id)]
    #[inline]
    #[allow(unused_variables)]
    pub fn documented(id: u64, note: &str) -> u64 {
        DOCUMENTED_RUNS.fetch_add(1, SeqCst);
        id * 2
    }
}

#[test]
fn attributes_and_docs_are_kept() {
    assert_eq!(attributes::documented(4, "a"), 8);
    assert_eq!(attributes::documented(4, "b"), 8);
    assert_eq!(runs(&attributes::DOCUMENTED_RUNS), 1);
    assert_eq!(attributes::documented_cache().len(), 1);
}

// ---------------------------------------------------------------------------------------------
// `return` and `?` inside bodies: they leave the body, whose result is still cached.

#[derive(Debug, Clone, PartialEq)]
enum AppError {
    Parse(std::num::ParseIntError),
    Negative,
}

impl From<std::num::ParseIntError> for AppError {
    fn from(error: std::num::ParseIntError) -> Self {
        AppError::Parse(error)
    }
}

static EARLY_RUNS: AtomicUsize = AtomicUsize::new(0);
static PARSE_RUNS: AtomicUsize = AtomicUsize::new(0);
static EARLY_ASYNC_RUNS: AtomicUsize = AtomicUsize::new(0);
static PARSE_ASYNC_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached]
fn early(n: u32) -> u32 {
    EARLY_RUNS.fetch_add(1, SeqCst);
    if n == 0 {
        return 100;
    }
    n
}

#[cached]
fn parse_positive(text: &str) -> Result<i64, AppError> {
    PARSE_RUNS.fetch_add(1, SeqCst);
    let n: i64 = text.parse()?;
    if n < 0 {
        return Err(AppError::Negative);
    }
    Ok(n)
}

#[cached]
async fn early_async(n: u32) -> u32 {
    EARLY_ASYNC_RUNS.fetch_add(1, SeqCst);
    tokio::task::yield_now().await;
    if n == 0 {
        return 100;
    }
    n
}

#[cached]
async fn parse_positive_async(text: String) -> Result<i64, AppError> {
    PARSE_ASYNC_RUNS.fetch_add(1, SeqCst);
    tokio::task::yield_now().await;
    let n: i64 = text.parse()?;
    if n < 0 {
        return Err(AppError::Negative);
    }
    Ok(n)
}

#[test]
fn return_and_question_mark_in_sync_bodies() {
    assert_eq!(early(0), 100);
    assert_eq!(early(0), 100); // the early-returned value was cached
    assert_eq!(runs(&EARLY_RUNS), 1);
    assert_eq!(early_cache().get(&0), Some(100));

    assert_eq!(parse_positive("12"), Ok(12));
    assert_eq!(parse_positive("12"), Ok(12));
    assert_eq!(runs(&PARSE_RUNS), 1);
    assert!(matches!(parse_positive("x"), Err(AppError::Parse(_))));
    assert_eq!(parse_positive("-1"), Err(AppError::Negative));
    assert_eq!(parse_positive("-1"), Err(AppError::Negative));
    assert_eq!(runs(&PARSE_RUNS), 4); // errors from `?` and `return Err` are not cached
    assert_eq!(parse_positive_cache().len(), 1);
}

#[tokio::test]
async fn return_and_question_mark_in_async_bodies() {
    assert_eq!(early_async(0).await, 100);
    assert_eq!(early_async(0).await, 100);
    assert_eq!(runs(&EARLY_ASYNC_RUNS), 1);

    assert_eq!(parse_positive_async("12".into()).await, Ok(12));
    assert_eq!(parse_positive_async("12".into()).await, Ok(12));
    assert_eq!(runs(&PARSE_ASYNC_RUNS), 1);
    assert!(matches!(
        parse_positive_async("x".into()).await,
        Err(AppError::Parse(_))
    ));
    assert_eq!(
        parse_positive_async("-1".into()).await,
        Err(AppError::Negative)
    );
    assert_eq!(
        parse_positive_async("-1".into()).await,
        Err(AppError::Negative)
    );
    assert_eq!(runs(&PARSE_ASYNC_RUNS), 4);
    assert_eq!(parse_positive_async_cache().len(), 1);
}

/// A boxed error, not `Clone`: waiters would run the body again, and it is never cached.
type BoxError = Box<dyn std::error::Error + Send + Sync>;

static COERCE_RUNS: AtomicUsize = AtomicUsize::new(0);
static COERCE_ASYNC_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached]
fn coerce_on_return(text: &str) -> Result<usize, BoxError> {
    COERCE_RUNS.fetch_add(1, SeqCst);
    if text.is_empty() {
        return Err(Box::new(std::fmt::Error)); // `Box<fmt::Error>` coerced to `BoxError`
    }
    Ok(text.len())
}

#[cached]
async fn coerce_on_return_async(text: String) -> Result<usize, BoxError> {
    COERCE_ASYNC_RUNS.fetch_add(1, SeqCst);
    tokio::task::yield_now().await;
    if text.is_empty() {
        return Err(Box::new(std::fmt::Error));
    }
    Ok(text.len())
}

/// A shared closure: `Clone`, so storable, and built from two closure types.
type Adder = Arc<dyn Fn(u32) -> u32 + Send + Sync>;

#[cached]
async fn adder_async(n: u32) -> Adder {
    tokio::task::yield_now().await;
    if n == 0 {
        return Arc::new(|x| x); // `Arc<{closure}>` coerced to `Adder`
    }
    Arc::new(move |x| x + n)
}

#[test]
fn return_coerces_to_the_return_type_in_sync_bodies() {
    assert!(coerce_on_return("").is_err());
    assert_eq!(coerce_on_return("abc").unwrap(), 3);
    assert_eq!(coerce_on_return("abc").unwrap(), 3);
    assert_eq!(runs(&COERCE_RUNS), 2);
}

#[tokio::test]
async fn return_coerces_to_the_return_type_in_async_bodies() {
    assert!(coerce_on_return_async(String::new()).await.is_err());
    assert!(coerce_on_return_async(String::new()).await.is_err());
    assert_eq!(coerce_on_return_async("abc".into()).await.unwrap(), 3);
    assert_eq!(coerce_on_return_async("abc".into()).await.unwrap(), 3);
    assert_eq!(runs(&COERCE_ASYNC_RUNS), 3);

    let identity = adder_async(0).await;
    let plus_two = adder_async(2).await;
    assert_eq!((identity(5), plus_two(5)), (5, 7));
    let memo: &Memo<u32, Adder> = adder_async_cache();
    assert_eq!(memo.len(), 2);
}

// ---------------------------------------------------------------------------------------------
// Recursion.

static FIB_RUNS: AtomicUsize = AtomicUsize::new(0);
static FIB_ASYNC_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached]
fn fib(n: u64) -> u64 {
    FIB_RUNS.fetch_add(1, SeqCst);
    if n < 2 {
        n
    } else {
        fib(n - 1) + fib(n - 2)
    }
}

#[cached]
async fn fib_async(n: u64) -> u64 {
    FIB_ASYNC_RUNS.fetch_add(1, SeqCst);
    if n < 2 {
        n
    } else {
        Box::pin(fib_async(n - 1)).await + Box::pin(fib_async(n - 2)).await
    }
}

#[test]
fn recursive_fib_computes_each_n_once() {
    assert_eq!(fib(80), 23_416_728_348_467_685);
    assert_eq!(runs(&FIB_RUNS), 81);
    let stats = fib_cache().stats();
    assert_eq!((stats.hits, stats.misses, stats.loads), (78, 81, 81));
    assert_eq!(fib(80), 23_416_728_348_467_685);
    assert_eq!(runs(&FIB_RUNS), 81);
}

#[tokio::test]
async fn recursive_async_fib_computes_each_n_once() {
    assert_eq!(fib_async(60).await, 1_548_008_755_920);
    assert_eq!(runs(&FIB_ASYNC_RUNS), 61);
    assert_eq!(fib_async_cache().len(), 61);
}

#[cached]
fn calls_itself(n: u32) -> u32 {
    if n == 0 {
        calls_itself(0)
    } else {
        n
    }
}

/// The message of a panic payload.
fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_default()
}

#[test]
fn same_key_recursion_panics_instead_of_deadlocking() {
    let panic = std::panic::catch_unwind(|| calls_itself(0)).unwrap_err();
    let message = panic_message(&*panic);
    assert!(message.contains("called itself"), "{message}");
    // The abandoned run left nothing behind: other keys still work, the key is not stuck.
    assert_eq!(calls_itself(1), 1);
    assert_eq!(calls_itself_cache().get(&0), None);
}

#[cached]
async fn awaits_itself(n: u32) -> u32 {
    if n == 0 {
        tokio::task::yield_now().await;
        Box::pin(awaits_itself(0)).await
    } else {
        n
    }
}

/// The async twin: it used to wait for itself forever.
#[tokio::test]
async fn async_same_key_recursion_panics_instead_of_hanging() {
    let task = tokio::spawn(awaits_itself(0));
    let outcome = tokio::time::timeout(std::time::Duration::from_secs(10), task)
        .await
        .expect("the recursive call hangs");
    let panic = outcome.unwrap_err().into_panic();
    let message = panic_message(&*panic);
    assert!(message.contains("called itself"), "{message}");
    assert_eq!(awaits_itself(1).await, 1);
    assert_eq!(awaits_itself_cache().get(&0), None);
}

mod spelled_out_key_type {
    use std::sync::atomic::{AtomicUsize, Ordering};

    static CALLS: AtomicUsize = AtomicUsize::new(0);

    /// `key_type` on a key made of argument names: the argument is copied into the key, so the
    /// body can still use it (it used to be moved into the key).
    #[memokit::cached(key = name, key_type = String)]
    fn shout(name: String, _times: u8) -> String {
        CALLS.fetch_add(1, Ordering::SeqCst);
        name.to_uppercase()
    }

    #[test]
    fn an_argument_named_in_key_stays_usable_in_the_body() {
        assert_eq!(shout("ann".to_string(), 1), "ANN");
        assert_eq!(shout("ann".to_string(), 2), "ANN");
        assert_eq!(CALLS.load(Ordering::SeqCst), 1);
        let _: &memokit::Memo<String, String> = shout_cache();
    }
}

// ---- Functions written by `macro_rules!` -----------------------------------------------------

static THROUGH_MACRO_RUNS: AtomicUsize = AtomicUsize::new(0);

/// `$t:ty` and `$e:expr` fragments reach the attribute inside invisible groups.
macro_rules! loader {
    ($name:ident($arg:ident: $arg_ty:ty) -> $ret:ty, ttl = $ttl:literal, key = $key:expr) => {
        #[cached(ttl = $ttl, key = $key)]
        fn $name($arg: $arg_ty) -> $ret {
            THROUGH_MACRO_RUNS.fetch_add(1, SeqCst);
            if $arg.is_empty() {
                Err("empty".to_string())
            } else {
                Ok($arg.len())
            }
        }
    };
}

loader!(length_of(text: &str) -> Result<usize, String>, ttl = "5m", key = text);

/// A function written through `macro_rules!` is read as if written out: its `Result` return
/// type (an `Err` is not cached), its `&str` argument (looked up borrowed), a literal `ttl`
/// and a `key` given as fragments. Each was refused, or an `Err` cached, before the macro took
/// off the fragments' invisible groups.
#[test]
fn a_function_written_by_macro_rules_is_read_as_written_out() {
    assert_eq!(length_of("abc"), Ok(3));
    assert_eq!(length_of("abc"), Ok(3));
    assert_eq!(length_of(""), Err("empty".to_string()));
    assert_eq!(length_of(""), Err("empty".to_string()));
    assert_eq!(
        THROUGH_MACRO_RUNS.load(SeqCst),
        3,
        "the Err is computed again"
    );
    assert_eq!(length_of_cache().len(), 1);
}

// ---- `crate = "…"`: memokit reached through another path ------------------------------------

/// A facade crate's re-export, as a module here.
mod facade {
    pub use memokit as inner;
}

#[cached(crate = "crate::facade::inner", size = 10)]
fn through_facade(n: u64) -> u64 {
    n + 1
}

#[memokit::cache_evict(through_facade, key = n, crate = "crate::facade::inner")]
fn forget_through_facade(n: u64) {
    let _ = n;
}

/// The generated code reaches the runtime by the path given (a renamed dependency or a facade
/// crate's re-export), in `#[cached]` and in a writer.
#[test]
fn the_runtime_is_reached_by_the_crate_path_given() {
    assert_eq!(through_facade(1), 2);
    assert_eq!(through_facade(1), 2);
    assert_eq!(through_facade_cache().stats().hits, 1);
    forget_through_facade(1);
    assert_eq!(through_facade_cache().len(), 0);
}
