//! The cache key built from arguments. `#[cached]` and the writers both build it here, so that
//! a writer's key for an entry is the key `#[cached]` stored it under.

use proc_macro2::TokenStream;
use quote::quote;
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
