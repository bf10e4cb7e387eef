//! Cross-process invalidation: handles publish their writes on `prefix:events`; a subscriber
//! thread in each process applies the writes of the other processes to the in-process caches
//! of the functions that attached their shared tier here (see `Tier::attach`).

use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use parking_lot::RwLock;

use super::{keys, Connection, FnState};
use crate::cache::Cache;
use crate::tier::Tier;

/// The layout of events; bump it when `Event` changes (older events are ignored).
const EVENT_VERSION: u8 = 2;

/// What a handle did.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum Op {
    Clear { generation: u64 },
    Invalidate { key: Vec<u8> },
    Insert { key: Vec<u8>, value: Vec<u8> },
}

#[derive(Debug, Serialize, Deserialize)]
struct Event {
    version: u8,
    /// The process that published it (its own events are skipped).
    origin: u64,
    function: String,
    /// The generation the publisher wrote in (a clear's: the new one). A listener that uses
    /// another one for the function finds out that the two disagree (see
    /// [`reconcile_generation`]).
    generation: u64,
    op: Op,
}

/// What another process did, as applied to a function of this one.
enum RemoteOp<'a> {
    Clear {
        tier: &'a Connection,
        generation: u64,
    },
    Invalidate {
        key: &'a [u8],
    },
    Insert {
        key: &'a [u8],
        value: &'a [u8],
    },
    /// Events may have been missed: empty the in-process tier, read the generation again.
    Resync,
}

/// A function of this process that hears the others' writes: its in-process cache and the
/// state of its shared tier.
pub(crate) struct Subscriber<K, V> {
    pub(crate) name: &'static str,
    /// Where the function is defined, for the message about two functions of one name.
    pub(crate) defined_at: &'static std::panic::Location<'static>,
    pub(crate) local: Cache<K, V>,
    /// The tier in front of Redis in a chain (the disk): it drops what the in-process cache
    /// drops, so that a copy there never outlives an invalidation this process heard.
    pub(crate) near: Option<Arc<dyn Tier<K, V>>>,
    pub(crate) state: Arc<FnState>,
    pub(crate) decode_key: fn(&[u8]) -> Option<K>,
    pub(crate) decode_value: fn(&[u8]) -> Option<V>,
}

/// A [`Subscriber`] whatever its key and value types.
trait Apply: Send + Sync {
    fn name(&self) -> &'static str;
    fn defined_at(&self) -> &'static std::panic::Location<'static>;
    fn state(&self) -> &FnState;
    fn apply(&self, op: &RemoteOp<'_>);
}

impl<K, V> Apply for Subscriber<K, V>
where
    K: std::hash::Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    fn name(&self) -> &'static str {
        self.name
    }

    fn defined_at(&self) -> &'static std::panic::Location<'static> {
        self.defined_at
    }

    fn state(&self) -> &FnState {
        &self.state
    }

    /// Applies another process's `clear`, `invalidate` or `insert` to the in-process tier (and
    /// to the tier in front of Redis, if any).
    ///
    /// With a tier in front of Redis, a removal reaches it before the in-process cache, and
    /// again after. In-process first, a lookup between the two found nothing here, read the
    /// copy still in front and stored it again, and the removal was undone in this process
    /// (and a caller that saw the in-process copy gone could still read the old value). The
    /// second removal in front takes what a computation finishing between the two wrote there.
    /// An insert is written in front twice as well, for the same computation: it checks whether
    /// it was superseded when it stores in front, and it is only once the in-process insert is
    /// done.
    fn apply(&self, op: &RemoteOp<'_>) {
        let cache = &self.local;
        let near = self.near.as_deref();
        let clear = || {
            if let Some(near) = near {
                near.clear();
            }
            cache.clear();
            if let Some(near) = near {
                near.clear();
            }
        };
        let invalidate = |key: &K| {
            if let Some(near) = near {
                near.remove(key);
            }
            cache.invalidate(key);
            if let Some(near) = near {
                near.remove(key);
            }
        };
        match op {
            RemoteOp::Clear { tier, generation } => {
                // The generation first: a lookup that finds nothing here after the clear must
                // not take an entry of the cleared generation for current in Redis.
                self.state.set_generation(tier, tier.epoch(), *generation);
                clear();
            }
            RemoteOp::Invalidate { key } => {
                if let Some(key) = (self.decode_key)(key) {
                    invalidate(&key);
                }
            }
            RemoteOp::Insert { key, value } => {
                if let (Some(key), Some(value)) =
                    ((self.decode_key)(key), (self.decode_value)(value))
                {
                    match near {
                        // In front, before and after, as for a removal: the insert in process
                        // supersedes a computation of the key, which may still store its older
                        // result in front between the first write there and that insert.
                        Some(near) => {
                            near.put(&key, &value);
                            cache.insert(key.clone(), value.clone());
                            near.put(&key, &value);
                        }
                        None => cache.insert(key, value),
                    }
                } else if let Some(key) = (self.decode_key)(key) {
                    invalidate(&key);
                }
            }
            RemoteOp::Resync => {
                // Writes may have been missed: no copy of this process can be trusted. The
                // generation first, as for a clear.
                self.state.forget_generation();
                clear();
            }
        }
    }
}

/// Every function of the process with a shared tier, from its first use.
static SUBSCRIBERS: RwLock<Vec<Arc<dyn Apply>>> = RwLock::new(Vec::new());

/// Lists a function to hear the other processes' writes; or, when another function of the
/// process already has its name, does not, and returns where that one is defined: the two
/// would read each other's entries in Redis.
pub(crate) fn subscribe<K, V>(
    subscriber: Arc<Subscriber<K, V>>,
) -> Result<(), &'static std::panic::Location<'static>>
where
    K: std::hash::Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    let mut subscribers = SUBSCRIBERS.write();
    if let Some(first) = subscribers
        .iter()
        .find(|listed| listed.name() == subscriber.name)
    {
        return Err(first.defined_at());
    }
    subscribers.push(subscriber);
    Ok(())
}

/// Applies the writes that the functions of the process could not apply to Redis during an
/// outage (see `FnState::replay`), without waiting for their next call.
fn replay_pending(tier: &Connection) {
    let subscribers = SUBSCRIBERS.read().clone();
    for subscriber in &subscribers {
        let state = subscriber.state();
        if state.has_pending() {
            if let Err(unavailable) = super::block_on(state.replay(tier, subscriber.name())) {
                state.count(unavailable);
            }
        }
    }
}

/// After a failure of Redis: every function leaves the writes Redis acknowledged lately to be
/// applied again (see `FnState::redo_recent`).
pub(crate) fn redo_recent_writes() {
    let subscribers = SUBSCRIBERS.read().clone();
    for subscriber in &subscribers {
        subscriber.state().redo_recent();
    }
}

/// How often the subscriber checks that its connection still answers (a `PING`), and applies
/// writes left by an outage.
const CHECK_EVERY: Duration = Duration::from_secs(1);

/// How long the subscriber waits for the answer to its `PING` before it takes the connection
/// for lost.
const PONG_WITHIN: Duration = Duration::from_secs(1);

/// Applies another process's write to the functions called `name` (every one for `None`).
fn apply_remote(name: Option<&str>, op: &RemoteOp<'_>) {
    // A copy: applying may run user code (an eviction listener) that attaches another function.
    let subscribers = SUBSCRIBERS.read().clone();
    for subscriber in &subscribers {
        if name.is_none_or(|name| subscriber.name() == name) {
            subscriber.apply(op);
        }
    }
}

/// This process, among the publishers.
pub(crate) fn origin() -> u64 {
    static ORIGIN: OnceLock<u64> = OnceLock::new();
    *ORIGIN.get_or_init(super::unique_u64)
}

/// Publishes what a handle did in `generation`; a failure is counted by the tier's circuit
/// breaker only.
pub(crate) async fn publish(tier: &Connection, function: &str, generation: u64, op: Op) {
    let Some(cmd) = publish_cmd(tier, function, generation, op) else {
        return;
    };
    let _ = tier.query::<i64>(cmd).await;
}

/// The `PUBLISH` of what a handle did in `generation` (for a pipeline).
pub(crate) fn publish_cmd(
    tier: &Connection,
    function: &str,
    generation: u64,
    op: Op,
) -> Option<redis::Cmd> {
    let event = Event {
        version: EVENT_VERSION,
        origin: origin(),
        function: function.to_string(),
        generation,
        op,
    };
    let bytes = postcard::to_stdvec(&event).ok()?;
    let mut cmd = redis::cmd("PUBLISH");
    cmd.arg(keys::channel(&tier.config.prefix)).arg(bytes);
    Some(cmd)
}

/// Starts the subscriber thread of `tier`; it ends when the tier is closed.
pub(crate) fn start(tier: &Arc<Connection>) {
    let tier = Arc::downgrade(tier);
    let _ = thread::Builder::new()
        .name("memokit-redis-events".into())
        .spawn(move || {
            let mut lost = false;
            let mut attempt = 0;
            loop {
                let Some(strong) = tier.upgrade() else { return };
                if strong.closed.load(Relaxed) {
                    return;
                }
                let pause = strong.config.retry_after;
                if let Err(error) = listen(&strong, &mut lost, attempt) {
                    attempt += 1;
                    // Other processes' writes are not heard now: the in-process copies of the
                    // shared functions may be stale, so they go, at once (before the loss is
                    // visible in `is_subscribed`) and after every failed attempt to subscribe
                    // again (every `retry_after`), as Redis's client-side caching does when
                    // its invalidation connection drops.
                    apply_remote(None, &RemoteOp::Resync);
                    strong.subscribed.store(false, Relaxed);
                    if !lost {
                        strong.failed(&format!("events subscription: {error}"));
                    }
                    lost = true;
                }
                drop(strong);
                thread::sleep(pause);
            }
        });
}

/// Subscribes and applies events until the connection fails or the tier is closed.
fn listen(tier: &Connection, lost: &mut bool, attempt: usize) -> redis::RedisResult<()> {
    // On a cluster, after a failed attempt, the next node: the one that failed may be down.
    let client = &tier.listen_on[attempt % tier.listen_on.len()];
    let mut conn =
        client.get_connection_with_timeout(tier.config.timeout.max(Duration::from_millis(100)))?;
    // A short read timeout, so that a closed tier is noticed.
    conn.set_read_timeout(Some(Duration::from_millis(200)))?;
    let mut pubsub = conn.as_pubsub();
    pubsub.subscribe(keys::channel(&tier.config.prefix))?;
    tier.subscribed.store(true, Relaxed);
    if std::mem::take(lost) {
        // Events published meanwhile are gone: start over from Redis.
        apply_remote(None, &RemoteOp::Resync);
    }
    replay_pending(tier);
    let mut checked = Instant::now();
    loop {
        if tier.closed.load(Relaxed) {
            tier.subscribed.store(false, Relaxed);
            return Ok(());
        }
        if checked.elapsed() >= CHECK_EVERY {
            // A connection cut without a reset (a partition) gives no error by itself.
            pubsub.set_read_timeout(Some(PONG_WITHIN))?;
            pubsub.ping::<redis::Value>()?;
            pubsub.set_read_timeout(Some(Duration::from_millis(200)))?;
            replay_pending(tier);
            checked = Instant::now();
        }
        let message = match pubsub.get_message() {
            Ok(message) => message,
            Err(error) if error.is_timeout() => continue,
            Err(error) => return Err(error),
        };
        let Ok(event) = postcard::from_bytes::<Event>(message.get_payload_bytes()) else {
            continue;
        };
        if event.version != EVENT_VERSION || event.origin == origin() {
            continue;
        }
        let op = match &event.op {
            Op::Clear { generation } => RemoteOp::Clear {
                tier,
                generation: *generation,
            },
            Op::Invalidate { key } => RemoteOp::Invalidate { key },
            Op::Insert { key, value } => RemoteOp::Insert { key, value },
        };
        apply_remote(Some(&event.function), &op);
        if !matches!(event.op, Op::Clear { .. }) {
            reconcile_generation(tier, &event.function, event.generation);
        }
    }
}

/// Another process wrote `function`'s entries in generation `theirs`: if this process uses
/// another one, and the generation counter in Redis is behind the higher of the two (it was
/// lost: a `FLUSHALL`, an eviction under `maxmemory`), the two processes read different
/// entries and a write in one would not reach the other's. The counter is then set past both
/// and the new generation announced as a clear, which every process (this one too) follows.
/// A counter that is not behind means the write raced a clear this process heard first (or
/// will hear): nothing to mend.
fn reconcile_generation(tier: &Connection, function: &str, theirs: u64) {
    let subscribers = SUBSCRIBERS.read().clone();
    for subscriber in subscribers.iter().filter(|s| s.name() == function) {
        let state = subscriber.state();
        // None known: it is read from Redis at the function's next use.
        let Some(known) = state.known_generation(tier) else {
            continue;
        };
        if known == theirs {
            continue;
        }
        match super::block_on(state.mend_generation(tier, function, known.max(theirs))) {
            Ok(Some(generation)) => {
                subscriber.apply(&RemoteOp::Clear { tier, generation });
                super::block_on(publish(
                    tier,
                    function,
                    generation,
                    Op::Clear { generation },
                ));
            }
            Ok(None) => {}
            Err(unavailable) => {
                state.count(unavailable);
                subscriber.apply(&RemoteOp::Resync);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use parking_lot::Mutex;

    use super::*;
    use crate::tier::map::MapTier;
    use crate::tier::redis::Shared;

    /// The copy an older computation of the key stores in front.
    const OLDER: u64 = 1;
    /// The value another process inserted.
    const INSERTED: u64 = 2;

    /// Inside a write in front, after it: a computation of the key stores its older result
    /// there, as it does on the disk while it is not superseded, that is while the in-process
    /// cache does not hold the inserted value yet (the in-process insert supersedes it).
    fn older_result_stored(tier: &MapTier, key: u64) {
        if tier.local().get(&key) != Some(INSERTED) {
            tier.copies.lock().insert(key, OLDER);
        }
    }

    fn decode(bytes: &[u8]) -> Option<u64> {
        Some(u64::from_le_bytes(bytes.try_into().ok()?))
    }

    #[test]
    fn an_older_result_stored_in_front_during_a_remote_insert_is_replaced() {
        let local: Cache<u64, u64> = Cache::new(10);
        let near = Arc::new(MapTier {
            local: Mutex::new(Some(local.clone())),
            after_put: Some(older_result_stored),
            ..MapTier::default()
        });
        let shared = Shared::<u64, u64>::new(
            Duration::from_secs(60),
            None,
            None,
            |key| Some(key.to_le_bytes().to_vec()),
            decode,
            |value, _| Some(value.to_le_bytes().to_vec()),
            decode,
        );
        let subscriber = Subscriber {
            name: "pubsub::tests::insert",
            defined_at: std::panic::Location::caller(),
            local: local.clone(),
            near: Some(near.clone() as Arc<dyn Tier<u64, u64>>),
            state: shared.state.clone(),
            decode_key: decode,
            decode_value: decode,
        };
        let key = 7u64.to_le_bytes();
        subscriber.apply(&RemoteOp::Insert {
            key: &key,
            value: &INSERTED.to_le_bytes(),
        });
        assert_eq!(local.get(&7), Some(INSERTED));
        assert_eq!(
            near.copies.lock().get(&7),
            Some(&INSERTED),
            "the copy in front is the inserted value, not the older result stored beside it"
        );
    }
}
