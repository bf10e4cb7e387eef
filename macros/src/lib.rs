//! The `#[cached]`, `#[cache_put]` and `#[cache_evict]` attributes of
//! [memokit](https://docs.rs/memokit). Depend on `memokit` and use them as `memokit::cached`,
//! `memokit::cache_put` and `memokit::cache_evict`; this crate only holds the macros.

mod ast;
mod attr;
mod crate_path;
mod duration;
mod errors;
mod expand;
mod key;
mod valid;
mod writer;

use proc_macro::TokenStream;

/// Memoizes a function: its body runs only on a miss, once per key even under concurrency, and
/// its results are kept in a cache you can inspect and clear.
///
/// ```
/// use memokit::cached;
///
/// #[cached]                                    // unbounded, default policy (W-TinyLFU), coalesced
/// fn fib(n: u64) -> u64 {
///     if n < 2 { n } else { fib(n - 1) + fib(n - 2) }
/// }
///
/// assert_eq!(fib(80), 23_416_728_348_467_685);
/// println!("{}", fib_cache().stats()); // hits=78 misses=81 hit_ratio=49.1% size=81/unbounded ...
/// ```
///
/// # What is generated
/// - The function keeps its signature, visibility, attributes and docs; an `async fn` stays
///   `async`. Its body becomes the computation that runs on a miss.
/// - A handle accessor next to it, with the same visibility: for `fn load_user`,
///   `fn load_user_cache() -> &'static memokit::Memo<K, V>` (for a method, an associated
///   function: `Repo::get_cache()`). [`Memo`](../memokit/struct.Memo.html) has `stats()`,
///   `clear()`, `invalidate(&key)`, `insert(key, value)`, `invalidate_many(keys)`,
///   `insert_many(entries)`, `get(&key)` (peek), `len()`, `name()`.
/// - For a free function whose key is its arguments (no `key = …`, no `#[skip]`, not `unsafe`, no
///   `&'static` argument), the accessor
///   returns a [`LoadingMemo`](../memokit/struct.LoadingMemo.html) instead: a `Memo` (it
///   derefs to one) that can call the function for a key, with `warm(keys)` (`.await`ed for
///   an `async fn`) to fill the cache ahead of the first callers. On any other handle `warm` is
///   a compile error saying why. For an `async fn`, a hidden unit struct
///   `__memokit_load_<function>` is generated too, for the handle's type to name.
/// - The function is listed in `memokit::registry()` from its first call (or first use of its
///   handle), under its name (`module::path::function`, or `module::path::Type::method`).
/// - A generic function (`fn parse<T: FromStr + Clone + Send + Sync + 'static>(s: &str)`) has
///   one cache per instantiation, each listed on its own (`module::path::parse::<i32>`), and a
///   generic accessor (`parse_cache::<i32>()`); writers name the instantiation
///   (`#[cache_evict(parse::<i32>, all)]`). Its type parameters must be `'static`, and those in
///   the key or the value need what keys and values need (`Hash + Eq + Clone + Send + Sync`,
///   `Clone + Send + Sync`). Finding the instantiation's cache costs a lock-free scan of a short
///   list per call. No `warm` (a loader would have to name the instantiation), no
///   `instance`, no const generic parameters.
///
/// # The key
/// By default the key is the arguments, stored owned: one argument is the key itself, several
/// make a tuple. References are stored as their owned form: `&str` → `String`, `&[T]` →
/// `Vec<T>`, `&T` → `T` (via `ToOwned`). Arguments must be `Hash + Eq + Clone + Send + Sync`.
///
/// ```
/// #[memokit::cached]
/// fn greet(name: &str, excited: bool) -> String {
///     format!("hello {name}{}", if excited { "!" } else { "" })
/// }
/// greet("ann", true);
/// assert_eq!(greet_cache().get(&("ann".to_string(), true)).as_deref(), Some("hello ann!"));
/// ```
///
/// `key = <expr>` chooses the key. Made only of argument names (`key = id`,
/// `key = (id, region)`), its type is read from the signature; any other expression (it may
/// use `self`) is evaluated as written and needs `key_type = <type>`:
///
/// ```
/// struct Repo { tenant: u32 }
///
/// impl Repo {
///     #[memokit::cached(size = 100, key = (id, self.tenant), key_type = (u64, u32))]
///     fn get(&self, id: u64, _trace_id: u128) -> String {
///         format!("row {id} of tenant {}", self.tenant)
///     }
/// }
///
/// let repo = Repo { tenant: 7 };
/// assert_eq!(repo.get(1, 100), "row 1 of tenant 7");
/// assert_eq!(repo.get(1, 200), "row 1 of tenant 7"); // same key: cached
/// assert_eq!(Repo::get_cache().stats().hits, 1);
/// ```
///
/// On a method too, a key made of argument names needs no `key_type` (`key = id`); only a key
/// that is any other expression (`self.tenant`, `id % 16`) does.
///
/// `#[skip]` on an argument leaves it out of the key without writing `key = …`: a connection,
/// a logger, a request id. The key is the other arguments (one is the key itself, several a
/// tuple, none `()`: every argument skipped caches one value). A skipped argument need not be
/// `Hash`, `Clone` or `'static`. On a method, `#[skip]` also stands for `key = …`: the key is
/// the arguments not marked (`self` is never in it).
///
/// ```
/// struct Db { url: &'static str }
///
/// #[memokit::cached]
/// fn user(id: u64, #[skip] db: &Db) -> String {
///     format!("user {id} from {}", db.url)
/// }
///
/// let (primary, replica) = (Db { url: "primary" }, Db { url: "replica" });
/// assert_eq!(user(1, &primary), "user 1 from primary");
/// assert_eq!(user(1, &replica), "user 1 from primary"); // key 1: cached
/// let _: &memokit::Memo<u64, String> = user_cache();
///
/// struct Repo { tenant: u32 }
///
/// impl Repo {
///     #[memokit::cached]                       // key: `id`
///     fn get(&self, id: u64, #[skip] db: &Db) -> String {
///         format!("row {id} of tenant {} from {}", self.tenant, db.url)
///     }
/// }
/// assert_eq!(Repo { tenant: 7 }.get(1, &primary), "row 1 of tenant 7 from primary");
/// ```
///
/// `#[skip]` beside `key = …` is an error (both say what the key is), and so is `#[skip]` on
/// `self`, which is never part of the key. A handle whose function skips an argument has no
/// `warm`: a key cannot be turned back into the arguments.
///
/// # Options
/// - `size = N`: at most `N` entries, at least 1 (absent: unbounded). A literal is checked by the
///   macro (`size = 0`, `1.5` or `"1000"` is an error there). A constant or a constant
///   expression (`size = CAPACITY`, `1 << 20`, `Self::MAX`) of any integer type is checked by
///   the compiler: another type is an error, and a value below 1 fails the build (`cargo
///   build`; `cargo check` does not evaluate it). Any other expression, such as a function
///   call, is evaluated when the cache is built, unchecked.
///
///   ```compile_fail,E0080
///   const CAPACITY: usize = 0;
///
///   #[memokit::cached(size = CAPACITY)] // `size` must be at least 1: …
///   fn square(n: u64) -> u64 { n * n }
///   ```
/// - `weight = path::to_fn` with `size`: `size` is the total weight and
///   `fn(&Key, &Value) -> u32` weighs each entry (deref coercion applies: for a `Vec<u8>` value
///   it may take `&[u8]`).
/// - `ttl = …`, `tti = …`: time to live (since written) and time to idle (since last read), as
///   integer seconds (`ttl = 30`) or a duration string: `"250ms"`, `"30s"`, `"5m"`, `"1h30m"`,
///   `"2d"`.
/// - `refresh = …` (a duration as for `ttl`, shorter than `ttl` if there is one): refresh-ahead. A
///   result older than `refresh` is still returned by every call, and one call recomputes it:
///   an `async` function whose arguments are all owned does so on a tokio task (feature
///   `tokio` of memokit, inside a runtime; its future must then be `Send`), so every caller
///   gets the old value at once; otherwise the first caller past `refresh` runs the body and
///   gets the new value while the others keep getting the old one. One refresh per key at a
///   time; a failed one keeps the old value until `ttl` and is tried again a quarter of
///   `ttl − refresh` later. Without `ttl`, results never expire and are recomputed every
///   `refresh` (a failure is tried again a quarter of `refresh` later). With `redis`, a
///   refresh recomputes and writes through. Counted in `refreshes` and `refresh_failures` (see
///   `CacheBuilder::refresh_after`).
/// - `stale_if_error = …` (a duration as for `ttl`), with `ttl`, for a function returning
///   `Result`: when recomputing an expired result returns `Err`, the call returns the expired
///   value instead, as long as it expired no longer than this ago (RFC 5861's
///   `stale-if-error`). Callers waiting on that computation get it too; nothing is stored, so
///   the next call computes again. Expired results are kept that long (within `size`), never
///   returned as hits. Counted in `stale_served` (see `CacheBuilder::stale_if_error`).
///
///   ```
///   #[derive(Debug, Clone, PartialEq)]
///   struct Down;
///   static FAILING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
///
///   #[memokit::cached(ttl = "20ms", stale_if_error = "1h")]
///   fn rate(currency: &str) -> Result<f64, Down> {
///       if FAILING.load(std::sync::atomic::Ordering::Relaxed) { Err(Down) } else { Ok(1.08) }
///   }
///
///   assert_eq!(rate("EUR"), Ok(1.08));
///   std::thread::sleep(std::time::Duration::from_millis(50)); // expired
///   FAILING.store(true, std::sync::atomic::Ordering::Relaxed);
///   assert_eq!(rate("EUR"), Ok(1.08)); // the expired value, not `Err(Down)`
///   assert_eq!(rate_cache().stats().stale_served, 1);
///   ```
/// - `jitter = 0.1` or `jitter = "30s"` with `ttl`: each result lives `ttl` ± 10 % (or ± 30 s),
///   drawn at random, so that results computed together do not expire together.
/// - `policy = lru | lfu | fifo | s3fifo | s3fifo_tinylfu | w_tinylfu`: eviction policy (default
///   `w_tinylfu`).
/// - `key = <expr>`, `key_type = <type>`, and `#[skip]` on an argument: see above.
/// - `cache_errors = true`: for a function returning `Result`, also cache `Err` (the error must
///   be `Clone`). By default only `Ok` values are cached.
/// - `cache_none = false`: for a function returning `Option`, do not cache `None` (cached by
///   default).
/// - `coalesce = false`: concurrent callers of one missing key each run the body (by default
///   they share one run).
/// - `name = "…"`: the registry name.
/// - `seed = 42`: fixed hashing keys drawn from this `u64` instead of random ones, so that
///   replaying one sequence of calls gives the same hits, evictions and entries on every run
///   (see `CacheBuilder::seed`; for reproducible figures, not for keys from untrusted input). A
///   literal is checked by the macro (`seed = "42"`, `1.5` or `-1` is an error there); any other
///   expression (`seed = SEED`) must be a `u64`, and is evaluated when the cache is built.
///
///   ```
///   #[memokit::cached(size = 1_000, seed = 42)]
///   fn square(n: u64) -> u64 { n * n }
///
///   assert_eq!(square(7), 49);
///   ```
/// - `crate = "path"` (also on `#[cache_put]` and `#[cache_evict]`): where the generated code
///   finds memokit when it is not a dependency named `memokit`: a renamed dependency
///   (`crate = "mk"`) or a facade crate's re-export.
///
///   ```
///   mod platform {
///       pub use memokit as cache;
///   }
///
///   #[memokit::cached(crate = "platform::cache")]
///   fn cube(n: u64) -> u64 { n * n * n }
///
///   assert_eq!(cube(2), 8);
///   ```
/// - `redis` or `redis(ttl = "10m", lease = "5s", codec = json)` (feature `redis` of memokit):
///   also keep results in Redis, shared by every process connected to it (see
///   `memokit::redis`). `ttl` is how long Redis keeps an entry (default: the local `ttl`, or
///   one hour); `lease` how long another process waits for a computing process that died
///   before it computes the key itself (default: the connection's, 5 s; a live holder extends
///   it while it computes); `codec` how values are written: `postcard` (compact, LZ4-compressed
///   above 1 KiB; the connection's default, itself postcard unless configured) or `json` (a
///   JSON document that other languages read, see `memokit::redis::Codec`). The key and value
///   types must be `serde::Serialize + serde::de::DeserializeOwned`. Values are stored in clear
///   in Redis: leave the option off for results that must not leave the process.
/// - `disk` or `disk = "path/cache.redb"` (feature `disk` of memokit): also keep results in a
///   file on the machine, so that a restarted process serves them without computing (see
///   `memokit::disk`); entries expire with the local `ttl`. The key and value types must be
///   `serde::Serialize + serde::de::DeserializeOwned`. With `redis(...)` too, the file sits
///   in front of Redis (in-process → file → Redis → computation). Not with `instance`.
///
/// ```
/// #[derive(Debug, Clone, PartialEq)]
/// struct DbError(String);
///
/// #[memokit::cached(size = 10_000, ttl = "5m", policy = lru)]
/// fn load_user(id: u64) -> Result<String, DbError> {
///     if id == 0 { Err(DbError("no user 0".into())) } else { Ok(format!("user {id}")) }
/// }
///
/// assert!(load_user(0).is_err());
/// assert_eq!(load_user(1), Ok("user 1".to_string()));
/// assert_eq!(load_user_cache().len(), 1); // the error was not cached
///
/// #[memokit::cached(ttl = "10m", refresh = "8m", jitter = 0.1)]
/// fn exchange_rate(currency: &str) -> f64 {
///     if currency == "EUR" { 1.08 } else { 1.0 }
/// }
/// assert_eq!(exchange_rate("EUR"), 1.08);
///
/// #[memokit::cached(size = 1_000, ttl = 30, tti = "10s", policy = lfu, cache_none = false)]
/// async fn fetch_price(symbol: &str) -> Option<u64> {
///     (symbol == "ACME").then_some(42)
/// }
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// assert_eq!(fetch_price("ACME").await, Some(42));
/// assert_eq!(fetch_price("NOPE").await, None);
/// assert_eq!(fetch_price_cache().len(), 1); // None was not cached
/// # });
///
/// fn weigh(_key: &u32, value: &[u8]) -> u32 { value.len() as u32 }
///
/// #[memokit::cached(size = 1 << 20, weight = weigh, name = "blobs", coalesce = false)]
/// fn blob(id: u32) -> Vec<u8> { vec![0; id as usize] }
///
/// blob(1000);
/// assert_eq!(blob_cache().cache().weighted_size(), 1000);
/// assert_eq!(blob_cache().name(), "blobs");
/// ```
///
/// # Warm-up
/// ```
/// #[memokit::cached(size = 10_000)]
/// fn load_user(id: u64) -> Result<String, String> {
///     if id == 0 { Err("no user 0".into()) } else { Ok(format!("user {id}")) }
/// }
///
/// let report = load_user_cache().warm(0..100); // on up to `available_parallelism` threads
/// assert_eq!((report.loaded, report.failed, report.already_cached), (99, 1, 0));
/// let again = load_user_cache().warm_with_parallelism(0..100, 8);
/// assert_eq!(again.already_cached, 99);
/// ```
///
/// ```no_run
/// #[memokit::cached(size = 10_000, ttl = "1m", redis(ttl = "10m"))]
/// fn render(page: u32) -> String {
///     format!("<h1>page {page}</h1>") // once per page across every process
/// }
///
/// // Written as JSON, for a service in another language that reads the same entries.
/// #[memokit::cached(redis(ttl = "10m", codec = json))]
/// fn title(page: u32) -> String {
///     format!("Page {page}")
/// }
///
/// memokit::redis::connect("redis://127.0.0.1:6379").unwrap(); // or MEMOKIT_REDIS_URL
/// assert_eq!(render(1), "<h1>page 1</h1>");
/// assert_eq!(title(1), "Page 1");
/// render_cache().invalidate(&1); // here, in Redis and in the other processes
/// ```
///
/// # Errors and concurrency
/// With coalescing (the default), concurrent callers of one missing key wait for the first
/// one's run. If it returns `Err` and the error type is `Clone + Send + Sync`, every waiter gets
/// a clone of that error; else if it is `From<memokit::LoadFailed> + Display` (`anyhow::Error`,
/// `Box<dyn Error + Send + Sync>`), a `LoadFailed` with the leader's message; otherwise one
/// waiter runs the body again, and if that fails too the others run it each, all at once. A
/// panic or a cancelled future hands the run over to one waiter. Errors are never cached unless
/// `cache_errors`.
///
/// # What it refuses
/// Each is a compile error at the offending tokens saying what to do instead: unknown or
/// repeated options, a `size` that is not a whole number of at least 1, bad (zero or
/// negative) durations or policies, `jitter` or `stale_if_error` without `ttl`, `refresh` or `jitter`
/// not shorter than `ttl`, a `jitter` fraction outside (0, 1), unknown or bad `redis(...)` options (and
/// `redis` without the `redis` feature of memokit), a method without `key` or `#[skip]`,
/// `#[skip]` beside `key` or on `self`, `impl Trait` or
/// `&mut` arguments, `&mut self`, const generic parameters, `instance` on a generic method,
/// `const fn`, `extern` functions, return
/// types that borrow (`&str`, `Cow<'a, _>`) or name `Self`, no return value, `cache_errors`
/// / `cache_none` on a function that does not return `Result` / `Option`, and `stale_if_error`
/// on one that does not return `Result` or beside `cache_errors = true`. Associated functions
/// without `self` and functions in trait impls are not supported: cache a free function and
/// call it from there.
///
/// # Caveats
/// - A method in a generic `impl<T>` has one cache for every `T` (a `static` cannot depend on
///   `T`): put what distinguishes the instances into `key`, or do not cache there.
/// - `Result` and `Option` are recognised by the last segment of the written return type
///   (`Result<T, E>`, `io::Result<T>`, `Option<T>`); an alias with another name is cached whole,
///   errors included.
/// - A computation that calls its own function with the same key panics with a message
///   instead of deadlocking, sync or `async`; except an `async` call made on another task
///   (`tokio::spawn`) that the computation awaits, which cannot be detected and waits forever.
#[proc_macro_attribute]
pub fn cached(args: TokenStream, item: TokenStream) -> TokenStream {
    expand::cached(args.into(), item.into()).into()
}

/// Write-through: after the function succeeds, the value it returns replaces the entry of a
/// `#[cached]` function, so the next read is a hit with the new value.
///
/// ```
/// use memokit::{cache_put, cached};
///
/// #[derive(Clone, Debug, PartialEq)]
/// struct User { id: u64, name: String }
///
/// #[cached(size = 10_000, ttl = "10m")]
/// fn load_user(id: u64) -> Result<User, String> {
///     Ok(User { id, name: "from the database".into() }) // the database read
/// }
///
/// #[cache_put(load_user, key = user.id)]
/// fn save_user(user: User) -> Result<User, String> {
///     Ok(user) // the database write
/// }
///
/// save_user(User { id: 1, name: "ann".into() }).unwrap();
/// assert_eq!(load_user(1).unwrap().name, "ann"); // a hit: the written value
/// assert_eq!(load_user_cache().stats().misses, 0);
/// ```
///
/// - The first argument is the target, by path: `load_user`, `crate::users::load_user`, or
///   `Self::get` / `Repo::get` for a method; its handle accessor (`load_user_cache()`) is
///   called.
/// - `key = <expr>`: the key of the entry, an expression over the writer's arguments (and
///   `self`). It is evaluated before the body runs, so the body may consume the arguments:
///   argument names are copied as in `#[cached]`'s `key` (`&str` → `String`), any other
///   expression is `to_owned()` (`user.id`, `user.email`). A writer with exactly one argument
///   may leave `key` out: that argument is the key.
/// - What is stored is read as `#[cached]` reads a return value: the `Ok` value of a `Result`
///   (an `Err` changes nothing), an `Option` whole (a `None` the target does not cache, with
///   `cache_none = false`, invalidates the entry instead), anything else whole. It must have
///   the type the target caches.
/// - Works on `async fn` and methods; several writer attributes may be stacked on one function
///   and apply their changes in the order written. With the target's Redis tier, the value
///   reaches Redis and the other processes as with `load_user_cache().insert(..)`.
///
/// The writer reaches the target's cache through a hidden item that `#[cached]` defines next to
/// the handle accessor, so a target that is not a `#[cached]` function in scope (a typo, a
/// function without `#[cached]`, the wrong module) is one error at the path: "cannot find
/// function `__memokit_cached_load_user`" (for a method, "no associated item named
/// `__memokit_cached_get`"). Its help may offer another `#[cached]` function's hidden name: write
/// that function's own name instead. A key or value of the wrong type is an error naming the
/// writer. A writer cannot also be
/// `#[cached]`: a cached call would skip its write.
#[proc_macro_attribute]
pub fn cache_put(args: TokenStream, item: TokenStream) -> TokenStream {
    writer::writer(writer::Kind::Put, args.into(), item.into()).into()
}

/// Write-around: after the function succeeds, the entry of a `#[cached]` function (or all its
/// entries) is invalidated, so the next read computes it again.
///
/// ```
/// use memokit::{cache_evict, cached};
///
/// #[cached]
/// fn load_name(id: u64) -> Result<String, String> {
///     Ok(format!("user {id}"))
/// }
///
/// #[cache_evict(load_name, key = id)]
/// fn rename(id: u64, name: &str) -> Result<(), String> {
///     if name.is_empty() { return Err("empty name".into()) } // fails: nothing is evicted
///     Ok(()) // the database write
/// }
///
/// #[cache_evict(load_name, all)]
/// fn reimport() -> usize { 42 }
///
/// load_name(1).unwrap();
/// assert!(rename(1, "").is_err());
/// assert_eq!(load_name_cache().len(), 1);
/// rename(1, "ann").unwrap();
/// assert_eq!(load_name_cache().len(), 0);
/// load_name(2).unwrap();
/// reimport();
/// assert!(load_name_cache().is_empty());
/// ```
///
/// - The target and `key = <expr>` are as in [`macro@cache_put`] (evaluated before the body;
///   optional for a writer with one argument). `all` instead of `key` clears the whole cache.
/// - By default the entry is evicted after the writer succeeds: it returns `Ok`, or any value
///   when its return type is not a `Result`. `before = true` evicts before the body runs too,
///   whatever it returns (for writers that may fail half-way), and again after a success, so
///   that a value read from the old source by a concurrent caller meanwhile is not kept.
/// - Works on `async fn` and methods; several writer attributes may be stacked on one function
///   and apply their changes in the order written. With the target's Redis tier, the eviction
///   reaches Redis and the other processes as with `invalidate` / `clear` on the handle.
///
/// ```
/// # use memokit::{cache_evict, cached};
/// struct Repo;
///
/// impl Repo {
///     #[cached(key = id)]
///     fn get(&self, id: u64) -> String { format!("row {id}") }
///
///     #[cache_evict(Self::get, key = id, before = true)]
///     async fn delete(&self, id: u64) -> Result<(), String> {
///         Err("the connection dropped half-way".into())
///     }
/// }
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// Repo.get(7);
/// assert!(Repo.delete(7).await.is_err());
/// assert_eq!(Repo::get_cache().len(), 0); // evicted before the body ran
/// # });
/// ```
#[proc_macro_attribute]
pub fn cache_evict(args: TokenStream, item: TokenStream) -> TokenStream {
    writer::writer(writer::Kind::Evict, args.into(), item.into()).into()
}
