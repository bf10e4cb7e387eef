//! How the tiers (Redis, disk) store values and keys.
//!
//! A value is written in one of two layouts, chosen by the function's [`Codec`]; a reader
//! takes either, told apart by the first byte:
//!
//! - **Binary** ([`Codec::Postcard`], the default, and always on the disk tier):
//!   `[FORMAT_VERSION = 2][layout][fingerprint of the value type: 4 bytes LE][payload]`.
//!   Layout `0`: the payload is the value in postcard. Layout `1`: the payload is the
//!   postcard bytes compressed as one LZ4 block, behind their length (4 bytes LE): what
//!   `lz4_flex::block::compress_prepend_size` writes and python-lz4's `lz4.block.decompress`
//!   reads. A value is compressed when its postcard bytes are more than
//!   [`Encoding::compress_above`] and the block (with its length) is smaller than they are.
//! - **JSON** ([`Codec::Json`]): one JSON document,
//!   `{"memokit":2,"fingerprint":"<8 hex digits>","value":<the value>}`, never compressed, so
//!   that `redis-cli GET` and any JSON parser read it (`json.loads(raw)["value"]`).
//!
//! A value that does not decode (an older format version, another value type, an unknown
//! layout, bytes postcard or JSON rejects, a damaged LZ4 block, trailing bytes) is a miss: the
//! caller counts it and overwrites it. Keys are postcard without a header (the type is part of
//! the function).

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::Codec;

/// The layout of stored values; bump it when the header or a layout changes. Version 1 (up to
/// memokit 0.1's first releases) had no layout byte: its entries are counted misses, and are
/// overwritten.
pub const FORMAT_VERSION: u8 = 2;

/// Layout byte: the payload is postcard.
const POSTCARD: u8 = 0;
/// Layout byte: the payload is postcard in one LZ4 block, behind its length (u32 LE).
const POSTCARD_LZ4: u8 = 1;

/// Version, layout, fingerprint.
const HEADER: usize = 6;

/// The postcard size above which a value is compressed, unless configured otherwise (Redis:
/// `Config::compress_above`; the disk tier always uses it).
pub const COMPRESS_ABOVE: usize = 1024;

/// An LZ4 block expands at most about 255 times (a 255 byte extends a match by 255 bytes), so
/// a stated length above this many times the block's is damage, refused before any allocation.
const LZ4_MAX_RATIO: usize = 255;

/// How one write encodes a value: the codec (the function's, else the connection's default)
/// and the compression threshold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Encoding {
    /// The layout written.
    pub codec: Codec,
    /// Binary values with more postcard bytes than this are compressed when it saves bytes;
    /// `usize::MAX`: never.
    pub compress_above: usize,
}

impl Encoding {
    /// Postcard, compressed above [`COMPRESS_ABOVE`] bytes: the disk tier's, and the Redis
    /// tier's unless configured otherwise.
    pub const DEFAULT: Encoding = Encoding {
        codec: Codec::Postcard,
        compress_above: COMPRESS_ABOVE,
    };
}

/// A stable (per compiler) 32-bit FNV-1a hash of the value type's name, so that a function
/// whose return type was renamed or changed to another type misses instead of misreading.
pub(crate) fn fingerprint<V: ?Sized>() -> u32 {
    let mut hash: u32 = 0x811c_9dc5;
    for byte in std::any::type_name::<V>().bytes() {
        hash ^= u32::from(byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    hash
}

/// The stored form of `value`, or `None` if serde refuses it (postcard accepts nearly
/// everything; JSON refuses, e.g., a map whose keys are not strings or numbers).
pub fn encode_value<V: Serialize>(value: &V, encoding: Encoding) -> Option<Vec<u8>> {
    encode_with(value, encoding, fingerprint::<V>())
}

/// The value stored in `bytes`, whichever codec wrote it, or `None` when they were written
/// by another format version, for another type, or do not decode.
pub fn decode_value<V: DeserializeOwned>(bytes: &[u8]) -> Option<V> {
    decode_with(bytes, fingerprint::<V>())
}

/// [`encode_value`] for a function's entry: the fingerprint covers the key type as well, so
/// that a function whose key type changed (a `u32` id become an `i64`, whose bytes may read
/// as another key) misses instead of answering with another key's value.
pub(crate) fn encode_entry<K: ?Sized, V: Serialize>(
    value: &V,
    encoding: Encoding,
) -> Option<Vec<u8>> {
    encode_with(value, encoding, fingerprint::<(&K, V)>())
}

/// The value of a function's entry written by [`encode_entry`] for the same key and value
/// types.
pub(crate) fn decode_entry<K: ?Sized, V: DeserializeOwned>(bytes: &[u8]) -> Option<V> {
    decode_with(bytes, fingerprint::<(&K, V)>())
}

fn encode_with<V: Serialize>(value: &V, encoding: Encoding, fingerprint: u32) -> Option<Vec<u8>> {
    match encoding.codec {
        Codec::Postcard => encode_binary(value, encoding.compress_above, fingerprint),
        Codec::Json => encode_json(value, fingerprint),
    }
}

fn decode_with<V: DeserializeOwned>(bytes: &[u8], fingerprint: u32) -> Option<V> {
    match *bytes.first()? {
        FORMAT_VERSION => decode_binary(bytes, fingerprint),
        b'{' => decode_json(bytes, fingerprint),
        _ => None,
    }
}

fn encode_binary<V: Serialize>(
    value: &V,
    compress_above: usize,
    fingerprint: u32,
) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(64);
    out.extend_from_slice(&[FORMAT_VERSION, POSTCARD]);
    out.extend_from_slice(&fingerprint.to_le_bytes());
    let mut out = postcard::to_io(value, out).ok()?;
    let payload = out.len() - HEADER;
    // The stated length is a u32: a larger value (Redis takes at most 512 MB) stays as it is.
    if payload > compress_above && u32::try_from(payload).is_ok() {
        let packed = lz4_flex::block::compress_prepend_size(&out[HEADER..]);
        if packed.len() < payload {
            out.truncate(HEADER);
            out[1] = POSTCARD_LZ4;
            out.extend_from_slice(&packed);
        }
    }
    Some(out)
}

fn decode_binary<V: DeserializeOwned>(bytes: &[u8], fingerprint: u32) -> Option<V> {
    if bytes.len() < HEADER || bytes[2..HEADER] != fingerprint.to_le_bytes() {
        return None;
    }
    let payload = &bytes[HEADER..];
    match bytes[1] {
        POSTCARD => postcard_exact(payload),
        POSTCARD_LZ4 => postcard_exact(&decompress(payload)?),
        _ => None,
    }
}

/// The bytes of an LZ4 block behind its length, or `None` when damaged (a length the block
/// cannot hold is refused before anything is allocated).
fn decompress(payload: &[u8]) -> Option<Vec<u8>> {
    let (stated, block) = payload.split_first_chunk::<4>()?;
    let stated = usize::try_from(u32::from_le_bytes(*stated)).ok()?;
    if stated > block.len().saturating_mul(LZ4_MAX_RATIO) {
        return None;
    }
    let mut out = vec![0; stated];
    match lz4_flex::block::decompress_into(block, &mut out) {
        Ok(written) if written == stated => Some(out),
        _ => None,
    }
}

fn postcard_exact<V: DeserializeOwned>(bytes: &[u8]) -> Option<V> {
    match postcard::take_from_bytes::<V>(bytes) {
        Ok((value, [])) => Some(value),
        _ => None,
    }
}

fn encode_json<V: Serialize>(value: &V, fingerprint: u32) -> Option<Vec<u8>> {
    use std::io::Write;
    let mut out = Vec::with_capacity(64);
    write!(
        out,
        "{{\"memokit\":{FORMAT_VERSION},\"fingerprint\":\"{fingerprint:08x}\",\"value\":"
    )
    .ok()?;
    serde_json::to_writer(&mut out, value).ok()?;
    out.push(b'}');
    Some(out)
}

/// A JSON entry (see the module docs); fields in any order, others ignored.
#[derive(Deserialize)]
struct Envelope<'a, V> {
    memokit: u8,
    #[serde(borrow)]
    fingerprint: &'a str,
    value: V,
}

fn decode_json<V: DeserializeOwned>(bytes: &[u8], fingerprint: u32) -> Option<V> {
    let envelope: Envelope<'_, V> = serde_json::from_slice(bytes).ok()?;
    let expected = format!("{fingerprint:08x}");
    (envelope.memokit == FORMAT_VERSION && envelope.fingerprint == expected)
        .then_some(envelope.value)
}

/// The key's bytes (postcard, no header: the type is part of the function).
pub(crate) fn encode_key<K: Serialize>(key: &K) -> Option<Vec<u8>> {
    postcard::to_stdvec(key).ok()
}

/// The key of an event from another process.
#[cfg_attr(not(feature = "redis"), allow(dead_code))]
pub(crate) fn decode_key<K: DeserializeOwned>(bytes: &[u8]) -> Option<K> {
    postcard_exact(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    type Value = (u64, String, Vec<u8>);

    const JSON: Encoding = Encoding {
        codec: Codec::Json,
        compress_above: COMPRESS_ABOVE,
    };

    fn value(bytes: usize) -> Value {
        (42, "answer".to_string(), vec![7; bytes])
    }

    /// The postcard payload of `value(bytes)`: 1 + 1 + 6 + the varint length + the bytes.
    fn payload_of(bytes: usize) -> usize {
        postcard::to_stdvec(&value(bytes)).unwrap().len()
    }

    #[test]
    fn small_values_are_plain_postcard_behind_the_header() {
        let bytes = encode_value(&value(3), Encoding::DEFAULT).unwrap();
        assert_eq!(bytes[..2], [FORMAT_VERSION, POSTCARD]);
        assert_eq!(bytes[2..HEADER], fingerprint::<Value>().to_le_bytes());
        assert_eq!(bytes[HEADER..], postcard::to_stdvec(&value(3)).unwrap());
        assert_eq!(decode_value::<Value>(&bytes), Some(value(3)));
    }

    #[test]
    fn large_values_are_compressed_and_round_trip() {
        let bytes = encode_value(&value(100_000), Encoding::DEFAULT).unwrap();
        assert_eq!(bytes[..2], [FORMAT_VERSION, POSTCARD_LZ4]);
        assert!(bytes.len() < 1_000, "{} bytes", bytes.len());
        let stated = u32::from_le_bytes(bytes[HEADER..HEADER + 4].try_into().unwrap());
        assert_eq!(stated as usize, payload_of(100_000), "the postcard length");
        assert_eq!(decode_value::<Value>(&bytes), Some(value(100_000)));
    }

    #[test]
    fn the_threshold_is_on_the_postcard_size_and_exclusive() {
        // A payload of exactly 40 bytes at a threshold of 40 stays plain; 41 is compressed.
        let at = |threshold: usize, bytes: usize| {
            let encoding = Encoding {
                compress_above: threshold,
                ..Encoding::DEFAULT
            };
            encode_value(&value(bytes), encoding).unwrap()[1]
        };
        let bytes = 40 - payload_of(0);
        assert_eq!(payload_of(bytes), 40);
        assert_eq!(at(40, bytes), POSTCARD);
        assert_eq!(at(39, bytes), POSTCARD_LZ4);
        assert_eq!(at(usize::MAX, 100_000), POSTCARD, "never");
        // The default: a value of 1,024 postcard bytes stays plain, one of 1,025 is compressed.
        let bytes = COMPRESS_ABOVE - payload_of(0) - 1; // the length's varint takes 2 bytes
        assert_eq!(payload_of(bytes), COMPRESS_ABOVE);
        assert_eq!(at(COMPRESS_ABOVE, bytes), POSTCARD);
        assert_eq!(payload_of(bytes + 1), COMPRESS_ABOVE + 1);
        assert_eq!(at(COMPRESS_ABOVE, bytes + 1), POSTCARD_LZ4);
    }

    #[test]
    fn a_value_compression_would_not_shrink_stays_plain() {
        // Bytes with no repetition LZ4 can find: the block would be larger than the input.
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let noise: Vec<u8> = (0..4_096)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect();
        let bytes = encode_value(&noise, Encoding::DEFAULT).unwrap();
        assert_eq!(bytes[1], POSTCARD);
        assert_eq!(
            bytes.len(),
            HEADER + postcard::to_stdvec(&noise).unwrap().len()
        );
        assert_eq!(decode_value::<Vec<u8>>(&bytes), Some(noise));
    }

    #[test]
    fn json_entries_are_plain_json_documents_never_compressed() {
        let bytes = encode_value(&value(3), JSON).unwrap();
        let text = std::str::from_utf8(&bytes).unwrap();
        assert_eq!(
            text,
            format!(
                r#"{{"memokit":2,"fingerprint":"{:08x}","value":[42,"answer",[7,7,7]]}}"#,
                fingerprint::<Value>()
            )
        );
        assert_eq!(decode_value::<Value>(&bytes), Some(value(3)));
        let large = encode_value(&value(100_000), JSON).unwrap();
        assert_eq!(large[0], b'{');
        assert!(large.len() > 200_000, "not compressed");
        assert_eq!(decode_value::<Value>(&large), Some(value(100_000)));
        // Another order of the fields and more fields (as another language may write it).
        let other = format!(
            r#" {{"value":[1,"a",[]],"extra":null,"fingerprint":"{:08x}","memokit":2}}"#,
            fingerprint::<Value>()
        );
        assert_eq!(
            decode_value::<Value>(other.trim().as_bytes()),
            Some((1, "a".into(), vec![]))
        );
    }

    #[test]
    fn anything_else_is_a_miss() {
        let bytes = encode_value(&value(3), Encoding::DEFAULT).unwrap();
        let large = encode_value(&value(100_000), Encoding::DEFAULT).unwrap();
        let json = encode_value(&value(3), JSON).unwrap();
        for bytes in [&bytes, &large, &json] {
            // Another type under the same key.
            assert_eq!(decode_value::<(u64, String)>(bytes), None);
            assert_eq!(decode_value::<u64>(bytes), None);
            // Truncated, or with trailing bytes.
            assert_eq!(decode_value::<Value>(&bytes[..bytes.len() - 1]), None);
            let mut longer = bytes.clone();
            longer.push(0);
            assert_eq!(decode_value::<Value>(&longer), None);
        }
        // Format version 1: `[1][fingerprint][postcard]`, no layout byte.
        let mut old = vec![1];
        old.extend_from_slice(&fingerprint::<Value>().to_le_bytes());
        old.extend_from_slice(&postcard::to_stdvec(&value(3)).unwrap());
        assert_eq!(decode_value::<Value>(&old), None);
        // Another version or layout byte, in either layout.
        for (at, byte) in [(0, 3), (0, 0), (1, 2), (1, 0xff)] {
            let mut changed = bytes.clone();
            changed[at] = byte;
            assert_eq!(decode_value::<Value>(&changed), None, "byte {at} = {byte}");
        }
        let older_json = String::from_utf8(json.clone())
            .unwrap()
            .replace(":2,", ":1,");
        assert_eq!(decode_value::<Value>(older_json.as_bytes()), None);
        let other_type = String::from_utf8(json)
            .unwrap()
            .replace("\"fingerprint\":\"", "\"fingerprint\":\"0");
        assert_eq!(decode_value::<Value>(other_type.as_bytes()), None);
        // Garbage, empty, a header alone.
        assert_eq!(decode_value::<String>(b"garbage"), None);
        assert_eq!(decode_value::<String>(b"{not json"), None);
        assert_eq!(decode_value::<String>(b""), None);
        assert_eq!(decode_value::<String>(&bytes[..HEADER]), None);
    }

    #[test]
    fn a_damaged_block_is_a_miss_without_a_large_allocation() {
        let large = encode_value(&value(100_000), Encoding::DEFAULT).unwrap();
        // A stated length far above what the block can hold.
        let mut lying = large.clone();
        lying[HEADER..HEADER + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(decode_value::<Value>(&lying), None);
        // A stated length the block does not fill, or overflows.
        for stated in [payload_of(100_000) - 1, payload_of(100_000) + 1] {
            let mut wrong = large.clone();
            wrong[HEADER..HEADER + 4].copy_from_slice(&(stated as u32).to_le_bytes());
            assert_eq!(decode_value::<Value>(&wrong), None, "stated {stated}");
        }
        // Bytes of the block changed or cut off.
        for at in [HEADER + 4, HEADER + 6, large.len() / 2, large.len() - 1] {
            let mut damaged = large.clone();
            damaged[at] ^= 0x5a;
            assert_ne!(
                decode_value::<Value>(&damaged),
                Some(value(100_000)),
                "at {at}"
            );
        }
        assert_eq!(decode_value::<Value>(&large[..HEADER + 3]), None);
        assert_eq!(decode_value::<Value>(&large[..large.len() / 2]), None);
    }

    #[test]
    fn keys_round_trip() {
        let key = ("ann".to_string(), true);
        let bytes = encode_key(&key).unwrap();
        assert_eq!(decode_key::<(String, bool)>(&bytes), Some(key));
        assert_eq!(decode_key::<(String, bool)>(&[0xff]), None);
    }

    /// Structured values of many sizes, repetitive enough for LZ4 to find something at times.
    fn values() -> impl Strategy<Value = Vec<(u32, String, Option<f64>)>> {
        prop::collection::vec(
            (0_u32..1_000, "[a-c]{0,40}", prop::option::of(-1e6_f64..1e6)),
            0..200,
        )
    }

    proptest! {
        #[test]
        fn every_value_round_trips_in_every_layout(
            value in values(),
            compress_above in prop_oneof![Just(0_usize), 0_usize..4_000, Just(usize::MAX)],
        ) {
            for codec in [Codec::Postcard, Codec::Json] {
                let bytes = encode_value(&value, Encoding { codec, compress_above }).unwrap();
                prop_assert_eq!(decode_value::<Vec<(u32, String, Option<f64>)>>(&bytes), Some(value.clone()));
                let plain = HEADER + postcard::to_stdvec(&value).unwrap().len();
                if codec == Codec::Postcard {
                    prop_assert!(bytes.len() <= plain, "never larger than plain postcard");
                    prop_assert_eq!(bytes[1] == POSTCARD_LZ4, bytes.len() < plain);
                }
            }
        }

        #[test]
        fn damaged_bytes_never_panic(value in values(), at in any::<prop::sample::Index>(), byte in any::<u8>()) {
            for codec in [Codec::Postcard, Codec::Json] {
                let mut bytes = encode_value(&value, Encoding { codec, compress_above: 0 }).unwrap();
                let at = at.index(bytes.len());
                bytes[at] = byte;
                let _ = decode_value::<Vec<(u32, String, Option<f64>)>>(&bytes);
                let _ = decode_value::<Vec<(u32, String, Option<f64>)>>(&bytes[..at]);
            }
        }
    }
}
