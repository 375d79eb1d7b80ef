//! Shared harness of the GPU correctness tests: random inputs, poisoned
//! outputs, the CPU reference on the upcast inputs, and the pass rule.
//!
//! Pass rule, per launch (over the rows checked):
//! - `max|out − ref| ≤ 2 · max|ref_lowprec − ref| + 1e-3`, where `ref` is
//!   the f64 reference and `ref_lowprec` the same computation with P rounded
//!   to the input type before `P·V` and O rounded to the output type;
//! - `|lse − ref_lse| ≤ 1e-3` (and −∞ exactly where no key is visible);
//! - no NaN anywhere in `out` or `lse` (outputs are poisoned with NaN bytes
//!   first, so an unwritten element fails).
//!
//! Big cases check a subset of rows (first, last, tile boundaries and a
//! random sample) to keep the CPU reference fast.

#![allow(dead_code, clippy::type_complexity, clippy::needless_range_loop)]

use fa_runtime::reference::{KvLayout, Precision, Problem, QLayout, RefSpec};
use fa_runtime::{Device, Element, ForwardArgs, FwdOptions, Kernel, KernelSpec, Tensor};
use fa_spec::{Arch, Dtype};
use std::sync::OnceLock;

pub fn device() -> &'static Device {
    static DEV: OnceLock<Device> = OnceLock::new();
    DEV.get_or_init(|| Device::new(0).unwrap_or_else(|e| panic!("GPU tests need a CUDA device: {e}")))
}

/// The arch of the portable cells on this device (sm90a on H100).
pub fn arch() -> Arch {
    match device().compute_capability() {
        (9, 0) => Arch::Sm90a,
        (10, 0) => Arch::Sm100,
        (8, 9) => Arch::Sm89,
        (m, _) if m >= 9 => Arch::Sm89,
        _ => Arch::Sm80,
    }
}

/// Seed of a test: `FA_TEST_SEED` or a fixed one mixed with the case name.
pub fn seed(case: &str) -> u64 {
    let base = std::env::var("FA_TEST_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(0x5EED_F1A5);
    case.bytes().fold(base, |h, b| (h ^ b as u64).wrapping_mul(0x100_0000_01B3))
}

pub struct Rng(u64);
impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed | 1)
    }
    pub fn next_u64(&mut self) -> u64 {
        // splitmix64
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [-1, 1).
    pub fn uniform(&mut self) -> f32 {
        ((self.next_u64() >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }
}

/// Key/query layout of a case.
#[derive(Debug, Clone)]
pub enum Layout {
    Dense {
        batch: usize,
        s_q: usize,
        s_k: usize,
    },
    /// Per-sequence (s_q, s_k).
    Varlen {
        lens: Vec<(usize, usize)>,
    },
    /// Per-sequence (s_q, context length); queries varlen if the cell is.
    Paged {
        lens: Vec<(usize, usize)>,
        num_blocks: usize,
    },
}

#[derive(Debug, Clone)]
pub struct Case {
    pub name: String,
    pub spec: KernelSpec,
    pub num_heads: usize,
    pub layout: Layout,
    /// Input amplitude (larger makes softcap bite).
    pub amp: f32,
    pub softmax_scale: Option<f32>,
    /// Dense cases: hand q, k, v, out to the kernel as `[b, h, s, d]`
    /// (`QkvLayout::HeadMajor`); the check still runs in `[b, s, h, d]`.
    pub head_major: bool,
}

impl Case {
    pub fn new(name: impl Into<String>, spec: KernelSpec, num_heads: usize, layout: Layout) -> Case {
        Case { name: name.into(), spec, num_heads, layout, amp: 1.0, softmax_scale: None, head_major: false }
    }
}

/// Builds a cell for this device's arch.
pub fn cell(dtype: Dtype, hd: u32, f: impl FnOnce(fa_spec::SpecBuilder) -> fa_spec::SpecBuilder) -> KernelSpec {
    f(KernelSpec::builder().arch(arch()).dtype(dtype).head_dim(hd)).build().unwrap_or_else(|e| panic!("{e}"))
}

fn upload<E: Element>(dev: &Device, vals: &[f32], shape: &[usize]) -> (Tensor<E>, Vec<f32>) {
    let low: Vec<E> = vals.iter().map(|&x| E::from_f32(x)).collect();
    let up: Vec<f32> = low.iter().map(|x| x.to_f32()).collect();
    (dev.from_host(&low, shape).unwrap(), up)
}

/// `[b, s, h, d]` <-> `[b, h, s, d]` (`to_head_major` false: the inverse).
fn swap_s_h(x: &[f32], b: usize, s: usize, h: usize, d: usize, to_head_major: bool) -> Vec<f32> {
    let mut y = vec![0.0f32; x.len()];
    for bi in 0..b {
        for si in 0..s {
            for hi in 0..h {
                let sm = ((bi * s + si) * h + hi) * d;
                let hm = ((bi * h + hi) * s + si) * d;
                let (from, to) = if to_head_major { (sm, hm) } else { (hm, sm) };
                y[to..to + d].copy_from_slice(&x[from..from + d]);
            }
        }
    }
    y
}

fn rand_vec(rng: &mut Rng, n: usize, amp: f32) -> Vec<f32> {
    (0..n).map(|_| rng.uniform() * amp).collect()
}

/// Runs one case and checks it; panics with the seed on failure.
pub fn run(case: &Case) {
    match case.spec.dtype() {
        Dtype::F16 => run_typed::<half::f16, half::f16>(case),
        Dtype::Bf16 => run_typed::<half::bf16, half::bf16>(case),
        Dtype::E4m3 => run_typed::<float8::F8E4M3, half::bf16>(case),
        Dtype::E5m2 => run_typed::<float8::F8E5M2, half::bf16>(case),
    }
}

fn run_typed<E: Element, O: Element>(case: &Case) {
    let dev = device();
    let seed = seed(&case.name);
    let mut rng = Rng::new(seed);
    let spec = case.spec;
    let d = spec.head_dim() as usize;
    let h = case.num_heads;
    let h_k = h / spec.gqa() as usize;
    let kernel = Kernel::new(spec).unwrap();
    let ctx = format!("case `{}` ({}), seed {seed} (rerun with FA_TEST_SEED to vary)", case.name, spec.kernel_name());

    // Geometry.
    let (batch, total_q, q_shape, lse_shape): (usize, usize, Vec<usize>, Vec<usize>);
    let mut cu_q: Vec<i32> = Vec::new();
    let mut cu_k: Vec<i32> = Vec::new();
    let mut block_table: Vec<i32> = Vec::new();
    let mut ctx_lens: Vec<i32> = Vec::new();
    let mut width = 0usize;
    let (kv_shape, kv_rows): (Vec<usize>, usize);
    let mut opts = FwdOptions { softmax_scale: case.softmax_scale, ..Default::default() };
    let seq_q: Vec<usize>;
    match &case.layout {
        Layout::Dense { batch: b, s_q, s_k } => {
            batch = *b;
            total_q = b * s_q;
            q_shape = vec![*b, *s_q, h, d];
            lse_shape = vec![*b, h, *s_q];
            kv_shape = vec![*b, *s_k, h_k, d];
            kv_rows = b * s_k;
            seq_q = vec![*s_q; *b];
        }
        Layout::Varlen { lens } => {
            batch = lens.len();
            cu_q.push(0);
            cu_k.push(0);
            for &(q, k) in lens {
                cu_q.push(cu_q.last().unwrap() + q as i32);
                cu_k.push(cu_k.last().unwrap() + k as i32);
            }
            total_q = *cu_q.last().unwrap() as usize;
            let total_k = *cu_k.last().unwrap() as usize;
            q_shape = vec![total_q, h, d];
            lse_shape = vec![h, total_q];
            kv_shape = vec![total_k, h_k, d];
            kv_rows = total_k;
            opts.max_seqlen_q = Some(lens.iter().map(|l| l.0).max().unwrap());
            opts.max_seqlen_k = Some(lens.iter().map(|l| l.1).max().unwrap());
            seq_q = lens.iter().map(|l| l.0).collect();
        }
        Layout::Paged { lens, num_blocks } => {
            let ps = spec.page_size().unwrap() as usize;
            batch = lens.len();
            width = lens.iter().map(|l| l.1.div_ceil(ps)).max().unwrap().max(1);
            assert!(width * batch <= *num_blocks, "{ctx}: not enough pages");
            // Scrambled distinct pages.
            let mut pages: Vec<i32> = (0..*num_blocks as i32).collect();
            for i in (1..pages.len()).rev() {
                pages.swap(i, rng.below(i + 1));
            }
            block_table = pages[..batch * width].to_vec();
            ctx_lens = lens.iter().map(|l| l.1 as i32).collect();
            kv_shape = vec![*num_blocks, ps, h_k, d];
            kv_rows = num_blocks * ps;
            if spec.varlen() {
                cu_q.push(0);
                for &(q, _) in lens {
                    cu_q.push(cu_q.last().unwrap() + q as i32);
                }
                // cu_seqlens_k of a paged varlen cell: offsets of the context lengths.
                cu_k.push(0);
                for &(_, k) in lens {
                    cu_k.push(cu_k.last().unwrap() + k as i32);
                }
                total_q = *cu_q.last().unwrap() as usize;
                q_shape = vec![total_q, h, d];
                lse_shape = vec![h, total_q];
                opts.max_seqlen_q = Some(lens.iter().map(|l| l.0).max().unwrap());
                opts.max_seqlen_k = Some(lens.iter().map(|l| l.1).max().unwrap());
                seq_q = lens.iter().map(|l| l.0).collect();
            } else {
                let s_q = lens[0].0;
                assert!(lens.iter().all(|l| l.0 == s_q), "dense queries need one s_q");
                total_q = batch * s_q;
                q_shape = vec![batch, s_q, h, d];
                lse_shape = vec![batch, h, s_q];
                seq_q = vec![s_q; batch];
            }
        }
    }

    // Inputs (drawn and checked in [b, s, h, d]; head-major cases upload the
    // transpose and transpose its rounded values back for the reference).
    let hm = match &case.layout {
        Layout::Dense { batch, s_q, s_k } if case.head_major => {
            opts.layout = fa_runtime::QkvLayout::HeadMajor;
            Some((*batch, *s_q, *s_k))
        }
        _ => {
            assert!(!case.head_major, "{ctx}: head_major is for dense layouts");
            None
        }
    };
    let dev_shape = |shape: &[usize]| match hm {
        Some(_) => vec![shape[0], shape[2], shape[1], shape[3]],
        None => shape.to_vec(),
    };
    let upload_case = |vals: Vec<f32>, shape: &[usize]| match hm {
        Some(_) => {
            let [b, s, h, d] = [shape[0], shape[1], shape[2], shape[3]];
            let (tensor, rounded) = upload::<E>(dev, &swap_s_h(&vals, b, s, h, d, true), &dev_shape(shape));
            (tensor, swap_s_h(&rounded, b, s, h, d, false))
        }
        None => upload::<E>(dev, &vals, shape),
    };
    let (q, qf) = upload_case(rand_vec(&mut rng, total_q * h * d, case.amp), &q_shape);
    let (k, kf) = upload_case(rand_vec(&mut rng, kv_rows * h_k * d, case.amp), &kv_shape);
    let (v, vf) = upload_case(rand_vec(&mut rng, kv_rows * h_k * d, 1.0), &kv_shape);
    let slopes: Vec<f32> = (0..h).map(|i| 2f32.powf(-8.0 * (i + 1) as f32 / h as f32)).collect();
    let alibi = spec.alibi().then(|| dev.from_host(&slopes, &[h]).unwrap());
    let descales: Vec<Vec<f32>> =
        (0..3).map(|_| (0..batch * h_k).map(|_| 0.5 + rng.uniform().abs()).collect()).collect();
    let fp8 = spec.dtype().is_fp8();
    let desc_t: Vec<Tensor<f32>> =
        if fp8 { descales.iter().map(|x| dev.from_host(x, &[batch, h_k]).unwrap()).collect() } else { Vec::new() };
    let cu_q_t = (!cu_q.is_empty()).then(|| dev.from_host(&cu_q, &[cu_q.len()]).unwrap());
    let cu_k_t = (!cu_k.is_empty()).then(|| dev.from_host(&cu_k, &[cu_k.len()]).unwrap());
    let bt_t = spec.paged().then(|| dev.from_host(&block_table, &[batch, width]).unwrap());
    let cl_t = spec.paged().then(|| dev.from_host(&ctx_lens, &[batch]).unwrap());

    // Poisoned outputs.
    let mut out: Tensor<O> = dev.alloc_zeros(&dev_shape(&q_shape)).unwrap();
    let mut lse: Tensor<f32> = dev.alloc_zeros(&lse_shape).unwrap();
    dev.fill_bytes(&mut out, 0xFF).unwrap();
    dev.fill_bytes(&mut lse, 0xFF).unwrap();

    let mut args = ForwardArgs::new(q.as_ref(), k.as_ref(), v.as_ref(), out.as_mut(), lse.as_mut()).options(opts);
    if spec.varlen() {
        args.cu_seqlens_q = cu_q_t.as_ref().map(|t| t.as_ref());
        args.cu_seqlens_k = cu_k_t.as_ref().map(|t| t.as_ref());
    }
    if spec.paged() {
        args = args.paged(bt_t.as_ref().unwrap().as_ref(), cl_t.as_ref().unwrap().as_ref());
    }
    if let Some(a) = &alibi {
        args = args.alibi(a.as_ref());
    }
    if fp8 {
        args = args.descale(Some(desc_t[0].as_ref()), Some(desc_t[1].as_ref()), Some(desc_t[2].as_ref()));
    }
    kernel.forward(dev, args).unwrap_or_else(|e| panic!("{ctx}: launch failed: {e}"));
    let mut out_h: Vec<f32> = out.to_host(dev).unwrap().iter().map(|x| x.to_f32()).collect();
    if let Some((b, s_q, _)) = hm {
        out_h = swap_s_h(&out_h, b, s_q, h, d, false);
    }
    let lse_h: Vec<f32> = lse.to_host(dev).unwrap();
    dev.synchronize().unwrap();

    assert!(out_h.iter().all(|x| !x.is_nan()), "{ctx}: NaN in out (unwritten or bad math)");
    assert!(lse_h.iter().all(|x| !x.is_nan()), "{ctx}: NaN in lse");

    // Reference.
    let q_layout = if spec.varlen() { QLayout::Varlen { cu: &cu_q } } else { QLayout::Dense { batch, s_q: seq_q[0] } };
    let kv_layout = match &case.layout {
        Layout::Dense { s_k, .. } => KvLayout::Dense { s_k: *s_k },
        Layout::Varlen { .. } => KvLayout::Varlen { cu: &cu_k },
        Layout::Paged { .. } => KvLayout::Paged {
            page_size: spec.page_size().unwrap() as usize,
            block_table: &block_table,
            width,
            context_lens: &ctx_lens,
        },
    };
    let prob = Problem {
        spec: RefSpec::from_spec(&spec),
        num_heads: h,
        q_layout,
        kv_layout,
        q: &qf,
        k: &kf,
        v: &vf,
        softmax_scale: case.softmax_scale.unwrap_or(1.0 / (d as f32).sqrt()),
        alibi_slopes: spec.alibi().then_some(&slopes[..]),
        q_descale: fp8.then(|| &descales[0][..]),
        k_descale: fp8.then(|| &descales[1][..]),
        v_descale: fp8.then(|| &descales[2][..]),
    };

    // Rows to check: all for small cases, else a subset.
    let mut rows: Vec<(usize, usize, usize)> = Vec::new();
    let work: usize = seq_q.iter().sum::<usize>() * h * (0..batch).map(|b| prob.s_k(b)).max().unwrap_or(0) * d;
    let full = work <= 40_000_000;
    for b in 0..batch {
        for hh in 0..h {
            let s_q = seq_q[b];
            if full {
                rows.extend((0..s_q).map(|i| (b, hh, i)));
            } else if hh == 0 || hh == h - 1 || rng.below(4) == 0 {
                let mut pick: Vec<usize> = vec![0, 1, s_q / 2, s_q.saturating_sub(2), s_q - 1];
                for t in [64usize, 128] {
                    let mut m = t;
                    while m < s_q {
                        pick.extend([m - 1, m]);
                        m += t * 7;
                    }
                }
                pick.extend((0..12).map(|_| rng.below(s_q)));
                pick.sort_unstable();
                pick.dedup();
                rows.extend(pick.into_iter().filter(|&i| i < s_q).map(|i| (b, hh, i)));
            }
        }
    }
    let lowp = Precision::of(spec.dtype());
    let threads = std::thread::available_parallelism().map_or(4, |n| n.get()).min(16);
    let chunk = rows.len().div_ceil(threads).max(1);
    // (max |out - ref|, max |lowprec - ref|, max lse err, worst row)
    let results: Vec<(f64, f64, f64, (usize, usize, usize))> = std::thread::scope(|s| {
        let handles: Vec<_> = rows
            .chunks(chunk)
            .map(|rs| {
                let (prob, out_h, lse_h) = (&prob, &out_h, &lse_h);
                s.spawn(move || {
                    let mut acc = (0.0f64, 0.0f64, 0.0f64, (0, 0, 0));
                    for &(b, hh, i) in rs {
                        let (r, rl) = prob.row(b, hh, i, Precision::EXACT);
                        let (lo, _) = prob.row(b, hh, i, lowp);
                        let oi = prob.out_index(b, hh, i);
                        let got_l = lse_h[prob.lse_index(b, hh, i)] as f64;
                        let lerr = if rl == f64::NEG_INFINITY {
                            if got_l == f64::NEG_INFINITY {
                                0.0
                            } else {
                                f64::INFINITY
                            }
                        } else {
                            (got_l - rl).abs()
                        };
                        let mut e = 0.0f64;
                        let mut el = 0.0f64;
                        for c in 0..r.len() {
                            e = e.max((out_h[oi + c] as f64 - r[c]).abs());
                            el = el.max((lo[c] - r[c]).abs());
                        }
                        if e > acc.0 {
                            acc.3 = (b, hh, i);
                        }
                        acc.0 = acc.0.max(e);
                        acc.1 = acc.1.max(el);
                        acc.2 = acc.2.max(lerr);
                    }
                    acc
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let err = results.iter().map(|r| r.0).fold(0.0, f64::max);
    let low = results.iter().map(|r| r.1).fold(0.0, f64::max);
    let lerr = results.iter().map(|r| r.2).fold(0.0, f64::max);
    let worst = results.iter().max_by(|a, b| a.0.total_cmp(&b.0)).map(|r| r.3).unwrap_or_default();
    let tol = 2.0 * low + 1e-3;
    assert!(
        err <= tol,
        "{ctx}: max|out - ref| = {err:.3e} > tol {tol:.3e} (2·max|ref_lowprec - ref| = {:.3e}); worst (batch, head, row) = {worst:?}; {} rows checked",
        2.0 * low,
        rows.len()
    );
    assert!(lerr <= 1e-3, "{ctx}: max|lse - ref| = {lerr:.3e} > 1e-3 ({} rows checked)", rows.len());
}
