//! What the expansion needs to know about the function: its arguments, what kind of value it
//! returns, and how to build its cache key.

use proc_macro2::TokenStream;
use quote::quote;
use syn::{Expr, FnArg, Ident, Pat, ReturnType, Signature, Type};

/// A typed argument with a plain name.
pub(crate) struct Arg<'a> {
    pub(crate) name: &'a Ident,
    pub(crate) ty: &'a Type,
}

impl Arg<'_> {
    /// The type a key holds for this argument: a reference is stored owned (`&str` → `String`,
    /// `&[T]` → `Vec<T>`, `&T` → `T`).
    pub(crate) fn owned_type(&self) -> TokenStream {
        match self.ty {
            Type::Reference(reference) => {
                let inner = &reference.elem;
                quote!(<#inner as ::std::borrow::ToOwned>::Owned)
            }
            ty => quote!(#ty),
        }
    }

    /// An owned copy of the argument for the key (the body still gets the original).
    pub(crate) fn owned_value(&self) -> TokenStream {
        let name = self.name;
        match self.ty {
            Type::Reference(_) => quote!(::std::borrow::ToOwned::to_owned(#name)),
            _ => quote!(::std::clone::Clone::clone(&#name)),
        }
    }
}

/// How the return type is cached.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReturnKind {
    /// `Result<T, E>` or an alias ending in `Result`: `Ok` values cached.
    Result,
    /// `Option<T>`: cached, `None` too unless `cache_none = false`.
    Option,
    /// Anything else: cached as is.
    Plain,
}

pub(crate) fn typed_args(sig: &Signature) -> Vec<Arg<'_>> {
    sig.inputs
        .iter()
        .filter_map(|input| match input {
            FnArg::Typed(typed) => match &*typed.pat {
                Pat::Ident(pat) => Some(Arg {
                    name: &pat.ident,
                    ty: &typed.ty,
                }),
                _ => None,
            },
            FnArg::Receiver(_) => None,
        })
        .collect()
}

pub(crate) fn has_receiver(sig: &Signature) -> bool {
    sig.receiver().is_some()
}

pub(crate) fn return_type(sig: &Signature) -> Option<&Type> {
    match &sig.output {
        ReturnType::Type(_, ty) => Some(ty),
        ReturnType::Default => None,
    }
}

pub(crate) fn return_kind(ty: &Type) -> ReturnKind {
    let Type::Path(path) = ty else {
        return ReturnKind::Plain;
    };
    match path
        .path
        .segments
        .last()
        .map(|segment| segment.ident.to_string())
        .as_deref()
    {
        Some("Result") => ReturnKind::Result,
        Some("Option") => ReturnKind::Option,
        _ => ReturnKind::Plain,
    }
}

/// The arguments a `key = …` expression is made of, when it is only argument names (`id`,
/// `(id, name)`); `None` when it is any other expression.
pub(crate) fn key_args<'a>(key: &Expr, args: &'a [Arg<'a>]) -> Option<Vec<&'a Arg<'a>>> {
    match key {
        Expr::Path(path) => {
            let ident = path.path.get_ident()?;
            args.iter()
                .find(|arg| arg.name == ident)
                .map(|arg| vec![arg])
        }
        Expr::Paren(paren) => key_args(&paren.expr, args),
        Expr::Tuple(tuple) if !tuple.elems.is_empty() => {
            let mut found = Vec::new();
            for elem in &tuple.elems {
                let mut one = key_args(elem, args)?;
                if !matches!(elem, Expr::Path(_)) {
                    return None;
                }
                found.append(&mut one);
            }
            Some(found)
        }
        _ => None,
    }
}

/// The key's type and the expression building it from arguments: one argument is the key
/// itself, several make a tuple.
pub(crate) fn key_from_args(args: &[&Arg<'_>], as_tuple: bool) -> (TokenStream, TokenStream) {
    let types = args.iter().map(|arg| arg.owned_type());
    let values = args.iter().map(|arg| arg.owned_value());
    match args {
        [one] if !as_tuple => (one.owned_type(), one.owned_value()),
        _ => (quote!((#(#types,)*)), quote!((#(#values,)*))),
    }
}
