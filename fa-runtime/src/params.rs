//! `FwdParams`: the kernel's single by-value argument, an exact `#[repr(C)]`
//! mirror of `templates/partials/params.cuh`.

/// Mirror of `struct FwdParams` in `templates/partials/params.cuh`.
/// Strides are in elements. Pointers are raw device addresses (0 = null).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct FwdParams {
    pub q: u64,
    pub k: u64,
    pub v: u64,
    pub o: u64,
    pub lse: u64,
    pub cu_seqlens_q: u64,
    pub cu_seqlens_k: u64,
    pub block_table: u64,
    pub seqused_k: u64,
    pub alibi_slopes: u64,
    pub q_descale: u64,
    pub k_descale: u64,
    pub v_descale: u64,
    pub q_batch_stride: i64,
    pub q_row_stride: i64,
    pub q_head_stride: i64,
    pub k_batch_stride: i64,
    pub k_row_stride: i64,
    pub k_head_stride: i64,
    pub v_batch_stride: i64,
    pub v_row_stride: i64,
    pub v_head_stride: i64,
    pub o_batch_stride: i64,
    pub o_row_stride: i64,
    pub o_head_stride: i64,
    pub batch: i32,
    pub num_heads: i32,
    pub num_kv_heads: i32,
    /// Maxima for varlen cells.
    pub seqlen_q: i32,
    pub seqlen_k: i32,
    /// Paged cells: blocks per sequence (width of the block table).
    pub block_table_stride: i32,
    pub softmax_scale: f32,
    /// `softmax_scale * log2(e)`.
    pub scale_log2: f32,
}

// SAFETY: FwdParams is #[repr(C)], made only of u64/i64/i32/f32 fields laid
// out exactly as the C struct (checked by the offset tests), so its bytes
// are a valid kernel argument of type `FwdParams`.
unsafe impl cudarc::driver::DeviceRepr for FwdParams {}

/// Size of the C struct on a 64-bit target.
pub const FWD_PARAMS_SIZE: usize = 232;

const _: () = assert!(std::mem::size_of::<FwdParams>() == FWD_PARAMS_SIZE);
const _: () = assert!(std::mem::align_of::<FwdParams>() == 8);
