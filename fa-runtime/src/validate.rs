//! Host-side validation of a launch, as pure functions over shapes, element
//! types and device ids: everything is checked before the GPU is touched,
//! and these run (and are tested) without a GPU.

use crate::error::{FaError, Result};
use crate::tensor::{ElemType, TensorMut, TensorRef};
use fa_spec::{tile_config, KernelSpec};

/// Options of a forward launch.
///
/// `max_seqlen_q` / `max_seqlen_k` are required by `varlen` cells (the host
/// cannot read `cu_seqlens` without a device sync, so like FlashAttention the
/// caller passes the longest sequence): they size the grid and bound the
/// kernel's loops. For a `paged` cell the key bound is the block-table width
/// × page size; `max_seqlen_k` is then optional, a hint of the longest context
/// in the batch for the decode kernel's split heuristic (a server whose block
/// tables are much wider than its contexts gets fewer, fuller splits). The
/// kernels read the real lengths from `context_lens`, so a hint that is too
/// small costs speed, never correctness.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct FwdOptions {
    /// Scale of `q·k`; `None` = `1/sqrt(head_dim)`.
    pub softmax_scale: Option<f32>,
    /// Longest query sequence (varlen cells).
    pub max_seqlen_q: Option<usize>,
    /// Longest key sequence (varlen cells); for paged cells an optional hint
    /// of the longest context (decode splits, see above).
    pub max_seqlen_k: Option<usize>,
    /// How q, k, v and out are laid out (fixed-length, non-paged cells).
    pub layout: QkvLayout,
}

/// Memory layout of q, k, v and out for fixed-length, non-paged cells (varlen
/// cells pack tokens as `[total, heads, d]`; paged caches have their own).
/// Both are dense row-major; the kernel reads either through its strides.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum QkvLayout {
    /// `[batch, seqlen, heads, head_dim]` (FlashAttention's own).
    #[default]
    SeqMajor,
    /// `[batch, heads, seqlen, head_dim]` (PyTorch's `scaled_dot_product_attention`).
    HeadMajor,
}

impl FwdOptions {
    pub fn new() -> FwdOptions {
        FwdOptions::default()
    }
    pub fn softmax_scale(mut self, s: f32) -> Self {
        self.softmax_scale = Some(s);
        self
    }
    pub fn layout(mut self, layout: QkvLayout) -> Self {
        self.layout = layout;
        self
    }
    pub fn max_seqlens(mut self, q: usize, k: usize) -> Self {
        self.max_seqlen_q = Some(q);
        self.max_seqlen_k = Some(k);
        self
    }
}

/// Shape, element type and device of one argument.
#[derive(Debug, Clone, Copy)]
pub struct ArgMeta<'a> {
    pub shape: &'a [usize],
    pub elem: ElemType,
    /// Identity of the [`crate::Device`] that allocated it.
    pub device_id: u64,
    pub ordinal: usize,
}

impl<'a> From<TensorRef<'a>> for ArgMeta<'a> {
    fn from(t: TensorRef<'a>) -> Self {
        ArgMeta { shape: t.shape, elem: t.elem, device_id: t.device_id, ordinal: t.ordinal }
    }
}
impl<'a> From<&'a TensorMut<'a>> for ArgMeta<'a> {
    fn from(t: &'a TensorMut<'a>) -> Self {
        ArgMeta { shape: t.shape, elem: t.elem, device_id: t.device_id, ordinal: t.ordinal }
    }
}

/// The arguments of a forward launch, shapes only.
#[derive(Debug, Clone, Copy)]
pub struct FwdShapes<'a> {
    pub q: ArgMeta<'a>,
    pub k: ArgMeta<'a>,
    pub v: ArgMeta<'a>,
    pub out: ArgMeta<'a>,
    pub lse: ArgMeta<'a>,
    pub cu_seqlens_q: Option<ArgMeta<'a>>,
    pub cu_seqlens_k: Option<ArgMeta<'a>>,
    pub block_table: Option<ArgMeta<'a>>,
    pub context_lens: Option<ArgMeta<'a>>,
    pub alibi_slopes: Option<ArgMeta<'a>>,
    pub q_descale: Option<ArgMeta<'a>>,
    pub k_descale: Option<ArgMeta<'a>>,
    pub v_descale: Option<ArgMeta<'a>>,
}

/// Everything the launch needs besides pointers, derived from the shapes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FwdPlan {
    pub batch: usize,
    pub num_heads: usize,
    pub num_kv_heads: usize,
    /// Grid bound: s_q, or max_seqlen_q for varlen.
    pub seqlen_q: usize,
    /// s_k; max_seqlen_k for varlen; block-table width × page size for paged.
    pub seqlen_k: usize,
    /// Longest context the decode split heuristic plans for: `seqlen_k`, or
    /// for paged cells `min(max_seqlen_k, seqlen_k)` when the hint is given.
    pub decode_context: usize,
    pub block_table_stride: usize,
    /// (batch, row, head) strides in elements.
    pub q_strides: [i64; 3],
    pub k_strides: [i64; 3],
    pub v_strides: [i64; 3],
    pub o_strides: [i64; 3],
    pub softmax_scale: f32,
    pub grid: (u32, u32, u32),
    pub block: u32,
    pub smem_bytes: u32,
}

impl FwdPlan {
    /// Whether there is nothing to compute (no query rows): skip the launch.
    pub fn is_empty(&self) -> bool {
        self.grid.0 == 0 || self.grid.1 == 0 || self.grid.2 == 0
    }
}

const I32_MAX: usize = i32::MAX as usize;
/// CUDA's limit on gridDim.y and gridDim.z.
const GRID_YZ_MAX: usize = 65535;

fn dims(ds: &[&str]) -> String {
    format!("[{}]", ds.join(", "))
}

fn check_elem(arg: &'static str, m: &ArgMeta<'_>, want: ElemType) -> Result<()> {
    if m.elem != want {
        return Err(FaError::Dtype { arg, expected: want.name(), found: m.elem.name() });
    }
    Ok(())
}

fn check_device(arg: &'static str, m: &ArgMeta<'_>, dev: (u64, usize)) -> Result<()> {
    if m.device_id != dev.0 {
        return Err(FaError::WrongDevice { arg, expected: dev.1, found: m.ordinal });
    }
    Ok(())
}

fn check_shape(arg: &'static str, m: &ArgMeta<'_>, want: &[usize], names: &[&str]) -> Result<()> {
    if m.shape != want {
        let named: Vec<String> = names.iter().zip(want).map(|(n, w)| format!("{n}={w}")).collect();
        return Err(FaError::shape(arg, format!("[{}]", named.join(", ")), m.shape));
    }
    Ok(())
}

fn fits_i32(arg: &'static str, what: &str, v: usize) -> Result<()> {
    if v > I32_MAX {
        return Err(FaError::Argument {
            arg,
            message: format!("{what} = {v} exceeds i32::MAX, the kernel's index range"),
        });
    }
    Ok(())
}

/// Requires `opt` iff `on`.
fn presence<'a>(arg: &'static str, on: bool, opt: Option<ArgMeta<'a>>, feature: &str) -> Result<Option<ArgMeta<'a>>> {
    match (on, opt) {
        (true, None) => Err(FaError::Argument { arg, message: format!("required by this {feature} cell") }),
        (false, Some(_)) => Err(FaError::Argument {
            arg,
            message: format!("given, but the cell is not {feature}: drop it or use a {feature} cell"),
        }),
        (_, o) => Ok(o),
    }
}

/// Checks every argument of a forward launch of `spec` against each other,
/// the cell and the launching device `dev` = (device id, ordinal); returns
/// the launch geometry.
pub fn validate_forward(
    spec: &KernelSpec,
    a: &FwdShapes<'_>,
    options: &FwdOptions,
    dev: (u64, usize),
) -> Result<FwdPlan> {
    let elem = ElemType::of_dtype(spec.dtype());
    let out_elem = ElemType::of_dtype(spec.dtype().output());
    let d = spec.head_dim() as usize;
    let gqa = spec.gqa() as usize;
    let varlen = spec.varlen();
    let page_size = spec.page_size().map(|p| p as usize);
    let fp8 = spec.dtype().is_fp8();

    let head_major = options.layout == QkvLayout::HeadMajor;
    if head_major && (varlen || page_size.is_some()) {
        return Err(FaError::Argument {
            arg: "options.layout",
            message: "QkvLayout::HeadMajor is for fixed-length, non-paged cells (varlen packs [total, heads, d]; paged caches have their own layout)".into(),
        });
    }

    // Presence of the cell-specific arguments.
    let cu_q = presence("cu_seqlens_q", varlen, a.cu_seqlens_q, "varlen")?;
    let cu_k = presence("cu_seqlens_k", varlen, a.cu_seqlens_k, "varlen")?;
    let bt = presence("block_table", page_size.is_some(), a.block_table, "paged")?;
    let cl = presence("context_lens", page_size.is_some(), a.context_lens, "paged")?;
    let alibi = presence("alibi_slopes", spec.alibi(), a.alibi_slopes, "alibi")?;
    for (name, o) in [("q_descale", a.q_descale), ("k_descale", a.k_descale), ("v_descale", a.v_descale)] {
        if !fp8 && o.is_some() {
            presence(name, false, o, "fp8")?;
        }
    }

    // Element types and devices (no allocation: this is the hot path).
    let required: [(&'static str, ArgMeta<'_>, ElemType); 5] =
        [("q", a.q, elem), ("k", a.k, elem), ("v", a.v, elem), ("out", a.out, out_elem), ("lse", a.lse, ElemType::F32)];
    for (name, m, e) in &required {
        check_elem(name, m, *e)?;
        check_device(name, m, dev)?;
    }
    let optional: [(&'static str, Option<ArgMeta<'_>>, ElemType); 8] = [
        ("cu_seqlens_q", cu_q, ElemType::I32),
        ("cu_seqlens_k", cu_k, ElemType::I32),
        ("block_table", bt, ElemType::I32),
        ("context_lens", cl, ElemType::I32),
        ("alibi_slopes", alibi, ElemType::F32),
        ("q_descale", a.q_descale, ElemType::F32),
        ("k_descale", a.k_descale, ElemType::F32),
        ("v_descale", a.v_descale, ElemType::F32),
    ];
    for (name, m, e) in &optional {
        if let Some(m) = m {
            check_elem(name, m, *e)?;
            check_device(name, m, dev)?;
        }
    }

    // q: [b, s_q, h, d] (head-major: [b, h, s_q, d]) or [total_q, h, d].
    let q = a.q.shape;
    let (batch, s_q, h) = if varlen {
        if q.len() != 3 {
            return Err(FaError::shape("q", format!("rank 3 {}", dims(&["total_q", "num_heads", &d.to_string()])), q));
        }
        let cu = cu_q.expect("checked above");
        if cu.shape.len() != 1 || cu.shape[0] == 0 {
            return Err(FaError::shape("cu_seqlens_q", "[batch + 1] with batch + 1 >= 1", cu.shape));
        }
        (cu.shape[0] - 1, q[0], q[1])
    } else {
        let names = if head_major { ["batch", "num_heads", "seqlen_q"] } else { ["batch", "seqlen_q", "num_heads"] };
        if q.len() != 4 {
            return Err(FaError::shape(
                "q",
                format!("rank 4 {}", dims(&[names[0], names[1], names[2], &d.to_string()])),
                q,
            ));
        }
        if head_major {
            (q[0], q[2], q[1])
        } else {
            (q[0], q[1], q[2])
        }
    };
    if q[q.len() - 1] != d {
        return Err(FaError::shape("q", format!("last dimension = head_dim = {d} (the cell's)"), q));
    }
    if h == 0 || h % gqa != 0 {
        return Err(FaError::shape(
            "q",
            format!("num_heads a positive multiple of gqa = {gqa} (num_heads = gqa × num_kv_heads)"),
            q,
        ));
    }
    let h_k = h / gqa;

    // k, v.
    let (s_k, bt_width, k_want, k_names, rank): (usize, usize, [usize; 4], [&str; 4], usize) = if let Some(ps) =
        page_size
    {
        let k = a.k.shape;
        if k.len() != 4 {
            return Err(FaError::shape(
                "k",
                format!("rank 4 [num_blocks, page_size={ps}, num_kv_heads={h_k}, head_dim={d}]"),
                k,
            ));
        }
        let btm = bt.expect("checked above");
        if btm.shape.len() != 2 || btm.shape[0] != batch || btm.shape[1] == 0 {
            return Err(FaError::shape("block_table", format!("[batch={batch}, max_blocks_per_seq >= 1]"), btm.shape));
        }
        let width = btm.shape[1];
        fits_i32("block_table", "max_blocks_per_seq × page_size", width.saturating_mul(ps))?;
        fits_i32("k", "num_blocks", k[0])?;
        (width * ps, width, [k[0], ps, h_k, d], ["num_blocks", "page_size", "num_kv_heads", "head_dim"], 4)
    } else if varlen {
        let k = a.k.shape;
        if k.len() != 3 {
            return Err(FaError::shape("k", format!("rank 3 [total_k, num_kv_heads={h_k}, head_dim={d}]"), k));
        }
        let sk = options.max_seqlen_k.ok_or(FaError::Argument {
            arg: "options.max_seqlen_k",
            message: "a varlen cell needs the longest key sequence: set FwdOptions::max_seqlen_k".into(),
        })?;
        if sk > k[0] {
            return Err(FaError::Argument {
                arg: "options.max_seqlen_k",
                message: format!("{sk} is longer than all keys together (total_k = {})", k[0]),
            });
        }
        (sk, 0, [k[0], h_k, d, 0], ["total_k", "num_kv_heads", "head_dim", ""], 3)
    } else {
        let k = a.k.shape;
        if k.len() != 4 {
            let want = if head_major {
                format!("rank 4 [batch={batch}, num_kv_heads={h_k}, seqlen_k, head_dim={d}]")
            } else {
                format!("rank 4 [batch={batch}, seqlen_k, num_kv_heads={h_k}, head_dim={d}]")
            };
            return Err(FaError::shape("k", want, k));
        }
        if head_major {
            (k[2], 0, [batch, h_k, k[2], d], ["batch", "num_kv_heads", "seqlen_k", "head_dim"], 4)
        } else {
            (k[1], 0, [batch, k[1], h_k, d], ["batch", "seqlen_k", "num_kv_heads", "head_dim"], 4)
        }
    };
    check_shape("k", &a.k, &k_want[..rank], &k_names[..rank])?;
    check_shape("v", &a.v, &k_want[..rank], &k_names[..rank])?;

    // Varlen bounds.
    let seqlen_q = if varlen {
        let sq = options.max_seqlen_q.ok_or(FaError::Argument {
            arg: "options.max_seqlen_q",
            message: "a varlen cell needs the longest query sequence: set FwdOptions::max_seqlen_q".into(),
        })?;
        if sq > s_q {
            return Err(FaError::Argument {
                arg: "options.max_seqlen_q",
                message: format!("{sq} is longer than all queries together (total_q = {s_q})"),
            });
        }
        let cu = cu_k.expect("checked above");
        check_shape("cu_seqlens_k", &cu, &[batch + 1], &["batch + 1"])?;
        fits_i32("q", "total_q", s_q)?;
        fits_i32("k", "total_k", a.k.shape[0])?;
        sq
    } else {
        s_q
    };

    // out, lse.
    if a.out.shape != q {
        return Err(FaError::shape("out", format!("the shape of q, {q:?}"), a.out.shape));
    }
    if varlen {
        check_shape("lse", &a.lse, &[h, s_q], &["num_heads", "total_q"])?;
    } else {
        check_shape("lse", &a.lse, &[batch, h, s_q], &["batch", "num_heads", "seqlen_q"])?;
    }

    // Paged extras, alibi, descales.
    if let Some(c) = cl {
        check_shape("context_lens", &c, &[batch], &["batch"])?;
    }
    if let Some(s) = alibi {
        check_shape("alibi_slopes", &s, &[h], &["num_heads"])?;
    }
    for (name, m) in [("q_descale", a.q_descale), ("k_descale", a.k_descale), ("v_descale", a.v_descale)] {
        if let Some(m) = m {
            check_shape(name, &m, &[batch, h_k], &["batch", "num_kv_heads"])?;
        }
    }

    // Index ranges.
    fits_i32("q", "batch", batch)?;
    fits_i32("q", "num_heads", h)?;
    fits_i32("q", "seqlen_q", seqlen_q)?;
    fits_i32("k", "seqlen_k", s_k)?;
    if batch > GRID_YZ_MAX {
        return Err(FaError::Argument {
            arg: "q",
            message: format!("batch = {batch} exceeds {GRID_YZ_MAX} (grid z limit)"),
        });
    }
    if h > GRID_YZ_MAX {
        return Err(FaError::Argument {
            arg: "q",
            message: format!("num_heads = {h} exceeds {GRID_YZ_MAX} (grid y limit)"),
        });
    }

    let softmax_scale = options.softmax_scale.unwrap_or(1.0 / (d as f32).sqrt());
    if !softmax_scale.is_finite() {
        return Err(FaError::Argument {
            arg: "options.softmax_scale",
            message: format!("must be finite, found {softmax_scale}"),
        });
    }

    // Strides (elements, (batch, row, head)), contiguous row-major.
    let i = |x: usize| x as i64;
    let q_strides = if varlen {
        [0, i(h * d), i(d)]
    } else if head_major {
        [i(h * s_q * d), i(d), i(s_q * d)]
    } else {
        [i(s_q * h * d), i(h * d), i(d)]
    };
    let k_strides = if head_major {
        [i(h_k * s_k * d), i(d), i(s_k * d)]
    } else if page_size.is_some() || !varlen {
        // Paged: the "batch" stride is the stride between pages.
        [i(a.k.shape[1] * h_k * d), i(h_k * d), i(d)]
    } else {
        [0, i(h_k * d), i(d)]
    };

    let tile = tile_config(spec);
    let grid_x = seqlen_q.div_ceil(tile.block_m as usize);
    Ok(FwdPlan {
        batch,
        num_heads: h,
        num_kv_heads: h_k,
        seqlen_q,
        seqlen_k: s_k,
        decode_context: match page_size {
            Some(_) => crate::paged::decode_bound(s_k, options.max_seqlen_k),
            None => s_k,
        },
        block_table_stride: bt_width,
        q_strides,
        k_strides,
        v_strides: k_strides,
        o_strides: q_strides,
        softmax_scale,
        grid: (grid_x as u32, h as u32, batch as u32),
        block: tile.threads(),
        smem_bytes: tile.smem_bytes(spec),
    })
}

/// The arguments of a backward launch, shapes only.
#[derive(Debug, Clone, Copy)]
pub struct BwdShapes<'a> {
    pub q: ArgMeta<'a>,
    pub k: ArgMeta<'a>,
    pub v: ArgMeta<'a>,
    pub out: ArgMeta<'a>,
    pub dout: ArgMeta<'a>,
    pub lse: ArgMeta<'a>,
    pub cu_seqlens_q: Option<ArgMeta<'a>>,
    pub cu_seqlens_k: Option<ArgMeta<'a>>,
    pub alibi_slopes: Option<ArgMeta<'a>>,
    pub dq: ArgMeta<'a>,
    pub dk: ArgMeta<'a>,
    pub dv: ArgMeta<'a>,
}

/// Checks a backward launch: the forward checks on (q, k, v, out, lse),
/// then dout = out's shape, dq/dk/dv = q/k/v's shapes, all of the cell's type.
pub fn validate_backward(
    spec: &KernelSpec,
    a: &BwdShapes<'_>,
    options: &FwdOptions,
    dev: (u64, usize),
) -> Result<FwdPlan> {
    if !spec.backward() {
        return Err(FaError::Argument {
            arg: "spec",
            message: "the cell has no backward kernel: add `backward` to the cell".into(),
        });
    }
    let fwd = FwdShapes {
        q: a.q,
        k: a.k,
        v: a.v,
        out: a.out,
        lse: a.lse,
        cu_seqlens_q: a.cu_seqlens_q,
        cu_seqlens_k: a.cu_seqlens_k,
        block_table: None,
        context_lens: None,
        alibi_slopes: a.alibi_slopes,
        q_descale: None,
        k_descale: None,
        v_descale: None,
    };
    let plan = validate_forward(spec, &fwd, options, dev)?;
    let elem = ElemType::of_dtype(spec.dtype());
    for (name, m, like) in [("dout", a.dout, a.out), ("dq", a.dq, a.q), ("dk", a.dk, a.k), ("dv", a.dv, a.v)] {
        check_elem(name, &m, elem)?;
        check_device(name, &m, dev)?;
        if m.shape != like.shape {
            return Err(FaError::shape(name, format!("{:?} (the shape of its forward tensor)", like.shape), m.shape));
        }
    }
    Ok(plan)
}
