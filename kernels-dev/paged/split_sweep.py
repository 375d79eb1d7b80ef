#!/usr/bin/env python3
"""Every plausible split count (1 to 128, each split keeping 4 tiles), by
batch x context (GPU machine, FLUSH=1): what fa_runtime::paged::num_splits'
cost model should choose. The merge runs inside the decode where every CTA is
resident, else _decode_merge. HC=2 sweeps _decode_pair of cells whose pair
takes splits (pd_pair_splits: bf16 hd96, f16 hd80), as the runtime launches
them there.
Writes $OUT/sweep.json ({device, sm, rows: [{cell, hc, B, ctx, occ, smem,
occ1 (_decode's CTAs per SM), times: {splits: us}}]}); results/split_sweep_h100.json (bf16 / e4m3 hd128,
hc 1) is one such run (H100, 2026-11-27), results/split_sweep_*.json others.
  python3 kernels-dev/paged/render.py        # on the dev box (rendered/ is carried)
  OUT=$OUT [CELLS=a,b] [HC=1] [TAG=name] python3 kernels-dev/paged/split_sweep.py
"""
import os, sys, json
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
os.environ.setdefault("FLUSH", "1")
import harness as H
torch, cells, sm = H.gpu_session()
KV_HEADS = 8
hc = int(os.environ.get("HC", "1"))
out_path = os.path.join(os.environ.get("OUT", "."), f"sweep{os.environ.get('TAG', '')}.json")
res = {"device": torch.cuda.get_device_name(0), "sm": sm, "rows": []}
shapes = [(b, c) for c in (1024, 4096, 16384) for b in (1, 2, 4, 8, 12, 16, 24, 32, 40, 48)] + \
         [(1, 32768), (2, 32768), (4, 32768), (1, 65536), (2, 65536), (1, 131072)]
for name in os.environ.get("CELLS", "pd_bf16_hd128_g4_p16,pd_e4m3_hd128_g4_p16").split(","):
    c = cells[name]
    m = H.Module(c, H.compile_cells([c])[name], torch)
    assert hc == 1 or m.pair_splits, f"{name}: its _decode_pair is compiled for one split"
    occ, smem = m.occ_for(hc), m.entry(hc)[1]
    H.log(name, m.describe())
    groups = KV_HEADS // hc
    for B, ctx in shapes:
        prob = H.Problem(torch, c, [ctx] * B, KV_HEADS, fill_nan=False, seed=3, bt_pad=0)
        T = (ctx + 64 // hc - 1) // (64 // hc)
        smax = min(128, max(1, T // 4))
        cand = sorted({s for s in (1, 2, 3, 4, 5, 6, 8, 10, 12, 16, 20, 24, 28, 33, 40, 49, 56, 66, 80, 98, 128) if s <= smax})
        times = {}
        for s in cand:
            fused = s > 1 and B * groups * s <= sm * occ
            m.fused = fused
            o, lse, oacc, lacc = prob.buffers(s)
            P = prob.params(o, lse, oacc, lacc, s, hc, fused=fused)
            times[s] = H.time_fn(torch, lambda: m.decode(P), iters=20) * 1e6
        best = min(times, key=times.get)
        H.log(f"{name} hc={hc} B={B} ctx={ctx} occ={occ} best={best} ({times[best]:.1f})")
        res["rows"].append({"cell": name, "hc": hc, "B": B, "ctx": ctx, "occ": occ, "smem": smem,
                            "occ1": m.occ_for(1), "times": times})
        del prob
        torch.cuda.empty_cache()
        json.dump(res, open(out_path, "w"))   # after every row: a cut-off run keeps what it measured
