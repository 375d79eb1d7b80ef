use fa_runtime::flash_attention;

#[flash_attention(arch = sm90a, head_dim = 128)]
pub struct NoDtype;

fn main() {}
