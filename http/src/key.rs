//! How a response is keyed: method, host and URI (the resource), plus the values of the request
//! headers the response's `Vary` names.

use std::sync::Arc;

use http::header::{HOST, VARY};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Uri};

use crate::writes::Written;

/// At most this many names in a `Vary`, and this many bytes in its fields: a longer one is
/// treated as malformed (not stored), so a key stays small.
const MAX_VARY_NAMES: usize = 16;
const MAX_VARY_BYTES: usize = 1024;

/// What the `Vary` of a response is learned for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct ResourceKey {
    method: Method,
    host: Option<HeaderValue>,
    uri: Uri,
}

impl ResourceKey {
    /// A `HEAD` is keyed as the `GET` it asks the head of: the layer asks the handler for the
    /// `GET` (see `Exchange::for_handler`), so that one stored response answers both.
    pub(crate) fn new(method: &Method, uri: &Uri, headers: &HeaderMap) -> Self {
        let method = match *method {
            Method::HEAD => Method::GET,
            ref other => other.clone(),
        };
        ResourceKey {
            method,
            host: host_of(uri, headers),
            uri: origin_form(uri),
        }
    }

    /// What a write of it names: its URI on its host, whatever the method (a `POST` of one URI
    /// and a `GET` of it name one target).
    pub(crate) fn target(&self) -> Written<'_, (&Option<HeaderValue>, &Uri)> {
        Written::Target((&self.host, &self.uri))
    }
}

/// The host a request names, normalised (RFC 9110 §4.2.3): from an absolute-form URI's
/// authority, else the `Host` header; lowercased, without the default port. So `GET
/// http://h.example/item`, `Host: H.Example` and `Host: h.example:80` name one target, which a
/// write of any of them invalidates. A `Host` that is not text is kept as it is.
fn host_of(uri: &Uri, headers: &HeaderMap) -> Option<HeaderValue> {
    let raw = match uri.authority() {
        Some(authority) => authority.as_str(),
        None => {
            let host = headers.get(HOST)?;
            match host.to_str() {
                Ok(text) => text,
                Err(_) => return Some(host.clone()),
            }
        }
    };
    let default_port = match uri.scheme_str() {
        Some("https") => ":443",
        _ => ":80",
    };
    let host = raw.strip_suffix(default_port).unwrap_or(raw);
    if !host.bytes().any(|byte| byte.is_ascii_uppercase()) && host.len() == raw.len() {
        if let Some(header) = headers
            .get(HOST)
            .filter(|header| header.as_bytes() == raw.as_bytes())
        {
            return Some(header.clone());
        }
    }
    HeaderValue::from_str(&host.to_ascii_lowercase()).ok()
}

/// The URI as the origin form (`/path?query`): an absolute-form URI names its host apart.
fn origin_form(uri: &Uri) -> Uri {
    if uri.scheme().is_none() && uri.authority().is_none() {
        return uri.clone();
    }
    let path = uri.path_and_query().map_or("/", |path| path.as_str());
    path.parse().unwrap_or_else(|_| uri.clone())
}

/// The key of one stored response.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct ResponseKey {
    resource: ResourceKey,
    /// Each name of the `Vary`, sorted, with the request's values of that header.
    vary: Box<[(HeaderName, Box<[HeaderValue]>)]>,
}

impl ResponseKey {
    pub(crate) fn new(resource: ResourceKey, vary: &[HeaderName], headers: &HeaderMap) -> Self {
        let vary = vary
            .iter()
            .map(|name| {
                (
                    name.clone(),
                    headers.get_all(name).iter().cloned().collect(),
                )
            })
            .collect();
        ResponseKey { resource, vary }
    }

    pub(crate) fn resource(&self) -> &ResourceKey {
        &self.resource
    }

    pub(crate) fn path(&self) -> &str {
        self.resource.uri.path()
    }

    /// What the writes that make a response stored under it out of date name: its target,
    /// and its path (`invalidate_path`).
    pub(crate) fn written(&self) -> [Written<'_, (&Option<HeaderValue>, &Uri)>; 2] {
        [self.resource.target(), Written::Path(self.path())]
    }
}

/// Why a response's `Vary` keeps it from being stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BadVary {
    /// `Vary: *`: no request can match it.
    Star,
    /// Not ASCII, a name that is no header name, or too long.
    Malformed,
}

/// The header names of the response's `Vary` fields, lowercased, sorted and without repeats.
pub(crate) fn vary_names(headers: &HeaderMap) -> Result<Arc<[HeaderName]>, BadVary> {
    let mut names: Vec<HeaderName> = Vec::new();
    let mut bytes = 0;
    for field in headers.get_all(VARY) {
        bytes += field.len();
        if bytes > MAX_VARY_BYTES {
            return Err(BadVary::Malformed);
        }
        for name in field.to_str().map_err(|_| BadVary::Malformed)?.split(',') {
            let name = name.trim();
            if name == "*" {
                return Err(BadVary::Star);
            }
            if !name.is_empty() {
                names.push(HeaderName::try_from(name).map_err(|_| BadVary::Malformed)?);
            }
        }
    }
    names.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    names.dedup();
    if names.len() > MAX_VARY_NAMES {
        return Err(BadVary::Malformed);
    }
    Ok(names.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resource(uri: &str, host: Option<&str>) -> ResourceKey {
        let mut headers = HeaderMap::new();
        if let Some(host) = host {
            headers.insert(HOST, HeaderValue::from_str(host).unwrap());
        }
        ResourceKey::new(&Method::GET, &uri.parse().unwrap(), &headers)
    }

    /// One target however it is written: absolute or origin form, the host's case, the default
    /// port (a write of one form left a stored response of another in place).
    #[test]
    fn equivalent_forms_of_a_target_are_one_key() {
        let plain = resource("/item?x=1", Some("h.example"));
        for other in [
            resource("http://h.example/item?x=1", Some("h.example")),
            resource("http://H.EXAMPLE:80/item?x=1", None),
            resource("/item?x=1", Some("H.Example")),
            resource("/item?x=1", Some("h.example:80")),
        ] {
            assert_eq!(other, plain);
        }
        assert_ne!(resource("/item?x=1", Some("h.example:8080")), plain);
        assert_ne!(resource("/item?x=2", Some("h.example")), plain);
        assert_ne!(resource("/item?x=1", Some("other.example")), plain);
        assert_eq!(
            resource("https://h.example:443/item?x=1", None),
            resource("/item?x=1", Some("h.example"))
        );
    }

    fn with_vary(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(VARY, HeaderValue::from_str(value).unwrap());
        headers
    }

    #[test]
    fn vary_is_normalised() {
        let names = vary_names(&with_vary(
            "Accept-Language, accept-encoding,, Accept-Language",
        ))
        .unwrap();
        assert_eq!(
            &*names,
            &[
                HeaderName::from_static("accept-encoding"),
                HeaderName::from_static("accept-language")
            ]
        );
    }

    #[test]
    fn bad_vary_is_refused() {
        assert_eq!(vary_names(&with_vary("*")).unwrap_err(), BadVary::Star);
        assert_eq!(
            vary_names(&with_vary("a b")).unwrap_err(),
            BadVary::Malformed
        );
        let huge = (0..40)
            .map(|i| format!("x-h{i}"))
            .collect::<Vec<_>>()
            .join(", ");
        assert_eq!(
            vary_names(&with_vary(&huge)).unwrap_err(),
            BadVary::Malformed
        );
        let long = "x".repeat(2000);
        assert_eq!(
            vary_names(&with_vary(&long)).unwrap_err(),
            BadVary::Malformed
        );
    }
}
