//! The expansion of a writer: build the key (before the body runs: the body may consume the
//! arguments), run the body as it was written, then hand its output to the runtime, which
//! changes the target's cache on success and gives the output back.

use proc_macro2::{Delimiter, Group, Span, TokenStream};
use quote::{quote, quote_spanned, ToTokens};
use syn::spanned::Spanned;
use syn::{Expr, ItemFn, Path};

use super::attr::{Kind, WriterArgs};
use super::valid;
use crate::ast::{self, Function, Output, ReturnKind};
use crate::errors::Errors;
use crate::key;

pub(crate) fn writer(kind: Kind, args: TokenStream, item: TokenStream) -> TokenStream {
    let mut errors = Errors::default();
    let args = WriterArgs::parse(kind, args, &mut errors);
    let original = match ast::parse_function(&item) {
        Ok(original) => original,
        Err(not_a_function) => {
            errors.push(valid::not_a_function(kind, &not_a_function));
            return errors.or_item(&item, TokenStream::new);
        }
    };
    let no_skips = ast::Skips::default();
    let func = Function::from_syn(&original, &no_skips);
    valid::check(&args, &func, &mut errors);
    errors.or_item(&original, || {
        crate::crate_path::rewrite(expand(&args, &func), args.krate.as_ref())
    })
}

fn expand(args: &WriterArgs, func: &Function<'_>) -> TokenStream {
    let ItemFn {
        attrs,
        vis,
        sig,
        block,
    } = func.original;
    let private = quote!(::memokit::__private);
    // Without a target, or a key where one is needed, `valid.rs` (which comes first) has
    // reported why: there is nothing to expand.
    let unexpanded = || func.original.to_token_stream();
    let Some(target) = &args.target else {
        return unexpanded();
    };
    let memo = marker(target);
    // A type named after the writer: a type mismatch names it (see `KeyOf` in the runtime).
    // It is declared in a block of its own, so that it shadows nothing the key expression names.
    let writer_marker = &sig.ident;
    let writer = quote!({
        #[allow(non_camel_case_types, dead_code)]
        enum #writer_marker {}
        ::core::marker::PhantomData::<#writer_marker>
    });
    let change = match (args.kind, &args.all, key(args, func)) {
        (Kind::Evict, Some(_), _) => quote!(Evict::all(#memo())),
        (Kind::Evict, None, Some(key)) => quote!(Evict::key(#memo(), #writer, #key)),
        (Kind::Put, _, Some(key)) => quote!(Put::new(#memo(), #writer, #key)),
        (_, _, None) => return unexpanded(),
    };
    let before = args
        .before
        .as_ref()
        .filter(|flag| flag.value)
        .map(|_| quote!(__memokit_write.before();));
    let (ret, shape, stored_span) = match &func.output {
        Some(output) => {
            let ty = output.ty;
            let shape = match output.kind {
                ReturnKind::Result => quote!(#private::ResultShape<#ty>),
                ReturnKind::Option => quote!(#private::OptionShape<#ty>),
                ReturnKind::Plain => quote!(#private::Plain<#ty>),
            };
            (ty.to_token_stream(), shape, stored_span(output))
        }
        None => (quote!(()), quote!(#private::Plain<()>), Span::call_site()),
    };
    // Located at the stored type (the `Ok` type of a `Result`): a value of the wrong type for
    // `#[cache_put]` is reported there. Only located: the locals keep the attribute's hygiene,
    // which a return type written by `macro_rules!` does not have.
    let stored_span = Span::call_site().located_at(stored_span);
    let finish = quote_spanned!(stored_span=> __memokit_write.after::<#shape>(__memokit_output));
    let body = if func.is_async() {
        let body = crate::expand::async_body(&ret, block);
        quote!(#body.await)
    } else {
        quote!(#private::run_once(move || -> #ret #block))
    };
    quote! {
        #(#attrs)*
        #vis #sig {
            let __memokit_write = #private::#change;
            #before
            let __memokit_output = #body;
            #finish
        }
    }
}

/// Where the type `#[cache_put]` stores from a return type is: the first argument of a
/// `Result`, or the type itself.
fn stored_span(output: &Output<'_>) -> Span {
    let ty = output.ty;
    if output.kind == ReturnKind::Result {
        if let syn::Type::Path(path) = ty {
            let last = path.path.segments.last().map(|segment| &segment.arguments);
            if let Some(syn::PathArguments::AngleBracketed(args)) = last {
                if let Some(first) = args.args.first() {
                    return first.span();
                }
            }
        }
    }
    ty.span()
}

/// The hidden constant `#[cached]` defines next to the target's handle accessor, at the user's
/// path (`load_user` → `__memokit_cached_load_user`, `Self::get` → `Self::__memokit_cached_get`):
/// the writer reaches the cache through it alone, so a target that is not a `#[cached]`
/// function in scope is one error there: "cannot find function `__memokit_cached_load_user`".
fn marker(target: &Path) -> Path {
    let mut marker = target.clone();
    if let Some(last) = marker.segments.last_mut() {
        last.ident = crate::expand::writer_marker(&last.ident);
    }
    marker
}

/// The key, owned and built from the arguments: as in `#[cached]`, a key made of argument
/// names copies them (`&str` → `String`); any other expression is evaluated and `to_owned`.
/// Spanned as the key the user wrote, so that a type mismatch points at it. `None` for a
/// writer without `key` whose arguments are not one name.
fn key(args: &WriterArgs, func: &Function<'_>) -> Option<TokenStream> {
    match (&args.key, func.args.as_slice()) {
        (Some(key), _) => {
            let value = match func.key_args(key) {
                Some(used) => key::from_args(&used, matches!(key, Expr::Tuple(_))).1,
                None => quote!((#key).to_owned()),
            };
            Some(spanned_as(value, key))
        }
        (None, [only]) => Some(spanned_as(only.owned_value(), only.name)),
        (None, _) => None,
    }
}

/// `tokens` wrapped in a call of `identity` whose name starts where `like` starts and whose
/// parentheses end where it ends: the compiler's messages about the expression underline `like`.
fn spanned_as(tokens: TokenStream, like: &impl ToTokens) -> TokenStream {
    let mut spans = like.to_token_stream().into_iter().map(|tree| tree.span());
    let first = spans.next().unwrap_or_else(Span::call_site);
    let last = spans.last().unwrap_or(first);
    let mut call = Group::new(Delimiter::Parenthesis, tokens);
    call.set_span(last);
    quote_spanned!(first=> ::core::convert::identity #call)
}
