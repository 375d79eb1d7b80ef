"""Render paged cells (jinja2) through templates/fwd.cu.tera, which appends the paged
entry points (_decode, _decode_merge, _append) via partials/paged_all.cuh."""
import os, sys, json
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
import fa_render, jinja2

_env = jinja2.Environment(loader=jinja2.FileSystemLoader(fa_render.TEMPLATES),
                          undefined=jinja2.StrictUndefined, keep_trailing_newline=True)


def cell(**kw):
    kw.setdefault("paged", True)
    kw.setdefault("page_size", 16)
    c = fa_render.make_cell(**kw)
    n = [f"pd_{c['dtype']}_hd{c['head_dim']}_g{c['gqa']}_p{c['page_size']}"]
    if c["causal"]: n.append("c")
    if c["window"]: n.append(f"w{c['window']}")
    if c["sink"]: n.append(f"s{c['sink']}")
    if c["alibi"]: n.append("alibi")
    if c["has_softcap"]: n.append("cap")
    c["kernel_name"] = "_".join(n)
    return c


def render(c):
    return _env.get_template("fwd.cu.tera").render(**c)


CELLS = [
    cell(dtype="bf16", head_dim=128, gqa=4, page_size=16),            # bench cell
    cell(dtype="bf16", head_dim=128, gqa=1, page_size=16),
    cell(dtype="bf16", head_dim=128, gqa=4, page_size=1),
    cell(dtype="f16", head_dim=128, gqa=8, page_size=256),
    cell(dtype="bf16", head_dim=64, gqa=32, page_size=16),            # MQA, 32 heads
    cell(dtype="bf16", head_dim=128, gqa=8, page_size=16, causal=True, window=64),
    cell(dtype="bf16", head_dim=128, gqa=4, page_size=16, causal=True, window=40, sink=4),
    cell(dtype="f16", head_dim=80, gqa=4, page_size=16, alibi=True, causal=True),
    cell(dtype="bf16", head_dim=96, gqa=2, page_size=32, has_softcap=True, softcap="30.0f"),
    cell(dtype="bf16", head_dim=256, gqa=8, page_size=16),
    cell(dtype="bf16", head_dim=192, gqa=1, page_size=64, causal=True),
    cell(dtype="f16", head_dim=128, gqa=1, page_size=16, alibi=True, has_softcap=True, softcap="50.0f", causal=True, window=100),
    cell(dtype="f16", head_dim=64, gqa=16, page_size=8, causal=True, window=33, sink=7),
    cell(dtype="f16", head_dim=80, gqa=4, page_size=2, causal=True),             # small pages, 2 lanes a row
    cell(dtype="bf16", head_dim=96, gqa=2, page_size=4, has_softcap=True, softcap="30.0f"),   # 4 lanes a row
    cell(dtype="bf16", head_dim=96, gqa=4, page_size=16),             # the bench cell's shape at hd 96 / 64
    cell(dtype="bf16", head_dim=64, gqa=4, page_size=16),
    cell(dtype="e4m3", head_dim=128, gqa=4, page_size=16),            # the bench cell in fp8
    cell(dtype="bf16", head_dim=128, gqa=32, page_size=16),           # two m-tiles: 2 CTAs a SM (kPdMaxCtas)
]

if __name__ == "__main__":
    out = os.path.join(HERE, "rendered")
    os.makedirs(out, exist_ok=True)
    meta = []
    for c in CELLS:
        with open(os.path.join(out, c["kernel_name"] + ".cu"), "w") as f:
            f.write(render(c))
        meta.append({k: c[k] for k in ("kernel_name", "dtype", "head_dim", "gqa", "page_size", "causal", "window",
                                       "sink", "alibi", "has_softcap", "softcap", "mask_causal", "pd_pair_splits", "paged_decode")})
    with open(os.path.join(out, "cells.json"), "w") as f:
        json.dump(meta, f, indent=1)
    print(len(meta), "cells rendered")
