#!/usr/bin/env python3
"""Our decode against SDPA cuDNN / flash on the contiguous cache, interleaved
in one process (GPU machine, FLUSH=1 by default, bf16 hd128 32/8 heads):
each round times every candidate once (30 launches, median) in a shuffled
order, so that drift between calls and within a call hits all of them
alike; the per-round ratio ours / cuDNN is paired.

  python3 kernels-dev/paged/render.py        # on the dev box (rendered/ is carried)
  ROUNDS=15 SHAPES=64x4096,1x131072 python3 kernels-dev/paged/tie_ab.py
  CANDS="32x4096@w2s2|-DPD_WARPS=2|1|2|1;.." # more candidates: [BxCTX@]label|-D flags|hc|splits|fused
  CANDS="st2|-DPD_STAGES=2|rt|rt|"           # hc / splits "rt": the runtime's layout for that build; "ours": the default build's;
                                             # hc "u": one kv head a CTA through _decode_unsplit
  PROFILE=1 ...                              # also print SDPA's kernels with their grids
  NOFLASH=1 ...                              # SDPA cuDNN only

The runtime's own layout (harness.runtime_layout) is always a candidate,
"ours". Prints, per shape and candidate, the median of the round medians,
the median paired ratio to cuDNN, and in how many rounds it was the faster.
"""
import json, os, random, statistics, sys
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
os.environ.setdefault("FLUSH", "1")
import harness as H
from variant_exp import module

torch, cells, sm = H.gpu_session()
import torch.nn.functional as F
from torch.nn.attention import sdpa_kernel, SDPBackend
H.log(f"{torch.cuda.get_device_name(0)}, {sm} SMs, FLUSH={os.environ['FLUSH']}")
CELL = os.environ.get("CELL", "pd_bf16_hd128_g4_p16")
KVH = 8
ROUNDS = int(os.environ.get("ROUNDS", "11"))
SHAPES = [tuple(int(v) for v in s.split("x")) for s in os.environ.get("SHAPES", "64x4096,1x131072,32x4096").split(",")]
c = cells[CELL]
base = module(torch, c, [])
base.load_only = False
mods = {(): base}
extra = []
for spec in [x for x in os.environ.get("CANDS", "").split(";") if x.strip()]:
    only = None
    if "@" in spec:
        only, spec = spec.split("@", 1)
        only = tuple(int(v) for v in only.split("x"))
    label, flags, hc, s, fused = spec.split("|")
    key = tuple(flags.split())
    if key not in mods:
        mods[key] = module(torch, c, list(key))
        mods[key].load_only = "-DPD_LOAD_ONLY" in key
    extra.append((only, label, mods[key], hc, s, fused == "1"))
rnd = random.Random(7)

for B, ctx in SHAPES:
    prob = H.Problem(torch, c, [ctx] * B, KVH, fill_nan=False, seed=3, bt_pad=0)
    hc, s, fused, unsplit = H.runtime_layout(B, KVH, ctx, sm, base, c["window"], c["sink"])
    cands = {}
    for label, m, h, sp, fu in [("ours", base, hc, s, fused)] + [x[1:] for x in extra if x[0] in (None, (B, ctx))]:
        un = False
        if label == "ours":
            un = unsplit
        elif h == "rt":   # the runtime's layout for this build (its occupancy and ring)
            h, sp, fu, un = H.runtime_layout(B, KVH, ctx, sm, m, c["window"], c["sink"])
        elif h == "ours":   # the default build's layout, fused where this build holds every CTA
            h, sp, un = hc, s, unsplit and "u" in m.entries
            fu = sp > 1 and B * (KVH // h) * sp <= sm * m.occ_for(h)
        elif h == "u":   # one kv head a CTA through _decode_unsplit
            h, un = 1, True
        h, sp = int(h), int(sp)
        o, lse, oacc, lacc = prob.buffers(sp)
        P = prob.params(o, lse, oacc, lacc, sp, h, fused=fu)
        # a correctness spot check of sequence 0 against fp32 before timing,
        # into poisoned outputs (builds that skip the math, -DPD_LOAD_ONLY, are not checked)
        o.fill_(float("nan")); lse.fill_(float("nan"))
        m.decode(P, un)
        desc = f"{label} ({'unsplit' if un else f'hc {h}'}, {sp} splits{', fused' if fu else ''}"
        if m.load_only:
            cands[desc + ", copies only)"] = (lambda m=m, P=P, un=un: m.decode(P, un), (o, lse, oacc, lacc, P))
            continue
        b0, G = 0, c["gqa"]
        k = prob.K[b0].float().repeat_interleave(G, dim=1); v = prob.V[b0].float().repeat_interleave(G, dim=1)
        sc = torch.einsum("hd,nhd->hn", prob.q[b0].float(), k) * prob.scale
        ref = torch.einsum("hn,nhd->hd", torch.softmax(sc, -1), v)
        err = (o[b0].float() - ref).abs().max().item()
        assert err < (6e-2 if prob.elem == 1 else 2e-2), (label, err)
        cands[desc + ")"] = (lambda m=m, P=P, un=un: m.decode(P, un), (o, lse, oacc, lacc, P))
    q4, kd, vd = H.sdpa_inputs(prob)
    for nm, be in (("cudnn", SDPBackend.CUDNN_ATTENTION), ("flash", SDPBackend.FLASH_ATTENTION))[:1 if os.environ.get("NOFLASH") else 2]:
        def fn(be=be):
            with sdpa_kernel([be]):
                return F.scaled_dot_product_attention(q4, kd, vd, enable_gqa=True)
        cands[nm] = (fn, None)
    t = {k: [] for k in cands}
    for _ in range(ROUNDS):
        order = list(cands)
        rnd.shuffle(order)
        for k in order:
            t[k].append(H.time_fn(torch, cands[k][0], iters=30) * 1e6)
    kvbytes = 2 * B * ctx * KVH * c["head_dim"] * 2
    H.log(f"== {B} x {ctx} ({ROUNDS} rounds of 30 launches)")
    for k, v in t.items():
        r = [a / b for a, b in zip(v, t["cudnn"])]
        wins = sum(x < 1 for x in r)
        H.log(f"  {k:38s} {statistics.median(v):7.1f} us ({min(v):.1f}-{max(v):.1f}) {kvbytes / statistics.median(v) / 1e3:5.0f} GB/s"
              + ("" if k == "cudnn" else f" | / cuDNN {statistics.median(r):.4f} ({min(r):.4f}-{max(r):.4f}), faster in {wins}/{len(r)}"))
    if os.environ.get("PROFILE") == "1":
        from torch.profiler import profile, ProfilerActivity
        for nm in [n for n in ("cudnn", "flash") if n in cands]:
            with profile(activities=[ProfilerActivity.CUDA]) as prof:
                cands[nm][0](); torch.cuda.synchronize()
            path = f"/tmp/trace_{nm}.json"
            prof.export_chrome_trace(path)
            for e in json.load(open(path))["traceEvents"]:
                if e.get("cat") == "kernel":
                    a = e.get("args", {})
                    H.log(f"  {nm} kernel {e['name'][:90]} grid {a.get('grid')} block {a.get('block')} smem {a.get('shared memory')} regs {a.get('registers per thread')} {e.get('dur')} us")
    del prob, q4, kd, vd, cands
    torch.cuda.empty_cache()
