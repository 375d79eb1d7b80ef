//! The three front ends of the whitelist agree: the attribute (tokens →
//! fa-macros' own `parse.rs` → `fa_spec::validate`), the run-time builder
//! and spec files accept the same cells and reject the rest with the same
//! rules and messages; every accepted cell renders; and each rule, broken on
//! purpose in an otherwise valid cell, is the one (and only) error reported.

#[path = "../../fa-macros/src/parse.rs"]
#[allow(dead_code)]
mod parse;

use fa_spec::{ArgValue, KernelSpec, Rule, HEAD_DIMS, KEYS};
use proc_macro2::{Literal, TokenStream};
use proptest::prelude::*;
use quote::{format_ident, quote};
use std::path::Path;

/// One argument as a test writes it; `as_string` spells a word `"sm90a"`
/// instead of `sm90a` in the attribute.
#[derive(Debug, Clone)]
struct Arg {
    key: String,
    value: ArgValue,
    as_string: bool,
}

/// What a front end says about a list of arguments: the kernel name, or
/// every (rule, message).
type Outcome = Result<String, Vec<(Rule, String)>>;

fn attribute_tokens(args: &[Arg]) -> TokenStream {
    let args = args.iter().map(|a| {
        let key = format_ident!("{}", a.key);
        let neg = |negative: bool| if negative { quote!(-) } else { quote!() };
        match &a.value {
            ArgValue::Flag => quote!(#key),
            ArgValue::Word(w) if a.as_string => quote!(#key = #w),
            ArgValue::Word(w) => {
                let w = format_ident!("{}", w);
                quote!(#key = #w)
            }
            ArgValue::Int(i) => {
                let (sign, lit) = (neg(*i < 0), Literal::u128_unsuffixed(i.unsigned_abs()));
                quote!(#key = #sign #lit)
            }
            ArgValue::Float(x) => {
                let (sign, lit) = (neg(x.is_sign_negative()), Literal::f64_unsuffixed(x.abs()));
                quote!(#key = #sign #lit)
            }
            ArgValue::Bool(b) => quote!(#key = #b),
            ArgValue::Unsupported(_) => unreachable!("spec files only"),
        }
    });
    quote!(#(#args),*)
}

fn outcome<S>(r: Result<KernelSpec, Vec<fa_spec::SpecError<S>>>) -> Outcome {
    r.map(|s| s.kernel_name()).map_err(|es| es.into_iter().map(|e| (e.rule, e.message)).collect())
}

/// The attribute's path, through the macro's own parser.
fn via_attribute(args: &[Arg]) -> Outcome {
    let raw = parse::parse_args(attribute_tokens(args)).expect("generated attributes are well-formed");
    outcome(fa_spec::validate(&raw, &parse::Loc::Attribute))
}

fn via_builder(args: &[Arg]) -> Outcome {
    let b = args.iter().fold(KernelSpec::builder(), |b, a| b.arg(&a.key, a.value.clone()));
    b.build().map(|s| s.kernel_name()).map_err(|e| e.0)
}

/// A spec file has no bare flags (`causal = true`) and no repeated keys.
fn toml_value(v: &ArgValue) -> ArgValue {
    match v {
        ArgValue::Flag => ArgValue::Bool(true),
        v => v.clone(),
    }
}

fn spec_file_text(args: &[Arg]) -> String {
    args.iter()
        .map(|a| {
            let v = match toml_value(&a.value) {
                ArgValue::Word(w) => format!("{w:?}"),
                ArgValue::Int(i) => i.to_string(),
                ArgValue::Float(x) => format!("{x:?}"),
                ArgValue::Bool(b) => b.to_string(),
                ArgValue::Flag | ArgValue::Unsupported(_) => unreachable!("not generated"),
            };
            format!("{} = {v}\n", a.key)
        })
        .collect()
}

fn via_spec_file(args: &[Arg]) -> Outcome {
    let text = spec_file_text(args);
    fa_spec::parse_spec(&text, Path::new("cell.toml")).map(|s| s.kernel_name()).map_err(|es| {
        es.0.into_iter().map(|e| (e.rule.unwrap_or_else(|| panic!("{e} in\n{text}")), e.message)).collect()
    })
}

/// Spec files report in line order (missing keys first), the attribute in
/// argument order: compare the errors as multisets.
fn sorted(o: Outcome) -> Outcome {
    o.map_err(|mut es| {
        es.sort_by(|a, b| (format!("{:?}", a.0), &a.1).cmp(&(format!("{:?}", b.0), &b.1)));
        es
    })
}

fn is_flag_key(k: &str) -> bool {
    matches!(k, "causal" | "alibi" | "varlen" | "paged" | "backward")
}

/// Checks the agreement of the three paths on `args`; returns the outcome.
fn check_agreement(args: &[Arg]) -> Result<Outcome, TestCaseError> {
    let attribute = via_attribute(args);
    prop_assert_eq!(&attribute, &via_builder(args), "attribute vs builder on {:?}", args);

    let mut keys: Vec<&str> = args.iter().map(|a| a.key.as_str()).collect();
    keys.sort();
    keys.dedup();
    if keys.len() == args.len() {
        let as_toml: Vec<Arg> = args.iter().map(|a| Arg { value: toml_value(&a.value), ..a.clone() }).collect();
        let file = sorted(via_spec_file(args));
        prop_assert_eq!(&file, &sorted(via_builder(&as_toml)), "spec file vs builder on {:?}", args);
        // Only a bare flag on a value key reads differently (`(no value)` vs `true`).
        if args.iter().all(|a| a.value != ArgValue::Flag || is_flag_key(&a.key)) {
            prop_assert_eq!(&file, &sorted(attribute.clone()), "spec file vs attribute on {:?}", args);
        }
    }
    if let Ok(name) = &attribute {
        let spec = fa_spec::validate::<()>(
            &args.iter().map(|a| fa_spec::RawArg::new(&a.key, a.value.clone(), ())).collect::<Vec<_>>(),
            &(),
        )
        .unwrap();
        prop_assert_eq!(&spec.kernel_name(), name);
        if let Err(e) = fa_spec::render(&spec) {
            return Err(TestCaseError::fail(format!("valid cell {spec} does not render: {e}")));
        }
    }
    Ok(attribute)
}

// ---- strategies -------------------------------------------------------

fn word() -> impl Strategy<Value = ArgValue> {
    prop::sample::select(vec!["sm80", "sm89", "sm90a", "sm100", "sm70", "f16", "bf16", "e4m3", "e5m2", "fp32", "x"])
        .prop_map(|w| ArgValue::Word(w.into()))
}

fn int() -> impl Strategy<Value = ArgValue> {
    prop_oneof![
        prop::sample::select(vec![-3i128, 0, 1, 2, 4, 8, 16, 48, 64, 100, 128, 256, 257, 512, 1 << 31, 1 << 40]),
        -1_000_000_000_000i128..1_000_000_000_000,
    ]
    .prop_map(ArgValue::Int)
}

fn float() -> impl Strategy<Value = ArgValue> {
    prop_oneof![prop::sample::select(vec![0.0, -0.0, -1.0, 1e-3, 30.5, 50.0, 1e300]), -100.0f64..100.0]
        .prop_map(ArgValue::Float)
}

fn any_value() -> impl Strategy<Value = ArgValue> {
    prop_oneof![Just(ArgValue::Flag), word(), int(), float(), any::<bool>().prop_map(ArgValue::Bool)]
}

fn any_arg() -> impl Strategy<Value = Arg> {
    let key = prop_oneof![
        8 => prop::sample::select(KEYS.to_vec()),
        1 => prop::sample::select(vec!["casual", "headdim", "flavour", "pagesize"]),
    ];
    (key, any_value(), any::<bool>()).prop_map(|(k, value, as_string)| Arg { key: k.into(), value, as_string })
}

fn arg(key: &str, value: ArgValue) -> Arg {
    Arg { key: key.into(), value, as_string: false }
}
fn w(s: &str) -> ArgValue {
    ArgValue::Word(s.into())
}

/// A valid cell, as arguments in a random order.
fn valid_cell() -> impl Strategy<Value = Vec<Arg>> {
    let arch_dtype = prop::sample::select(vec!["sm80", "sm89", "sm90a", "sm100"]).prop_flat_map(|a| {
        let dtypes =
            if matches!(a, "sm90a" | "sm100") { vec!["f16", "bf16", "e4m3", "e5m2"] } else { vec!["f16", "bf16"] };
        (Just(a), prop::sample::select(dtypes))
    });
    let masks = (any::<bool>(), prop::option::of(1u32..100_000), prop::option::of(1u32..64));
    let rest = (
        any::<bool>(),
        prop::option::of(prop_oneof![Just(50.0f64), Just(30.5), 0.5f64..100.0]),
        prop::option::of(1u32..=256),
        any::<bool>(),
        prop::option::of(prop::option::of((0u32..=8).prop_map(|p| 1u32 << p))),
        any::<bool>(),
    );
    (arch_dtype, prop::sample::select(HEAD_DIMS.to_vec()), masks, rest, any::<bool>())
        .prop_map(|((a, d), hd, (causal, window, sink), (alibi, softcap, gqa, varlen, paged, backward), as_string)| {
            let mut v = vec![
                Arg { key: "arch".into(), value: w(a), as_string },
                arg("dtype", w(d)),
                arg("head_dim", ArgValue::Int(hd.into())),
            ];
            if causal {
                v.push(arg("causal", ArgValue::Flag));
            }
            if let Some(x) = window {
                v.push(arg("window", ArgValue::Int(x.into())));
            }
            if let (Some(s), true) = (sink, causal || window.is_some()) {
                v.push(arg("sink", ArgValue::Int(s.into())));
            }
            if alibi {
                v.push(arg("alibi", ArgValue::Flag));
            }
            if let Some(x) = softcap {
                v.push(arg("softcap", ArgValue::Float(x)));
            }
            if let Some(g) = gqa {
                v.push(arg("gqa", ArgValue::Int(g.into())));
            }
            if varlen {
                v.push(arg("varlen", ArgValue::Flag));
            }
            if let Some(p) = paged {
                v.push(arg("paged", ArgValue::Flag));
                if let Some(p) = p {
                    v.push(arg("page_size", ArgValue::Int(p.into())));
                }
            }
            if backward && paged.is_none() && !d.starts_with('e') {
                v.push(arg("backward", ArgValue::Flag));
            }
            v
        })
        .prop_shuffle()
}

/// Every rule that can be broken on purpose.
const DEFECTS: [Rule; 17] = [
    Rule::UnknownKey,
    Rule::DuplicateKey,
    Rule::MissingKey,
    Rule::ValueKind,
    Rule::UnknownArch,
    Rule::UnknownDtype,
    Rule::HeadDim,
    Rule::Fp8Arch,
    Rule::Fp8Backward,
    Rule::SinkWithoutMask,
    Rule::GqaRange,
    Rule::WindowRange,
    Rule::SinkRange,
    Rule::SoftcapRange,
    Rule::PageSize,
    Rule::PageSizeWithoutPaged,
    Rule::PagedBackward,
];

/// Breaks exactly `rule` in the valid cell `args` (`pick` chooses among
/// the ways to break it), removing what would break another rule too.
fn break_rule(mut args: Vec<Arg>, rule: Rule, pick: usize) -> Vec<Arg> {
    let has = |args: &[Arg], k: &str| args.iter().any(|a| a.key == k);
    let remove = |args: &mut Vec<Arg>, keys: &[&str]| args.retain(|a| !keys.contains(&a.key.as_str()));
    let set = |args: &mut Vec<Arg>, k: &str, v: ArgValue| {
        match args.iter_mut().find(|a| a.key == k) {
            Some(a) => a.value = v,
            None => args.push(arg(k, v)),
        };
    };
    let choose = |xs: &[i128]| ArgValue::Int(xs[pick % xs.len()]);
    match rule {
        Rule::UnknownKey => {
            args.insert(pick % (args.len() + 1), arg(["casual", "head_size", "flavour"][pick % 3], ArgValue::Flag))
        }
        Rule::DuplicateKey => {
            let again = args[pick % args.len()].clone();
            args.push(again);
        }
        Rule::MissingKey => remove(&mut args, &[["arch", "dtype", "head_dim"][pick % 3]]),
        Rule::ValueKind => match pick % 3 {
            0 => set(&mut args, ["alibi", "varlen"][pick % 2], ArgValue::Int(3)),
            1 => set(&mut args, "head_dim", w("big")),
            _ => set(&mut args, "arch", ArgValue::Int(90)),
        },
        Rule::UnknownArch => set(&mut args, "arch", w(["sm70", "sm90", "hopper"][pick % 3])),
        Rule::UnknownDtype => set(&mut args, "dtype", w(["fp32", "f8", "int8"][pick % 3])),
        Rule::HeadDim => set(&mut args, "head_dim", choose(&[0, 32, 100, 127, 512, -64, 1 << 40])),
        Rule::Fp8Arch => {
            set(&mut args, "arch", w(["sm80", "sm89"][pick % 2]));
            set(&mut args, "dtype", w(["e4m3", "e5m2"][pick / 2 % 2]));
            remove(&mut args, &["backward"]);
        }
        Rule::Fp8Backward => {
            set(&mut args, "arch", w(["sm90a", "sm100"][pick % 2]));
            set(&mut args, "dtype", w(["e4m3", "e5m2"][pick / 2 % 2]));
            remove(&mut args, &["paged", "page_size"]);
            set(&mut args, "backward", ArgValue::Flag);
        }
        Rule::SinkWithoutMask => {
            remove(&mut args, &["causal", "window"]);
            set(&mut args, "sink", choose(&[1, 4, 1024]));
        }
        Rule::GqaRange => set(&mut args, "gqa", choose(&[0, -1, 257, 1 << 32])),
        Rule::WindowRange => {
            if !has(&args, "causal") {
                remove(&mut args, &["sink"]);
            }
            set(&mut args, "window", choose(&[0, -3, 1 << 31, 1 << 40]));
        }
        Rule::SinkRange => {
            set(&mut args, "causal", ArgValue::Flag);
            set(&mut args, "sink", choose(&[0, -1, 1 << 31]));
        }
        Rule::SoftcapRange => {
            let x = [0.0, -0.0, -1.0, -50.0, 1e300][pick % 5];
            set(&mut args, "softcap", if pick >= 900 { ArgValue::Int(0) } else { ArgValue::Float(x) });
        }
        Rule::PageSize => {
            remove(&mut args, &["backward"]);
            set(&mut args, "paged", ArgValue::Flag);
            set(&mut args, "page_size", choose(&[0, 3, 48, 100, 512, 1024, -16]));
        }
        Rule::PageSizeWithoutPaged => {
            remove(&mut args, &["paged"]);
            set(&mut args, "page_size", choose(&[1, 16, 64, 256]));
        }
        Rule::PagedBackward => {
            set(&mut args, "dtype", w(["f16", "bf16"][pick % 2]));
            set(&mut args, "paged", ArgValue::Flag);
            set(&mut args, "backward", ArgValue::Flag);
        }
        Rule::NotAStruct => unreachable!("not an argument rule"),
    }
    args
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Random argument lists: valid or not, the three paths agree.
    #[test]
    fn random_arguments_agree(args in prop::collection::vec(any_arg(), 0..8)) {
        let _ = check_agreement(&args)?;
    }

    /// Random valid lists with the required keys, mostly accepted.
    #[test]
    fn random_cells_agree(cell in valid_cell(), extra in prop::collection::vec(any_arg(), 0..2)) {
        let mut args = cell;
        args.extend(extra);
        let _ = check_agreement(&args)?;
    }

    /// Every valid cell is accepted by all three paths and renders.
    #[test]
    fn valid_cells_are_accepted_and_render(cell in valid_cell()) {
        let out = check_agreement(&cell)?;
        prop_assert!(out.is_ok(), "{:?} rejected: {:?}", cell, out);
    }

    /// Each rule, broken alone in a valid cell, is the one error reported.
    #[test]
    fn each_broken_rule_is_reported_alone(cell in valid_cell(), rule in prop::sample::select(DEFECTS.to_vec()), pick in 0usize..1000) {
        let args = break_rule(cell, rule, pick);
        let out = check_agreement(&args)?;
        let rules: Vec<Rule> = out.as_ref().err().map(|es| es.iter().map(|e| e.0).collect()).unwrap_or_default();
        prop_assert_eq!(rules, vec![rule], "{:?} → {:?}", args, out);
    }
}

/// The attribute's own spellings that other front ends lack still mean the
/// same cell: suffixed and hex integers, strings for words, integer softcap.
#[test]
fn attribute_spellings() {
    let a = parse::parse_args(quote!(arch = "sm90a", dtype = bf16, head_dim = 0x80, softcap = 50, gqa = 8u32)).unwrap();
    let spec = fa_spec::validate(&a, &parse::Loc::Attribute).unwrap();
    let b =
        KernelSpec::builder().arch_str("sm90a").dtype_str("bf16").head_dim(128).softcap(50.0).gqa(8).build().unwrap();
    assert_eq!(spec.kernel_name(), b.kernel_name());
}
