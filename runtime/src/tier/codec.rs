//! How the tiers (Redis, disk) store values and keys: postcard behind a format header.
//!
//! A stored value is `[FORMAT_VERSION][fingerprint of the value type: 4 bytes LE][postcard]`.
//! A value that does not decode (another format version, another value type, bytes postcard
//! rejects, trailing bytes) is a miss: the caller counts it and overwrites it.

use serde::de::DeserializeOwned;
use serde::Serialize;

/// The layout of stored values; bump it when the header or the codec changes.
pub(crate) const FORMAT_VERSION: u8 = 1;

const HEADER: usize = 5;

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

/// The stored form of `value`, or `None` if serde refuses it (e.g. a map with non-string keys
/// in a format that needs them; postcard accepts nearly everything).
pub(crate) fn encode_value<V: Serialize>(value: &V) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(64);
    out.push(FORMAT_VERSION);
    out.extend_from_slice(&fingerprint::<V>().to_le_bytes());
    postcard::to_io(value, out).ok()
}

/// The value stored in `bytes`, or `None` when they were written by another format version,
/// for another type, or do not decode.
pub(crate) fn decode_value<V: DeserializeOwned>(bytes: &[u8]) -> Option<V> {
    if bytes.len() < HEADER || bytes[0] != FORMAT_VERSION {
        return None;
    }
    if bytes[1..HEADER] != fingerprint::<V>().to_le_bytes() {
        return None;
    }
    match postcard::take_from_bytes::<V>(&bytes[HEADER..]) {
        Ok((value, [])) => Some(value),
        _ => None,
    }
}

/// The key's bytes (postcard, no header: the type is part of the function).
pub(crate) fn encode_key<K: Serialize>(key: &K) -> Option<Vec<u8>> {
    postcard::to_stdvec(key).ok()
}

/// The key of an event from another process.
#[cfg_attr(not(feature = "redis"), allow(dead_code))]
pub(crate) fn decode_key<K: DeserializeOwned>(bytes: &[u8]) -> Option<K> {
    match postcard::take_from_bytes::<K>(bytes) {
        Ok((key, [])) => Some(key),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip_and_anything_else_is_a_miss() {
        let value = (42_u64, "answer".to_string(), vec![1_u8, 2, 3]);
        let bytes = encode_value(&value).unwrap();
        assert_eq!(decode_value::<(u64, String, Vec<u8>)>(&bytes), Some(value));
        // Another type under the same key.
        assert_eq!(decode_value::<(u64, String)>(&bytes), None);
        assert_eq!(decode_value::<u64>(&bytes), None);
        // Another format version, truncated, garbage, trailing bytes.
        let mut old = bytes.clone();
        old[0] = 0;
        assert_eq!(decode_value::<(u64, String, Vec<u8>)>(&old), None);
        assert_eq!(
            decode_value::<(u64, String, Vec<u8>)>(&bytes[..bytes.len() - 1]),
            None
        );
        assert_eq!(decode_value::<String>(b"garbage"), None);
        assert_eq!(decode_value::<String>(b""), None);
        let mut longer = encode_value(&7_u32).unwrap();
        longer.push(0);
        assert_eq!(decode_value::<u32>(&longer), None);
    }

    #[test]
    fn keys_round_trip() {
        let key = ("ann".to_string(), true);
        let bytes = encode_key(&key).unwrap();
        assert_eq!(decode_key::<(String, bool)>(&bytes), Some(key));
        assert_eq!(decode_key::<(String, bool)>(&[0xff]), None);
    }
}
