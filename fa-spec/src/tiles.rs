//! Tile shapes of the portable (mma.sync) forward kernel, per head_dim.
//!
//! Kernel layout (templates/partials/fwd_mainloop.cuh): each warp owns
//! `block_m / num_warps` query rows (16 or 32); Q is staged in shared memory
//! (kept in registers when Q+O+S fragments fit), K/V tiles of `block_n` keys
//! are double-buffered with cp.async (stages = 1: one K and one V buffer,
//! FA2 order, for hd > 192); shared-memory rows are padded by 16 bytes
//! (conflict-free ldmatrix for every supported head_dim), or, for hd64, hd128
//! (sm_90a, sm_100a), hd192 and hd256 where it compiles without spills,
//! unpadded with an XOR swizzle (`swizzled` below: +2..10%).
//!
//! Measured on one H200 (2026-11, NVRTC 13.0, sm_90a, bf16, batch*seqlen =
//! 16384 tokens, hidden 2048, TFLOP/s at seqlen 4096 / 16384, dense):
//!
//! | head_dim | choice (m, n, warps, stages) | why (measured)                                            |
//! |----------|------------------------------|-----------------------------------------------------------|
//! | <= 64    | 128, 64, 4, 2                | 314 / 302 TF; 128x64x8: 228 / 233; 64x64x4: 266 / 252;    |
//! |          |                              | 128x32x4: 273 / 279; 3 stages: 309 / 309 (noise, +smem).  |
//! |          |                              | 245 regs, 0 spill. 32 rows/warp halves K/V smem reads.    |
//! | 80..128  | 128, 32, 4, 2                | hd128: 296 / 305 TF, 0 spill. 128x64x4: 296 / 306 but     |
//! |          |                              | spills 32 B (255 regs); 128x64x8: 274 / 278; 64x64x4:     |
//! |          |                              | 284 / 273; 3 stages: 300 / 304. hd96: 305 / 307;          |
//! |          |                              | hd96 128x64x8: 219 / 222.                                 |
//! | 129..192 | 128, 64, 8, 2                | hd192: 288 / 293; 128x32x8: 239/243; 64x64x4x1: 245 / 244 |
//! |          |                              | (spills 96 B: 24 chunks/row defeat the K/V pointer walk). |
//! | > 192    | 64, 64, 4, 1                 | hd256: see below (2 blocks/SM, 243 regs, 101 KiB smem,    |
//! |          |                              | 0 spill). Was 128x64x8x2: 273 / 279 TF, 1 block/SM (255   |
//! |          |                              | regs, 198 KiB); 128x32x8: 243 / 249; 64x64x4x2: 192 / 195 |
//! |          |                              | (169 KiB -> 1 block/SM). 32 rows/warp does not fit.       |
//!
//! hd256, ncu (H200, bf16 dense s=4096, same call as torch flash): torch runs
//! FA2 <256, 64, 64, 4> with single-buffered K/V (98 KiB) at 2 blocks/SM; our
//! 128x64x8x2 ran 1 block/SM, 28% issue-active vs 31%, tensor pipe 44% vs
//! 52%, and 12k of 26k long-scoreboard samples sat on the first K ldmatrix
//! after the cp.async wait (the whole SM waits at one barrier). Bank conflicts
//! are negligible (388k of 303M shared wavefronts). hd128 (ours 128x32x4x2 vs
//! FA2 <128, 128, 64, 4> 1 stage): tensor pipe 52% vs 57%, 686M vs 646M
//! instructions, 50M vs 42M ldmatrix, dispatch / short-scoreboard stalls 2x.
//! 64x64x4x1 (kStages = 1: FA2 order, K and V waited for separately) and the
//! K/V pointer walk (FA_KV_PTR_INC), same call as torch flash, TF ours / torch
//! at s = 2k, 4k, 8k, 16k (old 128x64x8x2 from the same call in brackets):
//!   bf16 dense  310/278 296/296 292/314 297/312  [271 277 282 284]
//!   bf16 causal 247/252 264/262 276/280 283/290  [226 243 257 291]
//!   f16  dense  302/265 288/294 289/299 290/306  [273 279 283 285]
//!   f16  causal 246/252 258/254 273/274 279/283  [226 243 258 283]
//! hd128 128x64x4x1 (same call, bf16): dense 344 348 337 340 (torch 336 330
//! 330 342; 128x32x4x2 302 310 318 317), 0 spill; causal 269 297 316 323 but
//! spilled 80 B on sm_90a. The mask is now one compare of a per-tile value
//! against compile-time offsets (mask.cuh), so the causal 128x64 cell no
//! longer spills on sm_90a and takes that tile: `fa bench`, H200, same call as
//! torch SDPA flash, bf16 causal s = 2k/4k/8k/16k: 289 312 330 337 TF vs torch
//! 274 293 304 306 (1.05-1.10); f16 1.07-1.10.
//! Tried for hd64/128/256 (same call): the cp.async L2 prefetch-size hints
//! (.L2::128B / .L2::256B): no gain, up to -16% (hd256 causal 2k); the
//! plain (no src-size) cp.async form for in-range rows: -1..-5%.
//! hd256 dense, the one cell family still below torch at 8k/16k (0.95-0.97):
//! under ncu's locked clocks ours is the faster (s=4k 2.21 vs 2.25 ms, 16k
//! 8.74 vs 8.92 ms), with the same LDGSTS / LDSM counts as FA2
//! <256, 64, 64, 4>, but L2 sees 2.85x the read requests and 1.64x the read
//! sectors (176M / 400M vs 62M / 244M at s=4k) and runs at 57% vs 35% of L2
//! throughput; the free-running gap at long seqlens may be that extra L2
//! traffic under the power limit. The cause was the 16-byte row pad: it
//! starts each shared-memory row 16 bytes off a 128-byte boundary, so a
//! warp's cp.async of one 128-byte global line lands in two 128-byte blocks.
//! FA2 keeps rows unpadded with an XOR swizzle (chunk c of row r at
//! c ^ (r % 8)); so does this kernel now at hd256 (and hd64 / hd192), which
//! took hd256 dense from 297-318 to 322-327 TF (s = 2k..16k, 1.03-1.10x
//! torch in the same call); see `swizzled`.
//!
//! Re-measured (H200, NVRTC 13.x, sm_90a, same call as torch SDPA FLASH,
//! TF ours / torch at s = 2k, 4k, 8k, 16k; bf16):
//!   hd64  dense 290/293 304/296 299/304 306/295; causal 254/249 276/270 289/286 295/296
//!   hd128 dense 317/338 311/339 317/333 314/338; causal 240/276 270/303 290/317 303/312
//!   hd256 dense 261/317 278/320 280/314 282/318; causal 215/267 242/283 256/291 288/292
//! Tried (same card): K/V in split cp.async groups (FA2 order): hd128 313/325
//! (s=4k/16k) vs 330/328, hd256 259/266 vs 278/282 -> off. Skipping the O
//! rescale when no row max moved: causal hd128 274/304 vs 262/272 (on for
//! causal 32-rows-per-warp tiles, hd > 64), dense / hd64 / hd256 -5..7% (off).
//! hd128 128x64x4 with the skip: 313/323 dense, still 32 B spill. hd256
//! 128x32x8 with Q in registers: 263/279 (s=2k/16k) vs 272/284.
//!
//! fp8 cells (fwd_mainloop_fp8.cuh, 1-byte rows): on sm_90a mma.sync fp8 is
//! lowered to f16 HMMA + F2FP unpacks (no native fp8 mma.sync; native fp8 is
//! wgmma only), so fp8 runs below the 16-bit kernel. e4m3 hd128 (H200):
//! 128x32x4: 260 / 268 TF dense s=2k/16k, causal 228 / 258 (28 B spill);
//! 128x64x4: 258 / 269, causal 216 / 247 (8 B spill); 128x64x8: 228 / 239,
//! causal 199 / 241 (0 spill). hd192 128x32x8 and hd256 64x64x4 are the
//! zero-spill shapes (128x64x8 spills 16 / 252 B); their speed is unmeasured.

//! Zero spills (NVRTC 13.5 -Xptxas -v) for every f16/bf16 cell of the
//! compile matrix (tests/tests/compile_matrix.rs), every arch: the hd128 tile
//! choice below follows what compiles without spills.

use crate::model::{Arch, KernelSpec};

/// How one thread block of the forward kernel tiles the problem.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TileConfig {
    /// Query rows per thread block.
    pub block_m: u32,
    /// Keys per main-loop step.
    pub block_n: u32,
    pub num_warps: u32,
    /// K/V shared-memory stages in the cp.async pipeline (>= 1; 1 = one K
    /// and one V buffer loaded in FA2 order, see fwd_mainloop.cuh).
    pub stages: u32,
    /// 16-bit cells: shared-memory rows unpadded, 16-byte chunk c of row r
    /// stored at c ^ (r % 8) (`kSwizzle` in fwd_mainloop.cuh) instead of
    /// rows padded by 16 bytes. Needs head_dim % 64 == 0.
    pub swizzle: bool,
}

impl TileConfig {
    pub fn threads(&self) -> u32 {
        self.num_warps * 32
    }

    /// Dynamic shared memory of one block: the Q tile plus `stages` K and V
    /// tiles. 16-bit cells: rows of `head_dim` elements padded by 8 elements
    /// (16 bytes) against ldmatrix bank conflicts; the Q tile is reused to
    /// stage O in the epilogue. Matches `kSmemStride` in fwd_mainloop.cuh.
    /// fp8 cells: rows of `head_dim` bytes padded to an odd multiple of 16
    /// bytes (`kSmemStride` in fwd_mainloop_fp8.cuh); the epilogue stages bf16
    /// O over the whole buffer, so it is at least `block_m` padded bf16 rows.
    pub fn smem_bytes(&self, spec: &KernelSpec) -> u32 {
        let d = spec.head_dim();
        if spec.dtype().is_fp8() {
            let row_bytes = if ((d + 16) / 16) % 2 == 1 { d + 16 } else { d + 32 };
            let tiles = (self.block_m + 2 * self.stages * self.block_n) * row_bytes;
            let o_stage = self.block_m * (d + 8) * 2;
            return tiles.max(o_stage);
        }
        const ELEM_BYTES: u32 = 2; // f16 / bf16
        let row_bytes = if self.swizzle { d } else { d + 8 } * ELEM_BYTES;
        (self.block_m + 2 * self.stages * self.block_n) * row_bytes
    }
}

/// Whether an hd128 16-bit cell takes the 128x64 single-buffered tile (see
/// `tile_config`): the cells where it compiles without register spills.
fn wide_hd128_tile(spec: &KernelSpec) -> bool {
    if spec.paged() {
        return false;
    }
    let plain = !spec.is_causal_masked() && !spec.alibi() && spec.softcap().is_none() && !spec.varlen();
    let sm90a = spec.arch() == Arch::Sm90a && spec.window().is_none() && spec.sink().is_none() && !spec.varlen();
    plain || sm90a
}

/// Whether the 16-bit forward kernel of `spec` keeps its shared-memory rows
/// unpadded and XOR-swizzled (`TileConfig::swizzle`).
fn swizzled(spec: &KernelSpec) -> bool {
    if spec.dtype().is_fp8() {
        return false;
    }
    // Measured (H200, bf16, same call as torch SDPA FLASH, TF/s at s = 2k /
    // 4k / 8k / 16k, padded -> swizzled):
    //   hd64  128x64x4x2 dense 299 301 299 300 -> 307 316 308 314,
    //                    causal 255 282 293 294 -> 266 291 300 297;
    //   hd192 128x64x8x2 dense 308 319 322 328 swizzled (padded, an earlier
    //                    session: 288 / 293 at s = 4k / 16k);
    //   hd256 64x64x4x1  dense 318 297 297 299 -> 327 323 325 322,
    //                    causal 255 278 280 294 -> 270 295 304 321.
    // The swizzled ldmatrix offsets take a few registers more, and at 255
    // registers that decides (NVRTC 13.5, -Xptxas -v, every arch):
    //   hd256: no spill with any feature tried;
    //   hd192: ALiBi spills 8-20 B off sm_90a -> padded there;
    //   hd64: window cells (sm_90a 4-16 B) and sm_100a masked cells (20 B)
    //     spill -> padded;
    //   hd128: the 128x64 tile on sm_90a / sm_100a, unless softcapped (8 B);
    //     sm_80 / sm_89 spill 64 B; the 128x32 tile is unmeasured.
    // (Unmasked GQA cells re-derive a few values per tile to stay clean,
    // kRederive in fwd_mainloop.cuh.)
    let arch = spec.arch();
    match spec.head_dim() {
        64 => spec.window().is_none() && !(arch == Arch::Sm100 && spec.is_causal_masked()),
        128 => wide_hd128_tile(spec) && matches!(arch, Arch::Sm90a | Arch::Sm100) && spec.softcap().is_none(),
        192 => !spec.alibi() || arch == Arch::Sm90a,
        256 => true,
        _ => false,
    }
}

/// The tile shape the forward kernel of `spec` is rendered and launched with:
/// the measured choice for its head_dim (table above), else the first smaller
/// fallback that fits the arch's shared memory (sm80: 163 KiB, sm89: 99 KiB;
/// fallbacks are not yet measured).
pub fn tile_config(spec: &KernelSpec) -> TileConfig {
    // (block_m, block_n, num_warps, stages)
    let candidates: &[(u32, u32, u32, u32)] = match (spec.dtype().is_fp8(), spec.head_dim()) {
        // fp8 (fwd_mainloop_fp8.cuh): 16 rows per warp; see the table above.
        (true, 0..=128) => &[(128, 32, 4, 2)],
        (true, 129..=192) => &[(128, 32, 8, 2)],
        (true, _) => &[(64, 64, 4, 2)],
        (false, 0..=64) => &[(128, 64, 4, 2), (64, 64, 4, 2)],
        // hd128 128x64x4 single-buffered (H200, bf16, s = 2k/4k/8k/16k, same
        // call as torch FA2 at 336/330/330/342): unmasked 344/348/337/340 vs
        // 302/310/318/317 for 128x32x4. It sits at 255 registers, so where it
        // is taken is decided by what compiles without spills (NVRTC 13.5,
        // -Xptxas -v; tests/tests/compile_matrix.rs holds the line):
        //   every arch: no mask, no ALiBi / softcap, not varlen, not paged;
        //   sm_90a also: causal (no window / sink), ALiBi, softcap. Spilling
        //     there: varlen (72 B with gqa 4, 88 B causal), window 72 B,
        //     paged 60 B -> 128x32.
        //   sm_80 causal spills 56 B and sm_100a causal 48 B -> 128x32.
        (false, 128) if wide_hd128_tile(spec) => &[(128, 64, 4, 1), (128, 32, 4, 2), (64, 32, 4, 2)],
        (false, 65..=128) => &[(128, 32, 4, 2), (64, 32, 4, 2)],
        (false, 129..=192) => &[(128, 64, 8, 2), (128, 32, 8, 2), (64, 32, 4, 2)],
        (false, _) => &[(64, 64, 4, 1), (128, 32, 8, 2), (64, 32, 4, 2)],
    };
    let max = spec.arch().max_smem_per_block();
    let swizzle = swizzled(spec);
    let tile = |&(block_m, block_n, num_warps, stages): &(u32, u32, u32, u32)| TileConfig {
        block_m,
        block_n,
        num_warps,
        stages,
        swizzle,
    };
    candidates
        .iter()
        .map(tile)
        .find(|t| t.smem_bytes(spec) <= max)
        .unwrap_or_else(|| tile(candidates.last().expect("non-empty")))
}

/// Whether a cell's rendered source carries the split-KV decode kernel
/// (`templates/partials/paged_decode.cuh`), which the runtime then runs for
/// one query token per sequence (`fa_runtime::paged::uses_decode`): every
/// paged cell but fp8 ones whose K/V rows are not whole 32-byte blocks
/// (e4m3 / e5m2 at hd80: 80-byte rows, an odd number of 16-byte chunks),
/// which decode through the forward kernel. The decode's fp8 math reads a
/// row 32 bytes (one ldmatrix x4 of 16 keys) at a time.
pub fn paged_decode(spec: &KernelSpec) -> bool {
    #[allow(clippy::manual_is_multiple_of)] // u32::is_multiple_of is newer than the MSRV (1.80)
    let whole_blocks = pd_row_bytes(spec) % 32 == 0;
    spec.paged() && whole_blocks
}

/// Bytes of one K/V row (a kv head of a token) in the cache.
fn pd_row_bytes(spec: &KernelSpec) -> u32 {
    spec.head_dim() * spec.dtype().size_bytes() as u32
}

/// Whether the decode's rows are 160 or 192 bytes (10 or 12 chunks: 16-bit
/// hd80 / hd96, fp8 hd192), which share 128-byte lines of the page with the
/// neighbouring heads; the template's tail / run swizzles serve those.
fn pd_split_lines(spec: &KernelSpec) -> bool {
    matches!(pd_row_bytes(spec), 160 | 192)
}

/// Warps of the paged decode kernel's CTA (`PD_WARPS` in
/// `templates/partials/paged_decode.cuh`, rendered from this): 4, each with
/// 16 keys of every 64-row tile, unless a 2-stage ring of those tiles (K and
/// V, 64 rows each) does not fit the arch's shared memory per block; then 2
/// warps and 32-row tiles. That is 16-bit hd256 on sm89 (2 × 2 × 64 × 512 B =
/// 128 KiB against 99 KiB), which otherwise could not decode at all. The
/// template asserts that its default rings fit, so a cell this rule gets
/// wrong fails to compile (tests/tests/compile_matrix.rs).
pub fn paged_decode_warps(spec: &KernelSpec) -> u32 {
    // The cp.async ring's rows are unpadded (but fp8 rows of 64 / 96 bytes,
    // padded by 16, far below the limit); with 160- or 192-byte rows a
    // stage holds 32 slots of 384 bytes (a token's two head rows), the bytes
    // of 64 rows of 192, or on sm90+ (one head a CTA) 64 slots of 256.
    let row_bytes = match pd_row_bytes(spec) {
        _ if pd_split_lines(spec) && spec.arch().compute_capability() >= 90 => 256,
        _ if pd_split_lines(spec) => 192,
        b => b,
    };
    if 2 * 2 * 64 * row_bytes > spec.arch().max_smem_per_block() {
        2
    } else {
        4
    }
}

/// Whether the paged decode's two-heads-per-CTA entry (`_decode_pair`,
/// `PD_PAIR_SPLITS` in `templates/partials/paged_decode.cuh`, rendered from
/// this) takes split-KV launches: rows of 160 or 192 bytes (16-bit hd80 /
/// hd96, fp8 hd192) on sm90+. There a kv head's rows split 128-byte lines
/// of the page between neighbouring heads, so one head per CTA reads more
/// lines per byte than a pair, whose two rows of a token are one run (three
/// whole lines of 192-byte rows; 2.5 of 160-byte rows, one line shared with
/// the next pair); `fa_runtime::paged::decode_layout` then pairs heads with
/// splits too. Elsewhere the pair is compiled for one split.
pub fn paged_pair_splits(spec: &KernelSpec) -> bool {
    pd_split_lines(spec) && spec.arch().compute_capability() >= 90
}
