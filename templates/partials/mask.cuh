// ---------------------------------------------------------------------------
// mask: key visibility, score modifiers (softcap, ALiBi) and the KV tile range
// a query block must visit. Shared by every forward mainloop.
//   query row i sits at key position p = i + s_k - s_q (bottom-right aligned)
//   visible(i, j) = j < s_k && (((!causal || j <= p) && (W == 0 || j > p - W))
//                               || (sink > 0 && j < sink && j <= p))
// ---------------------------------------------------------------------------
// Scores are kept either as raw q.k (C = scale_log2 folds the scale into the
// exp2) or, when a non-linear modifier needs the true logit, as the final
// natural-unit logit (C = log2(e)).
constexpr bool kLogitsScaled = kHasSoftcap || kAlibi;

// raw q.k -> final logit (only used when kLogitsScaled). `scale` already holds
// softmax_scale (times the fp8 descales); d = j - pos, the key's offset from
// the query's own position (ALiBi bias -slope * |d|).
FA_DEVICE float score_mod(float s, float scale, float alibi_slope, int d) {
    if constexpr (kHasSoftcap) {
        // (s * scale) / cap as two multiplies: a folded scale / cap would be
        // one more register held across the main loop.
        s = kSoftcap * tanh_accurate((s * scale) * (1.0f / kSoftcap));
    } else {
        s *= scale;
    }
    if constexpr (kAlibi) s -= alibi_slope * (float)(d < 0 ? -d : d);
    return s;
}

// Score modifiers and per-element masking of one S tile, in the m16n8
// accumulator layout s[mt][nt][e]: row i = row0 + mt*16 + (e/2)*8, key j =
// col0 + nt*8 + (e%2). pos0 is the key position of row0 (row0 + s_k - s_q).
// Everything is a compare of one per-tile value against a compile-time offset
// (j - pos = d0 + cj - ri), so the mask needs no per-row registers: at the
// 255-register edge of the 128-row tiles that decides between spilling and
// not. `masked` (block-uniform, tile_needs_mask) skips the mask on interior tiles.
template <int kMT, int kNT>
FA_DEVICE void score_mods_and_mask(float (&s)[kMT][kNT][4], float scale, float alibi_slope,
                                   int pos0, int col0, int s_k, bool masked) {
    const int d0 = col0 - pos0;       // j - pos at (ri, cj) = (0, 0)
    if constexpr (kLogitsScaled) {
#pragma unroll
        for (int mt = 0; mt < kMT; ++mt)
#pragma unroll
            for (int nt = 0; nt < kNT; ++nt)
#pragma unroll
                for (int e = 0; e < 4; ++e)
                    s[mt][nt][e] = score_mod(s[mt][nt][e], scale, alibi_slope,
                                             d0 + nt * 8 + (e & 1) - (mt * 16 + (e >> 1) * 8));
    }
    if (!masked) return;
    const int kv_hi = s_k - col0;     // cj < kv_hi  <=>  j < s_k
    const int sink_hi = kSink - col0; // cj < sink_hi  <=>  j < kSink
#pragma unroll
    for (int mt = 0; mt < kMT; ++mt)
#pragma unroll
        for (int nt = 0; nt < kNT; ++nt)
#pragma unroll
            for (int e = 0; e < 4; ++e) {
                const int ri = mt * 16 + (e >> 1) * 8, cj = nt * 8 + (e & 1);
                const int d = d0 + cj - ri;
                bool vis = true;
                if constexpr (kMaskCausal) vis = d <= 0;
                if constexpr (kWindow > 0) vis = vis && d > -kWindow;
                if constexpr (kSink > 0) vis = vis || (cj < sink_hi && d <= 0);
                if (!(vis && cj < kv_hi)) s[mt][nt][e] = FA_NEG_INF;
            }
}

// KV tiles visited by query rows [m0, m0 + kBlockM): a main range [lo, hi)
// plus, for sinks, the tiles [0, sink_tiles) below lo. Visited in descending
// order (diagonal / tail tiles that need masking come first).
struct TileRange {
    int lo, hi, sink_tiles;
    FA_DEVICE int count() const { return (hi - lo) + sink_tiles; }
    FA_DEVICE int at(int it) const {
        return it < hi - lo ? hi - 1 - it : sink_tiles - 1 - (it - (hi - lo));
    }
};

FA_DEVICE TileRange kv_tile_range(int m0, int s_q, int s_k) {
    const int m1 = min(m0 + kBlockM, s_q);
    const int p_lo = m0 + s_k - s_q;       // key position of the first row
    const int p_hi = m1 - 1 + s_k - s_q;   // ... and of the last valid row
    int key_hi = s_k;                      // exclusive
    if constexpr (kMaskCausal) key_hi = min(s_k, p_hi + 1);
    int key_lo = 0;
    if constexpr (kWindow > 0) key_lo = max(0, p_lo - kWindow + 1);
    TileRange r;
    r.hi = key_hi > 0 ? (key_hi + kBlockN - 1) / kBlockN : 0;
    r.lo = min(key_lo / kBlockN, r.hi);
    r.sink_tiles = 0;
    if constexpr (kSink > 0) {
        const int sink_hi = min(kSink, key_hi);
        r.sink_tiles = sink_hi > 0 ? min((sink_hi + kBlockN - 1) / kBlockN, r.lo) : 0;
    }
    return r;
}

// True when some (row, key) of the block x tile is invisible, i.e. the
// per-element mask has to run. Block-uniform.
FA_DEVICE bool tile_needs_mask(int m0, int n0, int s_q, int s_k) {
    if (n0 + kBlockN > s_k) return true;
    const int p_lo = m0 + s_k - s_q;
    const int p_hi = min(m0 + kBlockM, s_q) - 1 + s_k - s_q;
    bool need = false;
    if constexpr (kMaskCausal) need = need || (n0 + kBlockN - 1 > p_lo);
    if constexpr (kWindow > 0) need = need || (n0 <= p_hi - kWindow);
    return need;
}
