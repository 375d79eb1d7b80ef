use fa_runtime::flash_attention;

#[flash_attention(dtype = bf16, head_dim = 128, causal)]
pub struct NoArch;

fn main() {}
