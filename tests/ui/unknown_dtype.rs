use fa_runtime::flash_attention;

#[flash_attention(arch = sm90a, dtype = fp32, head_dim = 64)]
pub struct Fp32;

fn main() {}
