use fa_runtime::flash_attention;

#[flash_attention(arch = sm90a, dtype = bf16, head_dim = 128, window = 0)]
pub struct EmptyWindow;

#[flash_attention(arch = sm90a, dtype = bf16, head_dim = 128, window = -3)]
pub struct NegativeWindow;

fn main() {}
