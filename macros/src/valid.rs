//! Every rule the attribute enforces, each an error at the offending tokens that says the fix.

use syn::visit::Visit;
use syn::{Expr, FnArg, Ident, Lifetime, Pat, Signature, Type, TypeImplTrait, TypeReference};

use crate::ast::{Function, NotAFunction, ReturnKind};
use crate::attr::{Jitter, Options};
use crate::errors::Errors;

pub(crate) fn check(func: &Function<'_>, options: &Options, errors: &mut Errors) {
    check_twice(func, errors);
    check_function(func.sig, errors);
    check_arguments(func, options, errors);
    check_skips(func, options, errors);
    check_return(func, options, errors);
    check_options(func, options, errors);
    check_expiry(options, errors);
    check_instance(func, options, errors);
    check_batch(func, options, errors);
    check_disk(options, errors);
}

/// A second `#[cached]` on the function (the one expanding is no longer among its attributes):
/// it would define the handle accessor twice.
fn check_twice(func: &Function<'_>, errors: &mut Errors) {
    let again = func.original.attrs.iter().find(|attr| {
        attr.path()
            .segments
            .last()
            .is_some_and(|segment| segment.ident == "cached")
    });
    if let Some(again) = again {
        errors.spanned(
            again,
            "`#[cached]` is on this function twice; keep one (its options can all go in one)",
        );
    }
}

/// An instance's cache is its own; the disk tier's file outlives it.
fn check_disk(options: &Options, errors: &mut Errors) {
    let Some(disk) = &options.disk else {
        return;
    };
    if options.instance.is_some() {
        errors.spanned(
            &disk.name,
            "`instance` and `disk` do not combine: an instance's cache is its own, the file \
             outlives it; remove one of them",
        );
    }
}

/// `batch`: one argument of keys, a map of values back, and none of the options about one
/// key's result.
fn check_batch(func: &Function<'_>, options: &Options, errors: &mut Errors) {
    let Some(batch) = &options.batch else {
        return;
    };
    if let Err(error) = func.batch_parts() {
        errors.push(error);
    }
    for (option, why) in [
        ("key", "the keys are the elements of the argument"),
        ("key_type", "the keys are the elements of the argument"),
        ("refresh", "a batch is computed when asked, not ahead"),
        ("stale_if_error", "a failed batch fails for every key"),
        (
            "cache_errors",
            "an error is the whole batch's, not one key's",
        ),
        (
            "cache_none",
            "a key the batch leaves out of its answer is not stored",
        ),
    ] {
        if options.given(option) {
            errors.spanned(
                batch,
                format!(
                    "`{option}` does not apply to a `batch` function ({why}): remove `{option}`"
                ),
            );
        }
    }
    if func.is_method() && options.instance.is_none() {
        errors.spanned(
            batch,
            "a `batch` method keeps its cache in its instance: add `instance = <field>`, or make \
             it a free function",
        );
    }
}

/// `instance = field` keeps the cache in `self`: it needs a `&self` method, and a cache that
/// lives and dies with one instance cannot be shared through Redis or a `static` handle.
fn check_instance(func: &Function<'_>, options: &Options, errors: &mut Errors) {
    let Some(field) = &options.instance else {
        return;
    };
    match func.receiver {
        None => errors.spanned(
            field,
            "`instance` keeps the cache in a field of `self`, so it needs a method taking `&self`; \
             a free function has one cache for the process: remove `instance`",
        ),
        Some(receiver) if !matches!(&*receiver.ty, Type::Reference(_)) => errors.spanned(
            receiver,
            "`instance` needs `&self`: a method taking `self` by value would move the instance \
             that holds the cache; take `&self`",
        ),
        Some(_) => {}
    }
    if let Some(param) = func.sig.generics.type_params().next() {
        errors.spanned(
            param,
            "`instance` does not support generic methods: the field holds a cache of one type, not one per \
             instantiation; remove `instance` (one cache per instantiation for the process) or the type parameter",
        );
    }
    if options.given("redis") {
        errors.spanned(
            field,
            "`instance` and `redis` do not combine: Redis entries are shared by every process, \
             an instance's cache is its own; remove one of them",
        );
    }
}

/// The error for an item that is not a function with a body, at its keyword and name.
pub(crate) fn not_a_function(item: &NotAFunction) -> syn::Error {
    match &item.trait_method {
        Some(sig) => syn::Error::new_spanned(
            sig,
            "`#[cached]` needs a function with a body; a trait's method declaration has none: cache a free \
             function and call it from the implementations",
        ),
        None => syn::Error::new_spanned(
            &item.tokens,
            format!("`#[cached]` goes on a function or a method, not on {}", item.kind),
        ),
    }
}

/// `refresh` fits inside `ttl` when there is one (without, entries never expire and are
/// refreshed every `refresh`); `jitter` spreads `ttl`, so it needs it.
fn check_expiry(options: &Options, errors: &mut Errors) {
    // A `ttl` that was written but could not be read has its own error.
    let ttl_missing = !options.given("ttl");
    if let (Some(refresh), Some(ttl)) = (&options.refresh, options.ttl) {
        if refresh.value >= ttl {
            errors.spanned(
                &refresh.tokens,
                "`refresh` must be shorter than `ttl`: values are refreshed once older than `refresh` and \
                 expire at `ttl`, so a longer `refresh` would never happen",
            );
        }
    }
    if let (Some(stale), true) = (&options.stale_if_error, ttl_missing) {
        errors.spanned(
            &stale.tokens,
            "`stale_if_error` serves a value for a while after its `ttl` when recomputing it fails; \
             add a `ttl = …` or remove `stale_if_error`",
        );
    }
    if let Some(jitter) = &options.jitter {
        if ttl_missing {
            errors.spanned(
                &jitter.tokens,
                "`jitter` spreads the lifetimes set by `ttl = …`; add a `ttl` or remove `jitter`",
            );
        } else if let (Jitter::Nanos(nanos), Some(ttl)) = (jitter.value, options.ttl) {
            if nanos >= ttl {
                errors.spanned(
                    &jitter.tokens,
                    "`jitter` must be shorter than `ttl`: lifetimes are spread within `ttl` ± `jitter` and \
                     must stay above zero",
                );
            }
        }
    }
}

fn check_function(sig: &Signature, errors: &mut Errors) {
    if let Some(constness) = &sig.constness {
        errors.spanned(
            constness,
            "`#[cached]` cannot be used on a `const fn`: a cache lives at run time; remove `const`",
        );
    }
    if let Some(abi) = &sig.abi {
        errors.spanned(abi, "`#[cached]` cannot be used on an `extern` function; cache a Rust function that calls it");
    }
    if let Some(variadic) = &sig.variadic {
        errors.spanned(
            variadic,
            "`#[cached]` cannot be used on a variadic function",
        );
    }
    for param in sig.generics.const_params() {
        errors.spanned(
            param,
            "`#[cached]` does not support const generic parameters (type parameters are supported, one cache \
             each): pass the constant as an argument instead",
        );
    }
}

/// Whether a receiver of type `ty` may change the instance: `&mut Self`, or a smart pointer
/// around it (`Pin<&mut Self>`).
fn borrows_mutably(ty: &Type) -> bool {
    match ty {
        Type::Reference(reference) => reference.mutability.is_some(),
        Type::Path(path) => path
            .path
            .segments
            .iter()
            .any(|segment| match &segment.arguments {
                syn::PathArguments::AngleBracketed(args) => args.args.iter().any(
                    |arg| matches!(arg, syn::GenericArgument::Type(ty) if borrows_mutably(ty)),
                ),
                _ => false,
            }),
        _ => false,
    }
}

fn check_arguments(func: &Function<'_>, options: &Options, errors: &mut Errors) {
    for input in &func.sig.inputs {
        match input {
            // `&mut self`, `self: &mut Self`, `self: Pin<&mut Self>`: the receiver's type, which
            // syn writes out for the shorthand forms too.
            FnArg::Receiver(receiver) if borrows_mutably(&receiver.ty) => {
                errors.spanned(
                    receiver,
                    "`#[cached]` cannot be used on a `&mut self` method: a cached call would skip the body's \
                     changes to `self`; take `&self`",
                );
            }
            FnArg::Receiver(_) => {}
            FnArg::Typed(typed) => {
                if let Some(cfg) = typed
                    .attrs
                    .iter()
                    .find(|attr| attr.path().is_ident("cfg") || attr.path().is_ident("cfg_attr"))
                {
                    errors.spanned(
                        cfg,
                        "`#[cached]` cannot take `#[cfg]` on an argument: the key and the call are \
                         made from every argument written; put the `#[cfg]` on two versions of \
                         the whole function instead",
                    );
                }
                if !matches!(&*typed.pat, Pat::Ident(pat) if pat.subpat.is_none() && pat.by_ref.is_none())
                {
                    let message = match &*typed.pat {
                        Pat::Wild(_) => {
                            "`#[cached]` needs every argument named: the key is made of them; \
                             write `_name: Type` (or `#[skip] _name: Type` to leave it out of \
                             the key)"
                        }
                        _ => "`#[cached]` needs plain argument names; destructure inside the body",
                    };
                    errors.spanned(&typed.pat, message);
                }
                // With a custom key, only the arguments in it must be storable.
                let in_key = match &options.key {
                    // A key that was given but could not be read: its own error says why.
                    None if options.given("key") => false,
                    None => func.skip_of(typed).is_none(),
                    Some(key) => func.key_args(key).is_some_and(|used| {
                        used.iter().any(|arg| std::ptr::eq(arg.original, typed))
                    }),
                };
                check_argument_type(&typed.ty, in_key, errors);
            }
        }
    }
}

/// `#[skip]` leaves an argument out of the key: only on arguments after `self`, bare, and not
/// beside `key = …`, which says the whole key already.
fn check_skips(func: &Function<'_>, options: &Options, errors: &mut Errors) {
    if let Some(skip) = func.receiver_skip {
        errors.spanned(
            skip,
            "`self` is never part of the key, so there is nothing to skip; remove this `#[skip]` \
             (a method's key is its arguments not marked `#[skip]`, or `key = …`)",
        );
    }
    for skip in func.arg_skips() {
        if !matches!(skip.meta, syn::Meta::Path(_)) {
            errors.spanned(&skip.meta, "`#[skip]` takes no arguments; write `#[skip]`");
        }
        if options.given("key") {
            errors.spanned(
                skip,
                "`#[skip]` and `key = …` both say what the key is: remove this `#[skip]` (the key is \
                 then what `key = …` says) or remove `key = …` (the key is then the arguments not \
                 marked `#[skip]`)",
            );
        }
    }
}

fn check_argument_type(ty: &Type, in_key: bool, errors: &mut Errors) {
    if let Some(impl_trait) = find_impl_trait(ty) {
        errors.spanned(
            impl_trait,
            "`#[cached]` cannot take an `impl Trait` argument: its type has no name for the cache to store; \
             take a concrete type",
        );
        return;
    }
    match ty {
        Type::Reference(TypeReference { mutability: Some(_), .. }) => errors.spanned(
            ty,
            "`#[cached]` cannot be used with `&mut` arguments: a cached call would skip the body's changes \
             through it; take `&T` or an owned value",
        ),
        Type::Reference(reference) if in_key => check_storable(&reference.elem, "argument", errors),
        _ if in_key => check_storable(ty, "argument", errors),
        _ => {}
    }
}

/// The first `impl Trait` in a type, also behind a reference (`&impl Display`).
fn find_impl_trait(ty: &Type) -> Option<&TypeImplTrait> {
    struct Finder<'ast>(Option<&'ast TypeImplTrait>);
    impl<'ast> Visit<'ast> for Finder<'ast> {
        fn visit_type_impl_trait(&mut self, impl_trait: &'ast TypeImplTrait) {
            self.0.get_or_insert(impl_trait);
        }
    }
    let mut finder = Finder(None);
    finder.visit_type(ty);
    finder.0
}

fn check_return(func: &Function<'_>, options: &Options, errors: &mut Errors) {
    let Some(output) = func.value_output() else {
        errors.spanned(
            &func.sig.ident,
            "`#[cached]` needs a return value to cache; this function returns `()`",
        );
        return;
    };
    let ty = output.ty;
    if let Type::ImplTrait(_) = ty {
        errors.spanned(ty, "`#[cached]` cannot store an `impl Trait` return value: name the type (e.g. `Box<dyn Trait>`)");
        return;
    }
    check_storable(ty, "return", errors);
    let kind = output.kind;
    if let Some(flag) = &options.cache_errors {
        if kind != ReturnKind::Result {
            errors.spanned(
                &flag.tokens,
                "`cache_errors` only applies to functions returning `Result`; remove it",
            );
        }
    }
    if let Some(stale) = &options.stale_if_error {
        if kind != ReturnKind::Result {
            errors.spanned(
                &stale.tokens,
                "`stale_if_error` answers an `Err` with the expired value, so it only applies to \
                 functions returning `Result`; remove it",
            );
        } else if options.cache_errors.as_ref().is_some_and(|flag| flag.value) {
            errors.spanned(
                &stale.tokens,
                "`stale_if_error` answers an `Err` with the expired value, but `cache_errors = true` \
                 caches the `Err` as the new value; remove one of them",
            );
        }
    }
    if let Some(flag) = &options.cache_none {
        if kind != ReturnKind::Option {
            errors.spanned(
                &flag.tokens,
                "`cache_none` only applies to functions returning `Option`; remove it",
            );
        }
    }
}

/// The cache is a `static`: what it stores may not borrow, nor name `Self`.
fn check_storable(ty: &Type, what: &str, errors: &mut Errors) {
    struct Finder<'a> {
        what: &'a str,
        errors: &'a mut Errors,
    }
    impl<'ast> Visit<'ast> for Finder<'_> {
        fn visit_lifetime(&mut self, lifetime: &'ast Lifetime) {
            if lifetime.ident != "static" {
                self.errors.spanned(
                    lifetime,
                    format!(
                        "`#[cached]` cannot store borrowed data (`{lifetime}` in the {} type): the cache outlives \
                         the call; use an owned type (String, Vec<T>, Arc<T>) or `&'static` data",
                        self.what
                    ),
                );
            }
        }
        fn visit_type_reference(&mut self, reference: &'ast TypeReference) {
            match &reference.lifetime {
                Some(lifetime) => self.visit_lifetime(lifetime),
                None => self.errors.spanned(
                    reference,
                    format!(
                        "`#[cached]` cannot store borrowed data (a reference in the {} type): the cache outlives \
                         the call; use an owned type (String, Vec<T>, Arc<T>) or `&'static` data",
                        self.what
                    ),
                ),
            }
            self.visit_type(&reference.elem);
        }
        fn visit_path_segment(&mut self, segment: &'ast syn::PathSegment) {
            if segment.ident == "Self" {
                self.errors.spanned(
                    &segment.ident,
                    format!("`#[cached]` cannot name `Self` in the {} type of its cache; write the type's name", self.what),
                );
            }
            syn::visit::visit_path_segment(self, segment);
        }
    }
    Finder { what, errors }.visit_type(ty);
}

fn check_options(func: &Function<'_>, options: &Options, errors: &mut Errors) {
    let (sig, args) = (func.sig, &func.args);
    // A method's `#[skip]` says what its key is: the other arguments.
    if func.is_method()
        && !options.given("key")
        && !options.given("instance")
        && !options.given("batch")
        && func.arg_skips().next().is_none()
    {
        let names: Vec<String> = args.iter().map(|arg| arg.name.to_string()).collect();
        let advice = match names.as_slice() {
            [] => "name the fields of `self` the result depends on and add the key's type, e.g. \
                   `key = self.id, key_type = u64`"
                .to_string(),
            [one] => format!(
                "write `key = {one}` if the result depends only on the arguments, or also name the fields \
                 of `self` it reads and add the key's type, e.g. `key = ({one}, self.tenant), key_type = (u64, u32)`"
            ),
            many => format!(
                "write `key = ({})` if the result depends only on the arguments, or also name the fields \
                 of `self` it reads and add the key's type, e.g. `key = (id, self.tenant), key_type = (u64, u32)`",
                many.join(", ")
            ),
        };
        errors.spanned(
            &sig.ident,
            format!("`#[cached]` on a method needs `key = …`, because `self` cannot be stored in the cache: {advice}; \
                     or give each instance a cache of its own with `instance = <field>`"),
        );
    }
    if let (Some(key), false) = (&options.key, options.given("key_type")) {
        if func.key_args(key).is_none() {
            match bare_names(key)
                .and_then(|names| names.into_iter().find(|name| !args.iter().any(|arg| arg.name == *name)))
            {
                Some(stranger) if stranger != "self" => {
                    let names: Vec<String> = args.iter().map(|arg| format!("`{}`", arg.name)).collect();
                    errors.spanned(
                        stranger,
                        format!(
                            "`{stranger}` is not an argument of `{}`: a key made of names takes them from the \
                             arguments ({}); for any other expression add `key_type = <its type>`",
                            sig.ident,
                            if names.is_empty() { "it has none".to_string() } else { names.join(", ") }
                        ),
                    );
                }
                _ => errors.spanned(
                    key,
                    "the type of this key cannot be read from the signature; add `key_type = <its type>` \
                     (the type of the owned value this expression produces)",
                ),
            }
        }
    }
    if let (Some(key_type), false) = (&options.key_type, options.given("key")) {
        errors.spanned(
            key_type,
            "`key_type` goes with `key = …`; without `key`, the key is the arguments",
        );
    }
    if let (Some(weight), false) = (&options.weight, options.given("size")) {
        errors.spanned(
            weight,
            "`weight` needs `size = …`, the total weight the cache may hold",
        );
    }
}

/// The names a key is made of when it is only names (`id`, `(id, region)`).
fn bare_names(key: &Expr) -> Option<Vec<&Ident>> {
    match key {
        Expr::Path(path) => path.path.get_ident().map(|ident| vec![ident]),
        Expr::Paren(paren) => bare_names(&paren.expr),
        Expr::Tuple(tuple) => {
            let mut names = Vec::new();
            for elem in &tuple.elems {
                names.append(&mut bare_names(elem)?);
            }
            Some(names)
        }
        _ => None,
    }
}
