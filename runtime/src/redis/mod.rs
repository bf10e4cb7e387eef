//! The shared tier (feature `redis`): one cache across processes, in Redis.
//!
//! A function written `#[cached(size = 10_000, ttl = "1m", redis(ttl = "10m"))]` keeps its
//! results in the process (L1, as without the option) and in Redis (L2), under the Redis
//! connection of the process:
//!
//! ```no_run
//! use memokit::cached;
//!
//! #[cached(size = 10_000, ttl = "1m", redis(ttl = "10m"))]
//! fn render(page: u32) -> String {
//!     format!("<h1>page {page}</h1>") // runs once per key across every process
//! }
//!
//! fn main() -> Result<(), memokit::redis::Error> {
//!     memokit::redis::connect("redis://127.0.0.1:6379")?; // or set MEMOKIT_REDIS_URL
//!     assert_eq!(render(1), "<h1>page 1</h1>");
//!     println!("{}", render_cache().stats()); // … l2_hits=0 l2_misses=1 l2_errors=0 …
//!     Ok(())
//! }
//! ```
//!
//! # Behaviour
//! - **Lookup order**: in-process, then Redis, then the computation. A Redis hit fills the
//!   in-process tier; a computed value is written to both (`SET … PX ttl`). What the
//!   in-process tier would not store (an `Err`, a `None` with `cache_none = false`) is not
//!   written to Redis either.
//! - **Keys** are `prefix:{function:generation:hexkey}`: two functions, two applications (with
//!   different [`Config::prefix`]) or two argument tuples never share an entry. On a cluster
//!   ([`Config::cluster`]), the part in braces is the hash tag: an entry and its lease share a
//!   slot, and one function's entries spread over every slot; bulk writes go as one pipeline
//!   per slot, and invalidations as classic pub/sub, which a cluster delivers to every node.
//! - **Values** are [postcard](https://docs.rs/postcard) behind a 6-byte header (format
//!   version, layout, fingerprint of the value's type name), compressed with LZ4 above 1 KiB
//!   ([`Config::compress_above`]); or, for a function written `redis(codec = json)`, a JSON
//!   document that other languages read (see [Values](#values) for the bytes). A value that
//!   does not decode (the type changed, an older format) is a miss, counted in
//!   `l2_decode_errors` and overwritten, never a panic.
//! - **Handles write through**: `clear()` increments the function's generation in Redis (O(1);
//!   old entries age out by their TTL), `invalidate(&key)` deletes the entry, `insert(key,
//!   value)` writes it. Each is published on `prefix:events`, and every other process applies it
//!   to its in-process tier within milliseconds.
//! - **Distributed single flight**: when a key is in neither tier, one process computes it
//!   under a lease (`SET NX PX`, released only by its holder); the others poll Redis until the
//!   value appears. Having taken the lease, a process reads Redis once more before it
//!   computes, in case another stored the value meanwhile. A holder that dies delays the others until its lease expires
//!   ([`Config::lease_ttl`], or `redis(lease = "…")`), then one of them computes. While the
//!   holder computes, the lease is extended back to its full length every third of it (on the
//!   tier's runtime thread, for sync and async functions alike), so a computation longer than
//!   the lease still runs once. Only a holder cut off from Redis for longer than the lease may
//!   see the computation run twice; it is never wrong.
//! - **Outages**: with Redis down, slow or restarted, every call still returns its value (from
//!   the in-process tier or computed), with at most about one [`Config::timeout`] of extra
//!   latency per call: after a failure Redis is not asked for [`Config::retry_after`]. Failures
//!   count in `l2_errors`, the calls and writes made meanwhile without asking it in
//!   `l2_skipped`, a `tracing` warning (target `memokit::redis`) says that Redis is
//!   unreachable at most once per [`Config::warn_every`], and the tier resumes by itself.
//! - **No lost writes**: a handle's write (`invalidate`, `insert`, `clear`, their `_many`
//!   forms, and so `#[cache_put]` / `#[cache_evict]`) that cannot reach Redis is remembered by
//!   its function and applied there, as removals, before the function reads Redis again: its
//!   keys are deleted (an `insert`'s value is not kept: the key is computed again when asked),
//!   and a `clear`, or more than 1,024 keys waiting, starts a new generation. The subscriber
//!   thread applies them as soon as Redis answers again (it looks every second), also without
//!   any call, and publishes them, so the other processes drop their in-process copies too.
//!   They are counted in `l2_pending_writes` while they wait and `l2_replayed_writes` once
//!   applied. Until then, a process that did not make them may still read the old value from
//!   Redis: the window is the writer's own outage (plus at most about [`Config::retry_after`]
//!   or a second). A writer that dies before it reaches Redis again loses them, and Redis
//!   keeps the old values for their TTL. Writes Redis acknowledged are not safe either when a
//!   master dies before its replica has them (replication is asynchronous): after any failure,
//!   the writes acknowledged in the 2 s before it was noticed are made pending again, the same
//!   way.
//! - **In-process copies follow the invalidations**: invalidations published while a process
//!   cannot hear them are not replayed to it. So, as Redis's client-side caching does when its
//!   invalidation connection drops, a process that loses its subscription empties the
//!   in-process tier of its shared functions when it notices (at once for a closed
//!   connection; a silent one is found by a `PING` every second that must be answered within
//!   a second, so within about 2 to 3 s), again after every failed attempt to subscribe (every
//!   [`Config::retry_after`]), and once more when it is subscribed again. With `disk` in
//!   front of Redis (`#[cached(disk, redis(...))]`, see `memokit::disk`), the copies in the
//!   file follow the same events and go at the same moments. (`CLIENT TRACKING`
//!   would need a redirected connection of its own and gives the same rule on loss; the
//!   subscription the tier has anyway is used instead.)
//! - **One bad key stays one bad key**: a key that holds another type (`WRONGTYPE`) is a miss
//!   of that key alone, counted in `l2_errors`, and is deleted and overwritten by the computed
//!   value; the circuit stays closed for every other key and function.
//! - **Names are unique**: two functions of a process with one name (`name = "…"`) would read
//!   each other's entries; the one used first keeps Redis, the other runs in-process only, and
//!   a `tracing` error (target `memokit::redis`) names where both are defined. Names are not
//!   checked across processes: a name means one function everywhere.
//! - **Not connected**: until [`connect`] is called (or `MEMOKIT_REDIS_URL` is set), functions
//!   with the option are in-process only.
//!
//! # Values
//! Each function writes its values with one [`Codec`]: its `redis(codec = …)`, else the
//! connection's [`Config::codec`], itself [`Codec::Postcard`] by default. A reader takes both
//! layouts (the first byte tells them apart), so processes and functions may differ, and a
//! function moved from one codec to the other reads its older entries.
//!
//! **Postcard** (the default): `[2][layout][fingerprint: 4 bytes LE][payload]`. Byte 0 is
//! the format version; layout `0` means the payload is the value in postcard; layout `1`
//! means it is those postcard bytes compressed as one LZ4 block, behind their length (4
//! bytes LE). A value is compressed when its postcard bytes are more than
//! [`Config::compress_above`] (1,024 by default) and the block is smaller than they are, so
//! compression never makes an entry larger; small values pay nothing. Structured values of
//! 1.7–300 KB were stored in 20–44 % of their postcard bytes, for 0.5–2.5 µs per KB on writes
//! (`bench/results/CODEC.md`). LZ4 (the pure-Rust `lz4_flex`, no C build) was chosen over
//! zstd: zstd level 1 stored them in 1.3–1.6× fewer bytes again, but needs libzstd built by a C
//! compiler for every target (wasm included), which the runtime otherwise does without.
//!
//! **JSON** (`redis(codec = json)`): one JSON document, never compressed, so that any language
//! reads it with a plain `GET` and a JSON parser:
//!
//! ```text
//! {"memokit":2,"fingerprint":"9a3c11f0","value":{"sku":"A-1","cents":1999}}
//! ```
//!
//! `value` is the value as `serde_json` writes it; `memokit` (the format version) and
//! `fingerprint` (of the Rust type) are what memokit checks when it reads the entry back, and
//! a reader in another language ignores them: `json.loads(raw)["value"]` in Python,
//! `JSON.parse(raw).value` in Node. The envelope, rather than a binary header in front of the
//! JSON, keeps the entry a valid JSON document for `redis-cli`, `JSON.parse` and RedisInsight
//! alike. What JSON cannot hold is not stored (a map whose keys are not strings or numbers:
//! the call computes as without Redis), and a `NaN` or infinite `f64` is written as `null`,
//! which does not read back (a counted miss each time): keep such values on postcard. Integers
//! above 2^53 lose precision in JavaScript's `JSON.parse`.
//!
//! **Keys**, for a reader in another language: the entry of a call is
//! `prefix:{function:generation:hexkey}`, where `function` is the registry name (the module
//! path and the function's name, or `name = "…"`: set one for a name that does not move with
//! the code), `generation` is the number in `prefix:function:gen` (0 when that key is absent;
//! `clear()` increments it) and `hexkey` is the hex of the arguments in postcard: an unsigned
//! integer as a LEB128 varint (7 bits a byte, least significant first), a string (`&str` or
//! `String`) as its length as a varint then its UTF-8 bytes, a `bool` as one byte, several
//! arguments one after the other. In Python, for `fn price(sku: String)` named `"shop::price"`:
//!
//! ```text
//! def varint(n):
//!     out = bytearray()
//!     while True:
//!         out.append((n & 0x7F) | (0x80 if n > 0x7F else 0))
//!         n >>= 7
//!         if not n:
//!             return bytes(out)
//!
//! generation = int(r.get("memokit:shop::price:gen") or 0)
//! key = (varint(len(sku.encode())) + sku.encode()).hex()
//! raw = r.get(f"memokit:{{shop::price:{generation}:{key}}}")
//! price = json.loads(raw)["value"] if raw else None  # None: not cached (yet)
//! ```
//!
//! # Security
//! Values and keys are stored **in clear** in Redis: anyone who can read the Redis server can
//! read them. Functions whose results must not leave the process simply do not use the
//! option. Use TLS (`rediss://host:6380`; needs the `redis-tls` feature) and AUTH in the URL
//! (`redis://user:password@host:6379/0`, or `redis://:password@host` without ACL users); the
//! password never appears in memokit's messages.
//!
//! # Runtime
//! Sync functions talk to Redis from the calling thread, over a small pool of blocking
//! connections (reads and writes bounded by [`Config::timeout`]): an L2 hit costs about one
//! plain `GET`. Async functions await their operations on any executor (no tokio runtime is
//! needed by the caller): those run on a thread of memokit's own (`memokit-redis`), over one
//! multiplexed connection, which sync functions also fall back to when a pooled connection
//! was closed by the server.

use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::tier::codec;
use crate::tier::redis::Shared;
pub use crate::tier::redis::{
    connect, connect_with, disconnect, is_connected, is_subscribed, Config, Error,
};
pub use crate::tier::Codec;

/// The shared tier of a function with key `K` and value `V`: what `#[cached(redis(...))]`
/// expands to (`codec`: the function's `redis(codec = …)`, if any). Not part of the stable
/// API.
#[doc(hidden)]
pub fn __shared<K, V>(ttl: Duration, lease: Option<Duration>, codec: Option<Codec>) -> Shared<K, V>
where
    K: Serialize + DeserializeOwned,
    V: Serialize + DeserializeOwned,
{
    Shared::new(
        ttl,
        lease,
        codec,
        codec::encode_key::<K>,
        codec::decode_key::<K>,
        codec::encode_entry::<K, V>,
        codec::decode_entry::<K, V>,
    )
}
