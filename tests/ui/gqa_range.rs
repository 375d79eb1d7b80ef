use fa_runtime::flash_attention;

#[flash_attention(arch = sm90a, dtype = bf16, head_dim = 128, gqa = 0)]
pub struct NoKvHeads;

#[flash_attention(arch = sm90a, dtype = bf16, head_dim = 128, gqa = 4294967296)]
pub struct Overflow;

fn main() {}
