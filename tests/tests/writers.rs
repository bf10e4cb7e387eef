//! `#[cache_put]` and `#[cache_evict]`: writers that change the cache of a `#[cached]` function
//! after they succeed (or, with `before = true`, before they run). Each test has its own
//! targets, since tests run in parallel.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};

use memokit::{cache_evict, cache_put, cached};
use memokit_tests::RedisServer;

fn runs(counter: &AtomicUsize) -> usize {
    counter.load(SeqCst)
}

#[derive(Debug, Clone, PartialEq)]
struct User {
    id: u64,
    email: String,
    name: String,
}

fn user(id: u64, name: &str) -> User {
    User {
        id,
        email: format!("{name}@example.com"),
        name: name.to_string(),
    }
}

// --- cache_put ---

static LOAD_USER_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(size = 100)]
fn load_user(id: u64) -> Result<User, String> {
    LOAD_USER_RUNS.fetch_add(1, SeqCst);
    Ok(user(id, "from the database"))
}

/// Fails for an empty name; consumes `user` (the key was taken before).
#[cache_put(load_user, key = user.id)]
fn save_user(user: User) -> Result<User, String> {
    if user.name.is_empty() {
        return Err("a user needs a name".into());
    }
    let saved = user;
    Ok(saved)
}

#[test]
fn put_replaces_the_cached_value_and_the_next_read_is_a_hit() {
    assert_eq!(load_user(1).unwrap().name, "from the database");
    let saved = save_user(user(1, "ann")).unwrap();
    assert_eq!(saved.name, "ann", "the writer's caller gets its value");
    assert_eq!(load_user(1).unwrap().name, "ann");
    assert_eq!(runs(&LOAD_USER_RUNS), 1, "no recomputation");
    assert_eq!(load_user_cache().stats().hits, 1);
    // An entry that was not cached yet is written too.
    save_user(user(2, "bob")).unwrap();
    assert_eq!(load_user(2).unwrap().name, "bob");
    assert_eq!(runs(&LOAD_USER_RUNS), 1);

    // A failed write changes nothing.
    assert!(save_user(user(1, "")).is_err());
    assert_eq!(load_user(1).unwrap().name, "ann");
    assert!(save_user(user(3, "")).is_err());
    assert_eq!(load_user_cache().get(&3), None);
}

static LOAD_BY_EMAIL_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached]
fn load_by_email(email: &str) -> User {
    LOAD_BY_EMAIL_RUNS.fetch_add(1, SeqCst);
    user(0, email)
}

/// The key (a `String` field) is copied before the body consumes `user`.
#[cache_put(load_by_email, key = user.email)]
fn save_by_email(user: User) -> User {
    User {
        name: user.name.to_uppercase(),
        ..user
    }
}

#[test]
fn put_copies_a_key_taken_from_an_argument_the_body_consumes() {
    let written = save_by_email(user(5, "cid"));
    assert_eq!(written.name, "CID");
    assert_eq!(load_by_email("cid@example.com"), written);
    assert_eq!(runs(&LOAD_BY_EMAIL_RUNS), 0);
}

#[cached]
fn price(id: u32) -> u64 {
    u64::from(id) * 100
}

/// One argument and no `key`: the argument is the key.
#[cache_put(price)]
fn discount(id: u32) -> u64 {
    u64::from(id) * 50
}

#[cached]
fn greeting(name: &str, excited: bool) -> String {
    format!("hello {name}{}", if excited { "!" } else { "" })
}

/// A key of argument names is stored owned, as `#[cached]` does: `&str` becomes `String`.
#[cache_put(greeting, key = (name, excited))]
fn set_greeting(name: &str, excited: bool, text: &str) -> String {
    format!("{text} {name}")
}

#[test]
fn put_keys_default_to_the_only_argument_and_own_borrowed_arguments() {
    assert_eq!(price(3), 300);
    assert_eq!(discount(3), 150);
    assert_eq!(price(3), 150);
    assert_eq!(set_greeting("ann", true, "hi"), "hi ann");
    assert_eq!(greeting("ann", true), "hi ann");
    assert_eq!(greeting("ann", false), "hello ann");
}

static NICKNAME_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(cache_none = false)]
fn nickname(id: u64) -> Option<String> {
    NICKNAME_RUNS.fetch_add(1, SeqCst);
    Some(format!("nick {id}"))
}

/// `Option` is stored whole; `None`, which `nickname` does not cache, invalidates.
#[cache_put(nickname, key = id)]
fn set_nickname(id: u64, nick: Option<&str>) -> Option<String> {
    nick.map(str::to_string)
}

#[test]
fn put_of_an_option_stores_it_whole_unless_the_target_does_not_cache_none() {
    set_nickname(1, Some("ace"));
    assert_eq!(nickname(1), Some("ace".into()));
    assert_eq!(runs(&NICKNAME_RUNS), 0);
    assert_eq!(set_nickname(1, None), None);
    assert_eq!(nickname_cache().get(&1), None, "None is not stored");
    assert_eq!(nickname(1), Some("nick 1".into()));
    assert_eq!(runs(&NICKNAME_RUNS), 1);
}

/// A fallible writer's `Ok(None)` follows the target's rule as well: not stored, and the old
/// value goes.
#[cache_put(nickname, key = id)]
fn clear_nickname(id: u64, ok: bool) -> Result<Option<String>, String> {
    ok.then_some(None)
        .ok_or_else(|| "the database said no".to_string())
}

#[test]
fn put_of_an_ok_none_invalidates_a_target_that_does_not_cache_none() {
    set_nickname(2, Some("ace"));
    assert_eq!(clear_nickname(2, false), Err("the database said no".into()));
    assert_eq!(
        nickname_cache().get(&2),
        Some(Some("ace".into())),
        "an Err changes nothing"
    );
    assert_eq!(clear_nickname(2, true), Ok(None));
    assert_eq!(nickname_cache().get(&2), None, "Ok(None) is not stored");
}

#[cached]
fn buffer_len(id: u64) -> usize {
    id as usize
}

/// A sync writer may return a borrow of its `&mut` argument, as it could without the attribute.
#[cache_evict(buffer_len, key = id)]
fn push_and_get(buffer: &mut Vec<u8>, id: u64) -> &mut Vec<u8> {
    buffer.push(1);
    buffer
}

struct Profiles {
    name: String,
}

impl Profiles {
    #[cached(key = id)]
    fn length(&self, id: u64) -> usize {
        self.name.len() + id as usize
    }

    /// And of `&mut self`, through `?` and `return`.
    #[cache_evict(Self::length, key = id)]
    fn name_mut(&mut self, id: u64, ok: bool) -> Result<&mut String, ()> {
        if !ok {
            return Err(());
        }
        Ok(&mut self.name)
    }
}

#[test]
fn sync_writers_may_return_borrows_of_mut_arguments_and_self() {
    buffer_len(3);
    let mut buffer = Vec::new();
    push_and_get(&mut buffer, 3).push(2);
    assert_eq!(buffer, [1, 2]);
    assert!(buffer_len_cache().is_empty());

    let mut profiles = Profiles { name: "ann".into() };
    assert_eq!(profiles.length(1), 4);
    assert!(profiles.name_mut(1, false).is_err());
    assert_eq!(Profiles::length_cache().len(), 1, "an Err changes nothing");
    profiles.name_mut(1, true).unwrap().push('e');
    assert!(Profiles::length_cache().is_empty());
    assert_eq!(profiles.length(1), 5);
}

// --- cache_evict ---

static PROFILE_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached]
fn profile(id: u64) -> Result<String, String> {
    PROFILE_RUNS.fetch_add(1, SeqCst);
    Ok(format!("profile {id}"))
}

#[cache_evict(profile, key = id)]
fn update_profile(id: u64, ok: bool) -> Result<(), String> {
    if ok {
        Ok(())
    } else {
        Err("the database said no".into())
    }
}

#[test]
fn evict_invalidates_the_key_after_success_only() {
    profile(1).unwrap();
    profile(2).unwrap();
    assert!(update_profile(1, false).is_err());
    assert_eq!(profile_cache().len(), 2, "a failed write evicts nothing");
    update_profile(1, true).unwrap();
    assert_eq!(profile_cache().get(&1), None);
    assert!(profile_cache().get(&2).is_some(), "only that key");
    assert_eq!(runs(&PROFILE_RUNS), 2);
    profile(1).unwrap();
    assert_eq!(runs(&PROFILE_RUNS), 3, "the next read computes again");
}

static CATALOG_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached]
fn catalog(page: u32) -> Vec<u32> {
    CATALOG_RUNS.fetch_add(1, SeqCst);
    vec![page; 3]
}

/// Not a `Result`: any return is a success.
#[cache_evict(catalog, all)]
fn reimport_catalog() -> usize {
    7
}

#[cache_evict(catalog, all)]
fn reimport_catalog_checked(ok: bool) -> Result<usize, String> {
    ok.then_some(7)
        .ok_or_else(|| "the import failed".to_string())
}

#[test]
fn evict_all_clears_the_cache_after_success_only() {
    catalog(1);
    catalog(2);
    assert!(reimport_catalog_checked(false).is_err());
    assert_eq!(catalog_cache().len(), 2);
    assert_eq!(reimport_catalog_checked(true), Ok(7));
    assert!(catalog_cache().is_empty());
    catalog(1);
    assert_eq!(reimport_catalog(), 7);
    assert!(catalog_cache().is_empty());
    assert_eq!(runs(&CATALOG_RUNS), 3);
}

static BALANCE_RUNS: AtomicUsize = AtomicUsize::new(0);
static BALANCE_SOURCE: AtomicUsize = AtomicUsize::new(10);

#[cached]
fn balance(account: u32) -> usize {
    BALANCE_RUNS.fetch_add(1, SeqCst);
    BALANCE_SOURCE.load(SeqCst) + account as usize
}

/// Fails half-way (after changing the source) when `fail`; reads the balance in the middle, as
/// a concurrent caller could, before its write lands.
#[cache_evict(balance, key = account, before = true)]
fn transfer(account: u32, fail: bool) -> Result<(), String> {
    let during = balance(account);
    BALANCE_SOURCE.fetch_add(1, SeqCst);
    if fail {
        return Err(format!("failed half-way, read {during}"));
    }
    Ok(())
}

#[test]
fn evict_before_happens_even_when_the_writer_fails_and_again_after_success() {
    assert_eq!(balance(0), 10);
    // Evicted before the body: the body's own read computes again (run 2), then the failure
    // leaves that value in place, but the source was changed half-way.
    assert!(transfer(0, true).is_err());
    assert_eq!(runs(&BALANCE_RUNS), 2, "evicted before the body ran");
    assert_eq!(balance(0), 10, "cached by the read during the writer");
    // On success, the value read during the writer is evicted again.
    transfer(0, false).unwrap();
    assert_eq!(runs(&BALANCE_RUNS), 3);
    assert_eq!(balance_cache().get(&0), None, "evicted after success too");
    assert_eq!(balance(0), 12);
}

// --- async writers ---

static ASYNC_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached]
async fn load_async(id: u64) -> Result<String, String> {
    ASYNC_RUNS.fetch_add(1, SeqCst);
    Ok(format!("stored {id}"))
}

#[cache_put(load_async, key = id)]
async fn save_async(id: u64, text: String) -> Result<String, String> {
    tokio::task::yield_now().await;
    if text.is_empty() {
        return Err("empty".into());
    }
    Ok(text)
}

#[cache_evict(load_async, key = id)]
async fn delete_async(id: u64, ok: bool) -> Result<(), String> {
    tokio::task::yield_now().await;
    ok.then_some(()).ok_or_else(|| "refused".to_string())
}

#[cache_evict(load_async, key = id, before = true)]
async fn delete_async_before(id: u64) -> Result<(), String> {
    tokio::task::yield_now().await;
    Err(format!("failed half-way on {id}"))
}

#[tokio::test]
async fn async_writers_put_and_evict_after_success() {
    assert_eq!(load_async(1).await.unwrap(), "stored 1");
    save_async(1, "new".into()).await.unwrap();
    assert_eq!(load_async(1).await.unwrap(), "new");
    assert!(save_async(1, String::new()).await.is_err());
    assert_eq!(load_async(1).await.unwrap(), "new");
    assert_eq!(runs(&ASYNC_RUNS), 1);

    assert!(delete_async(1, false).await.is_err());
    assert_eq!(load_async_cache().len(), 1);
    delete_async(1, true).await.unwrap();
    assert!(load_async_cache().is_empty());

    load_async(2).await.unwrap();
    assert!(delete_async_before(2).await.is_err());
    assert!(load_async_cache().is_empty(), "evicted before the body");
}

// --- stacking ---

#[cached]
fn stock(item: u32) -> u32 {
    item
}

#[cached]
fn stock_total(warehouse: u32) -> u32 {
    warehouse * 1000
}

/// Written first, applied first: the put, then the clear.
#[cache_put(stock, key = item)]
#[cache_evict(stock, all)]
fn restock_then_clear(item: u32, count: u32) -> u32 {
    count
}

/// The clear, then the put: the new value stays.
#[cache_evict(stock, all)]
#[cache_put(stock, key = item)]
fn clear_then_restock(item: u32, count: u32) -> u32 {
    count
}

/// Two targets, one writer.
#[cache_evict(stock_total, key = warehouse)]
#[cache_put(stock, key = item)]
fn move_stock(item: u32, warehouse: u32, count: u32) -> Result<u32, String> {
    let _ = warehouse;
    Ok(count)
}

#[test]
fn stacked_writers_apply_in_the_order_written() {
    stock(1);
    stock(2);
    assert_eq!(restock_then_clear(1, 50), 50);
    assert!(stock_cache().is_empty(), "the put, then the clear");
    stock(2);
    assert_eq!(clear_then_restock(1, 60), 60);
    assert_eq!(stock_cache().len(), 1, "the clear, then the put");
    assert_eq!(stock_cache().get(&1), Some(60));

    stock_total(9);
    assert_eq!(move_stock(3, 9, 70), Ok(70));
    assert_eq!(stock_cache().get(&3), Some(70));
    assert!(stock_total_cache().is_empty());
}

// --- generic writers, `&mut` arguments ---

#[cached]
fn label(id: u32) -> String {
    format!("label {id}")
}

/// Writers are not cached, so they may be generic and take `&mut`.
#[cache_put(label, key = id)]
fn relabel<T: std::fmt::Display>(id: u32, text: T, log: &mut Vec<String>) -> String {
    log.push(format!("relabel {id}"));
    text.to_string()
}

#[test]
fn writers_may_be_generic_and_take_mut_arguments() {
    let mut log = Vec::new();
    assert_eq!(relabel(1, 42, &mut log), "42");
    assert_eq!(relabel(2, "two", &mut log), "two");
    assert_eq!(log, ["relabel 1", "relabel 2"]);
    assert_eq!(label(1), "42");
    assert_eq!(label(2), "two");
}

// --- targets by path: another module, methods ---

mod inventory {
    use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

    pub static RUNS: AtomicUsize = AtomicUsize::new(0);

    #[memokit::cached]
    pub fn shelf(id: u32) -> String {
        RUNS.fetch_add(1, SeqCst);
        format!("shelf {id}")
    }

    pub struct Repo {
        pub tenant: u32,
    }

    impl Repo {
        #[memokit::cached(key = (id, self.tenant), key_type = (u32, u32))]
        pub fn row(&self, id: u32) -> String {
            format!("row {id} of {}", self.tenant)
        }

        /// A method writing its own type's cache, with a key using `self`.
        #[memokit::cache_put(Self::row, key = (id, self.tenant))]
        pub fn write_row(&self, id: u32, text: &str) -> String {
            text.to_string()
        }
    }
}

#[cache_evict(inventory::shelf, key = id)]
fn empty_shelf(id: u32) {}

#[cache_put(crate::inventory::shelf, key = id)]
fn label_shelf(id: u32, label: &str) -> String {
    label.to_string()
}

#[cache_evict(inventory::Repo::row, key = (id, repo.tenant))]
fn delete_row(repo: &inventory::Repo, id: u32) -> Result<(), String> {
    let _ = (repo, id);
    Ok(())
}

#[test]
fn targets_in_other_modules_and_methods() {
    assert_eq!(inventory::shelf(1), "shelf 1");
    label_shelf(1, "fruit");
    assert_eq!(inventory::shelf(1), "fruit");
    empty_shelf(1);
    assert_eq!(inventory::shelf(1), "shelf 1");
    assert_eq!(inventory::RUNS.load(SeqCst), 2);

    let repo = inventory::Repo { tenant: 4 };
    assert_eq!(repo.row(1), "row 1 of 4");
    assert_eq!(repo.write_row(1, "edited"), "edited");
    assert_eq!(repo.row(1), "edited");
    assert_eq!(
        inventory::Repo::row_cache().get(&(1, 4)).as_deref(),
        Some("edited")
    );
    delete_row(&repo, 1).unwrap();
    assert_eq!(inventory::Repo::row_cache().get(&(1, 4)), None);
    assert_eq!(repo.row(1), "row 1 of 4");
}

// --- the Redis tier ---

static SHARED_RUNS: AtomicUsize = AtomicUsize::new(0);
static SHARED_FAIL: AtomicBool = AtomicBool::new(false);

#[cached(size = 100, redis(ttl = "10m"), name = "w::shared")]
fn shared(id: u32) -> String {
    SHARED_RUNS.fetch_add(1, SeqCst);
    format!("computed {id}")
}

#[cache_put(shared, key = id)]
fn write_shared(id: u32, text: &str) -> Result<String, String> {
    if SHARED_FAIL.load(SeqCst) {
        return Err("refused".into());
    }
    Ok(text.to_string())
}

#[cache_evict(shared, key = id)]
async fn delete_shared(id: u32) -> Result<(), String> {
    let _ = id;
    Ok(())
}

#[test]
fn with_the_redis_tier_writers_replace_and_delete_the_entry_in_redis() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    memokit::redis::connect_with(memokit::redis::Config::new(server.url()).prefix("writers"))
        .expect("a valid URL");
    let mut conn = server.connection();
    let entry = "writers:{w::shared:0:01}";
    assert_eq!(shared(1), "computed 1");
    let computed: Vec<u8> = redis::cmd("GET").arg(entry).query(&mut conn).unwrap();

    write_shared(1, "written").unwrap();
    let written: Vec<u8> = redis::cmd("GET").arg(entry).query(&mut conn).unwrap();
    assert_ne!(written, computed, "the entry in Redis is replaced");
    // Another process (the in-process tier emptied) reads the written value from Redis.
    shared_cache().cache().clear();
    assert_eq!(shared(1), "written");
    assert_eq!(runs(&SHARED_RUNS), 1);
    assert_eq!(shared_cache().stats().l2_hits, 1);

    SHARED_FAIL.store(true, SeqCst);
    assert!(write_shared(1, "refused").is_err());
    let after_failure: Vec<u8> = redis::cmd("GET").arg(entry).query(&mut conn).unwrap();
    assert_eq!(
        after_failure, written,
        "a failed write changes nothing in Redis"
    );

    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(delete_shared(1))
        .unwrap();
    let exists: bool = redis::cmd("EXISTS").arg(entry).query(&mut conn).unwrap();
    assert!(!exists, "the entry is deleted from Redis");
    assert_eq!(shared(1), "computed 1");
    assert_eq!(runs(&SHARED_RUNS), 2);
}

// --- a writer's argument named like its target ---

#[cached(size = 10)]
fn account(id: u64) -> User {
    user(id, "stored")
}

/// The argument `account` shadows the function `account` in the body.
#[cache_put(account, key = account.id)]
fn save_account(account: User) -> User {
    account
}

/// So does `account_cache`, the target's handle accessor.
#[cache_evict(account, key = account_cache)]
fn forget_account(account_cache: u64) {
    let _ = account_cache;
}

#[test]
fn an_argument_named_like_the_target_does_not_hide_it() {
    assert_eq!(account(1).name, "stored");
    save_account(user(1, "renamed"));
    assert_eq!(
        account_cache().get(&1).map(|user| user.name),
        Some("renamed".into())
    );
    forget_account(1);
    assert!(account_cache().get(&1).is_none());
}

#[cached]
fn shelf(id: u64) -> Result<u64, String> {
    Ok(id * 10)
}

/// A writer whose return type reaches the attribute as a `macro_rules!` fragment (`$t:ty`).
macro_rules! failing_writer {
    ($name:ident -> $ret:ty) => {
        #[cache_evict(shelf, key = id)]
        fn $name(id: u64) -> $ret {
            let _ = id;
            Err("write failed".to_string())
        }
    };
}

failing_writer!(delete_shelf -> Result<(), String>);

/// A failing writer written through `macro_rules!` evicts nothing, as one written out: its
/// `Result` is read through the fragment's invisible group (it evicted on `Err` before).
#[test]
fn a_writer_written_by_macro_rules_keeps_the_entry_when_it_fails() {
    assert_eq!(shelf(1), Ok(10));
    assert!(delete_shelf(1).is_err());
    assert_eq!(shelf_cache().len(), 1, "an Err changes nothing");
}
