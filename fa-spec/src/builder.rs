//! Building a cell at run time, for servers that read head_dim and friends
//! from a model's config. It goes through [`crate::validate`], so it accepts
//! exactly the cells the attribute accepts, with the same messages.

use crate::model::{Arch, Dtype, KernelSpec};
use crate::rules::{validate, ArgValue, RawArg, Rule};
use std::fmt;

/// Every rule a run-time cell broke.
#[derive(Debug, Clone, thiserror::Error)]
pub struct SpecErrors(pub Vec<(Rule, String)>);

impl fmt::Display for SpecErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("invalid attention cell: ")?;
        for (i, (_, msg)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            f.write_str(msg)?;
        }
        Ok(())
    }
}

impl SpecErrors {
    pub fn rules(&self) -> impl Iterator<Item = Rule> + '_ {
        self.0.iter().map(|(r, _)| *r)
    }
}

/// `KernelSpec::builder().arch(Arch::Sm90a).dtype(Dtype::Bf16).head_dim(128).causal().build()`
///
/// Setting a key twice is reported as a duplicate, as in the attribute.
#[derive(Debug, Clone, Default)]
pub struct SpecBuilder {
    args: Vec<RawArg<()>>,
}

impl KernelSpec {
    pub fn builder() -> SpecBuilder {
        SpecBuilder::default()
    }
}

impl SpecBuilder {
    /// Any key with a raw value, as the attribute would spell it.
    pub fn arg(mut self, key: &str, value: ArgValue) -> Self {
        self.args.push(RawArg::new(key, value, ()));
        self
    }
    fn flag(self, key: &str) -> Self {
        self.arg(key, ArgValue::Flag)
    }
    fn int(self, key: &str, v: u32) -> Self {
        self.arg(key, ArgValue::Int(i128::from(v)))
    }

    pub fn arch(self, arch: Arch) -> Self {
        self.arg("arch", ArgValue::Word(arch.as_str().into()))
    }
    /// The arch by name (`"sm90a"`), checked by `build`.
    pub fn arch_str(self, arch: &str) -> Self {
        self.arg("arch", ArgValue::Word(arch.into()))
    }
    pub fn dtype(self, dtype: Dtype) -> Self {
        self.arg("dtype", ArgValue::Word(dtype.as_str().into()))
    }
    /// The dtype by name (`"bf16"`), checked by `build`.
    pub fn dtype_str(self, dtype: &str) -> Self {
        self.arg("dtype", ArgValue::Word(dtype.into()))
    }
    pub fn head_dim(self, d: u32) -> Self {
        self.int("head_dim", d)
    }
    pub fn causal(self) -> Self {
        self.flag("causal")
    }
    pub fn window(self, w: u32) -> Self {
        self.int("window", w)
    }
    pub fn sink(self, n: u32) -> Self {
        self.int("sink", n)
    }
    pub fn alibi(self) -> Self {
        self.flag("alibi")
    }
    pub fn softcap(self, x: f32) -> Self {
        self.arg("softcap", ArgValue::Float(f64::from(x)))
    }
    pub fn gqa(self, r: u32) -> Self {
        self.int("gqa", r)
    }
    pub fn varlen(self) -> Self {
        self.flag("varlen")
    }
    pub fn paged(self) -> Self {
        self.flag("paged")
    }
    pub fn page_size(self, p: u32) -> Self {
        self.int("page_size", p)
    }
    pub fn backward(self) -> Self {
        self.flag("backward")
    }

    pub fn build(&self) -> Result<KernelSpec, SpecErrors> {
        validate(&self.args, &()).map_err(|es| SpecErrors(es.into_iter().map(|e| (e.rule, e.message)).collect()))
    }
}
