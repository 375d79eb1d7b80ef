//! The attention cell: one point of the whitelist, fully validated.

use std::fmt;

/// Target architecture of a cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Arch {
    /// Ampere (A100): the portable FlashAttention-2 path.
    Sm80,
    /// Ada (L4, L40): the portable path; first arch with fp8 tensor cores.
    Sm89,
    /// Hopper with the arch-specific features (wgmma, TMA, setmaxnreg).
    Sm90a,
    /// Blackwell datacenter parts.
    Sm100,
}

impl Arch {
    pub const ALL: [Arch; 4] = [Arch::Sm80, Arch::Sm89, Arch::Sm90a, Arch::Sm100];

    /// The spelling used in the attribute and spec files.
    pub const fn as_str(self) -> &'static str {
        match self {
            Arch::Sm80 => "sm80",
            Arch::Sm89 => "sm89",
            Arch::Sm90a => "sm90a",
            Arch::Sm100 => "sm100",
        }
    }

    /// Major·10 + minor compute capability the arch needs.
    pub const fn compute_capability(self) -> u32 {
        match self {
            Arch::Sm80 => 80,
            Arch::Sm89 => 89,
            Arch::Sm90a => 90,
            Arch::Sm100 => 100,
        }
    }

    /// The NVRTC `--gpu-architecture` value the cell is compiled for.
    ///
    /// sm100 cells are compiled for `sm_100a` so that fp8 and later the
    /// Blackwell-only instructions are available; they then run only on
    /// compute capability 10.0 parts, which is what the cell names.
    pub const fn nvrtc_target(self) -> &'static str {
        match self {
            Arch::Sm80 => "sm_80",
            Arch::Sm89 => "sm_89",
            Arch::Sm90a => "sm_90a",
            Arch::Sm100 => "sm_100a",
        }
    }

    /// Most dynamic shared memory one block may opt into, in bytes.
    pub const fn max_smem_per_block(self) -> u32 {
        match self {
            Arch::Sm80 => 163 * 1024,
            Arch::Sm89 => 99 * 1024,
            Arch::Sm90a | Arch::Sm100 => 227 * 1024,
        }
    }

    /// Whether the arch has fp8 tensor-core instructions the kernels use.
    pub const fn supports_fp8(self) -> bool {
        matches!(self, Arch::Sm90a | Arch::Sm100)
    }

    pub fn parse(s: &str) -> Option<Arch> {
        Arch::ALL.into_iter().find(|a| a.as_str() == s)
    }
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Element type of Q, K and V.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Dtype {
    F16,
    Bf16,
    /// fp8 with 4 exponent bits, 3 mantissa bits (OCP E4M3, finite-only).
    E4m3,
    /// fp8 with 5 exponent bits, 2 mantissa bits.
    E5m2,
}

impl Dtype {
    pub const ALL: [Dtype; 4] = [Dtype::F16, Dtype::Bf16, Dtype::E4m3, Dtype::E5m2];

    pub const fn as_str(self) -> &'static str {
        match self {
            Dtype::F16 => "f16",
            Dtype::Bf16 => "bf16",
            Dtype::E4m3 => "e4m3",
            Dtype::E5m2 => "e5m2",
        }
    }

    pub const fn is_fp8(self) -> bool {
        matches!(self, Dtype::E4m3 | Dtype::E5m2)
    }

    /// Bytes per element of Q, K and V.
    pub const fn size_bytes(self) -> usize {
        if self.is_fp8() {
            1
        } else {
            2
        }
    }

    /// Element type of O: fp8 cells write bf16, as FlashAttention-3 does.
    pub const fn output(self) -> Dtype {
        if self.is_fp8() {
            Dtype::Bf16
        } else {
            self
        }
    }

    pub fn parse(s: &str) -> Option<Dtype> {
        Dtype::ALL.into_iter().find(|d| d.as_str() == s)
    }
}

impl fmt::Display for Dtype {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Head dimensions on the whitelist.
pub const HEAD_DIMS: [u32; 6] = [64, 80, 96, 128, 192, 256];

/// Page size of a paged cell when the spec names none.
pub const DEFAULT_PAGE_SIZE: u32 = 16;

/// Largest GQA ratio accepted (query heads per KV head).
pub const MAX_GQA: u32 = 256;

/// Largest window or sink count: positions are 32-bit signed on the device.
pub const MAX_POSITION: u32 = i32::MAX as u32;

/// One validated attention cell.
///
/// Values exist only through [`crate::validate`] (the attribute, a spec file
/// or [`crate::SpecBuilder`]), so every `KernelSpec` satisfies the whitelist.
#[derive(Debug, Clone, Copy)]
pub struct KernelSpec {
    pub(crate) arch: Arch,
    pub(crate) dtype: Dtype,
    pub(crate) head_dim: u32,
    pub(crate) causal: bool,
    pub(crate) window: Option<u32>,
    pub(crate) sink: Option<u32>,
    pub(crate) alibi: bool,
    pub(crate) softcap: Option<f32>,
    pub(crate) gqa: u32,
    pub(crate) varlen: bool,
    pub(crate) page_size: Option<u32>,
    pub(crate) backward: bool,
}

impl KernelSpec {
    /// Rebuilds a cell that the macro validated at compile time. Generated
    /// code calls this in a `const`; nothing else should.
    #[doc(hidden)]
    #[allow(clippy::too_many_arguments)]
    pub const fn __from_validated(
        arch: Arch,
        dtype: Dtype,
        head_dim: u32,
        causal: bool,
        window: Option<u32>,
        sink: Option<u32>,
        alibi: bool,
        softcap: Option<f32>,
        gqa: u32,
        varlen: bool,
        page_size: Option<u32>,
        backward: bool,
    ) -> KernelSpec {
        KernelSpec { arch, dtype, head_dim, causal, window, sink, alibi, softcap, gqa, varlen, page_size, backward }
    }

    pub const fn arch(&self) -> Arch {
        self.arch
    }
    pub const fn dtype(&self) -> Dtype {
        self.dtype
    }
    pub const fn head_dim(&self) -> u32 {
        self.head_dim
    }
    /// The `causal` flag as written (see [`KernelSpec::is_causal_masked`]).
    pub const fn causal(&self) -> bool {
        self.causal
    }
    /// Whether keys after the query's position are hidden: `causal`, or a
    /// sliding window, which implies the causal bound.
    pub const fn is_causal_masked(&self) -> bool {
        self.causal || self.window.is_some()
    }
    pub const fn window(&self) -> Option<u32> {
        self.window
    }
    pub const fn sink(&self) -> Option<u32> {
        self.sink
    }
    pub const fn alibi(&self) -> bool {
        self.alibi
    }
    pub const fn softcap(&self) -> Option<f32> {
        self.softcap
    }
    pub const fn gqa(&self) -> u32 {
        self.gqa
    }
    pub const fn varlen(&self) -> bool {
        self.varlen
    }
    pub const fn paged(&self) -> bool {
        self.page_size.is_some()
    }
    /// Tokens per KV-cache page; `None` unless the cell is paged.
    pub const fn page_size(&self) -> Option<u32> {
        self.page_size
    }
    pub const fn backward(&self) -> bool {
        self.backward
    }

    /// A stable, readable name that encodes every field of the cell. It is
    /// a C identifier, the prefix of the kernels' entry points and of the
    /// cache key.
    pub fn kernel_name(&self) -> String {
        let mut n = format!("fa_{}_{}_hd{}", self.arch, self.dtype, self.head_dim);
        if self.causal {
            n.push_str("_causal");
        }
        if let Some(w) = self.window {
            n.push_str(&format!("_win{w}"));
        }
        if let Some(s) = self.sink {
            n.push_str(&format!("_sink{s}"));
        }
        if self.alibi {
            n.push_str("_alibi");
        }
        if let Some(x) = self.softcap {
            n.push_str(&format!("_softcap{}", float_ident(x)));
        }
        n.push_str(&format!("_gqa{}", self.gqa));
        if self.varlen {
            n.push_str("_varlen");
        }
        if let Some(p) = self.page_size {
            n.push_str(&format!("_paged{p}"));
        }
        if self.backward {
            n.push_str("_bwd");
        }
        n
    }

    /// Name of the forward entry point in the rendered source.
    pub fn forward_entry(&self) -> String {
        format!("{}_fwd", self.kernel_name())
    }

    /// The cell as attribute arguments, e.g.
    /// `arch = sm90a, dtype = bf16, head_dim = 128, causal, gqa = 8`.
    pub fn to_attribute_args(&self) -> String {
        let mut parts = vec![
            format!("arch = {}", self.arch),
            format!("dtype = {}", self.dtype),
            format!("head_dim = {}", self.head_dim),
        ];
        if self.causal {
            parts.push("causal".into());
        }
        if let Some(w) = self.window {
            parts.push(format!("window = {w}"));
        }
        if let Some(s) = self.sink {
            parts.push(format!("sink = {s}"));
        }
        if self.alibi {
            parts.push("alibi".into());
        }
        if let Some(x) = self.softcap {
            parts.push(format!("softcap = {}", float_literal(x)));
        }
        if self.gqa != 1 {
            parts.push(format!("gqa = {}", self.gqa));
        }
        if self.varlen {
            parts.push("varlen".into());
        }
        if let Some(p) = self.page_size {
            parts.push("paged".into());
            if p != DEFAULT_PAGE_SIZE {
                parts.push(format!("page_size = {p}"));
            }
        }
        if self.backward {
            parts.push("backward".into());
        }
        parts.join(", ")
    }
}

impl PartialEq for KernelSpec {
    fn eq(&self, other: &Self) -> bool {
        self.kernel_name() == other.kernel_name()
    }
}
impl Eq for KernelSpec {}

impl std::hash::Hash for KernelSpec {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.kernel_name().hash(state)
    }
}

impl fmt::Display for KernelSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_attribute_args())
    }
}

/// Shortest decimal that reads back as `x`, always with a fractional part
/// (`50` → `50.0`), so it is a float literal in Rust, TOML and C.
pub(crate) fn float_literal(x: f32) -> String {
    let s = format!("{x:?}");
    if s.contains('.') || s.contains('e') || s.contains("inf") || s.contains("NaN") {
        s
    } else {
        format!("{s}.0")
    }
}

/// `x` spelled inside a C identifier: `50` → `50`, `30.5` → `30p5`.
fn float_ident(x: f32) -> String {
    let s = format!("{x}");
    s.replace('.', "p").replace('-', "m").replace('+', "")
}
