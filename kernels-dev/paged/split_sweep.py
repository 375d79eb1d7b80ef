#!/usr/bin/env python3
"""One kv head per CTA at every plausible split count (1 to 128, each split
keeping 4 tiles), by batch x context, bf16 and e4m3 hd128 (GPU machine,
FLUSH=1): what fa_runtime::paged::num_splits' cost model should choose. The
merge runs inside _decode where every CTA is resident, else _decode_merge.
Writes $OUT/sweep.json ({device, sm, rows: [{cell, B, ctx, occ, times: {splits: us}}]});
results/split_sweep_h100.json is one such run (H100, 2026-11-27).
  python3 kernels-dev/paged/render.py        # on the dev box (rendered/ is carried)
  OUT=$OUT python3 kernels-dev/paged/split_sweep.py
"""
import os, sys, json
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
os.environ.setdefault("FLUSH", "1")
import harness as H
torch, cells, sm = H.gpu_session()
res = {"device": torch.cuda.get_device_name(0), "sm": sm, "rows": []}
shapes = [(b, c) for c in (1024, 4096, 16384) for b in (1, 2, 4, 8, 12, 16, 24, 32, 40, 48)] + \
         [(1, 32768), (2, 32768), (4, 32768), (1, 65536), (2, 65536), (1, 131072)]
for name in ("pd_bf16_hd128_g4_p16", "pd_e4m3_hd128_g4_p16"):
    c = cells[name]
    m = H.Module(c, H.compile_cells([c])[name], torch)
    occ = m.occ_for(1)
    for B, ctx in shapes:
        prob = H.Problem(torch, c, [ctx] * B, 8, fill_nan=False, seed=3, bt_pad=0)
        T = (ctx + 63) // 64
        smax = min(128, max(1, T // 4))
        cand = sorted({s for s in (1, 2, 3, 4, 5, 6, 8, 10, 12, 16, 20, 24, 28, 33, 40, 49, 56, 66, 80, 98, 128) if s <= smax})
        times = {}
        for s in cand:
            fused = s > 1 and B * 8 * s <= sm * occ
            m.fused = fused
            o, lse, oacc, lacc = prob.buffers(s)
            P = prob.params(o, lse, oacc, lacc, s, 1, fused=fused)
            times[s] = H.time_fn(torch, lambda: m.decode(P), iters=20) * 1e6
        hs = H.runtime_splits(B, 8, ctx, sm, m, 1)
        best = min(times, key=times.get)
        H.log(f"{name} B={B} ctx={ctx} occ={occ} model={hs} ({times.get(hs, float('nan')):.1f}) best={best} ({times[best]:.1f})")
        res["rows"].append({"cell": name, "B": B, "ctx": ctx, "occ": occ, "times": times})
        del prob
        torch.cuda.empty_cache()
out = os.environ.get("OUT", ".")
json.dump(res, open(os.path.join(out, "sweep.json"), "w"))
