// ---------------------------------------------------------------------------
// Entry points of the paged KV-cache kernels (params struct by value, see
// partials/paged_params.cuh; launched by fa-runtime/src/paged.rs):
//   {{ kernel_name }}_decode(PagedDecodeParams)          one kv head per CTA (p.heads_per_cta = 1)
//   {{ kernel_name }}_decode_unsplit(PagedDecodeParams)  one kv head per CTA, one split
//   {{ kernel_name }}_decode_pair(PagedDecodeParams)     two kv heads per CTA (p.heads_per_cta = 2)
//       grid (ceil(num_kv_heads / heads_per_cta), num_splits, batch), block kPdThreads
//       (32 x PD_WARPS: 128, or 64 where fa_spec::paged_decode_warps renders 2),
//       dynamic smem PdRing<hcs, unsplit>::smem.bytes (= __constant__ {{ kernel_name }}_decode_smem_bytes
//       / _decode_unsplit_smem_bytes / _decode_pair_smem_bytes; set
//       CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES).
//       _decode: num_splits is p.num_splits and must equal gridDim.y. _decode_unsplit
//       is compiled for one split (gridDim.y = 1; it ignores p.num_splits). _decode_pair
//       likewise where PD_PAIR_SPLITS is 1 (rows of 160 / 192 bytes on sm_90+); elsewhere it is
//       compiled for one split (gridDim.y = 1; it ignores p.num_splits). num_splits == 1:
//       writes o / lse.
//       Else writes o_accum [num_splits, batch, num_heads, head_dim] f32 and
//       lse_accum [num_splits, batch, num_heads] f32; with p.merge_counters
//       set, the last split of each (sequence, kv group) then merges it into
//       o / lse; without, launch
//   {{ kernel_name }}_decode_merge(PagedDecodeParams)  (same params)
//       grid ceil(batch * num_heads / 4), block 128, no dynamic smem.
//   {{ kernel_name }}_append(PagedAppendParams)
//       grid ceil(num_tokens * num_kv_heads * head_dim * elem_bytes / 16 / 256),
//       block 256, no dynamic smem.
// The split heuristic lives on the host (fa_runtime::paged::num_splits).
// ---------------------------------------------------------------------------
{% if paged_decode %}
extern "C" __constant__ int {{ kernel_name }}_decode_smem_bytes = PdRing<0>::smem.bytes;
extern "C" __constant__ int {{ kernel_name }}_decode_unsplit_smem_bytes = PdRing<0, true>::smem.bytes;
extern "C" __constant__ int {{ kernel_name }}_decode_pair_smem_bytes = PdRing<1>::smem.bytes;

extern "C" __global__ void __launch_bounds__(kPdThreads, PdRing<0>::min_blocks)
{{ kernel_name }}_decode(const PagedDecodeParams p) {
    extern __shared__ __align__(128) u8 smem[];
    paged_decode_block<0, false>(p, smem);
}

extern "C" __global__ void __launch_bounds__(kPdThreads, PdRing<0, true>::min_blocks)
{{ kernel_name }}_decode_unsplit(const PagedDecodeParams p) {
    extern __shared__ __align__(128) u8 smem[];
    paged_decode_block<0, true>(p, smem);
}

extern "C" __global__ void __launch_bounds__(kPdThreads, PdRing<1>::min_blocks)
{{ kernel_name }}_decode_pair(const PagedDecodeParams p) {
    extern __shared__ __align__(128) u8 smem[];
    paged_decode_block<1, false>(p, smem);
}

extern "C" __global__ void __launch_bounds__(kPdMergeWarps * 32)
{{ kernel_name }}_decode_merge(const PagedDecodeParams p) {
    paged_decode_merge_warp(p);
}
{% else %}
// fp8 rows of 80 bytes (hd80) have no decode kernel (fa_spec::paged_decode):
// only _append is emitted, and the runtime decodes through {{ kernel_name }}_fwd.
{% endif %}

extern "C" __global__ void __launch_bounds__(kPdAppendThreads)
{{ kernel_name }}_append(const PagedAppendParams p) {
    paged_append_thread(p);
}
