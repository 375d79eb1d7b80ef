//! `#[flash_attention(arch = sm90a, dtype = bf16, head_dim = 128, causal)]`
//! on a struct checks the cell against the whitelist at compile time (every
//! broken rule is reported, under the argument to fix), renders its CUDA
//! source and gives the struct `SPEC`, `CUDA_SOURCE` and typed launchers.
//!
//! The rules and their messages live in `fa_spec::validate`; this crate only
//! parses tokens ([`parse`]) and writes code ([`emit`]).

mod emit;
mod parse;

use proc_macro2::TokenStream;
use quote::ToTokens;

#[proc_macro_attribute]
pub fn flash_attention(attr: proc_macro::TokenStream, item: proc_macro::TokenStream) -> proc_macro::TokenStream {
    expand(attr.into(), item.into()).into()
}

/// The whole expansion: the item unchanged, then either the generated
/// `impl` or every error found (the item is kept either way so that an
/// error in the attribute does not cascade into "cannot find type").
fn expand(attr: TokenStream, item: TokenStream) -> TokenStream {
    let item: syn::Item = match syn::parse2(item.clone()) {
        Ok(item) => item,
        Err(e) => return e.to_compile_error(),
    };
    let mut errors: Vec<syn::Error> = Vec::new();
    let spec = match parse::parse_args(attr) {
        Err(e) => {
            errors.push(e);
            None
        }
        Ok(args) => match fa_spec::validate(&args, &parse::Loc::Attribute) {
            Ok(spec) => Some(spec),
            Err(es) => {
                errors.extend(es.iter().map(|e| e.span.error(&e.message)));
                None
            }
        },
    };
    let syn::Item::Struct(strukt) = &item else {
        errors.insert(0, syn::Error::new_spanned(emit::item_head(&item), fa_spec::not_a_struct_message()));
        return with_errors(item, errors);
    };
    match spec {
        Some(spec) if errors.is_empty() => match emit::emit(strukt, &spec) {
            Ok(generated) => quote::quote!(#item #generated),
            Err(e) => with_errors(item, vec![e]),
        },
        _ => with_errors(item, errors),
    }
}

fn with_errors(item: syn::Item, errors: Vec<syn::Error>) -> TokenStream {
    let mut out = item.into_token_stream();
    let combined = errors.into_iter().reduce(|mut all, e| {
        all.combine(e);
        all
    });
    if let Some(e) = combined {
        out.extend(e.to_compile_error());
    }
    out
}

#[cfg(test)]
mod tests;
