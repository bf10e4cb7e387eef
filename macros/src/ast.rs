//! The function an attribute is on, parsed once into the model that both pipelines read
//! (`#[cached]` in `valid.rs` and `expand.rs`, the writers in `writer/`): its receiver, its
//! arguments, what it returns. Nothing here judges the function; `valid.rs` does.

use proc_macro2::TokenStream;
use quote::{quote, ToTokens};
use syn::{
    Attribute, Expr, FnArg, Ident, ItemFn, Pat, PatType, Receiver, ReturnType, Signature, Type,
};

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
    /// `#[skip]` on `self`, which is never part of the key (an error).
    pub(crate) receiver_skip: Option<&'a Attribute>,
    /// `#[skip]` on the arguments after `self`, by position in `inputs`.
    skips: &'a [Option<Attribute>],
}

/// The `#[skip]` attributes of a function's parameters, taken off it (see [`take_skips`]).
#[derive(Default)]
pub(crate) struct Skips {
    receiver: Option<Attribute>,
    /// By position among the arguments after `self`.
    inputs: Vec<Option<Attribute>>,
}

/// Takes every `#[skip]` off the parameters of `item`, which is then the function to emit
/// (`skip` is not an attribute the compiler knows), and returns them; a second `#[skip]` on one
/// parameter is dropped.
pub(crate) fn take_skips(item: &mut ItemFn) -> Skips {
    fn take(attrs: &mut Vec<Attribute>) -> Option<Attribute> {
        let mut first = None;
        attrs.retain(|attr| {
            if !attr.path().is_ident("skip") {
                return true;
            }
            first.get_or_insert_with(|| attr.clone());
            false
        });
        first
    }
    let mut skips = Skips::default();
    for input in &mut item.sig.inputs {
        match input {
            FnArg::Receiver(receiver) => skips.receiver = take(&mut receiver.attrs),
            FnArg::Typed(typed) => skips.inputs.push(take(&mut typed.attrs)),
        }
    }
    skips
}

/// An argument with a plain name (`id: u64`, `mut name: &str`).
pub(crate) struct Arg<'a> {
    pub(crate) original: &'a PatType,
    pub(crate) name: &'a Ident,
    pub(crate) ty: &'a Type,
    /// `#[skip]`: left out of the key.
    pub(crate) skip: Option<&'a Attribute>,
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
    let mut function: ItemFn = syn::parse2(item.clone()).map_err(|_| not_a_function(item))?;
    syn::visit_mut::visit_signature_mut(&mut Ungroup, &mut function.sig);
    Ok(function)
}

/// Takes off the invisible groups that `macro_rules!` puts around a fragment (`$t:ty`,
/// `$e:expr`): without this, a `Result` return type or a `&str` argument written through a
/// macro would not be recognized as one. Only groups around an atomic type or expression are
/// taken off, which cannot change how the tokens parse (a group around `dyn A + Send` or
/// `a + b` keeps its precedence).
pub(crate) struct Ungroup;

impl syn::visit_mut::VisitMut for Ungroup {
    fn visit_type_mut(&mut self, ty: &mut Type) {
        while let Type::Group(group) = ty {
            let atomic = matches!(
                *group.elem,
                Type::Path(_)
                    | Type::Reference(_)
                    | Type::Slice(_)
                    | Type::Array(_)
                    | Type::Tuple(_)
                    | Type::Paren(_)
                    | Type::Never(_)
                    | Type::Group(_)
            );
            if !atomic {
                break;
            }
            *ty = (*group.elem).clone();
        }
        syn::visit_mut::visit_type_mut(self, ty);
    }

    fn visit_expr_mut(&mut self, expr: &mut Expr) {
        while let Expr::Group(group) = expr {
            if !matches!(
                *group.expr,
                Expr::Lit(_) | Expr::Path(_) | Expr::Paren(_) | Expr::Tuple(_) | Expr::Group(_)
            ) {
                break;
            }
            *expr = (*group.expr).clone();
        }
        syn::visit_mut::visit_expr_mut(self, expr);
    }
}

/// `expr` without the invisible groups of `macro_rules!` fragments (see [`Ungroup`]).
pub(crate) fn ungrouped(mut expr: Expr) -> Expr {
    syn::visit_mut::VisitMut::visit_expr_mut(&mut Ungroup, &mut expr);
    expr
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
    /// The model of `original`, whose `#[skip]`s were taken off into `skips` (the writers,
    /// which know no `#[skip]`, pass none).
    pub(crate) fn from_syn(original: &'a ItemFn, skips: &'a Skips) -> Function<'a> {
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
            .enumerate()
            .filter_map(|(index, &typed)| match &*typed.pat {
                Pat::Ident(pat) => Some(Arg {
                    original: typed,
                    name: &pat.ident,
                    ty: &typed.ty,
                    skip: skips.inputs.get(index).and_then(Option::as_ref),
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
            receiver_skip: skips.receiver.as_ref(),
            skips: &skips.inputs,
        }
    }

    /// The `#[skip]` on the argument `typed` (one of `inputs`), if any.
    pub(crate) fn skip_of(&self, typed: &PatType) -> Option<&'a Attribute> {
        let index = self
            .inputs
            .iter()
            .position(|&input| std::ptr::eq(input, typed))?;
        self.skips.get(index).and_then(Option::as_ref)
    }

    /// The `#[skip]`s on the arguments after `self`.
    pub(crate) fn arg_skips(&self) -> impl Iterator<Item = &'a Attribute> {
        self.skips.iter().flatten()
    }

    /// The arguments the key is made of without `key = …`: those not marked `#[skip]`.
    pub(crate) fn key_by_default(&self) -> Vec<&Arg<'a>> {
        self.args.iter().filter(|arg| arg.skip.is_none()).collect()
    }

    /// The function's type parameters (`T` of `fn parse<T: FromStr>`): one cache each
    /// instantiation. Lifetimes are not among them.
    pub(crate) fn type_params(&self) -> Vec<&'a syn::Ident> {
        self.sig
            .generics
            .type_params()
            .map(|param| &param.ident)
            .collect()
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

/// What `#[cached(batch)]` needs from a function: its one argument of keys (`&[K]` or
/// `Vec<K>`), and the key and value types of the map it returns (`HashMap<K, V>`, any map
/// type whose first two type parameters are the key and value, or `Vec<(K, V)>`, each also
/// inside a `Result`).
pub(crate) struct BatchParts<'f> {
    pub(crate) keys: &'f Arg<'f>,
    /// `Vec<K>` rather than `&[K]`.
    pub(crate) by_value: bool,
    pub(crate) key: &'f Type,
    pub(crate) value: &'f Type,
}

impl<'a> Function<'a> {
    /// The batch function's parts; `Err` says which part does not fit, at which tokens.
    pub(crate) fn batch_parts(&self) -> Result<BatchParts<'_>, syn::Error> {
        let kept = self.key_by_default();
        let [keys] = kept.as_slice() else {
            return Err(syn::Error::new_spanned(
                &self.sig.inputs,
                "`batch` needs exactly one argument of keys (`ids: &[u64]` or `ids: Vec<u64>`); \
                 mark any other argument `#[skip]`",
            ));
        };
        let (key, by_value) = element_type(keys.ty).ok_or_else(|| {
            syn::Error::new_spanned(
                keys.ty,
                "the keys of a `batch` function come as a slice or a vector: write `&[K]` or `Vec<K>`",
            )
        })?;
        let output = self.value_output().ok_or_else(|| {
            syn::Error::new_spanned(
                &self.sig.ident,
                "a `batch` function returns the values it found: add `-> HashMap<K, V>`",
            )
        })?;
        let map = match output.kind {
            ReturnKind::Result => first_type_argument(output.ty).unwrap_or(output.ty),
            _ => output.ty,
        };
        let value = map_value_type(map).ok_or_else(|| {
            syn::Error::new_spanned(
                map,
                "a `batch` function returns its values by key: `HashMap<K, V>` (or `BTreeMap<K, V>`, \
                 `Vec<(K, V)>`), possibly inside a `Result`",
            )
        })?;
        Ok(BatchParts {
            keys,
            by_value,
            key,
            value,
        })
    }
}

/// `T` of `&[T]` (false) or `Vec<T>` (true).
fn element_type(ty: &Type) -> Option<(&Type, bool)> {
    match ty {
        Type::Reference(reference) if reference.mutability.is_none() => match &*reference.elem {
            Type::Slice(slice) => Some((&slice.elem, false)),
            _ => None,
        },
        Type::Path(path) if path.path.segments.last()?.ident == "Vec" => {
            first_type_argument(ty).map(|elem| (elem, true))
        }
        _ => None,
    }
}

fn type_arguments(ty: &Type) -> Vec<&Type> {
    let Type::Path(path) = ty else {
        return Vec::new();
    };
    let Some(segment) = path.path.segments.last() else {
        return Vec::new();
    };
    match &segment.arguments {
        syn::PathArguments::AngleBracketed(arguments) => arguments
            .args
            .iter()
            .filter_map(|argument| match argument {
                syn::GenericArgument::Type(ty) => Some(ty),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

fn first_type_argument(ty: &Type) -> Option<&Type> {
    type_arguments(ty).first().copied()
}

/// `V` of `Map<K, V, …>`, or of `Vec<(K, V)>`.
fn map_value_type(map: &Type) -> Option<&Type> {
    match type_arguments(map).as_slice() {
        [_, value, ..] => Some(value),
        [Type::Tuple(pair)] if pair.elems.len() == 2 => pair.elems.iter().nth(1),
        _ => None,
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
