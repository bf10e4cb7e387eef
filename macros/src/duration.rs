//! Duration strings: `"250ms"`, `"30s"`, `"5m"`, `"1h30m"`, `"2d"`.

/// The duration strings accepted, for error messages.
macro_rules! string_form {
    () => {
        "a duration string such as \"250ms\", \"30s\", \"5m\", \"1h30m\" or \"2d\" \
         (units d, h, m, s, ms, each at most once, largest first)"
    };
}

/// What a duration argument accepts, for error messages.
pub(crate) const EXPECTED: &str = concat!("an integer number of seconds or ", string_form!());

/// What a duration string looks like, for arguments that take no integer seconds (`jitter`).
pub(crate) const EXPECTED_STRING: &str = string_form!();

const UNITS: [(&str, u64); 5] = [
    ("d", 86_400_000_000_000),
    ("h", 3_600_000_000_000),
    ("m", 60_000_000_000),
    ("s", 1_000_000_000),
    ("ms", 1_000_000),
];

/// Nanoseconds in `text`, or `None` if it is not a duration string or does not fit a `u64`
/// (see [`too_large`]).
pub(crate) fn parse_nanos(text: &str) -> Option<u64> {
    parse_wide(text).and_then(|nanos| u64::try_from(nanos).ok())
}

/// Whether `text` is a duration string too long for a `u64` of nanoseconds (about 584 years).
pub(crate) fn too_large(text: &str) -> bool {
    parse_wide(text).is_some_and(|nanos| nanos > u128::from(u64::MAX))
}

/// Nanoseconds in `text` (saturating), or `None` if it is not a duration string.
fn parse_wide(text: &str) -> Option<u128> {
    let mut rest = text.trim();
    if rest.is_empty() {
        return None;
    }
    let mut total: u128 = 0;
    // Units must come largest first, each once: "1h30m", not "30m1h".
    let mut next_unit = 0;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return None;
        }
        let number: u128 = rest[..digits].parse().unwrap_or(u128::MAX);
        rest = &rest[digits..];
        let letters = rest
            .find(|c: char| !c.is_ascii_alphabetic())
            .unwrap_or(rest.len());
        let unit = &rest[..letters];
        rest = &rest[letters..];
        let position = UNITS.iter().position(|(name, _)| *name == unit)?;
        if position < next_unit {
            return None;
        }
        next_unit = position + 1;
        total = total.saturating_add(number.saturating_mul(u128::from(UNITS[position].1)));
    }
    Some(total)
}

#[cfg(test)]
mod tests {
    use super::{parse_nanos, too_large};

    #[test]
    fn accepts_the_documented_forms() {
        assert_eq!(parse_nanos("250ms"), Some(250_000_000));
        assert_eq!(parse_nanos("30s"), Some(30_000_000_000));
        assert_eq!(parse_nanos("5m"), Some(300_000_000_000));
        assert_eq!(parse_nanos("1h30m"), Some(5_400_000_000_000));
        assert_eq!(parse_nanos("2d"), Some(172_800_000_000_000));
        assert_eq!(parse_nanos("1m30s500ms"), Some(90_500_000_000));
    }

    #[test]
    fn rejects_everything_else() {
        for bad in [
            "",
            "5",
            "m",
            "5x",
            "30m1h",
            "1h1h",
            "-5s",
            "1.5s",
            "5 m",
            "99999999999999999999d",
        ] {
            assert_eq!(parse_nanos(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn tells_too_large_from_malformed() {
        assert!(too_large("99999999999999999999d"));
        assert!(too_large("100000000000000d"));
        assert!(too_large("213504d"), "just past 2^64 ns");
        assert!(!too_large("213503d"));
        assert_eq!(parse_nanos("213503d"), Some(213_503 * 86_400_000_000_000));
        assert!(!too_large("5x"));
        assert!(!too_large("2d"));
    }
}
