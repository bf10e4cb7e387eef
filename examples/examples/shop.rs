//! A small catalogue service with the four caching patterns: product reads through
//! `#[cached]` (cache-aside), profile saves through `#[cache_put]` (write-through), price
//! updates through `#[cache_evict]` (write-around) and page-view counters through a
//! `WriteBehind` buffer (write-behind), over an in-memory "database" that takes 5 ms a query.
//!
//! Run it with `cargo run -p memokit-examples --example shop`.

use memokit::registry;
use memokit_examples::shop::{
    database_queries, product, product_cache, profile, save_profile, stored_page_views,
    update_price, PageViews,
};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Warm the catalogue before the first visitor: 20 products, 8 queries at a time.
    let report = product_cache().warm_with_parallelism(1..=20, 8).await;
    println!("warm-up: {report}");

    // Cache-aside: 1,000 visits to the catalogue, all hits after the warm-up.
    let queries = database_queries();
    for visit in 0..1_000_u64 {
        product(visit % 20 + 1).await?;
    }
    println!(
        "1,000 product reads: {} database queries",
        database_queries() - queries
    );

    // Write-around: a new price reaches the database; the cached product is dropped.
    update_price(7, 1_999).await?;
    println!("product 7 after the price update: {:?}", product(7).await?);

    // Write-through: the saved profile replaces the cached one; the next read is a hit.
    let mut ada = profile(1).await?;
    ada.display_name = "Ada L.".to_string();
    save_profile(ada).await?;
    println!("profile 1 after the save: {:?}", profile(1).await?);
    let mut bad = profile(2).await?;
    bad.email = "not an email".to_string();
    println!("a refused save: {:?}", save_profile(bad).await.unwrap_err());
    println!("profile 2 unchanged: {:?}", profile(2).await?);

    // Write-behind: 5,000 page views, current at once, stored in a few batched queries.
    let views = PageViews::start()?;
    let queries = database_queries();
    for view in 0..5_000_u64 {
        views.record(view % 20 + 1).await?;
    }
    println!(
        "5,000 page views recorded; product 1 shows {} views, the database has {} so far",
        views.current(1),
        stored_page_views(1)
    );
    views.shutdown().await;
    println!(
        "after shutdown the database has {} views of product 1; batched queries that stored them all: {}",
        stored_page_views(1),
        database_queries() - queries
    );
    println!("write-behind: {}", views.stats());

    println!();
    for function in registry().functions() {
        println!("{}: {}", function.name, function.stats);
    }
    Ok(())
}
