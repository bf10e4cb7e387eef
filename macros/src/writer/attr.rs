//! The arguments of `#[cache_put(target, key = …)]` and
//! `#[cache_evict(target, key = … | all, before = …)]`, parsed into a typed model. Parsing keeps
//! going after a bad argument so that every mistake is reported at once.

use proc_macro2::TokenStream;
use syn::ext::IdentExt;
use syn::parse::ParseStream;
use syn::{Expr, Ident, Path, Token};

use crate::attr::{flag_of, is_typo_of, skip_to_comma, Flag};
use crate::errors::Errors;

/// Which attribute.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Put,
    Evict,
}

impl Kind {
    /// `#[cache_put]` or `#[cache_evict]`, for messages.
    pub(crate) fn attribute(self) -> &'static str {
        match self {
            Kind::Put => "#[cache_put]",
            Kind::Evict => "#[cache_evict]",
        }
    }

    /// The arguments after the target, for messages.
    fn known(self) -> &'static str {
        match self {
            Kind::Put => "`key = …`, `crate = \"…\"`",
            Kind::Evict => "`key = …`, `all`, `before = true`, `crate = \"…\"`",
        }
    }
}

/// The names of the arguments after the target; each attribute rejects the ones that are not
/// its own in `valid.rs`, with the reason.
const NAMES: [&str; 4] = ["key", "all", "before", "crate"];

/// Everything a writer attribute was given.
pub(crate) struct WriterArgs {
    pub(crate) kind: Kind,
    /// The `#[cached]` function whose cache is written: `load_user`, `crate::users::load_user`,
    /// `Self::get`.
    pub(crate) target: Option<Path>,
    pub(crate) key: Option<Expr>,
    /// `all`: the whole cache (`#[cache_evict]` only).
    pub(crate) all: Option<Ident>,
    /// `before = true`: evict before the writer runs (`#[cache_evict]` only).
    pub(crate) before: Option<Flag>,
    /// `crate = "path"`: where the runtime is, when not at `::memokit`.
    pub(crate) krate: Option<Path>,
    /// The names written, valid or not, so that a bad one is not also reported missing.
    given: Vec<Ident>,
}

impl WriterArgs {
    pub(crate) fn parse(kind: Kind, tokens: TokenStream, errors: &mut Errors) -> WriterArgs {
        let mut args = WriterArgs {
            kind,
            target: None,
            key: None,
            all: None,
            before: None,
            krate: None,
            given: Vec::new(),
        };
        let parser = |input: ParseStream<'_>| {
            if !args.parse_target(input, errors) && !input.is_empty() {
                // No target (reported in `valid.rs`): the arguments start here.
                args.parse_arg(input, errors);
            }
            while !input.is_empty() {
                if input.peek(Token![,]) {
                    input.parse::<Token![,]>()?;
                } else {
                    errors.at(
                        input.span(),
                        format!(
                            "expected `,` here: separate `{}` arguments with commas",
                            kind.attribute()
                        ),
                    );
                    skip_to_comma(input);
                    continue;
                }
                if input.is_empty() {
                    break;
                }
                args.parse_arg(input, errors);
            }
            Ok(())
        };
        if let Err(error) = syn::parse::Parser::parse2(parser, tokens) {
            errors.push(error);
        }
        args
    }

    /// Whether the argument `name` was written, even with a bad value.
    pub(crate) fn given(&self, name: &str) -> bool {
        self.given.iter().any(|given| given == name)
    }

    /// The first argument: the path of the target. Left empty (for `valid.rs` to report) when
    /// the arguments start with an option instead; returns whether it read anything.
    fn parse_target(&mut self, input: ParseStream<'_>, errors: &mut Errors) -> bool {
        let starts_with_option = input.peek(Ident::peek_any)
            && (input.peek2(Token![=])
                || input
                    .fork()
                    .call(Ident::parse_any)
                    .is_ok_and(|ident| ident == "all"));
        if input.is_empty() || starts_with_option {
            return false;
        }
        match input.parse::<Path>() {
            Ok(path) => self.target = Some(path),
            Err(_) => {
                errors.at(
                    input.span(),
                    format!(
                        "expected the path of the `#[cached]` function whose cache `{}` writes, e.g. `load_user`, \
                         `crate::users::load_user` or `Self::get`",
                        self.kind.attribute()
                    ),
                );
                skip_to_comma(input);
            }
        }
        true
    }

    /// One argument after the target. Never fails: a mistake is recorded and skipped.
    fn parse_arg(&mut self, input: ParseStream<'_>, errors: &mut Errors) {
        let attribute = self.kind.attribute();
        let Ok(name) = input.call(Ident::parse_any) else {
            errors.at(
                input.span(),
                format!(
                    "expected an argument of `{attribute}`: {}",
                    self.kind.known()
                ),
            );
            skip_to_comma(input);
            return;
        };
        if !NAMES.iter().any(|known| name == known) {
            let text = name.to_string();
            let message = match NAMES.iter().find(|known| is_typo_of(&text, known)) {
                Some(known) => {
                    format!("unknown `{attribute}` argument `{name}`; did you mean `{known}`?")
                }
                None => format!(
                    "unknown `{attribute}` argument `{name}`; expected {}",
                    self.kind.known()
                ),
            };
            errors.at(name.span(), message);
            skip_to_comma(input);
            return;
        }
        if self.given(&name.to_string()) {
            errors.at(name.span(), format!("`{name}` is given twice; keep one"));
            skip_to_comma(input);
            return;
        }
        self.given.push(name.clone());
        let has_value = input.parse::<Token![=]>().is_ok();
        if name == "all" {
            if has_value {
                errors.at(name.span(), "write `all` alone, without `= …`");
                skip_to_comma(input);
            } else {
                self.all = Some(name);
            }
            return;
        }
        if !has_value {
            let expected = if name == "key" {
                "expected `key = <expression>`, the key of the entry to write, made from the writer's arguments"
            } else if name == "crate" {
                "expected `crate = \"path\"`, the path memokit is reached by"
            } else {
                "expected `before = true` or `before = false`"
            };
            errors.at(name.span(), expected);
            skip_to_comma(input);
            return;
        }
        let value = match input.parse::<Expr>() {
            Ok(value) => crate::ast::ungrouped(value),
            Err(error) => {
                errors.push(error);
                skip_to_comma(input);
                return;
            }
        };
        if name == "key" {
            self.key = Some(value);
        } else if name == "crate" {
            self.krate = crate::crate_path::parse(&value, errors);
        } else {
            self.before = flag_of(&value, &name, errors);
        }
    }
}
