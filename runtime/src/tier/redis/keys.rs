//! Redis key names. Every name starts with the configured prefix and the function's registry
//! name; entries also carry the function's generation and the key's bytes in hex:
//!
//! - `prefix:{function:generation:hexkey}`: an entry,
//! - `prefix:{function:generation:hexkey}:lease`: the lease of the process computing it,
//! - `prefix:function:gen`: the generation counter (`clear()` increments it),
//! - `prefix:events`: the pub/sub channel of invalidations.
//!
//! Hex keeps names readable in `redis-cli` and unambiguous: the last segment of an entry has
//! only hex digits, so no function name, generation or suffix can make two names equal.
//!
//! On a cluster, the part in braces (the hash tag) picks the slot: an entry and its lease share
//! one, which the lease's look at both in one round trip needs, while the entries of one
//! function spread over every slot (one slot per function would put a large function on one
//! node). The prefix has no braces (checked at `connect`) and a function name's `{`, `}` and
//! `%` are written `%7B`, `%7D` and `%25` there, so the tag is always the whole part in braces.

use std::fmt::Write;

/// The name of the entry of `key` (postcard bytes) in generation `generation` of `function`.
pub(crate) fn entry(prefix: &str, function: &str, generation: u64, key: &[u8]) -> String {
    let mut name = String::with_capacity(prefix.len() + function.len() + 24 + 2 * key.len());
    let _ = write!(name, "{prefix}:{{");
    for c in function.chars() {
        match c {
            '{' => name.push_str("%7B"),
            '}' => name.push_str("%7D"),
            '%' => name.push_str("%25"),
            c => name.push(c),
        }
    }
    let _ = write!(name, ":{generation}:");
    for byte in key {
        let _ = write!(name, "{byte:02x}");
    }
    name.push('}');
    name
}

/// The lease of an entry.
pub(crate) fn lease(entry: &str) -> String {
    format!("{entry}:lease")
}

/// The generation counter of `function`.
pub(crate) fn generation(prefix: &str, function: &str) -> String {
    format!("{prefix}:{function}:gen")
}

/// The pub/sub channel of `prefix`.
pub(crate) fn channel(prefix: &str) -> String {
    format!("{prefix}:events")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_namespaced_and_readable() {
        assert_eq!(entry("app", "m::f", 3, &[0, 0xab]), "app:{m::f:3:00ab}");
        assert_ne!(entry("app", "m::f", 3, &[1]), entry("app", "m::g", 3, &[1]));
        assert_ne!(
            entry("app", "m::f", 3, &[1]),
            entry("other", "m::f", 3, &[1])
        );
        assert_ne!(entry("app", "m::f", 3, &[1]), entry("app", "m::f", 4, &[1]));
        assert_ne!(
            entry("app", "m::f", 3, &[1]),
            entry("app", "m::f", 3, &[1, 0])
        );
        assert_eq!(lease("app:{f:0:01}"), "app:{f:0:01}:lease");
        assert_eq!(generation("app", "f"), "app:f:gen");
        assert_eq!(channel("app"), "app:events");
    }

    #[test]
    fn an_entry_and_its_lease_share_a_slot_and_entries_spread() {
        use redis::cluster_routing::Slot;
        for function in ["m::f", "odd}name", "{odd", "}", "{}"] {
            for key in [&[][..], &[1], &[2, 3]] {
                let entry = entry("app", function, 7, key);
                assert_eq!(
                    Slot::for_key(&entry),
                    Slot::for_key(lease(&entry)),
                    "{entry}"
                );
                assert_eq!(entry.matches('{').count(), 1, "{entry}");
            }
        }
        assert_ne!(entry("a", "%7B", 0, &[]), entry("a", "{", 0, &[]));
        let slots: std::collections::HashSet<_> = (0u16..64)
            .map(|key| Slot::for_key(entry("app", "m::f", 0, &key.to_le_bytes())))
            .collect();
        assert!(
            slots.len() > 32,
            "one function's entries spread: {}",
            slots.len()
        );
    }
}
