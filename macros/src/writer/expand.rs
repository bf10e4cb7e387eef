//! The expansion of a writer: build the key (before the body runs: the body may consume the
//! arguments), run the body as it was written, then hand its output to the runtime, which
//! changes the target's cache on success and gives the output back.

use proc_macro2::{Delimiter, Group, Span, TokenStream};
use quote::{quote, quote_spanned, ToTokens};
use syn::spanned::Spanned;
use syn::{Expr, ItemFn, Path, ReturnType, Signature};

use super::attr::{Kind, WriterArgs};
use super::valid;
use crate::attr::Errors;
use crate::sig::{self, ReturnKind};

pub(crate) fn writer(kind: Kind, args: TokenStream, item: TokenStream) -> TokenStream {
    let mut errors = Errors::default();
    let args = WriterArgs::parse(kind, args, &mut errors);
    let func: ItemFn = match syn::parse2(item.clone()) {
        Ok(func) => func,
        Err(_) => {
            let (tokens, what) = crate::expand::item_kind(&item);
            errors.spanned(
                tokens,
                format!(
                    "`{}` goes on the function that writes (a function or a method with a body), not on {what}",
                    kind.attribute()
                ),
            );
            let error = errors.finish().err().map(|error| error.to_compile_error());
            return quote!(#error #item);
        }
    };
    valid::check(&args, &func, &mut errors);
    match errors.finish() {
        Ok(()) => expand(&args, &func),
        // The function stays as written, so the errors above are the only ones reported.
        Err(error) => {
            let error = error.to_compile_error();
            quote!(#error #func)
        }
    }
}

fn expand(args: &WriterArgs, func: &ItemFn) -> TokenStream {
    let ItemFn {
        attrs,
        vis,
        sig,
        block,
    } = func;
    let private = quote!(::memokit::__private);
    let target = args.target.as_ref().expect("checked in valid.rs");
    let memo = marker(target);
    // A type named after the writer: a type mismatch names it (see `KeyOf` in the runtime).
    // It is declared in a block of its own, so that it shadows nothing the key expression names.
    let writer_marker = &sig.ident;
    let writer = quote!({
        #[allow(non_camel_case_types, dead_code)]
        enum #writer_marker {}
        ::core::marker::PhantomData::<#writer_marker>
    });
    let change = match (args.kind, &args.all) {
        (Kind::Evict, Some(_)) => quote!(Evict::all(#memo())),
        (Kind::Evict, None) => {
            let key = key(args, sig);
            quote!(Evict::key(#memo(), #writer, #key))
        }
        (Kind::Put, _) => {
            let key = key(args, sig);
            quote!(Put::new(#memo(), #writer, #key))
        }
    };
    let before = args
        .before
        .as_ref()
        .filter(|flag| flag.value)
        .map(|_| quote!(__memokit_write.before();));
    let ret = match &sig.output {
        ReturnType::Type(_, ty) => ty.to_token_stream(),
        ReturnType::Default => quote!(()),
    };
    // Spanned at the stored type (the `Ok` type of a `Result`): a value of the wrong type for
    // `#[cache_put]` is reported there.
    let stored_span = match &sig.output {
        ReturnType::Type(_, ty) => stored_span(ty),
        ReturnType::Default => Span::call_site(),
    };
    let shape = match &sig.output {
        ReturnType::Type(_, ty) => match sig::return_kind(ty) {
            ReturnKind::Result => quote!(#private::ResultShape<#ty>),
            ReturnKind::Option => quote!(#private::OptionShape<#ty>),
            ReturnKind::Plain => quote!(#private::Plain<#ty>),
        },
        ReturnType::Default => quote!(#private::Plain<()>),
    };
    let finish = quote_spanned!(stored_span=> __memokit_write.after::<#shape>(__memokit_output));
    let body = if sig.asyncness.is_some() {
        let body = crate::expand::async_body(&ret, block);
        quote!(#body.await)
    } else {
        quote!((move || -> #ret #block)())
    };
    quote! {
        #(#attrs)*
        #vis #sig {
            let __memokit_write = #private::#change;
            #before
            #[allow(clippy::redundant_closure_call)]
            let __memokit_output = #body;
            #finish
        }
    }
}

/// Where the type `#[cache_put]` stores from a return type is: the first argument of a
/// `Result`, or the type itself.
fn stored_span(ty: &syn::Type) -> Span {
    if sig::return_kind(ty) == ReturnKind::Result {
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
    let last = marker.segments.last_mut().expect("a path has a segment");
    last.ident = crate::expand::writer_marker(&last.ident);
    marker
}

/// The key, owned and built from the arguments: as in `#[cached]`, a key made of argument
/// names copies them (`&str` → `String`); any other expression is evaluated and `to_owned`.
/// Spanned as the key the user wrote, so that a type mismatch points at it.
fn key(args: &WriterArgs, sig: &Signature) -> TokenStream {
    let typed = sig::typed_args(sig);
    match &args.key {
        Some(key) => {
            let value = match sig::key_args(key, &typed) {
                Some(used) => sig::key_from_args(&used, matches!(key, Expr::Tuple(_))).1,
                None => quote!((#key).to_owned()),
            };
            spanned_as(value, key)
        }
        None => {
            let only = typed.first().expect("checked in valid.rs: one argument");
            spanned_as(only.owned_value(), only.name)
        }
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
