//! The whitelist through its run-time front ends (builder and spec files).

use fa_spec::{parse_spec, tile_config, Arch, ArgValue, Dtype, KernelSpec, Rule, HEAD_DIMS};
use std::path::Path;

fn rules_of(b: fa_spec::SpecBuilder) -> Vec<Rule> {
    b.build().expect_err("cell should be rejected").rules().collect()
}

fn base() -> fa_spec::SpecBuilder {
    KernelSpec::builder().arch(Arch::Sm90a).dtype(Dtype::Bf16).head_dim(128)
}

#[test]
fn minimal_cell_has_defaults() {
    let s = base().build().unwrap();
    assert_eq!(s.gqa(), 1);
    assert!(!s.causal() && !s.is_causal_masked() && !s.paged() && !s.backward());
    assert_eq!(s.page_size(), None);
    assert_eq!(s.kernel_name(), "fa_sm90a_bf16_hd128_gqa1");
}

#[test]
fn kernel_name_encodes_every_field() {
    let s = KernelSpec::builder()
        .arch_str("sm80")
        .dtype_str("f16")
        .head_dim(256)
        .causal()
        .window(4096)
        .sink(4)
        .alibi()
        .softcap(30.5)
        .gqa(8)
        .varlen()
        .build()
        .unwrap();
    assert_eq!(s.kernel_name(), "fa_sm80_f16_hd256_causal_win4096_sink4_alibi_softcap30p5_gqa8_varlen");
    let p = base().paged().page_size(64).build().unwrap();
    assert_eq!(p.kernel_name(), "fa_sm90a_bf16_hd128_gqa1_paged64");
    assert_eq!(base().paged().build().unwrap().page_size(), Some(16));
    assert_eq!(base().backward().build().unwrap().kernel_name(), "fa_sm90a_bf16_hd128_gqa1_bwd");
}

#[test]
fn window_implies_causal_bound() {
    let s = base().window(128).build().unwrap();
    assert!(!s.causal());
    assert!(s.is_causal_masked());
}

#[test]
fn each_rule_is_reported() {
    assert_eq!(rules_of(base().arg("casual", ArgValue::Flag)), [Rule::UnknownKey]);
    assert_eq!(rules_of(base().causal().causal()), [Rule::DuplicateKey]);
    assert_eq!(rules_of(KernelSpec::builder().dtype(Dtype::F16).head_dim(64)), [Rule::MissingKey]);
    assert_eq!(rules_of(KernelSpec::builder()), [Rule::MissingKey; 3]);
    assert_eq!(rules_of(base().arg("causal", ArgValue::Int(3))), [Rule::ValueKind]);
    assert_eq!(rules_of(base().arg("head_dim", ArgValue::Flag)), [Rule::DuplicateKey]);
    assert_eq!(rules_of(KernelSpec::builder().arch_str("sm70").dtype(Dtype::F16).head_dim(64)), [Rule::UnknownArch]);
    assert_eq!(rules_of(KernelSpec::builder().arch(Arch::Sm80).dtype_str("f32").head_dim(64)), [Rule::UnknownDtype]);
    assert_eq!(rules_of(KernelSpec::builder().arch(Arch::Sm80).dtype(Dtype::F16).head_dim(100)), [Rule::HeadDim]);
    for arch in [Arch::Sm80, Arch::Sm89] {
        assert_eq!(rules_of(KernelSpec::builder().arch(arch).dtype(Dtype::E4m3).head_dim(128)), [Rule::Fp8Arch]);
    }
    assert_eq!(
        rules_of(KernelSpec::builder().arch(Arch::Sm90a).dtype(Dtype::E5m2).head_dim(128).backward()),
        [Rule::Fp8Backward]
    );
    assert_eq!(rules_of(base().sink(4)), [Rule::SinkWithoutMask]);
    assert!(base().sink(4).causal().build().is_ok());
    assert!(base().sink(4).window(64).build().is_ok());
    assert_eq!(rules_of(base().gqa(0)), [Rule::GqaRange]);
    assert_eq!(rules_of(base().window(0)), [Rule::WindowRange]);
    assert_eq!(rules_of(base().softcap(0.0)), [Rule::SoftcapRange]);
    assert_eq!(rules_of(base().softcap(-1.0)), [Rule::SoftcapRange]);
    assert_eq!(rules_of(base().softcap(f32::NAN)), [Rule::SoftcapRange]);
    assert_eq!(rules_of(base().paged().page_size(24)), [Rule::PageSize]);
    assert_eq!(rules_of(base().paged().page_size(512)), [Rule::PageSize]);
    assert_eq!(rules_of(base().paged().page_size(0)), [Rule::PageSize]);
    assert_eq!(rules_of(base().page_size(32)), [Rule::PageSizeWithoutPaged]);
    assert_eq!(rules_of(base().paged().backward()), [Rule::PagedBackward]);
}

#[test]
fn all_errors_of_one_cell_are_reported_together() {
    let e = KernelSpec::builder().arch_str("sm75").head_dim(100).gqa(0).page_size(3).build().unwrap_err();
    let rules: Vec<_> = e.rules().collect();
    assert_eq!(rules, [Rule::UnknownArch, Rule::HeadDim, Rule::GqaRange, Rule::PageSize, Rule::MissingKey]);
    let text = e.to_string();
    assert!(text.contains("unknown arch `sm75`"), "{text}");
    assert!(text.contains("missing `dtype`"), "{text}");
}

#[test]
fn messages_say_what_is_allowed() {
    let msg = |b: fa_spec::SpecBuilder| b.build().unwrap_err().0[0].1.clone();
    assert_eq!(
        msg(base().arg("casual", ArgValue::Flag)),
        "unknown key `casual`: did you mean `causal`? expected one of `arch`, `dtype`, `head_dim`, `causal`, \
         `window`, `sink`, `alibi`, `softcap`, `gqa`, `varlen`, `paged`, `page_size`, `backward`"
    );
    assert_eq!(
        msg(KernelSpec::builder().arch(Arch::Sm80).dtype(Dtype::F16).head_dim(100)),
        "head_dim 100 is not supported: expected one of 64, 80, 96, 128, 192, 256"
    );
    assert_eq!(msg(base().paged().page_size(24)), "page_size 24 is not a power of two in 1..=256");
}

#[test]
fn spec_file_errors_carry_file_line_and_rule() {
    let text = "# a broken cell\narch = \"sm90a\"\ndtype = \"bf16\"\nhead_dim = 100\n\nsink = 4\n";
    let errs = parse_spec(text, Path::new("specs/broken.toml")).unwrap_err();
    let shown: Vec<String> = errs.0.iter().map(|e| e.to_string()).collect();
    assert_eq!(
        shown,
        [
            "specs/broken.toml:4:1: head_dim 100 is not supported: expected one of 64, 80, 96, 128, 192, 256",
            "specs/broken.toml:6:1: `sink` needs `causal` or `window`: sink tokens only matter when the mask hides keys",
        ]
    );
    let syntax = parse_spec("arch = \n", Path::new("x.toml")).unwrap_err();
    assert_eq!(syntax.0[0].line, 1);
    assert!(syntax.0[0].message.starts_with("invalid TOML"), "{}", syntax.0[0].message);
    let table = parse_spec("arch = \"sm80\"\ndtype = \"f16\"\nhead_dim = [64]\n", Path::new("x.toml")).unwrap_err();
    assert_eq!(table.0[0].rule, Some(Rule::ValueKind));
    assert_eq!(table.0[0].line, 3);
    let missing = parse_spec("dtype = \"f16\"\nhead_dim = 64\n", Path::new("x.toml")).unwrap_err();
    assert_eq!((missing.0[0].rule, missing.0[0].line), (Some(Rule::MissingKey), 1));
}

#[test]
fn false_flags_in_spec_files_are_absent() {
    let s = parse_spec("arch = \"sm80\"\ndtype = \"f16\"\nhead_dim = 64\ncausal = false\n", Path::new("x")).unwrap();
    assert!(!s.causal());
}

#[test]
fn spec_file_round_trips() {
    let cells = [
        base().build().unwrap(),
        base().causal().window(4096).softcap(50.0).gqa(2).build().unwrap(),
        base().causal().sink(4).alibi().varlen().build().unwrap(),
        base().paged().page_size(1).causal().build().unwrap(),
        KernelSpec::builder().arch(Arch::Sm100).dtype(Dtype::E4m3).head_dim(64).build().unwrap(),
        KernelSpec::builder().arch(Arch::Sm80).dtype(Dtype::F16).head_dim(80).backward().build().unwrap(),
    ];
    for s in cells {
        let back = parse_spec(&s.to_spec_file(), Path::new("rt.toml")).unwrap();
        assert_eq!(back.kernel_name(), s.kernel_name());
    }
}

#[test]
fn every_shipped_spec_file_is_valid() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../specs");
    let mut n = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let p = entry.unwrap().path();
        if p.extension().is_some_and(|e| e == "toml") {
            fa_spec::load_spec(&p).unwrap_or_else(|e| panic!("{e}"));
            n += 1;
        }
    }
    assert!(n >= 11, "expected the model specs, found {n}");
}

#[test]
fn every_valid_head_dim_has_a_tile_that_fits_shared_memory() {
    for arch in Arch::ALL {
        for d in HEAD_DIMS {
            for dtype in [Dtype::F16, Dtype::Bf16, Dtype::E4m3] {
                let Ok(s) = KernelSpec::builder().arch(arch).dtype(dtype).head_dim(d).build() else { continue };
                let t = tile_config(&s);
                assert!(
                    t.smem_bytes(&s) <= arch.max_smem_per_block(),
                    "{}: {} bytes",
                    s.kernel_name(),
                    t.smem_bytes(&s)
                );
                assert!(t.threads() <= 1024 && t.block_m.is_multiple_of(16) && t.block_n.is_multiple_of(16));
            }
        }
    }
}

#[test]
fn hd128_takes_the_wide_tile_only_where_it_compiles_without_spills() {
    let wide = |b: fa_spec::SpecBuilder| {
        let t = tile_config(&b.build().unwrap());
        (t.block_m, t.block_n, t.num_warps, t.stages) == (128, 64, 4, 1)
    };
    let hd128 = |arch| KernelSpec::builder().arch(arch).dtype(Dtype::Bf16).head_dim(128);
    for arch in Arch::ALL {
        assert!(wide(hd128(arch)), "{arch:?}: unmasked hd128");
        assert!(!wide(hd128(arch).causal().paged()), "{arch:?}: paged");
        assert!(!wide(hd128(arch).varlen()), "{arch:?}: varlen");
        assert!(!wide(hd128(arch).window(256)), "{arch:?}: window");
    }
    assert!(wide(hd128(Arch::Sm90a).causal()));
    assert!(wide(hd128(Arch::Sm90a).causal().alibi().softcap(30.0).gqa(4)));
    assert!(!wide(hd128(Arch::Sm80).causal()), "sm_80 causal spills at 128x64");
    assert!(!wide(hd128(Arch::Sm100).causal()), "sm_100a causal spills at 128x64");
    assert!(!wide(hd128(Arch::Sm90a).causal().window(1024).sink(4)));
}

#[test]
fn swizzled_rows_are_unpadded_and_taken_only_where_they_compile_without_spills() {
    let cell = |arch, d| KernelSpec::builder().arch(arch).dtype(Dtype::Bf16).head_dim(d);
    let swz = |b: fa_spec::SpecBuilder| tile_config(&b.build().unwrap()).swizzle;
    for arch in Arch::ALL {
        assert!(swz(cell(arch, 256)), "{arch:?}: hd256");
        assert!(swz(cell(arch, 256).causal().window(64).sink(4).alibi().gqa(4).varlen()), "{arch:?}: hd256 masked");
        assert!(swz(cell(arch, 64)) && swz(cell(arch, 64).alibi().softcap(30.0).varlen()), "{arch:?}: hd64");
        assert!(!swz(cell(arch, 64).window(128)), "{arch:?}: hd64 window spills swizzled");
        assert!(swz(cell(arch, 192)), "{arch:?}: hd192");
        for d in [80, 96] {
            assert!(!swz(cell(arch, d)), "{arch:?}: hd{d} (not a multiple of 64)");
        }
        assert!(!swz(cell(arch, 128).varlen()), "{arch:?}: hd128 128x32 is unmeasured");
        assert!(!swz(cell(arch, 128).softcap(30.0)), "{arch:?}: hd128 softcap spills swizzled");
        let fp8 = KernelSpec::builder().arch(arch).dtype(Dtype::E4m3).head_dim(256).build();
        if let Ok(fp8) = fp8 {
            assert!(!tile_config(&fp8).swizzle, "{arch:?}: fp8 rows stay padded");
        }
    }
    assert!(swz(cell(Arch::Sm90a, 64).causal()) && !swz(cell(Arch::Sm100, 64).causal()), "sm_100a hd64 masked spills");
    assert!(swz(cell(Arch::Sm90a, 128)) && swz(cell(Arch::Sm90a, 128).causal().alibi()) && swz(cell(Arch::Sm100, 128)));
    assert!(!swz(cell(Arch::Sm80, 128)) && !swz(cell(Arch::Sm89, 128)), "sm_80 / sm_89 hd128 spills swizzled");
    assert!(swz(cell(Arch::Sm90a, 128).gqa(8)) && swz(cell(Arch::Sm100, 128).gqa(8)));
    assert!(
        swz(cell(Arch::Sm90a, 192).alibi()) && !swz(cell(Arch::Sm80, 192).alibi()),
        "hd192 ALiBi spills off sm_90a"
    );

    // Swizzled rows carry no 16-byte pad: (64 + 2 * 64) rows of 512 bytes.
    let s = cell(Arch::Sm90a, 256).build().unwrap();
    let t = tile_config(&s);
    assert_eq!(t.smem_bytes(&s), (64 + 2 * 64) * 256 * 2);
    let padded = fa_spec::TileConfig { swizzle: false, ..t };
    assert_eq!(padded.smem_bytes(&s), (64 + 2 * 64) * (256 + 8) * 2);
}

#[test]
fn paged_decode_takes_two_warps_only_where_its_ring_cannot_fit() {
    for arch in Arch::ALL {
        for hd in HEAD_DIMS {
            let spec = KernelSpec::builder().arch(arch).dtype(Dtype::Bf16).head_dim(hd).paged().build().unwrap();
            let warps = fa_spec::paged_decode_warps(&spec);
            // hd256 on sm89: 2 stages x (K + V) x 64 rows x 512 B = 128 KiB > 99 KiB.
            let expected = if arch == Arch::Sm89 && hd == 256 { 2 } else { 4 };
            assert_eq!(warps, expected, "{arch:?} hd{hd}");
            let src = fa_spec::render(&spec).unwrap();
            assert!(src.contains(&format!("#define PD_WARPS {warps}")), "{arch:?} hd{hd}: rendered warps");
            // Split pairs: hd80 / hd96 on sm90+ only, and the render says so.
            let pair_splits = fa_spec::paged_pair_splits(&spec);
            assert_eq!(
                pair_splits,
                matches!(hd, 80 | 96) && matches!(arch, Arch::Sm90a | Arch::Sm100),
                "{arch:?} hd{hd}"
            );
            let define = format!("#define PD_PAIR_SPLITS {}", u32::from(pair_splits));
            assert!(src.contains(&define), "{arch:?} hd{hd}: rendered pair splits");
            assert!(fa_spec::paged_decode(&spec), "{arch:?} hd{hd}: every 16-bit paged cell decodes");
        }
    }
}

/// fp8 rows are head_dim bytes: the decode rules follow the bytes, so hd192
/// rows (192 bytes) split lines as 16-bit hd96 ones do, and hd80 rows (80
/// bytes, not whole 32-byte blocks) have no decode kernel at all.
#[test]
fn paged_decode_rules_follow_fp8_row_bytes() {
    for arch in [Arch::Sm90a, Arch::Sm100] {
        for dtype in [Dtype::E4m3, Dtype::E5m2] {
            for hd in HEAD_DIMS {
                let spec = KernelSpec::builder().arch(arch).dtype(dtype).head_dim(hd).paged().build().unwrap();
                let src = fa_spec::render(&spec).unwrap();
                let decodes = fa_spec::paged_decode(&spec);
                assert_eq!(decodes, hd != 80, "{arch:?} {dtype} hd{hd}");
                assert_eq!(src.contains("paged_decode_block"), decodes, "{arch:?} {dtype} hd{hd}: rendered decode");
                assert_eq!(fa_spec::paged_pair_splits(&spec), hd == 192, "{arch:?} {dtype} hd{hd}");
                assert_eq!(fa_spec::paged_decode_warps(&spec), 4, "{arch:?} {dtype} hd{hd}");
            }
        }
    }
    let dense = KernelSpec::builder().arch(Arch::Sm90a).dtype(Dtype::E4m3).head_dim(128).build().unwrap();
    assert!(!fa_spec::paged_decode(&dense));
}
