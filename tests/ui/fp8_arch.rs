use fa_runtime::flash_attention;

#[flash_attention(arch = sm80, dtype = e4m3, head_dim = 128)]
pub struct Fp8OnAmpere;

fn main() {}
