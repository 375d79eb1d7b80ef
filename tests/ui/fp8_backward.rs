use fa_runtime::flash_attention;

#[flash_attention(arch = sm90a, dtype = e5m2, head_dim = 128, causal, backward)]
pub struct Fp8Training;

fn main() {}
