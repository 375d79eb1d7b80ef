// ---------------------------------------------------------------------------
// fwd_block: where one thread block of a forward kernel works — its batch,
// heads, sequence bounds and the base pointers of its Q, K, V, O and LSE rows.
// Shared by every forward main loop (16-bit, fp8), so the varlen, paged and
// GQA addressing is written once.
// Grid: (ceil(seqlen_q / kBlockM), num_heads, batch).
// ---------------------------------------------------------------------------

template <typename T>
struct FwdBlock {
    int h, b, kvh;               // query head, batch, KV head (h / gqa)
    int q_start;                 // varlen: first packed row of the sequence
    int s_q, s_k;                // this sequence's query and key counts
    int m0;                      // first query row (within the sequence) of this block
    const T* q_ptr;              // Q row m0 of (b, h)
    const T* k_ptr;              // K of (b, kvh); paged: of kvh in page 0
    const T* v_ptr;
    const int* block_table_row;  // paged: this sequence's pages, else null
};

// Fills `blk` for this thread block; false when the block holds no row of its
// sequence (ragged varlen batches, or the grid's tail).
template <typename T>
FA_DEVICE bool fwd_block_setup(const FwdParams& p, FwdBlock<T>& blk) {
    // Causal blocks are launched heaviest-first (largest m first).
    const int m_block = kMaskCausal ? (int)(gridDim.x - 1 - blockIdx.x) : (int)blockIdx.x;
    const int h = blockIdx.y, b = blockIdx.z;
    const int kvh = h / kGqa;

    int q_start = 0, k_start = 0, s_q = p.seqlen_q, s_k = p.seqlen_k;
    if constexpr (kVarlen) {
        q_start = p.cu_seqlens_q[b];
        s_q = p.cu_seqlens_q[b + 1] - q_start;
        if constexpr (!kPaged) {
            k_start = p.cu_seqlens_k[b];
            s_k = p.cu_seqlens_k[b + 1] - k_start;
        }
    }
    if (p.seqused_k != nullptr) s_k = p.seqused_k[b];
    const int m0 = m_block * kBlockM;
    if (m0 >= s_q) return false;

    const T* q_ptr = static_cast<const T*>(p.q) + h * p.q_head_stride +
        (kVarlen ? (long long)q_start * p.q_row_stride : (long long)b * p.q_batch_stride) +
        (long long)m0 * p.q_row_stride;
    const T* k_ptr = static_cast<const T*>(p.k) + kvh * p.k_head_stride;
    const T* v_ptr = static_cast<const T*>(p.v) + kvh * p.v_head_stride;
    const int* block_table_row = nullptr;
    if constexpr (kPaged) {
        block_table_row = p.block_table + (long long)b * p.block_table_stride;
    } else if constexpr (kVarlen) {
        k_ptr += (long long)k_start * p.k_row_stride;
        v_ptr += (long long)k_start * p.v_row_stride;
    } else {
        k_ptr += (long long)b * p.k_batch_stride;
        v_ptr += (long long)b * p.v_batch_stride;
    }
    blk = FwdBlock<T>{h, b, kvh, q_start, s_q, s_k, m0, q_ptr, k_ptr, v_ptr, block_table_row};
    return true;
}

// The epilogue's copy of the varlen row bounds, re-read from global memory
// (volatile, so the compiler cannot keep the first read alive) rather than
// carried across the main loop: at the 255-register edge of the 128-row tiles
// those two values were spilled otherwise. No-op for fixed-length batches.
template <typename T>
FA_DEVICE void fwd_block_reload_rows(const FwdParams& p, FwdBlock<T>& blk) {
    if constexpr (kVarlen) {
        const int* cu = p.cu_seqlens_q + blk.b;
        int lo, hi;
        asm volatile("ld.global.b32 %0, [%1];" : "=r"(lo) : "l"(cu));
        asm volatile("ld.global.b32 %0, [%1];" : "=r"(hi) : "l"(cu + 1));
        blk.q_start = lo;
        blk.s_q = hi - lo;
    }
}

// LSE of query row `row` of the block's sequence: [batch, heads, seqlen_q],
// varlen [heads, total_q].
template <typename T>
FA_DEVICE float* fwd_lse_rows(const FwdParams& p, const FwdBlock<T>& blk, int row) {
    return p.lse + row +
        (kVarlen ? (long long)blk.h * p.cu_seqlens_q[p.batch] + blk.q_start
                 : ((long long)blk.b * p.num_heads + blk.h) * p.seqlen_q);
}

// O (16-bit: f16, or bf16 for bf16 and fp8 cells) at query row `row`.
template <typename T>
FA_DEVICE u16* fwd_o_rows(const FwdParams& p, const FwdBlock<T>& blk, int row) {
    return static_cast<u16*>(p.o) + blk.h * p.o_head_stride +
        (kVarlen ? (long long)blk.q_start * p.o_row_stride : (long long)blk.b * p.o_batch_stride) +
        (long long)row * p.o_row_stride;
}
