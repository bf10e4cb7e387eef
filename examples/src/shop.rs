//! A small catalogue service over a slow in-memory "database", with the four classic caching
//! patterns declared where the data is read or written:
//!
//! - **cache-aside**: [`product`] and [`profile`] are `#[cached]`: read through the cache;
//! - **write-through**: [`save_profile`] is `#[cache_put(profile, …)]`: the saved profile
//!   replaces the cached one, so the next read is a hit with the new value;
//! - **write-around**: [`update_price`] is `#[cache_evict(product, …)]`: the write goes to the
//!   database only and the cached product is invalidated, so the next read loads the new price;
//! - **write-behind**: [`PageViews`] counts views in a cache at once and sends the counts to the
//!   database in batches through a [`WriteBehind`] buffer.
//!
//! `cargo run -p memokit-examples --example shop` runs a short scenario and prints the stats of
//! each function; `examples/tests/shop.rs` checks what it shows.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{LazyLock, Mutex};
use std::time::Duration;

use memokit::write_behind::WriteError;
use memokit::{cache_evict, cache_put, cached, Cache, WriteBehind};

/// A product of the catalogue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Product {
    /// Its id.
    pub id: u64,
    /// Its name.
    pub name: String,
    /// Its price, in cents.
    pub price_cents: u64,
}

/// A customer's profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile {
    /// The customer's id.
    pub user_id: u64,
    /// The name shown in the shop.
    pub display_name: String,
    /// Where receipts go.
    pub email: String,
}

/// What the database can refuse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShopError {
    /// No row with this id.
    NotFound(u64),
    /// A profile without an `@` in its email.
    InvalidEmail(String),
}

impl std::fmt::Display for ShopError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ShopError::NotFound(id) => write!(f, "no row with id {id}"),
            ShopError::InvalidEmail(email) => write!(f, "not an email address: {email:?}"),
        }
    }
}

impl std::error::Error for ShopError {}

/// Every query waits this long: the database is slow on purpose.
const QUERY_TIME: Duration = Duration::from_millis(5);

/// The source of truth, with a count of the queries it answered.
struct Database {
    products: Mutex<HashMap<u64, Product>>,
    profiles: Mutex<HashMap<u64, Profile>>,
    page_views: Mutex<HashMap<u64, u64>>,
    queries: AtomicU64,
}

static DB: LazyLock<Database> = LazyLock::new(|| Database {
    products: Mutex::new(
        (1..=20)
            .map(|id| {
                let product = Product {
                    id,
                    name: format!("product {id}"),
                    price_cents: 1_000 + id * 50,
                };
                (id, product)
            })
            .collect(),
    ),
    profiles: Mutex::new(
        (1..=5)
            .map(|user_id| {
                let profile = Profile {
                    user_id,
                    display_name: format!("customer {user_id}"),
                    email: format!("customer{user_id}@example.com"),
                };
                (user_id, profile)
            })
            .collect(),
    ),
    page_views: Mutex::new(HashMap::new()),
    queries: AtomicU64::new(0),
});

async fn query() {
    DB.queries.fetch_add(1, Relaxed);
    tokio::time::sleep(QUERY_TIME).await;
}

/// How many queries the database has answered so far.
///
/// ```
/// let before = memokit_examples::shop::database_queries();
/// # let _ = before;
/// ```
pub fn database_queries() -> u64 {
    DB.queries.load(Relaxed)
}

/// The page views the database holds for `product_id` (what the write-behind sink stored).
///
/// ```
/// assert_eq!(memokit_examples::shop::stored_page_views(999), 0);
/// ```
pub fn stored_page_views(product_id: u64) -> u64 {
    DB.page_views
        .lock()
        .unwrap()
        .get(&product_id)
        .copied()
        .unwrap_or(0)
}

/// Cache-aside: a product, from the cache or else from the database.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
/// let product = memokit_examples::shop::product(1).await.unwrap();
/// assert_eq!(product.id, 1);
/// # });
/// ```
#[cached(size = 1_000, ttl = "10m", name = "shop::product")]
pub async fn product(id: u64) -> Result<Product, ShopError> {
    query().await;
    let products = DB.products.lock().unwrap();
    products.get(&id).cloned().ok_or(ShopError::NotFound(id))
}

/// Write-around: the new price goes to the database only; the cached product is invalidated
/// once the update succeeded, so the next [`product`] call loads the new price.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
/// use memokit_examples::shop::{product, update_price};
/// update_price(2, 999).await.unwrap();
/// assert_eq!(product(2).await.unwrap().price_cents, 999);
/// # });
/// ```
#[cache_evict(product, key = id)]
pub async fn update_price(id: u64, price_cents: u64) -> Result<(), ShopError> {
    query().await;
    let mut products = DB.products.lock().unwrap();
    let product = products.get_mut(&id).ok_or(ShopError::NotFound(id))?;
    product.price_cents = price_cents;
    Ok(())
}

/// Cache-aside: a customer's profile.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
/// let profile = memokit_examples::shop::profile(1).await.unwrap();
/// assert_eq!(profile.user_id, 1);
/// # });
/// ```
#[cached(size = 10_000, ttl = "30m", name = "shop::profile")]
pub async fn profile(user_id: u64) -> Result<Profile, ShopError> {
    query().await;
    let profiles = DB.profiles.lock().unwrap();
    profiles
        .get(&user_id)
        .cloned()
        .ok_or(ShopError::NotFound(user_id))
}

/// Write-through: saves a profile and puts the saved value in [`profile`]'s cache. A refused
/// save (`Err`) changes neither the database nor the cache.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
/// use memokit_examples::shop::{profile, save_profile};
/// let mut changed = profile(3).await.unwrap();
/// changed.display_name = "Ada".into();
/// save_profile(changed.clone()).await.unwrap();
/// assert_eq!(profile(3).await.unwrap(), changed); // a hit: no query
/// # });
/// ```
#[cache_put(profile, key = profile.user_id)]
pub async fn save_profile(profile: Profile) -> Result<Profile, ShopError> {
    if !profile.email.contains('@') {
        return Err(ShopError::InvalidEmail(profile.email));
    }
    query().await;
    DB.profiles
        .lock()
        .unwrap()
        .insert(profile.user_id, profile.clone());
    Ok(profile)
}

/// Write-behind: page-view counters, current in a cache at once and stored in the database in
/// batches (one query per batch, however many views it holds).
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
/// use memokit_examples::shop::{stored_page_views, PageViews};
/// let views = PageViews::start().unwrap();
/// views.record(900).await.unwrap();
/// views.record(900).await.unwrap();
/// assert_eq!(views.current(900), 2);
/// views.shutdown().await;
/// assert_eq!(stored_page_views(900), 2);
/// # });
/// ```
#[derive(Debug, Clone)]
pub struct PageViews {
    counts: Cache<u64, u64>,
    buffer: WriteBehind<u64, u64>,
    /// `record` reads a count and writes it back: one at a time, so no view is lost.
    increment: std::sync::Arc<tokio::sync::Mutex<()>>,
}

impl PageViews {
    /// Starts the buffer on the current tokio runtime: batches of up to 100 products, sent at
    /// least every 200 ms.
    ///
    /// # Errors
    /// Outside a tokio runtime (see [`memokit::write_behind::BuildError`]).
    pub fn start() -> Result<Self, memokit::write_behind::BuildError> {
        let counts: Cache<u64, u64> = Cache::new(100_000);
        let buffer = WriteBehind::builder(counts.clone(), |batch: Vec<(u64, u64)>| async move {
            query().await;
            let mut stored = DB.page_views.lock().unwrap();
            for (product_id, views) in batch {
                stored.insert(product_id, views);
            }
            Ok::<(), ShopError>(())
        })
        .batch_size(100)
        .flush_interval(Duration::from_millis(200))
        .max_pending(10_000)
        .build()?;
        Ok(PageViews {
            counts,
            buffer,
            increment: Default::default(),
        })
    }

    /// Counts one view of `product_id`: the cache has the new count at once, the database
    /// with the next batch.
    ///
    /// # Errors
    /// After [`PageViews::shutdown`].
    pub async fn record(&self, product_id: u64) -> Result<(), WriteError<u64, u64>> {
        let _one_at_a_time = self.increment.lock().await;
        let views = match self.counts.get(&product_id) {
            Some(views) => views,
            None => stored_page_views(product_id),
        };
        self.buffer.write(product_id, views + 1).await
    }

    /// The current count of `product_id` (including views not stored yet).
    pub fn current(&self, product_id: u64) -> u64 {
        self.counts
            .get(&product_id)
            .unwrap_or_else(|| stored_page_views(product_id))
    }

    /// The buffer's counters: queued, coalesced, flushed, batches, …
    pub fn stats(&self) -> memokit::write_behind::WriteBehindStats {
        self.buffer.stats()
    }

    /// Stores every count still queued, then stops the buffer.
    pub async fn shutdown(&self) {
        self.buffer.shutdown().await;
    }
}
