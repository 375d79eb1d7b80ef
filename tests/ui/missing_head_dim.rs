use fa_runtime::flash_attention;

#[flash_attention(arch = sm90a, dtype = bf16)]
pub struct NoHeadDim;

fn main() {}
