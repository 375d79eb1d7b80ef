#![deny(warnings)]

// Every kind of cell expands to code that type-checks against fa-runtime,
// with nothing in scope (`no_implicit_prelude`, absolute attribute path).

mod cells {
    #![no_implicit_prelude]

    #[::fa_runtime::flash_attention(arch = sm90a, dtype = bf16, head_dim = 128, causal, paged, gqa = 8)]
    pub struct LlamaDecode;

    #[::fa_runtime::flash_attention(arch = sm80, dtype = f16, head_dim = 64, varlen, alibi, softcap = 50)]
    pub struct VarlenAlibi;

    #[::fa_runtime::flash_attention(arch = sm90a, dtype = e4m3, head_dim = 256, window = 4096, sink = 4)]
    pub struct Fp8Window;

    #[::fa_runtime::flash_attention(arch = sm89, dtype = bf16, head_dim = 96, causal, varlen, backward)]
    pub struct Training;

    #[::fa_runtime::flash_attention(arch = sm100, dtype = e5m2, head_dim = 192, gqa = 4)]
    pub struct Blackwell(pub u8);
}

use cells::*;

const _: fa_runtime::KernelSpec = LlamaDecode::SPEC;
const _: &str = Training::CUDA_SOURCE;

fn main() {
    assert_eq!(LlamaDecode::SPEC.kernel_name(), "fa_sm90a_bf16_hd128_causal_gqa8_paged16");
    assert_eq!(VarlenAlibi::SPEC.softcap(), Some(50.0));
    assert!(Fp8Window::CUDA_SOURCE.contains(&Fp8Window::SPEC.forward_entry()));
    assert!(Training::SPEC.backward());
    assert_eq!(Blackwell(0).0, 0);
    // The launchers exist with the cell's parameters (run on a GPU elsewhere).
    let _ = (LlamaDecode::forward, VarlenAlibi::forward, Fp8Window::forward, Blackwell::forward);
    let _ = (Training::forward, Training::backward);
}
