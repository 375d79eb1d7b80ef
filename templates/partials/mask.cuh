// ---------------------------------------------------------------------------
// mask: key visibility, score modifiers (softcap, ALiBi) and the KV tile range
// a query block must visit. Shared by every forward mainloop.
//   query row i sits at key position p = i + s_k - s_q (bottom-right aligned)
//   visible(i, j) = j < s_k && (((!causal || j <= p) && (W == 0 || j > p - W))
//                               || (sink > 0 && j < sink && j <= p))
// ---------------------------------------------------------------------------
FA_DEVICE bool key_visible(int i, int j, int s_q, int s_k) {
    const int pos = i + s_k - s_q;
    bool vis = true;
    if constexpr (kMaskCausal) vis = j <= pos;
    if constexpr (kWindow > 0) vis = vis && (j > pos - kWindow);
    if constexpr (kSink > 0) vis = vis || (j < kSink && j <= pos);
    return vis && j < s_k;
}

// Visibility of row i as key intervals: j visible iff lo <= j < hi or
// j < sink_hi. Computed once per row and tile, then each element is one or
// two compares against a compile-time column offset.
struct RowKeyRange { int lo, hi, sink_hi; };

FA_DEVICE RowKeyRange row_key_range(int i, int s_q, int s_k) {
    const int pos = i + s_k - s_q;
    RowKeyRange r;
    r.hi = kMaskCausal ? min(s_k, pos + 1) : s_k;
    r.lo = kWindow > 0 ? pos - kWindow + 1 : 0;
    r.sink_hi = kSink > 0 ? min(min(kSink, pos + 1), s_k) : 0;
    return r;
}

FA_DEVICE bool key_in_range(const RowKeyRange& r, int j) {
    bool vis = j < r.hi;
    if constexpr (kWindow > 0) vis = vis && j >= r.lo;
    if constexpr (kSink > 0) vis = vis || j < r.sink_hi;
    return vis;
}

// Scores are kept either as raw q.k (C = scale_log2 folds the scale into the
// exp2) or, when a non-linear modifier needs the true logit, as the final
// natural-unit logit (C = log2(e)).
constexpr bool kLogitsScaled = kHasSoftcap || kAlibi;

// raw q.k -> final logit (only used when kLogitsScaled). `scale` already holds
// softmax_scale (times the fp8 descales).
FA_DEVICE float score_mod(float s, float scale, float alibi_slope, int i, int j, int s_q, int s_k) {
    if constexpr (kHasSoftcap) {
        s = kSoftcap * tanh_accurate(s * (scale * (1.0f / kSoftcap)));
    } else {
        s *= scale;
    }
    if constexpr (kAlibi) {
        const int d = i + s_k - s_q - j;
        s -= alibi_slope * (float)(d < 0 ? -d : d);
    }
    return s;
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
