//! The attribute's arguments → [`RawArg`]s, each carrying its own tokens.
//!
//! This module only reads syntax: `key`, `key = ident`, `key = "string"`,
//! `key = true`, `key = [-]int`, `key = [-]float`. Whether a key exists, is
//! repeated or has a sensible value is [`fa_spec::validate`]'s business, so
//! that the attribute, spec files and the run-time builder report the same
//! rules with the same words. It depends on nothing else in this crate, so
//! the test crate can include it to drive the macro's path directly.

use fa_spec::{ArgValue, RawArg};
use proc_macro2::{Span, TokenStream};
use quote::ToTokens;
use syn::ext::IdentExt;
use syn::parse::{Parse, ParseStream, Parser};
use syn::punctuated::Punctuated;
use syn::{Ident, Lit, Token};

/// Where a rule's error goes: under one `key = value` argument, or on the
/// whole attribute (for a missing key).
#[derive(Debug, Clone)]
pub enum Loc {
    Arg(TokenStream),
    Attribute,
}

impl Loc {
    pub fn error(&self, message: impl std::fmt::Display) -> syn::Error {
        match self {
            Loc::Arg(tokens) => syn::Error::new_spanned(tokens, message),
            Loc::Attribute => syn::Error::new(Span::call_site(), message),
        }
    }
}

/// Parses `arch = sm90a, dtype = bf16, head_dim = 128, causal, …`.
pub fn parse_args(attr: TokenStream) -> syn::Result<Vec<RawArg<Loc>>> {
    let args = Punctuated::<Arg, Token![,]>::parse_terminated.parse2(attr)?;
    Ok(args.into_iter().map(|a| a.0).collect())
}

struct Arg(RawArg<Loc>);

impl Parse for Arg {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let mut tokens = TokenStream::new();
        let key = Ident::parse_any(input)
            .map_err(|e| syn::Error::new(e.span(), "expected an argument such as `head_dim = 128` or `causal`"))?;
        key.to_tokens(&mut tokens);
        let value = if input.peek(Token![=]) {
            let eq: Token![=] = input.parse()?;
            eq.to_tokens(&mut tokens);
            if input.is_empty() || input.peek(Token![,]) {
                return Err(syn::Error::new_spanned(eq, format!("expected a value after `{key} =`")));
            }
            parse_value(input, &mut tokens)?
        } else {
            ArgValue::Flag
        };
        if !input.is_empty() && !input.peek(Token![,]) {
            return Err(input.error("expected `,` between arguments"));
        }
        Ok(Arg(RawArg::new(key.unraw().to_string(), value, Loc::Arg(tokens))))
    }
}

/// The value after `=`, its tokens appended to `tokens`.
fn parse_value(input: ParseStream, tokens: &mut TokenStream) -> syn::Result<ArgValue> {
    const EXPECTED: &str = "expected a value after `=`: an identifier (`sm90a`), a string, an integer or a float";
    let negative = input.peek(Token![-]);
    if negative {
        input.parse::<Token![-]>()?.to_tokens(tokens);
    }
    if !negative && input.peek(Ident::peek_any) && !input.peek(syn::LitBool) {
        let word = Ident::parse_any(input)?;
        word.to_tokens(tokens);
        return Ok(ArgValue::Word(word.unraw().to_string()));
    }
    let lit: Lit = input.parse().map_err(|e| syn::Error::new(e.span(), EXPECTED))?;
    lit.to_tokens(tokens);
    let sign = if negative { -1 } else { 1 };
    Ok(match &lit {
        Lit::Str(s) if !negative => ArgValue::Word(s.value()),
        Lit::Bool(b) if !negative => ArgValue::Bool(b.value),
        // i128 holds any literal a person writes, so an out-of-range one
        // (`gqa = 4294967296`) gets the rule's message with its own value.
        Lit::Int(i) => ArgValue::Int(
            i.base10_parse::<i128>()
                .map_err(|_| syn::Error::new_spanned(i, "integer literal is too large (more than 127 bits)"))?
                * sign,
        ),
        Lit::Float(x) => ArgValue::Float(x.base10_parse::<f64>()? * sign as f64),
        _ => return Err(syn::Error::new_spanned(lit, if negative { "expected a number after `-`" } else { EXPECTED })),
    })
}
