use fa_runtime::flash_attention;

#[flash_attention(arch = sm90a, dtype = bf16, head_dim = 128, causal, head_dim = 64)]
pub struct Twice;

fn main() {}
