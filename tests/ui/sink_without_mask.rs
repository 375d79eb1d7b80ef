use fa_runtime::flash_attention;

#[flash_attention(arch = sm90a, dtype = bf16, head_dim = 128, sink = 4)]
pub struct SinkNoMask;

fn main() {}
