//! A representative matrix of valid cells compiled to CUBIN with NVRTC for
//! sm_80, sm_89, sm_90a and sm_100a — no GPU needed, so CI runs it. The
//! portable f16/bf16 kernels must not spill on any arch (the issue asks it of
//! head_dim <= 128 on sm_80 and sm_90a): a spill there is a performance bug.
//! fp8 cells are compiled but their forward kernel may spill (mma.sync fp8,
//! see fa_spec::tiles). The paged decode entries of every dtype must not spill
//! (one known exception below).

use fa_runtime::{compile_source_with, Cache, KernelSpec};
use fa_spec::{Arch, Dtype, SpecBuilder, HEAD_DIMS};
use std::sync::Mutex;

fn matrix() -> Vec<KernelSpec> {
    let mut cells = Vec::new();
    let mut add = |b: SpecBuilder| cells.push(b.build().unwrap_or_else(|e| panic!("matrix cell invalid: {e}")));
    for arch in Arch::ALL {
        for dtype in [Dtype::F16, Dtype::Bf16] {
            for hd in HEAD_DIMS {
                let base = || KernelSpec::builder().arch(arch).dtype(dtype).head_dim(hd);
                add(base());
                add(base().causal());
            }
            let base = || KernelSpec::builder().arch(arch).dtype(dtype).head_dim(128);
            add(base().causal().window(4096).sink(4));
            add(base().causal().alibi().softcap(30.0).gqa(8).varlen());
            add(base().alibi().softcap(30.0).gqa(4));
            add(base().gqa(4).varlen());
            add(base().causal().gqa(4).paged());
            // hd128 masks / modifiers one at a time: on sm_90a these decide
            // between the 128x64 and the 128x32 tile (fa_spec::tiles).
            add(base().causal().alibi());
            add(base().causal().softcap(50.0).gqa(2));
            add(base().causal().varlen());
            add(base().window(256));
            add(base().softcap(30.0).varlen());
            // Unmasked GQA: spilled 72-80 B until a few values were
            // re-derived per tile (kRederive in fwd_mainloop.cuh).
            add(base().gqa(8));
            add(base().gqa(3));
            // Rows of hd64 / hd192 / hd256 are XOR-swizzled where that
            // compiles without spills (fa_spec::tiles::swizzled); these are
            // the cells at the edge of that rule.
            let hd = |d| KernelSpec::builder().arch(arch).dtype(dtype).head_dim(d);
            add(hd(64).window(64).alibi().gqa(4).varlen());
            add(hd(64).causal().alibi().softcap(30.0));
            add(hd(64).causal().gqa(8).varlen());
            add(hd(192).alibi());
            add(hd(192).causal().alibi().softcap(30.0));
            add(hd(256).window(64).sink(4).alibi().gqa(4).varlen());
            add(KernelSpec::builder().arch(arch).dtype(dtype).head_dim(64).window(256).gqa(32).paged().page_size(1));
            add(KernelSpec::builder().arch(arch).dtype(dtype).head_dim(256).causal().gqa(2).paged().varlen());
            // Two query m-tiles (gqa > 16): the decode entries whose rings
            // would fit 3 CTAs per SM spilled 144-444 B at 168 registers
            // (kPdMaxCtas in paged_decode.cuh).
            add(base().gqa(32).paged());
            add(hd(96).gqa(32).paged());
            // Pages under 16 tokens with rows of 10 and 12 16-byte chunks:
            // the decode loader's 2- and 4-lanes-a-row mappings.
            let (hd, page) = if dtype == Dtype::F16 { (80, 2) } else { (96, 4) };
            add(KernelSpec::builder().arch(arch).dtype(dtype).head_dim(hd).causal().gqa(4).paged().page_size(page));
            // The sorted page visits (kPdSortedPages) of the one-split entries
            // with every mask, at 166-167 of the 168 registers that keep 3
            // CTAs per SM on sm_90a; and
            // with the pair's joint copy of 160- / 192-byte rows, which only
            // sm_80 / sm_89 compile unsplit.
            add(base().gqa(4).window(512).sink(4).alibi().softcap(30.0).paged());
            let hd_pair = if dtype == Dtype::F16 { 80 } else { 96 };
            add(KernelSpec::builder().arch(arch).dtype(dtype).head_dim(hd_pair).causal().gqa(4).paged().page_size(32));
        }
        if arch.supports_fp8() {
            for dtype in [Dtype::E4m3, Dtype::E5m2] {
                for hd in [64, 128, 256] {
                    add(KernelSpec::builder().arch(arch).dtype(dtype).head_dim(hd).causal().gqa(8));
                }
                add(KernelSpec::builder().arch(arch).dtype(dtype).head_dim(128).window(1024).alibi().varlen());
                // 80-byte fp8 rows: the paged cell once failed to compile (its
                // source carried the 16-bit decode loader, which fp8 never runs).
                add(KernelSpec::builder().arch(arch).dtype(dtype).head_dim(80).gqa(8).paged());
                // The fp8 decode at every row size it takes (64 to 256 bytes),
                // on whole pages and on small ones (a lookup per row).
                let paged = |hd| KernelSpec::builder().arch(arch).dtype(dtype).head_dim(hd).paged();
                for hd in [64, 96, 128, 192, 256] {
                    add(paged(hd).causal().gqa(4));
                }
                add(paged(64).page_size(8).gqa(8).window(33).sink(7).alibi().softcap(10.0));
                add(paged(96).page_size(2).gqa(4).causal());
                add(paged(192).page_size(4).gqa(4).causal());
                add(paged(128).page_size(1).gqa(32).causal());
            }
        }
    }
    cells
}

#[test]
fn representative_cells_compile_for_every_arch_and_hot_ones_do_not_spill() {
    if let Err(e) = fa_runtime::libs::ensure_nvrtc() {
        panic!("NVRTC is needed to compile kernels: {e}\nRun the README's test command (bash scripts/test.sh), which installs it into .nvrtc/ and sets FA_NVRTC_PATH.");
    }
    let cells = matrix();
    let cache = Cache::memory_only();
    let next = Mutex::new(0usize);
    let failures = Mutex::new(Vec::new());
    let report = Mutex::new(Vec::new());
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get()).min(8);
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| loop {
                let i = {
                    let mut n = next.lock().unwrap();
                    *n += 1;
                    *n - 1
                };
                let Some(spec) = cells.get(i) else { break };
                let source = fa_spec::render(spec).unwrap_or_else(|e| panic!("{e}"));
                match compile_source_with(&cache, spec, &source) {
                    Ok(k) => {
                        // Every f16/bf16 cell, every arch and head dim (the
                        // issue asks for hd <= 128 on sm_80 / sm_90a; all of
                        // them hold, so the test keeps them all).
                        let hot = !spec.dtype().is_fp8();
                        if hot && k.spill_bytes() > 0 {
                            failures.lock().unwrap().push(format!("{} spills {} bytes", k.entry, k.spill_bytes()));
                        }
                        // The decode entries of paged cells (any dtype), from the same
                        // ptxas log. Known: 16-bit hd256 `_decode` on sm_100a, 28 B
                        // (and so at most `_decode_unsplit`, the same kernel less its
                        // split code); 16-bit hd128 `_decode` with two query m-tiles
                        // (gqa > 16), 4 B at its 255 registers, where launches of one
                        // split take `_decode_unsplit` (the same ring there), clean.
                        if fa_spec::paged_decode(spec) {
                            use fa_runtime::paged::DecodeKernel;
                            for kernel in DecodeKernel::ALL {
                                let entry = fa_runtime::paged::decode_entry(spec, kernel);
                                let one_head = kernel.heads_per_cta() == 1;
                                let known = |b: u32| {
                                    (spec.arch() == Arch::Sm100 && spec.head_dim() == 256 && hot && one_head && b <= 28)
                                        || (kernel == DecodeKernel::One
                                            && hot
                                            && spec.head_dim() == 128
                                            && spec.gqa() > 16
                                            && b <= 4)
                                };
                                match fa_runtime::cubin::parse_ptxas_log(&k.log, &entry) {
                                    Some(p) if p.spill_store_bytes > 0 && !known(p.spill_store_bytes) => failures
                                        .lock()
                                        .unwrap()
                                        .push(format!("{entry} ({}) spills {} bytes", k.target, p.spill_store_bytes)),
                                    Some(_) => {}
                                    None => failures.lock().unwrap().push(format!("{entry}: no ptxas report")),
                                }
                            }
                        }
                        report.lock().unwrap().push(format!(
                            "{:<64} {:<8} {:>3} regs {:>4} B spill",
                            k.entry,
                            k.target,
                            k.info.registers,
                            k.spill_bytes()
                        ));
                    }
                    Err(e) => failures.lock().unwrap().push(format!("{}: {e}", spec.kernel_name())),
                }
            });
        }
    });
    let mut report = report.into_inner().unwrap();
    report.sort();
    println!("{}", report.join("\n"));
    let failures = failures.into_inner().unwrap();
    assert!(failures.is_empty(), "{} of {} cells failed:\n{}", failures.len(), cells.len(), failures.join("\n"));
    assert_eq!(report.len(), cells.len());
}
