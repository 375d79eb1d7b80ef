#!/usr/bin/env python3
"""Decode variants (-D flag sets, e.g. -DPD_TMA=1 -DPD_STAGES=2) against the default kernel (GPU machine).

  CHECKS="..;.." VARIANTS="..;.." python3 kernels-dev/paged/variant_exp.py   # correctness, timing + SDPA
  OLD_RENDERED=dir ... variant_exp.py    # also time another render of the bench cell (same params ABI and
                                         # grid (groups, splits, batch), i.e. rendered after the grid swap;
                                         # OLD_FUSED=1: with the merge inside _decode)
  VARIANTS="fused;..."                    # "fused" (not a -D flag): the merge inside _decode
  ncu --profile-from-start off ... variant_exp.py ncu   # one launch each: default, first variant, cuDNN (64 x 4096)

Correctness: every rendered cell under each CHECKS flag set against the
float64 reference of harness.py. Timing: batch x context cases of the issue
(SHAPES=, KVH= kv heads, 8) for the CELL= cell (default: the bf16 hd128 gqa-4 one),
splits around each kernel's own heuristic choice (and SPLITS=), HC= kv heads
per CTA (1: _decode, or 2: _decode_pair, the runtime's choice where the
kv heads are even and head dims 80 / 96 or no split is needed), each VARIANTS
flag set beside the default kernel and SDPA flash / cuDNN on the contiguous cache.
"""
import os, sys, json
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import harness as H

# variants: -D flag sets separated by ";" (CHECKS: correctness on every rendered cell; VARIANTS: timed)
CHECKS = [v.split() for v in os.environ.get("CHECKS", "-DPD_TMA=1").split(";") if v.strip()]
VARIANTS = [v.split() for v in os.environ.get("VARIANTS", "-DPD_TMA=1;-DPD_LOAD_ONLY").split(";") if v.strip()]


def flag(extra, name):
    """The value of the last -D<name>=v in a flag set, else None."""
    vals = [x.split("=", 1)[1] for x in extra if x.startswith(f"-D{name}=")]
    return vals[-1] if vals else None


def module(torch, c, extra):
    key = c["kernel_name"] + "".join(extra)
    warps = flag(extra, "PD_WARPS")
    m = H.Module(c, H.compile_cells([c], extra=extra)[key], torch, threads=32 * (int(warps) if warps else 4))
    pair_splits = flag(extra, "PD_PAIR_SPLITS")   # an override decides how _decode_pair may be launched
    if pair_splits is not None:
        m.pair_splits = pair_splits != "0"
    H.log(f"{key}: {m.describe()}")
    return m


def main():
    import torch
    import torch.nn.functional as F
    from torch.nn.attention import sdpa_kernel, SDPBackend
    ncu = len(sys.argv) > 1 and sys.argv[1] == "ncu"
    torch.zeros(1, device="cuda")
    cells = {c["kernel_name"]: c for c in json.load(open(os.path.join(H.RENDERED, "cells.json")))}
    bc = cells[os.environ.get("CELL", "pd_bf16_hd128_g4_p16")]   # the timed cell
    sm = torch.cuda.get_device_properties(0).multi_processor_count
    if not ncu:
        allok = True
        for ex in CHECKS:
            for name, c in cells.items():
                m = module(torch, c, ex)
                ok, worst = H.test_cell(torch, c, m)
                H.log(f"[{'PASS' if ok else 'FAIL'}] {name} {' '.join(ex)}: worst err/tol {worst:.3f}")
                allok &= ok
        H.log("VARIANTS ALL CORRECT" if allok else "SOME FAILED")
    variants = {"default": []}
    for ex in (VARIANTS[:1] if ncu else VARIANTS):
        variants[" ".join(ex)] = ex
    # "fused" in a flag set (not a -D flag): the merge inside _decode (merge_counters set)
    mods = {k: module(torch, bc, [x for x in ex if x != "fused"]) for k, ex in variants.items()}
    for k, ex in variants.items():
        mods[k].fused = "fused" in ex
    old = os.environ.get("OLD_RENDERED")   # a directory with an older render of the bench cell (A/B in one call)
    if old:
        src = open(os.path.join(old, bc["kernel_name"] + ".cu")).read()
        name, cub, lg = H._compile_worker((src, bc["kernel_name"], "sm_90a", ()))
        assert cub is not None, lg
        mods["previous"] = H.Module(bc, cub, torch)
        mods["previous"].fused = os.environ.get("OLD_FUSED") == "1"   # the merge inside _decode, as "fused"
        H.log(f"previous: {mods['previous'].describe()}")
    if not ncu:
        copy_bw = H.copy_bandwidth(torch)
        H.log(f"copy {copy_bw / 1e9:.0f} GB/s")
    hc = int(os.environ.get("HC", "1"))   # kv heads per CTA (1: _decode, 2: _decode_pair)
    shapes = [tuple(int(v) for v in s.split("x")) for s in os.environ.get("SHAPES", "64x4096,1x131072").split(",")]
    if ncu:
        shapes = shapes[:1]
    for B, ctx in shapes:
        KVH, d = int(os.environ.get("KVH", "8")), bc["head_dim"]   # KVH=: kv heads (8)
        Hq = KVH * bc["gqa"]
        prob = H.Problem(torch, bc, [ctx] * B, KVH, fill_nan=False, seed=3, bt_pad=0)
        kvbytes = 2 * B * ctx * KVH * d * prob.elem + B * Hq * d * (prob.elem + 2)
        for name, m in mods.items():
            hs = H.runtime_splits(B, KVH, ctx, sm, m, hc)   # as the runtime plans it
            extra = [int(x) for x in os.environ.get("SPLITS", "").split(",") if x.strip()]   # more split counts to time
            for s in ([hs] if ncu else sorted(H.split_counts(m, hc, {hs, max(1, hs - 1), hs + 1, *extra}))):
                o, lse, oacc, lacc = prob.buffers(s)
                P = prob.params(o, lse, oacc, lacc, s, hc, fused=m.fused)
                if ncu:
                    torch.cuda.synchronize(); torch.cuda.profiler.start()
                    m.decode(P); torch.cuda.synchronize(); torch.cuda.profiler.stop()
                    continue
                t = H.time_fn(torch, lambda: m.decode(P), iters=50)
                H.log(f"B={B:3d} ctx={ctx:6d} [{name}] splits={s:3d}{'*' if s == hs else ' '} "
                      f"{t * 1e6:7.1f} us {kvbytes / t / 1e9:6.0f} GB/s {100 * kvbytes / t / copy_bw:5.1f}%")
        q4, kd, vd = H.sdpa_inputs(prob)
        del prob
        torch.cuda.empty_cache()
        for nm, be in (("flash", SDPBackend.FLASH_ATTENTION), ("cudnn", SDPBackend.CUDNN_ATTENTION)):
            if ncu and nm == "flash":
                continue
            with sdpa_kernel([be]):
                fn = lambda: F.scaled_dot_product_attention(q4, kd, vd, enable_gqa=True)
                if ncu:
                    fn(); torch.cuda.synchronize(); torch.cuda.profiler.start()
                    fn(); torch.cuda.synchronize(); torch.cuda.profiler.stop()
                    continue
                t = H.time_fn(torch, fn, iters=50)
            H.log(f"B={B:3d} ctx={ctx:6d} SDPA {nm:6s} {t * 1e6:7.1f} us {kvbytes / t / 1e9:6.0f} GB/s {100 * kvbytes / t / copy_bw:5.1f}%")
        del kd, vd, q4
        torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
