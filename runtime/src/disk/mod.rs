//! The disk tier (feature `disk`): results kept in a file, so that they survive a restart.
//!
//! A function written `#[cached(disk)]` (or `#[cached(disk = "path/to/file.redb")]`) keeps its
//! results in the process, as without the option, and in an embedded
//! [redb](https://docs.rs/redb) file on the machine. After a deploy or a crash, the restarted
//! process serves its first calls from the file instead of computing them again:
//!
//! ```no_run
//! use memokit::cached;
//!
//! #[cached(size = 10_000, ttl = "1h", disk = "/var/cache/app/memokit.redb")]
//! fn render(page: u32) -> String {
//!     format!("<h1>page {page}</h1>") // runs once per key, across restarts, within the ttl
//! }
//!
//! fn main() -> Result<(), memokit::disk::Error> {
//!     // Optional: open the file now, to see a bad path at start rather than in the stats.
//!     memokit::disk::open(memokit::disk::Config::new("/var/cache/app/memokit.redb"))?;
//!     assert_eq!(render(1), "<h1>page 1</h1>");
//!     println!("{}", render_cache().stats()); // … disk_hits=0 disk_misses=1 disk_errors=0 …
//!     memokit::disk::flush()?; // before a planned exit: nothing of the last window is lost
//!     Ok(())
//! }
//! ```
//!
//! # Behaviour
//! - **Lookup order**: in-process, then the file, then the computation. A disk hit fills the
//!   in-process tier; a computed value is written to both. What the in-process tier would not
//!   store (an `Err`, a `None` with `cache_none = false`) is not written to the file either.
//! - **With Redis**: `#[cached(disk, redis(...))]` puts the file in front of Redis:
//!   in-process → file → Redis → computation. A Redis hit fills the file; a computed value,
//!   `insert`, `invalidate`, `clear` (and the writer attributes) go to both; the stats carry
//!   both tiers' counters (`disk_*` and `l2_*`). Other processes' writes, heard over Redis
//!   pub/sub, are applied to the file as well as to the in-process tier, so a copy in the file
//!   never outlives an invalidation this process heard. What it did not hear cannot be
//!   applied, so the file's copies of the function are dropped whenever the in-process ones
//!   are for that reason (the subscription lost, see `memokit::redis`), and at the function's
//!   first use after a start: the invalidations made while the process was down were not
//!   heard. A restarted process is warm from Redis then, not from its file; only a function
//!   with `disk` alone is warm from the file.
//! - **Which file**: `disk = "path"` names it; `disk` alone uses the first file
//!   [`open`]ed in the process, else the file named by `MEMOKIT_DISK_PATH`, else
//!   `memokit-<program>.redb` in the system's temporary folder. A file [`open`] was asked for
//!   and could not open stands in until another opens: `disk` alone tries it again (and runs
//!   in-process, counting `disk_errors`, if it still fails), never the fallback file, which may
//!   hold another run's entries. Functions naming one file
//!   share it (each under its registry name, so they never share entries); a process opens a
//!   file once.
//! - **Expiry survives restarts**: an entry's deadline (the function's `ttl`, none without it)
//!   is stored as wall-clock time; an entry past it is never served, before or after a
//!   restart. Expired entries are swept: the file's thread removes them, soonest deadline
//!   first, in steps of at most 512 entries (one transaction each, so a writer waits for one
//!   step at most), at open and then every [`Config::flush_every`] (every 100 ms when that
//!   is zero), so a file written with short-lived entries stops growing. One read before the
//!   sweep reaches an entry removes it too.
//! - **Bound**: [`Config::max_bytes`] bounds the bytes of the entries (keys and encoded
//!   values, 1 GiB by default); past it, the oldest entries written are evicted (counted in
//!   `disk_evictions` of the function whose write evicted them).
//! - **Values** use the Redis tier's codec, always in its postcard form: postcard behind a
//!   6-byte header (format version, layout, fingerprint of the value type), compressed as one
//!   LZ4 block when the postcard bytes are more than 1 KiB and the block is smaller (so
//!   [`Config::max_bytes`] holds more of them). A value that does not decode (the type
//!   changed, or an entry of an older memokit, before the layout byte) is a miss, counted in
//!   `disk_decode_errors`, and is overwritten; never an error to the caller.
//! - **Handles write through**: `clear()` removes the function's entries from the file,
//!   `invalidate(&key)` its entry, `insert(key, value)` writes it, and so do the `_many` forms
//!   and `#[cache_put]` / `#[cache_evict]`.
//! - **Crash safety and the window of loss**: every write is one redb transaction, made
//!   durable (`fsync`) every [`Config::flush_every`] (100 ms by default) by a thread of the
//!   file. A crash or `kill -9` loses at most the writes of that window: the file reopens at
//!   its last durable commit, with whole entries only. [`flush`] makes everything durable at
//!   once (call it before a planned exit); `flush_every(Duration::ZERO)` makes each write
//!   durable before it returns.
//! - **One process per file**: redb locks the file. A second process that opens it gets
//!   [`Error::Locked`] naming the path and the pid of the process that has it (from
//!   `<path>.pid`); never a second copy or a damaged file.
//! - **Errors**: a path that cannot be created, a file of a newer format or a damaged file is
//!   an [`Error`] from [`open`]; a function whose file did not open runs in-process only, and
//!   counts each lookup in `disk_errors` (with the `tracing` feature, an error event at target
//!   `memokit::disk` says why).
//! - **A full disk** (or a file size limit, or a quota): a file that cannot be created is
//!   [`Error::Io`] from [`open`], saying there is no room left; a write that does not fit is
//!   counted in `disk_write_errors` (and in `disk_errors`) and the call still returns its
//!   value. After such a failure redb refuses every further operation on the file until the
//!   process restarts (each is a counted error; the function works in-process), and the file
//!   reopens at its last durable commit. A removal the file refused (`invalidate`, `clear`)
//!   may thus come back after the restart: free space before restarting, or delete the file.
//!
//! # Security
//! Values and keys are stored **in clear** in the file: whoever can read the file can read
//! them. Give it a folder only the service's user can read.

use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::tier::codec;
use crate::tier::disk::Disk;
pub use crate::tier::disk::{Config, Error};

/// Opens the file of `config` for this process, so that a bad path, a file held by another
/// process, a newer format or a damaged file is an error now. Functions whose `disk = "…"`
/// names the same path use it, and the first file opened is the one `#[cached(disk)]` uses.
/// Opening a path already open returns `Ok` (the first configuration stays).
///
/// ```
/// let dir = std::env::temp_dir().join(format!("memokit-doc-open-{}", std::process::id()));
/// memokit::disk::open(memokit::disk::Config::new(dir.join("cache.redb")))?;
/// assert!(dir.join("cache.redb").exists());
/// # std::fs::remove_dir_all(&dir).ok();
/// # Ok::<(), memokit::disk::Error>(())
/// ```
pub fn open(config: Config) -> Result<(), Error> {
    crate::tier::disk::open(config).map(drop)
}

/// Makes every write so far durable in every open file (see the window in the module docs).
///
/// ```
/// memokit::disk::flush()?; // nothing open: nothing to do
/// # Ok::<(), memokit::disk::Error>(())
/// ```
pub fn flush() -> Result<(), Error> {
    crate::tier::disk::flush_all()
}

/// The file `#[cached(disk)]` uses when no file was [`open`]ed: `MEMOKIT_DISK_PATH`, else
/// `memokit-<program>.redb` in the temporary folder.
///
/// ```
/// assert!(memokit::disk::default_path().to_string_lossy().ends_with(".redb"));
/// ```
pub fn default_path() -> std::path::PathBuf {
    crate::tier::disk::default_path()
}

/// The newest file format this version reads and writes.
pub const FORMAT: u64 = crate::tier::disk::FORMAT;

/// The disk tier of a function with key `K` and value `V`: what `#[cached(disk)]` expands to.
/// Not part of the stable API.
#[doc(hidden)]
pub fn __disk<K, V>(path: Option<&'static str>, ttl: Option<Duration>) -> Disk<K, V>
where
    K: Serialize + DeserializeOwned,
    V: Serialize + DeserializeOwned,
{
    Disk::new(
        path,
        ttl,
        codec::encode_key::<K>,
        // Always postcard, compressed above `codec::COMPRESS_ABOVE` bytes.
        |value| codec::encode_entry::<K, V>(value, codec::Encoding::DEFAULT),
        codec::decode_entry::<K, V>,
    )
}
