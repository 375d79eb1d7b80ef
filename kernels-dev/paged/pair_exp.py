#!/usr/bin/env python3
"""Two kv heads per CTA (one split) against one head per CTA at 1-4 splits and
the split-count model's (*), by batch (GPU machine, FLUSH=1 by default): the
data behind fa_runtime::paged::decode_layout's choice of heads per CTA.
f: the merge inside _decode (every CTA resident), else _decode_merge.
  python3 kernels-dev/paged/render.py        # on the dev box (rendered/ is carried)
  CTX=4096 BATCHES=16,32,64,128 CELLS=pd_bf16_hd128_g4_p16,pd_e4m3_hd128_g4_p16 \
      python3 kernels-dev/paged/pair_exp.py
"""
import os, sys
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
os.environ.setdefault("FLUSH", "1")
import harness as H
torch, cells, sm = H.gpu_session()
H.log(torch.cuda.get_device_name(0))
ctx = int(os.environ.get("CTX", "4096"))
for name in os.environ.get("CELLS", "pd_bf16_hd128_g4_p16,pd_e4m3_hd128_g4_p16").split(","):
    c = cells[name]
    m = H.Module(c, H.compile_cells([c])[name], torch)
    H.log(name, m.describe())
    occ1, occ2 = m.occ_for(1), m.occ_for(2)
    for B in [int(x) for x in os.environ.get("BATCHES", "16,24,32,40,48,64,96,128").split(",")]:
        prob = H.Problem(torch, c, [ctx] * B, 8, fill_nan=False, seed=3, bt_pad=0)
        hs = H.runtime_splits(B, 8, ctx, sm, m, 1)
        row = []
        cands = [(2, 1, False)] + [(1, s, B * 8 * s <= sm * occ1) for s in sorted({1, 2, 3, 4, hs})]
        for hc, s, fused in cands:
            m.fused = fused
            o, lse, oacc, lacc = prob.buffers(s)
            P = prob.params(o, lse, oacc, lacc, s, hc, fused=fused)
            t = H.time_fn(torch, lambda: m.decode(P), iters=30)
            row.append(f"hc{hc} s{s}{'f' if fused else ''}{'*' if hc == 1 and s == hs else ''} {t * 1e6:6.1f}")
        H.log(f"{name} B={B:3d} ctx={ctx}: " + " | ".join(row))
        del prob
        torch.cuda.empty_cache()
