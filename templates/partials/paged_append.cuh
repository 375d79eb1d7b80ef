// ---------------------------------------------------------------------------
// paged_append: scatter new K/V tokens into the paged caches through a slot
// mapping (slot = block * page_size + offset). One thread = one 16-byte chunk
// of one (token, kv head) row, for K and for V. Slots < 0 (padding) or
// >= num_blocks * page_size are skipped: nothing is ever written out of range.
// ---------------------------------------------------------------------------
constexpr int kPdAppendThreads = 256;

FA_DEVICE void paged_append_thread(const PagedAppendParams& p) {
    const long long i = (long long)blockIdx.x * kPdAppendThreads + threadIdx.x;
    const long long total = (long long)p.num_tokens * p.num_kv_heads * kPdChunks;
    if (i >= total) return;
    const int c = (int)(i % kPdChunks);
    const long long th = i / kPdChunks;
    const int h = (int)(th % p.num_kv_heads);
    const long long tok = th / p.num_kv_heads;
    const long long slot = p.slot_mapping[tok];
    if (slot < 0 || slot >= (long long)p.num_blocks * kPageSize) return;
    const long long blk = slot / kPageSize, off = slot % kPageSize;
    const U32x4 kv = *(const U32x4*)((const u8*)p.k_new + (tok * p.k_new_token_stride + h * p.k_new_head_stride) * kPdElemBytes + c * 16);
    const U32x4 vv = *(const U32x4*)((const u8*)p.v_new + (tok * p.v_new_token_stride + h * p.v_new_head_stride) * kPdElemBytes + c * 16);
    *(U32x4*)((u8*)p.k_cache + (blk * p.k_block_stride + off * p.k_page_stride + h * p.k_head_stride) * kPdElemBytes + c * 16) = kv;
    *(U32x4*)((u8*)p.v_cache + (blk * p.v_block_stride + off * p.v_page_stride + h * p.v_head_stride) * kPdElemBytes + c * 16) = vv;
}
