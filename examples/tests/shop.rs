//! The shop example's patterns, checked against its database's query count.

use memokit_examples::shop::{
    database_queries, product, product_cache, profile, profile_cache, save_profile,
    stored_page_views, update_price, PageViews, ShopError,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shop_reads_writes_and_counts_through_its_caches() {
    // Cache-aside: one query per product, whatever the number of reads.
    let report = product_cache().warm_with_parallelism(1..=10, 4).await;
    assert_eq!((report.loaded, report.failed), (10, 0));
    let queries = database_queries();
    for read in 0..100_u64 {
        assert_eq!(product(read % 10 + 1).await.unwrap().id, read % 10 + 1);
    }
    assert_eq!(database_queries(), queries, "every read was a hit");

    // Write-around: the update is one query, the next read another (the entry was evicted).
    let before = product(3).await.unwrap();
    update_price(3, before.price_cents + 1).await.unwrap();
    assert_eq!(database_queries(), queries + 1);
    assert_eq!(
        product(3).await.unwrap().price_cents,
        before.price_cents + 1
    );
    assert_eq!(database_queries(), queries + 2);
    // A failed update evicts nothing.
    assert_eq!(update_price(404, 1).await, Err(ShopError::NotFound(404)));
    assert!(product_cache().get(&3).is_some());

    // Write-through: the saved profile is cached without a read.
    let mut changed = profile(4).await.unwrap();
    changed.display_name = "Grace H.".to_string();
    let queries = database_queries();
    save_profile(changed.clone()).await.unwrap();
    assert_eq!(profile_cache().get(&4), Some(changed.clone()));
    assert_eq!(profile(4).await.unwrap(), changed);
    assert_eq!(database_queries(), queries + 1, "the save only");
    // A refused save changes neither the cache nor the database.
    let mut refused = changed.clone();
    refused.email = "nowhere".to_string();
    assert!(save_profile(refused).await.is_err());
    assert_eq!(profile(4).await.unwrap(), changed);
    profile_cache().clear();
    assert_eq!(profile(4).await.unwrap(), changed);

    // Write-behind: every view counted, current at once, stored in few batches.
    let views = PageViews::start().unwrap();
    let queries = database_queries();
    for view in 0..2_000_u64 {
        views.record(100 + view % 10).await.unwrap();
    }
    assert_eq!(views.current(100), 200);
    views.shutdown().await;
    for product_id in 100..110 {
        assert_eq!(stored_page_views(product_id), 200, "product {product_id}");
    }
    let stats = views.stats();
    assert_eq!(stats.queued, 2_000);
    assert_eq!(stats.coalesced + stats.flushed, 2_000, "{stats}");
    let batches = database_queries() - queries;
    assert_eq!(batches, stats.batches);
    assert!(batches < 100, "2,000 views took {batches} queries");
}
