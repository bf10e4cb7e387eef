//! Every rule of `#[cache_put]` and `#[cache_evict]`, each an error at the offending tokens that
//! says the fix. Whether the target exists and the key and value types match is checked by the
//! compiler on the expansion (see `runtime/src/writer.rs` for those messages).

use proc_macro2::Span;
use syn::{Attribute, Pat, PathArguments, Stmt, Type};

use super::attr::{Kind, WriterArgs};
use crate::ast::{Function, NotAFunction};
use crate::errors::Errors;
use crate::expand::KEY_VARIABLE;

/// The error for an item that is not a function with a body, at its keyword and name.
pub(crate) fn not_a_function(kind: Kind, item: &NotAFunction) -> syn::Error {
    syn::Error::new_spanned(
        &item.tokens,
        format!(
            "`{}` goes on the function that writes (a function or a method with a body), not on {}",
            kind.attribute(),
            item.kind
        ),
    )
}

pub(crate) fn check(args: &WriterArgs, func: &Function<'_>, errors: &mut Errors) {
    let attribute = args.kind.attribute();
    let target = match &args.target {
        Some(target) => {
            // The last segment may name a generic function's instantiation (`parse::<i32>`).
            let leading = target.segments.len().saturating_sub(1);
            if let Some(segment) = target
                .segments
                .iter()
                .take(leading)
                .find(|segment| !matches!(segment.arguments, PathArguments::None))
            {
                errors.spanned(
                    &segment.arguments,
                    format!("`{attribute}` takes generic arguments only on the function it names (`parse::<i32>` for an instantiation of a generic `#[cached]` function), not on the path before it"),
                );
            }
            target
                .segments
                .last()
                .map_or_else(String::new, |segment| segment.ident.to_string())
        }
        None => {
            let example = match args.kind {
                Kind::Put => "`#[cache_put(load_user, key = user.id)]`",
                Kind::Evict => {
                    "`#[cache_evict(load_user, key = id)]` or `#[cache_evict(load_user, all)]`"
                }
            };
            errors.at(
                Span::call_site(),
                format!("`{attribute}` needs first the `#[cached]` function whose cache it writes, e.g. {example}"),
            );
            "the target".to_string()
        }
    };
    check_options(args, &target, func, errors);
    check_function(args, func, errors);
}

fn check_options(args: &WriterArgs, target: &str, func: &Function<'_>, errors: &mut Errors) {
    let writer = &func.sig.ident;
    if args.kind == Kind::Put {
        if let Some(all) = &args.all {
            errors.spanned(
                all,
                "`all` goes with `#[cache_evict]`; `#[cache_put]` stores one value, under `key = …`",
            );
        }
        if let Some(before) = &args.before {
            errors.spanned(
                &before.tokens,
                "`before` goes with `#[cache_evict]`; `#[cache_put]` stores the value the writer returns, so only after it",
            );
        }
    }
    if let (Some(all), true) = (&args.all, args.given("key")) {
        errors.spanned(
            all,
            format!("`all` clears every entry of `{target}` and `key = …` chooses one; keep one of them"),
        );
    }
    if args.given("key") || args.given("all") {
        return;
    }
    let names: Vec<String> = func.args.iter().map(|arg| arg.name.to_string()).collect();
    let either = if args.kind == Kind::Evict {
        ", or `all` to clear every entry"
    } else {
        ""
    };
    let advice = match (func.inputs.as_slice(), names.as_slice()) {
        ([one], _) if matches!(&*one.pat, Pat::Ident(_)) => return,
        ([], _) => format!("`{writer}` has no arguments to make it from"),
        ([_], _) => "its argument is a pattern, not a name".to_string(),
        (_, []) => "e.g. `key = id`".to_string(),
        (_, [first, ..]) => format!("e.g. `key = {first}` or `key = ({})`", names.join(", ")),
    };
    errors.spanned(
        writer,
        format!(
            "`{}` on `{writer}` needs `key = …`, the key of the entry of `{target}` it writes, made from \
             the writer's arguments ({advice}){either}; only a writer with one argument may leave it out, \
             that argument being the key",
            args.kind.attribute()
        ),
    );
}

fn check_function(args: &WriterArgs, func: &Function<'_>, errors: &mut Errors) {
    let attribute = args.kind.attribute();
    let sig = &func.sig;
    if let Some(constness) = &sig.constness {
        errors.spanned(
            constness,
            format!("`{attribute}` cannot be used on a `const fn`: a cache changes at run time; remove `const`"),
        );
    }
    if let Some(cached) = func.original.attrs.iter().find(|attr| is_cached(attr)) {
        errors.spanned(cached, not_with_cached(attribute));
    } else if expanded_by_cached(func) {
        errors.spanned(&sig.ident, not_with_cached(attribute));
    }
    match func.value_output() {
        Some(output) if matches!(output.ty, Type::ImplTrait(_)) => errors.spanned(
            output.ty,
            format!(
                "`{attribute}` needs the writer's return type written out, to see whether it succeeded; \
                 write an `async fn` instead of returning `impl Future`, or name the type"
            ),
        ),
        Some(_) => {}
        None => no_value(args, func, errors),
    }
}

fn no_value(args: &WriterArgs, func: &Function<'_>, errors: &mut Errors) {
    if args.kind == Kind::Put {
        errors.spanned(
            &func.sig.ident,
            format!(
                "`#[cache_put]` stores the value the writer returns, and `{}` returns nothing: return the new \
                 value (or `Result<Value, Error>`), or use `#[cache_evict]`",
                func.sig.ident
            ),
        );
    }
}

fn not_with_cached(attribute: &str) -> String {
    format!(
        "`{attribute}` cannot be combined with `#[cached]` on one function: a cached call skips the writer's \
         body, and so its write; keep the writer and the cached reader apart"
    )
}

/// `#[cached]` or `#[memokit::cached]` below the writer attribute.
fn is_cached(attr: &Attribute) -> bool {
    attr.path()
        .segments
        .last()
        .is_some_and(|segment| segment.ident == "cached")
}

/// A function that `#[cached]` (written above the writer attribute) has already expanded: its
/// body starts by building the key (see [`KEY_VARIABLE`]), typed (`let __memokit_key: T = …`
/// for a `key = …` expression) or not (the lookup form of argument names).
fn expanded_by_cached(func: &Function<'_>) -> bool {
    let is_key = |pat: &Pat| matches!(pat, Pat::Ident(ident) if ident.ident == KEY_VARIABLE);
    matches!(func.original.block.stmts.first(), Some(Stmt::Local(local))
    if match &local.pat {
        Pat::Type(typed) => is_key(&typed.pat),
        pat => is_key(pat),
    })
}
