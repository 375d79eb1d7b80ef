use fa_runtime::flash_attention;

#[flash_attention(arch = sm70, dtype = f16, head_dim = 64)]
pub struct Volta;

fn main() {}
