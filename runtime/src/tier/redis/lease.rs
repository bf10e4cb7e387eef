//! The miss path of a shared function: Redis, then the lease; the computation runs between
//! [`fetch`] and the claim's write (see `tier::load_through`).
//!
//! It runs inside the in-process single flight's leader, so one caller per process and key
//! talks to Redis; the in-process tier is filled by the caller's normal path.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{keys, Connection, FnState, Shared, Unavailable};
use crate::cache::flight::Superseded;
use crate::tier::codec::Encoding;
use crate::tier::{Claim, ClaimMany, Fetched, FoundMany, Kept, TierFuture};

/// Releases a lease only if this process still holds it (a lease that expired and was taken by
/// another process is not touched).
const RELEASE: &str =
    "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end";

/// Extends a lease by `ARGV[2]` ms only if this process still holds it; 0 once it does not.
const EXTEND: &str =
    "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) else return 0 end";

/// The lease this process holds; kept alive while it is held, released on drop, also after a
/// panic or a cancelled future.
struct Held {
    tier: Arc<Connection>,
    lease: String,
    token: String,
    keep_alive: Option<tokio::task::AbortHandle>,
}

impl Held {
    /// Holds `lease` (taken for `ttl`) and extends it back to `ttl` every third of it, on the
    /// tier's runtime, so that a computation longer than the lease keeps it: the other
    /// processes wait for its value instead of computing it too. Only a holder that dies (or
    /// cannot reach Redis for the rest of the lease) lets them in.
    fn new(tier: &Arc<Connection>, lease: &str, token: &str, ttl: Duration) -> Held {
        let period = keep_alive_period(ttl);
        let extend = extend_cmd(lease, token, ttl);
        let timeout = tier.config.timeout;
        let keep_alive = tier.spawn(move |mut conn| async move {
            loop {
                tokio::time::sleep(period).await;
                let extended =
                    tokio::time::timeout(timeout, extend.query_async::<i64>(&mut conn)).await;
                // Not ours any more (it expired during an outage and another process took
                // it): nothing left to keep. Without an answer this time, two thirds of the
                // lease remain to try again.
                if let Ok(Ok(0)) = extended {
                    break;
                }
            }
        });
        Held {
            tier: tier.clone(),
            lease: lease.to_string(),
            token: token.to_string(),
            keep_alive,
        }
    }
}

/// How long this function's leases are taken for: its own `lease`, else the connection's.
fn lease_ttl(state: &FnState, tier: &Connection) -> Duration {
    state.lease.unwrap_or(tier.config.lease_ttl)
}

/// A lease's time to live in whole milliseconds, at least one.
fn lease_millis(ttl: Duration) -> u64 {
    u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1)
}

/// How often a held lease taken for `ttl` is extended: every third of it.
fn keep_alive_period(ttl: Duration) -> Duration {
    (ttl / 3).max(Duration::from_millis(1))
}

/// The extension of `lease` back to `ttl`, if `token` holds it (see [`EXTEND`]).
fn extend_cmd(lease: &str, token: &str, ttl: Duration) -> redis::Cmd {
    let mut extend = redis::cmd("EVAL");
    extend
        .arg(EXTEND)
        .arg(1)
        .arg(lease)
        .arg(token)
        .arg(lease_millis(ttl));
    extend
}

/// The take of `lease` for `ttl` by `token` (see [`TAKE`]).
fn take_cmd(lease: &str, token: &str, ttl: Duration) -> redis::Cmd {
    let mut take = redis::cmd("EVAL");
    take.arg(TAKE)
        .arg(1)
        .arg(lease)
        .arg(token)
        .arg(lease_millis(ttl))
        .arg(process_prefix());
    take
}

/// The write of a computed value (`bytes`, for `ttl`) to `entry` while `token` holds its lease
/// (see [`WRITE_BACK`]).
fn write_back_cmd(entry: &str, token: &str, bytes: Vec<u8>, ttl: Duration) -> redis::Cmd {
    let mut write = redis::cmd("EVAL");
    write
        .arg(WRITE_BACK)
        .arg(2)
        .arg(entry)
        .arg(keys::lease(entry))
        .arg(token)
        .arg(bytes)
        .arg(lease_millis(ttl));
    write
}

impl Drop for Held {
    fn drop(&mut self) {
        // Before the release: an extension still on its way finds the lease gone (token-checked)
        // and does not bring it back.
        if let Some(keep_alive) = self.keep_alive.take() {
            keep_alive.abort();
        }
        release(&self.tier, &self.lease, &self.token);
    }
}

/// Releases `lease` if `token` holds it, without waiting for the answer.
fn release(tier: &Connection, lease: &str, token: &str) {
    tier.fire(release_cmd(lease, token));
}

fn release_cmd(lease: &str, token: &str) -> redis::Cmd {
    let mut cmd = redis::cmd("EVAL");
    cmd.arg(RELEASE).arg(1).arg(lease).arg(token);
    cmd
}

/// Releases the lease of a take whose answer did not come in time, in the background: at once,
/// then again after one timeout, two, four… until one release finds the lease or the lease
/// would have expired. The take went on another connection (a blocking one, for a sync caller)
/// and may reach Redis after the first release; every release checks the token, so it never
/// touches a lease another take holds.
fn release_late_take(tier: &Connection, lease: &str, token: &str, lease_ttl: Duration) {
    let cmd = release_cmd(lease, token);
    let timeout = tier.config.timeout;
    tier.spawn(move |mut conn| async move {
        let started = tokio::time::Instant::now();
        let mut pause = Duration::ZERO;
        loop {
            tokio::time::sleep(pause).await;
            let released = tokio::time::timeout(timeout, cmd.query_async::<i64>(&mut conn)).await;
            if let Ok(Ok(1)) = released {
                break;
            }
            pause = (pause * 2).max(timeout);
            if started.elapsed() + pause > lease_ttl {
                break;
            }
        }
    });
}

/// Writes a computed value (`ARGV[2]`, for `ARGV[3]` ms) only while `ARGV[1]` holds the
/// entry's lease: a write of the key by any process deletes the lease, so the value of a
/// computation that started before that write is not stored after it.
const WRITE_BACK: &str = "if redis.call('get', KEYS[2]) == ARGV[1] then \
redis.call('set', KEYS[1], ARGV[2], 'PX', ARGV[3]) return 1 else return 0 end";

/// Takes a free lease, or one this process left behind: a take whose answer timed out while
/// Redis still ran it, or a release lost in an outage. Only the in-process leader of a key
/// takes its lease, so a lease of this process that it meets is an orphan, never a running
/// computation; without this, it would wait out the whole lease after every outage.
const TAKE: &str = "local holder = redis.call('get', KEYS[1]) \
if holder and string.sub(holder, 1, #ARGV[3]) ~= ARGV[3] then return 0 end \
redis.call('set', KEYS[1], ARGV[1], 'PX', ARGV[2]) return 1";

/// The prefix of every lease token of this process.
fn process_prefix() -> String {
    format!("{:016x}:", super::pubsub::origin())
}

/// A token no other lease holder has, starting with [`process_prefix`].
fn token() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!("{}{:x}", process_prefix(), NEXT.fetch_add(1, Relaxed))
}

/// What a look at Redis found.
enum Found<V> {
    Value(V),
    /// Nothing, or something that does not decode (counted).
    Nothing,
}

impl<K, V> Shared<K, V> {
    fn decode(&self, bytes: Option<Vec<u8>>) -> Found<V> {
        match bytes {
            None => Found::Nothing,
            Some(bytes) => match (self.decode_value)(&bytes) {
                Some(value) => Found::Value(value),
                None => {
                    self.state.counters.decode_errors.fetch_add(1, Relaxed);
                    Found::Nothing
                }
            },
        }
    }
}

/// A miss of a shared function, by its in-process leader: the value of `key` from Redis
/// (computed by another process, waiting for its lease if it holds one), or the claim to
/// compute it here, under the lease. Any Redis failure ends the Redis part: the value is
/// computed and nothing is written. A refresh (see `CacheBuilder::refresh_after`) computes at
/// once and writes its value through: reading Redis would give back the value being refreshed.
pub(crate) async fn fetch<K, V>(shared: &Shared<K, V>, key: &K, refresh: bool) -> Fetched<V>
where
    V: Send + Sync + 'static,
{
    let state = &shared.state;
    // Writes that an outage kept from Redis first: until they are there, Redis may hold what
    // they replaced.
    let Some((tier, mut entries)) = shared.entries_of(std::iter::once(key)).await else {
        return Fetched::Miss(None);
    };
    let Some(entry) = entries.pop().flatten() else {
        return Fetched::Miss(None);
    };
    if refresh {
        // At once, without waiting: another process computing the key writes it instead.
        return match Lease::of(state, &tier, &entry).take(&tier, state).await {
            Ok(Some(held)) => claim(shared, tier, entry, held),
            Ok(None) | Err(()) => Fetched::Miss(None),
        };
    }
    match tier.query::<Option<Vec<u8>>>(redis::Cmd::get(&entry)).await {
        Ok(bytes) => match shared.decode(bytes) {
            Found::Value(value) => {
                state.counters.hits.fetch_add(1, Relaxed);
                return Fetched::Hit(value);
            }
            Found::Nothing => {
                state.counters.misses.fetch_add(1, Relaxed);
            }
        },
        // The entry's key holds something else than a value (another type): a miss of this
        // key alone, and the key is cleared for the value about to be computed.
        Err(Unavailable::Rejected) => {
            state.count(Unavailable::Rejected);
            state.counters.misses.fetch_add(1, Relaxed);
            if let Err(unavailable) = tier.query::<()>(redis::Cmd::del(&entry)).await {
                state.count(unavailable);
                return Fetched::Miss(None);
            }
        }
        Err(unavailable) => {
            state.count(unavailable);
            return Fetched::Miss(None);
        }
    }
    let lease = Lease::of(state, &tier, &entry);
    // Waiting ends, at the latest, when a lease taken just before we looked has expired.
    let deadline = Instant::now() + lease.ttl + tier.config.timeout * 2;
    let mut pause = Duration::from_millis(1);
    let held = loop {
        match lease.take(&tier, state).await {
            Ok(Some(held)) => {
                // Another process may have stored the value and released its lease between
                // our look and our take: look once more before computing it again.
                match tier.query::<Option<Vec<u8>>>(redis::Cmd::get(&entry)).await {
                    Ok(bytes) => {
                        // Not decoded: counted at the first look already, overwritten below.
                        if let Some(value) = bytes.and_then(|bytes| (shared.decode_value)(&bytes)) {
                            state.counters.hits.fetch_add(1, Relaxed);
                            return Fetched::Hit(value);
                        }
                    }
                    Err(unavailable) => {
                        state.count(unavailable);
                        return Fetched::Miss(None);
                    }
                }
                break held;
            }
            Ok(None) => {}
            Err(()) => return Fetched::Miss(None),
        }
        // Another process computes: wait for its value or for its lease to go.
        loop {
            if Instant::now() >= deadline {
                // Its holder is slower than its lease: compute without one.
                break;
            }
            tier.sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(20));
            let mut look = redis::pipe();
            look.get(&entry).exists(&lease.name);
            match tier.query_pipe::<(Option<Vec<u8>>, bool)>(look).await {
                Ok((bytes, leased)) => match shared.decode(bytes) {
                    Found::Value(value) => {
                        state.counters.hits.fetch_add(1, Relaxed);
                        return Fetched::Hit(value);
                    }
                    Found::Nothing if leased => continue,
                    // The holder gave up (an error, a value not to store, a crash): try to
                    // take the lease ourselves.
                    Found::Nothing => break,
                },
                Err(unavailable) => {
                    state.count(unavailable);
                    return Fetched::Miss(None);
                }
            }
        }
        if Instant::now() >= deadline {
            // Its holder is slower than its lease: compute here, and leave the write to it.
            return Fetched::Miss(None);
        }
    };
    claim(shared, tier, entry, held)
}

/// The lease of one entry, as this process asks for it: its key, a token no other holder
/// has, and how long it is taken for.
struct Lease {
    name: String,
    token: String,
    ttl: Duration,
}

impl Lease {
    fn of(state: &FnState, tier: &Connection, entry: &str) -> Lease {
        Lease {
            name: keys::lease(entry),
            token: token(),
            ttl: lease_ttl(state, tier),
        }
    }

    /// Takes it if it is free (see [`TAKE`]): `Ok(None)` when another process holds it,
    /// `Err` (counted) when Redis did not answer.
    async fn take(&self, tier: &Arc<Connection>, state: &FnState) -> Result<Option<Held>, ()> {
        let take = take_cmd(&self.name, &self.token, self.ttl);
        match tier.query::<bool>(take).await {
            Ok(true) => Ok(Some(Held::new(tier, &self.name, &self.token, self.ttl))),
            Ok(false) => Ok(None),
            Err(unavailable) => {
                // Redis may have run the take, or may still run it, and only its answer was
                // late: without these releases, the other processes would wait the whole
                // lease for a value this process computes without it and does not write.
                release_late_take(tier, &self.name, &self.token, self.ttl);
                state.count(unavailable);
                Err(())
            }
        }
    }
}

/// The claim to write `entry`, holding the lease until the write is done: only a lease holder
/// writes back (see [`WRITE_BACK`]).
fn claim<K, V: Send + Sync + 'static>(
    shared: &Shared<K, V>,
    tier: Arc<Connection>,
    entry: String,
    held: Held,
) -> Fetched<V> {
    Fetched::Miss(Some(Box::new(WriteBack {
        state: shared.state.clone(),
        encode_value: shared.encode_value,
        encoding: shared.encoding(Some(&tier)),
        tier,
        entry,
        held,
    })))
}

/// Where a computed value goes in Redis, and the lease held until it is there.
struct WriteBack<V> {
    state: Arc<FnState>,
    encode_value: fn(&V, Encoding) -> Option<Vec<u8>>,
    encoding: Encoding,
    tier: Arc<Connection>,
    entry: String,
    held: Held,
}

impl<V: Send + Sync + 'static> Claim<V> for WriteBack<V> {
    /// Writes a computed value to Redis, then releases the lease.
    fn store(self: Box<Self>, value: &V, _superseded: Superseded<V>) -> TierFuture<'static, ()> {
        // Superseded computations are not stored (see `tier::load_through`); one superseded
        // after that check finds its lease gone (`WRITE_BACK`).
        let bytes = self.state.encoded(self.encode_value, value, self.encoding);
        Box::pin(async move {
            let WriteBack {
                state,
                tier,
                entry,
                held,
                ..
            } = *self;
            let Some(bytes) = bytes else { return };
            // A write of the key since the lease was taken, here or in another process,
            // deleted the lease: then nothing is stored.
            let write = write_back_cmd(&entry, &held.token, bytes, state.ttl);
            if let Err(unavailable) = tier.query::<i64>(write).await {
                state.count(unavailable);
            }
            drop(held);
        })
    }
}

/// A batch's miss path: the values Redis holds, read in one round trip per slot, then the
/// leases of the keys it lacks, taken the same way. The batch computes all of those keys, but
/// writes back only the values whose lease it took and still holds (see [`WRITE_BACK`]): a key
/// another process computes is left to that process to write, and a key written anywhere while
/// the batch computed keeps that write. Any Redis failure ends the Redis part, as for one key:
/// nothing is written.
pub(crate) async fn fetch_many<K, V>(shared: &Shared<K, V>, keys: &[K]) -> FoundMany<K, V>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Send + Sync + 'static,
{
    let (values, read) = shared.read_many(keys).await;
    let found: Vec<Option<Kept<V>>> = values
        .into_iter()
        // Redis keeps its own ttl, not the function's: a value read lives a whole one here.
        .map(|value| Some((value?, None)))
        .collect();
    let Some((tier, entries)) = read else {
        return FoundMany {
            found,
            claim: Box::new(NoWrite),
        };
    };
    let state = &shared.state;
    let token = token();
    let ttl = lease_ttl(state, &tier);
    let missing: Vec<(&K, String)> = keys
        .iter()
        .zip(entries)
        .zip(&found)
        .filter(|(_, found)| found.is_none())
        .filter_map(|((key, entry), _)| Some((key, entry?)))
        .collect();
    let takes = missing
        .iter()
        .map(|(_, entry)| {
            let lease = keys::lease(entry);
            let take = take_cmd(&lease, &token, ttl);
            (lease, take)
        })
        .collect();
    let taken = match tier.query_all::<bool>(takes).await {
        Ok(taken) => taken,
        Err(unavailable) => {
            // Some takes may have run late: released, token-checked, as for one key.
            for (_, entry) in &missing {
                release_late_take(&tier, &keys::lease(entry), &token, ttl);
            }
            state.count(unavailable);
            return FoundMany {
                found,
                claim: Box::new(NoWrite),
            };
        }
    };
    let leased: HashMap<K, String> = missing
        .into_iter()
        .zip(taken)
        .filter(|(_, taken)| *taken)
        .map(|((key, entry), _)| (key.clone(), entry))
        .collect();
    let keep_alive = keep_all_alive(&tier, leased.values(), &token, ttl);
    FoundMany {
        found,
        claim: Box::new(BatchWriteBack {
            state: shared.state.clone(),
            encode_value: shared.encode_value,
            encoding: shared.encoding(Some(&tier)),
            tier,
            token,
            leased,
            keep_alive,
        }),
    }
}

/// Extends the lease of every one of `entries` held by `token` back to `ttl` every third of
/// it, as [`Held::new`] does for one, in one round trip per slot.
fn keep_all_alive<'e>(
    tier: &Arc<Connection>,
    entries: impl ExactSizeIterator<Item = &'e String>,
    token: &str,
    ttl: Duration,
) -> Option<tokio::task::AbortHandle> {
    if entries.len() == 0 {
        return None;
    }
    let period = keep_alive_period(ttl);
    let extends: Vec<(String, redis::Cmd)> = entries
        .map(|entry| {
            let lease = keys::lease(entry);
            let extend = extend_cmd(&lease, token, ttl);
            (lease, extend)
        })
        .collect();
    let connection = tier.clone();
    tier.spawn(move |_| async move {
        loop {
            tokio::time::sleep(period).await;
            // Without an answer this time, two thirds of the leases remain to try again.
            let _ = connection.write_all(extends.clone(), Vec::new()).await;
        }
    })
}

/// The claim of a batch whose look at Redis failed: nothing is written.
struct NoWrite;

impl<K, V> ClaimMany<K, V> for NoWrite {
    fn store<'a>(&'a self, _: &'a [(K, V)], _: &'a [Superseded<V>]) -> TierFuture<'a, ()> {
        Box::pin(std::future::ready(()))
    }
}

/// Where a batch's computed values go in Redis, and the leases it holds until they are there.
struct BatchWriteBack<K, V> {
    state: Arc<FnState>,
    encode_value: fn(&V, Encoding) -> Option<Vec<u8>>,
    encoding: Encoding,
    tier: Arc<Connection>,
    token: String,
    /// The entry of each key whose lease the batch took.
    leased: HashMap<K, String>,
    keep_alive: Option<tokio::task::AbortHandle>,
}

impl<K, V> ClaimMany<K, V> for BatchWriteBack<K, V>
where
    K: Hash + Eq + Send + Sync,
    V: Send + Sync,
{
    /// Writes each value whose lease this batch still holds, in one round trip per slot; the
    /// leases are released when the claim is dropped.
    fn store<'a>(
        &'a self,
        entries: &'a [(K, V)],
        superseded: &'a [Superseded<V>],
    ) -> TierFuture<'a, ()> {
        let writes: Vec<(String, redis::Cmd)> = entries
            .iter()
            .zip(superseded)
            .filter(|(_, superseded)| !superseded.get())
            .filter_map(|((key, value), _)| {
                let entry = self.leased.get(key)?;
                let bytes = self
                    .state
                    .encoded(self.encode_value, value, self.encoding)?;
                let write = write_back_cmd(entry, &self.token, bytes, self.state.ttl);
                Some((entry.clone(), write))
            })
            .collect();
        Box::pin(async move {
            if writes.is_empty() {
                return;
            }
            if let Err(unavailable) = self.tier.write_all(writes, Vec::new()).await {
                self.state.count(unavailable);
            }
        })
    }
}

impl<K, V> Drop for BatchWriteBack<K, V> {
    fn drop(&mut self) {
        if let Some(keep_alive) = self.keep_alive.take() {
            keep_alive.abort();
        }
        if self.leased.is_empty() {
            return;
        }
        let releases: Vec<(String, redis::Cmd)> = self
            .leased
            .values()
            .map(|entry| {
                let lease = keys::lease(entry);
                let release = release_cmd(&lease, &self.token);
                (lease, release)
            })
            .collect();
        let connection = self.tier.clone();
        self.tier.spawn(move |_| async move {
            let _ = connection.write_all(releases, Vec::new()).await;
        });
    }
}
