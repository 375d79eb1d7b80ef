// ---------------------------------------------------------------------------
// paged_decode: split-KV flash-decoding over a paged KV cache.
//
// One CTA = (split, group of heads_per_cta kv heads, sequence). GQA packing:
// the gqa query heads of a kv head are the rows of 16-row m-tiles (rows >= gqa
// are zero padding), so every K/V page is read once per kv head. Tensor cores: mma.sync
// m16n8k16, f32 accumulate.
//
// KV is walked in tiles of kPdBlockN = 64 smem rows (64/hc tokens x hc kv
// heads), staged through a kPdStages-deep ring in shared memory by 16-byte
// cp.async (kPdStages - 1 tiles in flight) into unpadded rows whose 16-byte
// chunks are XOR-swizzled by token (ldmatrix conflict-free; head dims that
// are not a multiple of 64 use padded rows instead). -DPD_TMA=1 (sm_90+):
// one cp.async.bulk per K/V row on a per-stage mbarrier instead, kPdStages
// tiles in flight, slower (see below). Each warp owns 16 keys of one head of
// every tile and keeps its own
// online-softmax state; warps of the same head are merged through shared
// memory at the end (log-sum-exp combine). hc > 1 makes each token's head
// rows one contiguous run of the page (better DRAM locality).
// Tokens are gathered per row, so pages may be in any order and any size
// (1..256); invisible / out-of-context / invalid-page tokens are zero-filled
// and flagged, never read.
//
// num_splits > 1: each split writes its normalised O and LSE to o_accum /
// lse_accum; with p.merge_counters set (the host does so when every CTA is
// resident at once, fa_runtime::paged::fuses_merge) the split that finishes
// last for its (sequence, kv group) merges them, else _decode_merge does.
//
// Visited tiles of N = 64/hc tokens (query position pos = ctx-1): main range
// [lo, hi), hi = ceil(ctx / N), lo = floor(max(0, pos-W+1) / N) (0 without a window),
// plus sink tiles [0, min(ceil(min(sink,ctx)/N), lo)). The list (sinks
// first) is cut into num_splits contiguous chunks of ceil(T / num_splits).
//
// Measured (H200, bf16 hd128, 32/8 heads, page 16; batch 64 x 4096 and 1 x
// 131072, same calls as SDPA cuDNN at 240 / 128 us): this kernel 271 / 154 us;
// with the evict-first policy (`fa bench --decode`, cuDNN 250 / 137 us in the
// same call): 272.5 / 155.2 us.
//   * cache layout (token-major vs head-major pages) and page order (shuffled
//     vs in order): <= 1.5%;
//   * one bulk copy per token of hc = 2 / 4 heads (1 KB) instead of per row:
//     274-278 us, no gain; warp-vote skip of the O rescale: no gain;
//   * the load pipeline alone (-DPD_LOAD_ONLY): 260 us (2 stages), 259 us (3
//     stages, 1 split), 268 us (cp.async, 3 stages), 135 us at 1 x 131072:
//     the gap to cuDNN is in fetching K/V, not in the math. ncu: 82% DRAM at
//     91% L2 throughput with a 19.6% L2 hit rate here, against 92% DRAM, 92%
//     L2 and 1% hits for cuDNN's kernel (sm80 "flash_fprop_wmma" 16x128x128,
//     4 warps, 2 CTAs/SM, grid 1 x 8 x 64, no split);
//   * L2 prefetch (cp.async.bulk.prefetch.L2) 1-4 tiles ahead: 314-444 us.
// kernels-dev/paged/layout_exp.py reproduces these (variants as -D flags).
// Tried since, none faster in a same-call A/B against this kernel (H200; cuDNN
// 242-245 / 127-130 us in the same calls; kernels-dev/paged/variant_exp.py):
//   * tensor-map TMA, one 2 KB copy per 16-token page run and 64 dims
//     (128-byte swizzled rows): 266.7 against 270.3 us;
//   * the same with warp specialisation (a producer warp, full / empty
//     mbarriers, 160 threads, 3 CTAs/SM): 262-265 us in three calls where this
//     kernel took 264-271, but 267.5 / 149.4 against 267.0 / 149.3 us in the
//     last, with the maps as __grid_constant__ params; correct on every test.
//     Kept on the branch exp/paged-decode-ws (runtime encoding included);
//   * block-table lookups a tile ahead, releasing a stage once the warps hold
//     it in registers, 3-4 stages: no change; a cp.async producer warp: 470 us,
//     a cp.async producer warpgroup (setmaxnreg): 462 us; this kernel's
//     cp.async path with 3 stages: 306-336 us.
// Where the gap is (kernels-dev/paged/stream_probe.py: the same 1.07 GB in
// the same page order, nothing computed; H200, cuDNN 240-245 us): plain
// 16-byte loads with >= 128 KB in flight per SM 233-241 us; TMA rings of 2 x
// 32 KB stages at 3 CTAs/SM (`stream_probe.py align`) depend on the shared-
// memory destination: 256-byte rows 244 us into 128-byte-aligned rows, 249
// us at a 288-byte stride, 254 us at 272; 1-2 KB pieces 241-244 us aligned,
// 255-262 us at +16 / +32; 128-byte pieces (what a 128-byte-swizzled tensor
// map fetches) 297-322 us. This kernel without its math (-DPD_LOAD_ONLY) at
// 3 splits: 248.5 us with 256-byte rows, 265 us at 288 (H200); 358 / 365 us
// on an H100 where cuDNN took 354. So aligned row copies read as fast as
// cuDNN, but aligned rows put the 8 keys of an ldmatrix phase in one bank
// group (8-way conflicts: 389 us whole, H100), no bulk copy can swizzle, and
// a swizzling tensor map fetches 128-byte pieces. The row stride above is
// the best compromise found. Its cost is bounded by -DPD_ROW_PAD=0
// -DPD_FAKE_SWIZZLE (aligned rows, conflict-free reads of the wrong
// columns): 260.5 against 266.2 us at 64 x 4096 and 141 against 144-148 us
// at 1 x 131072 (fused), cuDNN 245.5 / 129.4 in the same call (H200). The
// rest is the math's overlap with the copies.
// Also measured, no gain: per-warp pipelines (each warp fetches and releases
// its own 16 K / V rows on its own mbarriers, no __syncthreads: 265.6
// against 265.8 us); each misaligned row as two bulk copies, the longer one
// 128-byte aligned (317 against 268.5 us); a tile's K / V fragments all
// loaded into registers before the stage is refilled (278 us at 2 CTAs/SM
// with 192 registers, 321 us at 3 with 168 and spills; 293.5 us with aligned
// rows and conflict-free reads); 2 warps per CTA with 32-row tiles (6
// CTAs/SM) or 3-4 stages; 6-16 splits; this kernel's cp.async path (copies
// alone at best 268 us, whole kernel 324, cuDNN 240 in that call), also with
// unpadded XOR-swizzled rows (conflict-free: 308-311 us, copies alone 291);
// CTA counts that fill whole waves (64 -> 66 sequences: 93.2 against 92.7%
// of copy, H100). Not tried: a CUDA-core (FMA) inner loop, which could read
// aligned rows without ldmatrix but carries more math than the bound above.
// Next step (branch exp/paged-decode-cpasync): a bare cp.async ring reads
// the same bytes in 244-254 us (`stream_probe.py cpasync`), and a cp.async
// loader that issues all of a thread's block-table lookups before its
// copies, into XOR-swizzled unpadded rows, took 265.4 us at 64 x 4096 and
// 138.1 us at 1 x 131072 (fused) as first written, before the branch's
// minimum-CTA launch bound and lookup groups, against 270.0 / 149.7 for this
// kernel in the same call (copies alone 253.7, 243.0 with 3 stages; 2 warps
// per CTA 257.7; cuDNN 239.8 / 128.7, H200), correct on every harness cell.
// It is not on main because its fully unrolled copy loop spills (160 B at
// hd256, 44 B at hd128 with pages of 1), and not unrolled it is slower than
// this kernel: 291 us (copies alone 286.8) with the lookups in local memory,
// 278.9 against 268.4 us (147.1 against 145.6 at 1 x 131072 fused) with them
// shifted through registers, no spills, every test passing.
// ---------------------------------------------------------------------------
#ifndef PD_WARPS   // measurement override (harness only: the runtime launches 128 threads)
#define PD_WARPS 4
#endif
constexpr int kPdWarps     = PD_WARPS;
constexpr int kPdThreads   = kPdWarps * 32;
constexpr int kPdBlockN    = 16 * kPdWarps;                 // smem rows per pipeline tile
constexpr int kPdTileShift = kPdBlockN == 128 ? 7 : (kPdBlockN == 64 ? 6 : 5);   // log2(kPdBlockN)
static_assert(1 << kPdTileShift == kPdBlockN, "kPdTileShift");
#ifndef PD_STAGES                                           // tuning override (-DPD_STAGES=n)
#define PD_STAGES 2   // measured on H200: 2 stages (3 CTAs/SM at hd128) beat 3 (2 CTAs/SM) and 4
#endif
constexpr int kPdStages    = PD_STAGES;
// K/V are read once: their bulk copies carry an L2 evict-first policy.
// Measured (H200, 64 x 4096, splits 2 / 3 / 4, same call): 275.6 / 266.2 /
// 280.0 us against 277.0 / 269.2 / 283.7 us without (-DPD_EVICT_FIRST=0).
#ifndef PD_EVICT_FIRST
#define PD_EVICT_FIRST 1
#endif
// -DPD_TMA=1 (sm_90+): K/V rows fetched with one cp.async.bulk (TMA bulk copy,
// 1 row per thread) completing on a per-stage mbarrier, instead of 16-byte
// cp.async chunks. Measured (H200, same call, cuDNN 239.8 / 128.7 us): 270.0
// / 149.7 us (1 x 131072 with the fused merge) against 265.4 / 138.1 for the
// cp.async loader.
#ifndef PD_TMA                                              // measurement override (-DPD_TMA=1)
#define PD_TMA 0
#endif
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
#define PD_ARCH_TMA 1
#else
#define PD_ARCH_TMA 0
#endif
constexpr bool kPdTma = kSm >= 90 && PD_ARCH_TMA && PD_TMA && !kIsFp8;
constexpr int kPdMT        = (kGqa + 15) / 16;              // 16-row m-tiles of query heads
constexpr int kPdRows      = kPdMT * 16;
constexpr int kPdElemBytes = kIsFp8 ? 1 : 2;
constexpr int kPdChunks    = kHeadDim * kPdElemBytes / 16;  // 16-byte chunks per K/V row
// Shared-memory row stride of the K/V ring. cp.async: unpadded, chunk c of
// the row of token key at chunk c ^ (key & 7), so the 8 keys an ldmatrix
// phase reads fall in 8 distinct 16-byte bank groups; + 16 bytes (same
// effect) where a row is not a multiple of 128 bytes. TMA (a bulk copy
// cannot swizzle): an odd multiple of 32 bytes. A bulk copy into a destination that is only
// 16-byte aligned is slower, and 32-byte alignment leaves 4 distinct bank
// groups (a 2-way ldmatrix conflict). Measured (H100, bf16 hd128, 64 x 4096,
// same call, SDPA cuDNN 354 us): row stride 272 / 288 / 256 bytes: whole
// kernel 383 / 373 / 389 us, copies alone (-DPD_LOAD_ONLY) 375 / 365 / 358.
constexpr bool kPdSwizzle = !kPdTma && kPdChunks % 8 == 0;
#ifndef PD_ROW_PAD                                          // tuning override (-DPD_ROW_PAD=n bytes)
#define PD_ROW_PAD (kPdTma ? (32 - kHeadDim * 2 % 64 + 64) % 64 : (kPdSwizzle ? 0 : 16))
#endif
constexpr int kPdRowBytes  = kHeadDim * 2 + PD_ROW_PAD;     // padded smem row
constexpr int kPdKVBytes   = kPdBlockN * kPdRowBytes;       // one K (or V) stage
constexpr int kPdPipeBytes = kPdStages * 2 * kPdKVBytes;
constexpr int kPdOStride   = kHeadDim + 4;                  // f32 row stride of the warp-combine buffer
constexpr int kPdComboBytes = kPdWarps * kPdRows * (kPdOStride + 1) * 4;
constexpr int kPdRegionA   = kPdPipeBytes > kPdComboBytes ? kPdPipeBytes : kPdComboBytes;
constexpr int kPdQOffset   = (kPdRegionA + 127) / 128 * 128;
constexpr int kPdFlagOffset = kPdQOffset;   // (Q lives in registers, loaded from global)
// Dynamic shared memory of _decode (bytes); also exported as
// <kernel>_decode_smem_bytes (__constant__ int).
constexpr int kPdBarOffset = (kPdFlagOffset + kPdStages * kPdBlockN + 7) / 8 * 8;   // kPdStages mbarriers (TMA path)
constexpr int kPdSmemBytes = (kPdBarOffset + kPdStages * 8 + 127) / 128 * 128;
// CTAs per SM that shared memory allows (228 KB, 1 KB reserved per CTA), up
// to 3: the register budget of __launch_bounds__, so registers never cost
// occupancy that shared memory would give (3: 170 registers a thread).
constexpr int kPdSmemCtas  = 233472 / (kPdSmemBytes + 1024);
constexpr int kPdMinBlocks = kPdSmemCtas < 1 ? 1 : (kPdSmemCtas > 3 ? 3 : kPdSmemCtas);
constexpr u32 kPdRowGBytes = kHeadDim * kPdElemBytes;       // one K/V row in global memory
static_assert(!kPdTma || kPdThreads == 2 * kPdBlockN, "TMA loader: one K or V row per thread");
constexpr bool kPdLogitsScaled = kHasSoftcap || kAlibi;     // scores carried as true logits
constexpr int kPdMergeWarps = 4;                            // (b, h) pairs per _decode_merge CTA
constexpr int kPdAppendThreads = 256;
// fwd.cu.tera sets kSoftcap = 0 when the cell has no softcap: divide by this one.
constexpr float kPdSoftcap = kHasSoftcap ? kSoftcap : 1.0f;

struct alignas(16) PdF4 { float x, y, z, w; };
template <int N> struct PdInt { static constexpr int value = N; };
struct alignas(8)  PdF2 { float x, y; };

struct PdRange {
    int lo, hi, sink_tiles;
    FA_DEVICE int count() const { return sink_tiles + (hi - lo); }
    FA_DEVICE int tile(int v) const { return v < sink_tiles ? v : lo + (v - sink_tiles); }
};

// Tiles of n = 2^shift tokens visited by the query at position ctx-1.
FA_DEVICE PdRange pd_range(int ctx, int shift) {
    const int n = 1 << shift;
    PdRange r;
    r.hi = (ctx + n - 1) >> shift;
    int key_lo = 0;
    if constexpr (kWindow > 0) key_lo = max(0, ctx - kWindow);   // pos - W + 1
    r.lo = min(key_lo >> shift, r.hi);
    r.sink_tiles = 0;
    if constexpr (kSink > 0) {
        const int sh = min(kSink, ctx);
        r.sink_tiles = min((sh + n - 1) >> shift, r.lo);
    }
    return r;
}

// Visibility of key j (0 <= j < ctx, so j <= pos and causality holds).
FA_DEVICE bool pd_visible(int j, int pos) {
    bool vis = true;
    if constexpr (kWindow > 0) vis = j > pos - kWindow;
    if constexpr (kSink > 0) vis = vis || (j < kSink);
    return vis;
}

FA_DEVICE float pd_warp_max(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}
FA_DEVICE float pd_warp_sum(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

// --- mbarrier / bulk-copy wrappers (sm_90+; empty elsewhere, never called there)
FA_DEVICE void pd_mbar_init(u32 bar, u32 count) {
#if PD_ARCH_TMA
    asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;" :: "r"(bar), "r"(count) : "memory");
    asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
#endif
}
FA_DEVICE void pd_mbar_arrive(u32 bar) {
#if PD_ARCH_TMA
    asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];" :: "r"(bar) : "memory");
#endif
}
FA_DEVICE void pd_mbar_arrive_tx(u32 bar, u32 bytes) {
#if PD_ARCH_TMA
    asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" :: "r"(bar), "r"(bytes) : "memory");
#endif
}
FA_DEVICE void pd_mbar_wait(u32 bar, u32 parity) {
#if PD_ARCH_TMA
    u32 done = 0;
    while (!done)
        asm volatile("{ .reg .pred P; mbarrier.try_wait.parity.shared::cta.b64 P, [%1], %2; selp.u32 %0, 1, 0, P; }"
                     : "=r"(done) : "r"(bar), "r"(parity) : "memory");
#endif
}
FA_DEVICE void pd_bulk_g2s(u32 dst, const void* src, u32 bytes, u32 bar) {
#if PD_ARCH_TMA
#if PD_EVICT_FIRST
    unsigned long long pol;
    asm volatile("createpolicy.fractional.L2::evict_first.b64 %0, 1.0;" : "=l"(pol));
    asm volatile("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes.L2::cache_hint [%0], [%1], %2, [%3], %4;"
                 :: "r"(dst), "l"(src), "r"(bytes), "r"(bar), "l"(pol) : "memory");
#else
    asm volatile("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];"
                 :: "r"(dst), "l"(src), "r"(bytes), "r"(bar) : "memory");
#endif
#endif
}
FA_DEVICE void pd_fence_proxy_async() {
#if PD_ARCH_TMA
    asm volatile("fence.proxy.async.shared::cta;" ::: "memory");
#endif
}

// Largest divisor of n that is <= cap (n, cap >= 1).
constexpr int pd_divisor_upto(int n, int cap) {
    int d = cap < n ? cap : n;
    while (n % d != 0) --d;
    return d;
}
// Ring position of 16-byte chunk c of a K/V row of token `key` (tile-relative).
FA_DEVICE int pd_chunk(int c, int key) { return kPdSwizzle ? c ^ (key & 7) : c; }
// Byte column of an ldmatrix row address. -DPD_FAKE_SWIZZLE (measurement aid,
// wrong results): swizzled reads of unswizzled TMA rows, i.e. the math's
// shared-memory traffic without bank conflicts whatever the row stride.
FA_DEVICE int pd_ld_col(int col, int key) {
#ifdef PD_FAKE_SWIZZLE
    return col ^ ((key & 7) << 4);
#else
    return pd_chunk(col >> 4, key) * 16 + (col & 15);
#endif
}

// 4 f32 -> 4 packed 16-bit values (8 bytes) of the cell dtype.
FA_DEVICE void pd_store4(void* dst, const PdF4& v) {
    u32 lo = pack_x2<kIsBF16>(v.x, v.y), hi = pack_x2<kIsBF16>(v.z, v.w);
    asm volatile("st.global.v2.b32 [%0], { %1, %2};" :: "l"(dst), "r"(lo), "r"(hi) : "memory");
}

// Loads through L2 (.cg): in the fused merge other CTAs of this launch wrote
// the partials, so this SM's L1 must not answer for them.
FA_DEVICE float pd_ldcg(const float* a) {
    float v;
    asm("ld.global.cg.f32 %0, [%1];" : "=f"(v) : "l"(a));
    return v;
}
FA_DEVICE PdF4 pd_ldcg4(const float* a) {
    PdF4 v;
    asm("ld.global.cg.v4.f32 { %0, %1, %2, %3 }, [%4];" : "=f"(v.x), "=f"(v.y), "=f"(v.z), "=f"(v.w) : "l"(a));
    return v;
}
// O of (sequence b, query head h) = sum_s exp(lse_s - lse) O_s over the
// splits' partials, by one warp.
FA_DEVICE void pd_merge_head(const PagedDecodeParams& p, int b, int h, int lane) {
    const int wg = b * p.num_heads + h;
    const int S = p.num_splits;
    const long long plane = (long long)p.batch * p.num_heads;
    const float* la = p.lse_accum + wg;
    float mx = FA_NEG_INF;
    for (int s = lane; s < S; s += 32) mx = fmaxf(mx, pd_ldcg(la + s * plane));
    mx = pd_warp_max(mx);
    float sum = 0.0f;
    if (mx != FA_NEG_INF)
        for (int s = lane; s < S; s += 32) sum += fast_exp2((pd_ldcg(la + s * plane) - mx) * kLog2e);
    sum = pd_warp_sum(sum);
    const float lse = mx == FA_NEG_INF ? FA_NEG_INF : mx + fast_log2(sum) * kLn2;
    for (int c4 = lane; c4 < kHeadDim / 4; c4 += 32) {
        PdF4 acc = {0.0f, 0.0f, 0.0f, 0.0f};
        if (mx != FA_NEG_INF) {
            for (int s = 0; s < S; ++s) {
                const float wt = fast_exp2((pd_ldcg(la + s * plane) - lse) * kLog2e);
                if (wt > 0.0f) {
                    const PdF4 ov = pd_ldcg4(p.o_accum + (s * plane + wg) * kHeadDim + c4 * 4);
                    acc.x += wt * ov.x; acc.y += wt * ov.y; acc.z += wt * ov.z; acc.w += wt * ov.w;
                }
            }
        }
        u8* dst = (u8*)p.o + ((long long)b * p.o_batch_stride + (long long)h * p.o_head_stride + c4 * 4) * 2;
        pd_store4(dst, acc);
    }
    if (lane == 0 && p.lse != nullptr) p.lse[wg] = lse;
}

// CTA = (split, group of hc = heads_per_cta kv heads, sequence). A pipeline
// tile is kPdBlockN = 64 smem rows = (64 / hc) tokens x hc heads, token-major,
// so for hc > 1 each token's hc head rows are one contiguous run of the page.
// Warp w serves kv head kvh0 + (w % hc) and the 16-token slice w / hc of the tile.
FA_DEVICE void paged_decode_block(const PagedDecodeParams& p, u8* smem) {
    const int split = blockIdx.x, b = blockIdx.z;
    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
    const int g = lane >> 2, t = lane & 3;
    const int hcs = p.heads_per_cta >= 4 ? 2 : (p.heads_per_cta >= 2 ? 1 : 0);   // log2(hc)
    const int hc = 1 << hcs;
    const int kvh0 = blockIdx.y * hc;
    const int tshift = kPdTileShift - hcs;      // log2(tokens per tile)
    const int hw = warp & (hc - 1);             // this warp's head within the group
    const int kb = warp >> hcs;                 // this warp's 16-token slice
    const int my_kvh = kvh0 + hw;

    const int ctx = max(p.context_lens[b], 0);
    const int pos = ctx - 1;
    const PdRange rg = pd_range(ctx, tshift);
    const int total = rg.count();
    const int per = (total + p.num_splits - 1) / p.num_splits;
    const int v0 = min(split * per, total);
    const int n_tiles = min(v0 + per, total) - v0;

    u8* flags = smem + kPdFlagOffset;
    const u32 pipe_base = smem_addr(smem);

    const int* bt = p.block_table + (long long)b * p.block_table_stride;
    const u8* kc = (const u8*)p.k_cache;
    const u8* vc = (const u8*)p.v_cache;

    // Loader, specialised on log2(hc) so the row -> (token, head) split is free.
    auto load_tile_hc = [&](auto hcs_c, int v, int stage) {
        constexpr int HS = decltype(hcs_c)::value;
        constexpr int HC = 1 << HS;
        const int tok0 = rg.tile(v0 + v) << (kPdTileShift - HS);
        const u32 ks = pipe_base + stage * (2 * kPdKVBytes);
        const u32 vs = ks + kPdKVBytes;
        // The block-table lookups of kGrp rows first (independent loads in
        // flight together), then their copies: one lookup per copy in between
        // left the copies waiting on each load in turn (copies alone 291
        // against 254 us, H200). kGrp bounds the registers the lookups hold.
        constexpr int kIt = kPdBlockN * kPdChunks / kPdThreads;   // chunks per thread
        static_assert(kIt * kPdThreads == kPdBlockN * kPdChunks, "cp.async loader: whole chunks per thread");
        constexpr int kGrp = pd_divisor_upto(kIt, 8);
#pragma unroll
        for (int u0 = 0; u0 < kIt; u0 += kGrp) {
            int blk[kGrp];
#pragma unroll
            for (int g2 = 0; g2 < kGrp; ++g2) {
                const int r = (tid + (u0 + g2) * kPdThreads) / kPdChunks;
                const int j = tok0 + (r >> HS);
                const int kvh = kvh0 + (r & (HC - 1));
                const int pg = j / kPageSize;
                const bool live = j < ctx && kvh < p.num_kv_heads && pd_visible(j, pos) && pg < p.block_table_stride;
                blk[g2] = live ? __ldg(bt + pg) : -1;
            }
// Unrolled: 265.4 us at 64 x 4096 (copies alone 253.7) but 160 / 44 bytes of
// spills at hd256 / hd128 with pages of 1. Not unrolled, blk[g2] (a dynamic
// index) lived in local memory: copies alone 286.8 us (H200, cuDNN 245.1).
// So: not unrolled, and the lookups shift down so that only blk[0] is read:
// no spills, no stack frame, correct on every harness cell and runtime test
// (memcheck clean), but 278.9 against 268.4 us for main's TMA loader at 64 x
// 4096 and 147.1 against 145.6 at 1 x 131072 fused (H200, same call, cuDNN
// 245.0 / 129.6): the speed came from the unrolled copy issue.
#pragma unroll 1
            for (int g2 = 0; g2 < kGrp; ++g2) {
                const int b0 = blk[0];
#pragma unroll
                for (int q = 0; q + 1 < kGrp; ++q) blk[q] = blk[q + 1];
                const int i = tid + (u0 + g2) * kPdThreads;
                const int r = i / kPdChunks, c = i % kPdChunks;
                const int j = tok0 + (r >> HS);
                const int kvh = kvh0 + (r & (HC - 1));
                const bool ok = b0 >= 0 && b0 < p.num_blocks;   // invalid entries read nothing
                const int slot = j % kPageSize;
                const long long kofs = ok ? ((long long)b0 * p.k_block_stride + (long long)slot * p.k_page_stride + (long long)kvh * p.k_head_stride) * kPdElemBytes + c * 16 : 0;
                const long long vofs = ok ? ((long long)b0 * p.v_block_stride + (long long)slot * p.v_page_stride + (long long)kvh * p.v_head_stride) * kPdElemBytes + c * 16 : 0;
                const u32 dst = r * kPdRowBytes + pd_chunk(c, r >> HS) * 16;
                cp_async_16(ks + dst, kc + kofs, ok);
                cp_async_16(vs + dst, vc + vofs, ok);
                if (c == 0) flags[stage * kPdBlockN + r] = ok ? 1 : 0;
            }
        }
    };
    // TMA loader: thread tid fetches smem row tid % 64 of K (tid < 64) or V with
    // one bulk copy; masked rows are zero-filled by plain stores (no bytes expected).
    const u32 bar_base = pipe_base + kPdBarOffset;
    auto load_tile_tma = [&](auto hcs_c, int v, int stage) {
        constexpr int HS = decltype(hcs_c)::value;
        constexpr int HC = 1 << HS;
        const int tok0 = rg.tile(v0 + v) << (kPdTileShift - HS);
        const int r = tid & (kPdBlockN - 1);
        const bool isv = tid >= kPdBlockN;
        const int j = tok0 + (r >> HS);
        const int kvh = kvh0 + (r & (HC - 1));
        bool ok = j < ctx && kvh < p.num_kv_heads && pd_visible(j, pos);
        const u8* src = isv ? vc : kc;
        if (ok) {
            const int pg = j / kPageSize;
            const int blk = pg < p.block_table_stride ? bt[pg] : -1;
            ok = blk >= 0 && blk < p.num_blocks;
            const int slot = j % kPageSize;
            src += isv ? ((long long)blk * p.v_block_stride + (long long)slot * p.v_page_stride + (long long)kvh * p.v_head_stride) * kPdElemBytes
                       : ((long long)blk * p.k_block_stride + (long long)slot * p.k_page_stride + (long long)kvh * p.k_head_stride) * kPdElemBytes;
        }
        const u32 dst = pipe_base + stage * (2 * kPdKVBytes) + (isv ? kPdKVBytes : 0) + r * kPdRowBytes;
        const u32 bar = bar_base + stage * 8;
        if (ok) {
            pd_mbar_arrive_tx(bar, kPdRowGBytes);
            pd_bulk_g2s(dst, src, kPdRowGBytes, bar);
        } else {
#pragma unroll
            for (int c = 0; c < kPdChunks; ++c)
                asm volatile("st.shared.v4.b32 [%0], { %1, %1, %1, %1 };" :: "r"(dst + c * 16), "r"(0u) : "memory");
            pd_fence_proxy_async();   // generic zero stores before later async-proxy writes of this row
            pd_mbar_arrive(bar);
        }
        if (!isv) flags[stage * kPdBlockN + r] = ok ? 1 : 0;
    };
    auto load_tile = [&](int v, int stage) {
        if constexpr (kPdTma) {
            if (hcs == 0) load_tile_tma(PdInt<0>(), v, stage);
            else if (hcs == 1) load_tile_tma(PdInt<1>(), v, stage);
            else load_tile_tma(PdInt<2>(), v, stage);
        } else {
            if (hcs == 0) load_tile_hc(PdInt<0>(), v, stage);
            else if (hcs == 1) load_tile_hc(PdInt<1>(), v, stage);
            else load_tile_hc(PdInt<2>(), v, stage);
        }
    };
    if constexpr (kPdTma) {
        if (tid < kPdStages) pd_mbar_init(bar_base + tid * 8, kPdThreads);
        __syncthreads();
    }

    // ---- prologue: start the KV ring, then Q fragments straight from global
    // TMA: all kPdStages stages are filled up front, and tile it + kPdStages is
    // issued right after tile it has been consumed (before waiting for it + 1),
    // so up to kPdStages tiles are in flight per CTA. cp.async: kPdStages - 1.
    constexpr int kPdAhead = kPdTma ? kPdStages : kPdStages - 1;
#pragma unroll
    for (int s = 0; s < kPdAhead; ++s) {
        if (s < n_tiles) load_tile(s, s);
        if constexpr (!kPdTma) cp_async_commit();
    }
    if constexpr (kPdTma) __syncthreads();   // flags / zero-filled rows of the prologue tiles
    u32 qf[kPdMT][kHeadDim / 16][4];
    {
        const u32* qrow[kPdMT][2];
#pragma unroll
        for (int mt = 0; mt < kPdMT; ++mt)
#pragma unroll
            for (int r = 0; r < 2; ++r) {
                const int row = mt * 16 + g + 8 * r;
                qrow[mt][r] = (row < kGqa && my_kvh < p.num_kv_heads)
                    ? (const u32*)((const u16*)p.q + (long long)b * p.q_batch_stride + (long long)(my_kvh * kGqa + row) * p.q_head_stride)
                    : nullptr;
            }
#pragma unroll
        for (int mt = 0; mt < kPdMT; ++mt)
#pragma unroll
            for (int kk = 0; kk < kHeadDim / 16; ++kk)
#pragma unroll
                for (int e = 0; e < 4; ++e) {
                    const u32* src = qrow[mt][e & 1];
                    qf[mt][kk][e] = src ? src[kk * 8 + (e >> 1) * 4 + t] : 0u;
                }
    }

    float o[kPdMT][kHeadDim / 8][4];
    float m[kPdMT][2], l[kPdMT][2];
    float slope[kPdMT][2];
#pragma unroll
    for (int mt = 0; mt < kPdMT; ++mt) {
#pragma unroll
        for (int dn = 0; dn < kHeadDim / 8; ++dn)
#pragma unroll
            for (int e = 0; e < 4; ++e) o[mt][dn][e] = 0.0f;
#pragma unroll
        for (int r = 0; r < 2; ++r) {
            m[mt][r] = FA_NEG_INF; l[mt][r] = 0.0f; slope[mt][r] = 0.0f;
            if constexpr (kAlibi) {
                const int row = mt * 16 + g + 8 * r;
                if (row < kGqa && my_kvh < p.num_kv_heads) slope[mt][r] = p.alibi_slopes[my_kvh * kGqa + row];
            }
        }
    }
    const float C = kPdLogitsScaled ? kLog2e : p.scale_log2;
    // smem row of this warp's key k (0..15) within a tile: (kb*16 + k) * hc + hw
    const int krow_ld = ((kb * 16 + (lane >> 4) * 8 + (lane & 7)) << hcs) + hw;        // ldmatrix (K)
    const int vrow_ld = ((kb * 16 + ((lane >> 3) & 1) * 8 + (lane & 7)) << hcs) + hw;  // ldmatrix.trans (V)

    // ---- main loop
    for (int it = 0; it < n_tiles; ++it) {
        if constexpr (kPdTma) {
            pd_mbar_wait(bar_base + (it % kPdStages) * 8, (it / kPdStages) & 1);
        } else {
            cp_async_wait<kPdStages - 2>();
            __syncthreads();
            if (it + kPdStages - 1 < n_tiles) load_tile(it + kPdStages - 1, (it + kPdStages - 1) % kPdStages);
            cp_async_commit();
        }

        const int stage = it % kPdStages;
#ifndef PD_LOAD_ONLY   // measurement aid (-DPD_LOAD_ONLY): the K/V pipeline without the math; wrong results
        const int key0 = (rg.tile(v0 + it) << tshift) + kb * 16;   // first key of this warp
        const u32 ks = pipe_base + stage * (2 * kPdKVBytes);
        const u32 vs = ks + kPdKVBytes;
        const u8* fl = flags + stage * kPdBlockN;

        float s[kPdMT][2][4];
#pragma unroll
        for (int mt = 0; mt < kPdMT; ++mt)
#pragma unroll
            for (int nt = 0; nt < 2; ++nt)
#pragma unroll
                for (int e = 0; e < 4; ++e) s[mt][nt][e] = 0.0f;
#pragma unroll
        for (int kk = 0; kk < kHeadDim / 16; ++kk) {
            u32 kbf[4];
            ldmatrix_x4(kbf, ks + krow_ld * kPdRowBytes + pd_ld_col((kk * 16 + ((lane >> 3) & 1) * 8) * 2, krow_ld >> hcs));
#pragma unroll
            for (int mt = 0; mt < kPdMT; ++mt) {
                mma_16816<kIsBF16>(s[mt][0], qf[mt][kk], kbf[0], kbf[1]);
                mma_16816<kIsBF16>(s[mt][1], qf[mt][kk], kbf[2], kbf[3]);
            }
        }

        // mask + score modifiers
        bool vis[2][2];
#pragma unroll
        for (int nt = 0; nt < 2; ++nt)
#pragma unroll
            for (int e = 0; e < 2; ++e) vis[nt][e] = fl[((kb * 16 + nt * 8 + 2 * t + e) << hcs) + hw] != 0;
#pragma unroll
        for (int mt = 0; mt < kPdMT; ++mt)
#pragma unroll
            for (int nt = 0; nt < 2; ++nt)
#pragma unroll
                for (int e = 0; e < 4; ++e) {
                    float x = s[mt][nt][e];
                    if constexpr (kPdLogitsScaled) {
                        x *= p.softmax_scale;
                        if constexpr (kHasSoftcap) x = kPdSoftcap * tanh_accurate(x * (1.0f / kPdSoftcap));
                        if constexpr (kAlibi) x -= slope[mt][e >> 1] * (float)(pos - (key0 + nt * 8 + 2 * t + (e & 1)));
                    }
                    s[mt][nt][e] = vis[nt][e & 1] ? x : FA_NEG_INF;
                }

        // online softmax (exp2 domain)
#pragma unroll
        for (int mt = 0; mt < kPdMT; ++mt)
#pragma unroll
            for (int r = 0; r < 2; ++r) {
                float mx = m[mt][r];
#pragma unroll
                for (int nt = 0; nt < 2; ++nt)
                    mx = fmaxf(mx, fmaxf(s[mt][nt][2 * r], s[mt][nt][2 * r + 1]));
                mx = quad_max(mx);
                const float msc = mx == FA_NEG_INF ? 0.0f : mx * C;
                const float alpha = fast_exp2(m[mt][r] * C - msc);
                m[mt][r] = mx;
                float sum = 0.0f;
#pragma unroll
                for (int nt = 0; nt < 2; ++nt)
#pragma unroll
                    for (int e = 0; e < 2; ++e) {
                        const float pv = fast_exp2(s[mt][nt][2 * r + e] * C - msc);
                        s[mt][nt][2 * r + e] = pv;
                        sum += pv;
                    }
                l[mt][r] = l[mt][r] * alpha + sum;
#pragma unroll
                for (int dn = 0; dn < kHeadDim / 8; ++dn) {
                    o[mt][dn][2 * r] *= alpha;
                    o[mt][dn][2 * r + 1] *= alpha;
                }
            }

        // O += P V
        u32 pa[kPdMT][4];
#pragma unroll
        for (int mt = 0; mt < kPdMT; ++mt) {
            pa[mt][0] = pack_x2<kIsBF16>(s[mt][0][0], s[mt][0][1]);
            pa[mt][1] = pack_x2<kIsBF16>(s[mt][0][2], s[mt][0][3]);
            pa[mt][2] = pack_x2<kIsBF16>(s[mt][1][0], s[mt][1][1]);
            pa[mt][3] = pack_x2<kIsBF16>(s[mt][1][2], s[mt][1][3]);
        }
#pragma unroll
        for (int dn = 0; dn < kHeadDim / 16; ++dn) {
            u32 vb[4];
            ldmatrix_x4_trans(vb, vs + vrow_ld * kPdRowBytes + pd_ld_col((dn * 16 + (lane >> 4) * 8) * 2, vrow_ld >> hcs));
#pragma unroll
            for (int mt = 0; mt < kPdMT; ++mt) {
                mma_16816<kIsBF16>(o[mt][2 * dn], pa[mt], vb[0], vb[1]);
                mma_16816<kIsBF16>(o[mt][2 * dn + 1], pa[mt], vb[2], vb[3]);
            }
        }
#endif
        if constexpr (kPdTma) {
            __syncthreads();   // stage of tile it consumed by every warp (also publishes flags / zero rows of tile it + 1)
            if (it + kPdStages < n_tiles) load_tile(it + kPdStages, it % kPdStages);
        }
    }
    if constexpr (!kPdTma) cp_async_wait<0>();   // (TMA: every issued tile was waited for)
    __syncthreads();   // ring no longer read: reuse it as the warp-combine buffer

    // ---- combine the warps of each head (each normalised, with its log2-LSE)
    float* so = (float*)smem;
    float* slse = so + kPdWarps * kPdRows * kPdOStride;
#pragma unroll
    for (int mt = 0; mt < kPdMT; ++mt)
#pragma unroll
        for (int r = 0; r < 2; ++r) {
            const float lsum = quad_sum(l[mt][r]);
            const int row = mt * 16 + g + 8 * r;
            const float inv = lsum > 0.0f ? 1.0f / lsum : 0.0f;
            if (t == 0) slse[warp * kPdRows + row] = lsum > 0.0f ? m[mt][r] * C + fast_log2(lsum) : FA_NEG_INF;
            float* dst = so + (warp * kPdRows + row) * kPdOStride + 2 * t;
#pragma unroll
            for (int dn = 0; dn < kHeadDim / 8; ++dn) {
                PdF2 v2; v2.x = o[mt][dn][2 * r] * inv; v2.y = o[mt][dn][2 * r + 1] * inv;
                *(PdF2*)(dst + dn * 8) = v2;
            }
        }
    __syncthreads();

    const bool direct = p.num_splits == 1;
    const int nslices = kPdWarps >> hcs;        // warps per head
    for (int i = tid; i < (kGqa << hcs) * (kHeadDim / 4); i += kPdThreads) {
        const int hr = i / (kHeadDim / 4), c4 = i % (kHeadDim / 4);
        const int hh = hr / kGqa, row = hr % kGqa;
        const int kvh = kvh0 + hh;
        if (kvh >= p.num_kv_heads) continue;
        float mx = FA_NEG_INF;
        for (int sl = 0; sl < nslices; ++sl) mx = fmaxf(mx, slse[((sl << hcs) + hh) * kPdRows + row]);
        PdF4 acc = {0.0f, 0.0f, 0.0f, 0.0f};
        float wsum = 0.0f;
        if (mx != FA_NEG_INF) {
            for (int sl = 0; sl < nslices; ++sl) {
                const int w = (sl << hcs) + hh;
                const float wt = fast_exp2(slse[w * kPdRows + row] - mx);
                const PdF4 ov = *(const PdF4*)(so + (w * kPdRows + row) * kPdOStride + c4 * 4);
                wsum += wt;
                acc.x += wt * ov.x; acc.y += wt * ov.y; acc.z += wt * ov.z; acc.w += wt * ov.w;
            }
            const float inv = 1.0f / wsum;
            acc.x *= inv; acc.y *= inv; acc.z *= inv; acc.w *= inv;
        }
        const float lse_nat = mx == FA_NEG_INF ? FA_NEG_INF : (mx + fast_log2(wsum)) * kLn2;
        const int h = kvh * kGqa + row;
        if (direct) {
            u8* dst = (u8*)p.o + ((long long)b * p.o_batch_stride + (long long)h * p.o_head_stride + c4 * 4) * 2;
            pd_store4(dst, acc);
            if (c4 == 0 && p.lse != nullptr) p.lse[(long long)b * p.num_heads + h] = lse_nat;
        } else {
            const long long rowi = ((long long)split * p.batch + b) * p.num_heads + h;
            *(PdF4*)(p.o_accum + rowi * kHeadDim + c4 * 4) = acc;
            if (c4 == 0) p.lse_accum[rowi] = lse_nat;
        }
    }
    // Fused merge (merge_counters set): the last split of (sequence, kv group)
    // to finish merges that group's heads and resets its counter to 0.
    if (!direct && p.merge_counters != nullptr) {
        __shared__ int pd_last;
        int* cnt = p.merge_counters + (long long)b * gridDim.y + blockIdx.y;
        __threadfence();   // this CTA's partials, device-wide, before it counts
        __syncthreads();
        if (tid == 0) pd_last = atomicAdd(cnt, 1) == p.num_splits - 1;
        __syncthreads();
        if (pd_last) {
            __threadfence();   // every other split's partials before reading them
            for (int hr = warp; hr < (kGqa << hcs); hr += kPdWarps) {
                const int kvh = kvh0 + hr / kGqa;
                if (kvh < p.num_kv_heads) pd_merge_head(p, b, kvh * kGqa + hr % kGqa, lane);
            }
            if (tid == 0) *cnt = 0;
        }
    }
}

// One warp per (sequence, query head).
FA_DEVICE void paged_decode_merge_warp(const PagedDecodeParams& p) {
    const int wg = blockIdx.x * kPdMergeWarps + (threadIdx.x >> 5);
    if (wg >= p.batch * p.num_heads) return;
    pd_merge_head(p, wg / p.num_heads, wg % p.num_heads, threadIdx.x & 31);
}
