//! Host-only checks of the paged KV-cache support: the decode/append ABI
//! mirrors, append validation, the table checkers, the split heuristic and
//! the routing rule. No GPU, no NVRTC.

use fa_runtime::paged::{
    check_slots, check_tables, decode_layout, fuses_merge, uses_decode, validate_append, workspace_bytes, AppendShapes,
    DecodeKernel, DecodeKernels, DecodeLayout, DecodeProblem, EntryOccupancy, PagedAppendParams, PagedDecodeParams,
};
use fa_runtime::validate::ArgMeta;
use fa_runtime::{ElemType, FaError, KernelSpec};
use fa_spec::{Arch, Dtype};
use std::mem::offset_of;
use DecodeKernel::{One, Pair, Unsplit};

mod c_header;
use c_header::c_fields;
mod paged_entries;
use paged_entries::{BF16_HD128, BF16_HD128_PAIR, BF16_HD128_UNSPLIT, BF16_HD96_PAIR, E4M3_HD128};

const DEV: (u64, usize) = (7, 0);

fn m(shape: &[usize], elem: ElemType) -> ArgMeta<'_> {
    ArgMeta { shape, elem, device_id: DEV.0, ordinal: DEV.1 }
}

fn spec(f: impl FnOnce(fa_spec::SpecBuilder) -> fa_spec::SpecBuilder) -> KernelSpec {
    f(KernelSpec::builder().arch(Arch::Sm90a).dtype(Dtype::Bf16).head_dim(128)).build().unwrap()
}

const HEADER: &str = include_str!("../../templates/partials/paged_params.cuh");

#[test]
fn decode_params_match_the_c_layout() {
    let names = c_fields(HEADER, "PagedDecodeParams");
    // 14 pointers, 10 long long strides, then 4-byte fields.
    assert_eq!(names.len(), 14 + 10 + 10, "{names:?}");
    assert_eq!(std::mem::size_of::<PagedDecodeParams>(), 232);
    assert_eq!(std::mem::align_of::<PagedDecodeParams>(), 8);
    let offsets = [
        offset_of!(PagedDecodeParams, q),
        offset_of!(PagedDecodeParams, k_cache),
        offset_of!(PagedDecodeParams, v_cache),
        offset_of!(PagedDecodeParams, o),
        offset_of!(PagedDecodeParams, lse),
        offset_of!(PagedDecodeParams, o_accum),
        offset_of!(PagedDecodeParams, lse_accum),
        offset_of!(PagedDecodeParams, block_table),
        offset_of!(PagedDecodeParams, context_lens),
        offset_of!(PagedDecodeParams, alibi_slopes),
        offset_of!(PagedDecodeParams, q_descale),
        offset_of!(PagedDecodeParams, k_descale),
        offset_of!(PagedDecodeParams, v_descale),
        offset_of!(PagedDecodeParams, merge_counters),
        offset_of!(PagedDecodeParams, q_batch_stride),
        offset_of!(PagedDecodeParams, q_head_stride),
        offset_of!(PagedDecodeParams, k_block_stride),
        offset_of!(PagedDecodeParams, k_page_stride),
        offset_of!(PagedDecodeParams, k_head_stride),
        offset_of!(PagedDecodeParams, v_block_stride),
        offset_of!(PagedDecodeParams, v_page_stride),
        offset_of!(PagedDecodeParams, v_head_stride),
        offset_of!(PagedDecodeParams, o_batch_stride),
        offset_of!(PagedDecodeParams, o_head_stride),
        offset_of!(PagedDecodeParams, batch),
        offset_of!(PagedDecodeParams, num_heads),
        offset_of!(PagedDecodeParams, num_kv_heads),
        offset_of!(PagedDecodeParams, num_blocks),
        offset_of!(PagedDecodeParams, block_table_stride),
        offset_of!(PagedDecodeParams, num_splits),
        offset_of!(PagedDecodeParams, heads_per_cta),
        offset_of!(PagedDecodeParams, softmax_scale),
        offset_of!(PagedDecodeParams, scale_log2),
        offset_of!(PagedDecodeParams, pad_),
    ];
    let expected: Vec<usize> = (0..24).map(|i| 8 * i).chain((0..10).map(|i| 192 + 4 * i)).collect();
    assert_eq!(offsets.to_vec(), expected);
    let rust = [
        "q",
        "k_cache",
        "v_cache",
        "o",
        "lse",
        "o_accum",
        "lse_accum",
        "block_table",
        "context_lens",
        "alibi_slopes",
        "q_descale",
        "k_descale",
        "v_descale",
        "merge_counters",
        "q_batch_stride",
        "q_head_stride",
        "k_block_stride",
        "k_page_stride",
        "k_head_stride",
        "v_block_stride",
        "v_page_stride",
        "v_head_stride",
        "o_batch_stride",
        "o_head_stride",
        "batch",
        "num_heads",
        "num_kv_heads",
        "num_blocks",
        "block_table_stride",
        "num_splits",
        "heads_per_cta",
        "softmax_scale",
        "scale_log2",
        "pad_",
    ];
    assert_eq!(names, rust, "paged_params.cuh changed: update fa-runtime/src/paged.rs");
}

#[test]
fn append_params_match_the_c_layout() {
    let names = c_fields(HEADER, "PagedAppendParams");
    assert_eq!(std::mem::size_of::<PagedAppendParams>(), 136);
    let offsets = [
        offset_of!(PagedAppendParams, k_new),
        offset_of!(PagedAppendParams, v_new),
        offset_of!(PagedAppendParams, k_cache),
        offset_of!(PagedAppendParams, v_cache),
        offset_of!(PagedAppendParams, slot_mapping),
        offset_of!(PagedAppendParams, k_new_token_stride),
        offset_of!(PagedAppendParams, k_new_head_stride),
        offset_of!(PagedAppendParams, v_new_token_stride),
        offset_of!(PagedAppendParams, v_new_head_stride),
        offset_of!(PagedAppendParams, k_block_stride),
        offset_of!(PagedAppendParams, k_page_stride),
        offset_of!(PagedAppendParams, k_head_stride),
        offset_of!(PagedAppendParams, v_block_stride),
        offset_of!(PagedAppendParams, v_page_stride),
        offset_of!(PagedAppendParams, v_head_stride),
        offset_of!(PagedAppendParams, num_tokens),
        offset_of!(PagedAppendParams, num_kv_heads),
        offset_of!(PagedAppendParams, num_blocks),
        offset_of!(PagedAppendParams, pad_),
    ];
    let expected: Vec<usize> = (0..15).map(|i| 8 * i).chain((0..4).map(|i| 120 + 4 * i)).collect();
    assert_eq!(offsets.to_vec(), expected);
    let rust = [
        "k_new",
        "v_new",
        "k_cache",
        "v_cache",
        "slot_mapping",
        "k_new_token_stride",
        "k_new_head_stride",
        "v_new_token_stride",
        "v_new_head_stride",
        "k_block_stride",
        "k_page_stride",
        "k_head_stride",
        "v_block_stride",
        "v_page_stride",
        "v_head_stride",
        "num_tokens",
        "num_kv_heads",
        "num_blocks",
        "pad_",
    ];
    assert_eq!(names, rust, "paged_params.cuh changed: update fa-runtime/src/paged.rs");
}

struct App {
    k_new: Vec<usize>,
    v_new: Vec<usize>,
    slots: Vec<usize>,
    kc: Vec<usize>,
    vc: Vec<usize>,
    elem: ElemType,
    slot_elem: ElemType,
}

fn app() -> App {
    App {
        k_new: vec![5, 2, 128],
        v_new: vec![5, 2, 128],
        slots: vec![5],
        kc: vec![40, 16, 2, 128],
        vc: vec![40, 16, 2, 128],
        elem: ElemType::Bf16,
        slot_elem: ElemType::I64,
    }
}

fn check(sp: &KernelSpec, a: &App) -> Result<fa_runtime::paged::AppendPlan, FaError> {
    let s = AppendShapes {
        k_new: m(&a.k_new, a.elem),
        v_new: m(&a.v_new, a.elem),
        slot_mapping: m(&a.slots, a.slot_elem),
        k_cache: m(&a.kc, a.elem),
        v_cache: m(&a.vc, a.elem),
    };
    validate_append(sp, &s, DEV)
}

#[test]
fn append_validation() {
    let sp = spec(|b| b.paged().page_size(16).gqa(4));
    let plan = check(&sp, &app()).unwrap();
    assert_eq!((plan.num_tokens, plan.num_kv_heads, plan.num_blocks), (5, 2, 40));
    // 5 tokens × 2 heads × 16 chunks of 16 bytes = 160 threads: one CTA.
    assert_eq!(plan.grid, 1);
    // Zero tokens: nothing to launch.
    let mut a = app();
    a.k_new[0] = 0;
    a.v_new[0] = 0;
    a.slots[0] = 0;
    assert_eq!(check(&sp, &a).unwrap().grid, 0);

    let not_paged = spec(|b| b.gqa(4));
    assert!(matches!(check(&not_paged, &app()), Err(FaError::Argument { arg: "spec", .. })));

    type Mutation = Box<dyn Fn(&mut App)>;
    let cases: Vec<(&str, Mutation)> = vec![
        ("k_cache", Box::new(|a| a.kc[1] = 32)), // page size differs from the cell's
        ("k_cache", Box::new(|a| a.kc[3] = 64)), // head_dim
        ("k_cache", Box::new(|a| a.kc = vec![640, 2, 128])), // rank
        ("v_cache", Box::new(|a| a.vc[0] = 41)),
        ("k_new", Box::new(|a| a.k_new[1] = 3)), // heads differ from the cache's
        ("v_new", Box::new(|a| a.v_new[0] = 4)), // tokens differ from slot_mapping's
        ("slot_mapping", Box::new(|a| a.slots = vec![5, 1])),
    ];
    for (arg, f) in cases {
        let mut a = app();
        f(&mut a);
        match check(&sp, &a) {
            Err(FaError::Shape { arg: got, .. }) => assert_eq!(got, arg),
            other => panic!("{arg}: {other:?}"),
        }
    }
    let mut a = app();
    a.slot_elem = ElemType::I32;
    assert!(matches!(check(&sp, &a), Err(FaError::Dtype { arg: "slot_mapping", expected: "i64", .. })));
    let mut a = app();
    a.elem = ElemType::F16;
    assert!(matches!(check(&sp, &a), Err(FaError::Dtype { arg: "k_new", .. })));
    // Wrong device.
    let a = app();
    let s = AppendShapes {
        k_new: m(&a.k_new, a.elem),
        v_new: m(&a.v_new, a.elem),
        slot_mapping: m(&a.slots, a.slot_elem),
        k_cache: ArgMeta { shape: &a.kc, elem: a.elem, device_id: 99, ordinal: 3 },
        v_cache: m(&a.vc, a.elem),
    };
    assert!(matches!(
        validate_append(&sp, &s, DEV),
        Err(FaError::WrongDevice { arg: "k_cache", expected: 0, found: 3 })
    ));
    // fp8 caches: 1-byte elements, 8 chunks per 128-wide row.
    let fp8 = KernelSpec::builder().arch(Arch::Sm90a).dtype(Dtype::E4m3).head_dim(128).paged().build().unwrap();
    let mut a = app();
    a.elem = ElemType::F8E4M3;
    assert_eq!(check(&fp8, &a).unwrap().grid, 1);
}

#[test]
fn table_checks() {
    // 2 sequences, 3 pages of 4 tokens each row, 10 pages in the cache.
    let bt = [7, 2, 9, 4, -1, -1];
    assert!(check_tables(&bt, 3, &[12, 4], 10, 4).is_ok());
    assert!(check_tables(&bt, 3, &[0, 0], 10, 4).is_ok());
    assert!(check_tables(&bt, 3, &[9, 1], 10, 4).is_ok());
    let e = check_tables(&bt, 3, &[12, 5], 10, 4).unwrap_err();
    assert!(matches!(e, FaError::Argument { arg: "block_table", .. }), "{e}");
    assert!(e.to_string().contains("block_table[1][1] = -1"), "{e}");
    let e = check_tables(&bt, 3, &[13, 1], 10, 4).unwrap_err();
    assert!(matches!(e, FaError::Argument { arg: "context_lens", .. }), "{e}");
    let e = check_tables(&bt, 3, &[-1, 1], 10, 4).unwrap_err();
    assert!(matches!(e, FaError::Argument { arg: "context_lens", .. }), "{e}");
    let e = check_tables(&bt, 3, &[12, 1], 9, 4).unwrap_err();
    assert!(e.to_string().contains("block_table[0][2] = 9"), "{e}");
    assert!(check_tables(&bt, 2, &[1, 1], 10, 4).is_err()); // shape
                                                            // Slots.
    assert!(check_slots(&[0, 39, -1, 17], 10, 4).is_ok());
    assert!(matches!(check_slots(&[40], 10, 4), Err(FaError::Argument { arg: "slot_mapping", .. })));
    assert!(check_slots(&[-2], 10, 4).is_err());
}

/// `paged::num_splits` of (batch, kv heads, max context, window, sink) on
/// an H100 / H200 (132 SMs) for `entry`.
fn num_splits(
    batch: usize,
    kv_heads: usize,
    max_context: usize,
    window: usize,
    sink: usize,
    entry: EntryOccupancy,
) -> usize {
    let problem = DecodeProblem { batch, kv_heads, max_context, window, sink };
    fa_runtime::paged::num_splits(&problem, 132, entry)
}

/// The documented cost model, written out independently: `base` CTAs a
/// split, `t` tiles of `n` tokens, `slots` resident CTAs, `smem` bytes a CTA.
fn model_splits(base: usize, t: usize, n: usize, slots: usize, smem: usize) -> usize {
    let cost = |s: usize| {
        let c = [6.5, 8.0][(s > 1) as usize] * 1048576.0 / smem as f64;
        let wave = |k: usize| ((k as f64).powi(5) + c.powi(5)).powf(1.0 / 5.0) / slots as f64;
        let (full, part) = (base * s / slots, base * s % slots);
        let waves = full as f64 * wave(slots) + if part > 0 { wave(part) } else { 0.0 };
        waves * ((t.div_ceil(s) * n) as f64 + 48.0)
    };
    let smax = (t / 4).clamp(1, 128);
    (1..=smax).min_by(|&a, &b| cost(a).total_cmp(&cost(b)).then(a.cmp(&b))).unwrap()
}

#[test]
fn split_heuristic() {
    // One long context: about a wave of splits (bf16: 32 of 8 CTAs, 256 of
    // the 264 slots; e4m3: 41 of the 396).
    assert_eq!(num_splits(1, 8, 131072, 0, 0, BF16_HD128), 32);
    assert_eq!(num_splits(1, 8, 131072, 0, 0, E4M3_HD128), 41);
    assert_eq!(num_splits(2, 8, 65536, 0, 0, BF16_HD128), 16);
    assert_eq!(num_splits(8, 8, 4096, 0, 0, BF16_HD128), 4);
    // A batch whose rings already fill the memory does not split, though
    // its CTAs leave slots free: the whole-waves model split these (bf16 16
    // x 4096 into 2, 2.9% slower on an H100; e4m3 32 x 1024 into 3, 15%).
    assert_eq!(num_splits(16, 8, 4096, 0, 0, BF16_HD128), 1);
    assert_eq!(num_splits(32, 8, 1024, 0, 0, E4M3_HD128), 1);
    assert_eq!(num_splits(32, 8, 8192, 0, 0, BF16_HD128), 1);
    // Short contexts never split (each split keeps >= 4 tiles).
    for ctx in [0, 1, 64, 255, 256 + 63] {
        assert_eq!(num_splits(1, 1, ctx, 0, 0, BF16_HD128), 1, "ctx {ctx}");
    }
    // At most 128 splits, however long the context.
    let s = num_splits(1, 1, 1 << 30, 0, 0, BF16_HD128);
    assert!((1..=128).contains(&s), "{s}");
    // A window bounds the work: the same as a context of window + 1 tile + sink tiles.
    assert_eq!(num_splits(1, 8, 131072, 4096, 4, BF16_HD128), num_splits(1, 8, 4096 + 64 + 64, 0, 0, BF16_HD128));
    assert_eq!(num_splits(1, 8, 1000, 4096, 0, BF16_HD128), num_splits(1, 8, 1000, 0, 0, BF16_HD128));
    // Degenerate device numbers do not panic.
    let none = EntryOccupancy::default();
    assert_eq!(fa_runtime::paged::num_splits(&DecodeProblem::default(), 0, none), 1);
    // Nor do huge ones (the public functions take any usize): the products
    // saturate, and an unbounded context splits as a long one does.
    for (batch, kv_heads, max_context, window, sink) in [
        (1, 8, usize::MAX, 0, 0),
        (usize::MAX, 8, 4096, 0, 0),
        (usize::MAX >> 20, 1 << 12, 1 << 40, 0, 0),
        (1, usize::MAX, usize::MAX, usize::MAX, usize::MAX),
    ] {
        let p = DecodeProblem { batch, kv_heads, max_context, window, sink };
        assert!((1..=128).contains(&fa_runtime::paged::num_splits(&p, usize::MAX, BF16_HD128)), "{p:?}");
        let big = EntryOccupancy { ctas_per_sm: usize::MAX, smem_bytes: usize::MAX };
        for pair_splits in [false, true] {
            let l = decode_layout(&p, usize::MAX, kernels(big, big, big, pair_splits));
            assert!((1..=128).contains(&l.splits), "{p:?} {l:?}");
        }
    }
    assert_eq!(num_splits(1, 8, usize::MAX, 0, 0, BF16_HD128), num_splits(1, 8, 1 << 40, 0, 0, BF16_HD128));
    // The implementation agrees with the documented cost model.
    for entry in [BF16_HD128, E4M3_HD128, EntryOccupancy { ctas_per_sm: 1, smem_bytes: 196864 }] {
        for (b, hk, ctx) in
            [(1usize, 1usize, 5000usize), (3, 8, 20000), (16, 4, 70000), (128, 8, 2048), (1, 8, 131072), (5, 3, 9000)]
        {
            let want = model_splits(b * hk, ctx.div_ceil(64), 64, 132 * entry.ctas_per_sm, entry.smem_bytes);
            assert_eq!(num_splits(b, hk, ctx, 0, 0, entry), want, "{b} {hk} {ctx} {entry:?}");
        }
    }
}

fn kernels(one: EntryOccupancy, unsplit: EntryOccupancy, pair: EntryOccupancy, pair_splits: bool) -> DecodeKernels {
    DecodeKernels { one, unsplit, pair, pair_splits }
}

/// The layout of a decode on an H100 / H200 (132 SMs) of a cell whose pair
/// takes splits (bf16 hd96's entries) or not (bf16 hd128's).
fn h100_layout(batch: usize, kv_heads: usize, max_context: usize, pair_splits: bool) -> DecodeLayout {
    let pair = if pair_splits { BF16_HD96_PAIR } else { BF16_HD128_PAIR };
    decode_layout(
        &DecodeProblem { batch, kv_heads, max_context, ..Default::default() },
        132,
        kernels(BF16_HD128, BF16_HD128_UNSPLIT, pair, pair_splits),
    )
}

fn layout(kernel: DecodeKernel, splits: usize, fused_merge: bool) -> DecodeLayout {
    DecodeLayout { kernel, splits, fused_merge }
}

#[test]
fn decode_layout_pairs_heads_only_where_no_split_is_needed() {
    // hd128: pairs without splits.
    let lay = |batch, kv_heads, max_context| h100_layout(batch, kv_heads, max_context, false);
    // Two heads per CTA where their CTAs fill half to all of the 396 pair
    // slots: 64 sequences (256 CTAs), 96 (384), 50 (200), any context.
    for ctx in [1600, 4096, 16384] {
        assert_eq!(lay(64, 8, ctx), layout(Pair, 1, false), "64 x {ctx}");
        assert_eq!(lay(96, 8, ctx), layout(Pair, 1, false), "96 x {ctx}");
    }
    assert_eq!(lay(50, 8, 4096), layout(Pair, 1, false));
    // Fewer (49 sequences: 196 CTAs) or more (128: 512, a second partial
    // wave) keep one head (128 x 2048 on an H200: 255.8 µs against 271.7),
    // unsplit (see decode_layout_runs_unsplit_launches_of_many_ctas).
    assert_eq!(lay(49, 8, 4096), layout(Unsplit, 1, false));
    assert_eq!(lay(128, 8, 2048), layout(Unsplit, 1, false));
    // The same batch with an odd number of kv heads keeps one.
    assert_eq!(lay(64, 7, 4096).heads_per_cta(), 1);
    assert_eq!(lay(32, 8, 8192), layout(Unsplit, 1, false));
    assert_eq!(lay(40, 8, 1600), layout(Unsplit, 1, false));
    // One long context: one wave of splits, merged inside _decode.
    assert_eq!(lay(1, 8, 131072), layout(One, 32, true));
    // With one head per CTA and fewer CTAs than SMs the splits are num_splits'.
    for (b, kv, ctx) in [(1, 8, 30000), (3, 8, 20000), (16, 8, 16384), (8, 8, 4096), (5, 3, 9000)] {
        let l = lay(b, kv, ctx);
        assert_eq!(l.kernel, One, "{b} {kv} {ctx}");
        assert_eq!(l.splits, num_splits(b, kv, ctx, 0, 0, BF16_HD128), "{b} {kv} {ctx}");
        assert_eq!(l.fused_merge, fuses_merge(b, kv, l.splits, 132, 2), "{b} {kv} {ctx}");
    }
    // The pair's own slots decide: 96 x 2048 is 384 pair CTAs, one wave
    // at 3 a SM, but more than the 264 slots at 2 a SM.
    let lay96 = |ctas_per_sm| {
        let pair = EntryOccupancy { ctas_per_sm, ..BF16_HD128_PAIR };
        let p = DecodeProblem { batch: 96, kv_heads: 8, max_context: 2048, ..Default::default() };
        decode_layout(&p, 132, kernels(BF16_HD128, BF16_HD128_UNSPLIT, pair, false))
    };
    assert_eq!(lay96(3), layout(Pair, 1, false));
    assert_eq!(lay96(2), layout(Unsplit, 1, false));
    // A window bounds the work, not the CTAs: 64 windowed sequences pair too.
    let windowed = DecodeProblem { batch: 64, kv_heads: 8, max_context: 131072, window: 4000, sink: 0 };
    let hd128 = kernels(BF16_HD128, BF16_HD128_UNSPLIT, BF16_HD128_PAIR, false);
    assert_eq!(decode_layout(&windowed, 132, hd128), lay(64, 8, 4000 + 32));
    // Degenerate device numbers do not panic.
    let none = EntryOccupancy::default();
    for pair_splits in [false, true] {
        let l = decode_layout(&DecodeProblem::default(), 0, kernels(none, none, none, pair_splits));
        assert_eq!(l, layout(One, 1, false));
    }
    // Without pair splits (every cell but hd80 / hd96 on sm90+), _decode_pair
    // has no split code: two heads per CTA only ever with one split.
    for batch in [1, 2, 3, 7, 16, 33, 64, 96, 128, 256] {
        for kv_heads in [1, 2, 4, 6, 8, 16] {
            for max_context in [0, 1, 100, 1600, 4096, 20000, 131072] {
                for (sm, occ, pair_occ) in [(132, 2, 3), (108, 2, 2), (58, 1, 3), (1, 1, 1)] {
                    let p = DecodeProblem { batch, kv_heads, max_context, ..Default::default() };
                    let one = EntryOccupancy { ctas_per_sm: occ, smem_bytes: 98560 };
                    let pair = EntryOccupancy { ctas_per_sm: pair_occ, smem_bytes: 65792 };
                    let l = decode_layout(&p, sm, kernels(one, pair, pair, false));
                    assert!(l.kernel == One || l.splits == 1, "{l:?} for {p:?}");
                }
            }
        }
    }
}

#[test]
fn decode_layout_runs_unsplit_launches_of_many_ctas() {
    let lay = |batch, kv_heads, max_context| h100_layout(batch, kv_heads, max_context, false);
    // One split, more CTAs than SMs: _decode_unsplit's 2-stage ring at 3 a
    // SM (H100, 24 x 4096: 148.4 µs against 153.5 for _decode).
    for b in [17, 24, 32, 48] {
        assert_eq!(num_splits(b, 8, 4096, 0, 0, BF16_HD128), 1, "{b}");
        assert_eq!(lay(b, 8, 4096), layout(Unsplit, 1, false), "{b} x 4096");
    }
    assert_eq!(lay(256, 8, 1024), layout(Unsplit, 1, false));
    // Up to as many CTAs as SMs, _decode's deeper ring (16 x 4096: 104.1
    // against 108.1 µs unsplit).
    assert_eq!(lay(16, 8, 4096), layout(One, 1, false));
    assert_eq!(lay(33, 4, 4096), layout(One, 1, false));
    // Where _decode would split a wave and a half into two or four, one
    // wave of unsplit CTAs: 40 x 4096 (H100: 238.8 µs against 243.3 for
    // _decode's two splits; H200 165.9 against 174.5).
    for (b, ctx, s) in [(34, 1024, 2), (40, 4096, 2), (49, 32768, 2), (36, 8192, 4)] {
        assert_eq!(num_splits(b, 8, ctx, 0, 0, BF16_HD128), s, "{b} x {ctx}");
        assert_eq!(lay(b, 8, ctx), layout(Unsplit, 1, false), "{b} x {ctx}");
    }
    // More CTAs than one unsplit wave keep _decode's splits: 76 sequences
    // of 7 kv heads (532 CTAs; 396 slots) in four.
    assert_eq!(lay(76, 7, 4096), layout(One, 4, false));
    // Where both entries have one ring (e4m3 hd128: 3 stages, 3 CTAs a SM)
    // the unsplit one serves every launch of one split, however few CTAs.
    let e4m3 = |batch, kv_heads, max_context| {
        let p = DecodeProblem { batch, kv_heads, max_context, ..Default::default() };
        decode_layout(&p, 132, kernels(E4M3_HD128, E4M3_HD128, BF16_HD128_PAIR, false))
    };
    assert_eq!(e4m3(1, 1, 300), layout(Unsplit, 1, false));
    assert_eq!(e4m3(32, 7, 1024), layout(Unsplit, 1, false));
    assert_eq!(e4m3(1, 8, 131072), layout(One, 41, true));
    // An entry of no occupancy is never launched.
    let none = EntryOccupancy::default();
    let p = DecodeProblem { batch: 32, kv_heads: 8, max_context: 4096, ..Default::default() };
    assert_eq!(decode_layout(&p, 132, kernels(BF16_HD128, none, BF16_HD128_PAIR, false)), layout(One, 1, false));
    // Never more than one split unsplit, on any device numbers.
    for batch in [1, 5, 17, 40, 64, 200] {
        for kv_heads in [1, 3, 8] {
            for max_context in [0, 100, 4096, 131072] {
                for (sm, occ, unsplit_occ) in [(132, 2, 3), (108, 2, 2), (58, 1, 3), (1, 1, 1)] {
                    let p = DecodeProblem { batch, kv_heads, max_context, ..Default::default() };
                    let one = EntryOccupancy { ctas_per_sm: occ, smem_bytes: 98560 };
                    let unsplit = EntryOccupancy { ctas_per_sm: unsplit_occ, smem_bytes: 65792 };
                    let l = decode_layout(&p, sm, kernels(one, unsplit, BF16_HD128_PAIR, false));
                    assert!(l.kernel != Unsplit || (l.splits == 1 && !l.fused_merge), "{l:?} for {p:?}");
                }
            }
        }
    }
}

#[test]
fn decode_layout_pairs_every_even_head_count_where_pairs_split() {
    // hd80 / hd96: pairs with splits.
    let lay = |batch, kv_heads, max_context| h100_layout(batch, kv_heads, max_context, true);
    // Splits costed on the pair's 396 slots and 72 KiB rings for 4 pair CTAs
    // a sequence of 32-token tiles: 64 splits (256 CTAs), merged inside.
    assert_eq!(lay(1, 8, 131072), layout(Pair, 64, true));
    assert_eq!(lay(8, 8, 4096), layout(Pair, 8, true));
    assert_eq!(lay(2, 8, 65536), layout(Pair, 32, true));
    // The bench batch needs no split, as before.
    assert_eq!(lay(64, 8, 4096), layout(Pair, 1, false));
    // 100 x 4096: 400 pair CTAs are a wave and 4 more, which would stream
    // a whole context alone; four splits (1600 CTAs) over several waves,
    // merged by _decode_merge (the pair's 396 slots cannot hold them).
    assert_eq!(lay(100, 8, 4096), layout(Pair, 4, false));
    assert_eq!(lay(75, 8, 1400), layout(Pair, 1, false));
    // The split count follows the launched entry's occupancy: 2 x 131072
    // takes 32 splits of 8 pair CTAs (256) at 3 a SM, 16 (128) at 1 a SM.
    let two = DecodeProblem { batch: 2, kv_heads: 8, max_context: 131072, ..Default::default() };
    let pair_at = |ctas_per_sm| EntryOccupancy { ctas_per_sm, ..BF16_HD96_PAIR };
    let hd96 = |ctas_per_sm| kernels(BF16_HD128, BF16_HD128_UNSPLIT, pair_at(ctas_per_sm), true);
    assert_eq!(decode_layout(&two, 132, hd96(3)), layout(Pair, 32, true));
    assert_eq!(decode_layout(&two, 132, hd96(1)), layout(Pair, 16, true));
    // Odd kv head counts keep one head a CTA and its own split count
    // (448 CTAs of one split: unsplit).
    for (b, kv, ctx) in [(1, 1, 131072), (4, 3, 20000)] {
        let l = lay(b, kv, ctx);
        assert_eq!(l.kernel, One, "{b} {kv} {ctx}");
        assert_eq!(l.splits, num_splits(b, kv, ctx, 0, 0, BF16_HD128), "{b} {kv} {ctx}");
    }
    assert_eq!(lay(64, 7, 4096), layout(Unsplit, 1, false));
    // Pair splits are the model's for half the CTAs and half-size tiles.
    for (b, kv, ctx) in [(1, 8, 30000), (3, 8, 20000), (16, 8, 16384), (40, 2, 1600), (5, 32, 9000)] {
        let l = lay(b, kv, ctx);
        let want = model_splits(b * kv / 2, ctx.div_ceil(32), 32, 396, BF16_HD96_PAIR.smem_bytes);
        assert_eq!((l.kernel, l.splits), (Pair, want), "{b} {kv} {ctx}");
        assert_eq!(l.fused_merge, fuses_merge(b, kv / 2, l.splits, 132, 3), "{b} {kv} {ctx}");
    }
}

#[test]
fn workspace_layout() {
    let (bytes, lse_off) = workspace_bytes(4, 2, 32, 128);
    assert_eq!(lse_off, 4 * 2 * 32 * 128 * 4);
    assert_eq!(bytes, lse_off + 4 * 2 * 32 * 4);
    let (bytes, lse_off) = workspace_bytes(3, 1, 1, 80);
    assert_eq!(lse_off % 256, 0);
    assert!(lse_off >= 3 * 80 * 4);
    assert_eq!(bytes, lse_off + 12);
}

#[test]
fn routing() {
    let decode = spec(|b| b.paged().gqa(4).causal());
    assert!(uses_decode(&decode, 1));
    assert!(!uses_decode(&decode, 2)); // s_q > 1: the forward kernel
    assert!(!uses_decode(&spec(|b| b.paged().varlen()), 1)); // chunked prefill
    assert!(!uses_decode(&spec(|b| b.gqa(4)), 1)); // not paged

    // fp8 cells decode too, except at hd80 (80-byte rows, fa_spec::paged_decode).
    let fp8 = |d, hd| KernelSpec::builder().arch(Arch::Sm90a).dtype(d).head_dim(hd).paged().build().unwrap();
    for hd in [64, 96, 128, 192, 256] {
        assert!(uses_decode(&fp8(Dtype::E4m3, hd), 1) && uses_decode(&fp8(Dtype::E5m2, hd), 1), "fp8 hd{hd}");
    }
    assert!(!uses_decode(&fp8(Dtype::E4m3, 80), 1) && !uses_decode(&fp8(Dtype::E5m2, 80), 1));
    assert!(!uses_decode(&fp8(Dtype::E4m3, 128), 2));
}

#[test]
fn paged_sources_carry_every_entry_point() {
    let sp = spec(|b| b.paged().page_size(1).gqa(8).window(64).sink(4));
    let src = fa_spec::render(&sp).unwrap();
    let n = sp.kernel_name();
    for e in [
        "_fwd(",
        "_decode(",
        "_decode_unsplit(",
        "_decode_pair(",
        "_decode_merge(",
        "_append(",
        "_decode_smem_bytes",
        "_decode_unsplit_smem_bytes",
        "_decode_pair_smem_bytes",
    ] {
        assert!(src.contains(&format!("{n}{e}")), "missing {n}{e}");
    }
    // fp8: the decode entries too, but not at hd80 (fa_spec::paged_decode).
    for (hd, decodes) in [(128, true), (80, false)] {
        let fp8 = KernelSpec::builder().arch(Arch::Sm90a).dtype(Dtype::E4m3).head_dim(hd).paged().build().unwrap();
        let src = fa_spec::render(&fp8).unwrap();
        let n = fp8.kernel_name();
        assert!(src.contains(&format!("{n}_append(")) && src.contains(&format!("{n}_fwd(")));
        for e in ["_decode(const", "_decode_unsplit(const", "_decode_pair(const", "_decode_merge(const"] {
            assert_eq!(src.contains(&format!("{n}{e}")), decodes, "fp8 hd{hd}: {n}{e}");
        }
    }
    // Dense cells carry none of it.
    let dense = spec(|b| b.causal());
    assert!(!fa_spec::render(&dense).unwrap().contains("PagedDecodeParams"));
}

#[test]
fn the_merge_is_fused_when_every_split_is_resident_at_once() {
    // 132 SMs at 3 decode CTAs per SM (396 slots; hd128 has 2 since its
    // 3-stage ring, but the rule is the same).
    let fused = |batch, splits| fuses_merge(batch, 8, splits, 132, 3);
    assert!(fused(1, 49), "1 x 131072: 8 heads x 49 splits = 392 CTAs, one wave");
    assert!(!fused(1, 50), "400 CTAs: two waves");
    assert!(!fused(64, 3), "64 x 4096: 1536 CTAs, four waves");
    assert!(!fused(1, 1) && !fused(64, 1), "one split: nothing to merge");
    assert!(fused(3, 16));
}

#[test]
fn decode_threads_follow_the_rendered_warps() {
    let cell = |arch, hd| KernelSpec::builder().arch(arch).dtype(Dtype::Bf16).head_dim(hd).paged().build().unwrap();
    // hd256 on sm89: a 2-stage ring of 64-row tiles (128 KiB) exceeds 99 KiB, so 2 warps.
    assert_eq!(fa_runtime::paged::decode_threads(&cell(Arch::Sm89, 256)), 64);
    for (arch, hd) in [(Arch::Sm89, 192), (Arch::Sm80, 256), (Arch::Sm90a, 256), (Arch::Sm90a, 128)] {
        assert_eq!(fa_runtime::paged::decode_threads(&cell(arch, hd)), 128, "{arch:?} hd{hd}");
    }
    // The launch count is the one the source was rendered with.
    let spec = cell(Arch::Sm89, 256);
    let src = fa_spec::render(&spec).unwrap();
    assert!(src.contains(&format!("#define PD_WARPS {}", fa_runtime::paged::decode_threads(&spec) / 32)));
}
