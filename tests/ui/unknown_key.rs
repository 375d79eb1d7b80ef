use fa_runtime::flash_attention;

#[flash_attention(arch = sm90a, dtype = bf16, head_dim = 128, casual)]
pub struct Typo;

#[flash_attention(arch = sm90a, dtype = bf16, head_dim = 128, flavour = vanilla)]
pub struct NoSuggestion;

fn main() {}
