//! The expansion: the wrapper that builds the key and calls the runtime, and the handle
//! accessor that owns the function's `static` cache.

use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned, ToTokens};
use syn::spanned::Spanned;
use syn::{Expr, ItemFn, Type};

use crate::ast::{self, Arg, Function, ReturnKind};
use crate::attr::{Jitter, Options, Seed};
use crate::errors::Errors;
use crate::{key, valid};

pub(crate) fn cached(args: TokenStream, item: TokenStream) -> TokenStream {
    let mut errors = Errors::default();
    let options = Options::parse(args, &mut errors);
    let mut original = match ast::parse_function(&item) {
        Ok(original) => original,
        Err(not_a_function) => {
            errors.push(valid::not_a_function(&not_a_function));
            return errors.or_item(&item, TokenStream::new);
        }
    };
    // Taken off first: the function is emitted without them, errors or not.
    let skips = ast::take_skips(&mut original);
    let func = Function::from_syn(&original, &skips);
    valid::check(&func, &options, &mut errors);
    errors.or_item(&original, || {
        crate::crate_path::rewrite(expand(&func, &options), options.krate.as_ref())
    })
}

fn expand(func: &Function<'_>, options: &Options) -> TokenStream {
    let ItemFn {
        attrs, vis, block, ..
    } = func.original;
    let sig = &emitted_signature(func, options);
    let ident = &sig.ident;
    let Some(output) = func.value_output() else {
        // Reported in `valid.rs`, which comes first: there is nothing to expand.
        return func.original.to_token_stream();
    };
    let ret = output.ty;
    let cache_errors = options.cache_errors.as_ref().is_some_and(|flag| flag.value);
    let private = quote!(::memokit::__private);
    let (shape, share_error) = match output.kind {
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
    let batch = options.batch.as_ref().and_then(|_| func.batch_parts().ok());
    let (
        value_type,
        Key {
            ty: key_type,
            binding,
            lookup,
        },
    ) = match &batch {
        Some(parts) => {
            let (key, value) = (parts.key, parts.value);
            let none = TokenStream::new();
            (
                quote!(#value),
                Key {
                    ty: quote!(#key),
                    binding: none.clone(),
                    lookup: none,
                },
            )
        }
        None => (
            quote!(<#shape as #private::Shape>::Value),
            key(func, options),
        ),
    };
    // Spanned at the return type, so that a value that is not `Clone` is reported there first.
    let binding = match &batch {
        Some(_) => binding,
        None => {
            let value = respan(value_type.clone(), ret.span());
            let check = quote_spanned!(ret.span()=> #private::cached_value::<#value>(););
            quote!(#binding #check)
        }
    };
    let accessor = format_ident!("{}_cache", ident);
    let is_method = func.is_method();
    // A generic function has one cache per instantiation: its accessor takes the same type
    // parameters, and the wrapper names them.
    let type_params = func.type_params();
    let turbofish = if type_params.is_empty() {
        TokenStream::new()
    } else {
        quote!(::<#(#type_params),*>)
    };
    let accessor_call_path = if is_method {
        quote!(Self::#accessor #turbofish)
    } else {
        quote!(#accessor #turbofish)
    };
    let accessor_call = match &options.instance {
        // Through a function that takes a `Memo`: a field of another type is reported at the
        // field as that ("expected `&Memo<_, _>`, found `&u32`"), not as a missing method.
        Some(field) => {
            quote_spanned!(field.span()=> ::memokit::__private::instance_cache(&self.#field))
        }
        None => quote!(#accessor_call_path()),
    };

    // A refresh can run on a task of its own only if the body borrows nothing from the caller.
    let call_async = if options.refresh.is_some() && !is_method && !borrows_arguments(func) {
        quote!(__call_async_spawnable::<#shape, _, _, _>)
    } else {
        quote!(__call_async::<#shape, _, _, _>)
    };
    let call = if let Some(parts) = &batch {
        batch_call(
            func,
            parts,
            &accessor_call,
            &shape,
            &share_error,
            ret,
            block,
        )
    } else if func.is_async() {
        // A closure that makes the body's future, not the future: the runtime makes it only
        // where it computes, and boxes it, so this function's future holds the arguments once
        // more, not the body's state.
        // The first look comes before the load's future is made: a hit makes none.
        let body = async_body(ret, block);
        quote! {
            match #accessor_call.__look::<#shape>(&#lookup) {
                ::core::result::Result::Ok(__memokit_hit) => __memokit_hit,
                ::core::result::Result::Err(__memokit_look) => {
                    #accessor_call.#call_async(__memokit_look, #lookup, #share_error, move || #body).await
                }
            }
        }
    } else {
        quote!(#accessor_call.__call::<#shape>(#lookup, #share_error, move || -> #ret #block))
    };

    let mut name = match (&options.name, is_method) {
        (Some(name), _) => quote!(#name),
        // The type without its generic arguments: in a generic `impl`, one cache serves every
        // instantiation, and its name must not depend on which was called first.
        (None, true) => quote! {
            ::std::boxed::Box::leak(
                ::std::format!(
                    "{}::{}",
                    // Called by its path: a module with `#![no_implicit_prelude]` has no
                    // `Iterator` in scope.
                    ::core::iter::Iterator::next(&mut ::std::any::type_name::<Self>().split('<'))
                        .unwrap_or_default(),
                    ::core::stringify!(#ident),
                )
                .into_boxed_str(),
            )
        },
        (None, false) => quote!(::core::concat!(
            ::core::module_path!(),
            "::",
            ::core::stringify!(#ident)
        )),
    };
    if !type_params.is_empty() {
        // Each instantiation is listed on its own: `parse::<i32>`, `parse::<u8>`.
        name = quote!({
            let types: &[&str] = &[#(::core::any::type_name::<#type_params>()),*];
            ::std::boxed::Box::leak(
                ::std::format!("{}::<{}>", #name, types.join(", ")).into_boxed_str(),
            )
        });
    }
    let builder = builder(options, &key_type, &value_type);
    let coalesce = options.coalesce.as_ref().is_none_or(|flag| flag.value);
    let cache_none = options.cache_none.as_ref().is_none_or(|flag| flag.value);
    let link = if is_method {
        format!("Self::{ident}")
    } else {
        ident.to_string()
    };
    let loader = loader(func, options, &key_type);
    let marker = writer_marker(ident);
    let accessor_doc = match &loader {
        Some(_) => format!("The cache of [`{ident}`]({link}): its stats, `clear`, `invalidate`, `insert`, `get`, `warm` (see `memokit::LoadingMemo`)."),
        None => format!("The cache of [`{ident}`]({link}): its stats, `clear`, `invalidate`, `insert`, `get` (see `memokit::Memo`)."),
    };
    let memo = quote!(::memokit::Memo<#key_type, #value_type>);
    // What its results store, for `#[cache_put]`: a batch stores every value it returns.
    let storing = batch.is_none().then(|| quote!(.__storing::<#shape>()));
    let shared = options.redis.as_ref().map(|redis| {
        // Redis keeps entries as long as asked, else as long as the process does, else an hour.
        let ttl = redis.ttl.or(options.ttl).unwrap_or(3_600_000_000_000);
        let lease = match redis.lease {
            Some(nanos) => {
                quote!(::core::option::Option::Some(#private::Duration::from_nanos(#nanos)))
            }
            None => quote!(::core::option::Option::None),
        };
        let codec = match &redis.codec {
            Some(variant) => quote!(::core::option::Option::Some(#private::Codec::#variant)),
            None => quote!(::core::option::Option::None),
        };
        quote! {
            #private::shared_tier::<#key_type, #value_type>(
                #private::Duration::from_nanos(#ttl),
                #lease,
                #codec,
            )
        }
    });

    let disk = options.disk.as_ref().map(|disk| {
        let path = match &disk.path {
            Some(path) => quote!(::core::option::Option::Some(#path)),
            None => quote!(::core::option::Option::None),
        };
        // The file keeps an entry as long as the process would (`ttl`), else until evicted.
        let ttl = match options.ttl {
            Some(nanos) => {
                quote!(::core::option::Option::Some(#private::Duration::from_nanos(#nanos)))
            }
            None => quote!(::core::option::Option::None),
        };
        quote! {
            #private::disk_tier::<#key_type, #value_type>(#path, #ttl)
        }
    });
    // The disk in front of Redis when both are asked for.
    let tiers = match (disk, shared) {
        (Some(disk), Some(shared)) => Some(quote!(#private::chain_tiers(#disk, #shared))),
        (disk, shared) => disk.or(shared),
    }
    .map(|tier| quote!(.__with_shared(#tier)));

    let init = quote! {
        ::memokit::Memo::__new(
            #name,
            #builder.build(),
            #private::MemoOptions { coalesce: #coalesce, cache_none: #cache_none },
        )
        #storing
        #tiers
    };
    if options.instance.is_some() {
        let constructor = format_ident!("new_{}_cache", ident);
        let doc = format!(
            "A new cache for [`{ident}`]({link}), for the field of each instance that holds it \
             (see `memokit::Memo`); listed in `memokit::registry()` while it lives."
        );
        return quote! {
            #(#attrs)*
            #vis #sig {
                #binding
                #call
            }

            #[doc = #doc]
            #[allow(
                clippy::type_complexity,
                clippy::unnecessary_cast,
                clippy::cast_lossless,
                clippy::assertions_on_constants
            )]
            #vis fn #constructor() -> #memo {
                static NAME: #private::OnceLock<&'static str> = #private::OnceLock::new();
                ::memokit::Memo::__instance(
                    NAME.get_or_init(|| #name),
                    #builder.build(),
                    #private::MemoOptions { coalesce: #coalesce, cache_none: #cache_none },
                )
                #storing
            }
        };
    }
    let (handle, handle_path, init, loader_items) = match loader {
        Some(Loader { ty, value, items }) => (
            quote!(::memokit::LoadingMemo<#key_type, #value_type, #ty>),
            quote!(::memokit::LoadingMemo),
            quote!(::memokit::LoadingMemo::__new(#init, #value)),
            items,
        ),
        None => (memo, quote!(::memokit::Memo), init, TokenStream::new()),
    };
    let generics = &accessor_generics(&sig.generics);
    let where_clause = &generics.where_clause;
    // A `static` cannot name the type parameters: a generic function's slot is found by them.
    let slot = if type_params.is_empty() {
        quote!(static MEMO: #private::OnceLock<#handle> = #private::OnceLock::new(); &MEMO)
    } else {
        quote! {
            static MEMO: #private::Instantiations = #private::Instantiations::new();
            MEMO.slot::<#handle>(#private::TypeId::of::<(#(*const #type_params,)*)>())
        }
    };
    let marker_item = if type_params.is_empty() {
        quote! {
            #[allow(non_upper_case_globals, dead_code, clippy::type_complexity)]
            #vis const #marker: fn() -> &'static #handle = #accessor_call_path;
        }
    } else {
        // A writer names the instantiation: `#[cache_evict(parse::<i32>)]`.
        quote! {
            #[allow(dead_code, clippy::type_complexity)]
            #vis fn #marker #generics () -> &'static #handle #where_clause {
                #accessor_call_path()
            }
        }
    };

    quote! {
        #(#attrs)*
        #vis #sig {
            #binding
            #call
        }

        #[doc = #accessor_doc]
        // `size` is cast with the span of the user's expression (for error messages), so clippy
        // lints the cast as if they wrote it: `size = 100` as unnecessary, a `u32` as lossless;
        // likewise the check of `size = 1 << 20` as an assertion on a constant, which it is.
        // `deprecated`: the loader calls the function, which may be deprecated for other callers.
        #[allow(
            clippy::type_complexity,
            clippy::unnecessary_cast,
            clippy::cast_lossless,
            clippy::assertions_on_constants,
            deprecated
        )]
        #vis fn #accessor #generics () -> &'static #handle #where_clause {
            #handle_path::__get_or_init({ #slot }, || #init)
        }

        /// The handle accessor under the name `#[cache_put]` and `#[cache_evict]` look up: a
        /// writer whose target is not a `#[cached]` function in scope fails to find this name
        /// (generated by `#[cached]`).
        #[doc(hidden)]
        #marker_item

        #loader_items
    }
}

/// The generics of the handle accessor: the function's, but its lifetimes, which the accessor
/// (no arguments, a `'static` handle) does not use and `unused_lifetimes` would report, unless
/// a type parameter or the `where` clause names one.
fn accessor_generics(generics: &syn::Generics) -> syn::Generics {
    let mut kept = generics.clone();
    kept.params = generics
        .params
        .iter()
        .filter(|param| !matches!(param, syn::GenericParam::Lifetime(_)))
        .cloned()
        .collect();
    if let Some(clause) = &mut kept.where_clause {
        clause.predicates = clause
            .predicates
            .iter()
            .filter(|predicate| !matches!(predicate, syn::WherePredicate::Lifetime(_)))
            .cloned()
            .collect();
    }
    let rest =
        kept.to_token_stream().to_string() + &kept.where_clause.to_token_stream().to_string();
    let named = generics
        .lifetimes()
        .any(|param| rest.contains(&param.lifetime.to_token_stream().to_string()));
    if named {
        generics.clone()
    } else {
        kept
    }
}

/// The local the wrapper builds the key into, first thing in its body: a writer attribute
/// below `#[cached]` sees it and refuses the combination (see `writer/valid.rs`).
pub(crate) const KEY_VARIABLE: &str = "__memokit_key";

/// The name of the hidden constant through which `#[cache_put]` and `#[cache_evict]` reach the
/// cache of the `#[cached]` function `ident`: `load_user` → `__memokit_cached_load_user`. A
/// writer whose target is not `#[cached]` (or not in scope) fails to find it, and the
/// compiler's "cannot find value `__memokit_cached_…`" says so at the target.
pub(crate) fn writer_marker(ident: &syn::Ident) -> syn::Ident {
    format_ident!("__memokit_cached_{}", ident, span = ident.span())
}

/// What `warm` calls the function with, for a free function whose key is its arguments (a
/// `key = …`, a `#[skip]` argument or `self` cannot be turned back into them, and a `&'static`
/// argument cannot be borrowed from a key): the loader's type, the value the handle stores, and the items it
/// needs.
struct Loader {
    ty: TokenStream,
    value: TokenStream,
    items: TokenStream,
}

fn loader(func: &Function<'_>, options: &Options, key_type: &TokenStream) -> Option<Loader> {
    let skips_any = func.args.iter().any(|arg| arg.skip.is_some());
    if func.is_method()
        || !func.type_params().is_empty()
        || options.key.is_some()
        || options.batch.is_some()
        || skips_any
        || func.sig.unsafety.is_some()
    {
        return None;
    }
    let private = quote!(::memokit::__private);
    let vis = &func.original.vis;
    let ident = &func.sig.ident;
    let args = &func.args;
    // The key owns what a `&'static` argument borrows; a borrow of it is not `'static`.
    let borrows_static = |arg: &Arg<'_>| {
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
    if func.is_async() {
        call = quote!(#call.await);
    }
    // With `cache_errors`, an `Err` is stored like any value: it is warmed, not failed.
    let cache_errors = options.cache_errors.as_ref().is_some_and(|flag| flag.value);
    let succeeded = match func.value_output()?.kind {
        ReturnKind::Result if !cache_errors => quote!(::core::result::Result::is_ok(&#call)),
        _ => quote!({
            let _ = #call;
            true
        }),
    };
    if !func.is_async() {
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
fn borrows_arguments(func: &Function<'_>) -> bool {
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
    for arg in &func.args {
        finder.visit_type(arg.ty);
    }
    finder.0
}

/// The key of the wrapper: its owned type (the cache's), the `let` of [`KEY_VARIABLE`] that
/// comes first in the wrapper's body, and what the wrapper passes to the runtime (the lookup
/// form, see `key.rs`).
struct Key {
    ty: TokenStream,
    binding: TokenStream,
    lookup: TokenStream,
}

/// The key's type and the expressions that build it: a key made of arguments is looked up by
/// what they borrow; any other `key = …` expression is an owned key, as written.
fn key(func: &Function<'_>, options: &Options) -> Key {
    let variable = format_ident!("{}", KEY_VARIABLE);
    let private = quote!(::memokit::__private);
    let from_args = |args: &[&Arg<'_>], as_tuple: bool, ty: Option<TokenStream>| {
        let lookup = key::lookup_from_args(args, as_tuple);
        let checks = args.iter().map(|arg| arg.key_check());
        Key {
            ty: ty.unwrap_or_else(|| key::from_args(args, as_tuple).0),
            binding: quote!(let #variable = #lookup; #(#checks)*),
            lookup: quote!(#variable),
        }
    };
    match (&options.key, &options.key_type) {
        (Some(key), key_type) => match func.key_args(key) {
            // Argument names are copied into the key (the body still needs them), whether or not
            // the type is also spelled out.
            Some(used) => from_args(
                &used,
                matches!(key, Expr::Tuple(_)),
                key_type.as_ref().map(|ty| quote!(#ty)),
            ),
            None => Key {
                ty: quote!(#key_type),
                binding: quote!(let #variable: #key_type = #key;),
                lookup: quote!(#private::Owned(#variable)),
            },
        },
        (None, _) => {
            // Every argument not marked `#[skip]`; with none left, the key is `()`.
            let kept = func.key_by_default();
            from_args(&kept, kept.len() != 1, None)
        }
    }
}

/// The cache builder, typed so that the weigher closure does not have to infer the value type.
fn builder(options: &Options, key_type: &TokenStream, value_type: &TokenStream) -> TokenStream {
    let mut builder = quote!(::memokit::Cache::<#key_type, #value_type>::builder());
    if let Some(size) = &options.size {
        let capacity = capacity(size);
        builder = quote_spanned!(size.span()=> #builder.max_capacity(#capacity));
    }
    if let Some(weight) = &options.weight {
        // A closure, so that deref coercion lets the weigher take `&[u8]` for a `Vec<u8>` value
        // (or `&str` for `String`) instead of the `&Vec<u8>` clippy warns about.
        // Located at the weigher (its errors point there), with the closure's hygiene.
        let at = proc_macro2::Span::call_site().located_at(weight.span());
        let weigh = quote_spanned!(at=> #weight(key, value));
        builder = quote!(#builder.weigher(|key, value| #weigh));
    }
    if let Some(nanos) = options.ttl {
        builder = quote!(#builder.time_to_live(::memokit::__private::Duration::from_nanos(#nanos)));
    }
    if let Some(nanos) = options.tti {
        builder = quote!(#builder.time_to_idle(::memokit::__private::Duration::from_nanos(#nanos)));
    }
    if options.ttl.is_some() || options.tti.is_some() || options.refresh.is_some() {
        // The real time, or the one a test moves on its thread (`memokit::testing::mock_clock`).
        builder = quote!(#builder.clock(::memokit::__private::ThreadClock));
    }
    if let Some(policy) = &options.policy {
        builder = quote!(#builder.policy(::memokit::Policy::#policy));
    }
    match &options.seed {
        Some(Seed::Literal(seed)) => {
            let seed = proc_macro2::Literal::u64_suffixed(*seed);
            builder = quote!(#builder.seed(#seed));
        }
        Some(Seed::Expr(seed)) => {
            // Through a trait whose error names `seed` when the expression is no `u64`.
            let seed = quote_spanned!(seed.span()=> ::memokit::__private::seed(#seed));
            builder = quote!(#builder.seed(#seed));
        }
        None => {}
    }
    if let Some(refresh) = &options.refresh {
        let nanos = refresh.value;
        builder =
            quote!(#builder.refresh_after(::memokit::__private::Duration::from_nanos(#nanos)));
    }
    if let Some(stale) = &options.stale_if_error {
        let nanos = stale.value;
        builder =
            quote!(#builder.stale_if_error(::memokit::__private::Duration::from_nanos(#nanos)));
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

/// The signature the wrapper is emitted with: as written, but a batch's `mut ids` loses its
/// `mut`, which the body's own binding of the missing keys has instead (see [`batch_call`]).
fn emitted_signature(func: &Function<'_>, options: &Options) -> syn::Signature {
    let mut sig = func.original.sig.clone();
    if let Some(parts) = options.batch.as_ref().and_then(|_| func.batch_parts().ok()) {
        for input in &mut sig.inputs {
            if let syn::FnArg::Typed(typed) = input {
                if let syn::Pat::Ident(pat) = &mut *typed.pat {
                    if pat.ident == *parts.keys.name {
                        pat.mutability = None;
                    }
                }
            }
        }
    }
    sig
}

/// The `u64` that `size = …` gives. A literal was checked in `attr.rs`. An expression the macro
/// cannot read but a `const` block can (`CAPACITY`, `1 << 20`, `Self::MAX`) is checked by the
/// compiler: it must be an integer (it is compared with one) and at least 1, or the build fails.
/// Anything else (a function call) is evaluated at run time as written.
fn capacity(size: &Expr) -> TokenStream {
    if let Expr::Lit(syn::ExprLit {
        lit: syn::Lit::Int(int),
        ..
    }) = size
    {
        if let Ok(size) = int.base10_parse::<u64>() {
            return proc_macro2::Literal::u64_suffixed(size).into_token_stream();
        }
    }
    // Located at `size` for the messages, but the macro's own tokens for the lints: a cast the
    // user did not write (`CAPACITY as u64` of a `u64`) is no `trivial_numeric_casts` of theirs.
    let at = proc_macro2::Span::call_site().located_at(size.span());
    // `as u64`, so that `usize` and `u32` constants work too (see the accessor's clippy allows).
    let capacity = quote_spanned!(at=> (#size) as u64);
    if !is_constant(size) {
        return capacity;
    }
    quote_spanned! {at=> {
        const {
            ::core::assert!(
                (#size) >= 1,
                "`size` must be at least 1: a cache of size 0 would store nothing; to leave the cache \
                 unbounded, remove `size`"
            );
            ::core::assert!(
                (#size) as u128 <= ::core::primitive::u64::MAX as u128,
                "`size` must fit in a `u64`: a larger one would be cut short by the conversion"
            )
        };
        #capacity
    }}
}

/// Whether an expression is only literals, names, operators and casts: what a `const` block
/// can evaluate whatever the names stand for.
fn is_constant(expr: &Expr) -> bool {
    match expr {
        Expr::Lit(_) | Expr::Path(_) => true,
        Expr::Unary(unary) => is_constant(&unary.expr),
        Expr::Binary(binary) => is_constant(&binary.left) && is_constant(&binary.right),
        Expr::Paren(paren) => is_constant(&paren.expr),
        Expr::Group(group) => is_constant(&group.expr),
        Expr::Cast(cast) => is_constant(&cast.expr),
        _ => false,
    }
}

/// An `async fn`'s body as an `async move` block returning `ret`. An async block's output type
/// is inferred from its first `return`; the unreachable one in front fixes it to `ret`, so the
/// body's `return`s coerce (`return Err(Box::new(e))` into `Box<dyn Error>`) as they do in an
/// `async fn`.
/// The call of a `batch` function: its keys go to the runtime, and the body runs on the
/// missing ones, bound to the argument's name (a slice, or a vector).
fn batch_call(
    func: &Function<'_>,
    parts: &ast::BatchParts<'_>,
    memo: &TokenStream,
    shape: &TokenStream,
    share_error: &TokenStream,
    ret: &Type,
    block: &syn::Block,
) -> TokenStream {
    let (name, key) = (parts.keys.name, parts.key);
    // `mut ids`: the body gets the missing keys under the name, as mutable as written.
    let mutability = match &*parts.keys.original.pat {
        syn::Pat::Ident(pat) => pat.mutability,
        _ => None,
    };
    let missing = format_ident!("__memokit_missing");
    let keys = quote!(::core::iter::Iterator::cloned(#name.iter()));
    if func.is_async() {
        let bind = if parts.by_value {
            quote!(let #mutability #name: ::std::vec::Vec<#key> = #missing;)
        } else {
            quote!(let #mutability #name: &[#key] = &#missing;)
        };
        quote! {
            #memo.__call_batch_async::<#shape, _, _, _>(
                #keys,
                #share_error,
                move |#missing: ::std::vec::Vec<#key>| async move {
                    #bind
                    if let ::core::option::Option::Some(output) = ::core::option::Option::None::<#ret> {
                        return output;
                    }
                    let output: #ret = #block;
                    output
                },
            ).await
        }
    } else {
        let bind = if parts.by_value {
            quote!(let #mutability #name: ::std::vec::Vec<#key> = #missing.to_vec();)
        } else {
            quote!(let #mutability #name: &[#key] = #missing;)
        };
        // The block as a `let`'s value, not the closure's last expression: there, a block of
        // one expression would be linted as needless braces in the user's code.
        quote! {
            #memo.__call_batch::<#shape, _>(
                #keys,
                #share_error,
                move |#missing: &[#key]| -> #ret {
                    #bind
                    let output: #ret = #block;
                    output
                },
            )
        }
    }
}

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

/// `tokens` with every token (inside groups too) at `span`: where the compiler reports a bound
/// of a type built by the expansion.
fn respan(tokens: TokenStream, span: proc_macro2::Span) -> TokenStream {
    tokens
        .into_iter()
        .map(|mut token| {
            if let proc_macro2::TokenTree::Group(group) = &token {
                let mut inner =
                    proc_macro2::Group::new(group.delimiter(), respan(group.stream(), span));
                inner.set_span(span);
                token = proc_macro2::TokenTree::Group(inner);
            } else {
                token.set_span(span);
            }
            token
        })
        .collect()
}
