use fa_runtime::flash_attention;

#[flash_attention(arch = sm90a, dtype = bf16, head_dim = 128, paged, page_size = 48)]
pub struct OddPages;

fn main() {}
