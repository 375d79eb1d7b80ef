// ---------------------------------------------------------------------------
// FwdParams: ABI shared with the Rust runtime (#[repr(C)] mirror). Strides are
// in elements. Do not reorder.
// ---------------------------------------------------------------------------
struct FwdParams {
    const void* q; const void* k; const void* v; void* o; float* lse;
    const int* cu_seqlens_q; const int* cu_seqlens_k;   // varlen, else null
    const int* block_table; const int* seqused_k;        // paged: [batch, block_table_stride], context lengths [batch]; else null
    const float* alibi_slopes;                           // [num_heads] f32, alibi cells
    const float* q_descale; const float* k_descale; const float* v_descale; // fp8 cells, [batch, num_kv_heads], may be null (=1)
    long long q_batch_stride, q_row_stride, q_head_stride;
    long long k_batch_stride, k_row_stride, k_head_stride;
    long long v_batch_stride, v_row_stride, v_head_stride;
    long long o_batch_stride, o_row_stride, o_head_stride;
    int batch, num_heads, num_kv_heads;
    int seqlen_q, seqlen_k;        // maxima for varlen
    int block_table_stride;        // paged: max blocks per sequence
    float softmax_scale;
    float scale_log2;              // softmax_scale * log2(e)
};
