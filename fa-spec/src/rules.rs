//! The whitelist: every rule a cell must satisfy, with the one wording of
//! each error that the macro, spec files and the builder all report.
//!
//! Each front end turns its input into a list of [`RawArg`]s carrying a span
//! of its own choosing (tokens for the macro, a line for a spec file, nothing
//! for the builder) and calls [`validate`]; errors come back with the span of
//! the offending argument, or the span of the whole input when an argument is
//! missing.

use crate::model::{Arch, Dtype, KernelSpec, DEFAULT_PAGE_SIZE, HEAD_DIMS, MAX_GQA, MAX_POSITION};
use std::fmt;

/// The keys of the attribute, in the order the README documents them.
pub const KEYS: [&str; 13] = [
    "arch",
    "dtype",
    "head_dim",
    "causal",
    "window",
    "sink",
    "alibi",
    "softcap",
    "gqa",
    "varlen",
    "paged",
    "page_size",
    "backward",
];

/// The value written after `key =`, or its absence for a flag.
#[derive(Debug, Clone, PartialEq)]
pub enum ArgValue {
    /// A bare key: `causal`.
    Flag,
    /// An identifier or string: `arch = sm90a`, `arch = "sm90a"`.
    Word(String),
    /// An integer literal. Kept wide so that an overflowing value gets the
    /// rule's message rather than a parse error.
    Int(i128),
    /// A float literal.
    Float(f64),
    /// A boolean; `false` is the same as leaving a flag out (spec files).
    Bool(bool),
    /// A value of a kind no key takes (a TOML array or table), by its name.
    Unsupported(&'static str),
}

impl fmt::Display for ArgValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ArgValue::Flag => f.write_str("(no value)"),
            ArgValue::Word(w) => write!(f, "`{w}`"),
            ArgValue::Int(i) => write!(f, "`{i}`"),
            ArgValue::Float(x) => write!(f, "`{x:?}`"),
            ArgValue::Bool(b) => write!(f, "`{b}`"),
            ArgValue::Unsupported(kind) => write!(f, "{kind}"),
        }
    }
}

/// One `key` or `key = value` argument and where it was written.
#[derive(Debug, Clone)]
pub struct RawArg<S> {
    pub key: String,
    pub value: ArgValue,
    pub span: S,
}

impl<S> RawArg<S> {
    pub fn new(key: impl Into<String>, value: ArgValue, span: S) -> Self {
        RawArg { key: key.into(), value, span }
    }
}

/// Which rule an error comes from; stable, so tests and tools can match on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Rule {
    UnknownKey,
    DuplicateKey,
    MissingKey,
    /// A flag given a value, a value key given none, or a value of the wrong kind.
    ValueKind,
    UnknownArch,
    UnknownDtype,
    HeadDim,
    Fp8Arch,
    Fp8Backward,
    SinkWithoutMask,
    GqaRange,
    WindowRange,
    SinkRange,
    SoftcapRange,
    PageSize,
    PageSizeWithoutPaged,
    PagedBackward,
    /// The attribute is on something other than a struct (macro only).
    NotAStruct,
}

/// One broken rule, at the span of the offending argument.
#[derive(Debug, Clone)]
pub struct SpecError<S> {
    pub rule: Rule,
    pub message: String,
    pub span: S,
}

impl<S> fmt::Display for SpecError<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// Messages that do not depend on the value, shared with the macro's own
/// checks so the wording lives in one place.
pub fn not_a_struct_message() -> String {
    "#[flash_attention] goes on a struct, such as `pub struct LlamaDecode;`: it adds the cell's SPEC, CUDA_SOURCE and launcher to that type".to_string()
}

fn list_u32(xs: &[u32]) -> String {
    xs.iter().map(|x| x.to_string()).collect::<Vec<_>>().join(", ")
}

fn suggestion(key: &str) -> Option<&'static str> {
    KEYS.iter()
        .map(|k| (strsim::damerau_levenshtein(key, k), *k))
        .filter(|(d, k)| *d <= 2.max(k.len() / 3))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

/// Checks `args` against the whitelist and builds the cell, or returns every
/// broken rule (in argument order, then missing keys, then cross-argument
/// rules), each at the span of the argument to fix.
pub fn validate<S: Clone>(args: &[RawArg<S>], whole: &S) -> Result<KernelSpec, Vec<SpecError<S>>> {
    let mut errors: Vec<SpecError<S>> = Vec::new();
    let mut err = |rule: Rule, span: &S, message: String| errors.push(SpecError { rule, message, span: span.clone() });

    // First occurrence of each key, after the per-argument checks.
    let mut seen: Vec<(&str, &S)> = Vec::new();
    let mut arch: Option<(Arch, &S)> = None;
    let mut dtype: Option<(Dtype, &S)> = None;
    let mut head_dim: Option<u32> = None;
    let mut causal = false;
    let mut window: Option<(u32, &S)> = None;
    let mut sink: Option<(u32, &S)> = None;
    let mut alibi = false;
    let mut softcap: Option<f32> = None;
    let mut gqa: u32 = 1;
    let mut varlen = false;
    let mut paged: Option<&S> = None;
    let mut page_size: Option<(u32, &S)> = None;
    let mut backward: Option<&S> = None;

    for arg in args {
        let key = arg.key.as_str();
        let span = &arg.span;
        let Some(&known) = KEYS.iter().find(|k| **k == key) else {
            let hint = match suggestion(key) {
                Some(k) => format!("did you mean `{k}`? "),
                None => String::new(),
            };
            err(
                Rule::UnknownKey,
                span,
                format!("unknown key `{key}`: {hint}expected one of {}", KEYS.map(|k| format!("`{k}`")).join(", ")),
            );
            continue;
        };
        if seen.iter().any(|(k, _)| *k == known) {
            err(Rule::DuplicateKey, span, format!("duplicate key `{known}`: each key may be given at most once"));
            continue;
        }
        seen.push((known, span));

        match known {
            "causal" | "alibi" | "varlen" | "paged" | "backward" => {
                let on = match &arg.value {
                    ArgValue::Flag | ArgValue::Bool(true) => true,
                    ArgValue::Bool(false) => false,
                    other => {
                        err(
                            Rule::ValueKind,
                            span,
                            format!("`{known}` is a flag and takes no value (found {other}): write `{known}` alone"),
                        );
                        continue;
                    }
                };
                match known {
                    "causal" => causal = on,
                    "alibi" => alibi = on,
                    "varlen" => varlen = on,
                    "paged" => paged = on.then_some(span),
                    _ => backward = on.then_some(span),
                }
            }
            "arch" => match word(&arg.value) {
                Some(w) => match Arch::parse(w) {
                    Some(a) => arch = Some((a, span)),
                    None => err(
                        Rule::UnknownArch,
                        span,
                        format!("unknown arch `{w}`: expected one of `sm80`, `sm89`, `sm90a`, `sm100`"),
                    ),
                },
                None => err(
                    Rule::ValueKind,
                    span,
                    format!("`arch` needs a value, one of `sm80`, `sm89`, `sm90a`, `sm100` (found {})", arg.value),
                ),
            },
            "dtype" => match word(&arg.value) {
                Some(w) => match Dtype::parse(w) {
                    Some(d) => dtype = Some((d, span)),
                    None => err(
                        Rule::UnknownDtype,
                        span,
                        format!("unknown dtype `{w}`: expected one of `f16`, `bf16`, `e4m3`, `e5m2`"),
                    ),
                },
                None => err(
                    Rule::ValueKind,
                    span,
                    format!("`dtype` needs a value, one of `f16`, `bf16`, `e4m3`, `e5m2` (found {})", arg.value),
                ),
            },
            "head_dim" => match int(&arg.value) {
                Some(d) if HEAD_DIMS.iter().any(|h| i128::from(*h) == d) => head_dim = Some(d as u32),
                Some(d) => err(
                    Rule::HeadDim,
                    span,
                    format!("head_dim {d} is not supported: expected one of {}", list_u32(&HEAD_DIMS)),
                ),
                None => err(
                    Rule::ValueKind,
                    span,
                    format!("`head_dim` needs an integer value, one of {} (found {})", list_u32(&HEAD_DIMS), arg.value),
                ),
            },
            "window" | "sink" | "gqa" | "page_size" => {
                let (rule, max, what) = match known {
                    "window" => (Rule::WindowRange, MAX_POSITION, "keys a query sees, itself included"),
                    "sink" => (Rule::SinkRange, MAX_POSITION, "leading keys every query sees"),
                    "gqa" => (Rule::GqaRange, MAX_GQA, "query heads per KV head (1 = MHA)"),
                    _ => (Rule::PageSize, 256, "tokens per KV-cache page"),
                };
                let Some(n) = int(&arg.value) else {
                    err(
                        Rule::ValueKind,
                        span,
                        format!("`{known}` needs an integer value: the number of {what} (found {})", arg.value),
                    );
                    continue;
                };
                if known == "page_size" {
                    if !(1..=256).contains(&n) || (n & (n - 1)) != 0 {
                        err(rule, span, format!("page_size {n} is not a power of two in 1..=256"));
                    } else {
                        page_size = Some((n as u32, span));
                    }
                    continue;
                }
                if n < 1 || n > i128::from(max) {
                    err(
                        rule,
                        span,
                        format!(
                            "{known} = {n} is out of range: expected an integer in 1..={max}, the number of {what}"
                        ),
                    );
                    continue;
                }
                match known {
                    "window" => window = Some((n as u32, span)),
                    "sink" => sink = Some((n as u32, span)),
                    _ => gqa = n as u32,
                }
            }
            "softcap" => {
                let x = match arg.value {
                    ArgValue::Float(x) => x,
                    ArgValue::Int(i) => i as f64,
                    _ => {
                        err(
                            Rule::ValueKind,
                            span,
                            format!("`softcap` needs a number value, the cap X of X·tanh(s/X) (found {})", arg.value),
                        );
                        continue;
                    }
                };
                let x32 = x as f32;
                if !(x32.is_finite() && x32 > 0.0) {
                    err(Rule::SoftcapRange, span, format!("softcap must be a finite number > 0, found {x:?}"));
                } else {
                    softcap = Some(x32);
                }
            }
            _ => {}
        }
    }

    for required in ["arch", "dtype", "head_dim"] {
        if !seen.iter().any(|(k, _)| *k == required) {
            let allowed = match required {
                "arch" => "one of `sm80`, `sm89`, `sm90a`, `sm100`".to_string(),
                "dtype" => "one of `f16`, `bf16`, `e4m3`, `e5m2`".to_string(),
                _ => format!("one of {}", list_u32(&HEAD_DIMS)),
            };
            err(Rule::MissingKey, whole, format!("missing `{required}`: add `{required} = …`, {allowed}"));
        }
    }

    if let (Some((a, _)), Some((d, dspan))) = (arch, dtype) {
        if d.is_fp8() && !a.supports_fp8() {
            err(
                Rule::Fp8Arch,
                dspan,
                format!("dtype {d} needs arch sm90a or sm100 (fp8 tensor cores); {a} supports f16 and bf16"),
            );
        }
    }
    if let (Some((d, _)), Some(bspan)) = (dtype, backward) {
        if d.is_fp8() {
            err(
                Rule::Fp8Backward,
                bspan,
                format!("`backward` is not available for fp8 ({d}) cells: train in f16 or bf16"),
            );
        }
    }
    if let Some((_, sspan)) = sink {
        if !causal && window.is_none() {
            err(
                Rule::SinkWithoutMask,
                sspan,
                "`sink` needs `causal` or `window`: sink tokens only matter when the mask hides keys".to_string(),
            );
        }
    }
    if let Some((_, pspan)) = page_size {
        if paged.is_none() {
            err(
                Rule::PageSizeWithoutPaged,
                pspan,
                "`page_size` is only valid with `paged`: add `paged` or remove `page_size`".to_string(),
            );
        }
    }
    if let (Some(_), Some(bspan)) = (paged, backward) {
        err(
            Rule::PagedBackward,
            bspan,
            "`backward` cannot be combined with `paged`: the paged KV-cache is an inference layout; train with contiguous or `varlen` K/V".to_string(),
        );
    }

    // A required key that is absent or invalid has been reported above.
    let (Some((arch, _)), Some((dtype, _)), Some(head_dim), true) = (arch, dtype, head_dim, errors.is_empty()) else {
        return Err(errors);
    };
    Ok(KernelSpec {
        arch,
        dtype,
        head_dim,
        causal,
        window: window.map(|(w, _)| w),
        sink: sink.map(|(s, _)| s),
        alibi,
        softcap,
        gqa,
        varlen,
        page_size: paged.map(|_| page_size.map_or(DEFAULT_PAGE_SIZE, |(p, _)| p)),
        backward: backward.is_some(),
    })
}

fn word(v: &ArgValue) -> Option<&str> {
    match v {
        ArgValue::Word(w) => Some(w),
        _ => None,
    }
}

fn int(v: &ArgValue) -> Option<i128> {
    match v {
        ArgValue::Int(i) => Some(*i),
        _ => None,
    }
}
