//! The expansion: the wrapper that builds the key and calls the runtime, and the handle
//! accessor that owns the function's `static` cache.

use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned, ToTokens};
use syn::spanned::Spanned;
use syn::{Expr, ItemFn, Type};

use crate::attr::{Errors, Jitter, Options};
use crate::sig::{self, ReturnKind};
use crate::valid;

pub(crate) fn cached(args: TokenStream, item: TokenStream) -> TokenStream {
    let mut errors = Errors::default();
    let options = Options::parse(args, &mut errors);
    let func: ItemFn = match syn::parse2(item.clone()) {
        Ok(func) => func,
        Err(_) => {
            errors.push(not_a_function(&item));
            let error = errors.finish().err().map(|error| error.to_compile_error());
            return quote!(#error #item);
        }
    };
    valid::check(&func.sig, &options, &mut errors);
    match errors.finish() {
        Ok(()) => expand(&func, &options),
        // The function stays as written, so the errors above are the only ones reported.
        Err(error) => {
            let error = error.to_compile_error();
            quote!(#error #func)
        }
    }
}

/// The error for an item that is not a function with a body, at its keyword and name.
fn not_a_function(item: &TokenStream) -> syn::Error {
    use syn::TraitItemFn;
    if let Ok(method) = syn::parse2::<TraitItemFn>(item.clone()) {
        return syn::Error::new_spanned(
            &method.sig,
            "`#[cached]` needs a function with a body; a trait's method declaration has none: cache a free \
             function and call it from the implementations",
        );
    }
    let (tokens, kind) = item_kind(item);
    syn::Error::new_spanned(
        tokens,
        format!("`#[cached]` goes on a function or a method, not on {kind}"),
    )
}

/// The keyword and name of an item that is not a function (the tokens to point at), and what it
/// is ("a struct"), for messages.
pub(crate) fn item_kind(item: &TokenStream) -> (TokenStream, &'static str) {
    use syn::Item;
    fn named(keyword: impl quote::ToTokens, ident: &syn::Ident) -> TokenStream {
        quote!(#keyword #ident)
    }
    match syn::parse2::<Item>(item.clone()) {
        Ok(Item::Struct(item)) => (named(item.struct_token, &item.ident), "a struct"),
        Ok(Item::Enum(item)) => (named(item.enum_token, &item.ident), "an enum"),
        Ok(Item::Union(item)) => (named(item.union_token, &item.ident), "a union"),
        Ok(Item::Trait(item)) => (named(item.trait_token, &item.ident), "a trait"),
        Ok(Item::Mod(item)) => (named(item.mod_token, &item.ident), "a module"),
        Ok(Item::Static(item)) => (named(item.static_token, &item.ident), "a static"),
        Ok(Item::Const(item)) => (named(item.const_token, &item.ident), "a constant"),
        Ok(Item::Impl(item)) => (
            item.impl_token.into_token_stream(),
            "an impl block; put it on one of its methods",
        ),
        _ => (item.clone().into_iter().take(1).collect(), "this item"),
    }
}

fn expand(func: &ItemFn, options: &Options) -> TokenStream {
    let ItemFn {
        attrs,
        vis,
        sig,
        block,
    } = func;
    let ident = &sig.ident;
    let ret = sig::return_type(sig).expect("checked in valid.rs");
    let cache_errors = options.cache_errors.as_ref().is_some_and(|flag| flag.value);
    let private = quote!(::memokit::__private);
    let (shape, share_error) = match sig::return_kind(ret) {
        ReturnKind::Result if !cache_errors => {
            let shape = quote!(#private::ResultShape<#ret>);
            // Autoref picks error sharing when the concrete error type is `Clone + Send + Sync`.
            let share = quote!({
                use #private::{RetryOnError as _, ShareClonedError as _, ShareErrorAsLoadFailed as _};
                // The double reference is what selects the impl.
                #[allow(clippy::needless_borrow)]
                let share = (&&#private::ErrorSharing::<<#shape as #private::Shape>::Error>::new()).share_error();
                share
            });
            (shape, share)
        }
        ReturnKind::Option => (
            quote!(#private::OptionShape<#ret>),
            quote!(::core::option::Option::None),
        ),
        _ => (
            quote!(#private::Plain<#ret>),
            quote!(::core::option::Option::None),
        ),
    };
    let value_type = quote!(<#shape as #private::Shape>::Value);
    let (key_type, key_value) = key(sig, options);
    let accessor = format_ident!("{}_cache", ident);
    let is_method = sig::has_receiver(sig);
    let accessor_call_path = if is_method {
        quote!(Self::#accessor)
    } else {
        quote!(#accessor)
    };
    let accessor_call = quote!(#accessor_call_path());

    // A refresh can run on a task of its own only if the body borrows nothing from the caller.
    let call_async = if options.refresh.is_some() && !is_method && !borrows_arguments(sig) {
        quote!(__call_async_spawnable::<#shape, _, _>)
    } else {
        quote!(__call_async::<#shape, _, _>)
    };
    let call = if sig.asyncness.is_some() {
        // A closure that makes the body's future, not the future: the runtime makes it only
        // where it computes, and boxes it, so this function's future holds the arguments once
        // more, not the body's state.
        let body = async_body(ret, block);
        quote!(#accessor_call.#call_async(__memokit_key, #share_error, move || #body).await)
    } else {
        quote!(#accessor_call.__call::<#shape>(__memokit_key, #share_error, move || -> #ret #block))
    };

    let name = match (&options.name, is_method) {
        (Some(name), _) => quote!(#name),
        (None, true) => quote! {
            ::std::boxed::Box::leak(
                ::std::format!("{}::{}", ::std::any::type_name::<Self>(), ::core::stringify!(#ident)).into_boxed_str(),
            )
        },
        (None, false) => quote!(::core::concat!(
            ::core::module_path!(),
            "::",
            ::core::stringify!(#ident)
        )),
    };
    let builder = builder(options, &key_type, &value_type);
    let coalesce = options.coalesce.as_ref().is_none_or(|flag| flag.value);
    let cache_none = options.cache_none.as_ref().is_none_or(|flag| flag.value);
    let link = if is_method {
        format!("Self::{ident}")
    } else {
        ident.to_string()
    };
    let loader = loader(vis, sig, options, &key_type);
    let marker = writer_marker(ident);
    let accessor_doc = match &loader {
        Some(_) => format!("The cache of [`{ident}`]({link}): its stats, `clear`, `invalidate`, `insert`, `get`, `warm` (see `memokit::LoadingMemo`)."),
        None => format!("The cache of [`{ident}`]({link}): its stats, `clear`, `invalidate`, `insert`, `get` (see `memokit::Memo`)."),
    };
    let memo = quote!(::memokit::Memo<#key_type, #value_type>);
    let shared = options.redis.as_ref().map(|redis| {
        // Redis keeps entries as long as asked, else as long as the process does, else an hour.
        let ttl = redis.ttl.or(options.ttl).unwrap_or(3_600_000_000_000);
        let lease = match redis.lease {
            Some(nanos) => {
                quote!(::core::option::Option::Some(#private::Duration::from_nanos(#nanos)))
            }
            None => quote!(::core::option::Option::None),
        };
        quote! {
            .__with_shared(#private::shared_tier::<#key_type, #value_type>(
                #private::Duration::from_nanos(#ttl),
                #lease,
            ))
        }
    });

    let init = quote! {
        ::memokit::Memo::__new(
            #name,
            #builder.build(),
            #private::MemoOptions { coalesce: #coalesce, cache_none: #cache_none },
        )
        #shared
    };
    let (handle, handle_path, init, loader_items) = match loader {
        Some(Loader { ty, value, items }) => (
            quote!(::memokit::LoadingMemo<#key_type, #value_type, #ty>),
            quote!(::memokit::LoadingMemo),
            quote!(::memokit::LoadingMemo::__new(#init, #value)),
            items,
        ),
        None => (memo, quote!(::memokit::Memo), init, TokenStream::new()),
    };

    quote! {
        #(#attrs)*
        #vis #sig {
            let __memokit_key: #key_type = #key_value;
            #call
        }

        #[doc = #accessor_doc]
        // `size` is cast with the span of the user's expression (for error messages), so clippy
        // lints the cast as if they wrote it: `size = 100` as unnecessary, a `u32` as lossless.
        // `deprecated`: the loader calls the function, which may be deprecated for other callers.
        #[allow(clippy::type_complexity, clippy::unnecessary_cast, clippy::cast_lossless, deprecated)]
        #vis fn #accessor() -> &'static #handle {
            static MEMO: #private::OnceLock<#handle> = #private::OnceLock::new();
            #handle_path::__get_or_init(&MEMO, || #init)
        }

        /// The handle accessor under the name `#[cache_put]` and `#[cache_evict]` look up: a
        /// writer whose target is not a `#[cached]` function in scope fails to find this name
        /// (generated by `#[cached]`).
        #[doc(hidden)]
        #[allow(non_upper_case_globals, dead_code, clippy::type_complexity)]
        #vis const #marker: fn() -> &'static #handle = #accessor_call_path;

        #loader_items
    }
}

/// The name of the hidden constant through which `#[cache_put]` and `#[cache_evict]` reach the
/// cache of the `#[cached]` function `ident`: `load_user` → `__memokit_cached_load_user`. A
/// writer whose target is not `#[cached]` (or not in scope) fails to find it, and the
/// compiler's "cannot find value `__memokit_cached_…`" says so at the target.
pub(crate) fn writer_marker(ident: &syn::Ident) -> syn::Ident {
    format_ident!("__memokit_cached_{}", ident, span = ident.span())
}

/// What `warm` calls the function with, for a free function whose key is its arguments (a
/// `key = …` or `self` cannot be turned back into them, and a `&'static` argument cannot be
/// borrowed from a key): the loader's type, the value the handle stores, and the items it
/// needs.
struct Loader {
    ty: TokenStream,
    value: TokenStream,
    items: TokenStream,
}

fn loader(
    vis: &syn::Visibility,
    sig: &syn::Signature,
    options: &Options,
    key_type: &TokenStream,
) -> Option<Loader> {
    if sig::has_receiver(sig) || options.key.is_some() || sig.unsafety.is_some() {
        return None;
    }
    let private = quote!(::memokit::__private);
    let ident = &sig.ident;
    let args = sig::typed_args(sig);
    // The key owns what a `&'static` argument borrows; a borrow of it is not `'static`.
    let borrows_static = |arg: &sig::Arg<'_>| {
        matches!(arg.ty, Type::Reference(reference)
            if reference.lifetime.as_ref().is_some_and(|lifetime| lifetime.ident == "static"))
    };
    if args.iter().any(borrows_static) {
        return None;
    }
    // Not the arguments' names: one may be the function's (`fn user(user: &str)`).
    let names: Vec<_> = (0..args.len())
        .map(|index| format_ident!("__memokit_arg{}", index))
        .collect();
    // The key's shape (see `key`): one argument is the key itself, several make a tuple.
    let pattern = match names.as_slice() {
        [one] => one.to_token_stream(),
        _ => quote!((#(#names,)*)),
    };
    // A key holds a borrowed argument's `ToOwned::Owned`, which borrows as the argument's type.
    let passed = args.iter().zip(&names).map(|(arg, name)| match arg.ty {
        Type::Reference(_) => quote!(::core::borrow::Borrow::borrow(&#name)),
        _ => quote!(#name),
    });
    let mut call = quote!(#ident(#(#passed),*));
    if sig.asyncness.is_some() {
        call = quote!(#call.await);
    }
    let ret = sig::return_type(sig)?;
    // With `cache_errors`, an `Err` is stored like any value: it is warmed, not failed.
    let cache_errors = options.cache_errors.as_ref().is_some_and(|flag| flag.value);
    let succeeded = match sig::return_kind(ret) {
        ReturnKind::Result if !cache_errors => quote!(::core::result::Result::is_ok(&#call)),
        _ => quote!({
            let _ = #call;
            true
        }),
    };
    if sig.asyncness.is_none() {
        return Some(Loader {
            ty: quote!(::memokit::SyncLoader<#key_type>),
            value: quote!(::memokit::SyncLoader::__new(|#pattern: #key_type| -> bool { #succeeded })),
            items: TokenStream::new(),
        });
    }
    // A named type for the handle's type to name: the function's future has no name.
    let name = format_ident!("__memokit_load_{}", ident);
    let items = quote! {
        /// How `warm` calls the function (generated by `#[cached]`).
        #[doc(hidden)]
        #[allow(non_camel_case_types)]
        #vis struct #name;

        #[allow(deprecated)]
        impl #private::LoadAsync<#key_type> for #name {
            async fn load(#pattern: #key_type) -> bool {
                #succeeded
            }
        }
    };
    Some(Loader {
        ty: quote!(::memokit::AsyncLoader<#name>),
        value: quote!(::memokit::AsyncLoader::__new()),
        items,
    })
}

/// Whether an argument's type holds a reference or a lifetime.
fn borrows_arguments(sig: &syn::Signature) -> bool {
    use syn::visit::Visit;
    struct Finder(bool);
    impl<'ast> Visit<'ast> for Finder {
        fn visit_lifetime(&mut self, _: &'ast syn::Lifetime) {
            self.0 = true;
        }
        fn visit_type_reference(&mut self, _: &'ast syn::TypeReference) {
            self.0 = true;
        }
    }
    let mut finder = Finder(false);
    for arg in sig::typed_args(sig) {
        finder.visit_type(arg.ty);
    }
    finder.0
}

/// The key's type and the expression that builds it.
fn key(sig: &syn::Signature, options: &Options) -> (TokenStream, TokenStream) {
    let args = sig::typed_args(sig);
    match (&options.key, &options.key_type) {
        (Some(key), key_type) => match sig::key_args(key, &args) {
            // Argument names are copied into the key (the body still needs them), whether or not
            // the type is also spelled out.
            Some(used) => {
                let (inferred, value) = sig::key_from_args(&used, matches!(key, Expr::Tuple(_)));
                (key_type.as_ref().map_or(inferred, |ty| quote!(#ty)), value)
            }
            None => (quote!(#key_type), quote!(#key)),
        },
        (None, _) => {
            let all: Vec<_> = args.iter().collect();
            sig::key_from_args(&all, all.len() != 1)
        }
    }
}

/// The cache builder, typed so that the weigher closure does not have to infer the value type.
fn builder(options: &Options, key_type: &TokenStream, value_type: &TokenStream) -> TokenStream {
    let mut builder = quote!(::memokit::Cache::<#key_type, #value_type>::builder());
    if let Some(size) = &options.size {
        // `as u64`, so that `usize` and `u32` constants work too (see the accessor's clippy allows).
        builder = quote_spanned!(size.span()=> #builder.max_capacity((#size) as u64));
    }
    if let Some(weight) = &options.weight {
        // A closure, so that deref coercion lets the weigher take `&[u8]` for a `Vec<u8>` value
        // (or `&str` for `String`) instead of the `&Vec<u8>` clippy warns about.
        let weigh = quote_spanned!(weight.span()=> #weight(key, value));
        builder = quote!(#builder.weigher(|key, value| #weigh));
    }
    if let Some(nanos) = options.ttl {
        builder = quote!(#builder.time_to_live(::memokit::__private::Duration::from_nanos(#nanos)));
    }
    if let Some(nanos) = options.tti {
        builder = quote!(#builder.time_to_idle(::memokit::__private::Duration::from_nanos(#nanos)));
    }
    if let Some(policy) = &options.policy {
        builder = quote!(#builder.policy(::memokit::Policy::#policy));
    }
    if let Some(refresh) = &options.refresh {
        let nanos = refresh.value;
        builder =
            quote!(#builder.refresh_after(::memokit::__private::Duration::from_nanos(#nanos)));
    }
    if let (Some(jitter), Some(ttl)) = (&options.jitter, options.ttl) {
        let fraction = match jitter.value {
            Jitter::Fraction(fraction) => fraction,
            Jitter::Nanos(nanos) => nanos as f64 / ttl as f64,
        };
        let fraction = proc_macro2::Literal::f64_suffixed(fraction);
        builder = quote!(#builder.ttl_jitter(#fraction));
    }
    builder
}

/// An `async fn`'s body as an `async move` block returning `ret`. An async block's output type
/// is inferred from its first `return`; the unreachable one in front fixes it to `ret`, so the
/// body's `return`s coerce (`return Err(Box::new(e))` into `Box<dyn Error>`) as they do in an
/// `async fn`.
pub(crate) fn async_body(ret: &impl ToTokens, block: &syn::Block) -> TokenStream {
    quote! {
        async move {
            if let ::core::option::Option::Some(output) = ::core::option::Option::None::<#ret> {
                return output;
            }
            let output: #ret = #block;
            output
        }
    }
}
