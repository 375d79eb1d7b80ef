use fa_runtime::flash_attention;

#[flash_attention(arch = sm90a, dtype = bf16, head_dim = 100)]
pub struct OddHeadDim;

fn main() {}
