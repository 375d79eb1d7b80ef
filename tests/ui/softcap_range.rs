use fa_runtime::flash_attention;

#[flash_attention(arch = sm90a, dtype = bf16, head_dim = 128, softcap = 0.0)]
pub struct ZeroCap;

#[flash_attention(arch = sm90a, dtype = bf16, head_dim = 128, softcap = -1.0)]
pub struct NegativeCap;

fn main() {}
