// ---------------------------------------------------------------------------
// fwd_mainloop (portable path, sm80 / sm89 / sm90a / sm100): FlashAttention-2
// forward with mma.sync m16n8k16, ldmatrix and a kStages-deep cp.async
// pipeline over K/V tiles.
//   * each warp owns kWarpM = kBlockM / kNumWarps query rows (1 or 2 m16 tiles)
//   * shared-memory rows are either padded by 8 elements (16 bytes): the 8
//     row addresses of every ldmatrix phase then fall in distinct 16-byte
//     bank groups for all supported head dims (64..256, incl. 80/96/192);
//     or (kSwizzle, head_dim % 64 == 0) unpadded with 16-byte chunk c of row
//     r stored at c ^ (r % 8) within its group of eight: also conflict-free,
//     and every 128-byte global line lands in one 128-byte shared block
//   * Q lives in registers when Q+O+S fragments fit the register budget,
//     otherwise it is re-read from shared memory each k-step (large tiles)
// smem: [Q: kBlockM rows][stage 0: K kBlockN rows, V kBlockN rows][stage 1]...
//   (kStages == 1: one K and one V buffer, FA2 order; see kSingleStage)
// ---------------------------------------------------------------------------
constexpr int kNumThreads = kNumWarps * 32;
// Tuning switches (scratch harness sweeps them with -D; the defaults are the
// measured choice).
#ifndef FA_RESCALE_SKIP
// Skip the O rescale when no row max of the warp moved (warp vote). Measured
// (H200, bf16): +5% for causal hd128 at s=16k (303 vs 288 TF), but -5..7% for
// dense hd128 / hd64 and hd256 (the branch stops ptxas from hiding the FMULs
// under the HMMAs). So: only causal cells with 32 rows per warp, hd > 64.
#define FA_RESCALE_SKIP (kMaskCausal && kMT == 2 && kHeadDim > 64 && kBlockN == 32)
#endif
#ifndef FA_SPLIT_KV
#define FA_SPLIT_KV 0       // K and V in separate cp.async groups (FA2 order)
#endif
constexpr int kWarpM = kBlockM / kNumWarps;
constexpr int kMT = kWarpM / 16;           // m16 tiles per warp
constexpr int kNT = kBlockN / 8;           // n8 tiles of S
constexpr int kKD = kHeadDim / 16;         // k16 steps over the head dim
constexpr int kDT = kHeadDim / 8;          // n8 tiles of O
constexpr int kChunks = kHeadDim / 8;      // 16-byte chunks per row
// From the tile (TileConfig::swizzle), never a -D switch: the launch's shared
// memory size depends on it.
constexpr bool kSwizzle = kSwizzleTile;
constexpr int kSmemStride = kSwizzle ? kHeadDim : kHeadDim + 8;  // elements per shared-memory row
constexpr int kQFragRegs = kMT * kKD * 4;
constexpr int kOFragRegs = kMT * kDT * 4;
constexpr int kSFragRegs = kMT * kNT * 4;
#ifndef FA_QREG_BUDGET
#define FA_QREG_BUDGET 192  // Q fragments stay in registers when Q+O+S fit this
#endif
constexpr bool kQInRegs = kQFragRegs + kOFragRegs + kSFragRegs <= FA_QREG_BUDGET;
static_assert(kWarpM == 16 || kWarpM == 32, "a warp owns 16 or 32 query rows");
static_assert(kBlockN % 16 == 0 && kHeadDim % 16 == 0, "tile shape");
static_assert(kStages >= 1, "cp.async pipeline needs >= 1 stage");
static_assert(!kSwizzle || kChunks % 8 == 0, "the swizzle permutes groups of eight 16-byte chunks");
// kStages == 1 (FA2 order, one K and one V buffer): K(it) is waited for before
// S = QK^T while V(it) is loading; V(it) before P.V while K(it+1) is loading.
// Two barriers per tile, but half the K/V shared memory: hd256 64x64x4 then
// fits 2 blocks per SM (101 KiB each), see tiles.rs.
constexpr bool kSingleStage = kStages == 1;
static_assert(kSm >= 80, "mma.sync m16n8k16 / cp.async / ldmatrix need sm80+");
static_assert(!kCausal || kMaskCausal, "causal implies mask_causal");

using elem_t = u16;

// Element offset of 16-byte chunk `ch` of shared-memory row `r`.
FA_DEVICE int smem_elem(int r, int ch) { return stage_elem<kSmemStride, kSwizzle>(r, ch); }

// Byte offset, within its row, of the 16-byte chunk c0 + 2k (c0 < 2) that an
// ldmatrix lane reads at k16 step k; lx = lane % 8 is the lane's row index
// (mod 8), so that is the swizzle. The XOR stays inside the group of eight
// chunks, which keeps (k / 4) * 128 bytes an immediate offset. Unswizzled,
// the lane's c0 is in its row offset.
FA_DEVICE u32 lane_chunk(int c0, int k, int lx) {
    return (u32)((kSwizzle ? ((c0 + 2 * (k & 3)) ^ lx) + 8 * (k >> 2) : 2 * k) * 16);
}

// rows [0, kRows) of a Q tile; rows >= rows_valid are zero-filled.
template <int kRows>
FA_DEVICE void load_q_async(u32 dst, const elem_t* src, long long row_stride, int rows_valid, int tid) {
    constexpr int kTotal = kRows * kChunks;
#pragma unroll
    for (int c0 = 0; c0 < kTotal; c0 += kNumThreads) {
        const int c = c0 + tid;
        if (kTotal % kNumThreads == 0 || c < kTotal) {
            const int r = c / kChunks, ch = c % kChunks;
            const bool ok = r < rows_valid;
            const elem_t* g = src + (ok ? (long long)r * row_stride + ch * 8 : 0);
            cp_async_16(dst + (u32)smem_elem(r, ch) * 2u, g, ok);
        }
    }
}

// keys [n0, n0 + kBlockN) of K or V; keys >= s_k are zero-filled (so that
// masked probabilities multiply zeros, never garbage). Paged cells translate
// key j through the block table (page stride = the batch stride).
#ifndef FA_KV_PTR_INC
// Non-paged K/V copies walk one pointer by a fixed row step (keeps ptxas from
// hoisting one 64-bit address per copy out of the main loop: hd256 64x64x4
// spilled 112 B with per-copy addresses, 0 B with the walk).
#define FA_KV_PTR_INC kSingleStage
#endif
FA_DEVICE void load_kv_async(u32 dst, const elem_t* src, long long row_stride, long long page_stride,
                             const int* block_table_row, int n0, int s_k, int tid) {
    constexpr int kTotal = kBlockN * kChunks;
    if constexpr (FA_KV_PTR_INC && !kPaged && kNumThreads % kChunks == 0 && kTotal % kNumThreads == 0) {
        constexpr int kRowsPerPass = kNumThreads / kChunks;
        const int r0 = tid / kChunks, ch = tid % kChunks;
        const elem_t* g = src + (long long)(n0 + r0) * row_stride + ch * 8;
        const long long step = (long long)kRowsPerPass * row_stride;
        const u32 d = dst + (u32)(r0 * kSmemStride + ch * 8) * 2u;  // unswizzled
#pragma unroll
        for (int ps = 0; ps < kTotal / kNumThreads; ++ps) {
            const bool ok = n0 + r0 + ps * kRowsPerPass < s_k;
            const u32 sd = kSwizzle ? dst + (u32)smem_elem(r0 + ps * kRowsPerPass, ch) * 2u
                                    : d + (u32)(ps * kRowsPerPass * kSmemStride * 2);
            cp_async_16(sd, ok ? g : src, ok);
            g += step;
        }
        return;
    }
    // Paged: one block-table load per copy; unrolled, ptxas hoists them all
    // (hd256: 8-16 B of spills), so the loop stays rolled for paged cells.
#pragma unroll (kPaged && kHeadDim > 192 ? 1 : 64)
    for (int c0 = 0; c0 < kTotal; c0 += kNumThreads) {
        const int c = c0 + tid;
        if (kTotal % kNumThreads == 0 || c < kTotal) {
            const int r = c / kChunks, ch = c % kChunks;
            const int j = n0 + r;
            const bool ok = j < s_k;
            long long off = 0;
            if (ok) {
                if constexpr (kPaged) {
                    const int page = block_table_row[j / kPageSize];
                    off = (long long)page * page_stride + (long long)(j % kPageSize) * row_stride;
                } else {
                    off = (long long)j * row_stride;
                }
                off += ch * 8;
            }
            cp_async_16(dst + (u32)smem_elem(r, ch) * 2u, src + off, ok);
        }
    }
}

// Unmasked GQA cells on sm_80 .. sm_90a sit at the 255-register edge where
// ptxas keeps loop invariants live and spills (hd128 128x64: 72 B, the K/V
// base pointers and two softmax sums reloaded each tile; 80 B swizzled). In
// them (kRederive) the K/V base pointers and the swizzle's lane index are
// re-derived each tile, opaquely to ptxas, instead: 0 B. Elsewhere that is
// what spills (sm_90a causal GQA 68 B, sm_100a 36 B), hence the narrow rule.
#ifndef FA_REDERIVE
#define FA_REDERIVE (kGqa > 1 && !kMaskCausal && !kAlibi && !kHasSoftcap && !kVarlen && !kPaged && kSm < 100)
#endif
constexpr bool kRederive = FA_REDERIVE;
// The K or V rows of this block: `kept` (fwd_block_setup's pointer), or, when
// re-derived, the same fixed-length rows from the grid index.
FA_DEVICE const elem_t* kv_rows(const elem_t* kept, const void* base, long long head_stride, long long batch_stride) {
    if constexpr (!kRederive) {
        return kept;
    } else {
        u32 y, z;
        asm volatile("mov.u32 %0, %%ctaid.y;" : "=r"(y));
        asm volatile("mov.u32 %0, %%ctaid.z;" : "=r"(z));
        return static_cast<const elem_t*>(base) + (long long)(y / kGqa) * head_stride + (long long)z * batch_stride;
    }
}

FA_DEVICE void fwd_block(const FwdParams& p, u8* smem) {
    const int tid = threadIdx.x;
    const int warp = tid >> 5, lane = tid & 31;
    FwdBlock<elem_t> blk;
    if (!fwd_block_setup(p, blk)) return;
    const int h = blk.h, s_q = blk.s_q, s_k = blk.s_k, m0 = blk.m0;
    const elem_t* q_ptr = blk.q_ptr;
    const elem_t* k_ptr = blk.k_ptr;
    const elem_t* v_ptr = blk.v_ptr;
    const int* block_table_row = blk.block_table_row;

    const TileRange tiles = kv_tile_range(m0, s_q, s_k);
    const int n_iters = tiles.count();

    const u32 sQ = smem_addr(smem);
    const u32 sKV = sQ + (u32)(kBlockM * kSmemStride * 2);
    constexpr u32 kStageBytes = 2u * kBlockN * kSmemStride * 2u;
    constexpr u32 kVOffset = kBlockN * kSmemStride * 2u;

    // ---- prologue: Q + the first kStages-1 KV tiles, one commit group each
    load_q_async<kBlockM>(sQ, q_ptr, p.q_row_stride, s_q - m0, tid);
    if constexpr (kSingleStage) {  // Q + K(0) in one group; V(0) is issued in iteration 0
        if (n_iters > 0)
            load_kv_async(sKV, k_ptr, p.k_row_stride, p.k_batch_stride, block_table_row, tiles.at(0) * kBlockN, s_k, tid);
        cp_async_commit();
    }
#pragma unroll
    for (int st = 0; st < kStages - 1; ++st) {
        if (st < n_iters) {
            const int n0 = tiles.at(st) * kBlockN;
            load_kv_async(sKV + st * kStageBytes, k_ptr, p.k_row_stride, p.k_batch_stride, block_table_row, n0, s_k, tid);
            if constexpr (FA_SPLIT_KV) cp_async_commit();
            load_kv_async(sKV + st * kStageBytes + kVOffset, v_ptr, p.v_row_stride, p.v_batch_stride, block_table_row, n0, s_k, tid);
        } else if constexpr (FA_SPLIT_KV) {
            cp_async_commit();
        }
        cp_async_commit();
    }

    // Per-lane ldmatrix rows and first chunks c0; k16 step k reads chunk
    // c0 + 2k (lane_chunk). A-operand / V^T pattern: row = l%8 + 8*((l/8)%2),
    // c0 = l/16; K (B-operand, non-trans): row = l%8 + 8*(l/16), c0 =
    // (l/8)%2. Byte offsets; unswizzled, c0 is folded in. (K in the A
    // pattern too, pairing matrices 0+2 / 1+3, would share Q's and V's offset
    // registers, but ran 5-7% slower at hd64 / hd128 / hd256, H200.)
    const int q_c0 = lane >> 4, k_c0 = (lane >> 3) & 1, v_c0 = lane >> 4, lx = lane & 7;
    const u32 q_lane = sQ + (u32)(((warp * kWarpM + (lane & 7) + ((lane >> 3) & 1) * 8) * kSmemStride + (kSwizzle ? 0 : q_c0 * 8)) * 2);
    const u32 k_lane = (u32)((((lane & 7) + (lane >> 4) * 8) * kSmemStride + (kSwizzle ? 0 : k_c0 * 8)) * 2);
    const u32 v_lane = (u32)((((lane & 7) + ((lane >> 3) & 1) * 8) * kSmemStride + (kSwizzle ? 0 : v_c0 * 8)) * 2);

    float o[kMT][kDT][4];
#pragma unroll
    for (int mt = 0; mt < kMT; ++mt)
#pragma unroll
        for (int dt = 0; dt < kDT; ++dt)
#pragma unroll
            for (int e = 0; e < 4; ++e) o[mt][dt][e] = 0.0f;
    float row_max[kMT][2], row_sum[kMT][2];
    softmax_init<kMT, kNT>(row_max, row_sum);
    u32 q_frag[kQInRegs ? kMT : 1][kQInRegs ? kKD : 1][4];

    const float scale = p.softmax_scale;
    const float C = kLogitsScaled ? kLog2e : p.scale_log2;
    float alibi_slope = 0.0f;
    if constexpr (kAlibi) alibi_slope = p.alibi_slopes[h];
    const int row_base = m0 + warp * kWarpM + (lane >> 2);  // + mt*16 + 8r
    const int col_lane = (lane & 3) * 2;
    const int row_pos0 = row_base + s_k - s_q;               // key position of row_base

    static_assert(!kRederive || (!kVarlen && !kPaged), "kv_rows re-derives dense batch-strided rows only");
    const auto k_rows = [&] { return kv_rows(k_ptr, p.k, p.k_head_stride, p.k_batch_stride); };
    const auto v_rows = [&] { return kv_rows(v_ptr, p.v, p.v_head_stride, p.v_batch_stride); };
    // ---- main loop over KV tiles
    // Split groups (FA_SPLIT_KV): commit order K0 V0 K1 V1 ...; K(it) is
    // waited for before S = QK^T and V(it) only before P.V, so V's copy
    // overlaps the QK^T / softmax work; the next K / V loads go into the
    // stage last read in iteration it - 1 (every warp is past the barrier).
    constexpr int kSplitPending = kStages >= 2 ? 2 * (kStages - 2) + 1 : 0;
    for (int it = 0; it < n_iters; ++it) {
        const int nxt = kSingleStage ? it + 1 : it + kStages - 1;
        const u32 nxt_dst = sKV + (u32)(nxt % kStages) * kStageBytes;
        if constexpr (kSingleStage) {
            // K(it) (and Q) landed; every warp is past P.V(it-1), so the V
            // buffer is free for V(it).
            cp_async_wait<0>();
            __syncthreads();
            load_kv_async(sKV + kVOffset, v_rows(), p.v_row_stride, p.v_batch_stride, block_table_row, tiles.at(it) * kBlockN, s_k, tid);
            cp_async_commit();
        } else if constexpr (FA_SPLIT_KV) {
            cp_async_wait<kSplitPending>();
            __syncthreads();
            if (nxt < n_iters)
                load_kv_async(nxt_dst, k_rows(), p.k_row_stride, p.k_batch_stride, block_table_row, tiles.at(nxt) * kBlockN, s_k, tid);
            cp_async_commit();
        } else {
            cp_async_wait<(kStages >= 2 ? kStages - 2 : 0)>();
            __syncthreads();
            if (nxt < n_iters) {
                const int n0 = tiles.at(nxt) * kBlockN;
                load_kv_async(nxt_dst, k_rows(), p.k_row_stride, p.k_batch_stride, block_table_row, n0, s_k, tid);
                load_kv_async(nxt_dst + kVOffset, v_rows(), p.v_row_stride, p.v_batch_stride, block_table_row, n0, s_k, tid);
            }
            cp_async_commit();
        }
        if constexpr (kQInRegs) {
            if (it == 0) {
#pragma unroll
                for (int mt = 0; mt < kMT; ++mt)
#pragma unroll
                    for (int kd = 0; kd < kKD; ++kd)
                        ldmatrix_x4(q_frag[mt][kd], q_lane + (u32)(mt * 16 * kSmemStride * 2) + lane_chunk(q_c0, kd, lx));
            }
        }
        const u32 sK = sKV + (u32)(it % kStages) * kStageBytes;
        const u32 sV = sK + kVOffset;
        const int n0 = tiles.at(it) * kBlockN;
        int lxo = lx;  // the swizzle's lane index, re-derived per tile (kRederive)
        if constexpr (kRederive && kSwizzle) asm volatile("" : "+r"(lxo));

        // S = Q K^T
        float s[kMT][kNT][4];
#pragma unroll
        for (int mt = 0; mt < kMT; ++mt)
#pragma unroll
            for (int nt = 0; nt < kNT; ++nt)
#pragma unroll
                for (int e = 0; e < 4; ++e) s[mt][nt][e] = 0.0f;
#pragma unroll
        for (int kd = 0; kd < kKD; ++kd) {
            u32 a[kMT][4];
#pragma unroll
            for (int mt = 0; mt < kMT; ++mt) {
                if constexpr (kQInRegs) {
#pragma unroll
                    for (int e = 0; e < 4; ++e) a[mt][e] = q_frag[mt][kd][e];
                } else {
                    ldmatrix_x4(a[mt], q_lane + (u32)(mt * 16 * kSmemStride * 2) + lane_chunk(q_c0, kd, lxo));
                }
            }
#pragma unroll
            for (int np = 0; np < kNT / 2; ++np) {
                u32 bk[4];
                ldmatrix_x4(bk, sK + k_lane + (u32)(np * 16 * kSmemStride * 2) + lane_chunk(k_c0, kd, lxo));
#pragma unroll
                for (int mt = 0; mt < kMT; ++mt) {
                    mma_16816<kIsBF16>(s[mt][2 * np], a[mt], bk[0], bk[1]);
                    mma_16816<kIsBF16>(s[mt][2 * np + 1], a[mt], bk[2], bk[3]);
                }
            }
        }

        // score modifiers and masking
        score_mods_and_mask<kMT, kNT>(s, scale, alibi_slope, row_pos0, n0 + col_lane, s_k,
                                      tile_needs_mask(m0, n0, s_q, s_k));

        float alpha[kMT][2];
        softmax_online<kMT, kNT>(s, row_max, row_sum, alpha, C);
        if (!FA_RESCALE_SKIP || rescale_needed<kMT>(alpha)) {
#pragma unroll
            for (int mt = 0; mt < kMT; ++mt)
#pragma unroll
                for (int dt = 0; dt < kDT; ++dt) {
                    o[mt][dt][0] *= alpha[mt][0];
                    o[mt][dt][1] *= alpha[mt][0];
                    o[mt][dt][2] *= alpha[mt][1];
                    o[mt][dt][3] *= alpha[mt][1];
                }
        }

        if constexpr (kSingleStage) {
            // V(it) landed; every warp is past S = QK^T(it), so the K buffer
            // is free for K(it+1).
            cp_async_wait<0>();
            __syncthreads();
            if (nxt < n_iters)
                load_kv_async(sKV, k_rows(), p.k_row_stride, p.k_batch_stride, block_table_row, tiles.at(nxt) * kBlockN, s_k, tid);
            cp_async_commit();
        } else if constexpr (FA_SPLIT_KV) {
            cp_async_wait<kSplitPending>();
            __syncthreads();
            if (nxt < n_iters)
                load_kv_async(nxt_dst + kVOffset, v_rows(), p.v_row_stride, p.v_batch_stride, block_table_row, tiles.at(nxt) * kBlockN, s_k, tid);
            cp_async_commit();
        }

        // O += P V
#pragma unroll
        for (int kk = 0; kk < kBlockN / 16; ++kk) {
            u32 pa[kMT][4];
#pragma unroll
            for (int mt = 0; mt < kMT; ++mt) {
                pa[mt][0] = pack_x2<kIsBF16>(s[mt][2 * kk][0], s[mt][2 * kk][1]);
                pa[mt][1] = pack_x2<kIsBF16>(s[mt][2 * kk][2], s[mt][2 * kk][3]);
                pa[mt][2] = pack_x2<kIsBF16>(s[mt][2 * kk + 1][0], s[mt][2 * kk + 1][1]);
                pa[mt][3] = pack_x2<kIsBF16>(s[mt][2 * kk + 1][2], s[mt][2 * kk + 1][3]);
            }
#pragma unroll
            for (int dp = 0; dp < kDT / 2; ++dp) {
                u32 bv[4];
                ldmatrix_x4_trans(bv, sV + v_lane + (u32)(kk * 16 * kSmemStride * 2) + lane_chunk(v_c0, dp, lxo));
#pragma unroll
                for (int mt = 0; mt < kMT; ++mt) {
                    mma_16816<kIsBF16>(o[mt][2 * dp], pa[mt], bv[0], bv[1]);
                    mma_16816<kIsBF16>(o[mt][2 * dp + 1], pa[mt], bv[2], bv[3]);
                }
            }
        }
    }

    // ---- epilogue
    if (n_iters == 0) {  // Q copies may still be in flight; block-uniform
        cp_async_wait<0>();
        __syncthreads();
    }
    float inv[kMT][2], lse[kMT][2];
    softmax_finalize<kMT>(row_max, row_sum, inv, lse, C);

    const int warp_row0 = m0 + warp * kWarpM;
    fwd_block_reload_rows(p, blk);
    const int rows_valid = blk.s_q - warp_row0;
    float* lse_rows = fwd_lse_rows(p, blk, warp_row0);
    epilogue_store_lse<kMT>(lse, lse_rows, rows_valid, lane);

    u16* o_ptr = fwd_o_rows(p, blk, warp_row0);
    u16* stage = reinterpret_cast<u16*>(smem) + warp * kWarpM * kSmemStride;
    epilogue_store_o<kOutBF16, kMT, kDT, kSmemStride, kSwizzle>(o, inv, stage, o_ptr, p.o_row_stride, rows_valid, lane);
}
