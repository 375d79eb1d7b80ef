// ---------------------------------------------------------------------------
// paged_decode: split-KV flash-decoding over a paged KV cache.
//
// One CTA = (group of heads_per_cta kv heads, split, sequence), grid x, y, z. GQA packing:
// the gqa query heads of a kv head are the rows of 16-row m-tiles (rows >= gqa
// are zero padding), so every K/V page is read once per kv head. Tensor cores: mma.sync
// m16n8k16, f32 accumulate.
//
// KV is walked in tiles of kPdBlockN = 64 smem rows (64/hc tokens x hc kv
// heads). Each warp owns 16 keys of one head of every tile: it fetches
// exactly those 16 K and V rows itself (16-byte cp.async, 16 lanes a row at
// hd128, else 8 where the row allows, one block-table lookup per page) into a
// PdRing<hcs, unsplit>::stages-deep ring, waits only for its own copies (in
// _decode_pair at hd80 / hd96 the slice's two warps copy both heads' rows
// and meet at a barrier, kPdPairJoint), and keeps its own
// online-softmax state; the warps of a head are merged through shared memory
// at the end (log-sum-exp combine). Rows are unpadded with their 16-byte
// chunks swizzled by token, so that ldmatrix reads them without bank
// conflicts: XORed where rows are multiples of 128 bytes; at hd80 / hd96
// the tail swizzle or, for _decode_pair, the run swizzle (pd_chunk). With
// hc > 1 a token's head rows are side by side as in the page (at hd80 /
// hd96 in one 384-byte slot, pd_row). Tokens are gathered per row, so pages
// may be in any order and any size (1..256); invisible / out-of-context /
// invalid-page tokens are zero-filled and flagged, never read.
// -DPD_TMA=1 (sm_90+, measurement override): the earlier loader, one
// cp.async.bulk per K/V row completing on a per-stage mbarrier.
//
// num_splits > 1: each split writes its normalised O and LSE to o_accum /
// lse_accum; with p.merge_counters set (the host does so when every CTA is
// resident at once, fa_runtime::paged::fuses_merge) the split that finishes
// last for its (sequence, kv group) merges them (pd_merge_group), else
// _decode_merge does.
//
// Visited tiles of N = 64/hc tokens (query position pos = ctx-1): main range
// [lo, hi), hi = ceil(ctx / N), lo = floor(max(0, pos-W+1) / N) (0 without a window),
// plus sink tiles [0, min(ceil(min(sink,ctx)/N), lo)). The list (sinks
// first) is cut into num_splits contiguous chunks of ceil(T / num_splits).
// With the fused merge and one kv head per CTA, the same list in 16-token
// slices instead: each warp has a fixed, strided share of the first half,
// and the warps of all splits claim the rest from a counter (dyn in
// paged_decode_block).
//
// Measured (H200, bf16 hd128, 32/8 heads, page 16, kernels-dev/paged/
// variant_exp.py, SDPA cuDNN on the contiguous cache in the same call):
// 64 x 4096 252.3 us (1 split) against cuDNN 245.3 and 269.2 for the TMA
// loader; 1 x 131072 (33 splits, fused merge) 136.7 against 129.6 / 147.8.
// Its copies alone (-DPD_LOAD_ONLY) take 244.2 us against cuDNN's 242.3 in
// one call, 245.8 against 240.4 in another (132.1 against 127.4 at 1 x
// 131072, fused), where the whole kernel took 247.9 / 133.6: the math adds
// about 1%, and the rest of the gap is in reading scattered 256-byte rows.
// How the loader got here (same-call A/Bs, H200, cuDNN 240-245 / 127-131 us;
// kernels-dev/paged/stream_probe.py times bare copy rings of the same bytes):
//   * TMA row copies (-DPD_TMA=1): bulk copies into 128-byte-aligned rows
//     read as fast as cuDNN (copies alone 248.5 us), but 256-byte rows put
//     the 8 keys of an ldmatrix phase in one bank group (8-way conflicts, 357
//     us whole) and a bulk copy cannot swizzle; a swizzling tensor map
//     fetches 128-byte pieces (297-322 us for the bare ring), also with a
//     warp-specialised producer (262-267 us, branch exp/paged-decode-ws).
//     Best compromise: rows at an odd multiple of 32 bytes, 266-270 us.
//   * cp.async with each block-table lookup right before its copy: the copies
//     waited on each lookup in turn (copies alone 291 us against 254 with the
//     lookups issued first). Lookups first in a per-thread array: 265.4 us
//     unrolled, but it spilled (160 B at hd256); rolled, 279-291 us.
//   * This loader: one lookup per lane and shuffles, no per-thread array and
//     no spills; 258.4 us (2 stages) against 267.4 for TMA. Waiting per warp
//     instead of a CTA barrier per tile (-DPD_WARP_PIPE=0): 258.4 against
//     261.4, 146.8 against 150.4 at 1 x 131072 (separate merge). Then 3
//     stages at 2 CTAs/SM (see PD_STAGES): 252.3 us.
//   * No gain: an L2 evict-first policy on the cp.asyncs (251.9 against 252.1
//     us; 138.4 against 136.3 at 1 x 131072), a 256-byte L2 prefetch (267
//     against 252); 2 warps per CTA with 32-row tiles (243.6 at 64 x 4096 at
//     4 CTAs/SM, but 145.7 against 133.5 at 1 x 131072); hc = 2 kv heads per
//     CTA (1-1.5% faster where no split is needed, e.g. 248.7 against 252.0,
//     slower with splits: 150 against 136 at 1 x 131072, so the host pairs
//     heads only without splits, fa_runtime::paged::decode_layout, except
//     at hd80 / hd96 on sm_90+, see PD_PAIR_SPLITS); issuing
//     the next tile before the wait for the current one (its stage held this
//     warp's previous tile, so 3 tiles in flight during the wait): 247.9
//     against 248.2 us, 133.6 against 133.1 (cuDNN 240.4 / 127.4). The copies
//     alone take 245.8 / 132.1 us in that call: what is left of the gap to
//     cuDNN is in the reads of scattered 256-byte rows, not in the math.
//   * Also no gain (H200, same calls, cuDNN 239.4-245.3 us): the block-table
//     lookup for tile v + 1 issued with the copies of tile v (251.3 against
//     243.7 us with hc = 2, 248.2 against 247.6 with hc = 1, 133.1 against
//     132.2 at 1 x 131072); 2 warps per CTA at 4
//     CTAs/SM (249.3 against 249.7 us for hc = 2 at 64 x 4096, copies alone
//     249.2 against 249.0; 142.4 against 134.1 at 1 x 131072); deeper rings
//     at 1 CTA/SM (5 / 7 stages: 367 / 377 us). Bare cp.async rings in that
//     call (stream_probe.py cpasync): 3 x 32 KB stages at 2 CTAs/SM, this
//     kernel's shape, 245.4-245.9 us; 3 x 16 KB at 4 CTAs/SM (16 warps)
//     240.7-243.6; 7 x 16 KB at 2 CTAs/SM (192 KB in flight) 248.8-252.4;
//     any ring at 1 CTA/SM 302-330. Past ~128 KB in flight per SM, what
//     counts is the warps per SM issuing copies. Another call (cuDNN 240.2
//     us): 3 x 32 KB stages at 2 CTAs/SM issued by 2 / 4 / 8 warps a CTA
//     288.7 / 242.0-242.5 / 239.2 us, 3 x 16 KB at 4 CTAs/SM 240.3 / 238.8
//     / 239.2, against this kernel (hc = 2) 242.4 for its copies alone and
//     243.7 whole. More warps a SM do not fit: this kernel's shared memory
//     (three 8 KB stages per warp) allows 8, its registers (O and Q
//     fragments padded to 16 query rows, 168 a thread) 12. Two kv heads per
//     CTA with splits stay slower at 1 x 131072 (copies alone 137.2-139.5
//     against 131.0 us with one head, 64-66 splits against 33).
//   * Where a split launch's time goes (1 x 131072, 33 splits, H200,
//     kernels-dev/paged/timeline.py, -DPD_TIMELINE): the CTAs start within
//     0.2 us, their first tile lands 4.3-7.0 us later (block-table lookup,
//     then the copies, both from DRAM); the main loops end at 119.6 us
//     (median) to 124.9 (last), the steady state reading 4.71-4.75 TB/s;
//     storing the partials takes 0.9-2.8 us and counting 0.5-2.5, and the
//     last split's merge 3.7 us (4.6-5.0 before its LSEs were loaded once
//     and 16 rows put in flight); the span is 129.9 us against an event
//     time of 134.8 (cuDNN 129.5). Event times (same calls): 133.9-134.5
//     against 133.9-135.3 us at 1 x 131072, 133.2-133.7 against 134.0-134.5
//     at 2 x 65536, 41.8-42.4 against 42.4-42.7 at 8 x 4096. Handing the
//     last quarter of each head's 16-token slices out from a counter
//     (branch exp/paged-decode-dynamic) made the loops end together
//     (123.5-131.5 us) but the reworked loop streamed slower (4.47 against
//     4.71 TB/s; 134.8 against 131.8 us, and 264 against 247.5 at 64 x 4096
//     where nothing is handed out): one loop for both, the step's token
//     through shared memory. Handing out half of them from a loop of their
//     own (dyn in paged_decode_block), with the one-page loader and the
//     fused merge staged in shared memory (pd_merge_group), gains 3% there.
//   * Instructions (ncu at base clocks, H200, 64 x 4096, hc = 2): the
//     general loader path's 64-bit address per copy (from a shuffled block)
//     was 70% of the main loop's instructions; the kernel executed 112.3M
//     instructions in 308 us against cuDNN's 38.5M in 247. With the
//     one-page path (kPdOnePage), ldmatrix addresses as XORs of the tile's
//     (pd_ld_addr) and the padding query rows skipped: 51.0M in 255 us. At
//     boost clocks (harness timing, same calls) it gained 1-2%: H200 64 x
//     4096 247.8-248.3 against 251.9-252.4 us (hc = 1), 247.2-248.4
//     against 248.9-250.6 (hc = 2), 8 x 4096 40.1-41.3 against 41.7-42.4,
//     1 x 131072 level (133.9-135.9 against 133.9-135.7; cuDNN 244.8-245.7
//     / 129.4-130.8); H100 359.5 against 365.2 (hc = 1), 358.2 against
//     364.3 (hc = 2), 190.7 against 193.7 at 1 x 131072, 54.6 against 55.9
//     at 8 x 4096 (cuDNN 354.1 / 184.8). Copies alone are then 1-3% ahead
//     of the whole kernel (244.6-245.2 / 130.6-131.4 us): a second
//     S chain (PD_S_CHAINS) takes back 0-1.5% (8 x 4096 40.1 / 41.3
//     against 40.7 / 41.6), where a second S pass costs 1.1% and skipping
//     P V gains 0.3%.
//   * 8-key warp slices, 8 warps a CTA (16 warps per SM, 128 registers; O^T
//     = V^T P^T with m16n8k8 so query heads pad to 8; branch
//     exp/paged-decode-8key): copies alone 240.8-242.4 us against
//     243.3-243.4 (cuDNN 240.1-240.5), but the whole kernel 249.6-250.0
//     against 243.0-243.3 (hc = 2) and 137.0-139.8 against 130.9-135.9 at
//     1 x 131072: the math of 16 warps is not hidden behind the copies.
//   * No gain with the TMA loader: page order and token- vs head-major pages
//     (<= 1.5%), L2 bulk prefetch 1-4 tiles ahead (314-444 us), per-warp
//     mbarrier pipelines, each row as two copies (one aligned), fragments
//     staged in registers before the stage is refilled, 6-16 splits, CTA
//     counts that fill whole waves.
//   * No gain at 64 x 4096 without splits (H100, variant_exp.py and the
//     branch's help_exp.py, same calls; this kernel, hc = 2, 357.2-360.3 us,
//     cuDNN 353.0-354.2), where the loops end from 267 to 355 us (median
//     340, by SM): helper CTAs past the batch that join the kv head with the
//     most unclaimed slices and leave a partial for its owner to merge
//     (branch exp/paged-decode-neediest) 361.4-363.5, and 363.0-363.4 with
//     joins made impossible (the owners' claims, close / wait and exit
//     count); they start when owners end (median 347 us), and the slowest
//     owners' last slices are already in their own pipelines. Copy-only
//     warps (branch exp/paged-decode-copiers: 4 or 8 more a CTA issuing the
//     cp.asyncs, completing on mbarriers, setmaxnreg giving their registers
//     to the math warps) 358.0-359.6 / 360.0-360.7. Two to four splits,
//     one kv head per CTA, with the fused merge and claimed slices over four
//     waves: 363.8-367.6. Pages in order instead of shuffled: 346.2-348.8
//     against 347.3-348.9 (another card, cuDNN 343.2-343.5): the gap is not
//     in the page scatter.
//   * The end of a split launch (H100, 1 x 131072, 33 splits, timeline.py
//     with FLUSH=1, L2 evicted as fa bench times): the SMs streamed 451 to
//     646 16-token slices each. With the splits in grid x, a group's 33 CTAs
//     took a run of the block scheduler's SM order, the groups' counters ran
//     dry from 167 to 183 us, and the last merge ended at 192.4; with the
//     groups in x they ran dry within 171-174 us. That order, and the first
//     block-table entries prefetched before the context length arrives
//     (both in paged_decode_block), same calls: 195.7 / 196.0 us before,
//     194.8 / 194.7 with the order, 195.4 / 195.2 with the prefetch, 194.4 /
//     194.6 with both (cuDNN 193.5 / 193.7). On another H100: 194.7 / 195.0
//     against 194.5 / 194.6, and 2 x 65536 194.9 / 195.0 against 193.6 /
//     193.7 (cuDNN 193.2 / 193.5, 192.6 / 193.1). What is left after the
//     loops: the epilogue's first instructions come from a cold instruction
//     cache under full memory load (the warp combine took 1.25 us median,
//     up to 7.7, and 0.32 us when run a second time in the same CTA), and
//     the merge's 33 cp.asyncs a thread take 1.1 us to issue; one bulk copy
//     per split (sm_90) was slower (merge 3.1 against 2.4 us, 195.0-195.3
//     against 194.5-194.6 us). Running the epilogue once early to warm the
//     cache (a noinline function, called dry on ring stage 2 while the
//     prologue's tiles were in flight) was worse: the first tile landed at
//     17.7 us instead of 10.0 (median), the combine still took 2.5 us, and
//     the launch 207.2-207.5 against 194.9-195.0 (8 x 4096: 77.3 against
//     63.2; 64 x 4096: 380.6 against 368.9). The last claims taken one
//     slice at a time when needed, not one claim ahead: the counters ran dry
//     later (179.6-181.0 us) and the loops ended together (181.2-186.9
//     against 173.4-187.0), but the last at the same time, and the launch
//     took 194.8-195.2 against 194.8-194.9 us. Fixed shares of 2, 3, 5 or
//     6 eighths (kPdDynFixed): 194.3-195.0 against 195.0-195.1 for 4.
//     The last 2 or 4 arrivals merging a share of the group's rows each (the
//     others waiting for the last arrival, then all counting again so that
//     the last resets the counter): the merge took 2.34 us against 2.75
//     (issuing a quarter of the copies took 0.77 us against 1.09), 194.5-195.0
//     against 195.0-195.2 us, but 8 x 4096 63.8-64.8 against 63.3-63.6.
//   * What the math costs (H100, FLUSH=1, same calls; cuDNN 363.8-364.9 us
//     at 64 x 4096, 193.1-194.1 at 1 x 131072): the copies alone
//     (-DPD_LOAD_ONLY) take 363.7-364.5 / 193.2-193.6 us, level with cuDNN,
//     against 366.7-368.8 / 194.6-195.5 for the whole kernel. The timeline
//     at 64 x 4096 puts 1.9 us of that in the last SM's loop (0.4 of it the
//     last slice's math) and 1.6 in the last CTA's epilogue (combine and
//     store 2.2 us against 0.6). Half the MMAs (a timing proxy with wrong
//     results) gain nothing at 64 x 4096 (366.8-367.2 against 366.7-366.8)
//     and 0.2-0.5% at 1 x 131072, so S^T = K Q^T with O^T = V^T P^T (8
//     query rows an MMA, half the MMAs for gqa <= 8) would not close it.
//     Also no gain: Q loaded before the first tiles are issued (the first
//     tile lands at 6.4 us median instead of 10.3, but the launch stays at
//     368.3-368.5 against 367.9-368.8 us; 194.9-195.0 against 195.1-195.2);
//     2 stages at 3 CTAs/SM (168 registers, no spill): 365.7-366.0 against
//     367.4-367.8 us at 64 x 4096 (hc = 2), but 195.9-196.0 against
//     194.8-195.5 at 1 x 131072 (49 splits against 33) and 194.7-194.8
//     against 194.1 at 2 x 65536.
//   * The L2 a launch finds (H100, variant_exp.py, bench cell, two rounds a
//     call): the 256 MiB memset that fa bench and the SDPA anchor run before
//     each call leaves L2 full of dirty lines, and writing them back falls
//     in the timed launch, for both kernels alike. Ours 364.5-364.6 us at
//     64 x 4096 and 194.5-194.7 at 1 x 131072 after the memset, 354.7-354.8
//     / 185.2 after reading 256 MiB instead (FLUSH=clean), 355.8 / 185.2
//     without a flush; cuDNN 363.3-363.6 / 193.6-194.0, 353.7-353.8 /
//     183.6-184.1 and 354.0 / 183.3. The gap stays 0.25-0.5% / 0.3-1.0% whatever
//     L2 holds. An L2 evict-first hint on the K/V cp.asyncs leaves the dirty
//     lines in L2, but past a few L2 sizes it costs more than the write-back
//     it saves: after the memset 382.2 against 364.7 us, 200.1 against 194.5,
//     and 59.0 against 63.1 at 8 x 4096; after a clean flush level (355.2
//     against 354.7-354.9, 184.8 against 185.0-185.1, 53.5 against 53.9-54.0).
//     (ptxas 13 emits a faulting LDGSTS, an illegal instruction at run time,
//     when a cache-hinted cp.async's shared address sits in a uniform
//     register; a shared address it cannot prove uniform avoids that.)
//   * Bare rings of the pair decode's reads (stream_probe.py pairkv, H100,
//     two rounds): a warp's 256-byte K and V rows of one head, 4 warps a
//     CTA, 2 stages, 361.4-361.9 us where K and V pages are independent
//     random pages, but 362.7-363.6 where, as in the caches, a token's K
//     and V sit at one block of two caches (2^28 bytes apart), cuDNN
//     362.8-363.4 in that process. Fetching V one or four tiles behind K
//     (362.8-363.7) does not recover it, so it is not K and V of one token
//     in flight together. Our copies alone took 364.4-364.6 and the whole
//     kernel 364.8-365.0 in the next process (cuDNN 364.0-364.4 there).
// ---------------------------------------------------------------------------
// fp8 cells (e4m3 / e5m2): K/V bytes travel through the same ring as 16-bit
// rows (a row is kHeadDim bytes: the loader, swizzles and slots only count
// 16-byte chunks), and the math converts its fragments to f16 (exact: every
// e4m3 / e5m2 value is an f16) for the same m16n8k16 MMAs with f32
// accumulation:
//   * S = Q K^T: ldmatrix of 16 bytes of 8 key rows gives lane (g, t) key g's
//     bytes 4t .. 4t + 3, two f16x2 after cvt, used as the B rows k = (2t,
//     2t + 1) and (2t + 8, 2t + 9) of a k16 step: a permutation of the 16 d
//     of the chunk, under which Q's A fragments are loaded too (lane's bytes
//     4t .. 4t + 3 of rows g and g + 8). The reduction over d does not care.
//   * O += P V: ldmatrix.trans (b16) of 8 keys x 16 bytes gives lane (g, t)
//     keys 2t, 2t + 1 at bytes 2g, 2g + 1; one prmt separates the two
//     columns, so each 16 d take two n8 tiles, "even" (d = 2g) and "odd"
//     (d = 2g + 1), with P unchanged (f16; the forward kernel requantises P
//     to e4m3 for its fp8 MMA, this kernel needs no fp8 MMA). Lane (g, t)
//     then holds d = 4t + {0, 1, 2, 3} of every 16 (even e0, odd e0, even e1,
//     odd e1), which the warp combine stores in order.
//   * The descales (per sequence and kv head, null = 1): q's and k's fold into
//     the softmax scale, v's into the final normalisation. O is bf16
//     (kOutBF16), like the forward kernel's.
// Rows must be whole 32-byte blocks (fa_spec::paged_decode): fp8 hd80 cells
// decode through _fwd.
static_assert(!kIsFp8 || kHeadDim % 32 == 0, "fp8 decode reads rows 32 bytes at a time (fa_spec::paged_decode)");
constexpr int kPdKBlocks = kHeadDim * kPdElemBytes / 32;    // 32-byte blocks of a K/V row (the math's k-steps)
constexpr bool kPdMmaBF16 = kIsBF16;                        // MMA operand type (fp8 cells: f16)
// Two fp8 values (the low 16 bits of `two`) as f16x2, lower byte to lower half.
template <bool kE5M2>
FA_DEVICE u32 pd_f16x2_of_f8x2(u32 two) {
    u32 r;
    const u16 h = (u16)two;
    if constexpr (kE5M2) asm("cvt.rn.f16x2.e5m2x2 %0, %1;" : "=r"(r) : "h"(h));
    else asm("cvt.rn.f16x2.e4m3x2 %0, %1;" : "=r"(r) : "h"(h));
    return r;
}
// Warps a CTA: fa_spec::tiles::paged_decode_warps (4; 2 where a ring of
// 64-row tiles cannot fit, hd256 on sm89); the runtime launches 32 x that
// many threads (fa_runtime::paged::decode_threads).
#ifndef PD_WARPS   // measurement override (harness only: the runtime launches the rendered count)
#define PD_WARPS {{ pd_warps }}
#endif
constexpr int kPdWarps     = PD_WARPS;
constexpr int kPdThreads   = kPdWarps * 32;
constexpr int kPdBlockN    = 16 * kPdWarps;                 // smem rows per pipeline tile
constexpr int kPdTileShift = kPdBlockN == 128 ? 7 : (kPdBlockN == 64 ? 6 : 5);   // log2(kPdBlockN)
static_assert(1 << kPdTileShift == kPdBlockN, "kPdTileShift");
// TMA loader: K/V are read once, so their bulk copies carry an L2
// evict-first policy (the cp.async loader gains nothing from one, see above).
// Measured (H200, 64 x 4096, splits 2 / 3 / 4, same call): 275.6 / 266.2 /
// 280.0 us against 277.0 / 269.2 / 283.7 us without (-DPD_EVICT_FIRST=0).
#ifndef PD_EVICT_FIRST
#define PD_EVICT_FIRST 1
#endif
// -DPD_TMA=1 (sm_90+): K/V rows fetched with one cp.async.bulk (TMA bulk copy,
// 1 row per thread) completing on a per-stage mbarrier, instead of the
// warps' 16-byte cp.async. Measured (H200, same call, cuDNN 245.3 / 129.6
// us): 269.2 / 147.8 us (1 x 131072 with the fused merge) against 252.3 /
// 136.7 for the cp.async loader.
#ifndef PD_TMA                                              // measurement override (-DPD_TMA=1)
#define PD_TMA 0
#endif
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
#define PD_ARCH_TMA 1
#else
#define PD_ARCH_TMA 0
#endif
constexpr bool kPdTma = kSm >= 90 && PD_ARCH_TMA && PD_TMA;
// cp.async loader: each warp waits only for its own copies (__syncwarp)
// instead of a CTA barrier per tile. -DPD_WARP_PIPE=0: __syncthreads.
#ifndef PD_WARP_PIPE
#define PD_WARP_PIPE 1
#endif
constexpr bool kPdWarpPipe = PD_WARP_PIPE;
// cp.async loader: where the page size is a multiple of a warp's 16 tokens,
// those tokens share one page: one block-table entry, rows at the page stride.
// -DPD_ONE_PAGE=0 (correctness aid): a lookup and a shuffle per row at every
// page size.
#ifndef PD_ONE_PAGE
#define PD_ONE_PAGE 1
#endif
constexpr bool kPdOnePage = PD_ONE_PAGE && kPageSize % 16 == 0;
constexpr int kPdMT        = (kGqa + 15) / 16;              // 16-row m-tiles of query heads
constexpr int kPdRows      = kPdMT * 16;
// Page order: in the entries compiled for one split (_decode_unsplit, the
// unsplit _decode_pair) with one page a slice, a CTA visits its slices in
// windows of 64 visits of each slice position kb of a tile with one head a CTA
// (4 x 64 slices), 128 for pairs (2 x 128), each window in ascending block
// order across the CTA: each warp sorts 64 of them in registers
// (pd_warp_sort64; a pair's two warps one half each of their list), the sorted
// sublists are merged by rank through shared memory, and kb takes every
// kLists-th visit of the merged order (deal_window), so at each step the CTA's
// warps read neighbouring pages. Online softmax does not care about the order.
// Block tables list pages in allocation order, scattered over the cache;
// sorted, every warp of the launch sweeps the caches from low to high addresses
// at about the same pace. Measured (H100, bf16 hd128, 32/8 heads, pages
// shuffled over the caches, FLUSH=1, kernels-dev/paged/tie_ab.py, 11 rounds,
// SDPA cuDNN in the same rounds; "per warp" = -DPD_CTA_PAGES=0, each warp
// sorting only its own window, "token" = -DPD_SORTED_PAGES=0): 64 x 4096 362.8
// us, per warp 363.9, token 365.1 (cuDNN 364.3); 32 x 4096 187.6 / 188.9 /
// 190.8 (189.7); 24 x 4096 144.7 / 146.1 / 148.2 (149.4); 256 x 1024 372.7 /
// 373.0 / 372.2 (366.0). Pairs in one window of 128 visits a list (the whole of
// 4096 tokens) rather than two of 64 (-DPD_WIDE_WINDOWS=0), a second card, 9
// rounds: 64 x 4096 361.3 against 362.6 (token order 365.0, cuDNN 363.1). A
// third card, 9 rounds: 64 x 4096 362.0 against 363.7 in token order (cuDNN
// 363.3), 128 x 4096 714.4 / 717.0 (712.2), 256 x 2048 713.4 / 714.0 (710.0),
// 96 x 4096 539.0 / 540.1 (535.5). The bound, tables whose rows are already
// sorted (PAGES=sorted in the harness), 64 x 4096: 359.5 us in token order,
// 360.2 sorting (the identity there: what the sort and merge cost). The first
// card gave 128 x 4096 752 us sorted against 736 in token order (cuDNN 714),
// where the third gained 2.6 us (and stop 25's card, with per-warp order, 1.3):
// not understood, left as is. Token order where the Q and O fragments exceed
// 128 x 16 (hd192 / hd256, two m-tiles at hd128): when per-warp order came in,
// its registers made those entries spill (100-116 bytes at hd256); with the
// merge they no longer do (sm_90a), but the order there is not measured. And on
// sm_100, where _decode_pair / _decode_unsplit spill 4 / 12 bytes at 16-bit
// hd128 with the order (52 with per-warp order), and no card here measures it.
// -DPD_SORTED_PAGES=0 (measurement override): token order everywhere.
#ifndef PD_SORTED_PAGES
#define PD_SORTED_PAGES 1
#endif
constexpr bool kPdSortedPages = PD_SORTED_PAGES && kPdOnePage && !kPdTma && kPdWarpPipe && kHeadDim * kPdMT <= 128 && kSm < 100;
// -DPD_CTA_PAGES=0 (measurement override): each warp visits its own slices'
// window in block order, without the merge across the CTA (deal_window).
#ifndef PD_CTA_PAGES
#define PD_CTA_PAGES 1
#endif
// -DPD_WIDE_WINDOWS=0 (measurement override): pairs sort windows of 64
// visits a list in one warp of the two, not 128 in both.
#ifndef PD_WIDE_WINDOWS
#define PD_WIDE_WINDOWS 1
#endif
constexpr int kPdNotLooked = -2;                            // (page_block: no entry looked up ahead)
// Split launches with the fused merge hand out slices dynamically (dyn in
// paged_decode_block), all but the first kPdDynFixed eighths of them, where
// the registers allow a second main loop: up to 64 O registers a thread
// (hd 256 spilled 28 B on sm_90a with it, in both loops; nothing without).
// -DPD_DYNAMIC=0: fixed ranges; -DPD_DYN_FIXED=n: tuning override.
#ifndef PD_DYNAMIC
#define PD_DYNAMIC (kHeadDim * kPdMT <= 128)
#endif
#ifndef PD_DYN_FIXED
#define PD_DYN_FIXED 4
#endif
constexpr bool kPdDynamic = PD_DYNAMIC;
constexpr int kPdDynFixed = PD_DYN_FIXED;
// Whether rows g + 8 r of m-tile mt (g = lane / 4) are all zero padding
// (query heads >= kGqa): their softmax, P and combine are skipped.
constexpr bool pd_padding_rows(int mt, int r) { return mt * 16 + 8 * r >= kGqa; }
// Independent accumulator chains of S per n-tile (2: even / odd k-steps;
// two m-tiles are four chains already). -DPD_S_CHAINS=1: one chain.
#ifndef PD_S_CHAINS
#define PD_S_CHAINS (kPdMT == 1 ? 2 : 1)
#endif
constexpr int kPdSChains   = PD_S_CHAINS;
// Lanes sharing a K/V row in the cp.async loader: 16 at hd128 (a copy
// instruction reads two whole 256-byte rows), else the largest power of two
// up to 8 that divides the row's 16-byte chunks (hd / 8: 8 to 32, all even;
// 8 lanes read four 128-byte halves of rows; fp8 rows are 4 to 16 chunks,
// and 4 / 6 of them take 4 / 2 lanes). Measured, hd128 with 16
// lanes against 8 (-DPD_ROW_LANES=8):
//   * _decode_pair, 64 x 4096 (variant_exp.py, FLUSH=1, two calls a card):
//     H200 253.6-253.7 us against 254.3-254.6 (cuDNN 254.3-254.6); H100
//     364.3-364.8 against 365.1-365.2 (cuDNN 363.5-364.3).
//   * _decode (one head a CTA, splits): within the noise. variant_exp put it
//     0.3% ahead at 1 x 131072 and 0.5% behind at 8 x 4096 in one call and
//     the other way round in another; fa bench --decode against the
//     previous main (both cards, two rounds each) level: H200 137.6 us
//     against 137.7-137.8, 47.5-47.6 against 47.4-47.5; H100 194.5-194.7
//     against 194.3-194.8, 62.3-62.9 against 62.6-62.8.
// hd256 (32 chunks) keeps 8: not measured with 16.
#ifndef PD_ROW_LANES                                        // measurement override (-DPD_ROW_LANES=8)
#define PD_ROW_LANES (kPdChunks == 16 ? 16 : 8)
#endif
constexpr int kPdRowLanes = kPdChunks % PD_ROW_LANES == 0 ? PD_ROW_LANES : (kPdChunks % 8 == 0 ? 8 : (kPdChunks % 4 == 0 ? 4 : 2));
// (The general loader's tail and run swizzles take a lane's rows r0 + 32 / L
// k as one key mod 8.)
static_assert(kPdChunks % 8 == 0 || 32 / kPdRowLanes % 8 == 0, "tail swizzle: a lane's rows share key & 7");
static_assert(kPdChunks % 2 == 0, "cp.async loader: whole rows per pair of lanes");
// (fp8 rows of 4 / 6 chunks, hd64 / hd96, take whole rows too: 8 / 5 an
// instruction; not timed.)
// Rows of 10 or 12 chunks (hd80 / hd96) on pages of 16 or more tokens: each
// copy instruction reads whole rows, 3 or 2 of them (30 or 24 lanes),
// instead of 2 or 4 lanes a row (16 or 8 rows of 32 or 64 bytes an
// instruction). A request to L2 covers what one instruction reads of one
// 128-byte line, so a row takes 2 requests where it took 5 or 3.
// Measured (H200, 64 x 4096, 8 kv heads, two a CTA, variant_exp.py, same
// calls): bf16 hd96 gqa 4 235.9 us with 2 or 4 lanes a row against 249.1
// (1 x 131072: 125.5 against 133.6), f16 hd80 gqa 4 (alibi) 203.2 against
// 261.4, both with 32 consecutive chunks an instruction, which splits every
// third row between two; whole rows: 230.5 against 235.7, 125.4-125.6
// against 126.1, 201.2-201.5 against 203.0-203.4. SDPA cuDNN 204.3 /
// 113.0-113.4 / 172.5-172.9 (hd80 without alibi). The copies alone
// (-DPD_LOAD_ONLY) took as long as the whole kernel at hd96.
constexpr bool kPdWholeRows = kPdOnePage && kPdRowLanes < 8;
// _decode_pair with such rows: the two warps of a 16-token slice (one per
// head) each copy 8 of its tokens for both heads, one token's two rows (a
// contiguous run of 20 or 24 chunks, so its inner 128-byte line whole) an
// instruction, and meet at a named barrier per tile instead of each waiting
// for its own copies alone. Measured (H200, 64 x 4096, same call): bf16
// hd96 gqa 4 219.0 us against 230.0 with a warp copying its own head's rows
// (-DPD_PAIR_JOINT=0), f16 hd80 gqa 4 alibi 195.1 against 201.0 (SDPA
// cuDNN 204.8 / 173.2, hd80 without alibi). At hd128 (one 512-byte run an
// instruction, all 32 lanes) it was measured against 8 lanes a row: H100
// 364.4-364.6 us against 365.1-365.2 (copies alone 363.1-363.5 against
// 364.2-364.5), but H200 254.7-255.3 against 254.3-254.4; 16 lanes a row
// (see kPdRowLanes) matched it on the H100 and beat both on the H200. A bare
// ring of the pair's copies, one 512-byte row an instruction
// (stream_probe.py pair), reads the bytes in 361.6-362.6 us on an H100
// whether 8, 10, 12 or 14 warps per SM issue the copies (2 CTAs of 4-7
// warps, 2 stages; or 4-6 warps with 3-4 stages): more copy-issuing warps
// would not gain there.
// Whether _decode_pair takes split launches (fixed ranges, either merge):
// fa_spec::tiles::paged_pair_splits renders it, rows of 160 / 192 bytes
// (16-bit hd80 / hd96, fp8 hd192) on sm_90+,
// where one head's rows split 128-byte lines and a pair's runs do not (see
// fa_runtime::paged::decode_layout). Elsewhere the pair is never split and
// its split and merge code is not compiled at all.
#ifndef PD_PAIR_SPLITS                                      // measurement override (-DPD_PAIR_SPLITS=0 / 1)
#define PD_PAIR_SPLITS {{ pd_pair_splits }}
#endif
#ifndef PD_PAIR_JOINT                                       // measurement override (-DPD_PAIR_JOINT=0)
#define PD_PAIR_JOINT 1
#endif
// (Rows of 10 / 12 chunks, whose token runs fill 20 / 24 lanes; the whole
// rows of fp8 hd64 / hd96, 4 / 6 chunks, would leave most lanes idle.)
template <int hcs> constexpr bool kPdPairJoint = PD_PAIR_JOINT && kPdWholeRows && kPdChunks >= 10 && hcs == 1 && !kPdTma && kPdWarpPipe;
// Shared-memory row stride of the K/V ring. cp.async: unpadded, chunk c of
// the row of token key at chunk c ^ (key & 7), so the 8 keys an ldmatrix
// phase reads fall in 8 distinct 16-byte bank groups; rows that are not a
// multiple of 128 bytes (hd80 / hd96) take the tail or run swizzle below
// (+ 16 bytes, same effect, with -DPD_TAIL_SWIZZLE=0, and for fp8 rows of 4
// / 6 chunks, hd64 / hd96: conflict-free for one head a CTA, 2-way in
// _decode_pair's interleaved rows; not measured). TMA (a bulk copy
// cannot swizzle): an odd multiple of 32 bytes. A bulk copy into a destination that is only
// 16-byte aligned is slower, and 32-byte alignment leaves 4 distinct bank
// groups (a 2-way ldmatrix conflict). Measured (H100, bf16 hd128, 64 x 4096,
// same call, SDPA cuDNN 354 us): row stride 272 / 288 / 256 bytes: whole
// kernel 383 / 373 / 389 us, copies alone (-DPD_LOAD_ONLY) 375 / 365 / 358.
constexpr bool kPdSwizzle = !kPdTma && kPdChunks % 8 == 0;
// Rows of 10 or 12 chunks (hd80 / hd96), cp.async: unpadded too. A row
// starts (10 R) % 8 or (12 R) % 8 16-byte bank groups on, so no XOR of the
// chunk index spreads 8 keys over 8 groups; instead (pd_chunk) chunks 0-7
// go to group (c ^ key) % 8 and the 2 or 4 tail chunks to the groups the
// row's start leaves twice, by key (for the one-head _decode on sm_80 /
// sm_89, whose 8 keys of an ldmatrix phase are consecutive rows; sm_90+
// slots those rows, see PD_ONE_SLOT). _decode_pair instead keeps a
// token's two rows together as one run (320 or 384 bytes) in a 384-byte
// slot, three 128-byte segments: the run starts at its offset in the page
// mod 128 (64 bytes on for odd pairs at hd80; 0 at hd96), so that every
// 128-byte line of the page fills one segment, and chunk q of the slot sits
// at q ^ key within its segment (kPdRunSwizzle). cp.async fills run slower
// where a line of the page lands in two segments of shared memory. Bare
// rings of the pair reads at 64 x 4096 (stream_probe.py pair96 / pair80):
// hd96 on an H100 287.3-288.0 us with each head's rows together and
// tail-swizzled, 281.1-281.5 in slots, 281.2-281.6 copied as they are
// (cuDNN 286.0); hd80 on an H200 179.2-179.5 / 168.2-168.6 / 170.1-170.7
// (cuDNN 171.6-172.0). Unpadded rows let a 3-stage ring fit 3 CTAs per SM
// (hd96: 74 KB against 80 KB). Measured (variant_exp.py, FLUSH=1, same
// calls, against -DPD_TAIL_SWIZZLE=0): _decode_pair at 64 x 4096, bf16 hd96
// gqa 4 H100 284.6 us against 303.7 (cuDNN 285.6), H200 196.5 against
// 218.3 (cuDNN 204.4); f16 hd80 gqa 4 alibi H100 247.8 against 264.7
// (cuDNN 275.3), H200 171.1 against 195.6 (cuDNN 172.2; cuDNN without
// alibi). _decode with splits, before PD_ONE_SLOT (3 CTAs per SM instead
// of 2 at hd96, so 49 splits instead of 33): H200 1 x 131072 122.8 against 125.7 (hd96) and
// 111.2 against 112.8 (hd80), cuDNN 113.2 / 98.3; 8 x 4096 42.9 against
// 45.2 and 39.8 against 41.1, cuDNN 43.0 / 38.3.
// -DPD_TAIL_SWIZZLE=0 (measurement override): the rows padded by 16 bytes,
// token-major, as before.
#ifndef PD_TAIL_SWIZZLE
#define PD_TAIL_SWIZZLE 1
#endif
constexpr bool kPdTailSwizzle = PD_TAIL_SWIZZLE && !kPdTma && (kPdChunks == 10 || kPdChunks == 12);
// The one-head _decode on sm_90+ (split launches: one kv head per CTA) puts
// each row in a 256-byte slot the same way, the row starting at its offset
// in the page mod 128 (pd_run_shift: 0 or 64 bytes at hd96, 0 / 32 / 64 /
// 96 at hd80), so that it too fills whole segments. Its 16 KB stages leave
// 2 CTAs per SM with 3 stages instead of 3, and 33 splits instead of 49 at
// 1 x 131072; on sm_80 / sm_89 they would cost a stage or a CTA per SM
// (not measured), so the tail swizzle stays there. Measured (H100,
// variant_exp.py, FLUSH=1, fused merge, same call, against the tail
// swizzle; SDPA cuDNN on the contiguous cache): bf16 hd96 gqa 4, 1 x
// 131072 164.3 us against 166.5 (cuDNN 155.0; copies alone 161.3 against
// 163.8), 8 x 4096 55.0 against 55.2 (54.7); f16 hd80 gqa 4 alibi 140.8
// against 149.0 (cuDNN 134.8, without alibi) and 48.5 against 50.4
// (50.5). 2 stages at 3 CTAs per SM instead: 163.6 / 54.2 at hd96, 142.4
// / 48.4 at hd80. Since then the host pairs every even kv-head count at
// hd80 / hd96 on sm_90+ (PD_PAIR_SPLITS), so this path serves odd ones,
// whose token rows are not whole lines (the slot shift then holds for
// every other token). There too (H100, same call, fused; 1 x 131072 / 16
// x 4096): hd96 3 kv heads 77.3 / 45.2 us against 78.6 / 46.3 (cuDNN 76.0
// / 46.3), 1 kv head 41.4 / 22.1 against 41.7 / 22.3 (42.8 / 24.1); hd80
// 3 kv heads 67.4 / 40.4 against 70.2 / 42.1 (67.6 / 43.7), 1 kv head 37.9
// / 20.1 against 39.0 / 20.8 (39.3 / 21.5).
// -DPD_ONE_SLOT=0 (measurement override): the tail swizzle.
#ifndef PD_ONE_SLOT
#define PD_ONE_SLOT (kSm >= 90)
#endif
template <int hcs> constexpr bool kPdRunSwizzle = kPdTailSwizzle && (hcs == 1 || PD_ONE_SLOT);
template <int hcs> constexpr int kPdSlotBytes = hcs == 1 ? 384 : 256;   // a token's run slot (kPdRunSwizzle)
// A run starting at the largest shift pd_run_shift gives (kvh0 C mod 8 is a
// multiple of gcd(C, 8); kvh0 is even for pairs) still ends in its slot.
constexpr int pd_gcd8(int n) { return n % 8 == 0 ? 8 : (n % 4 == 0 ? 4 : (n % 2 == 0 ? 2 : 1)); }
static_assert(!kPdRunSwizzle<0> || 8 - pd_gcd8(kPdChunks) + kPdChunks <= kPdSlotBytes<0> / 16, "one-head run past its slot");
static_assert(!kPdRunSwizzle<1> || 8 - pd_gcd8(2 * kPdChunks) + 2 * kPdChunks <= kPdSlotBytes<1> / 16, "pair run past its slot");
#ifndef PD_ROW_PAD                                          // tuning override (-DPD_ROW_PAD=n bytes)
#define PD_ROW_PAD (kPdTma ? (32 - kHeadDim * kPdElemBytes % 64 + 64) % 64 : (kPdSwizzle || kPdTailSwizzle ? 0 : 16))
#endif
constexpr int kPdRowBytes  = kHeadDim * kPdElemBytes + PD_ROW_PAD;   // smem row (padded: TMA, overrides, fp8 rows of 4 / 6 chunks)
// One K (or V) stage: kPdBlockN rows, or (_decode_pair, run slots) kPdBlockN
// / 2 slots; one size serves both entries (so where the tail swizzle holds,
// hd80's _decode leaves 2 of its 12 KB unused; its CTAs per SM and ring
// depth are those of 10 KB stages), except the one-head slots (16 KB).
constexpr int kPdKVBytesShared = kPdTailSwizzle && kPdBlockN / 2 * kPdSlotBytes<1> > kPdBlockN * kPdRowBytes
                                 ? kPdBlockN / 2 * kPdSlotBytes<1> : kPdBlockN * kPdRowBytes;
template <int hcs> constexpr int kPdKVBytes = hcs == 0 && kPdRunSwizzle<0> ? kPdBlockN * kPdSlotBytes<0> : kPdKVBytesShared;
// Bytes from one ring row (pd_row) to the next: a row, or a run slot.
template <int hcs> constexpr int kPdRowStride = kPdRunSwizzle<hcs> ? kPdSlotBytes<hcs> : kPdRowBytes;
constexpr int kPdOStride   = kHeadDim + 4;                  // f32 row stride of the warp-combine buffer
constexpr int kPdComboBytes = kPdWarps * kPdRows * (kPdOStride + 1) * 4;
// Dynamic shared memory of _decode with a ring of `stages` stages: the ring
// (reused as the warp-combine buffer), then per-stage row flags, then the
// per-stage mbarriers of the TMA path.
struct PdSmemLayout {
    int flag_offset, bar_offset, bytes;
};
constexpr PdSmemLayout pd_smem_layout(int stages, int kv_bytes) {
    const int pipe = stages * 2 * kv_bytes;
    const int region = pipe > kPdComboBytes ? pipe : kPdComboBytes;
    const int flags = (region + 127) / 128 * 128;
    const int bars = (flags + stages * kPdBlockN + 7) / 8 * 8;
    return {flags, bars, (bars + stages * 8 + 127) / 128 * 128};
}
// CTAs per SM that shared memory allows (1 KB reserved per CTA) on the
// cell's arch: 228 KB (sm_90 / sm_100), 164 KB (sm_80), 100 KB (sm_89).
constexpr int kPdSmemPerSm = kSm >= 90 ? 233472 : (kSm >= 89 ? 102400 : 167936);
constexpr int pd_smem_ctas(int stages, int kv_bytes) { return kPdSmemPerSm / (pd_smem_layout(stages, kv_bytes).bytes + 1024); }
// Ring depth. cp.async: 3 stages (2 tiles in flight per CTA) unless that
// leaves fewer CTAs per SM than min(2, what 2 stages allow), else 2.
// Measured (H200, 64 x 4096 / 1 x 131072 fused, cuDNN in the same call):
// bf16 hd128 gqa 4, 2 -> 3 stages (3 -> 2 CTAs/SM): 257.9 -> 247.6 / 136.3
// -> 133.5 us (cuDNN 242.3 / 126.9); hd64 gqa 32 (3 CTAs/SM both, for
// registers): 180.7 -> 173.1; hd96 (4 -> 2): 220.9 -> 217.7 / 126.7 ->
// 121.4; hd256 (1 CTA/SM both): 666.3 -> 627.9 / 351.3 -> 318.8; hd192,
// where 3 stages leave 1 CTA/SM instead of 2: 363.0 -> 456.9, so 2 stages.
// The exception is f16 hd80 (4 -> 3 CTAs/SM): 198.5 -> 203.7 at 64 x 4096,
// 110.2 -> 109.3 at 1 x 131072. H100, bf16 hd128 (cuDNN 353.7 / 184.9 us):
// 370.5 -> 365.1 at 64 x 4096, but 191.7 -> 194.8 at 1 x 131072 (49 -> 33
// splits). TMA loader (as many tiles in flight as stages): 2 stages beat 3 and 4.
#if !defined(PD_STAGES) && !defined(PD_PAIR_STAGES) && !defined(PD_UNSPLIT_STAGES)
#define PD_DEFAULT_RINGS 1
#endif
#ifndef PD_STAGES                                           // tuning override (-DPD_STAGES=n)
#define PD_STAGES (kPdTma ? 2 : (pd_smem_ctas(3, kPdKVBytes<0>) >= (pd_smem_ctas(2, kPdKVBytes<0>) < 2 ? pd_smem_ctas(2, kPdKVBytes<0>) : 2) ? 3 : 2))
#endif
// CTAs per SM that a launch-bounds register budget can allow: 1 to 3 (3 is
// 170 registers a thread; more would squeeze the math).
// Where the Q and O fragments (both in proportion to head_dim x 16-row
// m-tiles) reach 192 x 16, they do not fit 168 registers: fp8 (rows half
// as long as 16-bit ones, so shared memory allows 3 CTAs per SM) at hd192 /
// hd256, or hd128 with 2 m-tiles (gqa > 16), _decode_pair spilled 136 / 232
// / 460 bytes and _decode 432 (hd128); 16-bit hd128 with 2 m-tiles, whose
// 2-stage rings fit 3 CTAs per SM, _decode_pair 420 and _decode_unsplit
// 412-444, and hd96 with 2 m-tiles _decode_unsplit 144-164 (sm_80 to
// sm_100). There registers allow 2 CTAs (the rule also takes hd64 with 3
// m-tiles). Checked with ptxas -v; compile_matrix checks every decode
// entry's spills, gqa 32 cells among them. Measured (H100, bf16 hd128 gqa
// 32, 8 kv heads, FLUSH=1, tie_ab.py, SDPA cuDNN in the same rounds): 64 x
// 4096 375.6 us through _decode_pair at 2 CTAs/SM against 559.6 at 3 with
// its spills (cuDNN 383.5); _decode_unsplit 198.8 against 287.7 at 32 x
// 4096 (196.5), 739.0 against 1089.4 at 128 x 4096 (750.2).
#ifndef PD_MAX_CTAS                                         // measurement override (-DPD_MAX_CTAS=3)
#define PD_MAX_CTAS (kHeadDim * kPdMT >= 192 ? 2 : 3)
#endif
constexpr int kPdMaxCtas = PD_MAX_CTAS;
constexpr int pd_min3(int n) { return n > kPdMaxCtas ? kPdMaxCtas : n; }
constexpr int pd_cap_ctas(int n) { return n < 1 ? 1 : pd_min3(n); }
// The ring of the entries compiled for one split (_decode_pair, _decode_unsplit)
// over `kv_bytes` K/V bytes a stage: the depth that fits the most CTAs per SM
// (up to kPdMaxCtas), 3 stages on a tie; TMA, 2.
constexpr int pd_most_ctas_stages(int kv_bytes) {
    return kPdTma ? 2 : (pd_min3(pd_smem_ctas(2, kv_bytes)) > pd_min3(pd_smem_ctas(3, kv_bytes)) ? 2 : 3);
}
// _decode_pair (two kv heads per CTA, which the host launches only without
// splits, except at hd80 / hd96 on sm_90+): the ring depth that gives the most CTAs per SM (up to 3), 3
// stages on a tie. Where 3 stages do not fit at all (0 CTAs: hd256 on
// sm_80, hd192 on sm_89) that is 2, as for _decode. No split means every CTA streams from start to end, and there more
// copy-issuing warps per SM beat a deeper ring. Measured (H100, bf16 hd128,
// 64 x 4096, same calls, SDPA cuDNN 363.1-363.6 us): 2 stages at 3 CTAs/SM
// 364.8-365.3 us against 366.3-366.8 for 3 stages at 2 CTAs/SM.
#ifndef PD_PAIR_STAGES                                      // tuning override (-DPD_PAIR_STAGES=n)
#define PD_PAIR_STAGES pd_most_ctas_stages(kPdKVBytes<1>)
#endif
// _decode_unsplit (one kv head per CTA, which the host launches only
// without splits, fa_runtime::paged::decode_layout): like _decode_pair, the
// ring depth that gives the most CTAs per SM (up to 3), 3 stages on a tie;
// where that is _decode's ring, the entry differs from _decode only in
// carrying no split, merge or dynamic-slice code. Measured (H100, bf16
// hd128, 32/8 heads, FLUSH=1, kernels-dev/paged/tie_ab.py, 9 rounds,
// same calls as SDPA cuDNN; the builds before this entry, _decode with
// its split count fixed at 1): without the split code 0.3-0.8% faster on
// the same ring (24 x 4096 151.9 against 153.2 us, 48 x 4096 281.1
// against 281.9, 128 x 4096 717.7 against 718.8); with 2 stages at 3
// CTAs/SM as well 148.4, 279.2, 715.5 (cuDNN 153.4, 281.1, 711.9) and 32 x
// 4096 191.0 against 193.7 (190.8); but with 128 CTAs (16 x 4096) 107.9
// against 104.1 for 3 stages: a launch of fewer CTAs than SMs wants the
// deeper ring, so the host keeps _decode there (fa_runtime::paged::
// decode_layout has the figures of this entry on both cards).
#ifndef PD_UNSPLIT_STAGES                                   // tuning override (-DPD_UNSPLIT_STAGES=n)
#define PD_UNSPLIT_STAGES pd_most_ctas_stages(kPdKVBytes<0>)
#endif
// The ring of the decode entry serving 1 << hcs kv heads per CTA (and, for
// one head, compiled for one split or not): its depth, shared-memory layout
// (bytes exported as <kernel>_decode_smem_bytes / _decode_unsplit_smem_bytes
// / _decode_pair_smem_bytes, __constant__ int) and the CTAs per SM of its
// __launch_bounds__: as many as shared memory allows, up to 3, so that
// registers never cost occupancy that shared memory would give.
template <int hcs, bool unsplit = false> struct PdRing {
    static constexpr int stages = unsplit ? PD_UNSPLIT_STAGES : hcs == 0 ? PD_STAGES : PD_PAIR_STAGES;
    static constexpr PdSmemLayout smem = pd_smem_layout(stages, kPdKVBytes<hcs>);
    static constexpr int min_blocks = pd_cap_ctas(pd_smem_ctas(stages, kPdKVBytes<hcs>));
};
#ifdef PD_DEFAULT_RINGS
// The host reads every entry's occupancy for every decode, so _decode_pair
// and _decode_unsplit must fit wherever _decode does.
static_assert(PdRing<1>::smem.bytes <= PdRing<0>::smem.bytes, "_decode_pair needs no more shared memory than _decode");
static_assert(PdRing<0, true>::smem.bytes <= PdRing<0>::smem.bytes, "_decode_unsplit needs no more shared memory than _decode");
// And _decode must fit at all (else fa_spec::tiles::paged_decode_warps
// should have rendered fewer warps).
static_assert(pd_smem_ctas(PdRing<0>::stages, kPdKVBytes<0>) >= 1, "decode ring exceeds the arch's shared memory per block");
#endif
constexpr u32 kPdRowGBytes = kHeadDim * kPdElemBytes;       // one K/V row in global memory
static_assert(!kPdTma || kPdThreads == 2 * kPdBlockN, "TMA loader: one K or V row per thread");
constexpr bool kPdLogitsScaled = kHasSoftcap || kAlibi;     // scores carried as true logits
constexpr int kPdMergeWarps = 4;                            // (b, h) pairs per _decode_merge CTA
// fwd.cu.tera sets kSoftcap = 0 when the cell has no softcap: divide by this one.
constexpr float kPdSoftcap = kHasSoftcap ? kSoftcap : 1.0f;

struct alignas(16) PdF4 { float x, y, z, w; };
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

// Sorts 64 (key, value) pairs held two a lane (pair i: lane i % 32, register
// i / 32) ascending by (key, value), which must be distinct: a bitonic
// network, shuffles between lanes, a swap within a lane at stride 32.
FA_DEVICE void pd_warp_sort64(int (&key)[2], int (&val)[2], int lane) {
#pragma unroll
    for (int size = 2; size <= 64; size <<= 1) {
#pragma unroll
        for (int stride = size / 2; stride > 0; stride >>= 1) {
            if (stride == 32) {   // (size 64, ascending) pairs lane and lane + 32
                if (key[1] < key[0] || (key[1] == key[0] && val[1] < val[0])) {
                    int x = key[0]; key[0] = key[1]; key[1] = x;
                    x = val[0]; val[0] = val[1]; val[1] = x;
                }
                continue;
            }
#pragma unroll
            for (int r = 0; r < 2; ++r) {
                const int ok = __shfl_xor_sync(0xffffffffu, key[r], stride);
                const int ov = __shfl_xor_sync(0xffffffffu, val[r], stride);
                const bool up = ((r * 32 + lane) & size) == 0;   // this run ascends
                const bool low = (lane & stride) == 0;           // lower element of its pair: keeps the smaller when ascending
                const bool other_less = ok < key[r] || (ok == key[r] && ov < val[r]);
                if (other_less == (low == up)) { key[r] = ok; val[r] = ov; }
            }
        }
    }
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

// Ring position of 16-byte chunk c of a K/V row of token `key` (tile-relative).
// Tail swizzle (kPdTailSwizzle, C = 10 or 12 chunks, the row of key starting
// at bank group C key % 8): chunk c < 8 at (c ^ key - C key) % 8, so in
// group (c ^ key) % 8; tail chunk 8 + j at 8 + (j ^ key / (8 / t)) % t (t =
// C - 8), in group (C key + j ^ ...) % 8, which the row's start makes a
// group of its own for each of the 8 keys.
// Run swizzle (kPdRunSwizzle): chunk c of head hh in the token's slot, the
// run starting sh chunks in (pd_run_shift).
template <int hcs>
FA_DEVICE int pd_chunk(int c, int key, int hh = 0, int sh = 0) {
    if constexpr (kPdRunSwizzle<hcs>) {
        const int q = sh + hh * kPdChunks + c;
        return (q & ~7) | ((q & 7) ^ (key & 7));
    } else if constexpr (kPdTailSwizzle) {
        constexpr int t = kPdChunks - 8, ksh = t == 4 ? 1 : 2;
        return c < 8 ? ((c ^ (key & 7)) - kPdChunks * key) & 7 : 8 + ((c - 8) ^ ((key >> ksh) & (t - 1)));
    } else {
        return kPdSwizzle ? c ^ (key & 7) : c;
    }
}
// Ring row of token tok (tile-relative) of head hh of the CTA's 1 << hcs:
// a token's heads side by side, or (run swizzle) the token's slot.
template <int hcs>
FA_DEVICE int pd_row(int tok, int hh) {
    if constexpr (kPdRunSwizzle<hcs>) return tok;   // (the token's slot)
    else return (tok << hcs) + hh;
}
// Chunks from a run slot's start to the run's (kPdRunSwizzle): where the
// CTA's first row starts in a 128-byte line of the page (kv head kvh0 of
// rows of kPdChunks chunks). _decode_pair: 0 at hd96 (written as the
// constant it is, kvh0 being even), 0 or 4 at hd80, so the run ends within
// the slot's 24 chunks; one head (PD_ONE_SLOT): 0 or 4 at hd96, 0, 2, 4 or
// 6 at hd80, within 16. It assumes K and V caches with contiguous heads and
// token rows that are whole 128-byte lines (num_kv_heads even at hd96, a
// multiple of 4 at hd80); other caches still read correctly, with some
// lines split.
template <int hcs>
FA_DEVICE int pd_run_shift(int kvh0) { return kPdChunks == 12 && hcs == 1 ? 0 : (kvh0 * kPdChunks) & 7; }
// Byte column of an ldmatrix row address. -DPD_FAKE_SWIZZLE (measurement aid,
// wrong results): swizzled reads of unswizzled TMA rows, i.e. the math's
// shared-memory traffic without bank conflicts whatever the row stride.
template <int hcs>
FA_DEVICE int pd_ld_col(int col, int key, int hh = 0, int sh = 0) {
#ifdef PD_FAKE_SWIZZLE
    return col ^ ((key & 7) << 4);
#else
    return pd_chunk<hcs>(col >> 4, key, hh, sh) * 16 + (col & 15);
#endif
}
// ldmatrix address of this lane's row `row` at byte column col + lane_col
// (col a compile-time multiple of 32, lane_col < 32). Swizzled rows are
// multiples of 128 bytes, so the chunk of col + lane_col is that of lane_col
// XOR a constant: the address is two operations on the tile's lane_col
// address, and no lane-dependent offset per col is hoisted out of the main
// loop (at hd256 those were 13 registers, spilled).
template <int hcs>
FA_DEVICE u32 pd_ld_addr(u32 row, int lane_col, int key, int col, int hh = 0, int sh = 0) {
    if constexpr (kPdSwizzle) return ((row + pd_ld_col<hcs>(lane_col, key)) ^ (col & 0x70)) + (col & ~0x7f);
    else return row + pd_ld_col<hcs>(col + lane_col, key, hh, sh);
}

// Byte offsets of the K and V cache rows of (block, slot in the page, kv head).
FA_DEVICE long long pd_k_row(const PagedDecodeParams& p, int blk, int slot, int kvh) {
    return ((long long)blk * p.k_block_stride + (long long)slot * p.k_page_stride + (long long)kvh * p.k_head_stride) * kPdElemBytes;
}
FA_DEVICE long long pd_v_row(const PagedDecodeParams& p, int blk, int slot, int kvh) {
    return ((long long)blk * p.v_block_stride + (long long)slot * p.v_page_stride + (long long)kvh * p.v_head_stride) * kPdElemBytes;
}

// 4 f32 -> 4 packed 16-bit values (8 bytes) of O's dtype.
FA_DEVICE void pd_store4(void* dst, const PdF4& v) {
    u32 lo = pack_x2<kOutBF16>(v.x, v.y), hi = pack_x2<kOutBF16>(v.z, v.w);
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
// -DPD_TIMELINE (measurement aid, kernels-dev/paged/timeline.py): thread 0
// of each CTA records %globaltimer at the points below (and its SM) in
// pd_timeline, read back by the host.
#ifdef PD_TIMELINE
__device__ unsigned long long pd_timeline[4096 * 16];
// This CTA's stamp k (null past the first 4096 CTAs).
FA_DEVICE unsigned long long* pd_slot(int k) {
    const int cta = blockIdx.x + gridDim.x * (blockIdx.y + gridDim.y * blockIdx.z);
    return cta < 4096 ? &pd_timeline[cta * 16 + k] : nullptr;
}
FA_DEVICE void pd_stamp(int k, unsigned long long v) {
    unsigned long long* slot = pd_slot(k);
    if (threadIdx.x == 0 && slot != nullptr) *slot = v;
}
FA_DEVICE unsigned long long pd_now() {
    unsigned long long t;
    asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t) :: "memory");
    return t;
}
#define PD_STAMP(k) pd_stamp(k, pd_now())
// Dynamic slices, by lane 0 of each warp: 14 = the slices each warp
// attended (16 bits per warp), 15 = when warp 0 found its head's counter dry.
FA_DEVICE void pd_warp_stamp(int k, unsigned long long v) {
    unsigned long long* slot = pd_slot(k);
    if ((threadIdx.x & 31) == 0 && slot != nullptr) {
        if (k == 14) atomicOr(slot, v);
        else *slot = v;
    }
}
#define PD_WARP_STAMP(k, v) pd_warp_stamp(k, v)
#else
#define PD_STAMP(k) ((void)0)
#define PD_WARP_STAMP(k, v) ((void)0)
#endif
// -DPD_VISIT_LOG (check aid, kernels-dev/paged/visit_order.py): lane 0 of
// each warp records the first token and the block of its visits in issue
// order (sorted visits, kSorted; the first 512 of the first 1024 CTAs),
// read back by the host, which checks that a CTA's warps visit every slice
// once, each with its page's block, and, window by window, in ascending
// block order.
#ifdef PD_VISIT_LOG
__device__ int pd_visit_log[1024 * 8 * 512 * 2];
FA_DEVICE void pd_visit(int v, int tok, int blk) {
    const int cta = blockIdx.x + gridDim.x * (blockIdx.y + gridDim.y * blockIdx.z);
    if ((threadIdx.x & 31) == 0 && cta < 1024 && v < 512) {
        int* at = &pd_visit_log[((cta * 8 + (threadIdx.x >> 5)) * 512 + v) * 2];
        at[0] = tok;
        at[1] = blk;
    }
}
#define PD_VISIT(v, tok, blk) pd_visit(v, tok, blk)
#else
#define PD_VISIT(v, tok, blk) ((void)0)
#endif
// O of (sequence b, query head h) = sum_s exp(lse_s - lse) O_s over the
// splits' partials, by one warp. In the fused merge this is the tail of the
// launch, so its L2 round trips are what it costs: one for the LSEs (lane l
// keeps those of splits l, l + 32, ... up to kPdMergeLse * 32 in registers;
// more are reloaded, and so are their weights), then one per 16 splits for
// the partial rows. Measured (H200, kernels-dev/paged/timeline.py), the
// last CTA's merge at 1 x 131072 (33 splits): 4.6-5.0 us with the LSEs
// loaded three times and 8 rows in flight, 3.7 us with them loaded once and
// 16 rows in flight (2.9 with 32, but those spill where 3 CTAs share an SM,
// or, as a runtime-unrolled loop, serialise a group of fewer than 32).
constexpr int kPdMergeLse = 4;   // 128 splits: fa_runtime::paged::MAX_SPLITS
// Lane l's LSEs of splits l + 32 k (k < kPdMergeLse; -inf for absent
// splits) of the row whose split 0 is at la (splits a plane apart).
FA_DEVICE void pd_load_lses(float (&ls)[kPdMergeLse], const float* la, int S, long long plane, int lane) {
#pragma unroll
    for (int k = 0; k < kPdMergeLse; ++k) ls[k] = lane + 32 * k < S ? pd_ldcg(la + (lane + 32 * k) * plane) : FA_NEG_INF;
}
// The splits' LSEs of one row combined by a warp: their max and the sum of
// the weights exp(lse_s - max), both warp-wide; splits past kPdMergeLse * 32
// are reloaded.
struct PdLseRow {
    float mx, sum;
    FA_DEVICE float weight(const float* la, int s, long long plane) const {   // exp(lse_s - max), reloaded
        return mx == FA_NEG_INF ? 0.0f : fast_exp2((pd_ldcg(la + s * plane) - mx) * kLog2e);
    }
    FA_DEVICE float inv() const { return mx == FA_NEG_INF ? 0.0f : 1.0f / sum; }
    FA_DEVICE float lse() const { return mx == FA_NEG_INF ? FA_NEG_INF : mx + fast_log2(sum) * kLn2; }
};
// ls: lane l's LSEs (pd_load_lses) in, its weights of the same splits out
// (0 for absent splits).
FA_DEVICE PdLseRow pd_lse_weights(float (&ls)[kPdMergeLse], const float* la, int S, long long plane, int lane) {
    PdLseRow row;
    row.mx = FA_NEG_INF;
#pragma unroll
    for (int k = 0; k < kPdMergeLse; ++k) row.mx = fmaxf(row.mx, ls[k]);
    for (int s = lane + 32 * kPdMergeLse; s < S; s += 32) row.mx = fmaxf(row.mx, pd_ldcg(la + s * plane));
    row.mx = pd_warp_max(row.mx);
    row.sum = 0.0f;
#pragma unroll
    for (int k = 0; k < kPdMergeLse; ++k) {
        ls[k] = row.mx == FA_NEG_INF ? 0.0f : fast_exp2((ls[k] - row.mx) * kLog2e);
        row.sum += ls[k];
    }
    if (row.mx != FA_NEG_INF)
        for (int s = lane + 32 * kPdMergeLse; s < S; s += 32) row.sum += row.weight(la, s, plane);
    row.sum = pd_warp_sum(row.sum);
    return row;
}
FA_DEVICE void pd_merge_head(const PagedDecodeParams& p, int b, int h, int lane) {
    const int wg = b * p.num_heads + h;
    const int S = p.num_splits;
    const long long plane = (long long)p.batch * p.num_heads;
    const float* la = p.lse_accum + wg;
    float w[kPdMergeLse];   // lane l's LSE, then weight, of split l + 32 r
    pd_load_lses(w, la, S, plane, lane);
    const PdLseRow row = pd_lse_weights(w, la, S, plane, lane);
    const float inv = row.inv();
    PD_STAMP(9);   // merge: LSEs combined (warp 0)
    // Every split wrote its partial (O = 0 and LSE = -inf where it saw no
    // key), so the partials are read unconditionally: the loads of 16
    // splits are in flight together. Lane j holds the weight of split s0 +
    // j; the loops are lane-uniform for the shuffles.
    for (int c0 = 0; c0 < kHeadDim / 4; c0 += 32) {
        const int c4 = c0 + lane;
        const bool on = c4 < kHeadDim / 4;
        PdF4 acc = {0.0f, 0.0f, 0.0f, 0.0f};
        for (int s0 = 0; s0 < S; s0 += 32) {
            const int n = min(32, S - s0);
            const int g32 = s0 >> 5;
            float wl = 0.0f;
#pragma unroll
            for (int r = 0; r < kPdMergeLse; ++r)
                if (g32 == r) wl = w[r];
            if (g32 >= kPdMergeLse && lane < n) wl = row.weight(la, s0 + lane, plane);
            wl *= inv;
            const float* oa = p.o_accum + (s0 * plane + wg) * kHeadDim + c4 * 4;   // split s0, these columns
            // (unrolled, the compiler hoists both batches' loads: 128 registers,
            // spills where 3 CTAs share an SM)
#pragma unroll 1
            for (int j0 = 0; j0 < n; j0 += 16) {
                PdF4 ov[16];
#pragma unroll
                for (int j = 0; j < 16; ++j)
                    if (on && j0 + j < n) ov[j] = pd_ldcg4(oa + (j0 + j) * plane * kHeadDim);
#pragma unroll
                for (int j = 0; j < 16; ++j) {
                    const float wt = __shfl_sync(0xffffffffu, wl, j0 + j);
                    if (on && j0 + j < n) {
                        acc.x += wt * ov[j].x; acc.y += wt * ov[j].y; acc.z += wt * ov[j].z; acc.w += wt * ov[j].w;
                    }
                }
            }
        }
        if (on) {
            u8* dst = (u8*)p.o + ((long long)b * p.o_batch_stride + (long long)h * p.o_head_stride + c4 * 4) * 2;
            pd_store4(dst, acc);
        }
    }
    if (lane == 0 && p.lse != nullptr) p.lse[wg] = row.lse();
}

// The fused merge of a group's rows (its R query heads) by the split that
// finishes last, staged in shared memory: every split's partial rows of the
// group are in flight together as 16-byte cp.asyncs (the ring is free by
// then, and pd_merge_head holds only 16 rows in registers), while one warp
// per row combines the LSEs into per-split weights; then each thread sums
// its columns over the splits. A batch of the splits that fits at a time:
// [weights R x S | running sums R x hd | the batch's partials]. False (the
// caller merges per head instead) where not even one split fits.
// Measured (H200, 1 x 131072, 33 splits, timeline.py): the last split's
// merge 2.8 us against 4.6 per head; event time 130.7-130.9 us against
// 131.6 (-DPD_MERGE_SMEM=0), same calls.
#ifndef PD_MERGE_SMEM   // measurement override: -DPD_MERGE_SMEM=0 merges with pd_merge_head
#define PD_MERGE_SMEM 1
#endif
FA_DEVICE bool pd_merge_group(const PagedDecodeParams& p, u8* smem, int ring_bytes, int b, int h0, int R, int tid) {
    constexpr int C4 = kHeadDim / 4;
    const int S = p.num_splits;
    const int wbytes = (R * S * 4 + 15) / 16 * 16;
    const int rbytes = R * kHeadDim * 4;   // one split's partial rows of the group
    const int fit = (ring_bytes - wbytes - rbytes) / rbytes;   // splits of a batch (rows that fit in the ring)
    if (!PD_MERGE_SMEM || fit < 1) return false;
    const int warp = tid >> 5, lane = tid & 31;
    float* wts = (float*)smem;
    PdF4* sums = (PdF4*)(smem + wbytes);
    const u32 rows = smem_addr(smem + wbytes + rbytes);
    const long long plane = (long long)p.batch * p.num_heads;
    const float* src0 = p.o_accum + ((long long)b * p.num_heads + h0) * kHeadDim;   // split 0's rows of the group
    const int items = R * C4;   // float4 columns of the group
    auto issue = [&](int s0) {
        const int n = min(fit, S - s0);
        for (int i = tid; i < items; i += kPdThreads) {
            const float* src = src0 + s0 * plane * kHeadDim + i * 4;
            for (int j = 0; j < n; ++j) cp_async_16(rows + (j * items + i) * 16, src + j * plane * kHeadDim, true);
        }
        cp_async_commit();
    };
    // Weights w_s = exp(lse_s - lse) of row r, as pd_merge_head computes
    // them. The LSEs of each warp's first row are loaded before the copies
    // are issued, which would otherwise queue ahead of them (timeline, 1 x
    // 131072: 1.6 us from the fence to the weights, against 2.6).
    const float* la0 = p.lse_accum + (long long)b * p.num_heads + h0;
    float ls[kPdMergeLse];
    if (warp < R) pd_load_lses(ls, la0 + warp, S, plane, lane);
    issue(0);
    PD_STAMP(12);   // merge: first row's LSE loads and first batch's copies issued
    for (int r = warp; r < R; r += kPdWarps) {
        const float* la = la0 + r;
        if (r != warp) pd_load_lses(ls, la, S, plane, lane);
        const PdLseRow row = pd_lse_weights(ls, la, S, plane, lane);
        const float inv = row.inv();
#pragma unroll
        for (int k = 0; k < kPdMergeLse; ++k)
            if (lane + 32 * k < S) wts[r * S + lane + 32 * k] = ls[k] * inv;
        for (int s = lane + 32 * kPdMergeLse; s < S; s += 32) wts[r * S + s] = row.weight(la, s, plane) * inv;
        if (lane == 0 && p.lse != nullptr) p.lse[(long long)b * p.num_heads + h0 + r] = row.lse();
    }
    PD_STAMP(9);   // merge: weights of warp 0's rows
    const PdF4* part = (const PdF4*)(smem + wbytes + rbytes);
    for (int s0 = 0; s0 < S; s0 += fit) {
        cp_async_wait<0>();
        __syncthreads();   // the batch's rows and (first batch) every weight
        const int n = min(fit, S - s0);
        for (int i = tid; i < items; i += kPdThreads) {   // thread-owned columns: no barrier on sums
            const float* w = wts + (i / C4) * S + s0;
            PdF4 acc = s0 == 0 ? PdF4{0.0f, 0.0f, 0.0f, 0.0f} : sums[i];
            for (int j = 0; j < n; ++j) {
                const PdF4 v = part[j * items + i];
                acc.x += w[j] * v.x; acc.y += w[j] * v.y; acc.z += w[j] * v.z; acc.w += w[j] * v.w;
            }
            if (s0 + fit < S) {
                sums[i] = acc;
            } else {
                const int h = h0 + i / C4;
                pd_store4((u8*)p.o + ((long long)b * p.o_batch_stride + (long long)h * p.o_head_stride + (i % C4) * 4) * 2, acc);
            }
        }
        if (s0 + fit < S) {
            __syncthreads();   // the batch read before its rows are overwritten
            issue(s0 + fit);
        }
    }
    return true;
}

// CTA = (split, group of hc = heads_per_cta kv heads, sequence). A pipeline
// tile is kPdBlockN = 64 smem rows = (64 / hc) tokens x hc heads (pd_row:
// token-major, so that for hc > 1 a token's head rows are side by side as
// in the page; with the run swizzle, in one slot).
// Warp w serves kv head kvh0 + (w % hc) and the 16-token slice w / hc of the tile.
template <int hcs, bool kUnsplit>   // log2(p.heads_per_cta); compiled for one split (_decode_unsplit)
FA_DEVICE void paged_decode_block(const PagedDecodeParams& p, u8* smem) {
    PD_STAMP(0);   // entry
#ifdef PD_TIMELINE
    { u32 smid; asm volatile("mov.u32 %0, %%smid;" : "=r"(smid)); pd_stamp(6, smid); }
#endif
    // Grid (groups, splits, batch): consecutive CTAs serve different kv
    // groups. The block scheduler hands consecutive CTAs to SMs in a fixed
    // order, and SMs stream at different paces (H100, 1 x 131072: 451 to 646
    // 16-token slices per SM). With the splits in x, one group's splits took
    // a run of that order and the group streamed at its SMs' pace: the
    // groups' slice counters ran dry from 167 to 183 us, and the launch waits
    // for the last group. With the groups in x every group spans the whole
    // order: 171 to 174 us.
    const int grp = blockIdx.x, split = blockIdx.y, b = blockIdx.z;
    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
    const int g = lane >> 2, t = lane & 3;
    // _decode_unsplit, and _decode_pair without PD_PAIR_SPLITS, are never
    // split: a constant 1, so that their split and merge code is not
    // compiled at all. (A function,
    // not a local copy: _decode reads the parameter where it uses it, as
    // before, and keeps its code.)
    constexpr bool kOneSplit = (hcs == 1 && !PD_PAIR_SPLITS) || kUnsplit;
    auto num_splits = [&]() { return kOneSplit ? 1 : p.num_splits; };
    constexpr bool kSorted = kPdSortedPages && kOneSplit;   // (page order, kPdSortedPages)
    constexpr int hc = 1 << hcs;
    constexpr int kStages = PdRing<hcs, kUnsplit>::stages;   // ring depth
    constexpr PdSmemLayout kRing = PdRing<hcs, kUnsplit>::smem;
    const int kvh0 = grp * hc;
    const int tshift = kPdTileShift - hcs;      // log2(tokens per tile)
    const int hw = warp & (hc - 1);             // this warp's head within the group
    const int kb = warp >> hcs;                 // this warp's 16-token slice
    const int my_kvh = kvh0 + hw;
    const int run_sh = kPdRunSwizzle<hcs> ? pd_run_shift<hcs>(kvh0) : 0;   // (chunks; pd_chunk)
    // Page order (kSorted; the windows, deal_window below): one list of
    // visits a slice position kb, a window of kWin visits a list, sorted as
    // kHalves sublists of 64 (a pair's two warps sort one half each).
    constexpr int kLists = PD_CTA_PAGES ? kPdWarps >> hcs : 1;
    // (halves need the merge: not with one list, -DPD_WARPS=2 pairs)
    constexpr int kHalves = PD_CTA_PAGES && PD_WIDE_WINDOWS && kLists > 1 ? 1 << hcs : 1;
    constexpr int kWin = 64 * kHalves;         // visits of a list a window
    constexpr int kWinRegs = kWin / 32;        // dealt visits a lane holds
    constexpr int kSubs = kLists * kHalves;    // sorted sublists of 64 a window
    const bool sorter = kLists == 1 || hw < kHalves;   // (a pair's second warp without kHalves: reads its partner's)
    const int sub = kb * kHalves + (kHalves > 1 ? hw : 0);   // (sorter) this warp's sublist
    const int sub_base = kHalves > 1 ? 64 * hw : 0;          // its first visit in the window

    // Dynamic slices (split launches with the fused merge, one kv head per
    // CTA): the SMs of a launch stream at different paces (H200, 1 x 131072
    // with fixed ranges: full-length CTAs ended their loops from 100 to 122
    // us, by SM), and with fixed ranges the launch waits for the slowest. So
    // each warp takes a fixed share of the first kPdDynFixed eighths of its
    // head's 16-token slices (warp rank r of W: slices r, r + W, ...), then
    // claims the rest from a counter shared by the head's splits, in claims
    // that shrink from 8 slices to 1 as they run out; each claim is issued
    // one claim ahead, so its atomic is not waited for while slices are
    // left. Online softmax does not care which slices a warp sees, and the
    // merge combines whatever each split saw. The loop is a second copy of
    // the fixed-range one (which keeps its code), with the tokens of the
    // slices in flight in registers.
    // Measured (H200, same calls, SDPA cuDNN 130.9-131.2 us): 1 x 131072
    // 128.3-128.4 us against 132.6-132.8 with fixed ranges; 2 x 65536
    // 129.2-129.7 against 132.4-132.5 (cuDNN 130.3-130.7); 8 x 4096 level
    // (40.2-40.4 against 39.8-40.7); fixed eighths 2 / 0 (all claimed):
    // 128.4-129.0 / 130.3-130.4 us at 1 x 131072. Loop ends (timeline):
    // 111.7-120.7 us, where fixed ranges gave 57.5 (the short last split) to
    // 126.0.
    const bool dyn = !kPdTma && kPdWarpPipe && kPdDynamic && hcs == 0 && num_splits() > 1 && p.merge_counters != nullptr;
    const int W = num_splits() * kPdWarps;       // warps sharing the head's counter
    const int first_slice = split * kPdWarps + warp;   // this warp's rank of W: its fixed share is first_slice + i W
    const int* bt = p.block_table + (long long)b * p.block_table_stride;
    // This sequence's block-table entry for page pg (-1 past the table), and
    // an entry as a block: -1 outside [0, num_blocks) (read nothing), the
    // rule of page_block and of the sorted visits' keys (win_keys).
    auto table_entry = [&](int pg) { return pg < p.block_table_stride ? __ldg(bt + pg) : -1; };
    auto as_block = [&](int raw) { return raw >= 0 && raw < p.num_blocks ? raw : -1; };

    // Before the context length arrives (after an L2 flush, a DRAM round
    // trip of its own), the block-table entries of this warp's first slices
    // are fetched into L2: which slices come first does not depend on it (an
    // unsplit launch starts at tile 0, and with dynamic slices the fixed
    // share is strided), so the first page lookup waits for an L2 hit
    // instead of a second DRAM trip. Cells without a window or sink only.
    // (With sorted visits, kSorted, the first window's entries are loaded
    // outright instead, win0 below.)
    // (Without a window or sink, an unsplit launch's visit v starts at this token.)
    auto first_tok = [&](int v) { return (v << tshift) + kb * 16; };
    if (kWindow == 0 && kSink == 0 && !kSorted && lane == 0 && (dyn || num_splits() == 1)) {
#pragma unroll
        for (int s = 0; s < kStages - 1; ++s) {
            const int tok = dyn ? (first_slice + s * W) * 16 : first_tok(s);
            const int pg = tok / kPageSize;
            if (pg < p.block_table_stride) asm volatile("prefetch.global.L2 [%0];" :: "l"(bt + pg));
        }
    }
    int win0[2] = {-1, -1};   // (kSorted) the block-table entries of the first window's sublist
    if constexpr (kSorted && kWindow == 0 && kSink == 0) {
#pragma unroll
        for (int r = 0; r < 2; ++r) {
            win0[r] = table_entry(first_tok(sub_base + r * 32 + lane) / kPageSize);
        }
    }
    const int ctx = max(p.context_lens[b], 0);
    const int pos = ctx - 1;
    const PdRange rg = pd_range(ctx, tshift);
    const int total = rg.count();
    const int per = (total + num_splits() - 1) / num_splits();
    const int v0 = min(split * per, total);
    const int n_tiles = min(v0 + per, total) - v0;

    const PdRange rgu = pd_range(ctx, 4);        // 16-token slices
    const int U = rgu.count();
    const int k0 = dyn ? kPdDynFixed * U / (8 * W) : 0;   // fixed share per warp
    const int ubase = W * k0;                    // the first claimed slice
    int* claims = dyn ? p.merge_counters + ((long long)p.batch + b) * gridDim.x + grp : nullptr;
    // Slices in hand: from c_next below c_end, W apart in the fixed share
    // (below ubase), consecutive in a claim.
    int c_next = first_slice, c_end = ubase;
    // Slices per claim: 8 while there are plenty, shrinking to 1 as the
    // unclaimed ones (those past `from`) run out.
#ifdef PD_TIMELINE
    unsigned long long pd_dry = 0;
#endif
    auto claim_len = [&](int from) { return max(1, min(8, (U - from) / (2 * W))); };
    int pend_k = claim_len(ubase);                                      // the claim in flight
    int pend_raw = dyn && lane == 0 ? atomicAdd(claims, pend_k) : 0;
    // This warp's next slice (its first token), -1 when none is left.
    auto next_tok = [&]() {
        if (c_next >= c_end) {   // the slices in hand are used up: the claim in flight takes over
            const int start = ubase + __shfl_sync(0xffffffffu, pend_raw, 0);
            c_next = start;
            c_end = min(start + pend_k, U);
#ifdef PD_TIMELINE
            if (start >= U && warp == 0 && pd_dry == 0) pd_dry = pd_now();
#endif
            if (start < U) {
                pend_k = claim_len(c_end);
                if (lane == 0) pend_raw = atomicAdd(claims, pend_k);
            }
        }
        if (c_next >= c_end) return -1;
        const int tok = rgu.tile(c_next) << 4;
        c_next += c_next < ubase ? W : 1;
        return tok;
    };
    // Fixed ranges: this warp's first token in pipeline step v, tiles of
    // 2^shift tokens (the loader passes shift as a constant, so that it
    // knows the token's alignment).
    auto slice_tok = [&](int shift, int v) { return (rg.tile(v0 + v) << shift) + kb * 16; };

    u8* flags = smem + kRing.flag_offset;
    const u32 pipe_base = smem_addr(smem);

    // The block of this sequence's page pg where `live`, else -1; pages past
    // the table and entries outside [0, num_blocks) are -1 too (read nothing).
    // `known`: page_block's own result for this page, already looked up.
    auto page_block = [&](int pg, bool live, int known = kPdNotLooked) {
        if (known != kPdNotLooked) return live ? known : -1;
        return as_block(live ? table_entry(pg) : -1);
    };
    const u8* kc = (const u8*)p.k_cache;
    const u8* vc = (const u8*)p.v_cache;

    // cp.async loader. Warp w fetches exactly the 16 rows it reads (its head
    // hw, its 16-token slice kb of the tile), so with PD_WARP_PIPE the ring
    // needs no CTA barrier (kPdPairJoint: the slice's two warps, a barrier
    // of 64 threads). Pages under 16 tokens: lane l looks up the page
    // of token l % 16 of the slice (one block-table load per lane, all in
    // flight together), and each row takes its block from a shuffle: no
    // per-copy load, no per-thread array of lookups (those spilled or issued
    // slowly, see above).
    // Byte offset in a K or V stage of chunk c of head hh's row of token ri of
    // this warp's slice (pd_row, pd_chunk).
    auto ring_off = [&](int ri, int hh, int c) {
        return pd_row<hcs>(kb * 16 + ri, hh) * kPdRowStride<hcs> + pd_chunk<hcs>(c, ri, hh, run_sh) * 16;
    };
    // tokw: this warp's first token (a multiple of 16); blk_known: its page's
    // page_block where already looked up (kPdOnePage).
    auto load_tile_hc = [&](int tokw, int stage, int blk_known = kPdNotLooked) {
        const int j = tokw + (lane & 15);
        const u32 ks = pipe_base + stage * (2 * kPdKVBytes<hcs>);
        const u32 vs = ks + kPdKVBytes<hcs>;
        // The lane index is re-read per tile (volatile) so that the compiler
        // does not hoist the per-lane row / chunk / address terms out of the
        // main loop: that held 30 (hd128) to 70 (hd192) more registers.
        u32 ln;
        asm volatile("mov.u32 %0, %%laneid;" : "=r"(ln));
        // Else kPdRowLanes = L lanes per row: lane ln copies chunks c0 + L h of
        // rows r0 + kRows k of the slice. A copy instruction reads 32 / L
        // rows (whole 128-byte segments where L >= 8), and each of a lane's
        // rows costs one address, not one per copy. Small pages used to take
        // a shuffle and a 64-bit address per copy (~45 instructions each;
        // the dynamic-slice loop of the bf16 hd128 page-1 cell was 867
        // instructions, now 482, against 460 for page 16). Measured (H200,
        // variant_exp.py, same calls, page 1 against the per-copy loader):
        // 1 x 131072 140.2-140.6 us against 144.7-144.8, 8 x 4096 48.0
        // against 49.8-50.0, 64 x 4096 256.4-256.5 against 258.6-258.8;
        // page 16 138.1-138.8 / 48.0-48.2 / 256.8-257.0 (cuDNN 138.4-138.9 /
        // 49.3-49.5 / 254.4-254.9). What is left at 1 x 131072 is the
        // scattered pages: with every page in order, page 1 took 137.1 us
        // against 136.4 for page 16 (the per-copy loader 151.7).
        constexpr int L = kPdRowLanes, kRows = 32 / L;
        const int r0 = (int)ln / L, c0 = (int)ln % L;
        // One page: the warp's one block-table entry. Smaller pages: lane l's
        // of row l % 16, passed to the lanes copying that row by shuffle.
        // blk is -1 where this warp's head is past the last kv head; the
        // joint copy reads both heads' rows, so its page_blk is looked up
        // whatever this warp's head.
        const bool head_ok = my_kvh < p.num_kv_heads;
        const int page_blk = kPdOnePage
            ? page_block(tokw / kPageSize, tokw < ctx && (kPdPairJoint<hcs> || head_ok), blk_known)
            : page_block(j / kPageSize, j < ctx && head_ok && pd_visible(j, pos));
        const int blk = kPdPairJoint<hcs> && !head_ok ? -1 : page_blk;
        if constexpr (kPdPairJoint<hcs>) {
            // Lane ln < 2 C copies chunk ln % C of head ln / C's row of token
            // hw * 8 + i of the slice. (The flags below are this warp's head's
            // rows, as on the other paths: the warp that writes them reads them.)
            constexpr int C = kPdChunks;
            const int hh = (int)ln / C, c = (int)ln % C;
            const int kvh = kvh0 + hh;
            const u8* k0 = kc + (page_blk >= 0 ? pd_k_row(p, page_blk, tokw % kPageSize, kvh) : 0);
            const u8* v0 = vc + (page_blk >= 0 ? pd_v_row(p, page_blk, tokw % kPageSize, kvh) : 0);
#pragma unroll
            for (int i = 0; i < 8; ++i) {
                const int ri = hw * 8 + i;                  // token of the slice
                if (hh < 2) {
                    const int jr = tokw + ri;
                    const bool ok = page_blk >= 0 && kvh < p.num_kv_heads && jr < ctx && pd_visible(jr, pos);
                    const u32 dst = ring_off(ri, hh, c);
                    cp_async_16(ks + dst, k0 + pd_k_row(p, 0, ri, 0) + c * 16, ok);
                    cp_async_16(vs + dst, v0 + pd_v_row(p, 0, ri, 0) + c * 16, ok);
                }
            }
        } else if constexpr (kPdWholeRows) {
            // Lane ln copies chunk ln % C of row ln / C of each group of R
            // rows (lanes R C and up idle).
            constexpr int C = kPdChunks, R = 32 / C;
            const int rl = (int)ln / C, c = (int)ln % C;
            const u8* k0 = kc + (blk >= 0 ? pd_k_row(p, blk, tokw % kPageSize, my_kvh) : 0);
            const u8* v0 = vc + (blk >= 0 ? pd_v_row(p, blk, tokw % kPageSize, my_kvh) : 0);
#pragma unroll
            for (int i = 0; i < (16 + R - 1) / R; ++i) {
                const int ri = i * R + rl;                  // row of the slice
                if (rl < R && ri < 16) {
                    const int jr = tokw + ri;
                    const bool ok = blk >= 0 && jr < ctx && pd_visible(jr, pos);
                    const u32 dst = ring_off(ri, hw, c);
                    cp_async_16(ks + dst, k0 + pd_k_row(p, 0, ri, 0) + c * 16, ok);
                    cp_async_16(vs + dst, v0 + pd_v_row(p, 0, ri, 0) + c * 16, ok);
                }
            }
        } else {
            // One page: krow / vrow step through this lane's rows. Smaller pages:
            // the head's and chunk's part of every row's address. (Block 0 where
            // a row is not ok: an address in the cache, read by no copy.)
            const u8* krow = kc + c0 * 16;
            const u8* vrow = vc + c0 * 16;
            if constexpr (kPdOnePage) {
                krow += blk >= 0 ? pd_k_row(p, blk, tokw % kPageSize + r0, my_kvh) : 0;
                vrow += blk >= 0 ? pd_v_row(p, blk, tokw % kPageSize + r0, my_kvh) : 0;
            } else {
                krow += pd_k_row(p, 0, 0, my_kvh);
                vrow += pd_v_row(p, 0, 0, my_kvh);
            }
            // (key & 7 == r0 & 7; tail swizzle: each chunk's position below)
            const u32 d0 = pd_row<hcs>(kb * 16 + r0, hw) * kPdRowStride<hcs> + (kPdTailSwizzle ? 0 : pd_chunk<hcs>(c0, r0) * 16);
#pragma unroll
            for (int k = 0; k < 16 / kRows; ++k) {
                const int ri = r0 + kRows * k;                  // row of the slice
                const int jr = tokw + ri;
                const int b0 = kPdOnePage ? blk : __shfl_sync(0xffffffffu, blk, ri);
                const bool ok = b0 >= 0 && (!kPdOnePage || (jr < ctx && pd_visible(jr, pos)));
                const u8* ksrc = kPdOnePage ? krow : krow + pd_k_row(p, max(b0, 0), jr % kPageSize, 0);
                const u8* vsrc = kPdOnePage ? vrow : vrow + pd_v_row(p, max(b0, 0), jr % kPageSize, 0);
                if constexpr (kPdOnePage) {
                    krow += pd_k_row(p, 0, kRows, 0);
                    vrow += pd_v_row(p, 0, kRows, 0);
                }
                // Row ri's chunk c0 + L h: ri & 7 == (r0 & 7) ^ ((kRows k) & 7) as
                // r0 < kRows; swizzled rows are multiples of 128 bytes with L >= 8
                // (the XOR touches the low 3 bits of c0 alone), so the swizzle is
                // a constant XOR of d0, and chunk h is L * h * 16 bytes on. Tail
                // swizzle: L <= 4, so kRows >= 8 and ri & 7 == r0 & 7.
                const u32 dst = (kPdSwizzle ? d0 ^ (((kRows * k) & 7) << 4) : d0) + k * (pd_row<hcs>(kRows, 0) * kPdRowStride<hcs>);
#pragma unroll
                for (int h = 0; h < kPdChunks / L; ++h) {
                    const u32 ch = kPdTailSwizzle ? pd_chunk<hcs>(c0 + L * h, r0, hw, run_sh) * 16 : L * h * 16;
                    cp_async_16(ks + dst + ch, ksrc + L * h * 16, ok);
                    cp_async_16(vs + dst + ch, vsrc + L * h * 16, ok);
                }
            }
        }
        if (lane < 16) {   // row lane's flag (small pages: blk is that row's, with its visibility)
            const bool live = blk >= 0 && (!kPdOnePage || (j < ctx && pd_visible(j, pos)));
            flags[stage * kPdBlockN + ((kb * 16 + lane) << hcs) + hw] = live ? 1 : 0;
        }
    };
    // TMA loader: thread tid fetches smem row tid % 64 of K (tid < 64) or V with
    // one bulk copy; masked rows are zero-filled by plain stores (no bytes expected).
    const u32 bar_base = pipe_base + kRing.bar_offset;
    auto load_tile_tma = [&](int v, int stage) {
        const int tok0 = rg.tile(v0 + v) << (kPdTileShift - hcs);
        const int r = tid & (kPdBlockN - 1);
        const bool isv = tid >= kPdBlockN;
        const int j = tok0 + (r >> hcs);
        const int kvh = kvh0 + (r & (hc - 1));
        bool ok = j < ctx && kvh < p.num_kv_heads && pd_visible(j, pos);
        const u8* src = isv ? vc : kc;
        if (ok) {
            const int pg = j / kPageSize;
            const int blk = page_block(pg, true);
            ok = blk >= 0;
            const int slot = j % kPageSize;
            src += isv ? pd_v_row(p, blk, slot, kvh) : pd_k_row(p, blk, slot, kvh);
        }
        const u32 dst = pipe_base + stage * (2 * kPdKVBytes<hcs>) + (isv ? kPdKVBytes<hcs> : 0) + r * kPdRowStride<hcs>;
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
        if constexpr (kPdTma) load_tile_tma(v, stage);
        else load_tile_hc(slice_tok(tshift, v), stage);
    };
    if constexpr (kPdTma) {
        if (tid < kStages) pd_mbar_init(bar_base + tid * 8, kPdThreads);
        __syncthreads();
    }
    // Page order (kSorted): a window is a list's visits w .. w + kWin - 1 (w
    // = lv rounded down to kWin), keyed by page_block and sorted in
    // sublists of 64 (this warp's: visits w + sub_base ..), then merged
    // across the CTA and dealt (deal_window): visit lv is position lv - w of
    // what this warp's list was dealt. The first window's first kPdAhead visits keep
    // token order, so that they are issued before the sort, which runs while
    // they are in flight (and the Q loads, except fp8's, converted before
    // it); later windows are built and sorted at their first visit, their
    // entries prefetched into L2 a window ahead.
    int win_key[2] = {0, 0}, win_val[2] = {0, 0};   // this warp's sublist: key, visit in the window (sorted: sorter)
    int vis_tok[kWinRegs], vis_blk[kWinRegs];       // the visits dealt: first token, block
    int lv = 0;   // visits issued
    auto win_raw = [&](int base, int r) {   // the block-table entry of visit base + sub_base + 32 r + lane
        return table_entry(slice_tok(tshift, base + sub_base + r * 32 + lane) / kPageSize);
    };
    // page_block of visits base + sub_base + 32 r + lane (past the range: last)
    auto win_keys = [&](int base, const int (&raw)[2]) {
#pragma unroll
        for (int r = 0; r < 2; ++r) {
            const int v = base + sub_base + r * 32 + lane;
            win_val[r] = sub_base + r * 32 + lane;
            // (as_block's rule, spelled out: through as_block the compiler
            // scheduled the entries' prologue 16 instructions longer)
            const bool live = slice_tok(tshift, v) < ctx && raw[r] >= 0 && raw[r] < p.num_blocks;
            win_key[r] = v >= n_tiles ? 0x7fffffff : live ? raw[r] : -1;
            const int pn = slice_tok(tshift, v + kWin) / kPageSize;
            if (v + kWin < n_tiles && pn < p.block_table_stride) asm volatile("prefetch.global.L2 [%0];" :: "l"(bt + pn));
        }
    };
    // The window's visits across the CTA: every sublist of 64 (sorted by
    // pd_warp_sort64) is merged by rank into one order of kSubs x 64
    // visits, and slice kb takes positions kb, kb + kLists, ... (kWin of
    // them): the CTA's warps read neighbouring pages at each step, as they
    // would in token order over a sorted table. (A visit is any
    // slice's: the loader and attend take its token; the rows are the
    // warp's own.) Each list has the same number of visits in range (n_tiles
    // is the CTA's), so those are dealt evenly; the prologue's visits carry
    // keys below every other (0x80000000 + j kLists + kb, in sublist (kb,
    // 0)), so slice kb is dealt its own first kPdAhead. The merge uses the first bytes of ring
    // stage `stage` (the next one to be issued into, free in every warp
    // after the first barrier); the last barrier keeps it until all have
    // read their visits into vis_tok / vis_blk.
    static_assert((kSubs & (kSubs - 1)) == 0, "kSubs: a power of two");
    static_assert(kWinRegs == 2 || kWinRegs == 4, "issue_sorted picks from 2 or 4 registers");
    static_assert(!kSorted || 3 * 4 * 64 * kSubs <= 2 * kPdKVBytes<hcs>, "window merge exceeds a ring stage");
    auto deal_window = [&](int base, int stage) {
        if constexpr (kLists == 1) {
#pragma unroll
            for (int r = 0; r < 2; ++r) {
                vis_tok[r] = slice_tok(tshift, base + win_val[r]);
                vis_blk[r] = win_key[r];
            }
        } else {
            // Rank r goes to list r % kLists at position r / kLists, so that
            // each list reads its visits from consecutive words.
            int* keys = (int*)(smem + stage * (2 * kPdKVBytes<hcs>));   // sublist s at s * 64, sorted
            int* out_tok = keys + kSubs * 64;                           // dealt: list kb at kb * kWin
            int* out_blk = out_tok + kSubs * 64;
            __syncthreads();   // every warp is done with `stage`
            if (sorter) {
#pragma unroll
                for (int r = 0; r < 2; ++r) keys[sub * 64 + r * 32 + lane] = win_key[r];
            }
            __syncthreads();
            if (sorter) {
#pragma unroll
                for (int r = 0; r < 2; ++r) {
                    const int k = win_key[r];
                    int rank = r * 32 + lane;
#pragma unroll
                    for (int q = 1; q < kSubs; ++q) {
                        // Sublist o's entries before this one in (key, sublist, position) order.
                        const int o = (sub + q) & (kSubs - 1);
                        const int* lo = keys + o * 64;
                        auto before = [&](int x) { return o < sub ? x <= k : x < k; };
                        int n = 0;
#pragma unroll
                        for (int step = 32; step > 0; step >>= 1) n += before(lo[n + step - 1]) ? step : 0;
                        n += before(lo[n]) ? 1 : 0;   // (n is 63 here, or lo[n] is not before)
                        rank += n;
                    }
                    const int at = (rank & (kLists - 1)) * kWin + rank / kLists;
                    out_tok[at] = slice_tok(tshift, base + win_val[r]);
                    out_blk[at] = k;
                }
            }
            __syncthreads();
#pragma unroll
            for (int r = 0; r < kWinRegs; ++r) {
                vis_tok[r] = out_tok[kb * kWin + r * 32 + lane];
                vis_blk[r] = out_blk[kb * kWin + r * 32 + lane];
            }
            __syncthreads();   // `stage` is the next copy's again
        }
    };
    // Issues this warp's next visit into `stage`; its first token, -1 past the range.
    auto issue_sorted = [&](int stage) {
        if (lv >= n_tiles) return -1;
        const int at = lv & (kWin - 1);   // position in the window (start_window)
        // (selects on the position's bits: a loop of compares became an
        // indexed load from local memory)
        auto pick = [&](const int (&x)[kWinRegs]) {
            if constexpr (kWinRegs == 2) return (at & 32) ? x[1] : x[0];
            else return (at & 64) ? ((at & 32) ? x[3] : x[2]) : ((at & 32) ? x[1] : x[0]);
        };
        const int tok = __shfl_sync(0xffffffffu, pick(vis_tok), at & 31);
        const int blk = __shfl_sync(0xffffffffu, pick(vis_blk), at & 31);
        load_tile_hc(tok, stage, blk);
        PD_VISIT(lv, tok, blk);
        ++lv;
        return tok;
    };
    if constexpr (kSorted) {   // the first window's keys (unsorted until its first visits are issued)
        if constexpr (kWindow > 0 || kSink > 0) {
#pragma unroll
            for (int r = 0; r < 2; ++r) win0[r] = win_raw(0, r);
        }
        win_keys(0, win0);
    }

    // ---- prologue: start the KV ring, then Q fragments straight from global
    // TMA: all kStages stages are filled up front, and tile it + kStages is
    // issued right after tile it has been consumed (before waiting for it + 1),
    // so up to kStages tiles are in flight per CTA. cp.async: kStages - 1.
    constexpr int kPdAhead = kPdTma ? kStages : kStages - 1;
    int tq[kPdAhead];   // dyn: the first tokens of the slices in flight (-1: none)
#pragma unroll
    for (int s = 0; s < kPdAhead; ++s) {
        if (dyn) {
            tq[s] = next_tok();
            if (tq[s] >= 0) load_tile_hc(tq[s], s);
        } else if constexpr (kSorted) {
            tq[s] = -1;
            if (s < n_tiles) {   // (token order: the window's first visits, below)
                tq[s] = slice_tok(tshift, s);
                // (a pair's second warp sorts visits 64 on: looks its page up)
                const int k0 = __shfl_sync(0xffffffffu, win_key[0], s);
                const int blk = sub_base == 0 ? k0 : page_block(tq[s] / kPageSize, tq[s] < ctx);
                load_tile_hc(tq[s], s, blk);
                PD_VISIT(lv, tq[s], blk);
                ++lv;
            }
        } else if (s < n_tiles) {
            load_tile(s, s);
        }
        if constexpr (!kPdTma) cp_async_commit();
    }
    static_assert(!kSorted || kPdAhead <= 32, "sorted visits: the prologue's visits are lanes of window 0");
    // At the top of main-loop step it, before waiting for tile it (which is
    // in flight meanwhile): where a window starts, builds, sorts and deals
    // it, the merge's scratch in stage it - 1, which every warp has
    // consumed. The first (step 0) has its keys from before the prologue,
    // whose visits are its first; the others are built at their first
    // visit; where the prologue issued every visit there is nothing to
    // sort. One call site, so that the sort and the merge are compiled
    // once. Each sorter sorts its sublist (a pair's two warps one half each
    // of their list's window; with -DPD_WIDE_WINDOWS=0 the second reads what
    // its partner dealt).
    auto start_window = [&](int it) {
        const bool first = it == 0;
        if (first ? n_tiles <= kPdAhead : (lv & (kWin - 1)) != 0 || lv >= n_tiles) return;
        if (sorter) {
            if (first) {
                if (sub_base == 0 && lane < kPdAhead) win_key[0] = (int)0x80000000 + lane * kLists + kb;
            } else {
                const int raw[2] = {win_raw(lv, 0), win_raw(lv, 1)};
                win_keys(lv, raw);
            }
            pd_warp_sort64(win_key, win_val, lane);
        }
        deal_window(first ? 0 : lv, (it + kStages - 1) % kStages);
    };
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
                    ? (const u32*)((const u8*)p.q + ((long long)b * p.q_batch_stride + (long long)(my_kvh * kGqa + row) * p.q_head_stride) * kPdElemBytes)
                    : nullptr;
            }
#pragma unroll
        for (int mt = 0; mt < kPdMT; ++mt)
#pragma unroll
            for (int kk = 0; kk < kHeadDim / 16; ++kk) {
                if constexpr (kIsFp8) {
                    // Bytes 4t .. 4t + 3 of the 16 d of step kk (see the fp8 note above).
#pragma unroll
                    for (int r = 0; r < 2; ++r) {
                        const u32 x = qrow[mt][r] ? qrow[mt][r][kk * 4 + t] : 0u;
                        qf[mt][kk][r] = pd_f16x2_of_f8x2<kIsE5M2>(x);
                        qf[mt][kk][2 + r] = pd_f16x2_of_f8x2<kIsE5M2>(x >> 16);
                    }
                } else {
#pragma unroll
                    for (int e = 0; e < 4; ++e) {
                        const u32* src = qrow[mt][e & 1];
                        qf[mt][kk][e] = src ? src[kk * 8 + (e >> 1) * 4 + t] : 0u;
                    }
                }
            }
    }
    // fp8: the descales of this warp's (sequence, kv head).
    float qk_ds = 1.0f, v_ds = 1.0f;
    if constexpr (kIsFp8) {
        if (my_kvh < p.num_kv_heads) {
            const long long di = (long long)b * p.num_kv_heads + my_kvh;
            if (p.q_descale != nullptr) qk_ds = p.q_descale[di];
            if (p.k_descale != nullptr) qk_ds *= p.k_descale[di];
            if (p.v_descale != nullptr) v_ds = p.v_descale[di];
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
    const float C = kPdLogitsScaled ? kLog2e : (kIsFp8 ? p.scale_log2 * qk_ds : p.scale_log2);
    const float sm_scale = kIsFp8 ? p.softmax_scale * qk_ds : p.softmax_scale;   // (kPdLogitsScaled)
    // Ring rows (pd_row) of the keys this lane addresses for ldmatrix (K) and
    // ldmatrix.trans (V), and those keys (tile-relative, for the swizzle).
    const int ktok = kb * 16 + (lane >> 4) * 8 + (lane & 7);
    const int vtok = kb * 16 + ((lane >> 3) & 1) * 8 + (lane & 7);
    const int krow_ld = pd_row<hcs>(ktok, hw);
    const int vrow_ld = pd_row<hcs>(vtok, hw);

    // This warp's 16-token slice in ring stage `stage`, first key key0.
    auto attend = [&](int stage, int key0) {
#ifndef PD_LOAD_ONLY   // measurement aid (-DPD_LOAD_ONLY): the K/V pipeline without the math; wrong results
        const u32 ks = pipe_base + stage * (2 * kPdKVBytes<hcs>);
        const u32 vs = ks + kPdKVBytes<hcs>;
        const u8* fl = flags + stage * kPdBlockN;

        // S accumulates in kPdSChains independent chains per n-tile (s: even
        // k-steps, s_odd: odd ones), summed at the end: S heads each tile's
        // dependent path (S, softmax, P V); 0-1.5% faster, see the header.
        float s[kPdMT][2][4], s_odd[kPdMT][2][4];
#pragma unroll
        for (int mt = 0; mt < kPdMT; ++mt)
#pragma unroll
            for (int nt = 0; nt < 2; ++nt)
#pragma unroll
                for (int e = 0; e < 4; ++e) s[mt][nt][e] = s_odd[mt][nt][e] = 0.0f;
#pragma unroll
        for (int kk = 0; kk < kPdKBlocks; ++kk) {
            u32 kbf[4];
            ldmatrix_x4(kbf, pd_ld_addr<hcs>(ks + krow_ld * kPdRowStride<hcs>, ((lane >> 3) & 1) * 16, kPdTailSwizzle ? ktok : krow_ld >> hcs, kk * 32, hw, run_sh));
            if constexpr (kIsFp8) {
                // kbf[n]: keys 8 (n >> 1) .. + 7, 16 d of k16 step 2 kk + (n & 1).
                u32 kh[4][2];
#pragma unroll
                for (int n = 0; n < 4; ++n) {
                    kh[n][0] = pd_f16x2_of_f8x2<kIsE5M2>(kbf[n]);
                    kh[n][1] = pd_f16x2_of_f8x2<kIsE5M2>(kbf[n] >> 16);
                }
#pragma unroll
                for (int mt = 0; mt < kPdMT; ++mt)
#pragma unroll
                    for (int h = 0; h < 2; ++h) {
                        float (&s0)[4] = kPdSChains == 2 && h ? s_odd[mt][0] : s[mt][0];
                        float (&s1)[4] = kPdSChains == 2 && h ? s_odd[mt][1] : s[mt][1];
                        mma_16816<false>(s0, qf[mt][2 * kk + h], kh[h][0], kh[h][1]);
                        mma_16816<false>(s1, qf[mt][2 * kk + h], kh[2 + h][0], kh[2 + h][1]);
                    }
            } else {
#pragma unroll
                for (int mt = 0; mt < kPdMT; ++mt) {
                    float (&s0)[4] = kPdSChains == 2 && (kk & 1) ? s_odd[mt][0] : s[mt][0];
                    float (&s1)[4] = kPdSChains == 2 && (kk & 1) ? s_odd[mt][1] : s[mt][1];
                    mma_16816<kIsBF16>(s0, qf[mt][kk], kbf[0], kbf[1]);
                    mma_16816<kIsBF16>(s1, qf[mt][kk], kbf[2], kbf[3]);
                }
            }
        }
        if constexpr (kPdSChains == 2) {
#pragma unroll
            for (int mt = 0; mt < kPdMT; ++mt)
#pragma unroll
                for (int nt = 0; nt < 2; ++nt)
#pragma unroll
                    for (int e = 0; e < 4; ++e) s[mt][nt][e] += s_odd[mt][nt][e];
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
                        x *= sm_scale;
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
                if (pd_padding_rows(mt, r)) continue;
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
            const bool lo_only = pd_padding_rows(mt, 1);   // P = 0 in the padding rows (their O stays 0)
            pa[mt][0] = pack_x2<kPdMmaBF16>(s[mt][0][0], s[mt][0][1]);
            pa[mt][1] = lo_only ? 0u : pack_x2<kPdMmaBF16>(s[mt][0][2], s[mt][0][3]);
            pa[mt][2] = pack_x2<kPdMmaBF16>(s[mt][1][0], s[mt][1][1]);
            pa[mt][3] = lo_only ? 0u : pack_x2<kPdMmaBF16>(s[mt][1][2], s[mt][1][3]);
        }
#pragma unroll
        for (int dn = 0; dn < kPdKBlocks; ++dn) {
            u32 vb[4];
            ldmatrix_x4_trans(vb, pd_ld_addr<hcs>(vs + vrow_ld * kPdRowStride<hcs>, (lane >> 4) * 16, kPdTailSwizzle ? vtok : vrow_ld >> hcs, dn * 32, hw, run_sh));
            if constexpr (kIsFp8) {
                // vb[n]: keys 8 (n & 1) .. + 7 of 16 d (n >> 1); bytes (key 2t: d
                // 2g, 2g + 1; key 2t + 1: the same) -> (2g: keys 2t, 2t + 1; 2g + 1: same).
                u32 ve[4];
#pragma unroll
                for (int n = 0; n < 4; ++n) ve[n] = byte_perm(vb[n], 0u, 0x3120u);
#pragma unroll
                for (int h = 0; h < 2; ++h) {
                    const u32 e0 = pd_f16x2_of_f8x2<kIsE5M2>(ve[2 * h]), e1 = pd_f16x2_of_f8x2<kIsE5M2>(ve[2 * h + 1]);
                    const u32 d0 = pd_f16x2_of_f8x2<kIsE5M2>(ve[2 * h] >> 16), d1 = pd_f16x2_of_f8x2<kIsE5M2>(ve[2 * h + 1] >> 16);
#pragma unroll
                    for (int mt = 0; mt < kPdMT; ++mt) {
                        mma_16816<false>(o[mt][4 * dn + 2 * h], pa[mt], e0, e1);       // d = 2g of the 16
                        mma_16816<false>(o[mt][4 * dn + 2 * h + 1], pa[mt], d0, d1);   // d = 2g + 1
                    }
                }
            } else {
#pragma unroll
                for (int mt = 0; mt < kPdMT; ++mt) {
                    mma_16816<kIsBF16>(o[mt][2 * dn], pa[mt], vb[0], vb[1]);
                    mma_16816<kIsBF16>(o[mt][2 * dn + 1], pa[mt], vb[2], vb[3]);
                }
            }
        }
#endif
    };

    // ---- main loop
    if (dyn) {
        for (int it = 0; tq[0] >= 0; ++it) {
            cp_async_wait<kStages - 2>();
            __syncwarp();   // a warp's rows, flags and stage are its own
            const int tn = next_tok();
            if (tn >= 0) load_tile_hc(tn, (it + kStages - 1) % kStages);
            cp_async_commit();
            if (it == 0) PD_STAMP(1);   // first tile in shared memory
            attend(it % kStages, tq[0]);
#pragma unroll
            for (int s = 0; s + 1 < kPdAhead; ++s) tq[s] = tq[s + 1];
            tq[kPdAhead - 1] = tn;
#ifdef PD_TIMELINE
            if (tq[0] < 0) {
                PD_WARP_STAMP(14, (unsigned long long)(it + 1) << (16 * warp));
                if (warp == 0) PD_WARP_STAMP(15, pd_dry);
            }
#endif
        }
        PD_STAMP(7);   // (after its last tile)
    } else {
        for (int it = 0; it < n_tiles; ++it) {
            int tq_cur = -1;   // (kSorted) tile it's first token
            if constexpr (kPdTma) {
                pd_mbar_wait(bar_base + (it % kStages) * 8, (it / kStages) & 1);
            } else {
                if constexpr (kSorted) start_window(it);
                cp_async_wait<kStages - 2>();
                if constexpr (kPdPairJoint<hcs>) asm volatile("bar.sync %0, 64;" :: "r"(1 + kb) : "memory");   // the slice's two warps
                else if constexpr (kPdWarpPipe) __syncwarp();   // a warp's rows, flags and stage are its own
                else __syncthreads();
                if constexpr (kSorted) {
                    tq_cur = tq[0];
                    const int tn = issue_sorted((it + kStages - 1) % kStages);
#pragma unroll
                    for (int q = 0; q + 1 < kPdAhead; ++q) tq[q] = tq[q + 1];
                    tq[kPdAhead - 1] = tn;
                } else if (it + kStages - 1 < n_tiles) {
                    load_tile(it + kStages - 1, (it + kStages - 1) % kStages);
                }
                cp_async_commit();
            }

            if (it == 0) PD_STAMP(1);             // first tile in shared memory
            if (it == n_tiles - 1) PD_STAMP(7);   // last tile in shared memory
            attend(it % kStages, kSorted ? tq_cur : slice_tok(tshift, it));
            if constexpr (kPdTma) {
                __syncthreads();   // stage of tile it consumed by every warp (also publishes flags / zero rows of tile it + 1)
                if (it + kStages < n_tiles) load_tile(it + kStages, it % kStages);
            }
        }
    }
    if constexpr (!kPdTma) cp_async_wait<0>();   // (TMA: every issued tile was waited for)
    __syncthreads();   // ring no longer read: reuse it as the warp-combine buffer
    PD_STAMP(2);   // main loop done

    // ---- combine the warps of each head (each normalised, with its log2-LSE)
    float* so = (float*)smem;
    float* slse = so + kPdWarps * kPdRows * kPdOStride;
#pragma unroll
    for (int mt = 0; mt < kPdMT; ++mt)
#pragma unroll
        for (int r = 0; r < 2; ++r) {
            if (pd_padding_rows(mt, r)) continue;   // (never read)
            const float lsum = quad_sum(l[mt][r]);
            const int row = mt * 16 + g + 8 * r;
            const float inv = lsum > 0.0f ? (kIsFp8 ? v_ds / lsum : 1.0f / lsum) : 0.0f;
            if (t == 0) slse[warp * kPdRows + row] = lsum > 0.0f ? m[mt][r] * C + fast_log2(lsum) : FA_NEG_INF;
            if constexpr (kIsFp8) {
                // Tiles 2 hb (even d) and 2 hb + 1 (odd) of the 16 d of hb: this
                // lane's d 4t .. 4t + 3.
                float* dst = so + (warp * kPdRows + row) * kPdOStride + 4 * t;
#pragma unroll
                for (int hb = 0; hb < kHeadDim / 16; ++hb) {
                    PdF4 v4;
                    v4.x = o[mt][2 * hb][2 * r] * inv; v4.y = o[mt][2 * hb + 1][2 * r] * inv;
                    v4.z = o[mt][2 * hb][2 * r + 1] * inv; v4.w = o[mt][2 * hb + 1][2 * r + 1] * inv;
                    *(PdF4*)(dst + hb * 16) = v4;
                }
            } else {
                float* dst = so + (warp * kPdRows + row) * kPdOStride + 2 * t;
#pragma unroll
                for (int dn = 0; dn < kHeadDim / 8; ++dn) {
                    PdF2 v2; v2.x = o[mt][dn][2 * r] * inv; v2.y = o[mt][dn][2 * r + 1] * inv;
                    *(PdF2*)(dst + dn * 8) = v2;
                }
            }
        }
    __syncthreads();
    PD_STAMP(10);   // warps' rows in shared memory

    const bool direct = num_splits() == 1;
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
    PD_STAMP(3);   // output or partials stored
    // Fused merge (merge_counters set): the last split of (sequence, kv group)
    // to finish merges that group's heads and resets its counters to 0.
    if (!direct && p.merge_counters != nullptr) {
        __shared__ int pd_last;
        int* cnt = p.merge_counters + (long long)b * gridDim.x + grp;
        __threadfence();   // this CTA's partials, device-wide, before it counts
        __syncthreads();
        if (tid == 0) pd_last = atomicAdd(cnt, 1) == num_splits() - 1;
        __syncthreads();
        PD_STAMP(4);   // counted
        if (pd_last) {
            __threadfence();   // every other split's partials before reading them
            PD_STAMP(8);   // merge fenced
            const int h0 = kvh0 * kGqa, R = min(kGqa << hcs, (p.num_kv_heads - kvh0) * kGqa);
            if (!pd_merge_group(p, smem, kRing.flag_offset, b, h0, R, tid))
                for (int r = warp; r < R; r += kPdWarps) pd_merge_head(p, b, h0 + r, lane);
            if (tid == 0) {
                *cnt = 0;
                if (dyn) *claims = 0;   // every warp of the group took its last claim before it counted
            }
            PD_STAMP(5);   // merged
        }
    }
}

// One warp per (sequence, query head).
FA_DEVICE void paged_decode_merge_warp(const PagedDecodeParams& p) {
    const int wg = blockIdx.x * kPdMergeWarps + (threadIdx.x >> 5);
    if (wg >= p.batch * p.num_heads) return;
    pd_merge_head(p, wg / p.num_heads, wg % p.num_heads, threadIdx.x & 31);
}
