//! The shared tier's codec against a real `redis-server`: the bytes in Redis are checked with a
//! raw connection and decoded here with postcard, lz4_flex and serde_json, as the documented
//! layout says (README "Shared tier", `memokit::redis` "Values"), not with memokit's own codec.
//! The connection is process-wide, so the tests of this file run one at a time; the
//! two-process test runs this binary again as a child.

use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use memokit::cached;
use memokit::redis::{connect_with, Codec, Config};
use memokit_tests::{role, ChildTest, RedisServer};
use redis::Commands;
use serde::{Deserialize, Serialize};

static SERIAL: Mutex<()> = Mutex::new(());

/// The test's server, connected as the process's tier with `config`'s settings; `None`:
/// skipped.
fn setup(
    prefix: &str,
    config: impl FnOnce(Config) -> Config,
) -> Option<(MutexGuard<'static, ()>, RedisServer)> {
    let guard = SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let server = RedisServer::start()?;
    connect_with(config(Config::new(server.url()).prefix(prefix))).expect("a valid URL");
    Some((guard, server))
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Order {
    id: u64,
    customer: String,
    lines: Vec<Line>,
    note: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Line {
    sku: String,
    quantity: u32,
    cents: u64,
}

/// An order of `lines` lines: structured, with the repetition real records have.
fn order(id: u64, lines: u32) -> Order {
    Order {
        id,
        customer: format!("customer-{id}@example.com"),
        lines: (0..lines)
            .map(|n| Line {
                sku: format!("SKU-{:05}", (n * 7919) % 1000),
                quantity: 1 + n % 5,
                cents: u64::from(n % 97) * 125,
            })
            .collect(),
        note: (id % 2 == 0).then(|| "leave at the door".to_string()),
    }
}

static ORDER_RUNS: AtomicU64 = AtomicU64::new(0);

/// About 6.5 KB of postcard: compressed.
#[cached(redis(ttl = "10m"), name = "codec::orders")]
fn orders(id: u64) -> Order {
    ORDER_RUNS.fetch_add(1, SeqCst);
    order(id, 500)
}

/// A few dozen bytes: below the threshold.
#[cached(redis(ttl = "10m"), name = "codec::small")]
fn small(id: u64) -> Order {
    order(id, 1)
}

static PRICE_RUNS: AtomicU64 = AtomicU64::new(0);

/// About 5 KB of JSON: above the threshold, and not compressed.
#[cached(redis(ttl = "10m", codec = json), name = "codec::prices")]
fn prices(sku: String) -> Order {
    PRICE_RUNS.fetch_add(1, SeqCst);
    order(u64::try_from(sku.len()).unwrap(), 100)
}

/// The documented layout of a binary entry: `[2][layout][fingerprint][payload]`.
fn layout(bytes: &[u8]) -> (u8, u8, [u8; 4], &[u8]) {
    assert!(bytes.len() >= 6, "{bytes:?}");
    (
        bytes[0],
        bytes[1],
        bytes[2..6].try_into().unwrap(),
        &bytes[6..],
    )
}

/// The entry name of a `String` key, as the module docs tell another language to build it:
/// the key's length as a LEB128 varint, then its UTF-8 bytes, in hex.
fn string_key(prefix: &str, function: &str, generation: u64, key: &str) -> String {
    let mut bytes = Vec::new();
    let mut n = key.len();
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        bytes.push(if n > 0 { byte | 0x80 } else { byte });
        if n == 0 {
            break;
        }
    }
    bytes.extend_from_slice(key.as_bytes());
    let hex: String = bytes.iter().map(|byte| format!("{byte:02x}")).collect();
    format!("{prefix}:{{{function}:{generation}:{hex}}}")
}

#[test]
fn a_large_value_is_stored_compressed_and_a_small_one_plain() {
    let Some((_serial, server)) = setup("packed", |config| config) else {
        return;
    };
    let mut conn = server.connection();
    let expected = order(1, 500);
    assert_eq!(orders(1), expected);
    let postcard = postcard::to_stdvec(&expected).unwrap();
    let stored: Vec<u8> = conn.get("packed:{codec::orders:0:01}").unwrap();
    let (version, packed, fingerprint, payload) = layout(&stored);
    assert_eq!((version, packed), (2, 1), "format 2, an LZ4 block");
    assert!(
        stored.len() < postcard.len(),
        "{} bytes stored for {} of postcard",
        stored.len(),
        postcard.len()
    );
    assert_eq!(
        u32::from_le_bytes(payload[..4].try_into().unwrap()) as usize,
        postcard.len(),
        "the block's length comes first"
    );
    assert_eq!(
        lz4_flex::block::decompress_size_prepended(payload).unwrap(),
        postcard,
        "the block holds the postcard bytes"
    );
    eprintln!(
        "a {} byte postcard value is stored in {} bytes",
        postcard.len(),
        stored.len()
    );

    assert_eq!(small(1), order(1, 1));
    let stored: Vec<u8> = conn.get("packed:{codec::small:0:01}").unwrap();
    let (version, plain, _, payload) = layout(&stored);
    assert_eq!((version, plain), (2, 0), "format 2, plain postcard");
    assert_eq!(payload, postcard::to_stdvec(&order(1, 1)).unwrap());
    assert_eq!(
        layout(&stored).2,
        fingerprint,
        "one value type, one fingerprint"
    );

    // Read back from Redis: both decode.
    let before = orders_cache().stats().l2_hits;
    orders_cache().cache().clear();
    small_cache().cache().clear();
    let runs = ORDER_RUNS.load(SeqCst);
    assert_eq!(orders(1), expected);
    assert_eq!(small(1), order(1, 1));
    assert_eq!(ORDER_RUNS.load(SeqCst), runs, "a Redis hit, not computed");
    assert_eq!(orders_cache().stats().l2_hits, before + 1);
    assert_eq!(small_cache().stats().l2_hits, 1);
}

#[test]
fn a_json_function_writes_a_json_document_that_other_languages_read() {
    let Some((_serial, server)) = setup("json", |config| config) else {
        return;
    };
    let mut conn = server.connection();
    let expected = order(3, 100);
    assert_eq!(prices("A-1".into()), expected);
    // The entry's name, built as the docs tell another language to.
    let name = string_key("json", "codec::prices", 0, "A-1");
    assert_eq!(name, "json:{codec::prices:0:03412d31}");
    let stored: Vec<u8> = conn.get(&name).unwrap();
    assert!(stored.len() > 1024, "above the compression threshold");
    let document: serde_json::Value =
        serde_json::from_slice(&stored).expect("the whole entry is one JSON document");
    assert_eq!(document["memokit"], 2);
    let fingerprint = document["fingerprint"].as_str().unwrap();
    assert!(
        fingerprint.len() == 8 && fingerprint.bytes().all(|b| b.is_ascii_hexdigit()),
        "{fingerprint}"
    );
    assert_eq!(document["value"], serde_json::to_value(&expected).unwrap());
    assert_eq!(
        document.as_object().unwrap().len(),
        3,
        "memokit, fingerprint, value"
    );
    let text = String::from_utf8(stored).unwrap();
    assert!(
        text.starts_with(r#"{"memokit":2,"fingerprint":""#),
        "{text}"
    );

    // Read back from Redis by memokit.
    prices_cache().cache().clear();
    let runs = PRICE_RUNS.load(SeqCst);
    assert_eq!(prices("A-1".into()), expected);
    assert_eq!(PRICE_RUNS.load(SeqCst), runs, "a Redis hit, not computed");

    // An entry another language wrote in the same envelope (fields in its own order) is read.
    let mut foreign = order(3, 1);
    foreign.customer = "written by another service".into();
    let written = format!(
        r#"{{"value":{},"fingerprint":"{fingerprint}","memokit":2}}"#,
        serde_json::to_string(&foreign).unwrap()
    );
    let () = conn
        .set(string_key("json", "codec::prices", 0, "B-2"), written)
        .unwrap();
    assert_eq!(prices("B-2".into()), foreign);
    assert_eq!(PRICE_RUNS.load(SeqCst), runs, "read, not computed");
}

#[test]
fn codec_child_role() {
    let Some(role) = role() else { return };
    assert_eq!(role, "read");
    let url = std::env::var("MEMOKIT_TEST_URL").expect("set by the parent");
    connect_with(Config::new(url).prefix("shared")).unwrap();
    assert_eq!(orders(2), order(2, 500));
    assert_eq!(prices("C-3".into()), order(3, 100));
    let hits = orders_cache().stats().l2_hits + prices_cache().stats().l2_hits;
    println!("RUNS {}", ORDER_RUNS.load(SeqCst) + PRICE_RUNS.load(SeqCst));
    println!("HITS {hits}");
}

#[test]
fn another_process_reads_both_codecs() {
    if role().is_some() {
        return;
    }
    let Some((_serial, server)) = setup("shared", |config| config) else {
        return;
    };
    assert_eq!(orders(2), order(2, 500));
    assert_eq!(prices("C-3".into()), order(3, 100));
    let child = ChildTest::spawn(
        "codec_child_role",
        "read",
        &[("MEMOKIT_TEST_URL", server.url())],
    );
    assert_eq!(
        child.expect_line("RUNS", Duration::from_secs(30)),
        "0",
        "nothing computed there"
    );
    assert_eq!(child.expect_line("HITS", Duration::from_secs(5)), "2");
    child.success();
}

#[test]
fn an_entry_of_the_previous_format_is_a_counted_miss_and_is_overwritten() {
    let Some((_serial, server)) = setup("old", |config| config) else {
        return;
    };
    let mut conn = server.connection();
    let entry = "old:{codec::orders:0:03}";
    assert_eq!(orders(3), order(3, 500));
    let current: Vec<u8> = conn.get(entry).unwrap();
    // What memokit wrote before format 2: `[1][fingerprint][postcard]`, no layout byte.
    let mut old = vec![1];
    old.extend_from_slice(&current[2..6]);
    old.extend_from_slice(&postcard::to_stdvec(&order(3, 500)).unwrap());
    let () = conn.set(entry, &old).unwrap();
    orders_cache().cache().clear();
    let (runs, decode_errors) = (
        ORDER_RUNS.load(SeqCst),
        orders_cache().stats().l2_decode_errors,
    );
    assert_eq!(orders(3), order(3, 500), "never an error");
    assert_eq!(ORDER_RUNS.load(SeqCst), runs + 1, "a miss: computed");
    assert_eq!(
        orders_cache().stats().l2_decode_errors,
        decode_errors + 1,
        "counted"
    );
    let rewritten: Vec<u8> = conn.get(entry).unwrap();
    assert_eq!(rewritten[..2], [2, 1], "overwritten in the current format");
    orders_cache().cache().clear();
    assert_eq!(orders(3), order(3, 500));
    assert_eq!(ORDER_RUNS.load(SeqCst), runs + 1, "then read");
}

/// A function that names no codec: the connection's default decides.
#[cached(redis(ttl = "10m"), name = "codec::defaulted")]
fn defaulted(id: u64) -> Order {
    order(id, 500)
}

#[test]
fn the_connection_sets_the_default_codec_and_the_threshold() {
    let Some((_serial, server)) = setup("defaults", |config| {
        config.codec(Codec::Json).compress_above(usize::MAX)
    }) else {
        return;
    };
    let mut conn = server.connection();
    defaulted(1);
    let stored: Vec<u8> = conn.get("defaults:{codec::defaulted:0:01}").unwrap();
    assert_eq!(stored[0], b'{', "the connection's codec: JSON");

    connect_with(
        Config::new(server.url())
            .prefix("defaults")
            .compress_above(usize::MAX),
    )
    .unwrap();
    defaulted(2);
    let stored: Vec<u8> = conn.get("defaults:{codec::defaulted:0:02}").unwrap();
    assert_eq!(stored[..2], [2, 0], "postcard, never compressed");
    assert_eq!(
        stored[6..],
        postcard::to_stdvec(&order(2, 500)).unwrap(),
        "{} bytes",
        stored.len()
    );
    prices("D-4".into());
    let stored: Vec<u8> = conn
        .get(string_key("defaults", "codec::prices", 0, "D-4"))
        .unwrap();
    assert_eq!(stored[0], b'{', "the function's own codec wins");
    // Entries of either codec are read whatever the default.
    defaulted_cache().cache().clear();
    let hits = defaulted_cache().stats().l2_hits;
    assert_eq!(defaulted(1), order(1, 500));
    assert_eq!(defaulted(2), order(2, 500));
    assert_eq!(defaulted_cache().stats().l2_hits, hits + 2);
}

/// A value whose `Serialize` fails.
#[derive(Clone, Debug, PartialEq, Deserialize)]
struct Unwritable(u64);

impl Serialize for Unwritable {
    fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
        Err(serde::ser::Error::custom("this value cannot be written"))
    }
}

#[cached(redis(ttl = "10m"), name = "codec::unwritable")]
fn unwritable(n: u64) -> Unwritable {
    Unwritable(n)
}

/// A value that does not encode is answered, not written, and counted among the tier's errors,
/// as the disk tier counts it (it was only a miss).
#[test]
fn a_value_that_does_not_encode_is_answered_and_counted_as_an_error() {
    let Some((_serial, server)) = setup("unwritable", |config| config) else {
        return;
    };
    assert_eq!(unwritable(3), Unwritable(3));
    let stats = unwritable_cache().stats();
    assert_eq!((stats.l2_misses, stats.l2_errors), (1, 1));
    let mut conn = server.connection();
    let keys: Vec<String> = conn.keys("unwritable:{*}").unwrap();
    assert!(keys.is_empty(), "nothing written: {keys:?}");
}
