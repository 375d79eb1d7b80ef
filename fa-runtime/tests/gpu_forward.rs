//! Forward correctness on a GPU against the CPU reference.
//!
//! `cargo test -p fa-runtime --features gpu --release --test gpu_forward`
//! (CI compiles these and never runs them; the device machine does.)
//! `FA_TEST_SEED=<n>` varies the random inputs; failures print the seed.
#![cfg(feature = "gpu")]

mod gpu_common;

use fa_runtime::{Device, FaError, ForwardArgs, FwdOptions, Kernel, KernelSpec, Tensor};
use fa_spec::{Arch, Dtype, HEAD_DIMS};
use gpu_common::{arch, cell, device, run, Case, Layout};

fn dense(batch: usize, s_q: usize, s_k: usize) -> Layout {
    Layout::Dense { batch, s_q, s_k }
}

#[test]
fn every_head_dim_f16_and_bf16() {
    for dtype in [Dtype::F16, Dtype::Bf16] {
        for hd in HEAD_DIMS {
            for causal in [false, true] {
                let spec = cell(dtype, hd, |b| if causal { b.causal() } else { b });
                run(&Case::new(format!("hd{hd}-{dtype}-causal{causal}"), spec, 3, dense(2, 113, 113)));
            }
        }
    }
}

#[test]
fn head_major_layout() {
    // [b, h, s, d] tensors (PyTorch's convention) through QkvLayout::HeadMajor,
    // with GQA so that q and k/v head strides differ, both ways round s_q/s_k.
    for (dtype, hd, causal) in [(Dtype::Bf16, 128, true), (Dtype::F16, 64, false), (Dtype::Bf16, 256, false)] {
        let spec = cell(dtype, hd, |b| if causal { b.causal().gqa(2) } else { b.gqa(2) });
        for (s_q, s_k) in [(113, 300), (300, 113)] {
            let mut c = Case::new(format!("head-major-hd{hd}-{dtype}-sq{s_q}-sk{s_k}"), spec, 4, dense(2, s_q, s_k));
            c.head_major = true;
            run(&c);
        }
    }
}

#[test]
fn sequence_lengths_both_ways() {
    let shapes = [
        (1, 1),
        (1, 17),
        (17, 1),
        (17, 113),
        (113, 17),
        (113, 1023),
        (1023, 113),
        (1023, 1023),
        (17, 4097),
        (4097, 4097),
    ];
    for causal in [false, true] {
        let spec = cell(Dtype::Bf16, 128, |b| if causal { b.causal() } else { b });
        for (s_q, s_k) in shapes {
            let batch = if s_q * s_k > 1_000_000 { 1 } else { 2 };
            run(&Case::new(format!("sq{s_q}-sk{s_k}-causal{causal}"), spec, 2, dense(batch, s_q, s_k)));
        }
    }
    // f16 and a large head dim at the longest length.
    let spec = cell(Dtype::F16, 256, |b| b.causal());
    run(&Case::new("hd256-4097", spec, 1, dense(1, 4097, 4097)));
}

#[test]
fn sliding_window_and_sinks() {
    for (dtype, hd) in [(Dtype::Bf16, 128), (Dtype::F16, 64)] {
        let w = cell(dtype, hd, |b| b.window(64));
        run(&Case::new(format!("window64-{dtype}"), w, 2, dense(2, 300, 300)));
        run(&Case::new(format!("window64-sq<sk-{dtype}"), w, 2, dense(1, 113, 1023)));
        let wc = cell(dtype, hd, |b| b.causal().window(100));
        run(&Case::new(format!("causal-window100-{dtype}"), wc, 2, dense(1, 1023, 1023)));
        let s = cell(dtype, hd, |b| b.window(32).sink(4));
        run(&Case::new(format!("sink4-window32-{dtype}"), s, 2, dense(2, 300, 300)));
        run(&Case::new(format!("sink4-window32-sq>sk-{dtype}"), s, 2, dense(1, 1023, 113)));
        let s = cell(dtype, hd, |b| b.causal().sink(1));
        run(&Case::new(format!("causal-sink1-{dtype}"), s, 2, dense(1, 17, 113)));
    }
}

#[test]
fn alibi_and_softcap() {
    for (dtype, hd) in [(Dtype::Bf16, 128), (Dtype::F16, 64), (Dtype::Bf16, 256)] {
        let a = cell(dtype, hd, |b| b.alibi());
        run(&Case::new(format!("alibi-{dtype}-{hd}"), a, 4, dense(2, 113, 300)));
        let ac = cell(dtype, hd, |b| b.alibi().causal());
        run(&Case::new(format!("alibi-causal-{dtype}-{hd}"), ac, 4, dense(1, 300, 300)));
        let s = cell(dtype, hd, |b| b.softcap(1.0));
        let mut c = Case::new(format!("softcap1-{dtype}-{hd}"), s, 2, dense(2, 113, 300));
        c.amp = 3.0; // raw logits well past the cap
        run(&c);
        let s = cell(dtype, hd, |b| b.softcap(30.0).causal());
        let mut c = Case::new(format!("softcap30-{dtype}-{hd}"), s, 2, dense(1, 300, 300));
        c.softmax_scale = Some(1.0);
        run(&c);
    }
}

#[test]
fn grouped_and_multi_query_attention() {
    for (gqa, heads) in [(1, 4), (4, 8), (8, 16), (8, 8) /* MQA */] {
        for causal in [false, true] {
            let spec = cell(Dtype::Bf16, 128, |b| {
                let b = b.gqa(gqa);
                if causal {
                    b.causal()
                } else {
                    b
                }
            });
            run(&Case::new(format!("gqa{gqa}-h{heads}-causal{causal}"), spec, heads, dense(2, 113, 1023)));
        }
    }
    let spec = cell(Dtype::F16, 64, |b| b.gqa(4));
    run(&Case::new("gqa4-f16-hd64", spec, 8, dense(2, 17, 113)));
}

#[test]
fn everything_combined() {
    for dtype in [Dtype::F16, Dtype::Bf16] {
        let spec = cell(dtype, 128, |b| b.causal().window(128).sink(4).alibi().softcap(20.0).gqa(4));
        run(&Case::new(format!("combined-{dtype}"), spec, 8, dense(2, 1023, 1023)));
        run(&Case::new(format!("combined-sq<sk-{dtype}"), spec, 8, dense(1, 113, 4097)));
        let spec = cell(dtype, 96, |b| b.window(50).sink(2).alibi().gqa(2).varlen());
        run(&Case::new(
            format!("combined-varlen-{dtype}"),
            spec,
            4,
            Layout::Varlen { lens: vec![(1, 1), (17, 300), (300, 17), (129, 129)] },
        ));
    }
}

#[test]
fn varlen_ragged_batches() {
    let lens = vec![(1, 1), (17, 40), (113, 113), (300, 513), (1, 1023), (129, 64)];
    for dtype in [Dtype::F16, Dtype::Bf16] {
        for hd in [64, 128, 256] {
            for causal in [false, true] {
                let spec = cell(dtype, hd, |b| if causal { b.varlen().causal() } else { b.varlen() });
                run(&Case::new(
                    format!("varlen-{dtype}-{hd}-causal{causal}"),
                    spec,
                    2,
                    Layout::Varlen { lens: lens.clone() },
                ));
            }
        }
    }
    let spec = cell(Dtype::Bf16, 128, |b| b.varlen().gqa(4).causal());
    run(&Case::new("varlen-gqa4", spec, 8, Layout::Varlen { lens: vec![(4097, 4097), (17, 4097)] }));
}

#[test]
fn paged_kv_cache() {
    for page in [16u32, 64] {
        let spec = cell(Dtype::Bf16, 128, |b| b.paged().page_size(page).gqa(4));
        // Decode (one query) against ragged contexts, and a short prefill.
        run(&Case::new(
            format!("paged{page}-decode"),
            spec,
            8,
            Layout::Paged { lens: vec![(1, 1), (1, 17), (1, 1023), (1, 200)], num_blocks: 256 },
        ));
        let spec = cell(Dtype::F16, 64, |b| b.paged().page_size(page).causal());
        run(&Case::new(
            format!("paged{page}-prefill"),
            spec,
            2,
            Layout::Paged { lens: vec![(17, 113), (17, 17), (17, 300)], num_blocks: 128 },
        ));
    }
    // hd256: swizzled shared-memory rows filled through the block table.
    let spec = cell(Dtype::Bf16, 256, |b| b.paged().page_size(16).causal().gqa(2));
    run(&Case::new(
        "paged16-prefill-hd256",
        spec,
        4,
        Layout::Paged { lens: vec![(17, 113), (17, 300), (17, 17)], num_blocks: 128 },
    ));
    let spec = cell(Dtype::Bf16, 128, |b| b.paged().varlen().causal().gqa(2));
    run(&Case::new(
        "paged-varlen",
        spec,
        4,
        Layout::Paged { lens: vec![(1, 300), (17, 17), (113, 500)], num_blocks: 128 },
    ));
}

#[test]
fn fp8_cells() {
    if !matches!(arch(), Arch::Sm90a | Arch::Sm100) {
        println!("SKIPPED fp8_cells: device {} has no fp8 arch (needs sm90a or sm100)", device().name());
        return;
    }
    for dtype in [Dtype::E4m3, Dtype::E5m2] {
        for hd in [64, 128, 256] {
            for causal in [false, true] {
                let spec = cell(dtype, hd, |b| if causal { b.causal() } else { b });
                run(&Case::new(format!("fp8-{dtype}-{hd}-causal{causal}"), spec, 2, dense(2, 113, 1023)));
            }
        }
        let spec = cell(dtype, 128, |b| b.causal().gqa(4).window(256));
        run(&Case::new(format!("fp8-{dtype}-gqa-window"), spec, 8, dense(1, 1023, 1023)));
    }
}

#[test]
fn sm80_cells_run_on_newer_devices() {
    let spec = KernelSpec::builder().arch(Arch::Sm80).dtype(Dtype::Bf16).head_dim(128).causal().build().unwrap();
    run(&Case::new("sm80-portable", spec, 2, dense(2, 113, 300)));
}

#[test]
fn wrong_arch_is_a_typed_error() {
    let dev = device();
    let other = if dev.compute_capability() == (10, 0) { Arch::Sm90a } else { Arch::Sm100 };
    let spec = KernelSpec::builder().arch(other).dtype(Dtype::Bf16).head_dim(64).build().unwrap();
    let k = Kernel::new(spec).unwrap();
    let q: Tensor<half::bf16> = dev.alloc_zeros(&[1, 4, 1, 64]).unwrap();
    let mut o: Tensor<half::bf16> = dev.alloc_zeros(&[1, 4, 1, 64]).unwrap();
    let mut l: Tensor<f32> = dev.alloc_zeros(&[1, 1, 4]).unwrap();
    let e = k.forward(dev, ForwardArgs::new(q.as_ref(), q.as_ref(), q.as_ref(), o.as_mut(), l.as_mut())).unwrap_err();
    assert!(matches!(e, FaError::ArchUnsupported { .. }), "{e}");
}

#[test]
fn bad_arguments_fail_before_the_gpu() {
    let dev = device();
    let spec = cell(Dtype::Bf16, 128, |b| b);
    let k = Kernel::new(spec).unwrap();
    let q: Tensor<half::bf16> = dev.alloc_zeros(&[1, 4, 2, 128]).unwrap();
    let kk: Tensor<half::bf16> = dev.alloc_zeros(&[1, 5, 1, 128]).unwrap();
    let mut o: Tensor<half::bf16> = dev.alloc_zeros(&[1, 4, 2, 128]).unwrap();
    let mut l: Tensor<f32> = dev.alloc_zeros(&[1, 2, 4]).unwrap();
    let e = k.forward(dev, ForwardArgs::new(q.as_ref(), kk.as_ref(), kk.as_ref(), o.as_mut(), l.as_mut())).unwrap_err();
    assert!(matches!(e, FaError::Shape { arg: "k", .. }), "{e}");
    // A tensor of another Device object is refused.
    let dev2 = Device::new(0).unwrap();
    let q2: Tensor<half::bf16> = dev2.alloc_zeros(&[1, 4, 2, 128]).unwrap();
    let e = k.forward(dev, ForwardArgs::new(q2.as_ref(), q.as_ref(), q.as_ref(), o.as_mut(), l.as_mut())).unwrap_err();
    assert!(matches!(e, FaError::WrongDevice { arg: "q", .. }), "{e}");
    // from_host with a wrong length.
    assert!(matches!(dev.from_host(&[1.0f32; 5], &[2, 3]), Err(FaError::Shape { .. })));
    // Empty problem: no launch, no error.
    let qe: Tensor<half::bf16> = dev.alloc_zeros(&[1, 0, 2, 128]).unwrap();
    let mut oe: Tensor<half::bf16> = dev.alloc_zeros(&[1, 0, 2, 128]).unwrap();
    let mut le: Tensor<f32> = dev.alloc_zeros(&[1, 2, 0]).unwrap();
    k.forward(dev, ForwardArgs::new(qe.as_ref(), q.as_ref(), q.as_ref(), oe.as_mut(), le.as_mut())).unwrap();
    // Varlen without max seqlens.
    let vs = cell(Dtype::Bf16, 128, |b| b.varlen());
    let vk = Kernel::new(vs).unwrap();
    let q3: Tensor<half::bf16> = dev.alloc_zeros(&[4, 2, 128]).unwrap();
    let mut o3: Tensor<half::bf16> = dev.alloc_zeros(&[4, 2, 128]).unwrap();
    let mut l3: Tensor<f32> = dev.alloc_zeros(&[2, 4]).unwrap();
    let cu = dev.from_host(&[0i32, 4], &[2]).unwrap();
    let mut a = ForwardArgs::new(q3.as_ref(), q3.as_ref(), q3.as_ref(), o3.as_mut(), l3.as_mut());
    a.cu_seqlens_q = Some(cu.as_ref());
    a.cu_seqlens_k = Some(cu.as_ref());
    let e = vk.forward(dev, a).unwrap_err();
    assert!(matches!(e, FaError::Argument { .. }), "{e}");
}

#[test]
fn tensors_roundtrip_and_poison() {
    let dev = device();
    let data: Vec<half::f16> = (0..1000).map(|i| half::f16::from_f32(i as f32 * 0.5)).collect();
    let mut t = dev.from_host(&data, &[10, 100]).unwrap();
    assert_eq!(t.shape(), &[10, 100]);
    assert_eq!(t.to_host(dev).unwrap(), data);
    dev.fill_bytes(&mut t, 0xFF).unwrap();
    assert!(t.to_host(dev).unwrap().iter().all(|x| x.is_nan()));
    let z: Tensor<i64> = dev.alloc_zeros(&[3]).unwrap();
    assert_eq!(z.to_host(dev).unwrap(), vec![0i64; 3]);
    let f8: Vec<float8::F8E4M3> = (0..16).map(|i| float8::F8E4M3::from_f32(i as f32)).collect();
    let t8 = dev.from_host(&f8, &[16]).unwrap();
    assert_eq!(t8.to_host(dev).unwrap(), f8);
    let _ = FwdOptions::default();
}
