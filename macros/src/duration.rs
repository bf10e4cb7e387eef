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

/// Nanoseconds in `text`, or `None` if it is not a duration string.
pub(crate) fn parse_nanos(text: &str) -> Option<u64> {
    let mut rest = text.trim();
    if rest.is_empty() {
        return None;
    }
    let mut total: u64 = 0;
    // Units must come largest first, each once: "1h30m", not "30m1h".
    let mut next_unit = 0;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let number: u64 = rest[..digits].parse().ok()?;
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
        total = total.checked_add(number.checked_mul(UNITS[position].1)?)?;
    }
    Some(total)
}

#[cfg(test)]
mod tests {
    use super::parse_nanos;

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
}
