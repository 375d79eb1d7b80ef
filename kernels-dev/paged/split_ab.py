#!/usr/bin/env python3
"""The split count of fa_runtime::paged::num_splits' model ("in flight")
against the earlier whole-waves model's, interleaved over several rounds in
one process (GPU machine, FLUSH=1, 8 kv heads, one kv head a CTA): the
shapes where the two choose differently. Prints each shape's median over
rounds of the per-round medians.
  python3 kernels-dev/paged/render.py        # on the dev box (rendered/ is carried)
  ROUNDS=5 [ONLY=pd_bf16_hd128_g4_p16:1x131072] [EXTRA=25,32] python3 kernels-dev/paged/split_ab.py
ONLY: the shapes to run (cell:BxCTX, comma-separated); EXTRA: split counts
timed in the same rounds besides the two models' choices.
"""
import math, os, statistics, sys
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
os.environ.setdefault("FLUSH", "1")
import harness as H
torch, cells, sm = H.gpu_session()
H.log(torch.cuda.get_device_name(0))
KVH = 8
ROUNDS = int(os.environ.get("ROUNDS", "5"))


def whole_waves(B, ctx, occ):
    T = math.ceil(ctx / 64)
    smax = min(128, max(1, T // 4))
    return min(range(1, smax + 1), key=lambda s: (math.ceil(B * KVH * s / (sm * occ)) * (math.ceil(T / s) + 2), s))


SHAPES = {
    "pd_bf16_hd128_g4_p16": [(1, 131072), (1, 32768), (16, 4096), (12, 4096), (16, 1024), (48, 1024)],
    "pd_e4m3_hd128_g4_p16": [(1, 131072), (8, 4096), (32, 1024), (32, 4096), (40, 4096)],
    "pd_bf16_hd64_g4_p16": [(32, 1024), (32, 4096), (1, 131072)],
}
ONLY = [x.split(":") for x in os.environ.get("ONLY", "").split(",") if x]
if ONLY:
    SHAPES = {}
    for name, shape in ONLY:
        SHAPES.setdefault(name, []).append(tuple(int(v) for v in shape.split("x")))
EXTRA = [int(x) for x in os.environ.get("EXTRA", "").split(",") if x]
for name, shapes in SHAPES.items():
    c = cells[name]
    m = H.Module(c, H.compile_cells([c])[name], torch)
    occ = m.occ_for(1)
    for B, ctx in shapes:
        prob = H.Problem(torch, c, [ctx] * B, KVH, fill_nan=False, seed=3, bt_pad=0)
        new = H.runtime_splits(B, KVH, ctx, sm, m, 1)
        old = whole_waves(B, ctx, occ)
        t = {s: [] for s in [new, old] + EXTRA if s <= max(1, min(128, math.ceil(ctx / 64) // 4))}
        for _ in range(ROUNDS):
            for s in t:
                fused = s > 1 and B * KVH * s <= sm * occ
                m.fused = fused
                o, lse, oacc, lacc = prob.buffers(s)
                P = prob.params(o, lse, oacc, lacc, s, 1, fused=fused)
                t[s].append(H.time_fn(torch, lambda: m.decode(P), iters=30) * 1e6)
        tn, to = statistics.median(t[new]), statistics.median(t[old])
        H.log(f"{name} {B} x {ctx}: in flight {new} splits {tn:7.1f} us ({min(t[new]):.1f}-{max(t[new]):.1f}) | "
              f"whole waves {old} {to:7.1f} ({min(t[old]):.1f}-{max(t[old]):.1f}) | {100 * (to / tn - 1):+.1f}%" +
              "".join(f" | {s}: {statistics.median(v):.1f}" for s, v in t.items() if s not in (new, old)))
        del prob
        torch.cuda.empty_cache()
