// ---------------------------------------------------------------------------
// softmax: online softmax in the exp2 domain on accumulator fragments.
// A thread holds, per 16-row m-tile, two rows (g and g+8); S is viewed as
// s[mt][nt][2*r + e] = row (mt, r), column (nt, e). The row statistics are
// per row: row_max in score units, row_sum a thread-partial sum (reduced over
// the quad only in the epilogue). `C` converts score units to log2 units.
// Any accumulator whose C fragment maps rows as above (mma.sync m16n8,
// wgmma m64nN per warp) can use these helpers.
// ---------------------------------------------------------------------------
template <int MT, int NT>
FA_DEVICE void softmax_init(float (&row_max)[MT][2], float (&row_sum)[MT][2]) {
#pragma unroll
    for (int mt = 0; mt < MT; ++mt) {
#pragma unroll
        for (int r = 0; r < 2; ++r) { row_max[mt][r] = FA_NEG_INF; row_sum[mt][r] = 0.0f; }
    }
}

// Updates the running max, turns s into unnormalised probabilities
// p = exp2(s*C - max*C) and returns per-row rescale factors for O.
template <int MT, int NT>
FA_DEVICE void softmax_online(float (&s)[MT][NT][4], float (&row_max)[MT][2],
                              float (&row_sum)[MT][2], float (&alpha)[MT][2], float C) {
#pragma unroll
    for (int mt = 0; mt < MT; ++mt) {
#pragma unroll
        for (int r = 0; r < 2; ++r) {
            float mx = row_max[mt][r];
#pragma unroll
            for (int nt = 0; nt < NT; ++nt) {
                mx = fmaxf(mx, fmaxf(s[mt][nt][2 * r], s[mt][nt][2 * r + 1]));
            }
            mx = quad_max(mx);
            // A fully masked row keeps max = -inf: use 0 as the offset so that
            // exp2(-inf - 0) = 0 rather than NaN.
            const float m_scaled = mx == FA_NEG_INF ? 0.0f : mx * C;
            // unchanged max -> alpha exactly 1 (lets the caller skip the O
            // rescale, see rescale_needed)
            alpha[mt][r] = mx == row_max[mt][r] ? 1.0f : fast_exp2(row_max[mt][r] * C - m_scaled);
            row_max[mt][r] = mx;
            float sum = 0.0f;
#pragma unroll
            for (int nt = 0; nt < NT; ++nt) {
#pragma unroll
                for (int e = 0; e < 2; ++e) {
                    const float pv = fast_exp2(fmaf(s[mt][nt][2 * r + e], C, -m_scaled));
                    s[mt][nt][2 * r + e] = pv;
                    sum += pv;
                }
            }
            row_sum[mt][r] = fmaf(row_sum[mt][r], alpha[mt][r], sum);
        }
    }
}

// Warp-uniform: does any row of the warp need its O accumulator rescaled?
// Past the first few KV tiles the running max rarely moves, and skipping the
// multiply by exactly 1.0 is bit-identical.
template <int MT>
FA_DEVICE bool rescale_needed(const float (&alpha)[MT][2]) {
    bool need = false;
#pragma unroll
    for (int mt = 0; mt < MT; ++mt) need = need || alpha[mt][0] != 1.0f || alpha[mt][1] != 1.0f;
    return __any_sync(0xffffffffu, need);
}

// Final per-row normaliser and natural-log LSE. An empty row (sum 0) gives
// inv = 0 (so O = 0 exactly) and LSE = -inf.
template <int MT>
FA_DEVICE void softmax_finalize(const float (&row_max)[MT][2], float (&row_sum)[MT][2],
                                float (&inv)[MT][2], float (&lse)[MT][2], float C) {
#pragma unroll
    for (int mt = 0; mt < MT; ++mt) {
#pragma unroll
        for (int r = 0; r < 2; ++r) {
            const float l = quad_sum(row_sum[mt][r]);
            const bool empty = !(l > 0.0f);
            inv[mt][r] = empty ? 0.0f : 1.0f / l;
            lse[mt][r] = empty ? FA_NEG_INF : (row_max[mt][r] * C + fast_log2(l)) * kLn2;
        }
    }
}
