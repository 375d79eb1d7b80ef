"""Render templates/fwd.cu.tera with jinja2 (Tera/Jinja2 common subset).

Mirrors the template context the Rust renderer provides, plus a Python copy
of fa-spec/src/tiles.rs (tile_config / smem_bytes) so scratch runs can be made
before the Rust side exists. Keep `tile_config` in sync with tiles.rs.
"""
import os
import jinja2

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TEMPLATES = os.path.join(ROOT, "templates")
ARCH_SM = {"sm80": 80, "sm89": 89, "sm90a": 90, "sm100": 100}


def tile_config(c):
    """Python mirror of fa_spec::tiles::tile_config (keep in sync)."""
    d = c["head_dim"]
    if c["dtype"] in ("e4m3", "e5m2"):
        if d <= 128:
            return dict(block_m=128, block_n=32, num_warps=4, stages=2)
        if d <= 192:
            return dict(block_m=128, block_n=32, num_warps=8, stages=2)
        return dict(block_m=64, block_n=64, num_warps=4, stages=2)
    if d <= 64:
        return dict(block_m=128, block_n=64, num_warps=4, stages=2)
    masked = bool(c.get("causal") or c.get("window"))
    plain = not (masked or c.get("alibi") or c.get("has_softcap") or c.get("varlen"))
    sm90a = (c["arch"] == "sm90a" and not c.get("window") and not c.get("sink")
             and not c.get("varlen"))
    if d == 128 and not c.get("paged") and (plain or sm90a):
        return dict(block_m=128, block_n=64, num_warps=4, stages=1)
    if d <= 128:
        return dict(block_m=128, block_n=32, num_warps=4, stages=2)
    if d <= 192:
        return dict(block_m=128, block_n=64, num_warps=8, stages=2)
    return dict(block_m=64, block_n=64, num_warps=4, stages=1)


def swizzle(c, t):
    """Mirror of tiles.rs `swizzled`."""
    d = c["head_dim"]
    if c["dtype"] in ("e4m3", "e5m2"):
        return False
    if d == 64:
        masked = bool(c.get("causal") or c.get("window"))
        return not c.get("window") and not (c["arch"] == "sm100" and masked)
    if d == 128:
        wide = t["block_n"] == 64 and t["stages"] == 1
        return wide and c["arch"] in ("sm90a", "sm100") and not c.get("has_softcap")
    if d == 192:
        return not c.get("alibi") or c["arch"] == "sm90a"
    return d == 256


def smem_bytes(c, t):
    """Mirror of TileConfig::smem_bytes: Q tile + stages x (K tile + V tile).
    16-bit: rows padded by 8 elements (16 bytes). fp8: rows of head_dim bytes
    padded to an odd multiple of 16 bytes, and at least block_m bf16 O rows
    (hd + 8 elements) for the epilogue staging."""
    d = c["head_dim"]
    if c["dtype"] in ("e4m3", "e5m2"):
        row = d + 16 if ((d + 16) // 16) % 2 == 1 else d + 32
        return max((t["block_m"] + 2 * t["stages"] * t["block_n"]) * row, t["block_m"] * (d + 8) * 2)
    row = d if t.get("swizzle") else d + 8
    return (t["block_m"] + 2 * t["stages"] * t["block_n"]) * row * 2


def pd_row_bytes(c):
    """Bytes of one K/V row of the cache."""
    return c["head_dim"] * (1 if c["dtype"] in ("e4m3", "e5m2") else 2)


def paged_decode(c):
    """Mirror of fa_spec::tiles::paged_decode: paged cells whose rows are whole
    32-byte blocks (all but fp8 hd80)."""
    return bool(c["paged"]) and pd_row_bytes(c) % 32 == 0


def paged_decode_warps(c):
    """Mirror of fa_spec::tiles::paged_decode_warps: 2 where a 2-stage ring of
    64-row K/V tiles exceeds the arch's shared memory per block (hd256 on sm89)."""
    sm90 = c["arch"] in ("sm90a", "sm100")
    # (unpadded; 160- / 192-byte rows: 384-byte token slots, or on sm90+ 256-byte one-head slots)
    rb = pd_row_bytes(c)
    row_bytes = (256 if sm90 else 192) if rb in (160, 192) else rb
    max_smem = {"sm80": 163, "sm89": 99, "sm90a": 227, "sm100": 227}[c["arch"]] * 1024
    return 2 if 2 * 2 * 64 * row_bytes > max_smem else 4


def paged_pair_splits(c):
    """Mirror of fa_spec::tiles::paged_pair_splits: 160- / 192-byte rows on sm90+."""
    return int(pd_row_bytes(c) in (160, 192) and c["arch"] in ("sm90a", "sm100"))


def make_cell(**kw):
    c = dict(arch="sm90a", dtype="bf16", head_dim=128, causal=False, window=0, sink=0,
             alibi=False, has_softcap=False, softcap="0.0f", gqa=1, varlen=False,
             paged=False, page_size=0, backward=False)
    c.update(kw)
    c["sm"] = ARCH_SM[c["arch"]]
    c["is_fp8"] = c["dtype"] in ("e4m3", "e5m2")
    c["mask_causal"] = bool(c["causal"] or c["window"] > 0)
    t = tile_config(c)
    for k in ("block_m", "block_n", "num_warps", "stages"):
        if k in kw:
            t[k] = kw[k]
    t["swizzle"] = kw["swizzle"] if "swizzle" in kw else swizzle(c, t)
    c.update(t)
    if "kernel_name" not in kw:
        parts = [f"fa_{c['arch']}_{c['dtype']}_hd{c['head_dim']}"]
        if c["causal"]: parts.append("causal")
        if c["window"]: parts.append(f"w{c['window']}")
        if c["sink"]: parts.append(f"sink{c['sink']}")
        if c["alibi"]: parts.append("alibi")
        if c["has_softcap"]: parts.append("softcap")
        if c["gqa"] > 1: parts.append(f"gqa{c['gqa']}")
        if c["varlen"]: parts.append("varlen")
        if c["paged"]: parts.append(f"paged{c['page_size']}")
        parts.append(f"m{c['block_m']}n{c['block_n']}w{c['num_warps']}s{c['stages']}")
        if c["swizzle"]: parts.append("swz")
        for d in c.get("defines", ()):  # scratch tuning switches (-DNAME=VAL)
            parts.append(d.replace("FA_", "").replace("=", "").lower())
        c["kernel_name"] = "_".join(parts)
    c.setdefault("attribute", "")
    c["smem_bytes"] = smem_bytes(c, c)
    c["num_threads"] = c["num_warps"] * 32
    c["paged_decode"] = paged_decode(c)
    c["pd_warps"] = paged_decode_warps(c)
    c["pd_pair_splits"] = paged_pair_splits(c)
    return c


_env = None


def render(c):
    global _env
    if _env is None:
        _env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES),
                                  undefined=jinja2.StrictUndefined,
                                  keep_trailing_newline=True)
    return _env.get_template("fwd.cu.tera").render(**c)
