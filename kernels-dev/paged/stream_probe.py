#!/usr/bin/env python3
"""How fast can the decode's K/V bytes be read at all, by access pattern? (GPU machine)

Plain 16-byte loads (8 in flight per thread, 256 threads, results folded so the
loads stay), over the 64 x 4096 bench case: 64 sequences x 512 pages of 32 KB
(256 K pages + 256 V pages, [page 16, kv heads 8, d 128] bf16 = 1.07 GB):
  rows      a CTA reads one kv head: 16 rows of 256 B at 2 KB stride per page
  hnd4k     head-major pages: one 4 KB run per page and head
  page      a CTA reads whole 32 KB pages (all kv heads)
each with pages shuffled or in order; cuDNN SDPA on the contiguous cache and
a device copy in the same process.

  python3 stream_probe.py align   # only TMA bulk copies by piece size (128 B -
                                  # 2 KB) and shared-memory destination alignment
  python3 stream_probe.py cpasync # only 16-byte cp.async rings (XOR-swizzled rows, 32 / 16 KB
                                  # stages) and plain loads by CTAs per SM
  python3 stream_probe.py pair    # only per-warp cp.async rings of 512-byte rows (the
                                  # pair decode's reads) by warps a CTA, and cuDNN
  python3 stream_probe.py pairkv  # those rings against the pair decode's own pattern
                                  # (a warp's 256-byte K and V rows of one head), and cuDNN
  python3 stream_probe.py pair96  # the hd96 pair decode's 384-byte runs, all lanes or a
                                  # token an instruction, by shared-memory layout, and cuDNN at hd96
  python3 stream_probe.py pair80  # the hd80 pair decode's 320-byte runs by shared-memory
                                  # layout, and cuDNN at hd80
"""
import os, sys, json, ctypes
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import harness as H

SRC = r"""
extern "C" __global__ void __launch_bounds__(256)
rd(const unsigned char* base, const int* bt, int bt_stride, int pages_per_split, int nsub, int sub_off,
   int lg_chunks_row, int lg_rows, int row_stride, int page_bytes, unsigned* out) {
    const int sub = blockIdx.x % nsub, split = blockIdx.x / nsub, seq = blockIdx.y;
    const int lg_page = lg_chunks_row + lg_rows;
    const int total = pages_per_split << lg_page;
    const int* tb = bt + seq * bt_stride + split * pages_per_split;
    unsigned acc = 0;
    for (int i0 = threadIdx.x; i0 < total; i0 += 256 * 8) {
        unsigned v[8][4];
#pragma unroll
        for (int u = 0; u < 8; ++u) {
            const int i = i0 + u * 256;
            v[u][0] = v[u][1] = v[u][2] = v[u][3] = 0u;
            if (i < total) {
                const int pg = i >> lg_page, rem = i & ((1 << lg_page) - 1);
                const int row = rem >> lg_chunks_row, c = rem & ((1 << lg_chunks_row) - 1);
                const unsigned char* p = base + (long long)tb[pg] * page_bytes + sub * sub_off + row * row_stride + c * 16;
                asm volatile("ld.global.nc.L1::no_allocate.v4.b32 {%0, %1, %2, %3}, [%4];"
                             : "=r"(v[u][0]), "=r"(v[u][1]), "=r"(v[u][2]), "=r"(v[u][3]) : "l"(p));
            }
        }
#pragma unroll
        for (int u = 0; u < 8; ++u) acc ^= v[u][0] ^ v[u][1] ^ v[u][2] ^ v[u][3];
    }
    if (acc == 0x9e3779b9u) out[blockIdx.y] = acc;
}

// TMA bulk-copy streaming into a ring of `stages` x `stage_rows` rows of `rowb`
// bytes (row r of a page at r * row_stride, sub-block sub * sub_off); nothing
// reads the data: the ceiling of a bulk-copy pipeline of this depth. sync = 1
// adds a __syncthreads per tile (as a consumer would).
extern "C" __global__ void __launch_bounds__(128)
tma(const unsigned char* base, const int* bt, int bt_stride, int pages_per_split, int nsub, int sub_off,
    int rowb, int rows_per_page, int row_stride, int page_bytes, int stages, int stage_rows, int sync, int dpad) {
    extern __shared__ __align__(128) unsigned char sm[];
    const int sub = blockIdx.x % nsub, split = blockIdx.x / nsub, seq = blockIdx.y;
    const int* tb = bt + seq * bt_stride + split * pages_per_split;
    const int tiles = pages_per_split * rows_per_page / stage_rows;
    const unsigned sbase = (unsigned)__cvta_generic_to_shared(sm);
    const int drow = rowb + dpad;   // shared-memory row stride (dpad: destination misalignment)
    const unsigned bars = (sbase + stages * stage_rows * drow + 7) / 8 * 8;
    const int tid = threadIdx.x;
    if (tid < stages) {
        asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;" :: "r"(bars + tid * 8), "r"(128) : "memory");
        asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
    }
    __syncthreads();
    unsigned long long pol;
    asm volatile("createpolicy.fractional.L2::evict_first.b64 %0, 1.0;" : "=l"(pol));
    auto issue = [&](int t) {
        const int st = t % stages;
        const unsigned bar = bars + st * 8;
        int nmine = 0;
        for (int r = tid; r < stage_rows; r += 128) ++nmine;
        if (nmine) asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" :: "r"(bar), "r"(nmine * rowb) : "memory");
        for (int r = tid; r < stage_rows; r += 128) {
            const int gr = t * stage_rows + r;
            const int pg = gr / rows_per_page, row = gr % rows_per_page;
            const unsigned char* src = base + (long long)tb[pg] * page_bytes + sub * sub_off + row * row_stride;
            const unsigned dst = sbase + (st * stage_rows + r) * drow;
            asm volatile("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes.L2::cache_hint [%0], [%1], %2, [%3], %4;"
                         :: "r"(dst), "l"(src), "r"(rowb), "r"(bar), "l"(pol) : "memory");
        }
        if (!nmine) asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];" :: "r"(bar) : "memory");
    };
    for (int t = 0; t < stages && t < tiles; ++t) issue(t);
    for (int t = 0; t < tiles; ++t) {
        const unsigned bar = bars + (t % stages) * 8;
        const unsigned par = (t / stages) & 1;
        unsigned done = 0;
        while (!done)
            asm volatile("{ .reg .pred P; mbarrier.try_wait.parity.shared::cta.b64 P, [%1], %2; selp.u32 %0, 1, 0, P; }"
                         : "=r"(done) : "r"(bar), "r"(par) : "memory");
        if (sync) __syncthreads();
        if (t + stages < tiles) issue(t + stages);
    }
}

// 16-byte cp.async streaming into a ring of `stages` x `srows` rows of 256
// bytes (the "rows" pattern: 16 lanes per row, 2 rows per warp instruction;
// srows = 128: 32 KB stages) by the CTA's 64-256 threads; stages - 1 tiles
// in flight, wait_group + __syncthreads per tile, as a cp.async consumer would.
template <int STAGES>
__device__ void cpa_ring(const unsigned char* base, const int* bt, int bt_stride, int pages_per_split, int nsub, int sub_off,
                         int row_stride, int page_bytes, int srows, int zfill) {
    extern __shared__ __align__(128) unsigned char sm[];
    const int sub = blockIdx.x % nsub, split = blockIdx.x / nsub, seq = blockIdx.y;
    const int* tb = bt + seq * bt_stride + split * pages_per_split;
    const int tiles = pages_per_split * 16 / srows;   // srows rows of 256 B per tile, 16 rows per page
    const unsigned sbase = (unsigned)__cvta_generic_to_shared(sm);
    const int tid = threadIdx.x;
    auto issue = [&](int t) {
        const unsigned st = sbase + (t % STAGES) * srows * 256;
#pragma unroll 8
        for (int u = 0; u < srows * 16 / (int)blockDim.x; ++u) {
            const int i = u * blockDim.x + tid, r = i >> 4, c = i & 15;
            const int gr = t * srows + r;
            const unsigned char* src = base + (long long)tb[gr >> 4] * page_bytes + sub * sub_off + (gr & 15) * row_stride + c * 16;
            if (zfill)   // the src-size (zero-fill) form, as a masked loader issues it
                asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;" :: "r"(st + r * 256 + ((c ^ (r & 7)) << 4)), "l"(src), "r"(16) : "memory");
            else
                asm volatile("cp.async.cg.shared.global [%0], [%1], 16;" :: "r"(st + r * 256 + ((c ^ (r & 7)) << 4)), "l"(src) : "memory");
        }
    };
    for (int t = 0; t < STAGES - 1; ++t) {
        if (t < tiles) issue(t);
        asm volatile("cp.async.commit_group;" ::: "memory");
    }
    for (int t = 0; t < tiles; ++t) {
        asm volatile("cp.async.wait_group %0;" :: "n"(STAGES - 2) : "memory");
        __syncthreads();
        if (t + STAGES - 1 < tiles) issue(t + STAGES - 1);
        asm volatile("cp.async.commit_group;" ::: "memory");
    }
}
#define CPA(n) extern "C" __global__ void __launch_bounds__(256) \
cpa##n(const unsigned char* base, const int* bt, int bt_stride, int pages_per_split, int nsub, int sub_off, \
       int row_stride, int page_bytes, int srows, int zfill) { \
    cpa_ring<n>(base, bt, bt_stride, pages_per_split, nsub, sub_off, row_stride, page_bytes, srows, zfill); }
CPA(2) CPA(3) CPA(4) CPA(5) CPA(6) CPA(7) CPA(8) CPA(10)

// Drives a warp's cp.async ring: issue(t) (which skips t past the end) for
// tiles 0 .. n - 1, STAGES - 1 ahead, waiting only for this warp's copies.
template <int STAGES, class Issue>
__device__ void warp_ring_run(int n, Issue issue) {
    for (int t = 0; t < STAGES - 1; ++t) { issue(t); asm volatile("cp.async.commit_group;" ::: "memory"); }
    for (int t = 0; t < n; ++t) {
        asm volatile("cp.async.wait_group %0;" :: "n"(STAGES - 2) : "memory");
        __syncwarp();
        issue(t + STAGES - 1);
        asm volatile("cp.async.commit_group;" ::: "memory");
    }
}

// Per-warp 16-byte cp.async rings over 512-byte rows (two kv heads of a token,
// as _decode_pair reads them): warp w of the CTA takes pages w, w + nw, ...
// of its sequence, 16 rows (8 KB) a stage, one row per warp instruction, XOR
// swizzle by row; it waits only for its own copies (wait_group, __syncwarp),
// as the decode's warps do. Nothing reads the data.
template <int STAGES>
__device__ void warp_ring(const unsigned char* base, const int* bt, int bt_stride, int npages, int nsub, int sub_off,
                          int row_stride, int page_bytes) {
    extern __shared__ __align__(128) unsigned char sm[];
    const int sub = blockIdx.x % nsub, seq = blockIdx.y;
    const int* tb = bt + seq * bt_stride;
    const int nw = blockDim.x >> 5, w = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const unsigned wbase = (unsigned)__cvta_generic_to_shared(sm) + w * STAGES * 8192;
    const int mine = (npages - w + nw - 1) / nw;   // pages of this warp
    auto issue = [&](int t) {
        if (t >= mine) return;
        const unsigned char* pg = base + (long long)tb[w + t * nw] * page_bytes + sub * sub_off + lane * 16;
        const unsigned st = wbase + (t % STAGES) * 8192;
#pragma unroll
        for (int r = 0; r < 16; ++r)
            asm volatile("cp.async.cg.shared.global [%0], [%1], 16;" :: "r"(st + r * 512 + ((lane ^ (r & 7)) << 4)), "l"(pg + r * row_stride) : "memory");
    };
    warp_ring_run<STAGES>(mine, issue);
}
// The pair decode's own copy pattern: 4 warps a CTA, warp w reads head w & 1
// of its kv head pair (blockIdx.x % nsub) for tokens 16 (w >> 1) .. + 15 of
// each 32-token tile, K rows from the K page and V rows from the V page (V
// pages are the second half of the sequence's table), 256-byte rows, 16 lanes
// a row, two rows per instruction; a stage is 4 KB of K and 4 KB of V.
// SAME: as the decode's caches, one table entry per page for both, V at the
// K page's block in a second cache (the buffer's second half, v_off bytes on);
// the table is then [batch, npages / 2].
// LAG > 0: a stage holds K of tile t and V of tile t - LAG (so that the K and
// V rows in flight together are not those of one token: with SAME they sit
// at one offset of two caches).
template <int STAGES, bool SAME, int LAG>
__device__ void kv_ring(const unsigned char* base, const int* bt, int bt_stride, int npages, int nsub, int sub_off,
                        int row_stride, int page_bytes, long long v_off) {
    extern __shared__ __align__(128) unsigned char sm[];
    const int sub = blockIdx.x % nsub, seq = blockIdx.y;
    const int* tb = bt + seq * bt_stride;
    const int w = threadIdx.x >> 5, lane = threadIdx.x & 31, hh = w & 1, kb = (w >> 1) & 1;
    const int half = npages / 2, tiles = half / 2;
    const unsigned wbase = (unsigned)__cvta_generic_to_shared(sm) + w * STAGES * 8192;
    const int c = lane & 15, rp = lane >> 4;
    const long long off = (long long)sub * sub_off + hh * 256 + c * 16;
    auto issue = [&](int t) {
        const unsigned st = wbase + (t % STAGES) * 8192;
        if (t < tiles) {
            const unsigned char* kp = base + (long long)tb[2 * t + kb] * page_bytes + off;
#pragma unroll
            for (int i = 0; i < 8; ++i) {
                const int r = 2 * i + rp;
                asm volatile("cp.async.cg.shared.global [%0], [%1], 16;" :: "r"(st + r * 256 + ((c ^ (r & 7)) << 4)), "l"(kp + r * row_stride) : "memory");
            }
        }
        const int tv = t - LAG;
        if (tv >= 0 && tv < tiles) {
            const unsigned char* vp = SAME ? base + (long long)tb[2 * tv + kb] * page_bytes + off + v_off
                                           : base + (long long)tb[half + 2 * tv + kb] * page_bytes + off;
#pragma unroll
            for (int i = 0; i < 8; ++i) {
                const int r = 2 * i + rp;
                asm volatile("cp.async.cg.shared.global [%0], [%1], 16;" :: "r"(st + 4096 + r * 256 + ((c ^ (r & 7)) << 4)), "l"(vp + r * row_stride) : "memory");
            }
        }
    };
    warp_ring_run<STAGES>(tiles + LAG, issue);
}
#define KVR(n, same, lag, nm) extern "C" __global__ void __launch_bounds__(128) \
nm##n(const unsigned char* base, const int* bt, int bt_stride, int npages, int nsub, int sub_off, int row_stride, int page_bytes, \
      long long v_off) { \
    kv_ring<n, same, lag>(base, bt, bt_stride, npages, nsub, sub_off, row_stride, page_bytes, v_off); }
KVR(2, false, 0, kvr) KVR(3, false, 0, kvr) KVR(2, true, 0, kvs) KVR(2, true, 1, kvl) KVR(2, true, 4, kvm)
// hd96 pairs (the pair decode at 64 x 4096, bf16 hd96): a token's two head
// rows are one 384-byte run (24 chunks) at pair offset sub * 384 of a
// 1536-byte token row; warp w copies tokens 16 (w >> 1) + 8 (w & 1) .. + 7 of
// each 32-token tile, K and V (at one block of two caches, v_off apart).
// PACKED: the warp's 192 chunks of K (and of V) in 6 full instructions;
// else one token's run an instruction (24 lanes, 8 instructions), as the
// decode's joint copy does, into shared memory by LAYOUT: 0 the run as it
// is; 1 each head's rows together (32-token halves of the stage), chunks
// tail-swizzled (the decode's pd_chunk for 12 chunks); 2 the run with its
// chunks XORed by token within each 128-byte segment.
template <bool PACKED, int STAGES, int LAYOUT = 0>
__device__ void pair96_ring(const unsigned char* base, const int* bt, int bt_stride, int npages, int nsub, int sub_off,
                            int row_stride, int page_bytes, long long v_off) {
    extern __shared__ __align__(128) unsigned char sm[];
    const int sub = blockIdx.x % nsub, seq = blockIdx.y;
    const int* tb = bt + seq * bt_stride;
    const int w = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int tiles = npages / 4;   // npages: K pages + V pages (of 16 tokens); 32-token tiles
    const unsigned wbase = (unsigned)__cvta_generic_to_shared(sm) + w * STAGES * 6144;
    auto issue = [&](int t) {
        if (t >= tiles) return;
        const unsigned char* kp = base + (long long)tb[2 * t + (w >> 1)] * page_bytes + sub * sub_off + (w & 1) * 8 * row_stride;
        const unsigned st = wbase + (t % STAGES) * 6144;
        if (PACKED) {
#pragma unroll
            for (int i = 0; i < 6; ++i) {
                const int ch = i * 32 + lane, tok = ch / 24, c = ch % 24;
                const unsigned char* src = kp + tok * row_stride + c * 16;
                asm volatile("cp.async.cg.shared.global [%0], [%1], 16;" :: "r"(st + ch * 16), "l"(src) : "memory");
                asm volatile("cp.async.cg.shared.global [%0], [%1], 16;" :: "r"(st + 3072 + ch * 16), "l"(src + v_off) : "memory");
            }
        } else {
#pragma unroll
            for (int tok = 0; tok < 8; ++tok)
                if (lane < 24) {
                    const unsigned char* src = kp + tok * row_stride + lane * 16;
                    const int key = (w & 1) * 8 + tok, hh = lane / 12, c = lane % 12;   // (token of the warp's 16-token slice)
                    unsigned d;
                    if (LAYOUT == 1) {
                        const int pc = c < 8 ? ((c ^ (key & 7)) - 12 * key) & 7 : 8 + ((c - 8) ^ ((key >> 1) & 3));
                        d = (hh * 8 + tok) * 192 + pc * 16;   // (this warp's 8 tokens: 16 rows of the warp's 3 KB)
                    } else if (LAYOUT == 2) {
                        d = tok * 384 + (lane & ~7) * 16 + ((lane & 7) ^ (key & 7)) * 16;
                    } else {
                        d = (tok * 24 + lane) * 16;
                    }
                    asm volatile("cp.async.cg.shared.global [%0], [%1], 16;" :: "r"(st + d), "l"(src) : "memory");
                    asm volatile("cp.async.cg.shared.global [%0], [%1], 16;" :: "r"(st + 3072 + d), "l"(src + v_off) : "memory");
                }
        }
    };
    warp_ring_run<STAGES>(tiles, issue);
}
// hd80 pairs (f16 hd80, 8 kv heads, pages of 16): a token's two head rows are
// one 320-byte run (20 chunks) at pair offset sub * 320 of a 1280-byte token
// row, one token's run an instruction (20 lanes), into shared memory by
// LAYOUT: 0 runs back to back (320 bytes a token); 1 each head's rows
// together, tail-swizzled (the decode's pd_chunk for 10 chunks); 3 a
// 384-byte slot a token with the run at the page's offset mod 128 (64 bytes
// on for odd pairs), so that each 128-byte line of the page fills one
// segment of shared memory.
template <int LAYOUT>
__device__ void pair80_ring(const unsigned char* base, const int* bt, int bt_stride, int npages, int nsub, int sub_off,
                            int row_stride, int page_bytes, long long v_off) {
    constexpr int STAGES = 3, WB = 8 * 384 * 2;   // a warp's stage: 8 tokens of K and V (384-byte slots)
    extern __shared__ __align__(128) unsigned char sm[];
    const int sub = blockIdx.x % nsub, seq = blockIdx.y;
    const int* tb = bt + seq * bt_stride;
    const int w = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int tiles = npages / 4;
    const unsigned wbase = (unsigned)__cvta_generic_to_shared(sm) + w * STAGES * WB;
    auto issue = [&](int t) {
        if (t >= tiles) return;
        const unsigned char* kp = base + (long long)tb[2 * t + (w >> 1)] * page_bytes + sub * sub_off + (w & 1) * 8 * row_stride;
        const unsigned st = wbase + (t % STAGES) * WB;
#pragma unroll
        for (int tok = 0; tok < 8; ++tok)
            if (lane < 20) {
                const unsigned char* src = kp + tok * row_stride + lane * 16;
                const int key = (w & 1) * 8 + tok, hh = lane / 10, c = lane % 10;
                unsigned d;
                if (LAYOUT == 1) {
                    const int pc = c < 8 ? ((c ^ (key & 7)) - 10 * key) & 7 : 8 + ((c - 8) ^ ((key >> 2) & 1));
                    d = (hh * 8 + tok) * 160 + pc * 16;
                } else if (LAYOUT == 3) {
                    const int q = (sub & 1) * 4 + lane;
                    d = tok * 384 + ((q & ~7) | ((q & 7) ^ (key & 7))) * 16;
                } else {
                    d = (tok * 20 + lane) * 16;
                }
                asm volatile("cp.async.cg.shared.global [%0], [%1], 16;" :: "r"(st + d), "l"(src) : "memory");
                asm volatile("cp.async.cg.shared.global [%0], [%1], 16;" :: "r"(st + WB / 2 + d), "l"(src + v_off) : "memory");
            }
    };
    warp_ring_run<STAGES>(tiles, issue);
}
#define P80(lay) extern "C" __global__ void __launch_bounds__(128) \
p80l##lay(const unsigned char* base, const int* bt, int bt_stride, int npages, int nsub, int sub_off, int row_stride, int page_bytes, \
          long long v_off) { pair80_ring<lay>(base, bt, bt_stride, npages, nsub, sub_off, row_stride, page_bytes, v_off); }
P80(0) P80(1) P80(3)
#define P96(nm, packed, st, lay) extern "C" __global__ void __launch_bounds__(128) \
nm##st(const unsigned char* base, const int* bt, int bt_stride, int npages, int nsub, int sub_off, int row_stride, int page_bytes, \
       long long v_off) { pair96_ring<packed, st, lay>(base, bt, bt_stride, npages, nsub, sub_off, row_stride, page_bytes, v_off); }
P96(p96p, true, 3, 0) P96(p96j, false, 3, 0) P96(p96j, false, 2, 0) P96(p96j, false, 4, 0) P96(p96h, false, 3, 1) P96(p96x, false, 3, 2)
#define WR(n) extern "C" __global__ void __launch_bounds__(256) \
wr##n(const unsigned char* base, const int* bt, int bt_stride, int npages, int nsub, int sub_off, int row_stride, int page_bytes) { \
    warp_ring<n>(base, bt, bt_stride, npages, nsub, sub_off, row_stride, page_bytes); }
WR(2) WR(3) WR(4)
"""


def time_kernel(torch, cu, fn, grid, threads, smem, args):
    """Median time of `fn` launched on (grid[0], grid[1]) x `threads` with `smem`
    bytes of dynamic shared memory and the ctypes `args`: (seconds, CTAs per SM)."""
    argv = (ctypes.c_void_p * len(args))(*[ctypes.addressof(a) for a in args])
    occ = cu.cuOccupancyMaxActiveBlocksPerMultiprocessor(fn, threads, smem)[1]

    def launch():
        stream = cu.CUstream(torch.cuda.current_stream().cuda_stream)
        (e,) = cu.cuLaunchKernel(fn, grid[0], grid[1], 1, threads, 1, 1, smem, stream, ctypes.addressof(argv), 0)
        assert e == cu.CUresult.CUDA_SUCCESS, e
    return H.time_fn(torch, launch, iters=30), occ


def rd_args(buf, bt, NPG, PB, out, pattern):
    """ctypes arguments of the plain-load kernel `rd` for a `pats` entry."""
    nsub, soff, lcr, lr, rs, splits = pattern
    return [ctypes.c_void_p(buf.data_ptr()), ctypes.c_void_p(bt.data_ptr()), ctypes.c_int(NPG), ctypes.c_int(NPG // splits),
            ctypes.c_int(nsub), ctypes.c_int(soff), ctypes.c_int(lcr), ctypes.c_int(lr), ctypes.c_int(rs),
            ctypes.c_int(PB), ctypes.c_void_p(out.data_ptr())]


def time_tma(torch, cu, ft, buf, bt, B, NPG, PB, nsub, soff, rowb, rpp, rs, splits, stages, srows, sync, dpad, smem):
    """One launch shape of the `tma` ring kernel: (seconds, CTAs per SM)."""
    args = [ctypes.c_void_p(buf.data_ptr()), ctypes.c_void_p(bt.data_ptr()), ctypes.c_int(NPG), ctypes.c_int(NPG // splits),
            ctypes.c_int(nsub), ctypes.c_int(soff), ctypes.c_int(rowb), ctypes.c_int(rpp), ctypes.c_int(rs),
            ctypes.c_int(PB), ctypes.c_int(stages), ctypes.c_int(srows), ctypes.c_int(sync), ctypes.c_int(dpad)]
    return time_kernel(torch, cu, ft, (nsub * splits, B), 128, smem, args)


def align(torch, cu, mod, buf, bt, B, NPG, PB, total, copy_bw):
    """TMA bulk copies by piece size and shared-memory destination alignment
    (row stride = piece + dpad): 128 B (half a row), 256 B rows (one kv head), 1 KB (4 heads of a
    token), 2 KB (a token's 8 heads); 2 stages of ~32 KB, 3 CTAs/SM, with sync."""
    ft = cu.cuModuleGetFunction(mod, b"tma")[1]
    cu.cuFuncSetAttribute(ft, cu.CUfunction_attribute.CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, 227 * 1024)
    cfgs = [(rowb, nsub, soff, splits, dpad)
            for (rowb, nsub, soff, splits) in ((256, 8, 256, 4), (256, 8, 256, 16), (128, 16, 128, 2), (128, 16, 128, 8),
                                               (1024, 2, 1024, 16), (2048, 1, 0, 32))
            for dpad in (0, 16, 32, 64, 128)]
    for i, (rowb, nsub, soff, splits, dpad) in enumerate([cfgs[0]] + cfgs):   # (the first one twice: warm-up)
        srows, stages = 32 * 1024 // rowb, 2
        smem = stages * srows * (rowb + dpad) + 64   # the ring, then the mbarriers
        t, occ = time_tma(torch, cu, ft, buf, bt, B, NPG, PB, nsub, soff, rowb, 16, 2048, splits, stages, srows, 1, dpad, smem)
        if i > 0:
            H.log(f"TMA {rowb:4d} B pieces, smem row stride {rowb + dpad:4d} (+{dpad:3d}), grid {nsub * splits:3d}x{B}, "
                  f"{occ} CTAs/SM: {t * 1e6:7.1f} us {100 * total / t / copy_bw:5.1f}% of copy")


def cpasync(torch, cu, mod, buf, bt, B, NPG, PB, total, copy_bw):
    """16-byte cp.async rings (XOR-swizzled rows), the "rows" pattern: stages of
    32 KB (128 rows) or 16 KB (64 rows), so that bytes in flight per SM and
    stage size can be told apart."""
    cfgs = [(stages, 128, splits, 0, 128) for stages in (2, 3, 4, 6) for splits in (4, 16)] + [(2, 128, 4, 1, 128), (3, 128, 4, 1, 128)]
    cfgs += [(stages, 64, splits, 0, 128) for stages in (3, 4, 5, 7, 8, 10) for splits in (4, 16)]
    # the same rings issued by 2 or 8 warps a CTA: warps per SM against CTAs per SM
    cfgs += [(3, srows, 4, 0, threads) for srows in (128, 64) for threads in (64, 256)]
    for i, (stages, srows, splits, zfill, threads) in enumerate([cfgs[0]] + cfgs):   # (the first one twice: warm-up)
        fc = cu.cuModuleGetFunction(mod, f"cpa{stages}".encode())[1]
        cu.cuFuncSetAttribute(fc, cu.CUfunction_attribute.CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, 227 * 1024)
        kb = srows * 256 // 1024
        smem = stages * srows * 256
        args = [ctypes.c_void_p(buf.data_ptr()), ctypes.c_void_p(bt.data_ptr()), ctypes.c_int(NPG), ctypes.c_int(NPG // splits),
                ctypes.c_int(8), ctypes.c_int(256), ctypes.c_int(2048), ctypes.c_int(PB), ctypes.c_int(srows), ctypes.c_int(zfill)]
        t, occ = time_kernel(torch, cu, fc, (8 * splits, B), threads, smem, args)
        if i > 0:
            H.log(f"cp.async{' (zero-fill form)' if zfill else ''} {stages:2d} x {kb} KB stages ({stages - 1} in flight), {threads // 32} warps, grid {8 * splits:3d}x{B}, {occ} CTAs/SM "
                  f"({occ * (stages - 1) * kb:3d} KB in flight/SM): {t * 1e6:7.1f} us {100 * total / t / copy_bw:5.1f}% of copy")


def pair(torch, cu, mod, buf, bt, B, NPG, PB, total, copy_bw):
    """Per-warp cp.async rings over 512-byte rows (kv head pairs, 256 CTAs as
    _decode_pair at 64 x 4096), by warps a CTA and stages: what more
    copy-issuing warps per SM would give the pair decode."""
    cfgs = [(4, 2), (4, 3), (4, 2), (5, 2), (6, 2), (7, 2), (8, 2), (6, 3), (4, 4), (2, 2), (2, 4)]
    for i, (warps, stages) in enumerate([cfgs[0]] + cfgs):   # (the first one twice: warm-up)
        fc = cu.cuModuleGetFunction(mod, f"wr{stages}".encode())[1]
        cu.cuFuncSetAttribute(fc, cu.CUfunction_attribute.CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, 227 * 1024)
        smem = warps * stages * 8192
        args = [ctypes.c_void_p(buf.data_ptr()), ctypes.c_void_p(bt.data_ptr()), ctypes.c_int(NPG), ctypes.c_int(NPG),
                ctypes.c_int(4), ctypes.c_int(512), ctypes.c_int(2048), ctypes.c_int(PB)]
        t, occ = time_kernel(torch, cu, fc, (4, B), 32 * warps, smem, args)
        if i > 0:
            H.log(f"pair rows, {warps} warps x {stages} stages of 8 KB, grid 4x{B}, {occ} CTAs/SM "
                  f"({min(occ, 2) * warps} warps/SM busy): {t * 1e6:7.1f} us {100 * total / t / copy_bw:5.1f}% of copy")


def pair_kv(torch, cu, mod, buf, bt, B, NPG, PB, total, copy_bw):
    """The bare ring of 512-byte pair rows (wr: one stream a warp) against the
    pair decode's own pattern (kvr: a warp's K and V rows of one head, 256
    bytes each; kvs: K and V of a token at one block of two caches, as the
    decode reads them; kvl / kvm: those with V one / four tiles behind K), 4
    warps a CTA, 256 CTAs, alternating."""
    g = torch.Generator(device="cuda").manual_seed(2)
    half = B * NPG // 2   # pages of each cache (kvs)
    bt_same = torch.randperm(half, generator=g, device="cuda").to(torch.int32).view(B, NPG // 2).contiguous()
    for i, (fn_name, stages) in enumerate([("kvr", 2), ("kvr", 2), ("kvs", 2), ("kvl", 2), ("kvm", 2), ("kvs", 2), ("kvl", 2), ("kvr", 2), ("kvm", 2)]):
        fc = cu.cuModuleGetFunction(mod, f"{fn_name}{stages}".encode())[1]
        cu.cuFuncSetAttribute(fc, cu.CUfunction_attribute.CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, 227 * 1024)
        t_ = bt_same if fn_name in ("kvs", "kvl", "kvm") else bt
        args = [ctypes.c_void_p(buf.data_ptr()), ctypes.c_void_p(t_.data_ptr()), ctypes.c_int(t_.shape[1]), ctypes.c_int(NPG),
                ctypes.c_int(4), ctypes.c_int(512), ctypes.c_int(2048), ctypes.c_int(PB)]
        if fn_name != "wr":
            args.append(ctypes.c_longlong(half * PB))
        t, occ = time_kernel(torch, cu, fc, (4, B), 128, 4 * stages * 8192, args)
        if i > 0:
            H.log(f"{fn_name:3s} {stages} stages x 8 KB a warp, grid 4x{B}, {occ} CTAs/SM: {t * 1e6:7.1f} us {100 * total / t / copy_bw:5.1f}% of copy")


def pair_rings(torch, cu, mod, buf, B, NPG, copy_bw, d, runs, seed):
    """Times bare rings of a pair decode's reads at head dim d (64 x 4096, 8 kv
    heads, pages of 16; K and V at one block of two caches): `runs` are
    (kernel, label, dynamic shared memory bytes), the first a warm-up; then
    cuDNN on the contiguous cache."""
    g = torch.Generator(device="cuda").manual_seed(seed)
    page_bytes = 16 * 8 * d * 2
    half = B * NPG // 2
    bt_same = torch.randperm(half, generator=g, device="cuda").to(torch.int32).view(B, NPG // 2).contiguous()
    total = B * NPG * page_bytes
    for i, (name, label, smem) in enumerate(runs):
        fc = cu.cuModuleGetFunction(mod, name.encode())[1]
        cu.cuFuncSetAttribute(fc, cu.CUfunction_attribute.CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, 227 * 1024)
        args = [ctypes.c_void_p(buf.data_ptr()), ctypes.c_void_p(bt_same.data_ptr()), ctypes.c_int(NPG // 2), ctypes.c_int(NPG),
                ctypes.c_int(4), ctypes.c_int(4 * d), ctypes.c_int(16 * d), ctypes.c_int(page_bytes), ctypes.c_longlong(half * page_bytes)]
        t, occ = time_kernel(torch, cu, fc, (4, B), 128, smem, args)
        if i > 0:
            H.log(f"hd{d} pair rows, {label}, grid 4x{B}, {occ} CTAs/SM: {t * 1e6:7.1f} us {100 * total / t / copy_bw:5.1f}% of copy")
    t = cudnn_time(torch, B, d, torch.float16 if d == 80 else torch.bfloat16)
    H.log(f"SDPA cudnn hd{d} (contiguous): {t * 1e6:7.1f} us {100 * total / t / copy_bw:5.1f}% of copy")


def pair96(torch, cu, mod, buf, B, NPG, copy_bw):
    """The hd96 pair decode's reads: all 32 lanes an instruction (p96p) against
    one token's two rows an instruction (p96j, 24 lanes, as the decode's joint
    copy), by ring depth and CTAs per SM (extra shared memory lowers them)
    and by shared-memory layout (p96h head-major and tail-swizzled, p96x
    token runs XOR-swizzled)."""
    runs = [("p96j", 3, 0), ("p96j", 3, 0), ("p96h", 3, 0), ("p96x", 3, 0), ("p96p", 3, 0),
            ("p96j", 2, 0), ("p96j", 3, 24576), ("p96h", 3, 0), ("p96x", 3, 0), ("p96j", 3, 0)]
    pair_rings(torch, cu, mod, buf, B, NPG, copy_bw, 96,
               [(f"{n}{st}", f"{n} {st} stages x 6 KB a warp", 4 * st * 6144 + extra) for n, st, extra in runs], 3)


def pair80(torch, cu, mod, buf, B, NPG, copy_bw):
    """The hd80 pair decode's reads by shared-memory layout (see pair80_ring)."""
    pair_rings(torch, cu, mod, buf, B, NPG, copy_bw, 80,
               [(f"p80l{lay}", f"layout {lay}, 3 stages", 4 * 3 * 8 * 384 * 2) for lay in (0, 0, 1, 3, 1, 3, 0)], 4)


def cudnn_time(torch, B, d=128, dtype=None):
    """SDPA cuDNN on the contiguous [B, 8, 4096, d] cache (32 query heads)."""
    import torch.nn.functional as F
    from torch.nn.attention import sdpa_kernel, SDPBackend
    dtype = dtype or torch.bfloat16
    q = torch.randn(B, 32, 1, d, dtype=dtype, device="cuda")
    kd = torch.randn(B, 8, 4096, d, dtype=dtype, device="cuda")
    vd = torch.randn(B, 8, 4096, d, dtype=dtype, device="cuda")
    with sdpa_kernel([SDPBackend.CUDNN_ATTENTION]):
        return H.time_fn(torch, lambda: F.scaled_dot_product_attention(q, kd, vd, enable_gqa=True), iters=30)


# the decode's pattern (a CTA reads one kv head: 16 rows of 256 B at 2 KB
# stride per page): (nsub, sub_off, lg_chunks_row, lg_rows, row_stride, splits)
ROWS = (8, 256, 4, 4, 2048, 4)


def plain_by_occupancy(torch, cu, fn, buf, bt, B, NPG, PB, out, total, copy_bw):
    """Plain loads of the "rows" pattern with fewer CTAs per SM (dynamic shared
    memory as the limiter): the bytes in flight per SM it takes."""
    cu.cuFuncSetAttribute(fn, cu.CUfunction_attribute.CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, 200 * 1024)
    for occ in (2, 3, 4, 6, 8):
        smem = (228 * 1024) // occ - 1024 - 8 * 1024 if occ < 8 else 0
        nsub, splits = ROWS[0], ROWS[5]
        t, o2 = time_kernel(torch, cu, fn, (nsub * splits, B), 256, max(smem, 0), rd_args(buf, bt, NPG, PB, out, ROWS))
        H.log(f"shuffled rows, plain loads, {o2} CTAs/SM ({o2 * 32} KB in flight/SM): {t * 1e6:7.1f} us {100 * total / t / copy_bw:5.1f}% of copy")


def main():
    import torch
    import torch.nn.functional as F
    from torch.nn.attention import sdpa_kernel, SDPBackend
    from cuda.bindings import driver as cu
    torch.zeros(1, device="cuda")
    _, cub, lg = H._compile_worker((SRC, "rd", "sm_90a", ()))
    assert cub is not None, lg
    err, mod = cu.cuModuleLoadData(cub)
    fn = cu.cuModuleGetFunction(mod, b"rd")[1]
    B, NPG, PB = 64, 512, 32768
    buf = torch.randint(-1000, 1000, (B * NPG * PB // 2,), dtype=torch.int16, device="cuda")
    out = torch.zeros(B, dtype=torch.int32, device="cuda")
    g = torch.Generator(device="cuda").manual_seed(1)
    orders = {"in-order": torch.arange(B * NPG, dtype=torch.int32, device="cuda").view(B, NPG).contiguous(),
              "shuffled": torch.randperm(B * NPG, generator=g, device="cuda").to(torch.int32).view(B, NPG).contiguous()}
    copy_bw = H.copy_bandwidth(torch)
    total = B * NPG * PB
    H.log(f"copy {copy_bw / 1e9:.0f} GB/s; bytes read per pattern {total / 1e9:.3f} GB")
    if sys.argv[1:] == ["align"]:   # only the destination-alignment sweep
        return align(torch, cu, mod, buf, orders["shuffled"], B, NPG, PB, total, copy_bw)
    if sys.argv[1:] == ["pair"]:   # only the per-warp pair-row rings, and cuDNN
        for r in range(2):
            pair(torch, cu, mod, buf, orders["shuffled"], B, NPG, PB, total, copy_bw)
            H.log(f"SDPA cudnn (contiguous [B, KVH, ctx, d]): {cudnn_time(torch, B) * 1e6:7.1f} us")
        return
    if sys.argv[1:] == ["pairkv"]:   # the pair decode's K / V row pattern against one 512-byte stream, and cuDNN
        for r in range(2):
            pair_kv(torch, cu, mod, buf, orders["shuffled"], B, NPG, PB, total, copy_bw)
            H.log(f"SDPA cudnn (contiguous [B, KVH, ctx, d]): {cudnn_time(torch, B) * 1e6:7.1f} us")
        return
    if sys.argv[1:] == ["pair80"]:   # the hd80 pair decode's reads by shared-memory layout, and cuDNN at hd80
        for r in range(2):
            pair80(torch, cu, mod, buf, B, NPG, copy_bw)
        return
    if sys.argv[1:] == ["pair96"]:   # the hd96 pair decode's reads, packed or a token a copy, and cuDNN
        for r in range(2):
            pair96(torch, cu, mod, buf, B, NPG, copy_bw)
        return
    if sys.argv[1:] == ["cpasync"]:   # only the cp.async rings (and the plain-load ones to compare)
        cpasync(torch, cu, mod, buf, orders["shuffled"], B, NPG, PB, total, copy_bw)
        return plain_by_occupancy(torch, cu, fn, buf, orders["shuffled"], B, NPG, PB, out, total, copy_bw)
    # name: (nsub, sub_off, lg_chunks_row, lg_rows, row_stride, splits)
    pats = {"rows  (256 B x 16 @ 2 KB)": ROWS,
            "rows  splits 16": (8, 256, 4, 4, 2048, 16),
            "hnd4k (4 KB runs)": (8, 4096, 8, 0, 0, 4),
            "page  (32 KB pages)": (1, 0, 11, 0, 0, 32),
            "page  splits 8": (1, 0, 11, 0, 0, 8)}
    for oname, bt in orders.items():
        for pname, pat in pats.items():
            nsub, splits = pat[0], pat[5]
            t, _ = time_kernel(torch, cu, fn, (nsub * splits, B), 256, 0, rd_args(buf, bt, NPG, PB, out, pat))
            H.log(f"{oname:8s} {pname:28s} grid {nsub * splits:3d}x{B}: {t * 1e6:7.1f} us {total / t / 1e9:6.0f} GB/s {100 * total / t / copy_bw:5.1f}% of copy")
    plain_by_occupancy(torch, cu, fn, buf, orders["shuffled"], B, NPG, PB, out, total, copy_bw)
    ft = cu.cuModuleGetFunction(mod, b"tma")[1]
    cu.cuFuncSetAttribute(ft, cu.CUfunction_attribute.CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, 227 * 1024)
    bt = orders["shuffled"]
    # --- TMA bulk copies: rows of 256 B (the decode's pattern) or 4 KB (head-major runs)
    for (pat, rowb, rpp, rs, soff, nsub, splits) in (("rows", 256, 16, 2048, 256, 8, 4), ("rows", 256, 16, 2048, 256, 8, 16),
                                                      ("hnd4k", 4096, 1, 0, 4096, 8, 4)):
        for (stage_kb, stages, sync) in ((32, 2, 1), (32, 2, 0), (32, 3, 1), (32, 6, 1), (16, 4, 1), (16, 6, 1), (16, 13, 1), (8, 8, 1), (8, 24, 1), (4, 12, 1)):
            srows = stage_kb * 1024 // rowb
            if srows == 0 or (NPG // splits * rpp) % srows: continue
            smem = stages * stage_kb * 1024 + stages * 8   # the ring, then one mbarrier per stage
            if smem > 227 * 1024: continue
            t, o2 = time_tma(torch, cu, ft, buf, bt, B, NPG, PB, nsub, soff, rowb, rpp, rs, splits, stages, srows, sync, 0, smem)
            H.log(f"TMA {pat:5s} copy {rowb:4d} B, grid {nsub * splits:3d}x{B}, {stages:2d} x {stage_kb:2d} KB stages, sync {sync}, "
                  f"{o2} CTAs/SM ({o2 * stages * stage_kb} KB/SM): {t * 1e6:7.1f} us {100 * total / t / copy_bw:5.1f}% of copy")
    del buf
    torch.cuda.empty_cache()
    q = torch.randn(B, 32, 1, 128, dtype=torch.bfloat16, device="cuda")
    kd = torch.randn(B, 8, 4096, 128, dtype=torch.bfloat16, device="cuda")
    vd = torch.randn(B, 8, 4096, 128, dtype=torch.bfloat16, device="cuda")
    with sdpa_kernel([SDPBackend.CUDNN_ATTENTION]):
        t = H.time_fn(torch, lambda: F.scaled_dot_product_attention(q, kd, vd, enable_gqa=True), iters=30)
    H.log(f"SDPA cudnn (contiguous [B, KVH, ctx, d]): {t * 1e6:7.1f} us {total / t / 1e9:6.0f} GB/s {100 * total / t / copy_bw:5.1f}% of copy")


if __name__ == "__main__":
    main()
