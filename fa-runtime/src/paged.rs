//! Paged KV-cache: split-KV decode, cache append and host-side checks.
//!
//! A `paged` cell's rendered source carries, besides `{name}_fwd`, the entry
//! points of `templates/partials/paged_entry.cuh`, all in one CUBIN:
//!
//! - `{name}_decode(PagedDecodeParams)`, `{name}_decode_unsplit(…)`,
//!   `{name}_decode_pair(…)` and `{name}_decode_merge(…)`: split-KV
//!   flash-decoding for one query token per sequence, one or two kv heads
//!   per CTA ([`DecodeKernel`]; every paged cell but fp8 ones at hd80,
//!   [`fa_spec::paged_decode`]);
//! - `{name}_append(PagedAppendParams)`: scatters new K/V tokens into the
//!   caches through a slot mapping.
//!
//! Routing ([`crate::__private::forward`] / [`crate::Kernel::forward`] of a
//! paged cell): a non-varlen launch with `q` `[batch, 1, heads, d]` runs the
//! split-KV decode where the cell has it; everything else (chunked prefill
//! through varlen `cu_seqlens_q`, `s_q > 1`, fp8 hd80 cells) runs the
//! forward kernel, which reads K/V through the block table.
//!
//! Cache layout (K and V alike): `[num_blocks, page_size, num_kv_heads,
//! head_dim]`; token `t` of sequence `b` is slot `t % page_size` of page
//! `block_table[b][t / page_size]`. Context length 0 gives `O = 0` and
//! `LSE = −∞`.
//!
//! Validation: every shape, dtype, device and i32 range is checked on the
//! host before a launch. The *values* of `block_table`, `context_lens` and
//! `slot_mapping` live on the device; the launchers do not read them (that
//! would cost a sync per call). The kernels never access memory out of
//! range: block-table entries outside `[0, num_blocks)` and pages past the
//! table's width are masked (treated as empty), and slots outside
//! `[0, num_blocks · page_size)` are skipped by `append`. To turn such
//! inputs into typed errors, call [`check_paged_inputs`] /
//! [`check_slot_mapping`] (they copy the small tables to the host and sync).

use crate::device::{Device, HotKey};
use crate::error::{FaError, Result};
use crate::tensor::{ElemType, Tensor, TensorMut, TensorRef};
use crate::validate::{ArgMeta, FwdPlan};
use fa_spec::KernelSpec;

/// Mirror of `struct PagedDecodeParams` in `templates/partials/paged_params.cuh`.
/// Strides are in elements; pointers are raw device addresses (0 = null).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct PagedDecodeParams {
    pub q: u64,
    pub k_cache: u64,
    pub v_cache: u64,
    pub o: u64,
    pub lse: u64,
    pub o_accum: u64,
    pub lse_accum: u64,
    pub block_table: u64,
    pub context_lens: u64,
    pub alibi_slopes: u64,
    pub q_descale: u64,
    pub k_descale: u64,
    pub v_descale: u64,
    /// Fused-merge counters (see [`fuses_merge`]), or 0 for `_decode_merge`.
    pub merge_counters: u64,
    pub q_batch_stride: i64,
    pub q_head_stride: i64,
    pub k_block_stride: i64,
    pub k_page_stride: i64,
    pub k_head_stride: i64,
    pub v_block_stride: i64,
    pub v_page_stride: i64,
    pub v_head_stride: i64,
    pub o_batch_stride: i64,
    pub o_head_stride: i64,
    pub batch: i32,
    pub num_heads: i32,
    pub num_kv_heads: i32,
    pub num_blocks: i32,
    pub block_table_stride: i32,
    pub num_splits: i32,
    pub heads_per_cta: i32,
    pub softmax_scale: f32,
    pub scale_log2: f32,
    pub pad_: i32,
}

/// Mirror of `struct PagedAppendParams` in `templates/partials/paged_params.cuh`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct PagedAppendParams {
    pub k_new: u64,
    pub v_new: u64,
    pub k_cache: u64,
    pub v_cache: u64,
    pub slot_mapping: u64,
    pub k_new_token_stride: i64,
    pub k_new_head_stride: i64,
    pub v_new_token_stride: i64,
    pub v_new_head_stride: i64,
    pub k_block_stride: i64,
    pub k_page_stride: i64,
    pub k_head_stride: i64,
    pub v_block_stride: i64,
    pub v_page_stride: i64,
    pub v_head_stride: i64,
    pub num_tokens: i32,
    pub num_kv_heads: i32,
    pub num_blocks: i32,
    pub pad_: i32,
}

// SAFETY: both are #[repr(C)], made only of u64/i64/i32/f32 fields laid out
// exactly as the C structs (checked by the offset tests), so their bytes are
// valid kernel arguments of the C types.
unsafe impl cudarc::driver::DeviceRepr for PagedDecodeParams {}
// SAFETY: as above.
unsafe impl cudarc::driver::DeviceRepr for PagedAppendParams {}

/// Size of the C `PagedDecodeParams` on a 64-bit target.
pub const PAGED_DECODE_PARAMS_SIZE: usize = 232;
/// Size of the C `PagedAppendParams` on a 64-bit target.
pub const PAGED_APPEND_PARAMS_SIZE: usize = 136;
const _: () = assert!(std::mem::size_of::<PagedDecodeParams>() == PAGED_DECODE_PARAMS_SIZE);
const _: () = assert!(std::mem::size_of::<PagedAppendParams>() == PAGED_APPEND_PARAMS_SIZE);

/// Threads of a decode CTA of `spec` (every [`DecodeKernel`]): 32 per warp of
/// [`fa_spec::paged_decode_warps`] (128; 64 for hd256 on sm89, whose ring of
/// 64-row tiles does not fit its shared memory).
pub fn decode_threads(spec: &KernelSpec) -> u32 {
    32 * fa_spec::paged_decode_warps(spec)
}
/// Tokens per KV tile of `_decode` with one kv head per CTA; a tile is 64
/// shared-memory rows, so with `heads_per_cta` heads it holds 64 /
/// heads_per_cta tokens of each. (The 2-warp decode of hd256 on sm89 walks
/// 32-row tiles; its layout is costed with 64-token tiles all the same: the
/// cost model counts tokens, and the tile only rounds them.)
pub const DECODE_TILE_TOKENS: usize = 64;
/// (sequence, head) pairs per `_decode_merge` CTA (one warp each).
pub const MERGE_WARPS: u32 = 4;
/// Threads of an `_append` CTA (one 16-byte chunk each).
pub const APPEND_THREADS: u32 = 256;
/// Most splits of one decode.
pub const MAX_SPLITS: usize = 128;

/// The decode kernel entries of a paged cell ([`decode_entry`]), each
/// specialised for its work, with its own ring depth and shared memory;
/// [`decode_layout`] picks one per launch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DecodeKernel {
    /// `_decode`: one kv head per CTA, any number of splits.
    One,
    /// `_decode_unsplit`: one kv head per CTA, compiled for one split (no
    /// split, merge or dynamic-slice code), with the ring that fits the
    /// most CTAs per SM (2 stages and 3 CTAs per SM at 16-bit hd128 on
    /// sm90, where `_decode` has 3 and 2; elsewhere mostly `_decode`'s).
    Unsplit,
    /// `_decode_pair`: two kv heads per CTA; one split unless the cell's
    /// pair takes splits ([`fa_spec::paged_pair_splits`]).
    Pair,
}
impl DecodeKernel {
    /// Every entry, in the order the runtime reads their occupancy.
    pub const ALL: [DecodeKernel; 3] = [DecodeKernel::One, DecodeKernel::Unsplit, DecodeKernel::Pair];
    /// KV heads one CTA serves (`PagedDecodeParams::heads_per_cta`).
    pub fn heads_per_cta(self) -> usize {
        if self == DecodeKernel::Pair {
            2
        } else {
            1
        }
    }
    /// The entry's name after the cell's kernel name (`decode_unsplit`).
    pub fn stem(self) -> &'static str {
        self.names().stem
    }
    fn names(self) -> &'static DecodeEntry {
        const ONE: DecodeEntry =
            DecodeEntry { stem: "decode", smem_memo: "decode_smem_bytes", occupancy_memo: "decode_occupancy" };
        const UNSPLIT: DecodeEntry = DecodeEntry {
            stem: "decode_unsplit",
            smem_memo: "decode_unsplit_smem_bytes",
            occupancy_memo: "decode_unsplit_occupancy",
        };
        const PAIR: DecodeEntry = DecodeEntry {
            stem: "decode_pair",
            smem_memo: "decode_pair_smem_bytes",
            occupancy_memo: "decode_pair_occupancy",
        };
        match self {
            DecodeKernel::One => &ONE,
            DecodeKernel::Unsplit => &UNSPLIT,
            DecodeKernel::Pair => &PAIR,
        }
    }
}
/// Entry point name of a decode kernel of a paged cell.
pub fn decode_entry(spec: &KernelSpec, kernel: DecodeKernel) -> String {
    format!("{}_{}", spec.kernel_name(), kernel.stem())
}
/// The names that differ between the decode entries: the entry's suffix
/// and the per-module memo keys of its shared memory and occupancy.
struct DecodeEntry {
    stem: &'static str,
    smem_memo: &'static str,
    occupancy_memo: &'static str,
}
/// See [`decode_entry`].
pub fn merge_entry(spec: &KernelSpec) -> String {
    format!("{}_decode_merge", spec.kernel_name())
}
/// See [`decode_entry`].
pub fn append_entry(spec: &KernelSpec) -> String {
    format!("{}_append", spec.kernel_name())
}
/// The `__constant__ int` holding the dynamic shared memory bytes of
/// [`decode_entry`]`(spec, kernel)`.
pub fn decode_smem_symbol(spec: &KernelSpec, kernel: DecodeKernel) -> String {
    format!("{}_smem_bytes", decode_entry(spec, kernel))
}

/// Whether a forward launch of `spec` with `seqlen_q` queries per sequence
/// runs the split-KV decode kernel: not varlen, `s_q == 1`, and a cell
/// whose source carries it ([`fa_spec::paged_decode`]: paged, and not fp8 at
/// hd80).
pub fn uses_decode(spec: &KernelSpec, seqlen_q: usize) -> bool {
    fa_spec::paged_decode(spec) && !spec.varlen() && seqlen_q == 1
}

/// The context bound a paged decode plans its layout with (`max_context`
/// of [`num_splits`]): the block table's tokens (width × page size), or
/// the caller's `max_seqlen_k` hint where that is smaller.
pub fn decode_bound(table_tokens: usize, hint: Option<usize>) -> usize {
    hint.map_or(table_tokens, |h| h.min(table_tokens))
}

/// Device addresses of a decode launch's optional inputs (0 = absent).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DecodeExtras {
    /// f32 `[num_heads]` (alibi cells).
    pub alibi_slopes: u64,
    /// q, k and v descales, f32 `[batch, num_kv_heads]` (fp8 cells; 0 = 1.0).
    pub descale: [u64; 3],
}

/// How many splits of the KV sequence the decode kernel uses with one kv
/// head per CTA; [`decode_layout`] also chooses the heads per CTA.
///
/// One `_decode` CTA handles (split, kv head, sequence) and walks KV tiles
/// of [`DECODE_TILE_TOKENS`] = 64 tokens. The decode is memory-bound, so
/// the model counts how long the card's memory takes, not how many tiles
/// the longest CTA walks. With
///
/// - `T` = tiles the longest context visits: `ceil(eff / 64)` where `eff =
///   max_context`, or for window cells `min(max_context, window + 64 +
///   round_up(sink, 64))` (the window and the sink tiles);
/// - `base = batch · kv_heads` CTAs per split, `slots = sm_count ·
///   entry.ctas_per_sm` CTAs resident at once (from
///   cuOccupancyMaxActiveBlocksPerMultiprocessor; 2 at bf16 hd128 on sm90);
/// - `c` = the CTAs whose rings keep enough bytes in flight to saturate
///   the memory: [`SATURATING_BYTES_ONE`] = 6.5 MiB for one split,
///   [`SATURATING_BYTES_SPLIT`] = 8 MiB with splits, over
///   `entry.smem_bytes` (the ring is most of a CTA's shared memory): at
///   bf16 hd128 (98560 bytes, a 96 KiB ring) 69 CTAs for one split and 85
///   with splits, at e4m3 hd128 (49408) 138 and 170;
///
/// a wave of `k` resident CTAs takes `(k⁵ + c⁵)^(1/5) / slots` of a full
/// wave's time (as long as its bytes once `k` is well past `c`, no shorter
/// than `c` CTAs' below: a soft `max(k, c)`), and each CTA `ceil(T/s)`
/// tiles plus [`FIXED_TOKENS`] = 48 tokens' worth of fixed cost (pipeline
/// fill, partials, merge). The cost of `s` splits is the launch's waves
/// (`ceil(base·s / slots)`, the last one partial) so weighted, times that
/// per-CTA length. The result is the `s` in `1..=min(128, max(1, T/4))`
/// (each split keeps at least 4 tiles) of least cost, the smaller on ties.
///
/// The constants are fitted to sweeps of every plausible split count
/// (`kernels-dev/paged/split_sweep.py`, `FLUSH=1`, 8 kv heads, 36 batch ×
/// context shapes from 1 × 1024 to 1 × 131072, on an H100 and an H200:
/// bf16 hd64, hd128, hd256 and e4m3 hd128 with one head a CTA, bf16 hd96
/// pairs; 360 rows in `kernels-dev/paged/results/split_sweep_*.json`,
/// scored by `split_model.py`). Against the fastest measured count this
/// model loses 98% / 87% summed over the H100 / H200 rows (0.5% a row),
/// at worst 5.8% / 5.1%; each device's own best constants (a grid search)
/// would lose 62% / 78%. The earlier whole-waves model (`ceil(base·s /
/// slots) · (ceil(T/s) + 2)`) lost 306% / 298%, at worst 15.3% / 23.0%:
/// it split batches whose rings already fill the memory. Where the two
/// differ, interleaved A/B on an H100 (`split_ab.py`, five rounds, µs):
/// bf16 hd128 16 × 1024 37.1 (1 split) against 39.9 (2), 48 × 1024 82.9
/// against 88.3, 16 × 4096 104.5 against 107.3, 12 × 4096 86.6 (2)
/// against 87.9 (5), 1 × 32768 63.6 (19) against 63.9 (32); e4m3 hd128 32
/// × 1024 37.8 (1) against 43.6 (3), 32 × 4096 106.5 against 114.7, 40 ×
/// 4096 132.5 against 141.6 (6), 8 × 4096 41.1 (4) against 41.5 (6), 1 ×
/// 131072 114.6 (41) against 114.9 (49); bf16 hd64 32 × 1024 37.1 (1)
/// against 41.7 (3). The power 5 (rather than a sharper 6) keeps bf16 1 ×
/// 131072 at 32 splits: 25 took 196.2 µs against 195.1 for 33. A known
/// miss: at 1 × 131072 with 48 KiB rings (e4m3, bf16 hd64) 33 splits ran
/// 1.2% / 0.5% faster than the model's 41 (112.9 / 111.0 µs against 114.3
/// / 111.5, same rounds).
///
/// The host does not know the context lengths (they live on the device), so
/// launchers pass the cell's bound for `max_context` ([`decode_bound`]:
/// block-table width × page size, or the caller's hint
/// `FwdOptions::max_seqlen_k` when smaller).
/// Without a hint, a batch of much shorter contexts gets more splits than it
/// needs; the extra splits see no tiles and cost only their launch slots.
pub fn num_splits(problem: &DecodeProblem, sm_count: usize, entry: EntryOccupancy) -> usize {
    best_splits(problem, problem.batch.saturating_mul(problem.kv_heads), DECODE_TILE_TOKENS, sm_count, entry)
}

// The constants of [`num_splits`]' cost model. Mirrored by hand in
// `kernels-dev/paged/harness.py` (`paged_num_splits`) and
// `kernels-dev/paged/split_model.py` (`in_flight`), which fit and score them.
/// Bytes in flight that saturate the card's memory, for a launch of one split.
pub const SATURATING_BYTES_ONE: f64 = 6.5 * (1u64 << 20) as f64;
/// The same for a launch of several splits (their shorter CTAs spend more of
/// their time filling and draining their rings).
pub const SATURATING_BYTES_SPLIT: f64 = 8.0 * (1u64 << 20) as f64;
/// Fixed cost of a decode CTA, in tokens.
pub const FIXED_TOKENS: f64 = 48.0;

/// What the decode heuristics know of one decode entry on the device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct EntryOccupancy {
    /// CTAs per SM (cuOccupancyMaxActiveBlocksPerMultiprocessor).
    pub ctas_per_sm: usize,
    /// Dynamic shared memory of a CTA (its K/V ring, Q and merge scratch).
    pub smem_bytes: usize,
}

/// What the decode heuristics ([`num_splits`], [`decode_layout`]) know of a
/// decode launch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct DecodeProblem {
    pub batch: usize,
    pub kv_heads: usize,
    /// Bound on the longest context (see [`num_splits`]).
    pub max_context: usize,
    /// The cell's sliding window (0: none).
    pub window: usize,
    /// The cell's sink tokens.
    pub sink: usize,
}

/// The least-cost split count of [`num_splits`] for `base` CTAs per split
/// walking tiles of `n` tokens on `entry`.
fn best_splits(problem: &DecodeProblem, base: usize, n: usize, sm_count: usize, entry: EntryOccupancy) -> usize {
    let t = visited_tiles(problem, n);
    let smax = MAX_SPLITS.min((t / 4).max(1));
    let (one, split) = (LaunchWaves::on(entry, sm_count, false), LaunchWaves::on(entry, sm_count, true));
    let mut best = (1, f64::INFINITY);
    for s in 1..=smax {
        let waves = if s == 1 { &one } else { &split }.of(base.max(1).saturating_mul(s));
        let cost = waves * cta_tokens(t, s, n);
        if cost < best.1 {
            best = (s, cost);
        }
    }
    best.0
}

/// Tokens one CTA of `s` splits walks over `t` tiles of `n` tokens, plus
/// its fixed cost; in f64, so that a context bound near `usize::MAX` cannot
/// wrap.
fn cta_tokens(t: usize, s: usize, n: usize) -> f64 {
    t.div_ceil(s) as f64 * n as f64 + FIXED_TOKENS
}

/// [`num_splits`]' cost of `base · splits` CTAs of tiles of `n` tokens on
/// `entry`, in CTA-tokens (its waves' time times the entry's slots), which
/// compares launches of entries with different slots: [`best_splits`]'
/// cost, in waves of one entry's slots, does not.
fn launch_cost(
    problem: &DecodeProblem,
    base: usize,
    n: usize,
    sm_count: usize,
    entry: EntryOccupancy,
    splits: usize,
) -> f64 {
    let t = visited_tiles(problem, n);
    let waves = LaunchWaves::on(entry, sm_count, splits > 1);
    waves.of(base.max(1).saturating_mul(splits)) * waves.slots as f64 * cta_tokens(t, splits, n)
}

/// [`num_splits`]' time of a launch's waves, in units of a wave of `slots`
/// CTAs streaming at the full bandwidth (a full wave takes a little more
/// than 1, and much more where `c` exceeds the slots).
struct LaunchWaves {
    /// CTAs that saturate the memory, to the fifth power.
    c5: f64,
    slots: usize,
    /// The time of a full wave of `slots` CTAs.
    full: f64,
}
impl LaunchWaves {
    /// The waves of `entry` on `sm_count` SMs, for a launch of one split or
    /// (`split`) several: `c` is [`SATURATING_BYTES_ONE`] or
    /// [`SATURATING_BYTES_SPLIT`] over the entry's shared memory.
    fn on(entry: EntryOccupancy, sm_count: usize, split: bool) -> Self {
        let bytes = if split { SATURATING_BYTES_SPLIT } else { SATURATING_BYTES_ONE };
        LaunchWaves::new(bytes / entry.smem_bytes.max(1) as f64, sm_count.saturating_mul(entry.ctas_per_sm).max(1))
    }
    fn new(c: f64, slots: usize) -> Self {
        let c5 = c.powi(5);
        let mut w = LaunchWaves { c5, slots, full: 0.0 };
        w.full = w.wave(slots);
        w
    }
    /// A wave of `k` resident CTAs: a soft `max(k, c)`, over `slots`.
    fn wave(&self, k: usize) -> f64 {
        ((k as f64).powi(5) + self.c5).powf(0.2) / self.slots as f64
    }
    fn of(&self, ctas: usize) -> f64 {
        let (full, part) = (ctas / self.slots, ctas % self.slots);
        full as f64 * self.full + if part > 0 { self.wave(part) } else { 0.0 }
    }
}

/// Tiles of `n` tokens the longest context visits (see [`num_splits`]).
fn visited_tiles(problem: &DecodeProblem, n: usize) -> usize {
    let mut eff = problem.max_context;
    if problem.window > 0 {
        eff = eff.min(problem.window.saturating_add(n).saturating_add(problem.sink.div_ceil(n).saturating_mul(n)));
    }
    eff.div_ceil(n).max(1)
}

/// How one decode launch is laid out: `grid = (ceil(kv_heads /
/// heads_per_cta), splits, batch)` (consecutive CTAs serve different kv groups, so that each
/// group's splits spread over the SMs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeLayout {
    /// The entry launched; it serves [`DecodeKernel::heads_per_cta`] kv
    /// heads per CTA, whose tiles are 64 / heads_per_cta tokens of that many
    /// heads. [`DecodeKernel::Unsplit`] always with `splits == 1`, and
    /// [`DecodeKernel::Pair`] too unless the cell's `_decode_pair` takes
    /// splits ([`fa_spec::paged_pair_splits`]): elsewhere both are compiled
    /// for one split (no partials and no merge).
    pub kernel: DecodeKernel,
    /// Splits of the KV sequence ([`num_splits`]'s cost model).
    pub splits: usize,
    /// Whether the last split of each CTA group merges the splits inside
    /// `_decode` ([`fuses_merge`]) instead of a `_decode_merge` launch.
    pub fused_merge: bool,
}

impl DecodeLayout {
    /// KV heads one CTA serves (1 or 2).
    pub fn heads_per_cta(&self) -> usize {
        self.kernel.heads_per_cta()
    }
    /// CTA groups of `heads_per_cta` kv heads: the grid's x.
    pub fn kv_groups(&self, kv_heads: usize) -> usize {
        kv_heads.div_ceil(self.heads_per_cta())
    }
}

/// What [`decode_layout`] knows of a cell's decode entries on a device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct DecodeKernels {
    /// `_decode` ([`DecodeKernel::One`]).
    pub one: EntryOccupancy,
    /// `_decode_unsplit` ([`DecodeKernel::Unsplit`]); `ctas_per_sm` 0 where
    /// it is not to be launched.
    pub unsplit: EntryOccupancy,
    /// `_decode_pair` ([`DecodeKernel::Pair`]).
    pub pair: EntryOccupancy,
    /// Whether `_decode_pair` takes splits ([`fa_spec::paged_pair_splits`]).
    pub pair_splits: bool,
}

/// The [`DecodeLayout`] of a decode: two kv heads per CTA without splits
/// where those CTAs fill between half and all of `_decode_pair`'s slots at
/// once (`batch · kv_heads / 2` of `sm_count · pair.ctas_per_sm`, even
/// `kv_heads`), else one head per CTA with the split count of
/// [`num_splits`] through `_decode`, or with one split through
/// `_decode_unsplit` where that streams faster (below). With splits, two heads per CTA mean twice the splits per
/// head and twice the partial results to merge, so `_decode_pair` is
/// launched only without splits (but see `pair_splits` below). Fewer pair
/// CTAs than half the slots leave the card's bandwidth unused where splits
/// of one head would not; more than the slots run a second, partial wave
/// of the longest CTAs. Measured on an H200 (`kernels-dev/paged/pair_exp.py`,
/// `FLUSH=1`, 32/8 heads, 4096
/// tokens each, µs; one head at the split count the earlier whole-waves
/// [`num_splits`] gave, the best one-head count in brackets where faster;
/// the current model picks that best one at 32 sequences), bf16 hd128 (2 / 3 CTAs
/// per SM for one / two heads): batch 32 pair 150.8 against 135.6, 40
/// 172.6 / 170.4, 48 196.2 / 199.5, 64 249.8 / 252.0, 96 365.2 / 373.0,
/// 128 523.3 / 486.3; e4m3 hd128 (3 / 3 CTAs per SM): batch 32 99.5 /
/// 85.5 (79.3), 48 127.1 / 107.9, 64 137.5 / 152.2, 96 196.1 / 201.2, 128
/// 343.7 / 281.0. The earlier rule, [`num_splits`]' cost for both with one
/// split for the pair, chose the pair at 128 sequences (bf16, 8% slower)
/// and one head at 64 (e4m3, 11% slower): it counts whole waves of CTAs
/// whatever their CTAs per SM, where a memory-bound wave takes as long as
/// its bytes. Four heads per CTA: no faster (bf16, 254.5 µs at 64 × 4096).
///
/// `kernels`: CTAs per SM and shared memory of `_decode`, `_decode_unsplit`
/// and `_decode_pair` ([`decode_entry`]), whose rings differ where a
/// shallower ring fits more CTAs (hd128 on sm90: 2, 3 and 3), so each
/// layout is costed with its own slots.
///
/// `_decode_unsplit` takes one head per CTA without a split where
/// `_decode` would take one split and the launch has more CTAs than the
/// card has SMs, or the two entries have the same ring (it is the same
/// kernel without the split code); and where `_decode` would split a
/// launch of more CTAs than SMs that fits one wave of the unsplit entry's
/// slots, and the model costs that wave (in CTA-tokens, comparable between
/// entries) no more than the splits. Measured (H100, bf16 hd128, 32/8
/// heads, pages of 16, `FLUSH=1`, `kernels-dev/paged/tie_ab.py`, SDPA
/// cuDNN interleaved in the same rounds, µs; `_decode_unsplit` has 2
/// stages at 3 CTAs per SM, `_decode` 3 at 2): 24 × 4096 148.4 against
/// 153.5 (cuDNN 153.2), 32 × 4096 190.5 against 193.1 (190.0), 48 × 4096
/// 279.7 against 281.0 (280.8), 128 × 4096 717.6 against 718.6 (711.8), 32
/// × 1024 59.7 against 60.7 (60.2), 256 × 2048 714.4 against 716.3 (710.6),
/// 40 × 4096 238.8 against 243.3 for `_decode`'s two splits (247.4); 16 ×
/// 4096 (128 CTAs) keeps `_decode`: 104.1 against 108.1 unsplit (103.0).
/// On an H200: 24 × 4096 107.2 against 108.9, 32 × 4096 134.8 against
/// 137.6, 48 × 4096 195.1 against 202.4, 40 × 4096 165.9 against 174.5, 256
/// × 2048 494.3 against 494.6; 16 × 4096 77.2 through `_decode` against
/// 84.2. Where the rings are the same (e4m3 hd128, H100): 32 × 1024 37.5
/// against 37.8, 128 × 1024 112.0 against 112.9.
///
/// `pair_splits` ([`fa_spec::paged_pair_splits`]: rows of 160 / 192 bytes,
/// 16-bit hd80 / hd96 and fp8 hd192, on sm90+):
/// the pair takes splits, and an even number of kv heads always pairs, with
/// the split count of [`num_splits`]' model for `batch · kv_heads / 2` CTAs
/// of 32-token tiles on `_decode_pair`'s own slots and ring. One head's rows
/// there split 128-byte
/// lines between neighbouring heads; a pair's two rows of a token are one
/// run (three whole lines at hd96, 2.5 at hd80). Split pairs walk fixed
/// ranges (the dynamic slices of [`fuses_merge`] are one head's). The
/// earlier whole-waves model had to be costed at `_decode`'s slots, or it
/// split twice as often as the measured best; this one, costed at the
/// pair's, loses 18% / 19% summed over the 36 hd96 rows of each sweep
/// (H100 / H200), at worst 4.0% / 5.1%, against 87% / 104% (at worst 13.8%
/// / 18.7%) for the earlier one at `_decode`'s.
/// Pairs against one head, measured on an H100 (`FLUSH=1`, fused merge,
/// SDPA cuDNN on the contiguous cache in the same call), bf16 hd96 gqa 4,
/// 8 kv heads:
/// 1 × 131072 157.8–158.3 µs with 49–66 splits against 162.5 with 98 and
/// 163.4 for one head (cuDNN 155.6); 8 × 4096 52.9–53.2 with 6–8 splits
/// against 55.4 (54.3); 2 × 65536 156.1 with 32 against 163.5 (155.5).
/// f16 hd80 gqa 4 alibi: 138.4–139.5 against 141.5 (cuDNN 135.6, without
/// alibi), 47.5–47.9 against 48.7 (50.1), 136.0–137.3 against 141.6
/// (133.9). With this rule (H200, hd96 / hd80): 1 × 131072 114.9 / 100.9
/// against 117.6 / 104.0 for one head, 32 × 8192 (2 splits) 200.3 / 174.7
/// against 223.5 / 192.8 (one head, no split). The pair's split code costs
/// nothing where it does not split (64 × 4096: 196.8–197.2 against 196.8
/// µs without it on an H200, 285.1–285.8 against 285.2–285.3 on an H100).
pub fn decode_layout(problem: &DecodeProblem, sm_count: usize, kernels: DecodeKernels) -> DecodeLayout {
    let DecodeKernels { one, unsplit, pair, pair_splits } = kernels;
    let (batch, kv_heads) = (problem.batch, problem.kv_heads);
    let pair_tile_tokens = DECODE_TILE_TOKENS / 2;
    let pairs = kv_heads >= 2 && kv_heads % 2 == 0;
    let pair_ctas = batch.saturating_mul(kv_heads / 2);
    let pair_slots = sm_count.saturating_mul(pair.ctas_per_sm);
    let (kernel, splits, entry) = if pairs && pair_splits {
        (DecodeKernel::Pair, best_splits(problem, pair_ctas, pair_tile_tokens, sm_count, pair), pair)
    } else if pairs && pair_ctas > 0 && pair_ctas.saturating_mul(2) >= pair_slots && pair_ctas <= pair_slots {
        (DecodeKernel::Pair, 1, pair)
    } else {
        let splits = num_splits(problem, sm_count, one);
        if takes_unsplit(problem, sm_count, one, unsplit, splits) {
            (DecodeKernel::Unsplit, 1, unsplit)
        } else {
            (DecodeKernel::One, splits, one)
        }
    };
    let mut layout = DecodeLayout { kernel, splits, fused_merge: false };
    layout.fused_merge = fuses_merge(batch, layout.kv_groups(kv_heads), splits, sm_count, entry.ctas_per_sm);
    layout
}

/// Whether one kv head per CTA runs `_decode_unsplit` (one split) rather
/// than `_decode` at `splits` ([`num_splits`]' count on `_decode`); the
/// rule and its measurements are [`decode_layout`]'s. The cost comparison
/// fires at bf16 hd128 with 8 kv heads for 34 to 49 sequences (272 to 392
/// CTAs: one wave and up to half another of `_decode`'s 264 slots, which
/// the model splits in two or four) at 1024 to 32768 tokens.
fn takes_unsplit(
    problem: &DecodeProblem,
    sm_count: usize,
    one: EntryOccupancy,
    unsplit: EntryOccupancy,
    splits: usize,
) -> bool {
    let ctas = problem.batch.saturating_mul(problem.kv_heads);
    if unsplit.ctas_per_sm == 0 || ctas == 0 {
        return false;
    }
    if splits == 1 {
        return unsplit.smem_bytes == one.smem_bytes || ctas > sm_count;
    }
    let n = DECODE_TILE_TOKENS;
    ctas > sm_count
        && ctas <= sm_count.saturating_mul(unsplit.ctas_per_sm)
        && launch_cost(problem, ctas, n, sm_count, unsplit, 1) <= launch_cost(problem, ctas, n, sm_count, one, splits)
}

/// Whether a split decode merges its splits inside `_decode` (the last split
/// of each (sequence, kv head group) to finish combines them) instead of a
/// `_decode_merge` launch: when all `batch · kv_groups · splits` CTAs are
/// resident at once (`sm_count · occupancy` slots). Then the merge overlaps
/// the other heads' last tiles and the second launch goes, and (one kv head
/// per CTA; split pairs keep fixed ranges) the warps
/// claim the second half of their head's slices from a counter, so that
/// SMs that stream faster take more of them (1 × 131072: 128.3 against
/// 132.6 µs with fixed ranges, same H200 call); with several
/// waves the merging CTAs hold slots the next wave needs, and the separate
/// merge is faster. Measured on an H200 (bf16 hd128, 32/8 heads): 1 × 131072
/// tokens, 33 splits, one wave: 136.7 against 144.6 µs; 64 × 4096 with 2
/// splits, four waves: 261.6 against 258.0 µs.
pub fn fuses_merge(batch: usize, kv_groups: usize, splits: usize, sm_count: usize, occupancy: usize) -> bool {
    splits > 1 && batch.saturating_mul(kv_groups).saturating_mul(splits) <= sm_count.saturating_mul(occupancy)
}

/// Bytes of the split-KV workspace: `o_accum` f32 `[splits, batch, heads,
/// d]`, then (at a 256-byte boundary) `lse_accum` f32 `[splits, batch,
/// heads]`. Returns (total bytes, offset of `lse_accum`).
pub fn workspace_bytes(splits: usize, batch: usize, heads: usize, head_dim: usize) -> (usize, usize) {
    let rows = splits * batch * heads;
    let o = (rows * head_dim * 4).div_ceil(256) * 256;
    (o + rows * 4, o)
}

/// Shapes of an `append` launch.
#[derive(Debug, Clone, Copy)]
pub struct AppendShapes<'a> {
    pub k_new: ArgMeta<'a>,
    pub v_new: ArgMeta<'a>,
    pub slot_mapping: ArgMeta<'a>,
    pub k_cache: ArgMeta<'a>,
    pub v_cache: ArgMeta<'a>,
}

/// Geometry of an `append` launch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendPlan {
    pub num_tokens: usize,
    pub num_kv_heads: usize,
    pub num_blocks: usize,
    pub grid: u32,
}

fn check_meta(arg: &'static str, m: &ArgMeta<'_>, want: ElemType, dev: (u64, usize)) -> Result<()> {
    if m.elem != want {
        return Err(FaError::Dtype { arg, expected: want.name(), found: m.elem.name() });
    }
    if m.device_id != dev.0 {
        return Err(FaError::WrongDevice { arg, expected: dev.1, found: m.ordinal });
    }
    Ok(())
}

/// Checks an `append` of `spec`: `k_cache`/`v_cache` `[num_blocks,
/// page_size (the cell's), num_kv_heads, head_dim]`, `k_new`/`v_new`
/// `[num_tokens, num_kv_heads, head_dim]` of the cell's dtype,
/// `slot_mapping` i64 `[num_tokens]`, all on `dev`, indices within i32.
pub fn validate_append(spec: &KernelSpec, a: &AppendShapes<'_>, dev: (u64, usize)) -> Result<AppendPlan> {
    let Some(ps) = spec.page_size().map(|p| p as usize) else {
        return Err(FaError::Argument {
            arg: "spec",
            message: format!("`{}` is not a paged cell: append needs `paged`", spec.kernel_name()),
        });
    };
    let elem = ElemType::of_dtype(spec.dtype());
    let d = spec.head_dim() as usize;
    for (name, m, e) in [
        ("k_new", a.k_new, elem),
        ("v_new", a.v_new, elem),
        ("slot_mapping", a.slot_mapping, ElemType::I64),
        ("k_cache", a.k_cache, elem),
        ("v_cache", a.v_cache, elem),
    ] {
        check_meta(name, &m, e, dev)?;
    }
    let kc = a.k_cache.shape;
    if kc.len() != 4 || kc[1] != ps || kc[3] != d {
        return Err(FaError::shape(
            "k_cache",
            format!("[num_blocks, page_size={ps} (the cell's), num_kv_heads, head_dim={d}]"),
            kc,
        ));
    }
    let (nb, h_k) = (kc[0], kc[2]);
    if a.v_cache.shape != kc {
        return Err(FaError::shape("v_cache", format!("the shape of k_cache, {kc:?}"), a.v_cache.shape));
    }
    let sm = a.slot_mapping.shape;
    if sm.len() != 1 {
        return Err(FaError::shape("slot_mapping", "[num_tokens]", sm));
    }
    let n = sm[0];
    for (name, m) in [("k_new", a.k_new), ("v_new", a.v_new)] {
        if m.shape != [n, h_k, d] {
            return Err(FaError::shape(
                name,
                format!(
                    "[num_tokens={n}, num_kv_heads={h_k}, head_dim={d}] (slot_mapping's length, the cache's heads)"
                ),
                m.shape,
            ));
        }
    }
    let too_big = |arg, what: &str, v: usize| FaError::Argument {
        arg,
        message: format!("{what} = {v} exceeds i32::MAX, the kernel's index range"),
    };
    if n > i32::MAX as usize {
        return Err(too_big("slot_mapping", "num_tokens", n));
    }
    if nb > i32::MAX as usize {
        return Err(too_big("k_cache", "num_blocks", nb));
    }
    let chunks = d * elem.size_bytes() / 16;
    let threads = n.saturating_mul(h_k).saturating_mul(chunks);
    let grid = threads.div_ceil(APPEND_THREADS as usize);
    if grid > i32::MAX as usize {
        return Err(too_big("k_new", "append grid", grid));
    }
    Ok(AppendPlan { num_tokens: n, num_kv_heads: h_k, num_blocks: nb, grid: grid as u32 })
}

/// The `append` kernel's argument for a validated plan.
pub fn append_params(
    plan: &AppendPlan,
    page_size: usize,
    head_dim: usize,
    ptrs: [u64; 5], // k_new, v_new, slot_mapping, k_cache, v_cache
) -> PagedAppendParams {
    let (h_k, d) = (plan.num_kv_heads as i64, head_dim as i64);
    let page = h_k * d;
    PagedAppendParams {
        k_new: ptrs[0],
        v_new: ptrs[1],
        slot_mapping: ptrs[2],
        k_cache: ptrs[3],
        v_cache: ptrs[4],
        k_new_token_stride: page,
        k_new_head_stride: d,
        v_new_token_stride: page,
        v_new_head_stride: d,
        k_block_stride: page_size as i64 * page,
        k_page_stride: page,
        k_head_stride: d,
        v_block_stride: page_size as i64 * page,
        v_page_stride: page,
        v_head_stride: d,
        num_tokens: plan.num_tokens as i32,
        num_kv_heads: plan.num_kv_heads as i32,
        num_blocks: plan.num_blocks as i32,
        pad_: 0,
    }
}

/// Pure host check of a block table and context lengths (row-major `[batch,
/// width]` and `[batch]`): every context in `0..=width · page_size`, and
/// every page a context uses (`block_table[b][0 .. ceil(ctx / page_size)]`)
/// in `0..num_blocks`. Entries past a context's pages are not looked at
/// (padding such as −1 is fine there).
pub fn check_tables(
    block_table: &[i32],
    width: usize,
    context_lens: &[i32],
    num_blocks: usize,
    page_size: usize,
) -> Result<()> {
    let batch = context_lens.len();
    if block_table.len() != batch * width {
        return Err(FaError::shape("block_table", format!("[batch={batch}, {width}]"), &[block_table.len()]));
    }
    for (b, &c) in context_lens.iter().enumerate() {
        if c < 0 || c as usize > width * page_size {
            return Err(FaError::Argument {
                arg: "context_lens",
                message: format!(
                    "context_lens[{b}] = {c} is outside 0..={}: the block table covers {width} pages of {page_size} tokens",
                    width * page_size
                ),
            });
        }
        for p in 0..(c as usize).div_ceil(page_size) {
            let e = block_table[b * width + p];
            if e < 0 || e as usize >= num_blocks {
                return Err(FaError::Argument {
                    arg: "block_table",
                    message: format!(
                        "block_table[{b}][{p}] = {e} is outside 0..{num_blocks} (the cache's pages); sequence {b} uses pages 0..{} of its row",
                        (c as usize).div_ceil(page_size)
                    ),
                });
            }
        }
    }
    Ok(())
}

/// Pure host check of a slot mapping: every slot is −1 (skip) or in
/// `0..num_blocks · page_size`.
pub fn check_slots(slot_mapping: &[i64], num_blocks: usize, page_size: usize) -> Result<()> {
    let n = (num_blocks * page_size) as i64;
    for (i, &s) in slot_mapping.iter().enumerate() {
        if s != -1 && !(0..n).contains(&s) {
            return Err(FaError::Argument {
                arg: "slot_mapping",
                message: format!(
                    "slot_mapping[{i}] = {s} is neither -1 (skip) nor in 0..{n} (num_blocks {num_blocks} × page_size {page_size})"
                ),
            });
        }
    }
    Ok(())
}

/// Copies `block_table` `[batch, width]` and `context_lens` `[batch]` to the
/// host and checks them with [`check_tables`]: typed errors for a page
/// index outside `0..num_blocks` or a context longer than its row covers.
///
/// Launchers never call this implicitly: it synchronises the device's
/// stream. Without it the kernels still never read out of range (invalid
/// pages are masked, as if empty), but the result of such a launch is
/// meaningless.
pub fn check_paged_inputs(
    dev: &Device,
    block_table: &Tensor<i32>,
    context_lens: &Tensor<i32>,
    num_blocks: usize,
    page_size: usize,
) -> Result<()> {
    let bs = block_table.shape();
    if bs.len() != 2 {
        return Err(FaError::shape("block_table", "[batch, max_blocks_per_seq]", bs));
    }
    if context_lens.shape() != [bs[0]] {
        return Err(FaError::shape("context_lens", format!("[batch={}]", bs[0]), context_lens.shape()));
    }
    let bt = block_table.to_host(dev)?;
    let cl = context_lens.to_host(dev)?;
    check_tables(&bt, bs[1], &cl, num_blocks, page_size)
}

/// Copies `slot_mapping` to the host and checks it with [`check_slots`]
/// (syncs; `append` itself skips out-of-range slots without an error).
pub fn check_slot_mapping(dev: &Device, slot_mapping: &Tensor<i64>, num_blocks: usize, page_size: usize) -> Result<()> {
    check_slots(&slot_mapping.to_host(dev)?, num_blocks, page_size)
}

/// The decode kernel's argument for a validated forward plan.
#[allow(clippy::too_many_arguments)]
pub fn decode_params(
    plan: &FwdPlan,
    num_blocks: usize,
    layout: &DecodeLayout,
    ptrs: [u64; 7], // q, k_cache, v_cache, o, lse, block_table, context_lens
    extras: DecodeExtras,
    o_accum: u64,
    lse_accum: u64,
) -> PagedDecodeParams {
    PagedDecodeParams {
        q: ptrs[0],
        k_cache: ptrs[1],
        v_cache: ptrs[2],
        o: ptrs[3],
        lse: ptrs[4],
        o_accum,
        lse_accum,
        block_table: ptrs[5],
        context_lens: ptrs[6],
        alibi_slopes: extras.alibi_slopes,
        q_descale: extras.descale[0],
        k_descale: extras.descale[1],
        v_descale: extras.descale[2],
        merge_counters: 0,
        // q, o: [b, 1, h, d] read as [b, h, d].
        q_batch_stride: plan.q_strides[0],
        q_head_stride: plan.q_strides[2],
        k_block_stride: plan.k_strides[0],
        k_page_stride: plan.k_strides[1],
        k_head_stride: plan.k_strides[2],
        v_block_stride: plan.v_strides[0],
        v_page_stride: plan.v_strides[1],
        v_head_stride: plan.v_strides[2],
        o_batch_stride: plan.o_strides[0],
        o_head_stride: plan.o_strides[2],
        batch: plan.batch as i32,
        num_heads: plan.num_heads as i32,
        num_kv_heads: plan.num_kv_heads as i32,
        num_blocks: num_blocks as i32,
        block_table_stride: plan.block_table_stride as i32,
        num_splits: layout.splits as i32,
        heads_per_cta: layout.heads_per_cta() as i32,
        softmax_scale: plan.softmax_scale,
        scale_log2: plan.softmax_scale * std::f32::consts::LOG2_E,
        pad_: 0,
    }
}

/// The decode entries of one loaded cell on one device: their kernels,
/// dynamic shared memory and occupancy, each looked up once per (device,
/// cell) and memoised, so a launch touches only the kernel it runs.
pub(crate) struct DecodeEntries<'a> {
    pub dev: &'a Device,
    pub spec: &'a KernelSpec,
    pub hot: &'a HotKey,
    pub load: &'a dyn Fn() -> Result<std::sync::Arc<crate::cache::Artifact>>,
}
impl DecodeEntries<'_> {
    fn smem(&self, k: DecodeKernel) -> Result<u32> {
        let smem = self.dev.memo(self.hot, k.names().smem_memo, || {
            Ok(self.dev.module_global_i32(self.hot, &decode_smem_symbol(self.spec, k), self.load)?.max(0) as u64)
        })?;
        Ok(smem as u32)
    }
    fn kernel(&self, k: DecodeKernel) -> Result<(std::sync::Arc<crate::device::LoadedKernel>, u32)> {
        let smem = self.smem(k)?;
        Ok((self.dev.kernel(self.hot, &decode_entry(self.spec, k), self.load, smem)?, smem))
    }
    fn occupancy(&self, k: DecodeKernel) -> Result<EntryOccupancy> {
        let smem = self.smem(k)?;
        let occ = self.dev.memo(self.hot, k.names().occupancy_memo, || {
            let (kernel, _) = self.kernel(k)?;
            Ok(self.dev.occupancy(&kernel, decode_threads(self.spec), smem)? as u64)
        })?;
        Ok(EntryOccupancy { ctas_per_sm: occ as usize, smem_bytes: smem as usize })
    }
    /// The layout of a decode of `batch` sequences of up to `max_context`
    /// tokens (the cell's window and sink bound the work further).
    pub fn layout(&self, batch: usize, kv_heads: usize, max_context: usize) -> Result<DecodeLayout> {
        let problem = DecodeProblem {
            batch,
            kv_heads,
            max_context,
            window: self.spec.window().unwrap_or(0) as usize,
            sink: self.spec.sink().unwrap_or(0) as usize,
        };
        let kernels = DecodeKernels {
            one: self.occupancy(DecodeKernel::One)?,
            unsplit: self.occupancy(DecodeKernel::Unsplit)?,
            pair: self.occupancy(DecodeKernel::Pair)?,
            pair_splits: fa_spec::paged_pair_splits(self.spec),
        };
        let sm_count = self.dev.sm_count() as usize;
        Ok(planned_layout((problem, sm_count, kernels)))
    }
}

/// Everything [`decode_layout`] reads.
type LayoutKey = (DecodeProblem, usize, DecodeKernels);

/// [`decode_layout`], remembered: a decode loop repeats its batch and
/// context bound from step to step, and the split search costs 5–8 µs at
/// long contexts (128 candidates, a fifth root each, on the build
/// machine's CPU) where the lookup costs a hash. The context bound is
/// rounded up to a multiple of 32 tokens in the key, which changes no
/// layout (the model counts 32- and 64-token tiles), so a bound that grows
/// a token a step (a `max_context` hint of the longest context) finds its
/// layout 31 steps in 32. The function is pure, so one table serves every
/// device; it is emptied when it reaches [`PLANNED_LAYOUTS`] entries.
fn planned_layout(mut key: LayoutKey) -> DecodeLayout {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};
    static TABLE: OnceLock<Mutex<HashMap<LayoutKey, DecodeLayout>>> = OnceLock::new();
    key.0.max_context = key.0.max_context.div_ceil(LAYOUT_KEY_TOKENS).saturating_mul(LAYOUT_KEY_TOKENS);
    let table = TABLE.get_or_init(Default::default);
    if let Some(l) = table.lock().unwrap_or_else(|p| p.into_inner()).get(&key) {
        return *l;
    }
    let (problem, sm_count, kernels) = key;
    let layout = decode_layout(&problem, sm_count, kernels);
    let mut t = table.lock().unwrap_or_else(|p| p.into_inner());
    if t.len() >= PLANNED_LAYOUTS {
        t.clear();
    }
    t.insert(key, layout);
    layout
}
/// Bound on the layouts [`planned_layout`] remembers.
const PLANNED_LAYOUTS: usize = 4096;
/// The rounding of the context bound in [`planned_layout`]'s key: the
/// smallest tile the model counts (a pair's).
const LAYOUT_KEY_TOKENS: usize = 32;

/// The split-KV decode of a validated paged forward launch (`plan` from
/// `validate_forward`, `uses_decode` true). `ptrs`: q, k, v, out, lse,
/// block_table, context_lens.
pub(crate) fn launch_decode(
    entries: &DecodeEntries<'_>,
    plan: &FwdPlan,
    num_blocks: usize,
    ptrs: [u64; 7],
    extras: DecodeExtras,
) -> Result<()> {
    let (dev, spec) = (entries.dev, entries.spec);
    let threads = decode_threads(spec);
    let layout = entries.layout(plan.batch, plan.num_kv_heads, plan.decode_context)?;
    let (decode, smem) = entries.kernel(layout.kernel)?;
    let groups = layout.kv_groups(plan.num_kv_heads);
    let grid = (groups as u32, layout.splits as u32, plan.batch as u32);
    if layout.splits == 1 {
        let p = decode_params(plan, num_blocks, &layout, ptrs, extras, 0, 0);
        return dev.launch(&decode, grid, threads, smem, &p);
    }
    let d = spec.head_dim() as usize;
    let (bytes, lse_off) = workspace_bytes(layout.splits, plan.batch, plan.num_heads, d);
    // Held across both launches: the workspace is shared by every decode of
    // this device, and the stream orders decode → merge → the next decode.
    let mut ws = dev.paged_workspace.lock().unwrap_or_else(|p| p.into_inner());
    let base = reused_or_grown(dev, &mut ws, bytes, 1 << 20, false)?;
    let mut p = decode_params(plan, num_blocks, &layout, ptrs, extras, base, base + lse_off as u64);
    if layout.fused_merge {
        // Held across the launch like the workspace: the kernel returns every
        // counter it increments (per sequence and kv group: splits arrived,
        // then slices claimed) to 0 before the next decode (stream order).
        let mut cnt = dev.merge_counters.lock().unwrap_or_else(|p| p.into_inner());
        p.merge_counters = reused_or_grown(dev, &mut cnt, 2 * plan.batch * groups * 4, 4096, true)?;
        return dev.launch(&decode, grid, threads, smem, &p);
    }
    let merge = dev.kernel(entries.hot, &merge_entry(spec), entries.load, 0)?;
    dev.launch(&decode, grid, threads, smem, &p)?;
    let pairs = (plan.batch * plan.num_heads) as u32;
    dev.launch(&merge, (pairs.div_ceil(MERGE_WARPS), 1, 1), MERGE_WARPS * 32, 0, &p)
}

/// The device address of the workspace in `slot`, first replaced by a new
/// one of `need.next_power_of_two()` bytes (at least `min`; zero-filled if
/// `zeroed`) when it is missing or smaller than `need`. Growing geometrically
/// keeps reallocations rare; an old buffer is freed in stream order, after
/// the launches that used it. The caller holds the slot's lock across the
/// launches that use the address.
fn reused_or_grown(
    dev: &Device,
    slot: &mut Option<cudarc::driver::CudaSlice<u8>>,
    need: usize,
    min: usize,
    zeroed: bool,
) -> Result<u64> {
    use cudarc::driver::DevicePtr;
    let buf = match slot {
        Some(b) if b.len() >= need => b,
        _ => {
            let want = need.next_power_of_two().max(min);
            let fresh = if zeroed { dev.alloc_zeroed_workspace(want)? } else { dev.alloc_workspace(want)? };
            slot.insert(fresh)
        }
    };
    let (ptr, _sync) = buf.device_ptr(dev.cuda_stream());
    Ok(ptr)
}

/// An `append` launch as the generated code describes it.
#[derive(Debug)]
pub struct AppendCall<'a> {
    pub spec: &'a KernelSpec,
    /// The cell's `CUDA_SOURCE`.
    pub source: &'static str,
    pub k_new: TensorRef<'a>,
    pub v_new: TensorRef<'a>,
    pub slot_mapping: TensorRef<'a>,
    pub k_cache: TensorMut<'a>,
    pub v_cache: TensorMut<'a>,
}

#[cfg(test)]
mod tests {
    use super::{
        decode_layout, planned_layout, DecodeKernel, DecodeKernels, DecodeProblem, EntryOccupancy, PLANNED_LAYOUTS,
    };

    #[test]
    fn planned_layouts_are_decode_layouts() {
        let entries = [
            (
                EntryOccupancy { ctas_per_sm: 2, smem_bytes: 98560 },
                EntryOccupancy { ctas_per_sm: 3, smem_bytes: 65792 },
                EntryOccupancy { ctas_per_sm: 3, smem_bytes: 65792 },
            ),
            (
                EntryOccupancy { ctas_per_sm: 3, smem_bytes: 49408 },
                EntryOccupancy { ctas_per_sm: 3, smem_bytes: 49408 },
                EntryOccupancy { ctas_per_sm: 3, smem_bytes: 73984 },
            ),
        ];
        let mut keys = 0;
        // Twice over more problems than the table holds: hits, misses and a
        // cleared table all answer as decode_layout does, for every input of
        // the key (and for context bounds the key rounds).
        for _ in 0..2 {
            for batch in 0..24 {
                for max_context in [0, 1, 31, 33, 100, 4095, 4096, 4097, 131071, 131072, usize::MAX] {
                    for (window, sink) in [(0, 0), (1000, 4)] {
                        for (kv_heads, pair_splits) in [(8, false), (8, true), (3, true)] {
                            for sm in [132, 78] {
                                for (one, unsplit, pair) in entries {
                                    let p = DecodeProblem { batch, kv_heads, max_context, window, sink };
                                    let k = DecodeKernels { one, unsplit, pair, pair_splits };
                                    let want = decode_layout(&p, sm, k);
                                    assert_eq!(planned_layout((p, sm, k)), want, "{p:?}");
                                    keys += 1;
                                }
                            }
                        }
                    }
                }
            }
        }
        assert!(keys > 2 * PLANNED_LAYOUTS, "{keys}");
    }

    #[test]
    fn decode_entries_keep_their_names_apart() {
        let stems = DecodeKernel::ALL.map(|k| k.stem());
        assert_eq!(stems, ["decode", "decode_unsplit", "decode_pair"]);
        assert_eq!(DecodeKernel::ALL.map(|k| k.heads_per_cta()), [1, 1, 2]);
        // A shared memo key would hand one entry another's smem or occupancy.
        let mut memos: Vec<&str> =
            DecodeKernel::ALL.iter().flat_map(|k| [k.names().smem_memo, k.names().occupancy_memo]).collect();
        memos.sort_unstable();
        memos.dedup();
        assert_eq!(memos.len(), 2 * DecodeKernel::ALL.len(), "{memos:?}");
    }
}
