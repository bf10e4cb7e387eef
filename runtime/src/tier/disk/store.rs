//! One file of the disk tier: a redb database that every function of the process with the
//! same path shares, opened once per process (`open`), locked against other processes, with
//! its byte bound, its expiry clock (wall-clock milliseconds, so deadlines survive a restart)
//! and the thread that makes its writes durable every `flush_every`.
//!
//! Layout (format [`FORMAT`]): table `entries` maps `[name length: u16 LE][function name][key
//! bytes]` to `[deadline: u64 LE ms since the epoch, 0 = none][sequence: u64 LE][codec bytes]`;
//! table `order` maps each entry's sequence number to its key (oldest first, the eviction
//! order); table `expiry` maps `(deadline, sequence)` to the key of each entry that has a
//! deadline (soonest first, the sweep order); table `meta` holds `format`, `bytes` (the
//! entries' key and value bytes) and `seq`. Format 1 lacked `expiry`: such a file gets it at
//! open.

// redb's error is large; it is only built on the rare failing path, never on a hit.
#![allow(clippy::result_large_err)]

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;
use redb::{Database, Durability, ReadableTable, TableDefinition, WriteTransaction};

/// The layout of the file; bump it when the tables or the entry header change. A file of a
/// newer format is refused at open ([`Error::NewerFormat`]).
pub(crate) const FORMAT: u64 = 2;

const ENTRIES: TableDefinition<'_, &[u8], &[u8]> = TableDefinition::new("entries");
const ORDER: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("order");
const META: TableDefinition<'_, &str, u64> = TableDefinition::new("meta");
const EXPIRY: TableDefinition<'_, (u64, u64), &[u8]> = TableDefinition::new("expiry");

/// The most expired entries one sweep step removes (one write transaction): a writer waits for
/// at most one step.
const SWEEP_STEP: usize = 512;

/// How often the file's thread looks for expired entries when writes are made durable at
/// once (`flush_every` zero); otherwise it looks every `flush_every`.
const SWEEP_EVERY: Duration = Duration::from_millis(100);

/// The entry header: deadline and sequence number.
const HEADER: usize = 16;

/// Where and how the disk tier keeps results; see [`open`](crate::disk::open).
///
/// ```
/// use std::time::Duration;
/// let config = memokit::disk::Config::new("/var/cache/app/memokit.redb")
///     .max_bytes(256 << 20)
///     .flush_every(Duration::from_millis(50));
/// assert_eq!(config.get_max_bytes(), 256 << 20);
/// ```
#[derive(Clone, Debug)]
pub struct Config {
    path: PathBuf,
    max_bytes: u64,
    flush_every: Duration,
}

impl Config {
    /// The defaults for the file at `path` (created with its parent folder if missing): at most
    /// 1 GiB of entries, writes made durable every 100 ms.
    ///
    /// ```
    /// let config = memokit::disk::Config::new("cache.redb");
    /// assert_eq!(config.get_max_bytes(), 1 << 30);
    /// ```
    pub fn new(path: impl Into<PathBuf>) -> Config {
        Config {
            path: path.into(),
            max_bytes: 1 << 30,
            flush_every: Duration::from_millis(100),
        }
    }

    /// The bound on the bytes of the entries (keys and encoded values): past it, the oldest
    /// entries written are evicted. The file itself is larger by redb's pages and indexes
    /// (see the README's figures), and does not shrink.
    ///
    /// ```
    /// let config = memokit::disk::Config::new("cache.redb").max_bytes(64 << 20);
    /// assert_eq!(config.get_max_bytes(), 64 << 20);
    /// ```
    pub fn max_bytes(mut self, bytes: u64) -> Config {
        self.max_bytes = bytes;
        self
    }

    /// How often the writes are made durable (an `fsync`): a crash loses at most the writes of
    /// this window, never a whole file or a part of an entry. `Duration::ZERO` makes every
    /// write durable before it returns (slower; see the README's figures).
    ///
    /// ```
    /// use std::time::Duration;
    /// let config = memokit::disk::Config::new("cache.redb").flush_every(Duration::ZERO);
    /// assert_eq!(config.get_flush_every(), Duration::ZERO);
    /// ```
    pub fn flush_every(mut self, every: Duration) -> Config {
        self.flush_every = every;
        self
    }

    /// The file's path.
    ///
    /// ```
    /// let config = memokit::disk::Config::new("cache.redb");
    /// assert_eq!(config.get_path(), std::path::Path::new("cache.redb"));
    /// ```
    pub fn get_path(&self) -> &Path {
        &self.path
    }

    /// The bound set by [`Config::max_bytes`].
    ///
    /// ```
    /// assert_eq!(memokit::disk::Config::new("c.redb").max_bytes(10).get_max_bytes(), 10);
    /// ```
    pub fn get_max_bytes(&self) -> u64 {
        self.max_bytes
    }

    /// The window set by [`Config::flush_every`].
    ///
    /// ```
    /// use std::time::Duration;
    /// let config = memokit::disk::Config::new("c.redb");
    /// assert_eq!(config.get_flush_every(), Duration::from_millis(100));
    /// ```
    pub fn get_flush_every(&self) -> Duration {
        self.flush_every
    }
}

/// Why a disk tier's file could not be opened.
///
/// ```
/// // A path under a regular file cannot be created.
/// let err = memokit::disk::open(memokit::disk::Config::new("/dev/null/cache.redb")).unwrap_err();
/// assert!(matches!(err, memokit::disk::Error::Io { .. }));
/// assert!(err.to_string().contains("/dev/null/cache.redb"));
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The file (or its folder) cannot be created, read or written.
    Io {
        /// The file.
        path: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
    /// Another process has the file open (each file belongs to one process at a time).
    Locked {
        /// The file.
        path: PathBuf,
        /// The other process, as its pid file (`<path>.pid`) names it.
        pid: Option<u32>,
    },
    /// The file was written by a newer memokit (or redb) whose format this one cannot read.
    NewerFormat {
        /// The file.
        path: PathBuf,
        /// The format found in the file.
        found: u64,
        /// The newest format this version reads.
        supported: u64,
    },
    /// The file is not a database of the disk tier, or is damaged.
    Corrupted {
        /// The file.
        path: PathBuf,
        /// What redb said.
        reason: String,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io { path, source } => {
                use std::io::ErrorKind::{FileTooLarge, QuotaExceeded, StorageFull};
                let remedy = match source.kind() {
                    StorageFull | FileTooLarge | QuotaExceeded => {
                        "no room left (a full disk, a file size limit or a quota): free \
                         space, raise the limit, or lower `max_bytes`"
                    }
                    _ => "give a path in a writable folder",
                };
                write!(
                    f,
                    "memokit disk tier: cannot open {}: {source}; {remedy}",
                    path.display()
                )
            }
            Error::Locked { path, pid } => {
                write!(
                    f,
                    "memokit disk tier: {} is open in another process",
                    path.display()
                )?;
                if let Some(pid) = pid {
                    write!(f, " (pid {pid})")?;
                }
                f.write_str("; give each process a file of its own")
            }
            Error::NewerFormat {
                path,
                found,
                supported,
            } => write!(
                f,
                "memokit disk tier: {} has format {found}, newer than this memokit reads \
                 ({supported}); upgrade memokit or delete the file",
                path.display()
            ),
            Error::Corrupted { path, reason } => write!(
                f,
                "memokit disk tier: {} is not a readable cache file ({reason}); delete it or \
                 give another path",
                path.display()
            ),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// The files this process opened, by the path they were asked for, and the first one, which
/// `#[cached(disk)]` without a path uses.
struct Opened {
    files: HashMap<PathBuf, Arc<Store>>,
    default: Option<Arc<Store>>,
    /// The first file [`open`] was asked for, when it failed and no file has opened since: the
    /// default file until one opens, so that `#[cached(disk)]` tries it again (and runs
    /// in-process if it still fails) rather than quietly use another file, with another run's
    /// entries.
    failed_default: Option<Config>,
}

fn opened() -> &'static Mutex<Opened> {
    static OPENED: OnceLock<Mutex<Opened>> = OnceLock::new();
    OPENED.get_or_init(|| {
        Mutex::new(Opened {
            files: HashMap::new(),
            default: None,
            failed_default: None,
        })
    })
}

/// Opens the file of `config` for this process (or returns the one already open at that
/// path). The first file opened is also the default one; until one opens, a file asked for
/// that failed is, to be tried again.
pub(crate) fn open(config: Config) -> Result<Arc<Store>, Error> {
    let mut opened = opened().lock();
    if let Some(store) = opened.files.get(&config.path) {
        return Ok(store.clone());
    }
    let store = match Store::open(&config) {
        Ok(store) => Arc::new(store),
        Err(error) => {
            if opened.default.is_none() {
                opened.failed_default.get_or_insert(config);
            }
            return Err(error);
        }
    };
    Store::start_maintenance(&store);
    opened.files.insert(config.path.clone(), store.clone());
    opened.default.get_or_insert_with(|| store.clone());
    opened.failed_default = None;
    Ok(store)
}

/// The store `#[cached(disk)]` (`path: None`) or `#[cached(disk = "path")]` uses.
pub(crate) fn open_for(path: Option<&str>) -> Result<Arc<Store>, Error> {
    match path {
        Some(path) => open(Config::new(path)),
        None => {
            let (default, failed) = {
                let opened = opened().lock();
                (opened.default.clone(), opened.failed_default.clone())
            };
            match (default, failed) {
                (Some(store), _) => Ok(store),
                (None, Some(config)) => open(config),
                (None, None) => open(Config::new(default_path())),
            }
        }
    }
}

/// `MEMOKIT_DISK_PATH`, or `memokit-<program>.redb` in the system's temporary folder.
pub(crate) fn default_path() -> PathBuf {
    if let Some(path) = std::env::var_os("MEMOKIT_DISK_PATH") {
        return PathBuf::from(path);
    }
    let program = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "program".into());
    std::env::temp_dir().join(format!("memokit-{program}.redb"))
}

/// Makes every write so far durable in every open file.
pub(crate) fn flush_all() -> Result<(), Error> {
    let stores: Vec<Arc<Store>> = opened().lock().files.values().cloned().collect();
    for store in stores {
        store.flush().map_err(|e| store.error(e))?;
    }
    Ok(())
}

/// One open file.
pub(crate) struct Store {
    db: Database,
    path: PathBuf,
    max_bytes: u64,
    flush_every: Duration,
    /// Written since the last durable commit.
    dirty: AtomicBool,
    /// The entries' bytes and the next sequence number, as in `meta` (this process owns the
    /// file, so its copy is the truth); changed only inside a write transaction.
    counters: Mutex<(u64, u64)>,
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store").field("path", &self.path).finish()
    }
}

/// What a write did beyond itself: entries evicted to stay within the bound.
pub(crate) struct Written {
    pub(crate) evicted: u64,
}

/// A look at one entry.
pub(crate) enum Found {
    /// The encoded value, and how long it has left to live (`None`: for ever).
    Value(Vec<u8>, Option<Duration>),
    Expired,
    Absent,
}

/// Runs `read` on the file at `path`; a panic of redb in it (it asserts on some damage, a file
/// cut short, instead of returning an error) is [`Error::Corrupted`], not a reason to take the
/// process down.
fn unless_panicked<T>(path: &Path, read: impl FnOnce() -> T) -> Result<T, Error> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(read)).map_err(|panic| {
        let said = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown".to_string());
        Error::Corrupted {
            path: path.to_owned(),
            reason: format!("the store failed reading it ({said})"),
        }
    })
}

impl Store {
    fn open(config: &Config) -> Result<Store, Error> {
        let path = config.path.clone();
        let io = |source| Error::Io {
            path: path.clone(),
            source,
        };
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(io)?;
        }
        let created = unless_panicked(&path, || {
            Database::builder().set_cache_size(32 << 20).create(&path)
        })?;
        let db = created.map_err(|e| match e {
            redb::DatabaseError::DatabaseAlreadyOpen => Error::Locked {
                path: path.clone(),
                pid: read_pid(&path),
            },
            redb::DatabaseError::UpgradeRequired(found) => Error::NewerFormat {
                path: path.clone(),
                found: u64::from(found),
                supported: FORMAT,
            },
            redb::DatabaseError::Storage(redb::StorageError::Io(source))
                if source.kind() != std::io::ErrorKind::InvalidData =>
            {
                Error::Io {
                    path: path.clone(),
                    source,
                }
            }
            other => Error::Corrupted {
                path: path.clone(),
                reason: other.to_string(),
            },
        })?;
        let (bytes, seq) = unless_panicked(&path, || Self::prepare(&db, &path))??;
        // The pid file names this process to another that finds the file locked: a help for
        // that message only, so a pid file that cannot be written (a read-only folder, another
        // user's stale one) does not keep the store from opening.
        if let Err(_error) = std::fs::write(pid_path(&path), std::process::id().to_string()) {
            #[cfg(feature = "tracing")]
            tracing::warn!(
                target: "memokit::disk",
                "could not write {}: {_error}; a process that finds {} locked will not be told \
                 which process holds it",
                pid_path(&path).display(),
                path.display()
            );
        }
        Ok(Store {
            db,
            path,
            max_bytes: config.max_bytes,
            flush_every: config.flush_every,
            dirty: AtomicBool::new(false),
            counters: Mutex::new((bytes, seq)),
        })
    }

    /// Creates the tables of a new file and reads the counters; refuses a newer format.
    fn prepare(db: &Database, path: &Path) -> Result<(u64, u64), Error> {
        let corrupted = |e: redb::Error| Error::Corrupted {
            path: path.to_owned(),
            reason: e.to_string(),
        };
        let mut tx = db.begin_write().map_err(|e| corrupted(e.into()))?;
        tx.set_durability(Durability::Immediate);
        let counters = (|| -> Result<Result<(u64, u64), u64>, redb::Error> {
            let entries = tx.open_table(ENTRIES)?;
            tx.open_table(ORDER)?;
            let mut expiry = tx.open_table(EXPIRY)?;
            let mut meta = tx.open_table(META)?;
            let format = meta.get("format")?.map(|v| v.value());
            match format {
                Some(found) if found > FORMAT => return Ok(Err(found)),
                Some(FORMAT) => {}
                Some(_) => {
                    // Format 1: the same entries, without the sweep's index.
                    for item in entries.iter()? {
                        let (key, entry) = item?;
                        if let Some((deadline, seq)) = header(entry.value()) {
                            if deadline != 0 {
                                expiry.insert((deadline, seq), key.value())?;
                            }
                        }
                    }
                    meta.insert("format", FORMAT)?;
                }
                None => {
                    meta.insert("format", FORMAT)?;
                }
            }
            let bytes = meta.get("bytes")?.map_or(0, |v| v.value());
            let seq = meta.get("seq")?.map_or(0, |v| v.value());
            Ok(Ok((bytes, seq)))
        })()
        .map_err(corrupted)?
        .map_err(|found| Error::NewerFormat {
            path: path.to_owned(),
            found,
            supported: FORMAT,
        })?;
        tx.commit().map_err(|e| corrupted(e.into()))?;
        Ok(counters)
    }

    /// The file's thread: at once, then every `flush_every` (or [`SWEEP_EVERY`]), removes the
    /// entries past their deadline in bounded steps, then commits an empty durable
    /// transaction if anything was written since the last one.
    fn start_maintenance(store: &Arc<Store>) {
        let weak = Arc::downgrade(store);
        let every = if store.flush_every.is_zero() {
            SWEEP_EVERY
        } else {
            store.flush_every
        };
        let _ = std::thread::Builder::new()
            .name("memokit-disk".into())
            .spawn(move || loop {
                {
                    let Some(store) = weak.upgrade() else { return };
                    // A failure (a full disk) is tried again at the next tick; the writes that
                    // failed were counted by their functions.
                    let _ = store.sweep();
                    if store.dirty.load(Relaxed) {
                        let _ = store.flush();
                    }
                }
                std::thread::sleep(every);
            });
    }

    /// Makes the writes so far durable.
    pub(crate) fn flush(&self) -> Result<(), redb::Error> {
        if !self.dirty.swap(false, Relaxed) {
            return Ok(());
        }
        let mut tx = self.db.begin_write()?;
        tx.set_durability(Durability::Immediate);
        // Writes wait for this transaction: the counters are those of the last write.
        save_counters(&tx, *self.counters.lock())
            .and_then(|()| Ok(tx.commit()?))
            .inspect_err(|_| self.dirty.store(true, Relaxed))?;
        Ok(())
    }

    /// An error of this file for messages.
    pub(crate) fn error(&self, e: redb::Error) -> Error {
        match e {
            redb::Error::Io(source) => Error::Io {
                path: self.path.clone(),
                source,
            },
            other => Error::Corrupted {
                path: self.path.clone(),
                reason: other.to_string(),
            },
        }
    }

    /// The entry at `key`, its deadline checked against the wall clock.
    pub(crate) fn get(&self, key: &[u8]) -> Result<Found, redb::Error> {
        let tx = self.db.begin_read()?;
        let table = tx.open_table(ENTRIES)?;
        let Some(entry) = table.get(key)? else {
            return Ok(Found::Absent);
        };
        let entry = entry.value();
        let Some((deadline, _)) = header(entry) else {
            return Ok(Found::Value(Vec::new(), None));
        };
        let now = now_ms();
        if deadline != 0 && deadline <= now {
            return Ok(Found::Expired);
        }
        let left = (deadline != 0).then(|| Duration::from_millis(deadline - now));
        Ok(Found::Value(entry[HEADER..].to_vec(), left))
    }

    /// Writes the entries (key, encoded value, time to live), but those that `skip` (asked
    /// with each entry's place once the transaction holds the file's write lock) says not to;
    /// then evicts the oldest entries past the bound.
    pub(crate) fn put(
        &self,
        entries: &[(Vec<u8>, Vec<u8>)],
        ttl: Option<Duration>,
        skip: impl Fn(usize) -> bool,
        durable: bool,
    ) -> Result<Written, redb::Error> {
        self.write(durable, |tx, counters| {
            let kept: Vec<&(Vec<u8>, Vec<u8>)> = (0..entries.len())
                .filter(|&at| !skip(at))
                .map(|at| &entries[at])
                .collect();
            if kept.is_empty() {
                return Ok(0);
            }
            let deadline = ttl.map_or(0, |ttl| {
                now_ms()
                    .saturating_add(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX))
                    .max(1)
            });
            let mut table = tx.open_table(ENTRIES)?;
            let mut index = Index::open(tx)?;
            for (key, value) in kept {
                let seq = counters.1;
                counters.1 += 1;
                let mut entry = Vec::with_capacity(HEADER + value.len());
                entry.extend_from_slice(&deadline.to_le_bytes());
                entry.extend_from_slice(&seq.to_le_bytes());
                entry.extend_from_slice(value);
                let old = table
                    .insert(key.as_slice(), entry.as_slice())?
                    .map(|old| old.value().to_vec());
                if let Some(old) = old {
                    index.forget(counters, key, &old)?;
                }
                index.record(key, deadline, seq)?;
                counters.0 += entry_bytes(key, &entry);
            }
            let mut evicted = 0;
            while counters.0 > self.max_bytes {
                let Some(oldest) = index
                    .order
                    .first()?
                    .map(|(_, oldest)| oldest.value().to_vec())
                else {
                    break;
                };
                if index.remove(&mut table, counters, &oldest)? {
                    evicted += 1;
                } else {
                    // Not expected: an order row without its entry.
                    index.order.pop_first()?;
                }
            }
            Ok(evicted)
        })
        .map(|evicted| Written { evicted })
    }

    /// Removes the entries at `keys`; `durable`: on disk when it returns (see
    /// [`Store::write`]).
    pub(crate) fn remove(&self, keys: &[Vec<u8>], durable: bool) -> Result<(), redb::Error> {
        self.write(durable, |tx, counters| {
            let mut table = tx.open_table(ENTRIES)?;
            let mut index = Index::open(tx)?;
            for key in keys {
                index.remove(&mut table, counters, key)?;
            }
            Ok(0)
        })
        .map(drop)
    }

    /// Removes every entry whose key starts with `prefix` (one function's).
    pub(crate) fn remove_prefix(&self, prefix: &[u8], durable: bool) -> Result<(), redb::Error> {
        let keys: Vec<Vec<u8>> = {
            let tx = self.db.begin_read()?;
            let table = tx.open_table(ENTRIES)?;
            let mut keys = Vec::new();
            for item in table.range(prefix..)? {
                let (key, _) = item?;
                if !key.value().starts_with(prefix) {
                    break;
                }
                keys.push(key.value().to_vec());
            }
            keys
        };
        self.remove(&keys, durable)
    }

    /// Removes up to [`SWEEP_STEP`] entries whose deadline passed, soonest first; returns how
    /// many.
    pub(crate) fn sweep_step(&self) -> Result<u64, redb::Error> {
        let now = now_ms();
        // A look first, so that a file with nothing due sees no write (and no fsync).
        let due = {
            let tx = self.db.begin_read()?;
            let expiry = tx.open_table(EXPIRY)?;
            let first = expiry.first()?;
            first.is_some_and(|(at, _)| at.value().0 <= now)
        };
        if !due {
            return Ok(0);
        }
        self.write(false, |tx, counters| {
            let mut table = tx.open_table(ENTRIES)?;
            let mut index = Index::open(tx)?;
            let due: Vec<Vec<u8>> = index
                .expiry
                .range(..(now.saturating_add(1), 0))?
                .take(SWEEP_STEP)
                .map(|item| item.map(|(_, key)| key.value().to_vec()))
                .collect::<Result<_, _>>()?;
            for key in &due {
                index.remove(&mut table, counters, key)?;
            }
            Ok(due.len() as u64)
        })
    }

    /// Sweeps, one bounded step after another, until no entry is past its deadline.
    fn sweep(&self) -> Result<u64, redb::Error> {
        let mut swept = 0;
        loop {
            let step = self.sweep_step()?;
            swept += step;
            if step < SWEEP_STEP as u64 {
                return Ok(swept);
            }
            // Between steps, the writers of the process get the file.
            std::thread::yield_now();
        }
    }

    /// One write transaction with the counters, which it persists; durable at once when asked
    /// (`durable`: a write of the program, `insert` or `invalidate`, which a restart must not
    /// undo, whereas a computed value lost is only computed again) or when `flush_every` is
    /// zero, else at the next flush.
    fn write(
        &self,
        durable: bool,
        body: impl FnOnce(&WriteTransaction, &mut (u64, u64)) -> Result<u64, redb::Error>,
    ) -> Result<u64, redb::Error> {
        let durable = durable || self.flush_every.is_zero();
        let mut tx = self.db.begin_write()?;
        tx.set_durability(if durable {
            Durability::Immediate
        } else {
            Durability::None
        });
        let mut counters = self.counters.lock();
        let mut next = *counters;
        let evicted = body(&tx, &mut next)?;
        // A commit that is not durable needs no counters in the file: the durable one that
        // follows (`flush`) writes them, and a crash reopens the file at a durable commit.
        if durable {
            save_counters(&tx, next)?;
        }
        tx.commit()?;
        *counters = next;
        // A durable commit makes every commit before it durable too.
        self.dirty.store(!durable, Relaxed);
        Ok(evicted)
    }
}

/// Persists the entries' bytes and the next sequence number.
fn save_counters(tx: &WriteTransaction, (bytes, seq): (u64, u64)) -> Result<(), redb::Error> {
    let mut meta = tx.open_table(META)?;
    meta.insert("bytes", bytes)?;
    meta.insert("seq", seq)?;
    Ok(())
}

/// The order and expiry tables, beside the entries.
struct Index<'t> {
    order: redb::Table<'t, u64, &'static [u8]>,
    expiry: redb::Table<'t, (u64, u64), &'static [u8]>,
}

impl<'t> Index<'t> {
    fn open(tx: &'t WriteTransaction) -> Result<Index<'t>, redb::Error> {
        Ok(Index {
            order: tx.open_table(ORDER)?,
            expiry: tx.open_table(EXPIRY)?,
        })
    }

    /// Records a new entry (its key, deadline and sequence number).
    fn record(&mut self, key: &[u8], deadline: u64, seq: u64) -> Result<(), redb::Error> {
        self.order.insert(seq, key)?;
        if deadline != 0 {
            self.expiry.insert((deadline, seq), key)?;
        }
        Ok(())
    }

    /// Removes the entry at `key` from `table`, with its rows and bytes; `false` if there was
    /// none.
    fn remove(
        &mut self,
        table: &mut redb::Table<'_, &'static [u8], &'static [u8]>,
        counters: &mut (u64, u64),
        key: &[u8],
    ) -> Result<bool, redb::Error> {
        let old = table.remove(key)?.map(|old| old.value().to_vec());
        match old {
            Some(old) => {
                self.forget(counters, key, &old)?;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Drops the rows and the bytes of an entry that was replaced or removed.
    fn forget(
        &mut self,
        counters: &mut (u64, u64),
        key: &[u8],
        old: &[u8],
    ) -> Result<(), redb::Error> {
        if let Some((deadline, seq)) = header(old) {
            self.order.remove(seq)?;
            if deadline != 0 {
                self.expiry.remove((deadline, seq))?;
            }
        }
        counters.0 = counters.0.saturating_sub(entry_bytes(key, old));
        Ok(())
    }
}

/// An entry's deadline and sequence number.
fn header(entry: &[u8]) -> Option<(u64, u64)> {
    let deadline = u64::from_le_bytes(entry.get(..8)?.try_into().ok()?);
    let seq = u64::from_le_bytes(entry.get(8..HEADER)?.try_into().ok()?);
    Some((deadline, seq))
}

fn entry_bytes(key: &[u8], entry: &[u8]) -> u64 {
    (key.len() + entry.len()) as u64
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn pid_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".pid");
    PathBuf::from(name)
}

fn read_pid(path: &Path) -> Option<u32> {
    std::fs::read_to_string(pid_path(path))
        .ok()?
        .trim()
        .parse()
        .ok()
}
