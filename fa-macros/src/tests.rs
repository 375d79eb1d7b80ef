//! Expansion snapshots (`src/snapshots/`) and parser unit tests.

use crate::expand;
use proc_macro2::TokenStream;
use quote::quote;

/// The expansion of `#[flash_attention(#attr)] pub struct Cell;`, formatted,
/// with the (large) CUDA source replaced by a placeholder naming its entry
/// point: the rendered source has snapshots of its own in fa-spec, and a
/// byte count here would churn with every template edit.
fn expansion(attr: TokenStream) -> String {
    let args = crate::parse::parse_args(attr.clone()).unwrap();
    let entry = fa_spec::validate(&args, &crate::parse::Loc::Attribute).unwrap().forward_entry();
    let out = expand(
        attr,
        quote!(
            pub struct Cell;
        ),
    );
    assert!(!out.to_string().contains("compile_error"), "{out}");
    let mut file: syn::File = syn::parse2(out).expect("the expansion parses as a file");
    for item in &mut file.items {
        let syn::Item::Impl(imp) = item else { continue };
        for it in &mut imp.items {
            if let syn::ImplItem::Const(c) = it {
                if c.ident == "CUDA_SOURCE" {
                    let syn::Expr::Lit(syn::ExprLit { lit: syn::Lit::Str(s), .. }) = &c.expr else {
                        panic!("CUDA_SOURCE is a string literal")
                    };
                    assert!(s.value().contains(&format!("{entry}(")), "CUDA_SOURCE defines {entry}");
                    let placeholder = format!("<CUDA source of {entry}>");
                    c.expr = syn::parse_quote!(#placeholder);
                }
            }
        }
    }
    prettyplease::unparse(&file)
}

/// The messages of the `compile_error!`s an expansion emits.
fn errors(attr: TokenStream, item: TokenStream) -> Vec<String> {
    let out = expand(attr, item).to_string();
    out.split("compile_error !")
        .skip(1)
        .map(|s| {
            let start = s.find('"').unwrap() + 1;
            let end = s[start..].find("\" }").map_or(s.len(), |e| start + e);
            s[start..end].to_string()
        })
        .collect()
}

#[test]
fn expand_plain_bf16_causal() {
    insta::assert_snapshot!(expansion(quote!(arch = sm90a, dtype = bf16, head_dim = 128, causal)));
}

#[test]
fn expand_varlen_alibi() {
    insta::assert_snapshot!(expansion(quote!(arch = sm80, dtype = f16, head_dim = 64, varlen, alibi, softcap = 30.5)));
}

#[test]
fn expand_paged_gqa() {
    insta::assert_snapshot!(expansion(quote!(
        arch = sm90a,
        dtype = bf16,
        head_dim = 128,
        causal,
        paged,
        page_size = 32,
        gqa = 8
    )));
}

#[test]
fn expand_fp8() {
    insta::assert_snapshot!(expansion(quote!(arch = sm90a, dtype = e4m3, head_dim = 256, window = 4096, sink = 4)));
}

#[test]
fn expand_backward() {
    insta::assert_snapshot!(expansion(quote!(arch = sm80, dtype = bf16, head_dim = 96, causal, varlen, backward)));
}

#[test]
fn generic_struct_keeps_its_generics() {
    let out = expand(
        quote!(arch = sm80, dtype = f16, head_dim = 64),
        quote!(
            pub struct Cell<T: Copy>(core::marker::PhantomData<T>);
        ),
    )
    .to_string();
    assert!(out.contains("impl < T : Copy > Cell < T >"), "{out}");
}

#[test]
fn every_error_in_one_expansion() {
    let errs = errors(
        quote!(casual, head_dim = 100, gqa = 0, gqa = 2),
        quote!(
            pub struct Cell;
        ),
    );
    assert_eq!(errs.len(), 6, "{errs:#?}"); // casual, head_dim, gqa = 0, duplicate gqa, missing arch, missing dtype
    assert!(errs[0].starts_with("unknown key `casual`: did you mean `causal`?"), "{errs:#?}");
}

#[test]
fn not_a_struct_with_bad_args_reports_both() {
    let errs = errors(
        quote!(arch = sm70),
        quote!(
            enum E {
                A,
            }
        ),
    );
    assert_eq!(errs[0], fa_spec::not_a_struct_message());
    assert!(errs.iter().any(|e| e.starts_with("unknown arch `sm70`")), "{errs:#?}");
}

#[test]
fn item_is_kept_when_the_attribute_is_wrong() {
    let out = expand(
        quote!(causal = 3),
        quote!(
            pub struct Kept;
        ),
    )
    .to_string();
    assert!(out.starts_with("pub struct Kept ;"), "{out}");
}

mod parse {
    use crate::parse::parse_args;
    use fa_spec::ArgValue::{self, *};
    use quote::quote;

    fn values(attr: proc_macro2::TokenStream) -> Vec<(String, ArgValue)> {
        parse_args(attr).unwrap().into_iter().map(|a| (a.key, a.value)).collect()
    }
    fn error(attr: proc_macro2::TokenStream) -> String {
        parse_args(attr).unwrap_err().to_string()
    }

    #[test]
    fn every_value_form() {
        assert_eq!(
            values(quote!(
                arch = sm90a,
                dtype = "bf16",
                head_dim = 128u32,
                causal,
                softcap = 50.0,
                gqa = 0x8,
                varlen = true,
                r#paged,
            )),
            vec![
                ("arch".into(), Word("sm90a".into())),
                ("dtype".into(), Word("bf16".into())),
                ("head_dim".into(), Int(128)),
                ("causal".into(), Flag),
                ("softcap".into(), Float(50.0)),
                ("gqa".into(), Int(8)),
                ("varlen".into(), Bool(true)),
                ("paged".into(), Flag),
            ]
        );
    }

    #[test]
    fn negative_and_huge_numbers_reach_the_rules() {
        assert_eq!(
            values(quote!(softcap = -1.0, window = -3, sink = 4294967296, gqa = -0x10)),
            vec![
                ("softcap".into(), Float(-1.0)),
                ("window".into(), Int(-3)),
                ("sink".into(), Int(1 << 32)),
                ("gqa".into(), Int(-16))
            ]
        );
        assert_eq!(
            error(quote!(sink = 1000000000000000000000000000000000000000000000)),
            "integer literal is too large (more than 127 bits)"
        );
    }

    #[test]
    fn empty_attribute_is_no_arguments() {
        assert!(values(quote!()).is_empty());
    }

    #[test]
    fn malformed_syntax_is_a_parse_error() {
        assert_eq!(error(quote!(head_dim =)), "expected a value after `head_dim =`");
        assert_eq!(error(quote!(head_dim =, causal)), "expected a value after `head_dim =`");
        assert!(error(quote!(= 5)).starts_with("expected an argument"));
        assert_eq!(error(quote!(head_dim = 1.2.3)), "expected `,` between arguments");
        assert_eq!(error(quote!(causal paged)), "expected `,` between arguments");
        assert_eq!(
            error(quote!(arch = -sm90a)),
            "expected a value after `=`: an identifier (`sm90a`), a string, an integer or a float"
        );
        assert_eq!(error(quote!(arch = -"sm90a")), "expected a number after `-`");
    }
}
