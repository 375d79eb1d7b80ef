//! What the host tests assume of the decode entries on an H100 / H200
//! (sm_90a, 132 SMs): `paged_host.rs` feeds these to the layout heuristics,
//! and `nvrtc.rs` checks each against the CUBIN of the cell it stands for
//! (the shared memory the cell exports, and the CTAs per SM that it,
//! the entry's registers and its threads allow).

use fa_runtime::paged::{DecodeKernel, EntryOccupancy};
use fa_runtime::KernelSpec;
use fa_spec::{Arch, Dtype};

/// bf16 hd128 gqa 4: `_decode` at 2 CTAs a SM with a 3-stage ring of
/// 32 KiB stages, `_decode_unsplit` and `_decode_pair` at 3 with 2 stages.
pub const BF16_HD128: EntryOccupancy = EntryOccupancy { ctas_per_sm: 2, smem_bytes: 98560 };
pub const BF16_HD128_UNSPLIT: EntryOccupancy = EntryOccupancy { ctas_per_sm: 3, smem_bytes: 65792 };
pub const BF16_HD128_PAIR: EntryOccupancy = EntryOccupancy { ctas_per_sm: 3, smem_bytes: 65792 };
/// e4m3 hd128 gqa 4's `_decode`: 3 CTAs a SM, 3 stages of 16 KiB (its
/// `_decode_unsplit` has the same ring).
pub const E4M3_HD128: EntryOccupancy = EntryOccupancy { ctas_per_sm: 3, smem_bytes: 49408 };
/// bf16 hd96 gqa 4's `_decode_pair`, which takes splits.
pub const BF16_HD96_PAIR: EntryOccupancy = EntryOccupancy { ctas_per_sm: 3, smem_bytes: 73984 };

fn cell(dtype: Dtype, head_dim: u32) -> KernelSpec {
    KernelSpec::builder().arch(Arch::Sm90a).dtype(dtype).head_dim(head_dim).gqa(4).paged().build().unwrap()
}

/// Each constant above with the cell and entry it stands for.
#[allow(dead_code)] // (paged_host.rs uses the constants only)
pub fn entries() -> Vec<(&'static str, KernelSpec, DecodeKernel, EntryOccupancy)> {
    let (bf16, e4m3, bf16_96) = (cell(Dtype::Bf16, 128), cell(Dtype::E4m3, 128), cell(Dtype::Bf16, 96));
    vec![
        ("BF16_HD128", bf16, DecodeKernel::One, BF16_HD128),
        ("BF16_HD128_UNSPLIT", bf16, DecodeKernel::Unsplit, BF16_HD128_UNSPLIT),
        ("BF16_HD128_PAIR", bf16, DecodeKernel::Pair, BF16_HD128_PAIR),
        ("E4M3_HD128", e4m3, DecodeKernel::One, E4M3_HD128),
        ("E4M3_HD128 (unsplit)", e4m3, DecodeKernel::Unsplit, E4M3_HD128),
        ("BF16_HD96_PAIR", bf16_96, DecodeKernel::Pair, BF16_HD96_PAIR),
    ]
}
