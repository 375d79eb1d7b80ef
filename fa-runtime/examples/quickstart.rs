//! The main example: declare a cell with the macro, run it on GPU 0 if there
//! is one, and compare it with the CPU reference.
//!
//! `cargo run --example quickstart`
//!
//! Without a GPU it says so, compiles the kernel to a CUBIN if NVRTC is
//! installed (`FA_NVRTC_PATH=$PWD/.nvrtc/nvidia/cu13/lib` after the test
//! command has installed it), and runs the CPU reference alone.

use fa_runtime::reference::{KvLayout, Precision, Problem, QLayout, RefSpec};
use fa_runtime::{flash_attention, Device, FaError, FwdOptions, Tensor};
use half::bf16;

/// Llama-3-8B-like prefill: 32 query heads over 8 KV heads, causal.
#[flash_attention(arch = sm80, dtype = bf16, head_dim = 128, causal, gqa = 4)]
pub struct LlamaPrefill;

const BATCH: usize = 2;
const SEQLEN: usize = 300;
const HEADS: usize = 32;
const KV_HEADS: usize = HEADS / 4;
const D: usize = 128;

/// Deterministic pseudo-random values in [-1, 1), rounded to bf16.
fn random(n: usize, seed: u64) -> Vec<bf16> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            bf16::from_f32(((x >> 40) as f32 / (1u64 << 23) as f32) - 1.0)
        })
        .collect()
}

fn main() -> Result<(), FaError> {
    let spec = LlamaPrefill::SPEC;
    println!("cell   {spec}\nkernel {}", spec.kernel_name());
    let q = random(BATCH * SEQLEN * HEADS * D, 1);
    let k = random(BATCH * SEQLEN * KV_HEADS * D, 2);
    let v = random(BATCH * SEQLEN * KV_HEADS * D, 3);

    let (qf, kf, vf): (Vec<f32>, Vec<f32>, Vec<f32>) = (
        q.iter().map(|x| x.to_f32()).collect(),
        k.iter().map(|x| x.to_f32()).collect(),
        v.iter().map(|x| x.to_f32()).collect(),
    );
    let problem = Problem {
        spec: RefSpec::from_spec(&spec),
        num_heads: HEADS,
        q_layout: QLayout::Dense { batch: BATCH, s_q: SEQLEN },
        kv_layout: KvLayout::Dense { s_k: SEQLEN },
        q: &qf,
        k: &kf,
        v: &vf,
        softmax_scale: 1.0 / (D as f32).sqrt(),
        alibi_slopes: None,
        q_descale: None,
        k_descale: None,
        v_descale: None,
    };
    let reference = problem.forward(Precision::EXACT);
    println!("CPU reference: {} outputs, lse[0] = {:.4}", reference.out.len(), reference.lse[0]);

    let dev = match Device::new(0) {
        Ok(dev) => dev,
        Err(e) => {
            println!("no CUDA device found ({e})");
            return compile_only();
        }
    };
    println!("device 0: {} (compute capability {:?})", dev.name(), dev.compute_capability());
    let qd = dev.from_host(&q, &[BATCH, SEQLEN, HEADS, D])?;
    let kd = dev.from_host(&k, &[BATCH, SEQLEN, KV_HEADS, D])?;
    let vd = dev.from_host(&v, &[BATCH, SEQLEN, KV_HEADS, D])?;
    let mut out: Tensor<bf16> = dev.alloc_zeros(&[BATCH, SEQLEN, HEADS, D])?;
    let mut lse: Tensor<f32> = dev.alloc_zeros(&[BATCH, HEADS, SEQLEN])?;
    LlamaPrefill::forward(&dev, &qd, &kd, &vd, &mut out, &mut lse, &FwdOptions::default())?;
    let out = out.to_host(&dev)?;
    let lse = lse.to_host(&dev)?;
    let max_err = out.iter().zip(&reference.out).map(|(a, b)| (a.to_f64() - b).abs()).fold(0.0, f64::max);
    let lse_err = lse.iter().zip(&reference.lse).map(|(a, b)| (*a as f64 - b).abs()).fold(0.0, f64::max);
    println!("GPU vs CPU reference: max |O - ref| = {max_err:.2e}, max |LSE - ref| = {lse_err:.2e}");
    if max_err > 2e-2 || lse_err > 1e-3 {
        return Err(FaError::Unsupported { what: format!("the kernel disagrees with the reference ({max_err:.2e})") });
    }
    println!("ok");
    Ok(())
}

/// No GPU: show that the cell compiles, if NVRTC is there.
fn compile_only() -> Result<(), FaError> {
    match fa_runtime::compile(&LlamaPrefill::SPEC) {
        Ok(k) => {
            println!(
                "compiled {} for {} with NVRTC {}.{}: {} CUBIN bytes, {} registers, {} spill bytes, {:.0} ms",
                k.entry,
                k.target,
                k.nvrtc_version.0,
                k.nvrtc_version.1,
                k.cubin.len(),
                k.info.registers,
                k.spill_bytes(),
                k.elapsed.as_secs_f64() * 1e3
            );
            Ok(())
        }
        Err(e @ FaError::LibraryNotFound { .. }) => {
            println!("NVRTC is not installed, so the kernel was not compiled: {e}");
            Ok(())
        }
        Err(e) => Err(e),
    }
}
