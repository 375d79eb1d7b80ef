import os, sys, json, re
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
from nvrtc_local import compile_src
d = os.path.join(HERE, "rendered")
cells = json.load(open(os.path.join(d, "cells.json")))
bad = 0
for c in cells:
    src = open(os.path.join(d, c["kernel_name"] + ".cu")).read()
    for arch in sys.argv[1:] or ["sm_90a"]:
        r, log, t, cub = compile_src(src, c["kernel_name"], arch, ["-Xptxas=-v"])
        info = " | ".join(l.strip() for l in log.splitlines() if "registers" in l or "spill" in l and "0 bytes spill" not in l)
        print(f"{c['kernel_name']:45s} {arch} rc={r} {t:.1f}s {info[:400]}")
        if r: print(log[:3000]); bad += 1
sys.exit(bad)
