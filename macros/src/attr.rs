//! The attribute's arguments, parsed into a typed model. Parsing keeps going after a bad
//! argument so that every mistake is reported at once.

use proc_macro2::{TokenStream, TokenTree};
use quote::ToTokens;
use syn::ext::IdentExt;
use syn::parse::ParseStream;
use syn::{Expr, Ident, Lit, LitBool, LitStr, Path, Token, Type, UnOp};

use crate::duration;
use crate::errors::Errors;

/// Everything `#[cached(...)]` was given.
#[derive(Default)]
pub(crate) struct Options {
    pub(crate) size: Option<Expr>,
    pub(crate) weight: Option<Path>,
    pub(crate) ttl: Option<u64>,
    pub(crate) tti: Option<u64>,
    pub(crate) policy: Option<Ident>,
    pub(crate) key: Option<Expr>,
    pub(crate) key_type: Option<Type>,
    pub(crate) cache_errors: Option<Flag>,
    pub(crate) cache_none: Option<Flag>,
    pub(crate) coalesce: Option<Flag>,
    pub(crate) name: Option<LitStr>,
    pub(crate) redis: Option<Redis>,
    /// `disk` or `disk = "path"`: the disk tier, in the default file or the one named.
    pub(crate) disk: Option<Disk>,
    /// `refresh = …`: refresh-ahead after this many nanoseconds.
    pub(crate) refresh: Option<Setting<u64>>,
    /// `jitter = 0.1 | "30s"`: how much each entry's `ttl` is spread.
    pub(crate) jitter: Option<Setting<Jitter>>,
    /// `stale_if_error = …`: how long after it expired a value may answer a failed call.
    pub(crate) stale_if_error: Option<Setting<u64>>,
    /// `instance = field`: the method's cache is this field of `self`, one per instance.
    pub(crate) instance: Option<Ident>,
    /// `batch`: the function takes a slice of keys and returns the values it found.
    pub(crate) batch: Option<Ident>,
    /// `seed = …`: fixed hashing keys (`CacheBuilder::seed`), as a checked literal or an
    /// expression the compiler checks.
    pub(crate) seed: Option<Seed>,
    /// `crate = "path"`: where the runtime is, when not at `::memokit`.
    pub(crate) krate: Option<Path>,
    /// The names of the arguments written, valid or not: an option whose value was wrong is
    /// still "given", so that it is neither reported missing nor accepted twice.
    given: Vec<Ident>,
}

/// `redis` or `redis(ttl = …, lease = …, codec = …)`: the shared tier.
pub(crate) struct Redis {
    /// Time to live in Redis, in nanoseconds (absent: the local `ttl`, or one hour).
    pub(crate) ttl: Option<u64>,
    /// How long a computing process holds a key's lease (absent: the connection's default).
    pub(crate) lease: Option<u64>,
    /// The runtime's `Codec` variant that writes the values (absent: the connection's default).
    pub(crate) codec: Option<Ident>,
}

/// `disk` or `disk = "path"`: the disk tier.
pub(crate) struct Disk {
    /// The file (absent: the process's default file).
    pub(crate) path: Option<LitStr>,
    /// The `disk` keyword, for errors about how it combines.
    pub(crate) name: Ident,
}

/// A value with the tokens of its whole `name = value`, for errors about how it combines with
/// other options.
pub(crate) struct Setting<T> {
    pub(crate) value: T,
    pub(crate) tokens: TokenStream,
}

/// `jitter = …`: a fraction of `ttl`, or a duration.
#[derive(Clone, Copy)]
pub(crate) enum Jitter {
    /// In `(0, 1)`.
    Fraction(f64),
    Nanos(u64),
}

/// `seed = …`: a whole-number literal, read here, or any other expression (`SEED`,
/// `seed_from_env()`), which the expansion has the compiler check as a `u64`.
pub(crate) enum Seed {
    Literal(u64),
    Expr(Expr),
}

/// A `true`/`false` option, with the tokens of the whole `name = value` for error spans.
pub(crate) struct Flag {
    pub(crate) value: bool,
    pub(crate) tokens: TokenStream,
}

const KNOWN_NAMES: [&str; 20] = [
    "size",
    "weight",
    "ttl",
    "tti",
    "policy",
    "key",
    "key_type",
    "cache_errors",
    "cache_none",
    "coalesce",
    "name",
    "redis",
    "disk",
    "refresh",
    "jitter",
    "stale_if_error",
    "instance",
    "batch",
    "seed",
    "crate",
];

const KNOWN: &str =
    "size, weight, ttl, tti, policy, key, key_type, cache_errors, cache_none, coalesce, name, redis, \
     disk, refresh, jitter, stale_if_error, instance, batch, seed, crate";

const REDIS_KNOWN: [&str; 3] = ["ttl", "lease", "codec"];

/// The codecs `redis(codec = …)` accepts, with the runtime variant each names.
const CODECS: [(&str, &str); 2] = [("postcard", "Postcard"), ("json", "Json")];

const CODECS_EXPECTED: &str =
    "expected one of `postcard` (the default: compact, compressed above 1 KiB) or `json` (a JSON \
     document other languages read)";

impl Options {
    /// Parses every argument; a bad one is reported and skipped (up to the next `,`), so the
    /// ones after it are still read and checked.
    pub(crate) fn parse(tokens: TokenStream, errors: &mut Errors) -> Options {
        let mut options = Options::default();
        let parser = |input: ParseStream<'_>| {
            while !input.is_empty() {
                options.parse_arg(input, errors);
                if input.is_empty() {
                    break;
                }
                if input.peek(Token![,]) {
                    input.parse::<Token![,]>()?;
                } else {
                    errors.at(
                        input.span(),
                        "expected `,` here: separate `#[cached]` arguments with commas",
                    );
                    skip_to_comma(input);
                }
            }
            Ok(())
        };
        if let Err(error) = syn::parse::Parser::parse2(parser, tokens) {
            errors.push(error);
        }
        options
    }

    /// Whether the argument `name` was written, even with a bad value.
    pub(crate) fn given(&self, name: &str) -> bool {
        self.given.iter().any(|given| given == name)
    }

    /// One `name = value` argument. Never fails: a mistake is recorded and skipped.
    fn parse_arg(&mut self, input: ParseStream<'_>, errors: &mut Errors) {
        // Any identifier, keywords included, so that `type = …` is an unknown argument.
        let Ok(name) = input.call(Ident::parse_any) else {
            errors.at(
                input.span(),
                format!("expected an argument name; `#[cached]` arguments are `name = value` pairs ({KNOWN})"),
            );
            skip_to_comma(input);
            return;
        };
        if name == "redis" && !input.peek(Token![=]) {
            if self.given("redis") {
                errors.at(name.span(), "`redis` is given twice; keep one");
            }
            self.redis = Some(parse_redis(input, errors));
            self.given.push(name);
            return;
        }
        if name == "disk" && !input.peek(Token![=]) {
            if self.given("disk") {
                errors.at(name.span(), "`disk` is given twice; keep one");
            }
            if input.peek(syn::token::Paren) {
                errors.at(
                    input.span(),
                    "write `disk` (the default file) or `disk = \"path/to/cache.redb\"`; \
                     `disk` takes no parentheses",
                );
                skip_to_comma(input);
            }
            self.disk = Some(Disk {
                path: None,
                name: name.clone(),
            });
            self.given.push(name);
            return;
        }
        if name == "batch" && !input.peek(Token![=]) {
            if self.given("batch") {
                errors.at(name.span(), "`batch` is given twice; keep one");
            }
            self.batch = Some(name.clone());
            self.given.push(name);
            return;
        }
        if input.parse::<Token![=]>().is_err() {
            errors.at(name.span(), missing_value(&name));
            skip_to_comma(input);
            return;
        }
        if !KNOWN_NAMES.iter().any(|known| name == known) {
            errors.at(name.span(), unknown_argument(&name));
            skip_value(input);
            return;
        }
        let value = if name == "key_type" {
            // A type is not an expression: keep its tokens in a verbatim expression for now.
            input.parse::<Type>().map(|mut ty| {
                syn::visit_mut::VisitMut::visit_type_mut(&mut crate::ast::Ungroup, &mut ty);
                Expr::Verbatim(ty.into_token_stream())
            })
        } else {
            input.parse::<Expr>().map(crate::ast::ungrouped)
        };
        let value = match value {
            Ok(value) => value,
            Err(error) => {
                errors.push(error);
                skip_to_comma(input);
                self.given.push(name);
                return;
            }
        };
        if self.given(&name.to_string()) {
            errors.at(name.span(), format!("`{name}` is given twice; keep one"));
            return;
        }
        self.set(&name, value, errors);
        self.given.push(name);
    }

    fn set(&mut self, name: &Ident, value: Expr, errors: &mut Errors) {
        match name.to_string().as_str() {
            "size" => self.size = size_of(value, errors),
            "weight" => self.weight = path_of(&value, name, errors),
            "ttl" => self.ttl = duration_of(&value, name, errors),
            "tti" => self.tti = duration_of(&value, name, errors),
            "policy" => self.policy = policy_of(&value, errors),
            "key" => self.key = Some(value),
            "key_type" => self.key_type = type_of(&value, errors),
            "cache_errors" => self.cache_errors = flag_of(&value, name, errors),
            "cache_none" => self.cache_none = flag_of(&value, name, errors),
            "coalesce" => self.coalesce = flag_of(&value, name, errors),
            "name" => self.name = str_of(&value, name, errors),
            "seed" => self.seed = seed_of(value, errors),
            "crate" => self.krate = crate::crate_path::parse(&value, errors),
            "disk" => match lit_of(&value) {
                Some(Lit::Str(path)) if !path.value().is_empty() => {
                    self.disk = Some(Disk {
                        path: Some(path.clone()),
                        name: name.clone(),
                    })
                }
                _ => errors.spanned(
                    &value,
                    "expected `disk = \"path/to/cache.redb\"`, the file as a non-empty string \
                     literal, or `disk` alone for the default file",
                ),
            },
            "refresh" => {
                self.refresh = duration_of(&value, name, errors).map(|nanos| Setting {
                    value: nanos,
                    tokens: quote::quote!(#name #value),
                })
            }
            "stale_if_error" => {
                self.stale_if_error = duration_of(&value, name, errors).map(|nanos| Setting {
                    value: nanos,
                    tokens: quote::quote!(#name #value),
                })
            }
            "jitter" => {
                self.jitter = jitter_of(&value, name, errors).map(|jitter| Setting {
                    value: jitter,
                    tokens: quote::quote!(#name #value),
                })
            }
            "instance" => match &value {
                Expr::Path(path) if path.qself.is_none() && path.path.get_ident().is_some() => {
                    self.instance = path.path.get_ident().cloned();
                }
                _ => errors.spanned(
                    &value,
                    "expected `instance = <field>`, the field of `self` that holds the method's \
                     cache, e.g. `instance = users`",
                ),
            },
            "batch" => errors.spanned(
                &value,
                "write `batch` alone, without `=`: the function takes a slice of keys",
            ),
            "redis" => errors.spanned(
                &value,
                "write `redis` (Redis keeps entries as long as the local `ttl`, or one hour) or \
                 `redis(ttl = \"10m\")`, without `=`",
            ),
            // Unknown names are reported before their value is parsed.
            _ => {}
        }
    }
}

/// `redis` alone, or `redis(ttl = …, lease = …, codec = …)`; mistakes are recorded and
/// skipped.
fn parse_redis(input: ParseStream<'_>, errors: &mut Errors) -> Redis {
    let mut redis = Redis {
        ttl: None,
        lease: None,
        codec: None,
    };
    if !input.peek(syn::token::Paren) {
        if !input.is_empty() && !input.peek(Token![,]) {
            errors.at(
                input.span(),
                "expected `redis` or `redis(ttl = \"10m\", lease = \"5s\")`",
            );
            skip_to_comma(input);
        }
        return redis;
    }
    let content = match (|| {
        let content;
        syn::parenthesized!(content in input);
        Ok(content)
    })() {
        Ok(content) => content,
        Err(error) => {
            errors.push(error);
            return redis;
        }
    };
    let mut seen: Vec<Ident> = Vec::new();
    while !content.is_empty() {
        let Ok(name) = content.call(Ident::parse_any) else {
            errors.at(
                content.span(),
                "expected `ttl = …`, `lease = …` or `codec = …` inside `redis(...)`",
            );
            skip_to_comma(&content);
            let _ = content.parse::<Token![,]>();
            continue;
        };
        let value = if content.parse::<Token![=]>().is_ok() {
            match content.parse::<Expr>() {
                Ok(value) => Some(crate::ast::ungrouped(value)),
                Err(error) => {
                    errors.push(error);
                    skip_to_comma(&content);
                    None
                }
            }
        } else {
            let message = if name == "codec" {
                "expected `codec = postcard` or `codec = json` inside `redis(...)`".to_string()
            } else {
                format!("expected `{name} = <duration>` inside `redis(...)`")
            };
            errors.at(name.span(), message);
            skip_to_comma(&content);
            None
        };
        if !REDIS_KNOWN.iter().any(|known| name == known) {
            errors.at(
                name.span(),
                format!("unknown `redis(...)` option `{name}`; expected `ttl` (how long Redis keeps an entry), `lease` (how long a computing process holds a key) or `codec` (how values are written: `postcard` or `json`)"),
            );
        } else if seen.contains(&name) {
            errors.at(
                name.span(),
                format!("`{name}` is given twice in `redis(...)`; keep one"),
            );
        } else if let Some(value) = value {
            if name == "codec" {
                redis.codec = codec_of(&value, errors);
            } else {
                let nanos = duration_of(&value, &name, errors);
                if name == "ttl" {
                    redis.ttl = nanos;
                } else {
                    redis.lease = nanos;
                }
            }
        }
        seen.push(name);
        if content.is_empty() {
            break;
        }
        if content.parse::<Token![,]>().is_err() {
            errors.at(
                content.span(),
                "expected `,` between the options of `redis(...)`",
            );
            skip_to_comma(&content);
            let _ = content.parse::<Token![,]>();
        }
    }
    redis
}

/// The message for a name without `= value`, guessing what was meant.
fn missing_value(name: &Ident) -> String {
    let text = name.to_string();
    if POLICIES.iter().any(|(policy, _)| *policy == text) {
        format!("write `policy = {name}`; `#[cached]` arguments are `name = value` pairs")
    } else if ["cache_errors", "cache_none", "coalesce"].contains(&text.as_str()) {
        format!("expected `{name} = true` or `{name} = false`")
    } else {
        format!(
            "expected `{name} = <value>`; `#[cached]` arguments are `name = value` pairs ({KNOWN})"
        )
    }
}

fn unknown_argument(name: &Ident) -> String {
    let text = name.to_string();
    match KNOWN_NAMES.iter().find(|known| is_typo_of(&text, known)) {
        Some(known) => format!("unknown `#[cached]` argument `{name}`; did you mean `{known}`?"),
        None => format!("unknown `#[cached]` argument `{name}`; expected one of: {KNOWN}"),
    }
}

/// Whether `text` is `known` with at most one letter changed, added, removed, or two
/// neighbours swapped.
pub(crate) fn is_typo_of(text: &str, known: &str) -> bool {
    let (a, b): (Vec<char>, Vec<char>) = (text.chars().collect(), known.chars().collect());
    let prefix = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let (a, b) = (&a[prefix..], &b[prefix..]);
    match (a.len(), b.len()) {
        (0, 0) => true,
        (m, n) if m == n => {
            a[1..] == b[1..] || (m >= 2 && a[0] == b[1] && a[1] == b[0] && a[2..] == b[2..])
        }
        (m, n) if m + 1 == n => a == &b[1..],
        (m, n) if m == n + 1 => &a[1..] == b,
        _ => false,
    }
}

/// Moves past the tokens of one argument, up to (not including) the next top-level `,`.
pub(crate) fn skip_to_comma(input: ParseStream<'_>) {
    let _ = input.step(|cursor| {
        let mut rest = *cursor;
        while let Some((tree, next)) = rest.token_tree() {
            if matches!(&tree, TokenTree::Punct(punct) if punct.as_char() == ',') {
                break;
            }
            rest = next;
        }
        Ok(((), rest))
    });
}

/// Moves past the value of an unknown argument, which may be an expression or a type (whose
/// `<…, …>` holds commas).
fn skip_value(input: ParseStream<'_>) {
    if input.fork().parse::<Expr>().is_ok() {
        let _ = input.parse::<Expr>();
    } else if input.fork().parse::<Type>().is_ok() {
        let _ = input.parse::<Type>();
    } else {
        skip_to_comma(input);
    }
}

fn lit_of(value: &Expr) -> Option<&Lit> {
    match value {
        Expr::Lit(lit) => Some(&lit.lit),
        _ => None,
    }
}

/// `-5`, `-0.1`: to syn a minus sign and a literal, not a literal.
fn is_negative_literal(value: &Expr) -> bool {
    matches!(value, Expr::Unary(unary)
        if matches!(unary.op, UnOp::Neg(_)) && matches!(&*unary.expr, Expr::Lit(_)))
}

/// `size = …`: a literal must be a whole number of at least 1 that fits in a `u64`. Any other
/// expression (`CAPACITY`, `1 << 20`) cannot be read here: the expansion has the compiler check
/// it (see `expand::capacity`).
fn size_of(value: Expr, errors: &mut Errors) -> Option<Expr> {
    const WHAT: &str = "the most entries the cache holds (with `weight`, their total weight)";
    let message = match &value {
        Expr::Lit(lit) => match &lit.lit {
            Lit::Int(int) => match int.base10_parse::<u64>() {
                Ok(0) => "`size` must be at least 1: a cache of size 0 would store nothing; to leave \
                          the cache unbounded, remove `size`"
                    .to_string(),
                Ok(_) => return Some(value),
                Err(_) => format!(
                    "`size` is too large: it must fit in a `u64` (at most {})",
                    u64::MAX
                ),
            },
            Lit::Float(_) => format!(
                "`size` expects a whole number such as `size = 10_000`, not a fraction: it is {WHAT}"
            ),
            Lit::Str(text) if text.value().trim().parse::<u64>().is_ok() => format!(
                "`size` expects a number, not a string: write `size = {}`",
                text.value().trim()
            ),
            _ => format!("`size` expects a whole number such as `size = 10_000`: it is {WHAT}"),
        },
        negative if is_negative_literal(negative) => {
            format!("`size` must be at least 1, such as `size = 10_000`: it is {WHAT}")
        }
        _ => return Some(value),
    };
    errors.spanned(&value, message);
    None
}

/// `seed = …`: a literal must be a whole number that fits in a `u64` (an unsuffixed one, or
/// suffixed `u64`). Any other expression (`SEED`, a function call) is passed on for the compiler
/// to check as a `u64` (see `expand::builder`), and evaluated when the cache is built.
fn seed_of(value: Expr, errors: &mut Errors) -> Option<Seed> {
    const WHAT: &str = "the cache's hashing seed, fixed so that a replay gives the same hits \
                        and evictions on every run";
    let message = match &value {
        Expr::Lit(lit) => match &lit.lit {
            Lit::Int(int) if !["", "u64"].contains(&int.suffix()) => format!(
                "`seed` is a `u64`: write it without the `{}` suffix, e.g. `seed = {}`",
                int.suffix(),
                int.base10_digits()
            ),
            Lit::Int(int) => match int.base10_parse::<u64>() {
                Ok(seed) => return Some(Seed::Literal(seed)),
                Err(_) => format!(
                    "`seed` is too large: it must fit in a `u64` (at most {})",
                    u64::MAX
                ),
            },
            Lit::Str(text) if text.value().trim().parse::<u64>().is_ok() => format!(
                "`seed` expects a number, not a string: write `seed = {}`",
                text.value().trim()
            ),
            _ => {
                format!("`seed` expects a whole number (a `u64`) such as `seed = 42`: it is {WHAT}")
            }
        },
        negative if is_negative_literal(negative) => {
            format!("`seed` cannot be negative: it is a `u64` such as `seed = 42`, {WHAT}")
        }
        _ => return Some(Seed::Expr(value)),
    };
    errors.spanned(&value, message);
    None
}

fn duration_of(value: &Expr, name: &Ident, errors: &mut Errors) -> Option<u64> {
    let (parsed, too_large) = match lit_of(value) {
        Some(Lit::Int(int)) => {
            let nanos = int
                .base10_parse::<u64>()
                .ok()
                .and_then(|secs| secs.checked_mul(1_000_000_000));
            // Digits that do not fit: a number, too large.
            (nanos, nanos.is_none() && int.base10_parse::<u128>().is_ok())
        }
        Some(Lit::Str(text)) => (
            duration::parse_nanos(&text.value()),
            duration::too_large(&text.value()),
        ),
        _ => (None, false),
    };
    match parsed {
        Some(0) if name == "stale_if_error" => errors.spanned(
            value,
            "`stale_if_error` must be longer than zero; to return every error as it comes, remove `stale_if_error`",
        ),
        Some(0) if name == "refresh" => errors.spanned(
            value,
            format!("`{name}` must be longer than zero; to never refresh, remove `{name}`"),
        ),
        Some(0) => errors.spanned(
            value,
            format!("`{name}` must be longer than zero; to keep entries with no time limit, remove `{name}`"),
        ),
        Some(nanos) => return Some(nanos),
        None if too_large => errors.spanned(
            value,
            format!(
                "`{name}` is too long: the longest is 213,503 days (about 584 years, 2^64 \
                 nanoseconds); for no limit, remove `{name}`"
            ),
        ),
        None if is_negative_literal(value) => errors.spanned(
            value,
            format!("`{name}` cannot be negative; it expects {}", duration::EXPECTED),
        ),
        None if lit_of(value).is_none() => errors.spanned(
            value,
            format!("`{name}` expects a literal (a constant's name cannot be read by the macro): {}", duration::EXPECTED),
        ),
        None => errors.spanned(value, format!("`{name}` expects {}", duration::EXPECTED)),
    }
    None
}

fn jitter_of(value: &Expr, name: &Ident, errors: &mut Errors) -> Option<Jitter> {
    const EXPECTED: &str = "a fraction of `ttl` between 0 and 1, such as `0.1` (lifetimes within \
                            ±10 % of `ttl`), or a duration string such as \"30s\"";
    match lit_of(value) {
        Some(Lit::Str(text)) => match duration::parse_nanos(&text.value()) {
            Some(0) => errors.spanned(
                value,
                format!("`{name}` must be longer than zero; for no jitter, remove `{name}`"),
            ),
            Some(nanos) => return Some(Jitter::Nanos(nanos)),
            None => errors.spanned(
                value,
                format!(
                    "`{name}` expects a fraction of `ttl` such as `0.1`, or {}",
                    duration::EXPECTED_STRING
                ),
            ),
        },
        Some(Lit::Float(float)) => match float.base10_parse::<f64>() {
            Ok(fraction) if fraction > 0.0 && fraction < 1.0 => {
                return Some(Jitter::Fraction(fraction))
            }
            _ => errors.spanned(
                value,
                format!(
                    "`{name}` as a fraction of `ttl` must be above 0 and below 1, such as `0.1` \
                     (lifetimes within ±10 % of `ttl`); for a duration, write a string such as \"30s\""
                ),
            ),
        },
        Some(_) => errors.spanned(value, format!("`{name}` expects {EXPECTED}")),
        None if is_negative_literal(value) => errors.spanned(
            value,
            format!("`{name}` cannot be negative; it expects {EXPECTED}"),
        ),
        None => errors.spanned(
            value,
            format!("`{name}` expects a literal (a constant's name cannot be read by the macro): {EXPECTED}"),
        ),
    }
    None
}

pub(crate) fn flag_of(value: &Expr, name: &Ident, errors: &mut Errors) -> Option<Flag> {
    if let Some(Lit::Bool(LitBool { value: flag, .. })) = lit_of(value) {
        return Some(Flag {
            value: *flag,
            tokens: quote::quote!(#name #value),
        });
    }
    errors.spanned(value, format!("`{name}` expects `true` or `false`"));
    None
}

fn str_of(value: &Expr, name: &Ident, errors: &mut Errors) -> Option<LitStr> {
    match lit_of(value) {
        Some(Lit::Str(text)) if text.value().trim().is_empty() => errors.spanned(
            value,
            format!(
                "`{name}` cannot be empty: the registry and the metrics tell functions apart by \
                 it; write one such as `{name} = \"users::load\"`, or remove `{name}` for the \
                 function's path"
            ),
        ),
        Some(Lit::Str(text)) => return Some(text.clone()),
        _ => errors.spanned(
            value,
            format!("`{name}` expects a string literal, e.g. `{name} = \"users::load\"`"),
        ),
    }
    None
}

fn path_of(value: &Expr, name: &Ident, errors: &mut Errors) -> Option<Path> {
    if let Expr::Path(path) = value {
        return Some(path.path.clone());
    }
    errors.spanned(
        value,
        format!("`{name}` expects the path of a `fn(&Key, &Value) -> u32`"),
    );
    None
}

fn type_of(value: &Expr, errors: &mut Errors) -> Option<Type> {
    match value {
        Expr::Verbatim(tokens) => match syn::parse2(tokens.clone()) {
            Ok(ty) => Some(ty),
            Err(error) => {
                errors.push(error);
                None
            }
        },
        _ => None,
    }
}

/// `codec = …` inside `redis(...)`: a name of [`CODECS`], written as `policy = …` is (no
/// quotes).
fn codec_of(value: &Expr, errors: &mut Errors) -> Option<Ident> {
    let named = Named {
        what: "codec",
        place: " in `redis(codec = …)`",
        written: "redis(codec = {})",
        expected: CODECS_EXPECTED,
    };
    named.variant_of(value, &CODECS, errors)
}

/// How an option that names one of a fixed set of runtime variants (`policy = lru`,
/// `redis(codec = json)`) is written, for its error messages.
struct Named<'a> {
    /// What the name stands for: "policy".
    what: &'a str,
    /// Where it is written, after "unknown policy" (empty at the top level).
    place: &'a str,
    /// The option as written, `{}` standing for the name: "policy = {}".
    written: &'a str,
    /// The list of valid names, after "; ".
    expected: &'a str,
}

impl Named<'_> {
    /// The runtime variant `value` names in `table` (name, variant); a quoted or unknown name
    /// is reported.
    fn variant_of(
        &self,
        value: &Expr,
        table: &[(&str, &str)],
        errors: &mut Errors,
    ) -> Option<Ident> {
        let Named {
            what,
            place,
            written,
            expected,
        } = self;
        let unknown = format!("unknown {what}{place}; {expected}");
        let message = match value {
            Expr::Path(path) => match path.path.get_ident() {
                Some(ident) => match table.iter().find(|(name, _)| ident == name) {
                    Some((_, variant)) => return Some(Ident::new(variant, ident.span())),
                    None => format!("unknown {what} `{ident}`{place}; {expected}"),
                },
                None => unknown,
            },
            Expr::Lit(syn::ExprLit {
                lit: Lit::Str(text),
                ..
            }) if table.iter().any(|(name, _)| text.value() == *name) => format!(
                "write the {what} without quotes: `{}`",
                written.replace("{}", &text.value())
            ),
            _ => unknown,
        };
        errors.spanned(value, message);
        None
    }
}

/// The policies `policy = …` accepts, with the runtime variant each names.
pub(crate) const POLICIES: [(&str, &str); 6] = [
    ("lru", "Lru"),
    ("lfu", "Lfu"),
    ("fifo", "Fifo"),
    ("s3fifo", "S3Fifo"),
    ("s3fifo_tinylfu", "S3FifoTinyLfu"),
    ("w_tinylfu", "WTinyLfu"),
];

fn policy_of(value: &Expr, errors: &mut Errors) -> Option<Ident> {
    let named = Named {
        what: "policy",
        place: "",
        written: "policy = {}",
        expected:
            "expected one of `lru`, `lfu`, `fifo`, `s3fifo`, `s3fifo_tinylfu`, `w_tinylfu` (the default)",
    };
    named.variant_of(value, &POLICIES, errors)
}

#[cfg(test)]
mod tests {
    use super::{is_typo_of, str_of, Errors};
    use syn::parse_quote;

    #[test]
    fn an_empty_name_is_refused_and_says_why() {
        let name: syn::Ident = parse_quote!(name);
        for (value, kept) in [
            (parse_quote!("users::load"), true),
            (parse_quote!(""), false),
            (parse_quote!("  "), false),
        ] {
            let mut errors = Errors::default();
            assert_eq!(str_of(&value, &name, &mut errors).is_some(), kept);
            match errors.finish() {
                Ok(()) => assert!(kept),
                Err(error) => assert!(
                    error.to_string().starts_with("`name` cannot be empty"),
                    "{error}"
                ),
            }
        }
    }

    #[test]
    fn typos_are_one_edit_away() {
        assert!(is_typo_of("sise", "size"));
        assert!(is_typo_of("key_typ", "key_type"));
        assert!(is_typo_of("ttll", "ttl"));
        assert!(is_typo_of("polciy", "policy"));
        assert!(is_typo_of("size", "size"));
        assert!(!is_typo_of("capacity", "size"));
        assert!(!is_typo_of("k", "key"));
        assert!(!is_typo_of("lur", "policy"));
    }
}
