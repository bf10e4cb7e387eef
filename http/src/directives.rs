//! What `http-cache-semantics` does not expose: whether a `Cache-Control` is well formed and
//! consistent (it silently repairs a bad one), the RFC 5861 windows it does not implement, and
//! the request directives that forbid a stale answer. Everything else is its decision.

use std::time::Duration;

use http::header::{CACHE_CONTROL, EXPIRES, PRAGMA};
use http::HeaderMap;

/// Directives whose value must be a number of seconds.
const SECONDS_DIRECTIVES: [&str; 6] = [
    "max-age",
    "s-maxage",
    "stale-while-revalidate",
    "stale-if-error",
    "min-fresh",
    "max-stale",
];

/// The directives of every `Cache-Control` field, lowercased, values unquoted; `None` when
/// one is malformed: not visible ASCII, an empty or non-token name, a number that is not
/// digits, one directive twice with different values, or both `public` and `private`.
pub(crate) fn cache_control(headers: &HeaderMap) -> Option<Vec<(String, Option<String>)>> {
    let mut directives: Vec<(String, Option<String>)> = Vec::new();
    for field in headers.get_all(CACHE_CONTROL) {
        for part in field.to_str().ok()?.split(',') {
            let part = part.trim();
            if part.is_empty() {
                continue;
            }
            let (name, value) = match part.split_once('=') {
                Some((name, value)) => (name.trim(), Some(unquote(value.trim())?)),
                None => (part, None),
            };
            if name.is_empty() || !name.bytes().all(is_token_byte) {
                return None;
            }
            let name = name.to_ascii_lowercase();
            let numeric = SECONDS_DIRECTIVES.contains(&name.as_str());
            let digits = |v: &String| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit());
            if numeric && !value.as_ref().is_none_or(digits) {
                return None;
            }
            match directives.iter().find(|(seen, _)| *seen == name) {
                Some((_, seen)) if *seen != value => return None,
                Some(_) => {}
                None => directives.push((name, value)),
            }
        }
    }
    let has = |wanted: &str| directives.iter().any(|(name, _)| name == wanted);
    if has("public") && has("private") {
        return None;
    }
    Some(directives)
}

fn unquote(value: &str) -> Option<String> {
    match value.strip_prefix('"') {
        Some(quoted) => quoted
            .strip_suffix('"')
            .filter(|inner| !inner.contains('"'))
            .map(str::to_string),
        None => value.bytes().all(is_token_byte).then(|| value.to_string()),
    }
}

/// RFC 9110 `tchar`.
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// The longest duration the layer computes with: a century (a `SystemTime` plus `u64::MAX`
/// seconds overflows, and panics).
pub(crate) const LONGEST: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// The seconds of directive `name`, if present with a value (saturating at [`LONGEST`]).
pub(crate) fn seconds(directives: &[(String, Option<String>)], name: &str) -> Option<Duration> {
    let (_, value) = directives.iter().find(|(seen, _)| seen == name)?;
    let seconds = value.as_deref()?.parse::<u64>().unwrap_or(u64::MAX);
    Some(Duration::from_secs(seconds).min(LONGEST))
}

pub(crate) fn has(directives: &[(String, Option<String>)], name: &str) -> bool {
    directives.iter().any(|(seen, _)| seen == name)
}

/// Whether the response states its own freshness (`max-age`, `s-maxage`, `no-cache` or an
/// `Expires` field); if not, the route's ttl applies.
pub(crate) fn states_freshness(
    headers: &HeaderMap,
    directives: &[(String, Option<String>)],
) -> bool {
    headers.contains_key(EXPIRES)
        || ["max-age", "s-maxage", "no-cache"]
            .iter()
            .any(|name| has(directives, name))
}

/// Whether a response's directives forbid serving it stale (`must-revalidate`,
/// `proxy-revalidate`, `no-cache`, and `s-maxage`, which carries `proxy-revalidate` for a
/// shared cache: RFC 9111 §5.2.2.10).
pub(crate) fn forbids_stale(directives: &[(String, Option<String>)]) -> bool {
    [
        "must-revalidate",
        "proxy-revalidate",
        "no-cache",
        "s-maxage",
    ]
    .iter()
    .any(|name| has(directives, name))
}

/// What a request's `Cache-Control` asks of the layer.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct RequestDirectives {
    /// `only-if-cached`: answer from the cache or with `504`, never call the handler.
    pub(crate) only_if_cached: bool,
    /// `no-cache`, `max-age`, `min-fresh` (some freshness left is asked for; a stale copy has
    /// none) or `Pragma: no-cache` (or a malformed field): no stale answer while revalidating.
    pub(crate) forbids_stale: bool,
}

impl RequestDirectives {
    pub(crate) fn of(headers: &HeaderMap) -> Self {
        let pragma_no_cache = headers
            .get_all(PRAGMA)
            .iter()
            .any(|v| v.to_str().is_ok_and(|v| v.contains("no-cache")));
        match cache_control(headers) {
            Some(directives) => RequestDirectives {
                only_if_cached: has(&directives, "only-if-cached"),
                forbids_stale: pragma_no_cache
                    || has(&directives, "no-cache")
                    || has(&directives, "max-age")
                    || has(&directives, "min-fresh"),
            },
            None => RequestDirectives {
                only_if_cached: false,
                forbids_stale: true,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(value: &'static str) -> Option<Vec<(String, Option<String>)>> {
        let mut headers = HeaderMap::new();
        headers.insert(CACHE_CONTROL, http::HeaderValue::from_static(value));
        cache_control(&headers)
    }

    #[test]
    fn well_formed_fields_parse() {
        let directives = parse("public, max-age=\"60\", stale-if-error=5").unwrap();
        assert_eq!(
            seconds(&directives, "max-age"),
            Some(Duration::from_secs(60))
        );
        assert_eq!(
            seconds(&directives, "stale-if-error"),
            Some(Duration::from_secs(5))
        );
        assert!(parse("max-age=60, max-age=60").is_some());
        assert_eq!(
            seconds(
                &parse("max-age=99999999999999999999999").unwrap(),
                "max-age"
            ),
            Some(LONGEST)
        );
    }

    #[test]
    fn malformed_or_conflicting_fields_are_refused() {
        for bad in [
            "max-age=abc",
            "max-age=-1",
            "max-age=",
            "max-age=60, max-age=0",
            "public, private",
            "max-age=\"60",
            "=60",
            "no cache",
            "s-maxage=1.5",
        ] {
            assert!(parse(bad).is_none(), "{bad}");
        }
    }
}
