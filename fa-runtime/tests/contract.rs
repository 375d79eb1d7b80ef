//! The `#[flash_attention]` expansion type-checks against this crate's
//! `__private` API (api_contract.md). No GPU, no NVRTC: nothing is launched.

use fa_runtime::{flash_attention, Device, FaError, FwdOptions, Tensor};

#[flash_attention(arch = sm90a, dtype = bf16, head_dim = 128, causal, gqa = 4)]
pub struct Decode;

#[flash_attention(arch = sm90a, dtype = e4m3, head_dim = 128, varlen, paged, alibi)]
pub struct Fp8Everything;

#[flash_attention(arch = sm80, dtype = f16, head_dim = 64, varlen, alibi, backward)]
pub struct Train;

type Bf = fa_runtime::__private::bf16;

#[test]
#[allow(clippy::type_complexity)]
fn generated_launchers_match_the_runtime_api() {
    assert_eq!(Decode::SPEC.kernel_name(), "fa_sm90a_bf16_hd128_causal_gqa4");
    assert!(Decode::CUDA_SOURCE.contains("fa_sm90a_bf16_hd128_causal_gqa4_fwd"));
    let _f: fn(
        &Device,
        &Tensor<Bf>,
        &Tensor<Bf>,
        &Tensor<Bf>,
        &mut Tensor<Bf>,
        &mut Tensor<f32>,
        &FwdOptions,
    ) -> Result<(), FaError> = Decode::forward;
    let _ = Fp8Everything::forward;
    let _a: fn(
        &Device,
        &Tensor<fa_runtime::__private::F8E4M3>,
        &Tensor<fa_runtime::__private::F8E4M3>,
        &Tensor<i64>,
        &mut Tensor<fa_runtime::__private::F8E4M3>,
        &mut Tensor<fa_runtime::__private::F8E4M3>,
    ) -> Result<(), FaError> = Fp8Everything::append;
    let _ = Train::forward;
    let _ = Train::backward;
}
