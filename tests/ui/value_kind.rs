use fa_runtime::flash_attention;

#[flash_attention(arch = sm90a, dtype = bf16, head_dim = "128")]
pub struct StringHeadDim;

#[flash_attention(arch = 90, dtype = bf16, head_dim = 128, softcap = soft)]
pub struct NumberArch;

fn main() {}
