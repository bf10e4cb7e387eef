//! Errors collected instead of stopping at the first, so that every mistake is reported at
//! once; they reach the user as `compile_error!`s, never as a panic.

use proc_macro2::Span;

#[derive(Default)]
pub(crate) struct Errors(Option<syn::Error>);

impl Errors {
    pub(crate) fn push(&mut self, error: syn::Error) {
        match &mut self.0 {
            Some(all) => all.combine(error),
            None => self.0 = Some(error),
        }
    }

    pub(crate) fn at(&mut self, span: Span, message: impl std::fmt::Display) {
        self.push(syn::Error::new(span, message));
    }

    pub(crate) fn spanned(
        &mut self,
        tokens: impl quote::ToTokens,
        message: impl std::fmt::Display,
    ) {
        self.push(syn::Error::new_spanned(tokens, message));
    }

    pub(crate) fn finish(self) -> syn::Result<()> {
        self.0.map_or(Ok(()), Err)
    }
}

impl Errors {
    /// What an attribute expands to: `expand()` if nothing was wrong; else the errors, with
    /// the item as written so that they are the only ones reported.
    pub(crate) fn or_item(
        self,
        item: impl quote::ToTokens,
        expand: impl FnOnce() -> proc_macro2::TokenStream,
    ) -> proc_macro2::TokenStream {
        match self.finish() {
            Ok(()) => expand(),
            Err(error) => {
                let error = error.to_compile_error();
                quote::quote!(#error #item)
            }
        }
    }
}
