//! Host-only checks: argument validation, the FwdParams ABI and the library
//! probe. No GPU, no NVRTC.

use fa_runtime::libs::{probe_nvrtc_in, Candidate, SearchPaths};
use fa_runtime::validate::{validate_forward, ArgMeta, FwdOptions, FwdShapes};
use fa_runtime::{ElemType, FaError, FwdParams, KernelSpec, QkvLayout};
use fa_spec::{Arch, Dtype};
use std::mem::offset_of;

mod c_header;
use c_header::c_fields;

type Mutation = Box<dyn Fn(&mut Shapes)>;

const DEV: (u64, usize) = (7, 0);

fn m(shape: &[usize], elem: ElemType) -> ArgMeta<'_> {
    ArgMeta { shape, elem, device_id: DEV.0, ordinal: DEV.1 }
}

fn spec(f: impl FnOnce(fa_spec::SpecBuilder) -> fa_spec::SpecBuilder) -> KernelSpec {
    f(KernelSpec::builder().arch(Arch::Sm90a).dtype(Dtype::Bf16).head_dim(128)).build().unwrap()
}

struct Shapes {
    q: Vec<usize>,
    k: Vec<usize>,
    v: Vec<usize>,
    out: Vec<usize>,
    lse: Vec<usize>,
}

fn dense(b: usize, sq: usize, sk: usize, h: usize, hk: usize, d: usize) -> Shapes {
    Shapes {
        q: vec![b, sq, h, d],
        k: vec![b, sk, hk, d],
        v: vec![b, sk, hk, d],
        out: vec![b, sq, h, d],
        lse: vec![b, h, sq],
    }
}

fn shapes<'a>(s: &'a Shapes, e: ElemType) -> FwdShapes<'a> {
    FwdShapes {
        q: m(&s.q, e),
        k: m(&s.k, e),
        v: m(&s.v, e),
        out: m(&s.out, e),
        lse: m(&s.lse, ElemType::F32),
        cu_seqlens_q: None,
        cu_seqlens_k: None,
        block_table: None,
        context_lens: None,
        alibi_slopes: None,
        q_descale: None,
        k_descale: None,
        v_descale: None,
    }
}

fn shape_err(r: fa_runtime::Result<fa_runtime::validate::FwdPlan>) -> &'static str {
    match r {
        Err(FaError::Shape { arg, .. }) => arg,
        other => panic!("expected a shape error, got {other:?}"),
    }
}

#[test]
fn dense_plan_has_grid_strides_and_scale() {
    let sp = spec(|b| b.gqa(4));
    let s = dense(2, 300, 500, 8, 2, 128);
    let p = validate_forward(&sp, &shapes(&s, ElemType::Bf16), &FwdOptions::default(), DEV).unwrap();
    let tile = fa_spec::tile_config(&sp);
    assert_eq!(p.grid, (300u32.div_ceil(tile.block_m), 8, 2));
    assert_eq!(p.block, tile.num_warps * 32);
    assert_eq!(p.smem_bytes, tile.smem_bytes(&sp));
    assert_eq!((p.batch, p.num_heads, p.num_kv_heads, p.seqlen_q, p.seqlen_k), (2, 8, 2, 300, 500));
    assert_eq!(p.q_strides, [300 * 8 * 128, 8 * 128, 128]);
    assert_eq!(p.k_strides, [500 * 2 * 128, 2 * 128, 128]);
    assert_eq!(p.o_strides, p.q_strides);
    assert!((p.softmax_scale - 1.0 / 128f32.sqrt()).abs() < 1e-7);
    let p2 = validate_forward(&sp, &shapes(&s, ElemType::Bf16), &FwdOptions::new().softmax_scale(0.5), DEV).unwrap();
    assert_eq!(p2.softmax_scale, 0.5);
}

#[test]
fn head_major_layout_reads_b_h_s_d_through_strides() {
    let sp = spec(|b| b.gqa(4));
    let hm = FwdOptions::new().layout(QkvLayout::HeadMajor);
    let s = Shapes {
        q: vec![2, 8, 300, 128],
        k: vec![2, 2, 500, 128],
        v: vec![2, 2, 500, 128],
        out: vec![2, 8, 300, 128],
        lse: vec![2, 8, 300],
    };
    let p = validate_forward(&sp, &shapes(&s, ElemType::Bf16), &hm, DEV).unwrap();
    assert_eq!((p.batch, p.num_heads, p.num_kv_heads, p.seqlen_q, p.seqlen_k), (2, 8, 2, 300, 500));
    // (batch, row, head) strides of [b, h, s, d]
    assert_eq!(p.q_strides, [8 * 300 * 128, 128, 300 * 128]);
    assert_eq!(p.k_strides, [2 * 500 * 128, 128, 500 * 128]);
    assert_eq!(p.o_strides, p.q_strides);
    assert_eq!(p.grid.1, 8);
    // Read as sequence-major, q would be 300 heads and k then does not fit.
    assert_eq!(shape_err(validate_forward(&sp, &shapes(&s, ElemType::Bf16), &FwdOptions::default(), DEV)), "k");
    // k in the other layout is named in the error.
    let mut bad = Shapes { k: vec![2, 500, 2, 128], ..s };
    bad.v = bad.k.clone();
    assert_eq!(shape_err(validate_forward(&sp, &shapes(&bad, ElemType::Bf16), &hm, DEV)), "k");
    // varlen and paged cells have their own layouts.
    for cell in [spec(|b| b.varlen()), spec(|b| b.paged())] {
        let s = dense(1, 4, 4, 1, 1, 128);
        match validate_forward(&cell, &shapes(&s, ElemType::Bf16), &hm, DEV) {
            Err(FaError::Argument { arg: "options.layout", .. }) => {}
            other => panic!("{}: expected an options.layout error, got {other:?}", cell.kernel_name()),
        }
    }
}

#[test]
fn every_tensor_shape_is_checked() {
    let sp = spec(|b| b.gqa(2));
    let good = dense(2, 16, 32, 4, 2, 128);
    let o = FwdOptions::default();
    let cases: Vec<(&str, Mutation)> = vec![
        ("q", Box::new(|s| s.q = vec![2, 16, 4])), // rank
        ("q", Box::new(|s| s.q[3] = 64)),          // head_dim
        ("q", Box::new(|s| s.q[2] = 3)),           // heads not multiple of gqa
        ("k", Box::new(|s| s.k[2] = 4)),           // h_k != h / gqa
        ("k", Box::new(|s| s.k[0] = 3)),           // batch
        ("v", Box::new(|s| s.v[1] = 31)),          // v != k
        ("out", Box::new(|s| s.out[1] = 15)),
        ("lse", Box::new(|s| s.lse = vec![2, 16, 4])), // [b, s_q, h] instead of [b, h, s_q]
    ];
    for (arg, f) in cases {
        let mut s = dense(2, 16, 32, 4, 2, 128);
        f(&mut s);
        assert_eq!(shape_err(validate_forward(&sp, &shapes(&s, ElemType::Bf16), &o, DEV)), arg);
    }
    validate_forward(&sp, &shapes(&good, ElemType::Bf16), &o, DEV).unwrap();
}

#[test]
fn dtypes_and_devices_are_checked() {
    let sp = spec(|b| b);
    let s = dense(1, 4, 4, 2, 2, 128);
    let o = FwdOptions::default();
    let e = validate_forward(&sp, &shapes(&s, ElemType::F16), &o, DEV).unwrap_err();
    assert!(matches!(e, FaError::Dtype { arg: "q", expected: "bf16", found: "f16" }), "{e}");
    let mut sh = shapes(&s, ElemType::Bf16);
    sh.lse.elem = ElemType::Bf16;
    assert!(matches!(validate_forward(&sp, &sh, &o, DEV), Err(FaError::Dtype { arg: "lse", .. })));
    let mut sh = shapes(&s, ElemType::Bf16);
    sh.v.device_id = 99;
    sh.v.ordinal = 1;
    let e = validate_forward(&sp, &sh, &o, DEV).unwrap_err();
    assert!(matches!(e, FaError::WrongDevice { arg: "v", expected: 0, found: 1 }), "{e}");
    let o = FwdOptions::new().softmax_scale(f32::NAN);
    assert!(matches!(validate_forward(&sp, &shapes(&s, ElemType::Bf16), &o, DEV), Err(FaError::Argument { .. })));
}

#[test]
fn fp8_cells_write_bf16_and_check_descales() {
    let sp = KernelSpec::builder().arch(Arch::Sm90a).dtype(Dtype::E4m3).head_dim(128).build().unwrap();
    let s = dense(2, 8, 8, 4, 4, 128);
    let o = FwdOptions::default();
    let mut sh = shapes(&s, ElemType::F8E4M3);
    assert!(matches!(validate_forward(&sp, &sh, &o, DEV), Err(FaError::Dtype { arg: "out", expected: "bf16", .. })));
    sh.out.elem = ElemType::Bf16;
    validate_forward(&sp, &sh, &o, DEV).unwrap();
    let good = [2usize, 4];
    let bad = [4usize, 2];
    sh.k_descale = Some(m(&good, ElemType::F32));
    validate_forward(&sp, &sh, &o, DEV).unwrap();
    sh.v_descale = Some(m(&bad, ElemType::F32));
    assert_eq!(shape_err(validate_forward(&sp, &sh, &o, DEV)), "v_descale");
    // Descales on a non-fp8 cell are refused.
    let bf = spec(|b| b);
    let mut sh = shapes(&s, ElemType::Bf16);
    sh.q_descale = Some(m(&good, ElemType::F32));
    assert!(matches!(validate_forward(&bf, &sh, &o, DEV), Err(FaError::Argument { arg: "q_descale", .. })));
}

#[test]
fn varlen_needs_offsets_and_max_seqlens() {
    let sp = spec(|b| b.varlen().causal());
    let q = [100usize, 4, 128];
    let k = [150usize, 4, 128];
    let lse = [4usize, 100];
    let cu = [4usize];
    let mut sh = FwdShapes {
        q: m(&q, ElemType::Bf16),
        k: m(&k, ElemType::Bf16),
        v: m(&k, ElemType::Bf16),
        out: m(&q, ElemType::Bf16),
        lse: m(&lse, ElemType::F32),
        cu_seqlens_q: None,
        cu_seqlens_k: None,
        block_table: None,
        context_lens: None,
        alibi_slopes: None,
        q_descale: None,
        k_descale: None,
        v_descale: None,
    };
    let o = FwdOptions::new().max_seqlens(60, 90);
    assert!(matches!(validate_forward(&sp, &sh, &o, DEV), Err(FaError::Argument { arg: "cu_seqlens_q", .. })));
    sh.cu_seqlens_q = Some(m(&cu, ElemType::I32));
    sh.cu_seqlens_k = Some(m(&cu, ElemType::I32));
    let p = validate_forward(&sp, &sh, &o, DEV).unwrap();
    assert_eq!((p.batch, p.seqlen_q, p.seqlen_k), (3, 60, 90));
    assert_eq!(p.q_strides, [0, 4 * 128, 128]);
    assert_eq!(p.k_strides, [0, 4 * 128, 128]);
    let tile = fa_spec::tile_config(&sp);
    assert_eq!(p.grid, (60u32.div_ceil(tile.block_m), 4, 3));
    // Missing max_seqlen.
    let e = validate_forward(&sp, &sh, &FwdOptions::default(), DEV).unwrap_err();
    assert!(matches!(e, FaError::Argument { arg: "options.max_seqlen_k" | "options.max_seqlen_q", .. }), "{e}");
    assert!(e.to_string().contains("FwdOptions::max_seqlen"), "{e}");
    // max_seqlen longer than everything.
    let e = validate_forward(&sp, &sh, &FwdOptions::new().max_seqlens(101, 90), DEV).unwrap_err();
    assert!(matches!(e, FaError::Argument { arg: "options.max_seqlen_q", .. }), "{e}");
    // cu_seqlens_k of another batch.
    let cu5 = [5usize];
    sh.cu_seqlens_k = Some(m(&cu5, ElemType::I32));
    assert_eq!(shape_err(validate_forward(&sp, &sh, &o, DEV)), "cu_seqlens_k");
    sh.cu_seqlens_k = Some(m(&cu, ElemType::I32));
    // Dense q on a varlen cell.
    let q4 = [1usize, 100, 4, 128];
    sh.q = m(&q4, ElemType::Bf16);
    assert_eq!(shape_err(validate_forward(&sp, &sh, &o, DEV)), "q");
    // offsets given to a non-varlen cell.
    let dsp = spec(|b| b);
    let s = dense(3, 4, 4, 4, 4, 128);
    let mut sh = shapes(&s, ElemType::Bf16);
    sh.cu_seqlens_q = Some(m(&cu, ElemType::I32));
    assert!(matches!(validate_forward(&dsp, &sh, &o, DEV), Err(FaError::Argument { arg: "cu_seqlens_q", .. })));
}

#[test]
fn paged_checks_pages_and_tables() {
    let sp = spec(|b| b.paged().page_size(16).gqa(2));
    let q = [2usize, 5, 4, 128];
    let kc = [64usize, 16, 2, 128];
    let lse = [2usize, 4, 5];
    let bt = [2usize, 8];
    let cl = [2usize];
    let mut sh = FwdShapes {
        q: m(&q, ElemType::Bf16),
        k: m(&kc, ElemType::Bf16),
        v: m(&kc, ElemType::Bf16),
        out: m(&q, ElemType::Bf16),
        lse: m(&lse, ElemType::F32),
        cu_seqlens_q: None,
        cu_seqlens_k: None,
        block_table: Some(m(&bt, ElemType::I32)),
        context_lens: Some(m(&cl, ElemType::I32)),
        alibi_slopes: None,
        q_descale: None,
        k_descale: None,
        v_descale: None,
    };
    let o = FwdOptions::default();
    let p = validate_forward(&sp, &sh, &o, DEV).unwrap();
    assert_eq!((p.seqlen_k, p.block_table_stride), (8 * 16, 8));
    assert_eq!(p.decode_context, 8 * 16, "no hint: the table's bound");
    assert_eq!(p.k_strides, [16 * 2 * 128, 2 * 128, 128]);
    // max_seqlen_k is a hint for the decode splits, capped by the table.
    let hinted = |n| validate_forward(&sp, &sh, &FwdOptions { max_seqlen_k: Some(n), ..o }, DEV).unwrap();
    assert_eq!((hinted(40).decode_context, hinted(40).seqlen_k), (40, 8 * 16));
    assert_eq!(hinted(1 << 20).decode_context, 8 * 16);
    let wrong_page = [64usize, 32, 2, 128];
    sh.k = m(&wrong_page, ElemType::Bf16);
    assert_eq!(shape_err(validate_forward(&sp, &sh, &o, DEV)), "k");
    sh.k = m(&kc, ElemType::Bf16);
    let bt_bad = [3usize, 8];
    sh.block_table = Some(m(&bt_bad, ElemType::I32));
    assert_eq!(shape_err(validate_forward(&sp, &sh, &o, DEV)), "block_table");
    sh.block_table = Some(m(&bt, ElemType::I32));
    let cl_bad = [3usize];
    sh.context_lens = Some(m(&cl_bad, ElemType::I32));
    assert_eq!(shape_err(validate_forward(&sp, &sh, &o, DEV)), "context_lens");
    sh.context_lens = None;
    assert!(matches!(validate_forward(&sp, &sh, &o, DEV), Err(FaError::Argument { arg: "context_lens", .. })));
    sh.context_lens = Some(m(&cl, ElemType::F32));
    assert!(matches!(validate_forward(&sp, &sh, &o, DEV), Err(FaError::Dtype { arg: "context_lens", .. })));
}

#[test]
fn alibi_slopes_are_per_query_head() {
    let sp = spec(|b| b.alibi().gqa(2));
    let s = dense(1, 4, 4, 4, 2, 128);
    let o = FwdOptions::default();
    let mut sh = shapes(&s, ElemType::Bf16);
    assert!(matches!(validate_forward(&sp, &sh, &o, DEV), Err(FaError::Argument { arg: "alibi_slopes", .. })));
    let per_kv = [2usize];
    sh.alibi_slopes = Some(m(&per_kv, ElemType::F32));
    assert_eq!(shape_err(validate_forward(&sp, &sh, &o, DEV)), "alibi_slopes");
    let per_q = [4usize];
    sh.alibi_slopes = Some(m(&per_q, ElemType::F32));
    validate_forward(&sp, &sh, &o, DEV).unwrap();
}

#[test]
fn sizes_beyond_the_kernel_index_range_are_refused() {
    let sp = spec(|b| b);
    let s = dense(70000, 1, 1, 1, 1, 128);
    let e = validate_forward(&sp, &shapes(&s, ElemType::Bf16), &FwdOptions::default(), DEV).unwrap_err();
    assert!(matches!(e, FaError::Argument { arg: "q", .. }), "{e}");
    let s = dense(1, (i32::MAX as usize) + 1, 1, 1, 1, 128);
    let e = validate_forward(&sp, &shapes(&s, ElemType::Bf16), &FwdOptions::default(), DEV).unwrap_err();
    assert!(matches!(e, FaError::Argument { .. }), "{e}");
}

#[test]
fn empty_problems_plan_no_launch() {
    let sp = spec(|b| b);
    let s = dense(0, 16, 16, 2, 2, 128);
    assert!(validate_forward(&sp, &shapes(&s, ElemType::Bf16), &FwdOptions::default(), DEV).unwrap().is_empty());
    let s = dense(2, 0, 16, 2, 2, 128);
    assert!(validate_forward(&sp, &shapes(&s, ElemType::Bf16), &FwdOptions::default(), DEV).unwrap().is_empty());
    let s = dense(2, 16, 0, 2, 2, 128);
    assert!(!validate_forward(&sp, &shapes(&s, ElemType::Bf16), &FwdOptions::default(), DEV).unwrap().is_empty());
}

#[test]
fn fwd_params_match_the_c_layout() {
    // templates/partials/params.cuh on a 64-bit target.
    assert_eq!(std::mem::size_of::<FwdParams>(), 232);
    assert_eq!(std::mem::align_of::<FwdParams>(), 8);
    let ptrs = [
        offset_of!(FwdParams, q),
        offset_of!(FwdParams, k),
        offset_of!(FwdParams, v),
        offset_of!(FwdParams, o),
        offset_of!(FwdParams, lse),
        offset_of!(FwdParams, cu_seqlens_q),
        offset_of!(FwdParams, cu_seqlens_k),
        offset_of!(FwdParams, block_table),
        offset_of!(FwdParams, seqused_k),
        offset_of!(FwdParams, alibi_slopes),
        offset_of!(FwdParams, q_descale),
        offset_of!(FwdParams, k_descale),
        offset_of!(FwdParams, v_descale),
    ];
    for (i, o) in ptrs.iter().enumerate() {
        assert_eq!(*o, 8 * i);
    }
    let strides = [
        offset_of!(FwdParams, q_batch_stride),
        offset_of!(FwdParams, q_row_stride),
        offset_of!(FwdParams, q_head_stride),
        offset_of!(FwdParams, k_batch_stride),
        offset_of!(FwdParams, k_row_stride),
        offset_of!(FwdParams, k_head_stride),
        offset_of!(FwdParams, v_batch_stride),
        offset_of!(FwdParams, v_row_stride),
        offset_of!(FwdParams, v_head_stride),
        offset_of!(FwdParams, o_batch_stride),
        offset_of!(FwdParams, o_row_stride),
        offset_of!(FwdParams, o_head_stride),
    ];
    for (i, o) in strides.iter().enumerate() {
        assert_eq!(*o, 104 + 8 * i);
    }
    let ints = [
        offset_of!(FwdParams, batch),
        offset_of!(FwdParams, num_heads),
        offset_of!(FwdParams, num_kv_heads),
        offset_of!(FwdParams, seqlen_q),
        offset_of!(FwdParams, seqlen_k),
        offset_of!(FwdParams, block_table_stride),
        offset_of!(FwdParams, softmax_scale),
        offset_of!(FwdParams, scale_log2),
    ];
    for (i, o) in ints.iter().enumerate() {
        assert_eq!(*o, 200 + 4 * i);
    }
}

#[test]
fn params_header_still_matches_the_mirror() {
    let names = c_fields(include_str!("../../templates/partials/params.cuh"), "FwdParams");
    let expected = [
        "q",
        "k",
        "v",
        "o",
        "lse",
        "cu_seqlens_q",
        "cu_seqlens_k",
        "block_table",
        "seqused_k",
        "alibi_slopes",
        "q_descale",
        "k_descale",
        "v_descale",
        "q_batch_stride",
        "q_row_stride",
        "q_head_stride",
        "k_batch_stride",
        "k_row_stride",
        "k_head_stride",
        "v_batch_stride",
        "v_row_stride",
        "v_head_stride",
        "o_batch_stride",
        "o_row_stride",
        "o_head_stride",
        "batch",
        "num_heads",
        "num_kv_heads",
        "seqlen_q",
        "seqlen_k",
        "block_table_stride",
        "softmax_scale",
        "scale_log2",
    ];
    assert_eq!(names, expected, "templates/partials/params.cuh changed: update fa-runtime/src/params.rs");
}

#[test]
fn library_probe_reports_what_it_searched() {
    let empty = std::env::temp_dir().join(format!("fa-runtime-empty-{}", std::process::id()));
    std::fs::create_dir_all(&empty).unwrap();
    // Explicit FA_NVRTC_PATH pointing at an empty folder: nothing else is tried.
    let paths =
        SearchPaths { explicit: Some(empty.clone()), toolkit_roots: vec![], site_packages: vec![], sonames: true };
    assert!(paths.nvrtc_candidates().is_empty());
    let e = probe_nvrtc_in(&paths).unwrap_err();
    match &e {
        FaError::LibraryNotFound { lib, searched, hint } => {
            assert!(lib.contains("nvrtc"));
            assert!(searched.iter().any(|s| s.contains("FA_NVRTC_PATH")), "{searched:?}");
            assert!(hint.contains("pip install nvidia-cuda-nvrtc"));
        }
        other => panic!("{other:?}"),
    }
    assert!(e.to_string().contains("FA_NVRTC_PATH"));
    // No explicit path, empty roots, no sonames: a typed error, no panic.
    let paths = SearchPaths {
        explicit: None,
        toolkit_roots: vec![empty.clone()],
        site_packages: vec![empty.clone()],
        sonames: false,
    };
    assert!(matches!(probe_nvrtc_in(&paths), Err(FaError::LibraryNotFound { .. })));
    // A file that is not a library is reported with the loader's reason.
    let bogus = empty.join("libnvrtc.so.13");
    std::fs::write(&bogus, b"not an ELF").unwrap();
    let paths = SearchPaths { explicit: Some(empty.clone()), ..Default::default() };
    assert_eq!(paths.nvrtc_candidates(), vec![Candidate::File(bogus.clone())]);
    match probe_nvrtc_in(&paths).unwrap_err() {
        FaError::LibraryNotFound { searched, .. } => {
            assert!(searched.iter().any(|s| s.contains("tried")), "{searched:?}")
        }
        other => panic!("{other:?}"),
    }
    // The pip layout below a site folder is found.
    let site = empty.join("site");
    let lib = site.join("nvidia/cu13/lib");
    std::fs::create_dir_all(&lib).unwrap();
    std::fs::write(lib.join("libnvrtc.so.13"), b"x").unwrap();
    let paths = SearchPaths { site_packages: vec![site], ..Default::default() };
    assert_eq!(paths.nvrtc_candidates(), vec![Candidate::File(lib.join("libnvrtc.so.13"))]);
    let _ = std::fs::remove_dir_all(&empty);
}

#[test]
fn arch_compatibility_rules() {
    use fa_runtime::device::arch_runs_on;
    assert!(arch_runs_on(Arch::Sm80, (8, 0)));
    assert!(arch_runs_on(Arch::Sm80, (9, 0)));
    assert!(arch_runs_on(Arch::Sm80, (8, 6)));
    assert!(!arch_runs_on(Arch::Sm89, (8, 6)));
    assert!(arch_runs_on(Arch::Sm89, (9, 0)));
    assert!(arch_runs_on(Arch::Sm90a, (9, 0)));
    assert!(!arch_runs_on(Arch::Sm90a, (8, 0)));
    assert!(!arch_runs_on(Arch::Sm90a, (10, 0)));
    assert!(arch_runs_on(Arch::Sm100, (10, 0)));
    assert!(!arch_runs_on(Arch::Sm100, (9, 0)));
    let e = FaError::ArchUnsupported {
        kernel: "k".into(),
        arch: Arch::Sm90a,
        device_ordinal: 0,
        device_name: "NVIDIA A100".into(),
        device_cc: (8, 0),
    };
    let msg = e.to_string();
    assert!(msg.contains("sm90a") && msg.contains("8.0") && msg.contains("arch = sm80"), "{msg}");
}

#[test]
fn opening_a_device_never_panics() {
    // On a machine without the driver this is a typed LibraryNotFound; with
    // the driver and no GPU, NoDevice or a Cuda error; with a GPU, Ok.
    match fa_runtime::Device::new(0) {
        Ok(d) => assert!(!d.name().is_empty()),
        Err(e @ FaError::LibraryNotFound { .. }) => {
            let msg = e.to_string();
            assert!(msg.contains("libcuda") && msg.contains("NVIDIA driver"), "{msg}");
        }
        Err(FaError::NoDevice { .. } | FaError::Cuda { .. }) => {}
        Err(other) => panic!("unexpected error: {other}"),
    }
    match fa_runtime::Device::new(4096) {
        Ok(_) => panic!("device 4096 exists?"),
        Err(FaError::LibraryNotFound { .. } | FaError::NoDevice { .. } | FaError::Cuda { .. }) => {}
        Err(other) => panic!("unexpected error: {other}"),
    }
}
