use fa_runtime::flash_attention;

#[flash_attention(arch = sm90a, dtype = bf16, head_dim = )]
pub struct NoValue;

#[flash_attention(arch = sm90a, dtype = bf16, = 5)]
pub struct NoKey;

#[flash_attention(arch = sm90a, dtype = bf16, head_dim = 1.2.3)]
pub struct TwoDots;

#[flash_attention(arch = sm90a dtype = bf16)]
pub struct NoComma;

#[flash_attention(arch = sm90a, dtype = bf16, head_dim = 340282366920938463463374607431768211456)]
pub struct TooLarge;

fn main() {}
