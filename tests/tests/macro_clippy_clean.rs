//! Valid uses of `#[cached]` that must expand to code without warnings: this file is built by
//! `cargo clippy --all-targets -- -D warnings`, so a lint firing on generated code fails CI.
//! The tests only check that each function runs and caches. `trivial_numeric_casts` and
//! `unused_lifetimes` are on too: a cast the macro adds (`size = CAPACITY` of a `u64`) or a
//! lifetime it copies must not fire them.

#![warn(trivial_numeric_casts, unused_lifetimes)]

use std::collections::HashMap;

use memokit::cached;

/// Not `Clone`: errors of this type are retried, not shared.
#[derive(Debug, PartialEq)]
struct NotClone(String);

/// `Clone + Send + Sync`: errors of this type are shared with waiting callers.
#[derive(Debug, Clone, PartialEq)]
struct Shared(String);

#[cached]
fn add(a: u64, b: u64) -> u64 {
    a + b
}

#[cached(size = 10)]
async fn add_skipping(a: u64, #[skip] b: &NotClone, #[skip] _c: u8) -> String {
    format!("{a} {}", b.0)
}

#[cached(size = 100, ttl = "5m", policy = lru)]
fn greet(name: &str, excited: bool) -> String {
    format!("hello {name}{}", if excited { "!" } else { "" })
}

#[cached(size = 10)]
fn parse_retried(text: &str) -> Result<u64, NotClone> {
    text.parse().map_err(|_| NotClone(text.to_string()))
}

#[cached]
fn parse_shared(text: &str) -> Result<u64, Shared> {
    text.parse().map_err(|_| Shared(text.to_string()))
}

#[cached(cache_errors = true)]
fn parse_cached(text: &str) -> Result<u64, Shared> {
    text.parse().map_err(|_| Shared(text.to_string()))
}

#[cached(cache_none = false, tti = 30)]
fn find(haystack: &[u32], needle: u32) -> Option<usize> {
    haystack.iter().position(|&x| x == needle)
}

/// Takes `&[u8]` for a `Vec<u8>` value: the generated closure coerces.
fn weigh(_key: &u32, value: &[u8]) -> u32 {
    u32::try_from(value.len()).unwrap_or(u32::MAX)
}

/// Has exactly the `fn(&Key, &Value) -> u32` signature.
fn weigh_exact(_key: &u32, value: &u64) -> u32 {
    u32::try_from(*value).unwrap_or(u32::MAX)
}

#[cached(size = 1 << 20, weight = weigh, name = "clippy_clean::blob", coalesce = false)]
fn blob(len: u32) -> Vec<u8> {
    vec![0; len as usize]
}

#[cached(size = 64usize, weight = weigh_exact)]
fn widen(n: u32) -> u64 {
    u64::from(n)
}

#[cached(policy = lfu)]
async fn double(n: u64) -> u64 {
    tokio::task::yield_now().await;
    n * 2
}

#[cached]
async fn fetch(id: u64) -> Result<String, NotClone> {
    if id == 0 {
        Err(NotClone("no id 0".into()))
    } else {
        Ok(format!("item {id}"))
    }
}

struct Repo {
    tenant: u32,
}

impl Repo {
    #[cached(size = 100, key = (id, self.tenant), key_type = (u64, u32))]
    fn get(&self, id: u64, _trace_id: u128) -> String {
        format!("row {id} of tenant {}", self.tenant)
    }

    #[cached(key = id)]
    fn label(&self, id: u64) -> String {
        format!("label {id}")
    }

    #[cached]
    fn skipping(&self, id: u64, #[skip] trace: &str) -> String {
        format!("{id} traced as {trace}")
    }

    #[cached(key = (region, id))]
    async fn load(&self, region: &str, id: u64) -> Option<String> {
        (id != 0).then(|| format!("{region}/{id}"))
    }
}

const CAPACITY: u64 = 100;

#[cached(size = CAPACITY)]
fn triple(n: u64) -> u64 {
    n * 3
}

/// A body of one expression: no `unused_braces` in the user's code.
#[cached(batch)]
fn doubles(ids: &[u64]) -> HashMap<u64, u64> {
    ids.iter().map(|&id| (id, id * 2)).collect()
}

/// A `mut` batch argument: the body changes the missing keys, and no `unused_mut` fires.
#[cached(batch)]
fn ranks(mut ids: Vec<u64>) -> HashMap<u64, usize> {
    ids.sort_unstable();
    ids.into_iter()
        .enumerate()
        .map(|(rank, id)| (id, rank))
        .collect()
}

/// Lifetimes the handle accessor has no use for.
#[cached]
fn first_word<'a>(text: &'a str, separator: &'a str) -> String {
    text.split(separator).next().unwrap_or_default().to_string()
}

/// A method in a module without the prelude.
#[no_implicit_prelude]
mod bare {
    pub struct Shop;

    impl Shop {
        #[::memokit::cached(key = id)]
        pub fn price(&self, id: u64) -> u64 {
            id * 5
        }
    }
}

#[test]
fn functions_the_macro_once_expanded_with_warnings_cache() {
    assert_eq!(triple(2), 6);
    assert_eq!(triple_cache().cache().capacity(), Some(CAPACITY));
    assert_eq!(doubles(&[1, 2]), HashMap::from([(1, 2), (2, 4)]));
    assert_eq!(doubles_cache().len(), 2);
    assert_eq!(ranks(vec![9, 3]), HashMap::from([(3, 0), (9, 1)]));
    assert_eq!(ranks_cache().len(), 2);
    assert_eq!(first_word("a b", " "), "a");
    assert_eq!(first_word_cache().len(), 1);
    assert_eq!(bare::Shop.price(2), 10);
    assert_eq!(bare::Shop::price_cache().len(), 1);
}

#[test]
fn sync_functions_cache() {
    assert_eq!(add(1, 2), 3);
    assert_eq!(add(1, 2), 3);
    assert_eq!(add_cache().stats().hits, 1);

    assert_eq!(greet("ann", true), "hello ann!");
    assert_eq!(
        greet_cache().get(&("ann".to_string(), true)).as_deref(),
        Some("hello ann!")
    );

    assert_eq!(parse_retried("x"), Err(NotClone("x".into())));
    assert_eq!(parse_retried("7"), Ok(7));
    assert_eq!(parse_retried_cache().len(), 1);

    assert_eq!(parse_shared("8"), Ok(8));
    assert_eq!(parse_shared("y"), Err(Shared("y".into())));
    assert_eq!(parse_shared_cache().len(), 1);

    assert_eq!(parse_cached("z"), Err(Shared("z".into())));
    assert_eq!(parse_cached_cache().len(), 1);

    assert_eq!(find(&[1, 2, 3], 2), Some(1));
    assert_eq!(find(&[1, 2, 3], 9), None);
    assert_eq!(find_cache().len(), 1);

    assert_eq!(blob(10).len(), 10);
    assert_eq!(blob_cache().name(), "clippy_clean::blob");
    assert_eq!(blob_cache().cache().weighted_size(), 10);
    assert_eq!(widen(4), 4);
    assert_eq!(widen_cache().cache().weighted_size(), 4);

    let repo = Repo { tenant: 7 };
    assert_eq!(repo.get(1, 100), "row 1 of tenant 7");
    assert_eq!(repo.get(1, 200), "row 1 of tenant 7");
    assert_eq!(Repo::get_cache().stats().hits, 1);
    assert_eq!(repo.label(3), "label 3");
    assert_eq!(Repo::label_cache().len(), 1);
    assert_eq!(repo.skipping(4, "a"), "4 traced as a");
    assert_eq!(repo.skipping(4, "b"), "4 traced as a");
    assert_eq!(Repo::skipping_cache().len(), 1);
}

#[tokio::test]
async fn async_functions_cache() {
    assert_eq!(double(21).await, 42);
    assert_eq!(double(21).await, 42);
    assert_eq!(double_cache().stats().hits, 1);

    let b = NotClone("b".into());
    assert_eq!(add_skipping(1, &b, 0).await, "1 b");
    assert_eq!(add_skipping(1, &NotClone("c".into()), 1).await, "1 b");
    assert_eq!(add_skipping_cache().len(), 1);

    assert!(fetch(0).await.is_err());
    assert_eq!(fetch(1).await, Ok("item 1".to_string()));
    assert_eq!(fetch_cache().len(), 1);

    let repo = Repo { tenant: 1 };
    assert_eq!(repo.load("eu", 5).await.as_deref(), Some("eu/5"));
    assert_eq!(repo.load("eu", 0).await, None);
    assert_eq!(Repo::load_cache().len(), 2);
}
