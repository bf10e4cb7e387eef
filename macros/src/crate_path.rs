//! `crate = "path"`: where the generated code finds the runtime when `memokit` is not a
//! dependency of that name (renamed in `Cargo.toml`, or re-exported by a facade crate). The
//! expansion is written against `::memokit`; this rewrites each path that starts there.

use proc_macro2::{Group, Spacing, TokenStream, TokenTree};
use quote::ToTokens;
use syn::{Expr, ExprLit, Lit, Path};

use crate::errors::Errors;

/// The path a `crate = "…"` value names (in both attributes), or an error at the value.
pub(crate) fn parse(value: &Expr, errors: &mut Errors) -> Option<Path> {
    if let Expr::Lit(ExprLit {
        lit: Lit::Str(path),
        ..
    }) = value
    {
        if let Ok(path) = path.parse::<Path>() {
            return Some(path);
        }
    }
    errors.spanned(
        value,
        "`crate` expects the path memokit is reached by, in a string: \
         `crate = \"memokit_renamed\"` or `crate = \"my_facade::memokit\"`",
    );
    None
}

/// `tokens` with every path that starts with `::memokit` starting with `krate` instead.
pub(crate) fn rewrite(tokens: TokenStream, krate: Option<&Path>) -> TokenStream {
    let Some(krate) = krate else {
        return tokens;
    };
    let trees: Vec<TokenTree> = tokens.into_iter().collect();
    let mut out = TokenStream::new();
    let mut at = 0;
    while at < trees.len() {
        let starts_path = at == 0 || !is_path_continuation(&trees[..at]);
        if starts_path && is_leading_memokit(&trees[at..]) {
            krate.to_tokens(&mut out);
            at += 3;
            continue;
        }
        match &trees[at] {
            TokenTree::Group(group) => {
                let mut inner = Group::new(group.delimiter(), rewrite(group.stream(), Some(krate)));
                inner.set_span(group.span());
                out.extend([TokenTree::Group(inner)]);
            }
            tree => out.extend([tree.clone()]),
        }
        at += 1;
    }
    out
}

/// Whether the `::` after `before` continues a path (`a::memokit`, `Self::memokit`,
/// `Vec<u8>::memokit`) rather than starting one: after a keyword (`as ::memokit`, `use`,
/// `impl`, `dyn`, `&'static ::memokit`), a punctuation mark or a group, a path starts.
fn is_path_continuation(before: &[TokenTree]) -> bool {
    /// The keywords a path can start with, which a `::` continues.
    const SEGMENTS: [&str; 4] = ["self", "Self", "super", "crate"];
    match before {
        // A lifetime: `'static`.
        [.., TokenTree::Punct(tick), TokenTree::Ident(_)] if tick.as_char() == '\'' => false,
        [.., TokenTree::Ident(ident)] => {
            let name = ident.to_string();
            SEGMENTS.contains(&name.as_str()) || !is_keyword(&name)
        }
        [.., TokenTree::Punct(punct)] => punct.as_char() == '>',
        _ => false,
    }
}

/// Whether `name` is a Rust keyword (strict or reserved, 2021 edition).
fn is_keyword(name: &str) -> bool {
    const KEYWORDS: [&str; 51] = [
        "as", "async", "await", "break", "const", "continue", "crate", "dyn", "else", "enum",
        "extern", "false", "fn", "for", "if", "impl", "in", "let", "loop", "match", "mod", "move",
        "mut", "pub", "ref", "return", "self", "Self", "static", "struct", "super", "trait",
        "true", "type", "unsafe", "use", "where", "while", "abstract", "become", "box", "do",
        "final", "macro", "override", "priv", "typeof", "unsized", "virtual", "yield", "try",
    ];
    KEYWORDS.contains(&name)
}

/// Whether `trees` starts with `::memokit`.
fn is_leading_memokit(trees: &[TokenTree]) -> bool {
    matches!(
        trees,
        [TokenTree::Punct(first), TokenTree::Punct(second), TokenTree::Ident(name), ..]
            if first.as_char() == ':' && first.spacing() == Spacing::Joint
                && second.as_char() == ':' && name == "memokit"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use quote::quote;

    #[test]
    fn paths_from_memokit_start_from_the_crate_given() {
        let krate: Path = syn::parse_str("facade::inner").unwrap();
        let rewritten = rewrite(
            quote!(::memokit::Memo::new(); { x: ::memokit::__private::Plain<u8> } a::memokit::b),
            Some(&krate),
        );
        assert_eq!(
            rewritten.to_string(),
            quote!(facade::inner::Memo::new(); { x: facade::inner::__private::Plain<u8> } a::memokit::b)
                .to_string()
        );
        // After a keyword or a lifetime, a path starts; after `Self` or `>`, it goes on.
        let rewritten = rewrite(
            quote!(<T as ::memokit::Shape>::Value; use ::memokit::X; impl ::memokit::Y for Z {}
                   &'static ::memokit::Memo; Self::memokit; Vec<u8>::memokit),
            Some(&krate),
        );
        assert_eq!(
            rewritten.to_string(),
            quote!(<T as facade::inner::Shape>::Value; use facade::inner::X;
                   impl facade::inner::Y for Z {} &'static facade::inner::Memo; Self::memokit;
                   Vec<u8>::memokit)
            .to_string()
        );
    }
}
