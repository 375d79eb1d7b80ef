// ---------------------------------------------------------------------------
// Paged KV-cache decode: ABI shared with the Rust runtime (#[repr(C)] mirror).
// Order: 64-bit pointers, then long long strides (in ELEMENTS), then 32-bit
// ints / floats. Do not reorder. All tensors have a contiguous (stride 1)
// head_dim; every stride and base pointer must keep 16-byte alignment
// (strides multiples of 8 elements for f16/bf16, 16 for fp8).
//
// Cache layout (K and V alike): [num_blocks, page_size, num_kv_heads, head_dim]
//   element (blk, slot, kvh, d) at blk*block_stride + slot*page_stride
//                                  + kvh*head_stride + d.
// Token t of sequence b lives in page block_table[b*block_table_stride +
// t/page_size], slot t%page_size. Entries outside [0, num_blocks) are treated
// as masked pages (never dereferenced).
// ---------------------------------------------------------------------------
struct PagedDecodeParams {
    const void*  q;             // [batch, num_heads, head_dim] cell dtype (one decode token per sequence)
    const void*  k_cache;       // [num_blocks, page_size, num_kv_heads, head_dim] cell dtype
    const void*  v_cache;       // same layout as k_cache
    void*        o;             // [batch, num_heads, head_dim] cell dtype (num_splits > 1: written by the merge)
    float*       lse;           // [batch, num_heads] f32, natural log, contiguous; may be null
    float*       o_accum;       // workspace [num_splits, batch, num_heads, head_dim] f32, contiguous (unused when num_splits == 1)
    float*       lse_accum;     // workspace [num_splits, batch, num_heads] f32, contiguous (unused when num_splits == 1)
    const int*   block_table;   // [batch, block_table_stride] int32 page indices
    const int*   context_lens;  // [batch] int32: tokens in the cache incl. the new one (query position = len-1)
    const float* alibi_slopes;  // [num_heads] f32, alibi cells only (else may be null)
    const float* q_descale;     // fp8 cells: [batch, num_kv_heads], null = 1
    const float* k_descale;     // idem
    const float* v_descale;     // idem
    int*         merge_counters; // [2 * batch * gridDim.x] int32 (splits arrived, then slices claimed), all 0
                                 // before the launch (the kernel leaves them 0): set => warps claim slices
                                 // (one kv head per CTA) and the last split of each (sequence, kv group)
                                 // merges it, no _decode_merge;
                                 // null => launch _decode_merge when num_splits > 1
    long long q_batch_stride, q_head_stride;                   // elements
    long long k_block_stride, k_page_stride, k_head_stride;    // elements (page_stride = stride of a slot)
    long long v_block_stride, v_page_stride, v_head_stride;    // elements
    long long o_batch_stride, o_head_stride;                   // elements
    int   batch;
    int   num_heads;            // = num_kv_heads * gqa (gqa is the cell's)
    int   num_kv_heads;
    int   num_blocks;           // pages in each cache (validation bound for block_table entries)
    int   block_table_stride;   // max_blocks_per_seq (row stride of block_table; pages >= it are masked)
    int   num_splits;           // == gridDim.y of _decode; 1 => _decode writes o/lse directly
    int   heads_per_cta;        // kv heads per CTA of the launched entry: 1 (_decode, _decode_unsplit) or 2 (_decode_pair); gridDim.x = ceil(num_kv_heads / heads_per_cta)
    float softmax_scale;
    float scale_log2;           // softmax_scale * log2(e)
    int   pad_;                 // set 0 (keeps sizeof a multiple of 8)
};

// Scatter new tokens into the caches: one 16-byte chunk per thread.
struct PagedAppendParams {
    const void*      k_new;         // [num_tokens, num_kv_heads, head_dim] cell dtype
    const void*      v_new;         // idem
    void*            k_cache;       // [num_blocks, page_size, num_kv_heads, head_dim]
    void*            v_cache;       // idem
    const long long* slot_mapping;  // [num_tokens] int64: block*page_size + offset; < 0 or >= num_blocks*page_size => skipped
    long long k_new_token_stride, k_new_head_stride;           // elements
    long long v_new_token_stride, v_new_head_stride;           // elements
    long long k_block_stride, k_page_stride, k_head_stride;    // elements
    long long v_block_stride, v_page_stride, v_head_stride;    // elements
    int num_tokens;
    int num_kv_heads;
    int num_blocks;
    int pad_;                       // keeps sizeof a multiple of 8; set 0
};
