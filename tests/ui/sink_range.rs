use fa_runtime::flash_attention;

#[flash_attention(arch = sm90a, dtype = bf16, head_dim = 128, causal, sink = 0)]
pub struct NoSinks;

fn main() {}
