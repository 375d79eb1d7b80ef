use fa_runtime::flash_attention;

#[flash_attention(arch = sm80, dtype = e4m3, head_dim = 100, casual, gqa = 0, sink = 4, backward)]
pub struct EverythingWrong;

fn main() {}
