#!/usr/bin/env python3
"""Where a decode launch spends its time, CTA by CTA (GPU machine).

Builds the bench cell with -DPD_TIMELINE (thread 0 of each CTA stamps
%globaltimer at entry, first tile ready, last tile ready, main loop done,
warps combined, output stored, merge counted, merge fenced, merge copies
issued, LSEs combined and merged; with dynamic slices, each warp's slice
count and when warp 0 found its group's counter dry) and prints, per case,
when the CTAs start, how long the first tile takes to arrive, how long the
main loops run and what the epilogue and the fused merge add at the end,
against the launch's event time and SDPA cuDNN on the contiguous cache.

  EXTRA="-DPD_LOAD_ONLY" python3 kernels-dev/paged/timeline.py
  RDIR=dir python3 kernels-dev/paged/timeline.py   # the cells rendered into dir
  CASES=1x131072x1x0,64x4096x2x0 ...               # batch x ctx x kv heads per CTA x splits (0: heuristic)
  DUMP=dir ...                                     # also write each case's raw stamps (ns, SM id) as JSON
  FLUSH=1 ...                                      # evict L2 before each launch (as fa bench --decode)
"""
import os, sys, json
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import harness as H


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * (len(xs) - 1) + 0.5))]


def summary(name, vals):
    return f"{name:28s} min {min(vals):7.2f}  median {pct(vals, 0.5):7.2f}  p90 {pct(vals, 0.9):7.2f}  max {max(vals):7.2f} us"


def main():
    import torch
    import torch.nn.functional as F
    from torch.nn.attention import sdpa_kernel, SDPBackend
    torch.zeros(1, device="cuda")
    H.RENDERED = os.environ.get("RDIR", H.RENDERED)   # another render of the cells (A/B)
    cells = {c["kernel_name"]: c for c in json.load(open(os.path.join(H.RENDERED, "cells.json")))}
    bc = cells[os.environ.get("CELL", "pd_bf16_hd128_g4_p16")]
    extra = ["-DPD_TIMELINE", *os.environ.get("EXTRA", "").split()]
    m = H.Module(bc, H.compile_cells([bc], extra=extra)[bc["kernel_name"] + "".join(extra)], torch)
    cu = m.cu
    err, tl_ptr, tl_size = cu.cuModuleGetGlobal(m.mod, b"pd_timeline")
    assert err == cu.CUresult.CUDA_SUCCESS, err
    sm = torch.cuda.get_device_properties(0).multi_processor_count
    KVH, d = 8, bc["head_dim"]
    Hq = KVH * bc["gqa"]
    copy_bw = H.copy_bandwidth(torch)
    H.log(f"copy {copy_bw / 1e9:.0f} GB/s, {' '.join(extra)}, {m.describe()}")
    # (batch, ctx, kv heads per CTA, splits or 0 for the runtime's choice)
    cases = [tuple(int(v) for v in s.split("x")) for s in os.environ.get("CASES", "1x131072x1x0,64x4096x2x0").split(",")]
    for B, ctx, hc, splits in cases:
        prob = H.Problem(torch, bc, [ctx] * B, KVH, fill_nan=False, seed=3, bt_pad=0)
        s = splits or H.runtime_splits(B, KVH, ctx, sm, m, hc)
        o, lse, oacc, lacc = prob.buffers(s)
        P = prob.params(o, lse, oacc, lacc, s, hc, fused=True)
        t = H.time_fn(torch, lambda: m.decode(P), iters=50)
        kvbytes = 2 * B * ctx * KVH * d * 2 + 2 * B * Hq * d * 2
        tl = torch.zeros(tl_size // 8, dtype=torch.int64, device="cuda")
        n = s * ((KVH + hc - 1) // hc) * B
        for _ in range(3):   # a few recorded launches; the last one is read back
            torch.cuda.synchronize()
            cu.cuMemsetD8(tl_ptr, 0, tl_size)
            cu.cuCtxSynchronize()
            H.flush_l2(torch)
            m.decode(P)
        torch.cuda.synchronize()
        cu.cuMemcpyDtoD(tl.data_ptr(), tl_ptr, tl_size)
        torch.cuda.synchronize()
        st = tl.view(-1, 16)[:n].cpu().tolist()
        t0 = min(r[0] for r in st)
        if os.environ.get("DUMP"):   # raw stamps (CTA index = group + groups * (split + splits * sequence))
            with open(os.path.join(os.environ["DUMP"], f"tl_{B}x{ctx}x{hc}x{s}.json"), "w") as fh:
                json.dump({"splits": s, "stamps": [[v - t0 if i not in (6, 14) and v else v for i, v in enumerate(r)] for r in st]}, fh)
        us = lambda v: (v - t0) / 1e3
        H.log(f"== B={B} ctx={ctx} hc={hc} splits={s}: {n} CTAs, event time {t * 1e6:.1f} us "
              f"({100 * kvbytes / t / copy_bw:.1f}% of copy)")
        H.log(summary("start", [us(r[0]) for r in st]))
        H.log(summary("first tile ready (from start)", [(r[1] - r[0]) / 1e3 for r in st if r[1]]))
        H.log(summary("main loop done", [us(r[2]) for r in st]))
        H.log(summary("loop: first to last tile", [(r[7] - r[1]) / 1e3 for r in st if r[1] and r[7]]))
        H.log(summary("last tile to loop done", [(r[2] - r[7]) / 1e3 for r in st if r[7]]))
        H.log(summary("combined (after loop done)", [(r[10] - r[2]) / 1e3 for r in st]))
        H.log(summary("stored (after combined)", [(r[3] - r[10]) / 1e3 for r in st]))
        if s > 1:
            H.log(summary("counted (after stored)", [(r[4] - r[3]) / 1e3 for r in st if r[4]]))
            merged = [r for r in st if r[5]]
            H.log(summary("merge (after counted)", [(r[5] - r[4]) / 1e3 for r in merged]))
            H.log(summary("  fence (after counted)", [(r[8] - r[4]) / 1e3 for r in merged]))
            H.log(summary("  issued (after fence)", [(r[12] - r[8]) / 1e3 for r in merged]))
            H.log(summary("  LSEs (after issued)", [(r[9] - r[12]) / 1e3 for r in merged]))
            H.log(summary("  partials (after LSEs)", [(r[5] - r[9]) / 1e3 for r in merged]))
        if any(r[15] for r in st):   # dynamic slices: when each group's counter ran dry, slices per SM
            groups = (KVH + hc - 1) // hc
            dry = [min(us(r[15]) for i, r in enumerate(st) if r[15] and i % groups == g0) for g0 in range(groups)]
            H.log(f"group counters dry at {' '.join(f'{v:.1f}' for v in dry)} us")
            per_sm = {}
            for r in st:
                per_sm[r[6]] = per_sm.get(r[6], 0) + sum((r[14] >> (16 * w)) & 0xffff for w in range(4))
            v = sorted(per_sm.values())
            H.log(f"16-token slices per SM: min {v[0]} median {v[len(v) // 2]} max {v[-1]}")
        ends = [us(max(r[2], r[3], r[4], r[5])) for r in st]
        H.log(summary("CTA end", ends))
        first, last = pct([us(r[1]) for r in st if r[1]], 0.5), pct([us(r[7]) for r in st if r[7]], 0.5)
        H.log(f"kernel span (first start to last end) {max(ends):.2f} us; bytes / (median last tile - median first tile) "
              f"{kvbytes / ((last - first) * 1e-6) / 1e9:.0f} GB/s")
        q4, kd, vd = H.sdpa_inputs(prob)
        del prob
        torch.cuda.empty_cache()
        with sdpa_kernel([SDPBackend.CUDNN_ATTENTION]):
            tc = H.time_fn(torch, lambda: F.scaled_dot_product_attention(q4, kd, vd, enable_gqa=True), iters=50)
        H.log(f"SDPA cudnn {tc * 1e6:.1f} us")
        del kd, vd, q4
        torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
