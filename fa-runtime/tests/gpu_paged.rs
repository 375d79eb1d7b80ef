//! Paged KV-cache on a GPU: split-KV decode, chunked prefill and cache
//! append against a gather-then-dense CPU reference (each sequence's K/V
//! gathered from its pages into a dense `[ctx, h_k, d]` array, then the
//! dense reference of `fa_runtime::reference`).
//!
//! `cargo test -p fa-runtime --features gpu --release --test gpu_paged`
//! Pass rule as in `gpu_common` (max|out − ref| ≤ 2·max|ref_lowprec − ref| +
//! 1e-3, |lse − ref| ≤ 1e-3, −∞ exactly where nothing is visible, outputs
//! poisoned with NaN first). Block tables are shuffled, pages not used by a
//! sequence hold random garbage, contexts are ragged (0, 1, non-multiples of
//! the page size). `FA_TEST_SEED=<n>` varies the inputs.
#![cfg(feature = "gpu")]
#![allow(clippy::too_many_arguments, clippy::needless_range_loop)]

mod gpu_common;

use fa_runtime::paged::{check_paged_inputs, check_slot_mapping, DecodeKernel, DecodeLayout};
use fa_runtime::reference::{KvLayout, Precision, Problem, QLayout, RefSpec};
use fa_runtime::{flash_attention, Element, FaError, ForwardArgs, FwdOptions, Kernel, KernelSpec, Tensor};
use fa_spec::Dtype;
use gpu_common::{cell, device, seed, Rng};

fn rand_vec(rng: &mut Rng, n: usize) -> Vec<f32> {
    (0..n).map(|_| rng.uniform()).collect()
}

/// Rounds through the element type (the values the GPU sees).
fn round<E: Element>(v: &[f32]) -> Vec<f32> {
    v.iter().map(|&x| E::from_f32(x).to_f32()).collect()
}

fn upload<E: Element>(v: &[f32], shape: &[usize]) -> Tensor<E> {
    let low: Vec<E> = v.iter().map(|&x| E::from_f32(x)).collect();
    device().from_host(&low, shape).unwrap()
}

/// A paged cache: shuffled distinct pages, `width` per sequence, garbage in
/// every slot no sequence uses yet.
struct Cache {
    ps: usize,
    h_k: usize,
    d: usize,
    num_blocks: usize,
    width: usize,
    block_table: Vec<i32>,
    k: Vec<f32>,
    v: Vec<f32>,
}

impl Cache {
    fn new<E: Element>(rng: &mut Rng, ps: usize, h_k: usize, d: usize, batch: usize, max_len: usize) -> Cache {
        let width = max_len.div_ceil(ps).max(1);
        let num_blocks = batch * width + 3;
        let mut pages: Vec<i32> = (0..num_blocks as i32).collect();
        for i in (1..pages.len()).rev() {
            pages.swap(i, rng.below(i + 1));
        }
        let n = num_blocks * ps * h_k * d;
        let k = round::<E>(&rand_vec(rng, n).iter().map(|x| x * 4.0).collect::<Vec<_>>());
        let v = round::<E>(&rand_vec(rng, n).iter().map(|x| x * 4.0).collect::<Vec<_>>());
        Cache { ps, h_k, d, num_blocks, width, block_table: pages[..batch * width].to_vec(), k, v }
    }
    fn slot(&self, b: usize, t: usize) -> usize {
        self.block_table[b * self.width + t / self.ps] as usize * self.ps + t % self.ps
    }
    fn write(&mut self, b: usize, t: usize, k: &[f32], v: &[f32]) {
        let row = self.h_k * self.d;
        let s = self.slot(b, t) * row;
        self.k[s..s + row].copy_from_slice(k);
        self.v[s..s + row].copy_from_slice(v);
    }
    /// Token rows 0..len of sequence b, dense `[len, h_k, d]`.
    fn gather(&self, b: usize, len: usize) -> (Vec<f32>, Vec<f32>) {
        let row = self.h_k * self.d;
        let (mut k, mut v) = (Vec::with_capacity(len * row), Vec::with_capacity(len * row));
        for t in 0..len {
            let s = self.slot(b, t) * row;
            k.extend_from_slice(&self.k[s..s + row]);
            v.extend_from_slice(&self.v[s..s + row]);
        }
        (k, v)
    }
    fn shape(&self) -> [usize; 4] {
        [self.num_blocks, self.ps, self.h_k, self.d]
    }
}

/// Max errors of one check: (max|out − ref|, max|lowprec − ref|, max lse err).
#[derive(Default, Clone, Copy)]
struct Err3(f64, f64, f64);

impl Err3 {
    fn max(self, o: Err3) -> Err3 {
        Err3(self.0.max(o.0), self.1.max(o.1), self.2.max(o.2))
    }
    fn assert(self, ctx: &str) {
        let tol = 2.0 * self.1 + 1e-3;
        assert!(self.0 <= tol, "{ctx}: max|out - ref| = {:.3e} > tol {tol:.3e}", self.0);
        assert!(self.2 <= 1e-3, "{ctx}: max|lse - ref| = {:.3e} > 1e-3", self.2);
    }
}

/// Checks query rows `rows` of one sequence (q `[s_q, h, d]`, dense causal
/// bottom-right aligned against `ctx` gathered keys) against `got(h, i)` =
/// (out row, lse). `descale`: fp8 cells' q, k, v descales of this sequence
/// (`[h_k]` each).
fn check_seq(
    spec: &KernelSpec,
    heads: usize,
    q: &[f32],
    s_q: usize,
    k: &[f32],
    v: &[f32],
    ctx: usize,
    slopes: Option<&[f32]>,
    descale: Option<[&[f32]; 3]>,
    got: &(dyn Fn(usize, usize) -> (Vec<f32>, f32) + Sync),
) -> Err3 {
    let prob = Problem {
        spec: RefSpec::from_spec(spec),
        num_heads: heads,
        q_layout: QLayout::Dense { batch: 1, s_q },
        kv_layout: KvLayout::Dense { s_k: ctx },
        q,
        k,
        v,
        softmax_scale: 1.0 / (spec.head_dim() as f32).sqrt(),
        alibi_slopes: slopes,
        q_descale: descale.map(|d| d[0]),
        k_descale: descale.map(|d| d[1]),
        v_descale: descale.map(|d| d[2]),
    };
    let lowp = Precision::of(spec.dtype());
    let rows: Vec<(usize, usize)> = (0..heads).flat_map(|h| (0..s_q).map(move |i| (h, i))).collect();
    let threads = std::thread::available_parallelism().map_or(4, |n| n.get()).min(16);
    let chunk = rows.len().div_ceil(threads).max(1);
    std::thread::scope(|s| {
        let hs: Vec<_> = rows
            .chunks(chunk)
            .map(|rs| {
                let prob = &prob;
                s.spawn(move || {
                    let mut e = Err3::default();
                    for &(h, i) in rs {
                        let (r, rl) = prob.row(0, h, i, Precision::EXACT);
                        let (lo, _) = prob.row(0, h, i, lowp);
                        let (o, l) = got(h, i);
                        assert!(o.iter().all(|x| !x.is_nan()) && !l.is_nan(), "NaN at head {h}, row {i}");
                        let lerr = if rl == f64::NEG_INFINITY {
                            if l == f32::NEG_INFINITY {
                                0.0
                            } else {
                                f64::INFINITY
                            }
                        } else {
                            (l as f64 - rl).abs()
                        };
                        let mut x = Err3(0.0, 0.0, lerr);
                        for c in 0..r.len() {
                            x.0 = x.0.max((o[c] as f64 - r[c]).abs());
                            x.1 = x.1.max((lo[c] - r[c]).abs());
                        }
                        e = e.max(x);
                    }
                    e
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).fold(Err3::default(), Err3::max)
    })
}

fn slopes(h: usize) -> Vec<f32> {
    (0..h).map(|i| 2f32.powf(-8.0 * (i + 1) as f32 / h as f32)).collect()
}

/// One decode step (q `[batch, 1, heads, d]`) over contexts `ctxs`.
fn decode_case(name: &str, spec: KernelSpec, heads: usize, ctxs: &[usize]) {
    decode_hinted(name, spec, heads, ctxs, None, true)
}

/// `max_context`: the split-heuristic hint (`ForwardArgs::max_context`).
/// `descale`: fp8 cells get random q / k / v descales (else none: 1.0).
fn decode_hinted(
    name: &str,
    spec: KernelSpec,
    heads: usize,
    ctxs: &[usize],
    max_context: Option<usize>,
    descale: bool,
) {
    match spec.dtype() {
        Dtype::F16 => decode_typed::<half::f16, half::f16>(name, spec, heads, ctxs, max_context, descale),
        Dtype::Bf16 => decode_typed::<half::bf16, half::bf16>(name, spec, heads, ctxs, max_context, descale),
        Dtype::E4m3 => decode_typed::<float8::F8E4M3, half::bf16>(name, spec, heads, ctxs, max_context, descale),
        Dtype::E5m2 => decode_typed::<float8::F8E5M2, half::bf16>(name, spec, heads, ctxs, max_context, descale),
    }
}

fn decode_typed<E: Element, O: Element>(
    name: &str,
    spec: KernelSpec,
    heads: usize,
    ctxs: &[usize],
    max_context: Option<usize>,
    descale: bool,
) {
    let dev = device();
    let seed = seed(name);
    let ctx_msg = format!("case `{name}` ({}), seed {seed}", spec.kernel_name());
    let mut rng = Rng::new(seed);
    let (d, ps) = (spec.head_dim() as usize, spec.page_size().unwrap() as usize);
    let h_k = heads / spec.gqa() as usize;
    let batch = ctxs.len();
    let mut cache = Cache::new::<E>(&mut rng, ps, h_k, d, batch, *ctxs.iter().max().unwrap());
    // Real tokens (amplitude 1) over the garbage.
    for (b, &c) in ctxs.iter().enumerate() {
        for t in 0..c {
            let k = round::<E>(&rand_vec(&mut rng, h_k * d));
            let v = round::<E>(&rand_vec(&mut rng, h_k * d));
            cache.write(b, t, &k, &v);
        }
    }
    let q = round::<E>(&rand_vec(&mut rng, batch * heads * d));
    let sl = slopes(heads);
    // fp8: descales per (sequence, kv head) in [0.5, 1.5).
    let fp8 = spec.dtype().is_fp8() && descale;
    let descales: Vec<Vec<f32>> =
        (0..3).map(|_| (0..batch * h_k).map(|_| 1.0 + 0.5 * rng.uniform()).collect()).collect();
    let desc_t: Vec<Tensor<f32>> = descales.iter().map(|x| dev.from_host(x, &[batch, h_k]).unwrap()).collect();
    let kernel = Kernel::new(spec).unwrap();
    let (qt, kt, vt) = (
        upload::<E>(&q, &[batch, 1, heads, d]),
        upload::<E>(&cache.k, &cache.shape()),
        upload::<E>(&cache.v, &cache.shape()),
    );
    let bt = dev.from_host(&cache.block_table, &[batch, cache.width]).unwrap();
    let cl: Vec<i32> = ctxs.iter().map(|&c| c as i32).collect();
    let clt = dev.from_host(&cl, &[batch]).unwrap();
    let at = dev.from_host(&sl, &[heads]).unwrap();
    check_paged_inputs(dev, &bt, &clt, cache.num_blocks, ps).unwrap();
    let mut out: Tensor<O> = dev.alloc_zeros(&[batch, 1, heads, d]).unwrap();
    let mut lse: Tensor<f32> = dev.alloc_zeros(&[batch, heads, 1]).unwrap();
    dev.fill_bytes(&mut out, 0xFF).unwrap();
    dev.fill_bytes(&mut lse, 0xFF).unwrap();
    let mut args = ForwardArgs::new(qt.as_ref(), kt.as_ref(), vt.as_ref(), out.as_mut(), lse.as_mut())
        .paged(bt.as_ref(), clt.as_ref());
    if spec.alibi() {
        args = args.alibi(at.as_ref());
    }
    if let Some(n) = max_context {
        args = args.max_context(n);
    }
    if fp8 {
        args = args.descale(Some(desc_t[0].as_ref()), Some(desc_t[1].as_ref()), Some(desc_t[2].as_ref()));
    }
    kernel.forward(dev, args).unwrap_or_else(|e| panic!("{ctx_msg}: {e}"));
    let oh: Vec<f32> = out.to_host(dev).unwrap().iter().map(|x| x.to_f32()).collect();
    let lh = lse.to_host(dev).unwrap();
    for (b, &c) in ctxs.iter().enumerate() {
        let (k, v) = cache.gather(b, c);
        let qb = &q[b * heads * d..(b + 1) * heads * d];
        let got = |h: usize, _i: usize| {
            let o = (b * heads + h) * d;
            (oh[o..o + d].to_vec(), lh[b * heads + h])
        };
        let ds = |i: usize| &descales[i][b * h_k..(b + 1) * h_k];
        let desc = fp8.then(|| [ds(0), ds(1), ds(2)]);
        let e = check_seq(&spec, heads, qb, 1, &k, &v, c, spec.alibi().then_some(&sl[..]), desc, &got);
        e.assert(&format!("{ctx_msg}, sequence {b} (context {c})"));
    }
}

/// Ragged contexts: empty, one token, page-size ± 1, long (split-KV).
fn ragged(ps: usize) -> Vec<usize> {
    vec![0, 1, ps.saturating_sub(1).max(2), ps + 1, 1000, 3 * ps + 5, 4097]
}

#[test]
fn decode_page_sizes_and_gqa() {
    for ps in [1u32, 16, 256] {
        for (gqa, heads) in [(1u32, 4usize), (4, 8), (8, 16)] {
            let spec = cell(Dtype::Bf16, 128, |b| b.paged().page_size(ps).gqa(gqa).causal());
            decode_case(&format!("decode-p{ps}-gqa{gqa}"), spec, heads, &ragged(ps as usize));
        }
    }
    // MQA (one KV head), f16, hd 64; hd 256.
    decode_case("decode-mqa", cell(Dtype::F16, 64, |b| b.paged().page_size(16).gqa(32)), 32, &ragged(16));
    decode_case("decode-hd256", cell(Dtype::Bf16, 256, |b| b.paged().page_size(16).gqa(2)), 4, &ragged(16));
    // One long sequence: many splits.
    decode_case("decode-long", cell(Dtype::Bf16, 128, |b| b.paged().page_size(16).gqa(4)), 32, &[20000]);
}

/// The layout the runtime plans on this device for a decode of `ctxs` with
/// `heads` query heads (the block table as wide as `decode_case` makes it).
fn planned(spec: KernelSpec, heads: usize, ctxs: &[usize]) -> DecodeLayout {
    let ps = spec.page_size().unwrap() as usize;
    let bound = ctxs.iter().max().unwrap().div_ceil(ps).max(1) * ps;
    let kernel = Kernel::new(spec).unwrap();
    kernel.decode_layout(device(), ctxs.len(), heads / spec.gqa() as usize, bound).unwrap().unwrap()
}

/// Ragged contexts of `batch` sequences from `first` tokens up.
fn ragged_from(first: usize, batch: usize) -> Vec<usize> {
    (0..batch).map(|i| first + 3 * i).collect()
}

/// The first of `batches` (sequences of `first` tokens up) whose planned
/// layout is `want`, so that a case covers that path on any card.
fn batch_with(
    spec: KernelSpec,
    heads: usize,
    first: usize,
    batches: &[usize],
    want: impl Fn(&DecodeLayout) -> bool,
) -> Vec<usize> {
    batch_of(spec, heads, batches, |b| ragged_from(first, b), want)
}

/// The contexts `make(b)` of the first of `batches` whose planned layout is
/// `want`.
fn batch_of(
    spec: KernelSpec,
    heads: usize,
    batches: &[usize],
    make: impl Fn(usize) -> Vec<usize>,
    want: impl Fn(&DecodeLayout) -> bool,
) -> Vec<usize> {
    batches
        .iter()
        .map(|&b| make(b))
        .find(|ctxs| want(&planned(spec, heads, ctxs)))
        .unwrap_or_else(|| panic!("no batch of {batches:?} gives the layout wanted for {}", spec.kernel_name()))
}

/// Every layout `paged::decode_layout` picks: two kv heads per CTA without
/// a split (64 sequences of ~1600 tokens fill an H100 / H200, 132 SMs);
/// one head per CTA with splits over several waves of CTAs, merged by
/// `_decode_merge` (100 sequences of ~4000 tokens there: 4 splits of 800
/// CTAs); one long context in one wave, the last split of each
/// head merging inside `_decode` (one head without a split:
/// `decode_one_head_without_split`). Each case first checks that this card
/// plans the layout it is meant to cover (`Kernel::decode_layout`). The
/// long case also runs twice, which fails if the kernel left its merge
/// counters non-zero.
#[test]
fn decode_layouts_and_both_merges() {
    let spec = cell(Dtype::Bf16, 128, |b| b.paged().page_size(16).gqa(4));
    let wide = ragged_from(1400, 64);
    let l = planned(spec, 32, &wide);
    assert_eq!((l.kernel, l.splits), (DecodeKernel::Pair, 1), "{l:?}");
    decode_case("decode-wide-batch", spec, 32, &wide);
    // Two kv heads per CTA over 137 to 143 tiles of 32 tokens: two windows
    // of sorted visits a list (128, then 9 to 15).
    let long_pairs = ragged_from(4380, 64);
    assert_eq!(planned(spec, 32, &long_pairs).kernel, DecodeKernel::Pair);
    decode_case("decode-wide-batch-windows", spec, 32, &long_pairs);
    let split_batch = batch_with(spec, 32, 4000, &[36, 34, 40, 68, 100, 133], |l| {
        l.kernel == DecodeKernel::One && l.splits > 1 && !l.fused_merge
    });
    decode_case("decode-split-batch", spec, 32, &split_batch);
    // Two kv heads per CTA at hd 96 and hd 80, whose rows the slice's two
    // warps copy together (both heads of a token per copy instruction).
    decode_case("decode-wide-batch-hd96", cell(Dtype::Bf16, 96, |b| b.paged().page_size(16).gqa(4)), 32, &wide);
    decode_case("decode-wide-batch-hd80", cell(Dtype::F16, 80, |b| b.paged().page_size(32).gqa(4).causal()), 32, &wide);
    // hd 96 / hd 80 with splits: on sm90 two kv heads per CTA split too
    // (fa_spec::paged_pair_splits), merged inside _decode_pair (one long
    // context) and by _decode_merge (~100 sequences of ~2000 tokens: a
    // wave of pair CTAs and a few more, split 4 ways); with 3 or 7 kv
    // heads, one head per CTA, each row in a 256-byte slot (7 at hd 80:
    // every shift, 0 to 96 bytes).
    let hd96 = cell(Dtype::Bf16, 96, |b| b.paged().page_size(16).gqa(4));
    let hd80 = cell(Dtype::F16, 80, |b| b.paged().page_size(32).gqa(4).causal());
    let pairs = fa_spec::paged_pair_splits(&hd96);
    let l = planned(hd96, 32, &[30000]);
    assert!(l.splits > 1 && l.fused_merge && (l.heads_per_cta() == 2) == pairs, "{l:?}");
    decode_case("decode-long-hd96", hd96, 32, &[30000]);
    let batch_hd80 = batch_with(hd80, 32, 2000, &[102, 100, 104, 110, 140, 170], |l| {
        (l.heads_per_cta() == 2) == pairs && l.splits > 1 && !l.fused_merge
    });
    decode_case("decode-split-batch-hd80", hd80, 32, &batch_hd80);
    assert_eq!(planned(hd96, 12, &[30000]).heads_per_cta(), 1);
    decode_case("decode-long-hd96-3kv", hd96, 12, &[30000]);
    decode_case("decode-long-hd80-7kv", hd80, 28, &[20000]);
    let l = planned(spec, 32, &[30000]);
    assert!(l.kernel == DecodeKernel::One && l.splits > 1 && l.fused_merge, "{l:?}");
    for run in 0..2 {
        decode_case(&format!("decode-one-wave-{run}"), spec, 32, &[30000]);
    }
}

/// One kv head per CTA without a split: through `_decode_unsplit` where
/// the launch has more CTAs than the card has SMs (32 sequences of ~1400
/// tokens, 256 CTAs; on sm90 bf16 hd128 its 2-stage ring at 3 CTAs per SM),
/// through `_decode` and its deeper ring where it has fewer (12 sequences,
/// 96 CTAs). Small enough for compute-sanitizer.
#[test]
fn decode_one_head_without_split() {
    let spec = cell(Dtype::Bf16, 128, |b| b.paged().page_size(16).gqa(4));
    let many = batch_with(spec, 32, 1400, &[32, 24, 40, 48, 20], |l| l.kernel == DecodeKernel::Unsplit);
    decode_case("decode-unsplit", spec, 32, &many);
    let few = batch_with(spec, 32, 1400, &[12, 8, 4], |l| l.kernel == DecodeKernel::One && l.splits == 1);
    decode_case("decode-one-unsplit-ring", spec, 32, &few);
    // Past 64 tiles a warp: its visits sorted by page in windows of 64
    // (kPdSortedPages), the second window holding 1 or 2 of them.
    let windows = batch_with(spec, 32, 4097, &[32, 24, 40, 48], |l| l.kernel == DecodeKernel::Unsplit);
    decode_case("decode-unsplit-windows", spec, 32, &windows);
    // e4m3: _decode_unsplit has _decode's ring, and serves every launch of
    // one split.
    let fp8 = cell(Dtype::E4m3, 128, |b| b.paged().page_size(16).gqa(4));
    let l = planned(fp8, 32, &ragged_from(200, 3));
    assert!(l.kernel == DecodeKernel::Unsplit && l.splits == 1, "{l:?}");
    decode_case("decode-e4m3-unsplit", fp8, 32, &ragged_from(200, 3));
}

/// 32 query heads a kv head (two 16-row m-tiles): every entry's ring held
/// to 2 CTAs per SM, which its registers need (kPdMaxCtas; at 3 they
/// spilled 440 B). Two kv heads per CTA, one without a split, and splits.
#[test]
fn decode_two_m_tiles() {
    let spec = cell(Dtype::Bf16, 128, |b| b.paged().page_size(16).gqa(32));
    let pairs = batch_with(spec, 256, 1400, &[64, 80, 100, 48], |l| l.kernel == DecodeKernel::Pair);
    decode_case("decode-gqa32-pair", spec, 256, &pairs);
    let unsplit = batch_with(spec, 256, 1400, &[32, 24, 20], |l| l.kernel == DecodeKernel::Unsplit);
    decode_case("decode-gqa32-unsplit", spec, 256, &unsplit);
    let l = planned(spec, 256, &[30000]);
    assert!(l.kernel == DecodeKernel::One && l.splits > 1, "{l:?}");
    decode_case("decode-gqa32-long", spec, 256, &[30000]);
}

#[test]
fn decode_context_hint_changes_splits_not_results() {
    let spec = cell(Dtype::Bf16, 128, |b| b.paged().page_size(16).gqa(4));
    // The hints plan different splits (the table's 20000 tokens: several).
    let kernel = Kernel::new(spec).unwrap();
    let layout = |bound| kernel.decode_layout(device(), 3, 8, bound).unwrap().unwrap();
    assert!(layout(20000).splits > 1 && layout(100).splits == 1 && layout(0).splits == 1);
    // 24 CTAs of one split: _decode (its deeper ring), not _decode_unsplit.
    assert_eq!(layout(100).kernel, DecodeKernel::One);
    // Exact, too small (one split for a 20000-token context), and zero.
    for hint in [20000, 100, 0] {
        decode_hinted(&format!("decode-hint{hint}"), spec, 32, &[20000, 7, 4097], Some(hint), true);
    }
}

#[test]
fn decode_masks() {
    let ctxs = [0, 1, 30, 41, 100, 1000, 5000];
    let cases: Vec<(&str, KernelSpec, usize)> = vec![
        ("window", cell(Dtype::Bf16, 128, |b| b.paged().gqa(4).window(100)), 8),
        ("sink-window", cell(Dtype::F16, 128, |b| b.paged().gqa(4).causal().window(40).sink(4)), 8),
        ("alibi", cell(Dtype::F16, 80, |b| b.paged().gqa(4).causal().alibi()), 8),
        ("softcap", cell(Dtype::Bf16, 96, |b| b.paged().page_size(32).gqa(2).softcap(5.0)), 4),
        (
            "everything",
            cell(Dtype::F16, 64, |b| b.paged().page_size(8).gqa(8).window(33).sink(7).alibi().softcap(10.0)),
            16,
        ),
        // fp8 with every mask and modifier (the decode kernel), and fp8 hd80,
        // which has no decode kernel (80-byte rows) and runs the forward one.
        (
            "fp8-everything",
            cell(Dtype::E5m2, 64, |b| b.paged().page_size(8).gqa(8).window(33).sink(7).alibi().softcap(10.0)),
            16,
        ),
        ("fp8-hd80-forward", cell(Dtype::E4m3, 80, |b| b.paged().gqa(4).causal()), 8),
    ];
    for (name, spec, heads) in cases {
        decode_case(&format!("decode-{name}"), spec, heads, &ctxs);
    }
}

/// The masked cells of `decode_masks` through the entries that run without
/// a split, which `decode_masks`' seven sequences never reach: two kv heads
/// per CTA, and one head per CTA in `_decode_unsplit` (more CTAs than
/// SMs; at hd80 / hd96, where pairs take splits, with 3 kv heads, the
/// one-head ring's run swizzle). Contexts empty, shorter than the window
/// and the sinks, across their edges and long past them, ragged.
#[test]
fn decode_masks_without_split() {
    const EDGES: [usize; 9] = [0, 1, 6, 30, 41, 64, 100, 700, 1300];
    let mixed = |b: usize| (0..b).map(|i| EDGES[i % EDGES.len()] + 3 * (i / EDGES.len())).collect::<Vec<_>>();
    let batches = [16, 24, 32, 48, 64, 80, 100, 128, 160, 200, 264, 300, 400];
    // (name, cell, query heads for the pair, for the unsplit entry)
    let cases: Vec<(&str, KernelSpec, usize, usize)> = vec![
        ("sink-window", cell(Dtype::F16, 128, |b| b.paged().gqa(4).causal().window(40).sink(4)), 8, 8),
        ("alibi-hd80", cell(Dtype::F16, 80, |b| b.paged().gqa(4).causal().alibi()), 8, 12),
        ("softcap-hd96", cell(Dtype::Bf16, 96, |b| b.paged().page_size(32).gqa(2).softcap(5.0)), 4, 6),
        (
            "everything",
            cell(Dtype::F16, 64, |b| b.paged().page_size(8).gqa(8).window(33).sink(7).alibi().softcap(10.0)),
            16,
            16,
        ),
        (
            "fp8-everything",
            cell(Dtype::E5m2, 64, |b| b.paged().page_size(8).gqa(8).window(33).sink(7).alibi().softcap(10.0)),
            16,
            16,
        ),
    ];
    for (name, spec, pair_heads, unsplit_heads) in cases {
        for (kernel, heads) in [(DecodeKernel::Pair, pair_heads), (DecodeKernel::Unsplit, unsplit_heads)] {
            let ctxs = batch_of(spec, heads, &batches, mixed, |l| l.kernel == kernel && l.splits == 1);
            decode_case(&format!("decode-{name}-{}", kernel.stem()), spec, heads, &ctxs);
        }
    }
}

/// fp8 cells (e4m3 / e5m2, descales per sequence and kv head, bf16 O)
/// through the decode kernel: every row size it reads (64 to 256 bytes, so
/// hd 64 to 256), both entries (two kv heads per CTA without splits; one
/// with splits, and at hd192 the pair with splits) and both merges.
#[test]
fn decode_fp8() {
    for (dt, tag) in [(Dtype::E4m3, "e4m3"), (Dtype::E5m2, "e5m2")] {
        for ps in [1u32, 16] {
            let spec = cell(dt, 128, |b| b.paged().page_size(ps).gqa(4).causal());
            decode_case(&format!("decode-{tag}-p{ps}"), spec, 8, &ragged(ps as usize));
        }
    }
    let wide: Vec<usize> = (0..64).map(|i| 1400 + 3 * i).collect();
    let hd128 = cell(Dtype::E4m3, 128, |b| b.paged().page_size(16).gqa(4));
    decode_case("decode-e4m3-wide-batch", hd128, 32, &wide);
    // One head per CTA with splits over several waves (_decode_merge).
    let split_batch = batch_with(hd128, 32, 4000, &[50, 56, 68, 100, 36, 150], |l| {
        l.kernel == DecodeKernel::One && l.splits > 1 && !l.fused_merge
    });
    decode_case("decode-e4m3-split-batch", hd128, 32, &split_batch);
    decode_case("decode-e4m3-long", hd128, 32, &[30000]);
    for hd in [64u32, 96, 192, 256] {
        let spec = cell(Dtype::E4m3, hd, |b| b.paged().page_size(16).gqa(4).causal());
        decode_case(&format!("decode-e4m3-hd{hd}"), spec, 16, &ragged(16));
        decode_case(&format!("decode-e4m3-hd{hd}-long"), spec, 16, &[20000]);
    }
    // hd192 rows (192 bytes) split lines as 16-bit hd96 ones: the pair with
    // splits (both merges) and, with 3 kv heads, one head in 256-byte slots.
    let hd192 = cell(Dtype::E5m2, 192, |b| b.paged().page_size(16).gqa(4));
    let pairs = fa_spec::paged_pair_splits(&hd192);
    let split_batch = batch_with(hd192, 32, 2000, &[75, 102, 68, 110, 140, 50], |l| {
        (l.heads_per_cta() == 2) == pairs && l.splits > 1 && !l.fused_merge
    });
    decode_case("decode-e5m2-hd192-split-batch", hd192, 32, &split_batch);
    decode_case("decode-e5m2-hd192-3kv", hd192, 12, &[30000]);
    // Two kv heads per CTA with rows padded to 80 / 112 bytes (hd64 / hd96)
    // and at hd256; 32 query heads a kv head (two m-tiles, at most 2 CTAs
    // per SM); pages under 16 tokens at hd96 / hd192 (2 and 4 lanes a row).
    for hd in [64u32, 96, 256] {
        let spec = cell(Dtype::E4m3, hd, |b| b.paged().page_size(16).gqa(4));
        decode_case(&format!("decode-e4m3-hd{hd}-wide-batch"), spec, 32, &wide);
    }
    let gqa32 = cell(Dtype::E5m2, 128, |b| b.paged().page_size(16).gqa(32).causal());
    decode_case("decode-e5m2-gqa32", gqa32, 64, &ragged(16));
    decode_case("decode-e5m2-gqa32-wide", gqa32, 64, &wide[..32]);
    for hd in [96u32, 192] {
        let spec = cell(Dtype::E4m3, hd, |b| b.paged().page_size(4).gqa(4).causal());
        decode_case(&format!("decode-e4m3-hd{hd}-p4"), spec, 16, &ragged(4));
    }
    // No descales (null pointers: 1.0).
    decode_hinted("decode-e4m3-unscaled", hd128, 32, &[0, 1, 100, 30000], None, false);
}

/// Prefill in chunks of `chunk` tokens: each step appends the chunk's K/V
/// with `append`, then attends with context_lens = tokens so far. The
/// concatenated outputs must equal dense causal attention over each whole
/// sequence.
fn chunked_prefill(name: &str, spec: KernelSpec, heads: usize, lens: &[usize], chunk: usize) {
    type E = half::bf16;
    assert_eq!(spec.dtype(), Dtype::Bf16);
    let dev = device();
    let seed = seed(name);
    let ctx_msg = format!("case `{name}` ({}), seed {seed}", spec.kernel_name());
    let mut rng = Rng::new(seed);
    let (d, ps) = (spec.head_dim() as usize, spec.page_size().unwrap() as usize);
    let h_k = heads / spec.gqa() as usize;
    let batch = lens.len();
    let mut cache = Cache::new::<E>(&mut rng, ps, h_k, d, batch, *lens.iter().max().unwrap());
    let kernel = Kernel::new(spec).unwrap();
    let mut kt = upload::<E>(&cache.k, &cache.shape());
    let mut vt = upload::<E>(&cache.v, &cache.shape());
    let bt = dev.from_host(&cache.block_table, &[batch, cache.width]).unwrap();
    let seq_q: Vec<Vec<f32>> = lens.iter().map(|&l| round::<E>(&rand_vec(&mut rng, l * heads * d))).collect();
    let seq_k: Vec<Vec<f32>> = lens.iter().map(|&l| round::<E>(&rand_vec(&mut rng, l * h_k * d))).collect();
    let seq_v: Vec<Vec<f32>> = lens.iter().map(|&l| round::<E>(&rand_vec(&mut rng, l * h_k * d))).collect();
    let mut outs: Vec<Vec<f32>> = lens.iter().map(|&l| vec![f32::NAN; l * heads * d]).collect();
    let mut lses: Vec<Vec<f32>> = lens.iter().map(|&l| vec![f32::NAN; l * heads]).collect();
    let steps = lens.iter().max().unwrap().div_ceil(chunk);
    for step in 0..steps {
        let rng_of = |l: usize| ((step * chunk).min(l), ((step + 1) * chunk).min(l));
        // Append this chunk's K/V (plus one padding token with slot −1).
        let (mut kn, mut vn, mut slots) = (Vec::new(), Vec::new(), Vec::new());
        for b in 0..batch {
            let (s, e) = rng_of(lens[b]);
            for t in s..e {
                let row = h_k * d;
                kn.extend_from_slice(&seq_k[b][t * row..(t + 1) * row]);
                vn.extend_from_slice(&seq_v[b][t * row..(t + 1) * row]);
                slots.push(cache.slot(b, t) as i64);
                let (k, v) = (seq_k[b][t * row..(t + 1) * row].to_vec(), seq_v[b][t * row..(t + 1) * row].to_vec());
                cache.write(b, t, &k, &v);
            }
        }
        kn.extend(rand_vec(&mut rng, h_k * d));
        vn.extend(rand_vec(&mut rng, h_k * d));
        slots.push(-1);
        let n = slots.len();
        let (knt, vnt) = (upload::<E>(&kn, &[n, h_k, d]), upload::<E>(&vn, &[n, h_k, d]));
        let st = dev.from_host(&slots, &[n]).unwrap();
        check_slot_mapping(dev, &st, cache.num_blocks, ps).unwrap();
        kernel.append(dev, knt.as_ref(), vnt.as_ref(), st.as_ref(), kt.as_mut(), vt.as_mut()).unwrap();
        // Attend.
        let mut cu_q = vec![0i32];
        let mut cu_k = vec![0i32];
        let mut ctx = Vec::new();
        let mut qv = Vec::new();
        for b in 0..batch {
            let (s, e) = rng_of(lens[b]);
            qv.extend_from_slice(&seq_q[b][s * heads * d..e * heads * d]);
            cu_q.push(cu_q.last().unwrap() + (e - s) as i32);
            ctx.push(e as i32);
            cu_k.push(cu_k.last().unwrap() + e as i32);
        }
        let total_q = *cu_q.last().unwrap() as usize;
        let max_q = (0..batch).map(|b| rng_of(lens[b]).1 - rng_of(lens[b]).0).max().unwrap();
        let max_k = *ctx.iter().max().unwrap() as usize;
        let qt = upload::<E>(&qv, &[total_q, heads, d]);
        let (cqt, ckt) = (dev.from_host(&cu_q, &[batch + 1]).unwrap(), dev.from_host(&cu_k, &[batch + 1]).unwrap());
        let clt = dev.from_host(&ctx, &[batch]).unwrap();
        check_paged_inputs(dev, &bt, &clt, cache.num_blocks, ps).unwrap();
        let mut out: Tensor<E> = dev.alloc_zeros(&[total_q, heads, d]).unwrap();
        let mut lse: Tensor<f32> = dev.alloc_zeros(&[heads, total_q]).unwrap();
        dev.fill_bytes(&mut out, 0xFF).unwrap();
        dev.fill_bytes(&mut lse, 0xFF).unwrap();
        let args = ForwardArgs::new(qt.as_ref(), kt.as_ref(), vt.as_ref(), out.as_mut(), lse.as_mut())
            .varlen(cqt.as_ref(), ckt.as_ref(), max_q, max_k)
            .paged(bt.as_ref(), clt.as_ref());
        kernel.forward(dev, args).unwrap_or_else(|e| panic!("{ctx_msg}, step {step}: {e}"));
        let oh: Vec<f32> = out.to_host(dev).unwrap().iter().map(|x| x.to_f32()).collect();
        let lh = lse.to_host(dev).unwrap();
        for b in 0..batch {
            let (s, e) = rng_of(lens[b]);
            for t in s..e {
                let row = cu_q[b] as usize + t - s;
                outs[b][t * heads * d..(t + 1) * heads * d]
                    .copy_from_slice(&oh[row * heads * d..(row + 1) * heads * d]);
                for h in 0..heads {
                    lses[b][t * heads + h] = lh[h * total_q + row];
                }
            }
        }
    }
    // The caches hold exactly what we wrote (the padding token went nowhere).
    let kh: Vec<f32> = kt.to_host(dev).unwrap().iter().map(|x| x.to_f32()).collect();
    assert!(kh == cache.k, "{ctx_msg}: k_cache differs from the expected appends");
    for b in 0..batch {
        let (k, v) = cache.gather(b, lens[b]);
        let got = |h: usize, i: usize| {
            let o = (i * heads + h) * d;
            (outs[b][o..o + d].to_vec(), lses[b][i * heads + h])
        };
        check_seq(&spec, heads, &seq_q[b], lens[b], &k, &v, lens[b], None, None, &got)
            .assert(&format!("{ctx_msg}, sequence {b} (length {})", lens[b]));
    }
}

#[test]
fn chunked_prefill_equals_dense_causal() {
    let spec = cell(Dtype::Bf16, 128, |b| b.paged().varlen().causal().gqa(4));
    chunked_prefill("chunked-p16", spec, 8, &[700, 333, 1, 129], 128);
    let spec = cell(Dtype::Bf16, 64, |b| b.paged().page_size(1).varlen().causal().gqa(2));
    chunked_prefill("chunked-p1", spec, 4, &[300, 77], 64);
    let spec = cell(Dtype::Bf16, 128, |b| b.paged().page_size(256).varlen().causal().window(100).sink(4).gqa(8));
    chunked_prefill("chunked-p256-sink-window", spec, 8, &[1000, 513], 200);
}

#[flash_attention(arch = sm80, dtype = bf16, head_dim = 128, causal, gqa = 4, paged, page_size = 16)]
struct Llama;

/// The generated `append` then `forward` (decode): attention over the cache
/// plus the appended token equals attention over the concatenated K/V.
#[test]
fn append_then_decode_equals_concatenated() {
    type E = half::bf16;
    let dev = device();
    let name = "append-decode";
    let mut rng = Rng::new(seed(name));
    let (heads, d, ps) = (8usize, 128usize, 16usize);
    let h_k = heads / 4;
    let ctx0 = [0usize, 15, 16, 33, 900];
    let batch = ctx0.len();
    let mut cache = Cache::new::<E>(&mut rng, ps, h_k, d, batch, 901);
    for (b, &c) in ctx0.iter().enumerate() {
        for t in 0..c {
            let (k, v) = (round::<E>(&rand_vec(&mut rng, h_k * d)), round::<E>(&rand_vec(&mut rng, h_k * d)));
            cache.write(b, t, &k, &v);
        }
    }
    let mut kt = upload::<E>(&cache.k, &cache.shape());
    let mut vt = upload::<E>(&cache.v, &cache.shape());
    // One new token per sequence, then two padding tokens (slot −1).
    let kn = round::<E>(&rand_vec(&mut rng, (batch + 2) * h_k * d));
    let vn = round::<E>(&rand_vec(&mut rng, (batch + 2) * h_k * d));
    let mut slots: Vec<i64> = (0..batch).map(|b| cache.slot(b, ctx0[b]) as i64).collect();
    slots.extend([-1, -1]);
    for b in 0..batch {
        let r = h_k * d;
        let (k, v) = (kn[b * r..(b + 1) * r].to_vec(), vn[b * r..(b + 1) * r].to_vec());
        cache.write(b, ctx0[b], &k, &v);
    }
    let st = dev.from_host(&slots, &[batch + 2]).unwrap();
    let (knt, vnt) = (upload::<E>(&kn, &[batch + 2, h_k, d]), upload::<E>(&vn, &[batch + 2, h_k, d]));
    Llama::append(dev, &knt, &vnt, &st, &mut kt, &mut vt).unwrap();
    let kh: Vec<f32> = kt.to_host(dev).unwrap().iter().map(|x| x.to_f32()).collect();
    let vh: Vec<f32> = vt.to_host(dev).unwrap().iter().map(|x| x.to_f32()).collect();
    assert!(kh == cache.k && vh == cache.v, "append wrote something else than the slot mapping says");

    let q = round::<E>(&rand_vec(&mut rng, batch * heads * d));
    let qt = upload::<E>(&q, &[batch, 1, heads, d]);
    let bt = dev.from_host(&cache.block_table, &[batch, cache.width]).unwrap();
    let cl: Vec<i32> = ctx0.iter().map(|&c| c as i32 + 1).collect();
    let clt = dev.from_host(&cl, &[batch]).unwrap();
    let mut out: Tensor<E> = dev.alloc_zeros(&[batch, 1, heads, d]).unwrap();
    let mut lse: Tensor<f32> = dev.alloc_zeros(&[batch, heads, 1]).unwrap();
    dev.fill_bytes(&mut out, 0xFF).unwrap();
    dev.fill_bytes(&mut lse, 0xFF).unwrap();
    Llama::forward(dev, &qt, &kt, &vt, &bt, &clt, &mut out, &mut lse, &FwdOptions::default()).unwrap();
    let oh: Vec<f32> = out.to_host(dev).unwrap().iter().map(|x| x.to_f32()).collect();
    let lh = lse.to_host(dev).unwrap();
    for b in 0..batch {
        let c = ctx0[b] + 1;
        let (k, v) = cache.gather(b, c);
        let got =
            |h: usize, _i: usize| ((oh[(b * heads + h) * d..(b * heads + h + 1) * d]).to_vec(), lh[b * heads + h]);
        check_seq(&Llama::SPEC, heads, &q[b * heads * d..(b + 1) * heads * d], 1, &k, &v, c, None, None, &got)
            .assert(&format!("{name}, sequence {b}"));
    }
}

#[test]
fn bad_paged_inputs() {
    type E = half::bf16;
    let dev = device();
    let (heads, d, ps, nb, width) = (8usize, 128usize, 16usize, 8usize, 4usize);
    let h_k = heads / 4;
    let kt: Tensor<E> = dev.alloc_zeros(&[nb, ps, h_k, d]).unwrap();
    let vt: Tensor<E> = dev.alloc_zeros(&[nb, ps, h_k, d]).unwrap();
    let qt: Tensor<E> = dev.alloc_zeros(&[2, 1, heads, d]).unwrap();
    // Out-of-range pages and a context longer than the table: typed errors
    // from the checker...
    let bt = dev.from_host(&[0, 1, 1 << 30, 3, -5, 5, 6, 7], &[2, width]).unwrap();
    let clt = dev.from_host(&[40, 10], &[2]).unwrap();
    let e = check_paged_inputs(dev, &bt, &clt, nb, ps).unwrap_err();
    assert!(matches!(e, FaError::Argument { arg: "block_table", .. }), "{e}");
    let long = dev.from_host(&[65, 1], &[2]).unwrap();
    let e = check_paged_inputs(dev, &dev.from_host(&[0, 1, 2, 3, 4, 5, 6, 7], &[2, width]).unwrap(), &long, nb, ps)
        .unwrap_err();
    assert!(matches!(e, FaError::Argument { arg: "context_lens", .. }), "{e}");
    // ...and a decode launched anyway neither faults nor writes NaN (bad
    // pages are masked).
    let long2 = dev.from_host(&[1 << 20, 64], &[2]).unwrap();
    for cl in [&clt, &long2] {
        let mut out: Tensor<E> = dev.alloc_zeros(&[2, 1, heads, d]).unwrap();
        let mut lse: Tensor<f32> = dev.alloc_zeros(&[2, heads, 1]).unwrap();
        dev.fill_bytes(&mut out, 0xFF).unwrap();
        Llama::forward(dev, &qt, &kt, &vt, &bt, cl, &mut out, &mut lse, &FwdOptions::default()).unwrap();
        dev.synchronize().unwrap();
        assert!(out.to_host(dev).unwrap().iter().all(|x| !x.to_f32().is_nan()));
    }
    // Page size differing from the cell's: a typed error before launch.
    let k32: Tensor<E> = dev.alloc_zeros(&[nb / 2, 32, h_k, d]).unwrap();
    let mut out: Tensor<E> = dev.alloc_zeros(&[2, 1, heads, d]).unwrap();
    let mut lse: Tensor<f32> = dev.alloc_zeros(&[2, heads, 1]).unwrap();
    let e = Llama::forward(dev, &qt, &k32, &k32, &bt, &clt, &mut out, &mut lse, &FwdOptions::default()).unwrap_err();
    assert!(matches!(e, FaError::Shape { arg: "k", .. }), "{e}");
    // Append: slots out of range are an error for the checker and skipped by the kernel.
    let kn: Tensor<E> = dev.from_host(&vec![E::from_f32(1.0); 3 * h_k * d], &[3, h_k, d]).unwrap();
    let st = dev.from_host(&[(nb * ps) as i64, -7, i64::MAX], &[3]).unwrap();
    assert!(matches!(check_slot_mapping(dev, &st, nb, ps), Err(FaError::Argument { arg: "slot_mapping", .. })));
    let (mut kc, mut vc) = (kt, vt);
    Llama::append(dev, &kn, &kn, &st, &mut kc, &mut vc).unwrap();
    assert!(kc.to_host(dev).unwrap().iter().chain(vc.to_host(dev).unwrap().iter()).all(|x| x.to_f32() == 0.0));
    let mut k32m = k32;
    let mut v32m: Tensor<E> = dev.alloc_zeros(&[nb / 2, 32, h_k, d]).unwrap();
    let e = Llama::append(dev, &kn, &kn, &st, &mut k32m, &mut v32m).unwrap_err();
    assert!(matches!(e, FaError::Shape { arg: "k_cache", .. }), "{e}");
}
