//! The cache key built from arguments. `#[cached]` and the writers both build it here, so that
//! a writer's key for an entry is the key `#[cached]` stored it under.
//!
//! Two forms of one key: the owned key the cache stores (`&str` → `String`), which the writers
//! hand over, and the lookup form `#[cached]` calls the runtime with, which borrows what the
//! arguments borrow (`&str` stays a `&str`) and stands for the owned key: the runtime hashes and
//! compares it as the owned key and builds that only on a miss, so a hit allocates nothing.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::Type;

use crate::ast::Arg;

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

    /// A check that the argument's type can be part of a key (`Hash` and `Eq`), spanned at the
    /// type, so that the compiler's error points at the argument rather than the attribute.
    pub(crate) fn key_check(&self) -> TokenStream {
        let ty = self.ty;
        quote_spanned!(ty.span()=> ::memokit::__private::key_argument::<#ty>();)
    }

    /// The argument in the lookup form of the key: a reference as it is (`Borrowed`, copied into
    /// the owned key only on a miss), any other argument a copy (`Owned`: a `Copy` type costs
    /// nothing; the body still gets the original, which it may consume).
    pub(crate) fn lookup_part(&self) -> TokenStream {
        let name = self.name;
        match self.ty {
            Type::Reference(_) => quote!(::memokit::__private::Borrowed(#name)),
            _ => quote!(::memokit::__private::Owned(::std::clone::Clone::clone(&#name))),
        }
    }
}

/// The key's type and the expression building it from arguments: one argument is the key
/// itself, several make a tuple.
pub(crate) fn from_args(args: &[&Arg<'_>], as_tuple: bool) -> (TokenStream, TokenStream) {
    let types = args.iter().map(|arg| arg.owned_type());
    let values = args.iter().map(|arg| arg.owned_value());
    match args {
        [one] if !as_tuple => (one.owned_type(), one.owned_value()),
        _ => (quote!((#(#types,)*)), quote!((#(#values,)*))),
    }
}

/// The lookup form of the key [`from_args`] builds, from the same arguments: one argument is
/// its part, several make `Args` of a tuple of parts, which hashes and compares as the tuple
/// of owned arguments.
pub(crate) fn lookup_from_args(args: &[&Arg<'_>], as_tuple: bool) -> TokenStream {
    match args {
        [one] if !as_tuple => one.lookup_part(),
        _ => {
            let parts = args.iter().map(|arg| arg.lookup_part());
            quote!(::memokit::__private::Args((#(#parts,)*)))
        }
    }
}
