//! The disk tier (`#[cached(disk)]`, feature `disk`): results survive a restart, expiry and
//! the byte bound hold across it, writes reach the file, a changed type is a counted miss, a
//! `kill -9` in the middle of writes leaves whole entries only, a second process and bad files
//! are clear errors at open.
//!
//! A restart is a child process (`ChildTest`) running one role of a test of this binary, on a
//! file the parent names in `MEMOKIT_TEST_DISK`; the in-process tests share the parent's
//! default file, each function under its own name.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::OnceLock;
use std::time::Duration;

use memokit::disk::{Config, Error};
use memokit::{cache_evict, cache_put, cached};
use memokit_tests::{role, run_folder, ChildTest};
use tempfile::TempDir;

/// A fresh folder for one test's files, removed with them when the test ends, passed or not
/// (every run left some 50 MB in the system's temporary folder before).
fn folder(test: &str) -> TempDir {
    tempfile::Builder::new()
        .prefix(&format!("memokit-disk-{test}-"))
        .tempdir()
        .unwrap()
}

/// In a child: opens the file the parent named, with `max_bytes` if given.
fn open_child_file() {
    let path = std::env::var("MEMOKIT_TEST_DISK").expect("the parent names the file");
    let mut config = Config::new(path).flush_every(Duration::from_millis(10));
    if let Ok(max) = std::env::var("MEMOKIT_TEST_MAX_BYTES") {
        config = config.max_bytes(max.parse().unwrap());
    }
    memokit::disk::open(config).expect("the file opens");
}

/// In the parent: the default file of the in-process tests.
fn open_parent_file() {
    // Open for the whole process: the one folder a run leaves (under 1 MB), removed by a later
    // run (see `run_folder`).
    static OPEN: OnceLock<()> = OnceLock::new();
    OPEN.get_or_init(|| {
        let dir = run_folder("memokit-disk-parent-");
        memokit::disk::open(Config::new(dir.join("default.redb"))).unwrap();
    });
}

fn run(test: &str, role: &str, path: &Path, extra: &[(&str, String)]) -> ChildTest {
    let mut env = vec![("MEMOKIT_TEST_DISK", path.display().to_string())];
    env.extend(extra.iter().cloned());
    ChildTest::spawn(test, role, &env)
}

fn number(line: String) -> u64 {
    line.parse().unwrap()
}

// --- restart ---

static SLOW_RUNS: AtomicU64 = AtomicU64::new(0);

#[cached(disk, name = "disk_tier::slow")]
fn slow(n: u64) -> String {
    SLOW_RUNS.fetch_add(1, SeqCst);
    format!("value of {n}")
}

#[test]
fn a_restarted_process_serves_its_first_calls_from_the_file() {
    const TEST: &str = "a_restarted_process_serves_its_first_calls_from_the_file";
    match role().as_deref() {
        Some(run @ ("first" | "second")) => {
            open_child_file();
            for n in 0..50 {
                assert_eq!(slow(n), format!("value of {n}"));
            }
            let stats = slow_cache().stats();
            println!("RUNS {}", SLOW_RUNS.load(SeqCst));
            println!("DISK_HITS {}", stats.disk_hits);
            if run == "first" {
                memokit::disk::flush().unwrap();
            }
            return;
        }
        Some(_) => return,
        None => {}
    }
    let dir = folder("restart");
    let path = dir.path().join("cache.redb");
    let first = run(TEST, "first", &path, &[]);
    assert_eq!(number(first.expect_line("RUNS", secs(30))), 50);
    assert_eq!(number(first.expect_line("DISK_HITS", secs(5))), 0);
    first.success();
    let second = run(TEST, "second", &path, &[]);
    assert_eq!(
        number(second.expect_line("RUNS", secs(30))),
        0,
        "a restarted process computes nothing the file holds"
    );
    assert_eq!(number(second.expect_line("DISK_HITS", secs(5))), 50);
    second.success();
}

// --- expiry across a restart ---

static SHORT_RUNS: AtomicU64 = AtomicU64::new(0);
static LONG_RUNS: AtomicU64 = AtomicU64::new(0);

#[cached(ttl = "1s", disk, name = "disk_tier::short")]
fn short_lived(n: u64) -> u64 {
    SHORT_RUNS.fetch_add(1, SeqCst);
    n + 1
}

#[cached(ttl = "1h", disk, name = "disk_tier::long")]
fn long_lived(n: u64) -> u64 {
    LONG_RUNS.fetch_add(1, SeqCst);
    n + 2
}

#[test]
fn a_ttl_is_kept_across_a_restart_and_an_expired_entry_is_never_served() {
    const TEST: &str = "a_ttl_is_kept_across_a_restart_and_an_expired_entry_is_never_served";
    if let Some(role) = role() {
        if role == "ttl" {
            open_child_file();
            for n in 0..10 {
                assert_eq!(short_lived(n), n + 1);
                assert_eq!(long_lived(n), n + 2);
            }
            println!("SHORT {}", SHORT_RUNS.load(SeqCst));
            println!("LONG {}", LONG_RUNS.load(SeqCst));
            memokit::disk::flush().unwrap();
        }
        return;
    }
    let dir = folder("ttl");
    let path = dir.path().join("cache.redb");
    let first = run(TEST, "ttl", &path, &[]);
    assert_eq!(number(first.expect_line("SHORT", secs(30))), 10);
    assert_eq!(number(first.expect_line("LONG", secs(5))), 10);
    first.success();
    std::thread::sleep(Duration::from_millis(1_300));
    let second = run(TEST, "ttl", &path, &[]);
    assert_eq!(
        number(second.expect_line("SHORT", secs(30))),
        10,
        "entries past their ttl are computed again after a restart"
    );
    assert_eq!(number(second.expect_line("LONG", secs(5))), 0);
    second.success();
}

static READ_BACK_RUNS: AtomicU64 = AtomicU64::new(0);

#[cached(ttl = "3s", disk, name = "disk_tier::read_back")]
fn read_back(n: u64) -> u64 {
    READ_BACK_RUNS.fetch_add(1, SeqCst);
    n
}

/// A value read back from the file lives in the process only what it had left: its ttl counts
/// from when it was computed.
#[test]
fn a_value_read_from_the_file_expires_when_it_would_have() {
    if role().is_some() {
        return;
    }
    open_parent_file();
    assert_eq!(read_back(1), 1);
    std::thread::sleep(Duration::from_millis(1_500));
    // Forget it in the process alone: the next call reads the file, with 1.5 s left.
    read_back_cache().cache().invalidate(&1);
    assert_eq!(read_back(1), 1);
    assert_eq!(READ_BACK_RUNS.load(SeqCst), 1, "read from the file");
    std::thread::sleep(Duration::from_millis(2_000));
    assert_eq!(read_back(1), 1);
    assert_eq!(
        READ_BACK_RUNS.load(SeqCst),
        2,
        "3.5 s after it was computed, with a ttl of 3 s: computed again"
    );
}

#[cached(disk, name = "disk_tier::twin")]
fn twin_square(n: u64) -> u64 {
    n * n
}

#[cached(disk, name = "disk_tier::twin")]
fn twin_cube(n: u64) -> u64 {
    n * n * n
}

static READ_BACK_BATCH_RUNS: AtomicU64 = AtomicU64::new(0);

#[cached(batch, ttl = "3s", disk, name = "disk_tier::read_back_batch")]
fn read_back_batch(ids: &[u64]) -> std::collections::HashMap<u64, u64> {
    READ_BACK_BATCH_RUNS.fetch_add(ids.len() as u64, SeqCst);
    ids.iter().map(|&id| (id, id)).collect()
}

/// The same for a batch function, which reads the file for all its missing keys at once.
#[test]
fn a_batch_value_read_from_the_file_expires_when_it_would_have() {
    if role().is_some() {
        return;
    }
    open_parent_file();
    assert_eq!(read_back_batch(&[1, 2]).len(), 2);
    std::thread::sleep(Duration::from_millis(1_500));
    read_back_batch_cache().cache().clear();
    assert_eq!(read_back_batch(&[1, 2]).len(), 2);
    assert_eq!(READ_BACK_BATCH_RUNS.load(SeqCst), 2, "read from the file");
    std::thread::sleep(Duration::from_millis(2_000));
    assert_eq!(read_back_batch(&[1, 2]).len(), 2);
    assert_eq!(
        READ_BACK_BATCH_RUNS.load(SeqCst),
        4,
        "3.5 s after they were computed, with a ttl of 3 s: computed again"
    );
}

/// Two functions of one name on one file would read each other's entries: the second to
/// start stays in the process (its calls counted in `disk_errors`), and each returns its own.
#[test]
fn a_second_function_of_one_name_does_not_share_the_file() {
    if role().is_some() {
        return;
    }
    open_parent_file();
    assert_eq!(twin_square(3), 9);
    assert_eq!(twin_cube(3), 27);
    twin_square_cache().cache().clear();
    twin_cube_cache().cache().clear();
    assert_eq!(twin_square(3), 9);
    assert_eq!(twin_cube(3), 27);
    let (square, cube) = (twin_square_cache().stats(), twin_cube_cache().stats());
    assert_eq!((square.disk_hits, square.disk_errors), (1, 0), "{square}");
    assert_eq!(cube.disk_hits, 0, "{cube}");
    assert!(cube.disk_errors > 0, "{cube}");
}

static SOURCE_RUNS: AtomicU64 = AtomicU64::new(0);

#[cached(disk, name = "disk_tier::source_row")]
fn source_row(n: u64) -> u64 {
    SOURCE_RUNS.fetch_add(1, SeqCst);
    n
}

#[cache_put(source_row, key = n)]
fn write_source_row(n: u64, value: u64) -> u64 {
    value
}

/// An `invalidate` or an `insert` (`#[cache_put]`) is on disk when it returns: a process that
/// ends right after it, without `flush`, does not bring the old value back at its restart.
#[test]
fn a_write_is_kept_by_a_restart_without_flush() {
    const TEST: &str = "a_write_is_kept_by_a_restart_without_flush";
    match role().as_deref() {
        Some("fill") => {
            open_child_file();
            assert_eq!(source_row(1), 1);
            assert_eq!(source_row(2), 2);
            memokit::disk::flush().unwrap();
            return;
        }
        Some("write") => {
            open_child_file();
            source_row_cache().invalidate(&1);
            write_source_row(2, 20);
            // Ends at once, no flush.
            return;
        }
        Some("read") => {
            open_child_file();
            println!("VALUES {} {}", source_row(1), source_row(2));
            println!("RUNS {}", SOURCE_RUNS.load(SeqCst));
            return;
        }
        Some(_) => return,
        None => {}
    }
    let dir = folder("durable-writes");
    let path = dir.path().join("cache.redb");
    run(TEST, "fill", &path, &[]).success();
    run(TEST, "write", &path, &[]).success();
    let reader = run(TEST, "read", &path, &[]);
    assert_eq!(reader.expect_line("VALUES", secs(30)), "1 20");
    assert_eq!(
        number(reader.expect_line("RUNS", secs(5))),
        1,
        "key 1 computed again (its invalidation kept), key 2 read as written"
    );
    reader.success();
}

// --- expired entries are swept ---

/// What a file holds, read with redb itself once no process has it open.
#[derive(Debug, PartialEq)]
struct Contents {
    entries: u64,
    /// Rows of the eviction order and of the expiry index.
    order: u64,
    expiry: u64,
    /// The entries' bytes as the file counts them, and as they are.
    counted_bytes: u64,
    actual_bytes: u64,
    format: u64,
}

fn contents(path: &Path) -> Contents {
    use redb::{ReadableTable, ReadableTableMetadata, TableDefinition};
    let db = redb::Database::open(path).unwrap();
    let tx = db.begin_read().unwrap();
    let entries = tx
        .open_table(TableDefinition::<&[u8], &[u8]>::new("entries"))
        .unwrap();
    let order = tx
        .open_table(TableDefinition::<u64, &[u8]>::new("order"))
        .unwrap();
    let expiry = tx
        .open_table(TableDefinition::<(u64, u64), &[u8]>::new("expiry"))
        .unwrap();
    let meta = tx
        .open_table(TableDefinition::<&str, u64>::new("meta"))
        .unwrap();
    let actual_bytes = entries
        .iter()
        .unwrap()
        .map(|item| {
            let (key, value) = item.unwrap();
            (key.value().len() + value.value().len()) as u64
        })
        .sum();
    let read = |name: &str| meta.get(name).unwrap().map_or(0, |v| v.value());
    Contents {
        entries: entries.len().unwrap(),
        order: order.len().unwrap(),
        expiry: expiry.len().unwrap(),
        counted_bytes: read("bytes"),
        actual_bytes,
        format: read("format"),
    }
}

#[cached(ttl = "2s", disk, name = "disk_tier::swept")]
fn swept(n: u64) -> String {
    format!("{n:0>100}")
}

#[cached(disk, name = "disk_tier::kept")]
fn kept(n: u64) -> u64 {
    n
}

#[test]
fn expired_entries_are_swept_while_running_and_at_open() {
    const TEST: &str = "expired_entries_are_swept_while_running_and_at_open";
    match role().as_deref() {
        Some(role @ ("write-and-stay" | "write-and-exit")) => {
            open_child_file();
            for n in 0..200 {
                swept(n);
            }
            for n in 0..5 {
                kept(n);
            }
            if role == "write-and-stay" {
                // Well past the deadline: the file's thread sweeps meanwhile, unasked.
                std::thread::sleep(Duration::from_millis(2_500));
            }
            memokit::disk::flush().unwrap();
            println!("DONE");
            return;
        }
        Some("open-only") => {
            open_child_file();
            std::thread::sleep(Duration::from_millis(300));
            memokit::disk::flush().unwrap();
            println!("DONE");
            return;
        }
        Some(_) => return,
        None => {}
    }
    let dir = folder("swept");
    let swept_and_kept = |contents: &Contents| {
        assert_eq!(
            contents.entries, 5,
            "only the entries without a ttl: {contents:?}"
        );
        assert_eq!((contents.order, contents.expiry), (5, 0), "{contents:?}");
        assert_eq!(
            contents.counted_bytes, contents.actual_bytes,
            "{contents:?}"
        );
        assert_eq!(contents.format, memokit::disk::FORMAT);
    };

    // While the process runs.
    let running = dir.path().join("running.redb");
    let child = run(TEST, "write-and-stay", &running, &[]);
    child.expect_line("DONE", secs(30));
    child.success();
    swept_and_kept(&contents(&running));

    // A process that exits before the deadline leaves its entries; the next one sweeps them
    // at open, without a call.
    let at_open = dir.path().join("at_open.redb");
    let child = run(TEST, "write-and-exit", &at_open, &[]);
    child.expect_line("DONE", secs(30));
    child.success();
    let before = contents(&at_open);
    assert_eq!((before.entries, before.expiry), (205, 200), "{before:?}");
    std::thread::sleep(Duration::from_millis(2_200));
    let child = run(TEST, "open-only", &at_open, &[]);
    child.expect_line("DONE", secs(30));
    child.success();
    swept_and_kept(&contents(&at_open));
}

#[cached(ttl = "200ms", disk, name = "disk_tier::churn")]
fn churn(n: u64) -> String {
    format!("{n:0>400}")
}

#[test]
fn a_file_written_with_short_lived_entries_stops_growing() {
    const TEST: &str = "a_file_written_with_short_lived_entries_stops_growing";
    const ROUNDS: u64 = 12;
    if let Some(role) = role() {
        if role == "churn" {
            open_child_file();
            let path = std::env::var("MEMOKIT_TEST_DISK").unwrap();
            let mut sizes = Vec::new();
            for round in 0..ROUNDS {
                // New keys every round: nothing is ever read again, all of it expires.
                for n in 0..1_000 {
                    churn(round * 1_000 + n);
                }
                std::thread::sleep(Duration::from_millis(400));
                memokit::disk::flush().unwrap();
                sizes.push(std::fs::metadata(&path).unwrap().len());
            }
            println!("SIZES {sizes:?}");
            println!("FIRST {}", sizes[1]);
            println!("LAST {}", sizes[ROUNDS as usize - 1]);
        }
        return;
    }
    let dir = folder("churn");
    let path = dir.path().join("cache.redb");
    let child = run(TEST, "churn", &path, &[]);
    let sizes = child.expect_line("SIZES", secs(60));
    let first = number(child.expect_line("FIRST", secs(5)));
    let last = number(child.expect_line("LAST", secs(5)));
    child.success();
    // 12,000 entries of about 450 bytes were written, 5.4 MB, 450 KB a round: without the sweep
    // the file holds them all (13 MB after 8 rounds). redb grows its file by regions, about
    // doubling it, and pages freed by the sweep are reused only after a durable commit, so on a
    // loaded machine one late sweep can cost one doubling; dead entries kept would cost more.
    eprintln!("file sizes after each round: {sizes}");
    assert!(
        last <= 2 * first,
        "the file grew from {first} to {last} bytes with dead entries: {sizes}"
    );
    assert_eq!(contents(&path).entries, 0);
}

#[test]
fn a_file_of_format_1_gets_its_expiry_index_at_open() {
    const TEST: &str = "a_file_of_format_1_gets_its_expiry_index_at_open";
    if let Some(role) = role() {
        if role == "open-only" {
            open_child_file();
            std::thread::sleep(Duration::from_millis(300));
            memokit::disk::flush().unwrap();
            println!("DONE");
        }
        return;
    }
    use redb::TableDefinition;
    let dir = folder("format1");
    let path = dir.path().join("cache.redb");
    {
        // Format 1: entries, order and meta, no expiry index; one entry past its deadline, one
        // without a deadline.
        let db = redb::Database::create(&path).unwrap();
        let tx = db.begin_write().unwrap();
        {
            let mut entries = tx
                .open_table(TableDefinition::<&[u8], &[u8]>::new("entries"))
                .unwrap();
            let mut order = tx
                .open_table(TableDefinition::<u64, &[u8]>::new("order"))
                .unwrap();
            let mut meta = tx
                .open_table(TableDefinition::<&str, u64>::new("meta"))
                .unwrap();
            let mut bytes = 0;
            for (seq, deadline) in [(0_u64, 1_u64), (1, 0)] {
                let key = [b"k".as_slice(), &seq.to_le_bytes()].concat();
                let entry = [deadline.to_le_bytes(), seq.to_le_bytes(), [9; 8]].concat();
                entries.insert(key.as_slice(), entry.as_slice()).unwrap();
                order.insert(seq, key.as_slice()).unwrap();
                bytes += (key.len() + entry.len()) as u64;
            }
            meta.insert("format", 1).unwrap();
            meta.insert("bytes", bytes).unwrap();
            meta.insert("seq", 2).unwrap();
        }
        tx.commit().unwrap();
    }
    let child = run(TEST, "open-only", &path, &[]);
    child.expect_line("DONE", secs(30));
    child.success();
    let after = contents(&path);
    assert_eq!(after.format, memokit::disk::FORMAT);
    assert_eq!(
        (after.entries, after.order, after.expiry),
        (1, 1, 0),
        "{after:?}"
    );
    assert_eq!(after.counted_bytes, after.actual_bytes, "{after:?}");
}

// --- byte bound ---

#[cached(disk, name = "disk_tier::bounded")]
fn bounded(n: u64) -> String {
    format!("{n:0>100}")
}

#[test]
fn past_the_byte_bound_the_oldest_entries_are_evicted() {
    const TEST: &str = "past_the_byte_bound_the_oldest_entries_are_evicted";
    if let Some(role) = role() {
        if role == "bound" {
            open_child_file();
            for n in 0..200 {
                bounded(n);
            }
            let memo = bounded_cache();
            println!("EVICTIONS {}", memo.stats().disk_evictions);
            memo.cache().clear(); // the in-process copies only
            bounded(0);
            bounded(199);
            let stats = memo.stats();
            println!("HITS {}", stats.disk_hits);
            println!("MISSES {}", stats.disk_misses);
        }
        return;
    }
    let dir = folder("bound");
    let path = dir.path().join("cache.redb");
    // About 150 bytes an entry: 4 KB keeps the last 25 or so.
    let child = run(
        TEST,
        "bound",
        &path,
        &[("MEMOKIT_TEST_MAX_BYTES", "4000".into())],
    );
    let evictions = number(child.expect_line("EVICTIONS", secs(30)));
    assert!(evictions >= 150, "evicted {evictions} of 200");
    assert_eq!(
        number(child.expect_line("HITS", secs(5))),
        1,
        "the newest entry stays"
    );
    assert_eq!(
        number(child.expect_line("MISSES", secs(5))),
        200 + 1,
        "the oldest is gone"
    );
    child.success();
}

// --- writes reach the file ---

static WRITTEN_RUNS: AtomicU64 = AtomicU64::new(0);

#[cached(disk, name = "disk_tier::written")]
fn written(n: u64) -> u64 {
    WRITTEN_RUNS.fetch_add(1, SeqCst);
    n * 10
}

#[cache_put(written, key = n)]
fn save_written(n: u64, value: u64) -> u64 {
    value
}

#[cache_evict(written, key = n)]
fn forget_written(n: u64) {}

#[test]
fn invalidate_insert_clear_and_the_writers_apply_to_the_file() {
    open_parent_file();
    let memo = written_cache();
    let local_copies_gone = || memo.cache().clear();
    assert_eq!((written(1), written(2), written(3)), (10, 20, 30));
    assert_eq!(WRITTEN_RUNS.load(SeqCst), 3);

    local_copies_gone();
    assert_eq!(written(2), 20, "from the file");
    assert_eq!(WRITTEN_RUNS.load(SeqCst), 3);
    assert_eq!(memo.stats().disk_hits, 1);

    memo.invalidate(&1);
    memo.insert(2, 99);
    save_written(4, 44);
    forget_written(3);
    local_copies_gone();
    assert_eq!(written(2), 99, "insert wrote the file");
    assert_eq!(written(4), 44, "#[cache_put] wrote the file");
    assert_eq!(WRITTEN_RUNS.load(SeqCst), 3);
    assert_eq!(written(1), 10, "invalidate removed it from the file");
    assert_eq!(written(3), 30, "#[cache_evict] removed it from the file");
    assert_eq!(WRITTEN_RUNS.load(SeqCst), 5);

    memo.clear();
    assert_eq!(written(2), 20, "clear emptied the file");
    assert_eq!(WRITTEN_RUNS.load(SeqCst), 6);
}

// --- another type under the same name ---

#[cached(disk, name = "disk_tier::typed")]
fn typed_as_number(n: u64) -> u64 {
    n
}

static TYPED_RUNS: AtomicU64 = AtomicU64::new(0);

#[cached(disk, name = "disk_tier::typed")]
fn typed_as_text(n: u64) -> String {
    TYPED_RUNS.fetch_add(1, SeqCst);
    n.to_string()
}

#[test]
fn a_value_of_another_type_is_a_counted_miss_and_is_overwritten() {
    const TEST: &str = "a_value_of_another_type_is_a_counted_miss_and_is_overwritten";
    match role().as_deref() {
        Some("number") => {
            open_child_file();
            assert_eq!(typed_as_number(7), 7);
            memokit::disk::flush().unwrap();
            return;
        }
        Some("text") => {
            open_child_file();
            assert_eq!(typed_as_text(7), "7", "not an error: computed");
            let memo = typed_as_text_cache();
            memo.cache().clear();
            assert_eq!(typed_as_text(7), "7", "the new value was written");
            let stats = memo.stats();
            println!("RUNS {}", TYPED_RUNS.load(SeqCst));
            println!("DECODE {}", stats.disk_decode_errors);
            println!("HITS {}", stats.disk_hits);
            return;
        }
        Some(_) => return,
        None => {}
    }
    let dir = folder("typed");
    let path = dir.path().join("cache.redb");
    run(TEST, "number", &path, &[]).success();
    let text = run(TEST, "text", &path, &[]);
    assert_eq!(number(text.expect_line("RUNS", secs(30))), 1);
    assert_eq!(number(text.expect_line("DECODE", secs(5))), 1);
    assert_eq!(number(text.expect_line("HITS", secs(5))), 1);
    text.success();
}

#[cached(disk, name = "disk_tier::typed_key")]
fn user_by_u32(id: u32) -> String {
    format!("user #{id}")
}

#[cached(disk, name = "disk_tier::typed_key")]
fn user_by_i64(id: i64) -> String {
    format!("user #{id}")
}

/// The key type is part of an entry's fingerprint: `5_i64` is stored as the same bytes as
/// `10_u32` (postcard's zigzag), and must not read that key's value.
#[test]
fn a_key_of_another_type_does_not_read_another_keys_value() {
    const TEST: &str = "a_key_of_another_type_does_not_read_another_keys_value";
    match role().as_deref() {
        Some("u32") => {
            open_child_file();
            assert_eq!(user_by_u32(10), "user #10");
            memokit::disk::flush().unwrap();
            return;
        }
        Some("i64") => {
            open_child_file();
            assert_eq!(user_by_i64(5), "user #5");
            println!("DECODE {}", user_by_i64_cache().stats().disk_decode_errors);
            return;
        }
        Some(_) => return,
        None => {}
    }
    let dir = folder("typed-key");
    let path = dir.path().join("cache.redb");
    run(TEST, "u32", &path, &[]).success();
    let reader = run(TEST, "i64", &path, &[]);
    assert_eq!(number(reader.expect_line("DECODE", secs(30))), 1);
    reader.success();
}

// --- compression ---

/// A report of 2,000 lines: 40 KB of postcard, with the repetition of real text.
fn report(n: u64) -> Vec<String> {
    (0..2_000)
        .map(|line| format!("report {n}, line {}: total {}", line % 50, line % 7))
        .collect()
}

#[cached(disk, name = "disk_tier::large")]
fn large(n: u64) -> Vec<String> {
    report(n)
}

#[test]
fn a_large_value_is_stored_compressed_in_the_file() {
    const TEST: &str = "a_large_value_is_stored_compressed_in_the_file";
    match role().as_deref() {
        Some("write") => {
            open_child_file();
            assert_eq!(large(1), report(1));
            memokit::disk::flush().unwrap();
            return;
        }
        Some("read") => {
            open_child_file();
            assert_eq!(large(1), report(1));
            println!("HITS {}", large_cache().stats().disk_hits);
            return;
        }
        Some(_) => return,
        None => {}
    }
    let dir = folder("large");
    let path = dir.path().join("cache.redb");
    run(TEST, "write", &path, &[]).success();
    {
        // The file's one entry: the store's 16-byte header (deadline, sequence), then the
        // codec's `[2][1: LZ4][fingerprint][length][block]`.
        let db = redb::Database::open(&path).unwrap();
        let read = db.begin_read().unwrap();
        let table = read
            .open_table(redb::TableDefinition::<&[u8], &[u8]>::new("entries"))
            .unwrap();
        let values: Vec<Vec<u8>> = redb::ReadableTable::iter(&table)
            .unwrap()
            .map(|entry| entry.unwrap().1.value().to_vec())
            .collect();
        assert_eq!(values.len(), 1);
        let stored = &values[0][16..];
        assert_eq!(stored[..2], [2, 1], "format 2, an LZ4 block");
        let postcard = postcard::to_stdvec(&report(1)).unwrap();
        assert_eq!(
            lz4_flex::block::decompress_size_prepended(&stored[6..]).unwrap(),
            postcard
        );
        assert!(
            stored.len() * 4 < postcard.len(),
            "{} bytes in the file for {} of postcard",
            stored.len(),
            postcard.len()
        );
    }
    let read = run(TEST, "read", &path, &[]);
    assert_eq!(number(read.expect_line("HITS", secs(30))), 1, "read back");
    read.success();
}

// --- kill -9 in the middle of writes ---

/// A value whose every byte depends on its key, so that a torn or mixed entry shows.
fn expected(n: u64) -> Vec<u64> {
    (0..64)
        .map(|i| n.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ i)
        .collect()
}

#[cached(disk, name = "disk_tier::killed")]
fn killed(n: u64) -> Vec<u64> {
    expected(n)
}

#[test]
fn after_kill_9_during_writes_the_file_opens_and_serves_whole_entries_only() {
    const TEST: &str = "after_kill_9_during_writes_the_file_opens_and_serves_whole_entries_only";
    match role().as_deref() {
        Some("write") => {
            open_child_file();
            let start: u64 = std::env::var("MEMOKIT_TEST_START")
                .unwrap()
                .parse()
                .unwrap();
            println!("WRITING");
            for n in start.. {
                killed(n);
                if n % 97 == 0 {
                    killed_cache().invalidate(&(n / 2));
                }
            }
            return;
        }
        Some("check") => {
            open_child_file();
            let end: u64 = std::env::var("MEMOKIT_TEST_START")
                .unwrap()
                .parse()
                .unwrap();
            for n in 0..end {
                // A hit is checked against the value computed afresh.
                assert_eq!(killed(n), expected(n), "entry {n}");
            }
            println!("HITS {}", killed_cache().stats().disk_hits);
            println!("ERRORS {}", killed_cache().stats().disk_errors);
            return;
        }
        Some(_) => return,
        None => {}
    }
    let dir = folder("kill");
    let path = dir.path().join("cache.redb");
    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
    let mut start = 0;
    let mut hits = 0;
    for _ in 0..20 {
        let writer = run(
            TEST,
            "write",
            &path,
            &[("MEMOKIT_TEST_START", start.to_string())],
        );
        writer.expect_line("WRITING", secs(30));
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        std::thread::sleep(Duration::from_millis(20 + seed % 200));
        drop(writer); // SIGKILL, then waited for
        start += 500;
        let check = run(
            TEST,
            "check",
            &path,
            &[("MEMOKIT_TEST_START", start.to_string())],
        );
        hits += number(check.expect_line("HITS", secs(60)));
        assert_eq!(number(check.expect_line("ERRORS", secs(5))), 0);
        check.success();
    }
    assert!(hits > 0, "some entries were durable before a kill");
}

// --- a second process ---

#[test]
fn a_second_process_gets_an_error_naming_the_file_and_the_first() {
    const TEST: &str = "a_second_process_gets_an_error_naming_the_file_and_the_first";
    if let Some(role) = role() {
        if role == "holder" {
            open_child_file();
            println!("PID {}", std::process::id());
            std::thread::sleep(Duration::from_secs(30));
        }
        return;
    }
    let dir = folder("second");
    let path = dir.path().join("cache.redb");
    let holder = run(TEST, "holder", &path, &[]);
    let pid: u32 = holder.expect_line("PID", secs(30)).parse().unwrap();
    let err = memokit::disk::open(Config::new(&path)).unwrap_err();
    match &err {
        Error::Locked {
            path: locked,
            pid: other,
        } => {
            assert_eq!(locked, &path);
            assert_eq!(*other, Some(pid));
        }
        other => panic!("expected Locked, got {other:?}"),
    }
    let message = err.to_string();
    assert!(message.contains(&path.display().to_string()), "{message}");
    assert!(message.contains(&format!("pid {pid}")), "{message}");
    drop(holder);
    // Once the first process is gone, the file opens.
    memokit::disk::open(Config::new(&path)).unwrap();
}

/// The pid file only names the holder in the message of a second process: one that cannot be
/// written (here a folder stands in its place, as a read-only folder or another user's stale
/// pid file would refuse it) does not keep the file from opening (it failed the open before).
#[test]
fn a_pid_file_that_cannot_be_written_does_not_keep_the_file_from_opening() {
    let dir = folder("pid");
    let path = dir.path().join("cache.redb");
    std::fs::create_dir_all(dir.path().join("cache.redb.pid")).unwrap();
    memokit::disk::open(Config::new(&path)).expect("the file opens");
}

// --- a full disk ---

static FULL_RUNS: AtomicU64 = AtomicU64::new(0);

#[cached(disk, name = "disk_tier::full")]
fn filling(n: u64) -> String {
    FULL_RUNS.fetch_add(1, SeqCst);
    noise(n)
}

/// 8,000 hex digits that LZ4 cannot shrink (the codec compresses values above 1 KiB), so that
/// 2,000 of them fill 16 MB of file.
fn noise(n: u64) -> String {
    let mut state = n.wrapping_add(0x9e37_79b9_7f4a_7c15);
    (0..500)
        .map(|_| {
            state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            format!("{:016x}", z ^ (z >> 31))
        })
        .collect()
}

#[test]
fn a_full_disk_is_an_error_at_open_or_counted_failed_writes_and_every_call_gets_its_value() {
    const TEST: &str =
        "a_full_disk_is_an_error_at_open_or_counted_failed_writes_and_every_call_gets_its_value";
    if let Some(role) = role() {
        if role == "full" {
            let path = std::env::var("MEMOKIT_TEST_DISK").unwrap();
            let config = Config::new(path).flush_every(Duration::from_millis(10));
            match memokit::disk::open(config) {
                Ok(()) => println!("OPENED"),
                Err(e) => println!("OPEN_ERROR {e}"),
            }
            for n in 0..2_000 {
                assert_eq!(filling(n), noise(n));
            }
            let memo = filling_cache();
            memo.cache().clear();
            for n in 0..2_000 {
                assert_eq!(filling(n), noise(n), "after the file failed");
            }
            // The flusher may fail too: nothing panics.
            let _ = memokit::disk::flush();
            let stats = memo.stats();
            println!("RUNS {}", FULL_RUNS.load(SeqCst));
            println!("WRITE_ERRORS {}", stats.disk_write_errors);
            println!("ERRORS {}", stats.disk_errors);
            println!("HITS {}", stats.disk_hits);
            println!("STATS {stats}");
        }
        return;
    }
    let dir = folder("full");
    let spawn = |name: &str, limit: u64| {
        let path = dir.path().join(name);
        let env = [("MEMOKIT_TEST_DISK", path.display().to_string())];
        ChildTest::spawn_with_file_limit(TEST, "full", &env, limit)
    };

    // Too small for a new file: a clear error at open; the function runs in-process.
    let Some(child) = spawn("tiny.redb", 4 << 10) else {
        memokit_tests::report_skip(
            "no `prlimit` (util-linux) to limit the size of a child's files",
            "Install util-linux.",
        );
        return;
    };
    let error = child.expect_line("OPEN_ERROR", secs(30));
    assert!(error.contains("tiny.redb"), "{error}");
    assert!(error.contains("no room left"), "{error}");
    eprintln!("at open: {error}");
    assert_eq!(
        number(child.expect_line("RUNS", secs(60))),
        4_000,
        "without the file, each clear of the in-process copies means computing again"
    );
    child.success();

    // Room for the file (redb needs between 16 and 20 MiB to create one), not for the 16 MB
    // of entries: the writes that do not fit fail, counted.
    let child = spawn("small.redb", 24 << 20).expect("prlimit ran before");
    child.expect_line("OPENED", secs(30));
    let runs = number(child.expect_line("RUNS", secs(60)));
    let write_errors = number(child.expect_line("WRITE_ERRORS", secs(5)));
    let errors = number(child.expect_line("ERRORS", secs(5)));
    let hits = number(child.expect_line("HITS", secs(5)));
    let stats = child.expect_line("STATS", secs(5));
    child.success();
    eprintln!("{stats}");
    assert!(write_errors > 0, "{stats}");
    assert!(errors >= write_errors, "{stats}");
    assert_eq!(
        runs + hits,
        4_000,
        "every call computed or read its value: {stats}"
    );
    assert!(stats.contains("disk_write_errors="), "{stats}");
}

// --- bad input ---

static UNWRITABLE_RUNS: AtomicU64 = AtomicU64::new(0);

#[cached(disk = "/dev/null/memokit.redb", name = "disk_tier::unwritable")]
fn unwritable(n: u64) -> u64 {
    UNWRITABLE_RUNS.fetch_add(1, SeqCst);
    n
}

#[test]
fn a_path_that_cannot_be_written_is_an_error_at_open_and_the_function_runs_in_process() {
    let err = memokit::disk::open(Config::new("/dev/null/memokit.redb")).unwrap_err();
    assert!(matches!(err, Error::Io { .. }), "{err:?}");
    assert!(err.to_string().contains("/dev/null/memokit.redb"), "{err}");
    assert_eq!((unwritable(1), unwritable(1)), (1, 1));
    assert_eq!(
        UNWRITABLE_RUNS.load(SeqCst),
        1,
        "the in-process cache still works"
    );
    let stats = unwritable_cache().stats();
    assert_eq!((stats.disk_errors, stats.disk_hits), (1, 0));
}

static FALLBACK_RUNS: AtomicU64 = AtomicU64::new(0);

#[cached(disk, name = "disk_tier::no_fallback")]
fn no_fallback(n: u64) -> u64 {
    FALLBACK_RUNS.fetch_add(1, SeqCst);
    n * 2
}

/// The file the program asked for did not open: `#[cached(disk)]` tries it again and runs
/// in-process, counting the error, rather than quietly use the default file, which may hold
/// another run's entries.
#[test]
fn a_file_that_did_not_open_is_not_replaced_by_the_default_file() {
    const TEST: &str = "a_file_that_did_not_open_is_not_replaced_by_the_default_file";
    if let Some(role) = role() {
        if role == "fallback" {
            let asked = std::env::var("MEMOKIT_TEST_DISK").unwrap();
            let err = memokit::disk::open(Config::new(&asked)).unwrap_err();
            assert!(matches!(err, Error::Io { .. }), "{err:?}");
            assert_eq!((no_fallback(1), no_fallback(1)), (2, 2));
            let stats = no_fallback_cache().stats();
            println!("RUNS {}", FALLBACK_RUNS.load(SeqCst));
            println!("DISK {} {}", stats.disk_errors, stats.disk_hits);
        }
        return;
    }
    let dir = folder("fallback");
    let default = dir.path().join("default.redb");
    let child = ChildTest::spawn(
        TEST,
        "fallback",
        &[
            ("MEMOKIT_TEST_DISK", "/dev/null/asked.redb".to_string()),
            ("MEMOKIT_DISK_PATH", default.display().to_string()),
        ],
    );
    assert_eq!(number(child.expect_line("RUNS", secs(30))), 1);
    assert_eq!(
        child.expect_line("DISK", secs(5)),
        "1 0",
        "one counted error"
    );
    child.success();
    assert!(!default.exists(), "the default file was used instead");
}

/// A real redb file of 2,000 entries of 100 bytes at `path`, to damage.
fn write_real_file(path: &Path) {
    let db = redb::Database::create(path).unwrap();
    let tx = db.begin_write().unwrap();
    {
        let mut table = tx
            .open_table(redb::TableDefinition::<u64, &[u8]>::new("entries"))
            .unwrap();
        for n in 0..2_000_u64 {
            table.insert(n, [7_u8; 100].as_slice()).unwrap();
        }
    }
    tx.commit().unwrap();
}

#[test]
fn a_corrupted_file_is_an_error_at_open() {
    let dir = folder("corrupted");
    let garbage = dir.path().join("garbage.redb");
    std::fs::write(&garbage, vec![0x5a_u8; 64 * 1024]).unwrap();
    let err = memokit::disk::open(Config::new(&garbage)).unwrap_err();
    assert!(matches!(err, Error::Corrupted { .. }), "{err:?}");
    assert!(err.to_string().contains("garbage.redb"), "{err}");

    // A real file with its middle overwritten.
    let damaged = dir.path().join("damaged.redb");
    write_real_file(&damaged);
    let mut bytes = std::fs::read(&damaged).unwrap();
    let len = bytes.len();
    bytes[..len / 2].iter_mut().for_each(|b| *b = !*b);
    std::fs::write(&damaged, bytes).unwrap();
    let err = memokit::disk::open(Config::new(&damaged)).unwrap_err();
    assert!(matches!(err, Error::Corrupted { .. }), "{err:?}");

    // A real file cut short (a copy interrupted, a full disk): the store asserts on it.
    let cut = dir.path().join("cut.redb");
    write_real_file(&cut);
    for keep in [std::fs::metadata(&cut).unwrap().len() / 2, 8 * 1024] {
        let bytes = std::fs::read(&cut).unwrap();
        let shortened = dir.path().join(format!("cut-{keep}.redb"));
        std::fs::write(&shortened, &bytes[..keep as usize]).unwrap();
        let err = memokit::disk::open(Config::new(&shortened)).unwrap_err();
        assert!(matches!(err, Error::Corrupted { .. }), "{keep}: {err:?}");
    }
}

#[test]
fn a_file_of_a_newer_format_is_an_error_at_open() {
    let dir = folder("newer");
    let path = dir.path().join("cache.redb");
    {
        let db = redb::Database::create(&path).unwrap();
        let tx = db.begin_write().unwrap();
        {
            let mut meta = tx
                .open_table(redb::TableDefinition::<&str, u64>::new("meta"))
                .unwrap();
            meta.insert("format", memokit::disk::FORMAT + 1).unwrap();
        }
        tx.commit().unwrap();
    }
    let err = memokit::disk::open(Config::new(&path)).unwrap_err();
    match &err {
        Error::NewerFormat {
            found, supported, ..
        } => assert_eq!(
            (*found, *supported),
            (memokit::disk::FORMAT + 1, memokit::disk::FORMAT)
        ),
        other => panic!("expected NewerFormat, got {other:?}"),
    }
    assert!(err.to_string().contains("upgrade memokit"), "{err}");
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}
