use fa_runtime::flash_attention;

#[flash_attention(arch = sm90a, dtype = bf16, head_dim = 128)]
pub enum Cells {
    Decode,
    Prefill,
}

#[flash_attention(arch = sm90a, dtype = bf16, head_dim = 128)]
pub fn attention() {}

fn main() {}
