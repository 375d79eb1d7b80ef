use fa_runtime::flash_attention;

#[flash_attention(arch = sm90a, dtype = bf16, head_dim = 128, page_size = 32)]
pub struct PagesNotPaged;

fn main() {}
