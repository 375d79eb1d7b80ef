// ---------------------------------------------------------------------------
// epilogue: normalise the O accumulator, convert to 16-bit, stage the warp's
// rows through shared memory and write them out with 16-byte stores; LSE per
// row. O is always 16-bit (bf16 for fp8 cells).
// ---------------------------------------------------------------------------

// Element offset of 16-byte chunk `ch` of staged row `row`. kSwizzle: rows
// are unpadded and chunk c of row r sits at c ^ (r % 8) within its group of
// eight (the main loop's shared-memory layout, fwd_mainloop.cuh).
template <int kStride, bool kSwizzle>
FA_DEVICE int stage_elem(int row, int ch) {
    return row * kStride + (kSwizzle ? (ch ^ (row & 7)) : ch) * 8;
}

// Copies the warp's staged rows (MT*16 rows of DT*8 16-bit elements) to
// global memory with 16-byte stores; rows >= rows_valid are skipped.
template <int MT, int DT, int kStride, bool kSwizzle = false>
FA_DEVICE void epilogue_copy_rows(const u16* stage, u16* dst, long long row_stride, int rows_valid, int lane) {
    __syncwarp();
    constexpr int kChunksPerRow = DT;  // 8 elements (16 bytes) per chunk
    constexpr int kTotal = MT * 16 * kChunksPerRow;
#pragma unroll
    for (int c0 = 0; c0 < kTotal; c0 += 32) {
        const int c = c0 + lane;
        if (kTotal % 32 == 0 || c < kTotal) {
            const int row = c / kChunksPerRow, ch = c % kChunksPerRow;
            if (row < rows_valid) {
                const U32x4 v = *reinterpret_cast<const U32x4*>(stage + stage_elem<kStride, kSwizzle>(row, ch));
                *reinterpret_cast<U32x4*>(dst + row * row_stride + ch * 8) = v;
            }
        }
    }
}

// o[mt][dt][2*r + e] holds row (mt*16 + g + 8r), column (dt*8 + 2t + e) of the
// warp's rows. `stage` points at the warp's first row in shared memory (row
// stride kStride elements, 16-byte aligned rows, swizzled as stage_elem);
// `dst` at its first row in global memory. Rows >= rows_valid are not
// written.
template <bool kOutBF16, int MT, int DT, int kStride, bool kSwizzle = false>
FA_DEVICE void epilogue_store_o(const float (&o)[MT][DT][4], const float (&inv)[MT][2],
                                u16* stage, u16* dst, long long row_stride,
                                int rows_valid, int lane) {
    // The stage overlays the warp's Q rows, which other lanes may have read
    // (ldmatrix) just before: order those reads before these writes.
    __syncwarp();
    const int g = lane >> 2, t = lane & 3;
#pragma unroll
    for (int mt = 0; mt < MT; ++mt) {
#pragma unroll
        for (int dt = 0; dt < DT; ++dt) {
#pragma unroll
            for (int r = 0; r < 2; ++r) {
                const int row = mt * 16 + g + 8 * r;
                const u32 packed = pack_x2<kOutBF16>(o[mt][dt][2 * r] * inv[mt][r],
                                                     o[mt][dt][2 * r + 1] * inv[mt][r]);
                *reinterpret_cast<u32*>(stage + stage_elem<kStride, kSwizzle>(row, dt) + 2 * t) = packed;
            }
        }
    }
    epilogue_copy_rows<MT, DT, kStride, kSwizzle>(stage, dst, row_stride, rows_valid, lane);
}

// fp8 P.V layout (fwd_mainloop_fp8.cuh): per 16 columns, o[mt][2*dp] holds
// columns dp*16 + 4t + {0, 2} and o[mt][2*dp+1] columns dp*16 + 4t + {1, 3}
// (index 2*r + e). Always bf16 out.
template <int MT, int DP, int kStride>
FA_DEVICE void epilogue_store_o_evenodd(const float (&o)[MT][2 * DP][4], const float (&inv)[MT][2],
                                        u16* stage, u16* dst, long long row_stride,
                                        int rows_valid, int lane) {
    __syncwarp();  // as in epilogue_store_o
    const int g = lane >> 2, t = lane & 3;
#pragma unroll
    for (int mt = 0; mt < MT; ++mt) {
#pragma unroll
        for (int dp = 0; dp < DP; ++dp) {
#pragma unroll
            for (int r = 0; r < 2; ++r) {
                const int row = mt * 16 + g + 8 * r;
                const u32 lo = pack_bf16x2(o[mt][2 * dp][2 * r] * inv[mt][r], o[mt][2 * dp + 1][2 * r] * inv[mt][r]);
                const u32 hi = pack_bf16x2(o[mt][2 * dp][2 * r + 1] * inv[mt][r], o[mt][2 * dp + 1][2 * r + 1] * inv[mt][r]);
                u32* d = reinterpret_cast<u32*>(stage + row * kStride + dp * 16 + 4 * t);
                d[0] = lo; d[1] = hi;
            }
        }
    }
    epilogue_copy_rows<MT, 2 * DP, kStride>(stage, dst, row_stride, rows_valid, lane);
}

// LSE for the thread's rows; one lane of each quad writes.
template <int MT>
FA_DEVICE void epilogue_store_lse(const float (&lse)[MT][2], float* lse_rows, int rows_valid, int lane) {
    if ((lane & 3) != 0) return;
    const int g = lane >> 2;
#pragma unroll
    for (int mt = 0; mt < MT; ++mt) {
#pragma unroll
        for (int r = 0; r < 2; ++r) {
            const int row = mt * 16 + g + 8 * r;
            if (row < rows_valid) lse_rows[row] = lse[mt][r];
        }
    }
}
