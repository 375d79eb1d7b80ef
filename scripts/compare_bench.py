#!/usr/bin/env python3
"""Joins `fa bench` CSV with sdpa_anchor.py CSVs measured in the same call and
prints our TFLOP/s beside PyTorch's flash and cuDNN backends, with ratios.

usage: compare_bench.py fa_bench.csv sdpa_bf16.csv [sdpa_f16.csv ...]
"""
import csv, sys

def main():
    ours = {}
    with open(sys.argv[1]) as f:
        for r in csv.DictReader(f):
            key = (r["dtype"], int(r["head_dim"]), int(r["seqlen"]), r["causal"] in ("true", "1"))
            ours[key] = float(r["tflops"])
    peer = {}
    for path in sys.argv[2:]:
        with open(path) as f:
            rows = [line for line in f if not line.startswith("#")]
        for r in csv.DictReader(rows):
            if r.get("pass") != "fwd" or r["ms"] == "nan":
                continue
            key = (r["dtype"], int(r["head_dim"]), int(r["seqlen"]), r["causal"] == "1")
            peer.setdefault(key, {})[r["backend"]] = float(r["tflops"])
    print(f"{'dtype':5} {'hd':>4} {'seqlen':>6} {'causal':>6} {'ours':>7} {'flash':>7} {'cudnn':>7} {'/flash':>7} {'/cudnn':>7}")
    for key in sorted(ours):
        p = peer.get(key, {})
        fl, cu = p.get("flash"), p.get("cudnn")
        ratio = lambda x: f"{ours[key] / x:7.2f}" if x else "      -"
        print(f"{key[0]:5} {key[1]:4} {key[2]:6} {int(key[3]):6} {ours[key]:7.1f} {fl or 0:7.1f} {cu or 0:7.1f} {ratio(fl)} {ratio(cu)}")

if __name__ == "__main__":
    main()
