//! The function an attribute is on, parsed once into the model that both pipelines read
//! (`#[cached]` in `valid.rs` and `expand.rs`, the writers in `writer/`): its receiver, its
//! arguments, what it returns. Nothing here judges the function; `valid.rs` does.

use proc_macro2::TokenStream;
use quote::{quote, ToTokens};
use syn::{Expr, FnArg, Ident, ItemFn, Pat, PatType, Receiver, ReturnType, Signature, Type};

/// A function with a body, as the attributes see it. Borrows the parsed item.
pub(crate) struct Function<'a> {
    /// The function as written.
    pub(crate) original: &'a ItemFn,
    pub(crate) sig: &'a Signature,
    /// `self`, `&self` or `&mut self`, for a method.
    pub(crate) receiver: Option<&'a Receiver>,
    /// The arguments after `self` as written, patterns included.
    pub(crate) inputs: Vec<&'a PatType>,
    /// The arguments with a plain name, in order: what a key can be made of.
    pub(crate) args: Vec<Arg<'a>>,
    /// The written return type; `None` without `-> …`.
    pub(crate) output: Option<Output<'a>>,
}

/// An argument with a plain name (`id: u64`, `mut name: &str`).
pub(crate) struct Arg<'a> {
    pub(crate) original: &'a PatType,
    pub(crate) name: &'a Ident,
    pub(crate) ty: &'a Type,
}

/// A written return type and how a cache reads a value of it.
pub(crate) struct Output<'a> {
    pub(crate) ty: &'a Type,
    pub(crate) kind: ReturnKind,
}

/// How a return value is cached (by `#[cached]`) or stored (by `#[cache_put]`).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReturnKind {
    /// `Result<T, E>` or an alias ending in `Result`: `Ok` values cached.
    Result,
    /// `Option<T>`: cached, `None` too unless `cache_none = false`.
    Option,
    /// Anything else: cached as is.
    Plain,
}

/// An item that is not a function with a body, described for the error that says so.
pub(crate) struct NotAFunction {
    /// The signature, if it is a method declaration in a trait.
    pub(crate) trait_method: Option<Box<Signature>>,
    /// The tokens to point at: its keyword and name.
    pub(crate) tokens: TokenStream,
    /// What it is, for messages: "a struct".
    pub(crate) kind: &'static str,
}

/// The item an attribute is on, if it is a function with a body.
pub(crate) fn parse_function(item: &TokenStream) -> Result<ItemFn, NotAFunction> {
    syn::parse2(item.clone()).map_err(|_| not_a_function(item))
}

fn not_a_function(item: &TokenStream) -> NotAFunction {
    use syn::Item;
    fn named(keyword: impl ToTokens, ident: &Ident) -> TokenStream {
        quote!(#keyword #ident)
    }
    let (tokens, kind) = match syn::parse2::<Item>(item.clone()) {
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
    };
    NotAFunction {
        trait_method: syn::parse2::<syn::TraitItemFn>(item.clone())
            .ok()
            .map(|method| Box::new(method.sig)),
        tokens,
        kind,
    }
}

impl<'a> Function<'a> {
    pub(crate) fn from_syn(original: &'a ItemFn) -> Function<'a> {
        let sig = &original.sig;
        let inputs: Vec<&PatType> = sig
            .inputs
            .iter()
            .filter_map(|input| match input {
                FnArg::Typed(typed) => Some(typed),
                FnArg::Receiver(_) => None,
            })
            .collect();
        let args = inputs
            .iter()
            .filter_map(|&typed| match &*typed.pat {
                Pat::Ident(pat) => Some(Arg {
                    original: typed,
                    name: &pat.ident,
                    ty: &typed.ty,
                }),
                _ => None,
            })
            .collect();
        let output = match &sig.output {
            ReturnType::Type(_, ty) => Some(Output {
                ty,
                kind: return_kind(ty),
            }),
            ReturnType::Default => None,
        };
        Function {
            original,
            sig,
            receiver: sig.receiver(),
            inputs,
            args,
            output,
        }
    }

    pub(crate) fn is_method(&self) -> bool {
        self.receiver.is_some()
    }

    pub(crate) fn is_async(&self) -> bool {
        self.sig.asyncness.is_some()
    }

    /// The return type if the function returns a value: not without `-> …`, not `-> ()`.
    pub(crate) fn value_output(&self) -> Option<&Output<'a>> {
        self.output
            .as_ref()
            .filter(|output| !matches!(output.ty, Type::Tuple(unit) if unit.elems.is_empty()))
    }

    /// The arguments a `key = …` expression is made of, when it is only argument names (`id`,
    /// `(id, name)`); `None` when it is any other expression.
    pub(crate) fn key_args(&self, key: &Expr) -> Option<Vec<&Arg<'a>>> {
        match key {
            Expr::Path(path) => {
                let ident = path.path.get_ident()?;
                self.args
                    .iter()
                    .find(|arg| arg.name == ident)
                    .map(|arg| vec![arg])
            }
            Expr::Paren(paren) => self.key_args(&paren.expr),
            Expr::Tuple(tuple) if !tuple.elems.is_empty() => {
                let mut found = Vec::new();
                for elem in &tuple.elems {
                    let mut one = self.key_args(elem)?;
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
}

/// `Result` and `Option` are recognised by the last segment of the written type.
fn return_kind(ty: &Type) -> ReturnKind {
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
