#!/usr/bin/env python3
"""FlashAttention forward scratch harness (runs on the GPU machine).

Renders templates/fwd.cu.tera per cell (jinja2, see fa_render.py), compiles
with NVRTC (cuda.bindings.nvrtc), launches through the driver API on torch's
stream, checks against a float64 torch reference (inputs upcast) with the
tolerance  max|out-ref| <= 2*max|ref_lowprec-ref| + 1e-3 , LSE within 1e-3,
no NaN, outputs poisoned with NaN before every launch; times with CUDA events
(median) against torch SDPA's FLASH_ATTENTION backend on the same shapes.

  python3 kernels-dev/harness.py --correct --perf --tiles --out $OUT
"""
import argparse, ctypes, itertools, math, os, re, sys, time, json
from concurrent.futures import ProcessPoolExecutor

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fa_render

LOG = None


def log(*a):
    s = " ".join(str(x) for x in a)
    print(s, flush=True)
    if LOG:
        LOG.write(s + "\n"); LOG.flush()


# --------------------------------------------------------------------------- NVRTC
def _compile_worker(args):
    src, name, arch, defines = args
    from cuda.bindings import nvrtc
    t0 = time.time()
    err, prog = nvrtc.nvrtcCreateProgram(src.encode(), (name + ".cu").encode(), 0, [], [])
    opts = [f"--gpu-architecture={arch}".encode(), b"-std=c++17", b"-default-device", b"-Xptxas=-v"] + [f"-D{d}".encode() for d in defines]
    (err,) = nvrtc.nvrtcCompileProgram(prog, len(opts), opts)
    dt = time.time() - t0
    _, n = nvrtc.nvrtcGetProgramLogSize(prog)
    buf = b" " * n
    nvrtc.nvrtcGetProgramLog(prog, buf)
    logtxt = buf.decode(errors="replace")
    if err != nvrtc.nvrtcResult.NVRTC_SUCCESS:
        return name, None, logtxt, dt
    _, n = nvrtc.nvrtcGetCUBINSize(prog)
    cub = b" " * n
    nvrtc.nvrtcGetCUBIN(prog, cub)
    return name, cub, logtxt, dt


def compile_all(cells, arch="sm_90a", procs=14):
    jobs = [(fa_render.render(c), c["kernel_name"], arch, tuple(c.get("defines", ()))) for c in cells]
    res = {}
    import multiprocessing as mp
    with ProcessPoolExecutor(procs, mp_context=mp.get_context("spawn")) as ex:
        for name, cub, lg, dt in ex.map(_compile_worker, jobs):
            regs = re.search(r"Used (\d+) registers", lg)
            spill = re.search(r"(\d+) bytes spill stores", lg)
            res[name] = dict(cubin=cub, log=lg, t=dt, regs=int(regs.group(1)) if regs else -1,
                             spill=int(spill.group(1)) if spill else -1)
            if cub is None:
                log(f"COMPILE FAIL {name}\n{lg[:4000]}")
    return res


# --------------------------------------------------------------------------- driver
class FwdParams(ctypes.Structure):
    _fields_ = [(n, ctypes.c_void_p) for n in
                ["q", "k", "v", "o", "lse", "cu_seqlens_q", "cu_seqlens_k", "block_table",
                 "seqused_k", "alibi_slopes", "q_descale", "k_descale", "v_descale"]] + \
               [(n, ctypes.c_longlong) for n in
                ["q_batch_stride", "q_row_stride", "q_head_stride", "k_batch_stride", "k_row_stride",
                 "k_head_stride", "v_batch_stride", "v_row_stride", "v_head_stride",
                 "o_batch_stride", "o_row_stride", "o_head_stride"]] + \
               [(n, ctypes.c_int) for n in
                ["batch", "num_heads", "num_kv_heads", "seqlen_q", "seqlen_k", "block_table_stride"]] + \
               [("softmax_scale", ctypes.c_float), ("scale_log2", ctypes.c_float)]


class Kernel:
    def __init__(self, cell, cubin):
        from cuda.bindings import driver as cu
        self.cu = cu
        self.cell = cell
        import numpy as np
        self._img = np.frombuffer(cubin, dtype=np.uint8).copy()
        err, self.mod = cu.cuModuleLoadData(self._img.ctypes.data)
        assert err == cu.CUresult.CUDA_SUCCESS, err
        err, self.fn = cu.cuModuleGetFunction(self.mod, (cell["kernel_name"] + "_fwd").encode())
        assert err == cu.CUresult.CUDA_SUCCESS, err
        (err,) = cu.cuFuncSetAttribute(self.fn, cu.CUfunction_attribute.CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, cell["smem_bytes"])
        assert err == cu.CUresult.CUDA_SUCCESS, err
        _, self.regs = cu.cuFuncGetAttribute(cu.CUfunction_attribute.CU_FUNC_ATTRIBUTE_NUM_REGS, self.fn)
        _, self.local = cu.cuFuncGetAttribute(cu.CUfunction_attribute.CU_FUNC_ATTRIBUTE_LOCAL_SIZE_BYTES, self.fn)
        self._keep = None

    def launch(self, prm, grid, stream):
        cu = self.cu
        self._keep = prm
        argv = (ctypes.c_void_p * 1)(ctypes.addressof(prm))
        self._argv = argv
        (err,) = cu.cuLaunchKernel(self.fn, grid[0], grid[1], grid[2], self.cell["num_threads"], 1, 1,
                                   self.cell["smem_bytes"], cu.CUstream(stream), ctypes.addressof(argv), 0)
        assert err == cu.CUresult.CUDA_SUCCESS, err


# --------------------------------------------------------------------------- problem setup
def make_params(torch, c, q, k, v, o, lse, B, H, KVH, sq_max, sk_max, cu_q=None, cu_k=None,
                block_table=None, seqused=None, slopes=None, bt_stride=0, descales=(None, None, None)):
    P = FwdParams()
    ptr = lambda t: t.data_ptr() if t is not None else None
    P.q, P.k, P.v, P.o, P.lse = ptr(q), ptr(k), ptr(v), ptr(o), ptr(lse)
    P.cu_seqlens_q, P.cu_seqlens_k = ptr(cu_q), ptr(cu_k)
    P.block_table, P.seqused_k, P.alibi_slopes = ptr(block_table), ptr(seqused), ptr(slopes)
    P.q_descale, P.k_descale, P.v_descale = [ptr(x) for x in descales]
    def st(t, pre):
        if t.dim() == 4:
            setattr(P, pre + "_batch_stride", t.stride(0)); setattr(P, pre + "_row_stride", t.stride(1)); setattr(P, pre + "_head_stride", t.stride(2))
        else:
            setattr(P, pre + "_batch_stride", 0); setattr(P, pre + "_row_stride", t.stride(0)); setattr(P, pre + "_head_stride", t.stride(1))
    st(q, "q"); st(k, "k"); st(v, "v"); st(o, "o")
    P.batch, P.num_heads, P.num_kv_heads = B, H, KVH
    P.seqlen_q, P.seqlen_k, P.block_table_stride = sq_max, sk_max, bt_stride
    scale = 1.0 / math.sqrt(c["head_dim"])
    P.softmax_scale = scale
    P.scale_log2 = scale * math.log2(math.e)
    grid = ((sq_max + c["block_m"] - 1) // c["block_m"], H, B)
    return P, grid, scale


def ref_attention(torch, c, q, k, v, scale, slopes, lowprec=False):
    """q [sq,H,d], k/v [sk,KVH,d] for ONE sequence. Returns O [sq,H,d], LSE [H,sq]."""
    sq, H, d = q.shape
    sk = k.shape[0]
    g = c["gqa"]
    if lowprec:
        kk = k.repeat_interleave(g, dim=1); vv = v.repeat_interleave(g, dim=1)
        s = torch.einsum("qhd,khd->hqk", q, kk).float()
    else:
        q, k, v = q.double(), k.double(), v.double()
        kk = k.repeat_interleave(g, dim=1); vv = v.repeat_interleave(g, dim=1)
        s = torch.einsum("qhd,khd->hqk", q, kk)
    s = s * scale
    if c["has_softcap"]:
        X = float(c["softcap"].rstrip("f"))
        s = X * torch.tanh(s / X)
    dev = q.device
    i = torch.arange(sq, device=dev).view(sq, 1)
    j = torch.arange(sk, device=dev).view(1, sk)
    pos = i + sk - sq
    if c["alibi"]:
        s = s - slopes.to(s.dtype).view(H, 1, 1) * (pos - j).abs().to(s.dtype).view(1, sq, sk)
    vis = torch.ones(sq, sk, dtype=torch.bool, device=dev)
    if c["mask_causal"]:
        vis = j <= pos
    if c["window"] > 0:
        vis = vis & (j > pos - c["window"])
    if c["sink"] > 0:
        vis = vis | ((j < c["sink"]) & (j <= pos))
    s = s.masked_fill(~vis.view(1, sq, sk), float("-inf"))
    lse = torch.logsumexp(s, dim=-1)  # [H, sq]
    pmat = torch.softmax(s, dim=-1)
    pmat = torch.nan_to_num(pmat, nan=0.0)
    if lowprec:
        o = torch.einsum("hqk,khd->qhd", pmat.to(q.dtype), vv).float()
    else:
        o = torch.einsum("hqk,khd->qhd", pmat, vv)
    return o, lse


FP8 = ("e4m3", "e5m2")


def torch_dtype(torch, c):
    return {"bf16": torch.bfloat16, "f16": torch.float16,
            "e4m3": torch.float8_e4m3fn, "e5m2": torch.float8_e5m2}[c["dtype"]]


def ref_attention_fp8(torch, c, q, k, v, scale, slopes, ds, lowprec=False):
    """fp8 reference on the DEQUANTISED inputs (float64). q [sq,H,d] k/v
    [sk,KVH,d] raw fp8; ds = (q_ds, k_ds, v_ds) per kv head [KVH] (float).
    lowprec: the kernel's computation at input precision -- the unnormalised
    P = exp(s - rowmax) rounded to e4m3 before P.V (row sum unrounded), O
    rounded to bf16. Returns O [sq,H,d], LSE [H,sq]."""
    g = c["gqa"]
    qd, kd, vd = [x.double().repeat_interleave(g) for x in ds]  # [H]
    qq = q.double() * qd.view(1, -1, 1)
    kk = k.double().repeat_interleave(g, dim=1) * kd.view(1, -1, 1)
    vv = v.double().repeat_interleave(g, dim=1) * vd.view(1, -1, 1)
    sq, H, d = q.shape
    sk = k.shape[0]
    s = torch.einsum("qhd,khd->hqk", qq, kk) * scale
    if c["has_softcap"]:
        X = float(c["softcap"].rstrip("f"))
        s = X * torch.tanh(s / X)
    dev = q.device
    i = torch.arange(sq, device=dev).view(sq, 1)
    j = torch.arange(sk, device=dev).view(1, sk)
    pos = i + sk - sq
    if c["alibi"]:
        s = s - slopes.double().view(H, 1, 1) * (pos - j).abs().double().view(1, sq, sk)
    vis = torch.ones(sq, sk, dtype=torch.bool, device=dev)
    if c["mask_causal"]:
        vis = j <= pos
    if c["window"] > 0:
        vis = vis & (j > pos - c["window"])
    if c["sink"] > 0:
        vis = vis | ((j < c["sink"]) & (j <= pos))
    s = s.masked_fill(~vis.view(1, sq, sk), float("-inf"))
    lse = torch.logsumexp(s, dim=-1)
    mx = s.amax(dim=-1, keepdim=True)
    mx = torch.where(torch.isfinite(mx), mx, torch.zeros_like(mx))
    pu = torch.exp(s - mx)                       # unnormalised, masked -> 0
    den = pu.sum(dim=-1, keepdim=True)
    if lowprec:
        pu = pu.float().to(torch.float8_e4m3fn).double()
    o = torch.einsum("hqk,khd->qhd", pu, vv) / den.clamp_min(1e-300).permute(1, 0, 2)
    o = torch.nan_to_num(o, nan=0.0)
    if lowprec:
        o = o.to(torch.bfloat16).double()
    return o, lse


def run_case(torch, kern, c, B, H, sq, sk, varlen_lens=None, paged=False, seed=0, descale=True):
    """Returns (ok, err, tol, lse_err, note)."""
    dev = "cuda"
    dt = torch_dtype(torch, c)
    fp8 = c["dtype"] in FP8
    d = c["head_dim"]
    KVH = H // c["gqa"]
    gen = torch.Generator(device=dev).manual_seed(seed)
    rnd = lambda *shape: torch.randn(*shape, device=dev, generator=gen, dtype=torch.float32).to(dt)
    slopes = (torch.rand(H, device=dev, generator=gen) * 0.5 + 0.01) if c["alibi"] else None
    cu_q = cu_k = None
    seqused = None
    block_table = None
    bt_stride = 0
    if varlen_lens is not None:
        lq, lk = varlen_lens
        B = len(lq)
        cu_q = torch.tensor([0] + list(itertools.accumulate(lq)), dtype=torch.int32, device=dev)
        cu_k = torch.tensor([0] + list(itertools.accumulate(lk)), dtype=torch.int32, device=dev)
        q = rnd(sum(lq), H, d); k = rnd(sum(lk), KVH, d); v = rnd(sum(lk), KVH, d)
        o = torch.full(q.shape, float("nan"), device=dev, dtype=torch.bfloat16 if fp8 else dt)
        lse = torch.full((H, sum(lq)), float("nan"), device=dev)
        sq, sk = max(lq), max(lk)
    else:
        q = rnd(B, sq, H, d)
        o = torch.full(q.shape, float("nan"), device=dev, dtype=torch.bfloat16 if fp8 else dt)
        lse = torch.full((B, H, sq), float("nan"), device=dev)
        if paged:
            ps = c["page_size"]
            npb = (sk + ps - 1) // ps
            kd = rnd(B, npb * ps, KVH, d); vd = rnd(B, npb * ps, KVH, d)
            perm = torch.randperm(B * npb, device=dev, generator=gen).to(torch.int32)
            block_table = perm.view(B, npb).contiguous()
            k = torch.empty(B * npb, ps, KVH, d, device=dev, dtype=dt); v = torch.empty_like(k)
            raw = (lambda t: t.view(torch.uint8)) if fp8 else (lambda t: t)  # no fp8 index_put
            raw(k)[block_table.view(-1).long()] = raw(kd).view(B * npb, ps, KVH, d)
            raw(v)[block_table.view(-1).long()] = raw(vd).view(B * npb, ps, KVH, d)
            bt_stride = npb
            lens_k = [max(1, sk - 7 * b) for b in range(B)]
            seqused = torch.tensor(lens_k, dtype=torch.int32, device=dev)
        else:
            k = rnd(B, sk, KVH, d); v = rnd(B, sk, KVH, d)
    dsc = (None, None, None)
    if fp8 and descale:
        dsc = tuple(torch.rand(B, KVH, device=dev, generator=gen) * 1.5 + 0.25 for _ in range(3))
    P, grid, scale = make_params(torch, c, q, k, v, o, lse, B, H, KVH, sq, sk, cu_q, cu_k,
                                 block_table, seqused, slopes, bt_stride, descales=dsc)
    kern.launch(P, grid, torch.cuda.current_stream().cuda_stream)
    torch.cuda.synchronize()
    # reference per sequence
    err = tol = lerr = 0.0
    nan = bool(torch.isnan(o).any()) or bool(torch.isnan(lse).any())
    for b in range(B):
        if varlen_lens is not None:
            qs, ks = slice(int(cu_q[b]), int(cu_q[b + 1])), slice(int(cu_k[b]), int(cu_k[b + 1]))
            qb, kb, vb, ob, lb = q[qs], k[ks], v[ks], o[qs], lse[:, qs]
        elif paged:
            L = int(seqused[b])
            qb, kb, vb, ob, lb = q[b], kd[b, :L], vd[b, :L], o[b], lse[b]
        else:
            qb, kb, vb, ob, lb = q[b], k[b], v[b], o[b], lse[b]
        if fp8:
            one = torch.ones(KVH, device=dev)
            dsb = tuple(x[b] if x is not None else one for x in dsc)
            ro, rl = ref_attention_fp8(torch, c, qb, kb, vb, scale, slopes, dsb)
            lo, _ = ref_attention_fp8(torch, c, qb, kb, vb, scale, slopes, dsb, lowprec=True)
        else:
            ro, rl = ref_attention(torch, c, qb, kb, vb, scale, slopes)
            lo, _ = ref_attention(torch, c, qb, kb, vb, scale, slopes, lowprec=True)
        err = max(err, (ob.double() - ro).abs().max().item() if ob.numel() else 0.0)
        tol = max(tol, (lo.double() - ro).abs().max().item() if ob.numel() else 0.0)
        fin = torch.isfinite(rl)
        if not torch.equal(fin, torch.isfinite(lb)) or bool((lb[~fin] != float("-inf")).any()):
            lerr = float("inf")
        elif fin.any():
            lerr = max(lerr, (lb.double()[fin] - rl[fin]).abs().max().item())
    ok = (not nan) and err <= 2 * tol + 1e-3 and lerr <= 1e-3
    return ok, err, 2 * tol + 1e-3, lerr, ("NaN!" if nan else "")


# --------------------------------------------------------------------------- suites
def correctness_cases():
    cases = []  # (cell kwargs, case kwargs, label)
    for dtype, hd in itertools.product(["bf16", "f16"], [64, 80, 96, 128, 192, 256]):
        cases.append((dict(dtype=dtype, head_dim=hd), dict(B=2, H=4, sq=257, sk=257), "dense 257"))
        cases.append((dict(dtype=dtype, head_dim=hd, causal=True), dict(B=2, H=2, sq=1023, sk=1023), "causal 1023"))
        cases.append((dict(dtype=dtype, head_dim=hd, varlen=True, causal=True, gqa=2), dict(B=0, H=4, sq=0, sk=0, varlen_lens=([1, 17, 113, 300, 64], [1, 40, 113, 257, 129])), "varlen causal gqa2"))
    for hd in [64, 128]:
        cases += [
            (dict(head_dim=hd), dict(B=1, H=2, sq=1, sk=1), "s=1"),
            (dict(head_dim=hd), dict(B=2, H=2, sq=17, sk=113), "sq<sk 17/113"),
            (dict(head_dim=hd), dict(B=1, H=2, sq=4097, sk=4097), "dense 4097"),
            (dict(head_dim=hd, causal=True), dict(B=2, H=2, sq=17, sk=113), "causal sq<sk"),
            (dict(head_dim=hd, causal=True), dict(B=2, H=2, sq=113, sk=17), "causal sq>sk (empty rows)"),
            (dict(head_dim=hd, causal=True), dict(B=1, H=2, sq=1, sk=4097), "causal decode 1/4097"),
            (dict(head_dim=hd, causal=True), dict(B=1, H=2, sq=4097, sk=4097), "causal 4097"),
            (dict(head_dim=hd, window=100), dict(B=2, H=2, sq=1023, sk=1023), "window 100"),
            (dict(head_dim=hd, window=64, sink=4), dict(B=2, H=2, sq=1023, sk=1100), "sink4+window64"),
            (dict(head_dim=hd, causal=True, window=200, sink=70), dict(B=1, H=2, sq=700, sk=1023), "sink70+window200"),
            (dict(head_dim=hd, alibi=True), dict(B=2, H=4, sq=113, sk=300), "alibi dense"),
            (dict(head_dim=hd, alibi=True, causal=True), dict(B=2, H=4, sq=300, sk=300), "alibi causal"),
            (dict(head_dim=hd, has_softcap=True, softcap="30.0f"), dict(B=2, H=2, sq=300, sk=300), "softcap 30"),
            (dict(head_dim=hd, has_softcap=True, softcap="20.0f", causal=True, alibi=True), dict(B=2, H=2, sq=300, sk=333), "softcap+alibi causal"),
            (dict(head_dim=hd, gqa=4), dict(B=2, H=8, sq=200, sk=200), "gqa4"),
            (dict(head_dim=hd, gqa=8, causal=True), dict(B=2, H=16, sq=200, sk=200), "gqa8 causal"),
            (dict(head_dim=hd, gqa=8), dict(B=2, H=8, sq=200, sk=333), "MQA (8 heads, 1 kv)"),
            (dict(head_dim=hd, varlen=True), dict(B=0, H=2, sq=0, sk=0, varlen_lens=([1, 17, 113, 1023, 4], [5, 17, 1, 1023, 300])), "varlen dense"),
            (dict(head_dim=hd, varlen=True, causal=True, window=50, sink=3), dict(B=0, H=2, sq=0, sk=0, varlen_lens=([1, 17, 113, 1023], [1, 30, 113, 1100])), "varlen sink+window"),
            (dict(head_dim=hd, paged=True, page_size=16, causal=True), dict(B=3, H=4, sq=33, sk=300, paged=True), "paged16 causal"),
        ]
    for dtype in ["f16"]:
        cases.append((dict(dtype=dtype, head_dim=128, causal=True, gqa=4), dict(B=1, H=8, sq=1023, sk=4097), "f16 causal gqa4 sq<sk"))
    cases += fp8_cases()
    return cases


def fp8_cases():
    """fp8 cells (sm90a): tolerance = 2 x (fp8-precision CPU-style ref - f64 ref) + 1e-3."""
    cases = []
    A = "sm90a"
    for dtype, hd in itertools.product(["e4m3", "e5m2"], [64, 80, 96, 128, 192, 256]):
        cases.append((dict(arch=A, dtype=dtype, head_dim=hd), dict(B=2, H=4, sq=257, sk=257), "fp8 dense 257"))
        cases.append((dict(arch=A, dtype=dtype, head_dim=hd, causal=True), dict(B=2, H=2, sq=1023, sk=1023), "fp8 causal 1023"))
        cases.append((dict(arch=A, dtype=dtype, head_dim=hd, varlen=True, causal=True, gqa=2), dict(B=0, H=4, sq=0, sk=0, varlen_lens=([1, 17, 113, 300, 64], [1, 40, 113, 257, 129])), "fp8 varlen causal gqa2"))
    for dtype in ["e4m3", "e5m2"]:
        hd = 128
        cases += [
            (dict(arch=A, dtype=dtype, head_dim=hd), dict(B=1, H=2, sq=1, sk=1), "fp8 s=1"),
            (dict(arch=A, dtype=dtype, head_dim=hd), dict(B=2, H=2, sq=17, sk=113, descale=False), "fp8 null descales"),
            (dict(arch=A, dtype=dtype, head_dim=hd), dict(B=1, H=2, sq=4097, sk=4097), "fp8 dense 4097"),
            (dict(arch=A, dtype=dtype, head_dim=hd, causal=True), dict(B=2, H=2, sq=113, sk=17), "fp8 causal sq>sk (empty rows)"),
            (dict(arch=A, dtype=dtype, head_dim=hd, causal=True), dict(B=1, H=2, sq=1, sk=4097), "fp8 causal decode 1/4097"),
            (dict(arch=A, dtype=dtype, head_dim=hd, window=100), dict(B=2, H=2, sq=1023, sk=1023), "fp8 window 100"),
            (dict(arch=A, dtype=dtype, head_dim=hd, causal=True, window=200, sink=70), dict(B=1, H=2, sq=700, sk=1023), "fp8 sink70+window200"),
            (dict(arch=A, dtype=dtype, head_dim=hd, alibi=True, causal=True), dict(B=2, H=4, sq=300, sk=300), "fp8 alibi causal"),
            (dict(arch=A, dtype=dtype, head_dim=hd, has_softcap=True, softcap="20.0f", causal=True, alibi=True), dict(B=2, H=2, sq=300, sk=333), "fp8 softcap+alibi causal"),
            (dict(arch=A, dtype=dtype, head_dim=hd, gqa=8, causal=True), dict(B=2, H=16, sq=200, sk=200), "fp8 gqa8 causal"),
            (dict(arch=A, dtype=dtype, head_dim=hd, varlen=True, causal=True, window=50, sink=3), dict(B=0, H=2, sq=0, sk=0, varlen_lens=([1, 17, 113, 1023], [1, 30, 113, 1100])), "fp8 varlen sink+window"),
            (dict(arch=A, dtype=dtype, head_dim=hd, paged=True, page_size=16, causal=True), dict(B=3, H=4, sq=33, sk=300, paged=True), "fp8 paged16 causal"),
        ]
    for hd in [64, 256]:
        cases.append((dict(arch=A, dtype="e4m3", head_dim=hd, has_softcap=True, softcap="30.0f", window=64, sink=4, gqa=4), dict(B=2, H=8, sq=300, sk=333), "fp8 softcap window sink gqa4"))
    return cases


def perf_shapes():
    out = []
    for hd in [64, 128, 256]:
        H = 2048 // hd
        for s in [2048, 4096, 8192, 16384]:
            out.append((16384 // s, H, s, hd))
    return out


def time_fn(torch, fn, warm=5, reps=30):
    for _ in range(warm):
        fn()
    ev = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)) for _ in range(reps)]
    for a, b in ev:
        a.record(); fn(); b.record()
    torch.cuda.synchronize()
    ts = sorted(a.elapsed_time(b) for a, b in ev)
    return ts[len(ts) // 2]


def perf_case(torch, kern, c, B, H, s, d, sdpa=True):
    dt = torch_dtype(torch, c)
    fp8 = c["dtype"] in FP8
    q = torch.randn(B, s, H, d, device="cuda").to(dt)
    k = torch.randn(B, s, H, d, device="cuda").to(dt)
    v = torch.randn(B, s, H, d, device="cuda").to(dt)
    o = torch.full(q.shape, float("nan"), device="cuda", dtype=torch.bfloat16 if fp8 else dt)
    lse = torch.empty(B, H, s, device="cuda")
    P, grid, scale = make_params(torch, c, q, k, v, o, lse, B, H, H, s, s)
    stream = torch.cuda.current_stream().cuda_stream
    t = time_fn(torch, lambda: kern.launch(P, grid, stream))
    flops = 4.0 * B * H * s * s * d / (2 if c["causal"] else 1)
    res = dict(ours_ms=t, ours_tf=flops / t / 1e9)
    # spot check output vs SDPA
    from torch.nn.attention import sdpa_kernel, SDPBackend
    if fp8:  # anchor: torch flash on the dequantised inputs in bf16
        q, k, v = q.to(torch.bfloat16), k.to(torch.bfloat16), v.to(torch.bfloat16)
    qt, kt, vt = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
    with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
        ref = torch.nn.functional.scaled_dot_product_attention(qt, kt, vt, is_causal=c["causal"])
        res["maxdiff_vs_sdpa"] = (ref.transpose(1, 2).float() - o.float()).abs().max().item()
        if sdpa:
            ts = time_fn(torch, lambda: torch.nn.functional.scaled_dot_product_attention(qt, kt, vt, is_causal=c["causal"]))
            res.update(sdpa_ms=ts, sdpa_tf=flops / ts / 1e9)
    del q, k, v, o, lse
    return res


def main():
    global LOG
    ap = argparse.ArgumentParser()
    ap.add_argument("--correct", action="store_true")
    ap.add_argument("--perf", action="store_true")
    ap.add_argument("--tiles", default="", help="json list of [hd, bm, bn, warps, stages] to sweep")
    ap.add_argument("--out", default=os.environ.get("OUT", "/tmp"))
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--tile-sdpa", dest="tile_sdpa", action="store_true", help="time torch SDPA flash beside each tile cell")
    ap.add_argument("--tile-check", dest="tile_check", action="store_true", help="check each tile cell against the reference first")
    ap.add_argument("--tile-seqlens", dest="tile_seqlens", default="4096,16384")
    ap.add_argument("--perf-dtypes", dest="perf_dtypes", default="bf16,f16")
    ap.add_argument("--fp8-perf", dest="fp8_perf", action="store_true", help="e4m3 hd128 s=4k/16k vs torch flash (bf16)")
    ap.add_argument("--no-fp8", dest="no_fp8", action="store_true")
    a = ap.parse_args()
    a.tile_seqlens = [int(x) for x in a.tile_seqlens.split(",")]
    os.makedirs(a.out, exist_ok=True)
    LOG = open(os.path.join(a.out, "harness.log"), "w")
    summary = []

    # ---------------- compile everything up front (parallel NVRTC)
    cells = {}
    corr = correctness_cases() if a.correct else []
    if a.no_fp8:
        corr = [x for x in corr if x[0].get("dtype") not in FP8]
    for ck, _, _ in corr:
        c = fa_render.make_cell(**ck); cells[c["kernel_name"]] = c
    perf_cells = []
    if a.perf:
        for dtype, hd, causal in itertools.product(a.perf_dtypes.split(","), [64, 128, 256], [False, True]):
            c = fa_render.make_cell(dtype=dtype, head_dim=hd, causal=causal)
            cells[c["kernel_name"]] = c; perf_cells.append(c)
    fp8_cells = []
    if a.fp8_perf:
        for dtype, causal in itertools.product(["e4m3"], [False, True]):
            c = fa_render.make_cell(dtype=dtype, head_dim=128, causal=causal)
            cells[c["kernel_name"]] = c; fp8_cells.append(c)
    tile_cells = []
    if a.tiles:
        for ent in json.loads(a.tiles):
            hd, bm, bn, w, st = ent[:5]
            dtype = ent[5] if len(ent) > 5 else "bf16"
            defs = ent[6] if len(ent) > 6 else []
            # further cell fields, e.g. {"swizzle": true} or {"gqa": 8} (timed with K/V
            # of all heads, so a gqa > 1 cell's speed is meaningful, its diff is not)
            extra = ent[7] if len(ent) > 7 else {}
            for causal in [False, True]:
                c = fa_render.make_cell(dtype=dtype, head_dim=hd, causal=causal, block_m=bm, block_n=bn, num_warps=w, stages=st, defines=defs, **extra)
                cells[c["kernel_name"]] = c; tile_cells.append(c)
    t0 = time.time()
    comp = compile_all(list(cells.values()))
    log(f"compiled {len(cells)} kernels in {time.time() - t0:.1f}s wall")
    import torch
    torch.zeros(1, device="cuda")
    from cuda.bindings import driver as cu
    cu.cuInit(0)
    log("device:", torch.cuda.get_device_name(), "torch", torch.__version__)
    kern = {}
    for n, r in comp.items():
        if r["cubin"] is not None:
            kern[n] = Kernel(cells[n], r["cubin"])
    log("%-64s %5s %6s %6s %7s" % ("kernel", "regs", "spill", "local", "nvrtc_s"))
    for n in sorted(comp):
        r = comp[n]
        log("%-64s %5d %6d %6d %7.2f" % (n, r["regs"], r["spill"], kern[n].local if n in kern else -1, r["t"]))

    # ---------------- correctness
    if corr:
        npass = 0
        for ck, case, label in corr:
            c = fa_render.make_cell(**ck)
            n = c["kernel_name"]
            if n not in kern:
                summary.append(f"FAIL(compile) {n} {label}"); continue
            try:
                ok, err, tol, lerr, note = run_case(torch, kern[n], c, **case)
            except Exception as e:  # noqa
                ok, err, tol, lerr, note = False, -1, -1, -1, f"EXC {e!r}"
                torch.cuda.synchronize()
            npass += ok
            line = f"{'PASS' if ok else 'FAIL'} {n:64s} {label:28s} err={err:.2e} tol={tol:.2e} lse={lerr:.1e} {note}"
            log(line)
            if not ok:
                summary.append(line)
        summary.append(f"correctness: {npass}/{len(corr)} passed")

    # ---------------- tile sweep (bf16) at s=4096 and 16384
    if tile_cells:
        log("\ntile sweep (bf16): kernel, shape, ms, TFLOP/s")
        for c in tile_cells:
            n = c["kernel_name"]
            if n not in kern: continue
            if a.tile_check:
                g = c["gqa"]
                for case in [dict(B=2, H=4 * g, sq=1023, sk=1023), dict(B=1, H=4 * g, sq=113, sk=4097), dict(B=1, H=2 * g, sq=4097, sk=17)]:
                    ok, err, tol, lerr, note = run_case(torch, kern[n], c, **case)
                    line = f"{'PASS' if ok else 'FAIL'} {n} {case} err={err:.2e} tol={tol:.2e} lse={lerr:.1e} {note}"
                    log(line)
                    if not ok: summary.append(line)
            for s in a.tile_seqlens:
                B, H = 16384 // s, 2048 // c["head_dim"]
                r = perf_case(torch, kern[n], c, B, H, s, c["head_dim"], sdpa=a.tile_sdpa)
                sd = f" sdpa {r['sdpa_tf']:6.1f} TF ratio {r['ours_tf'] / r['sdpa_tf']:.3f}" if a.tile_sdpa else ""
                log(f"TILE {n:64s} s={s:5d} {r['ours_ms']:8.3f} ms {r['ours_tf']:6.1f} TF{sd} regs={comp[n]['regs']} spill={comp[n]['spill']} diff={r['maxdiff_vs_sdpa']:.1e}")
                summary.append(f"TILE {n} s={s} {r['ours_tf']:.1f} TF")

    # ---------------- perf grid vs SDPA flash
    if perf_cells:
        log("\nperf (same card, same call): dtype hd causal B H s | ours TF | sdpa-flash TF | ratio")
        for c in perf_cells:
            n = c["kernel_name"]
            if n not in kern: continue
            for B, H, s, d in perf_shapes():
                if d != c["head_dim"]: continue
                r = perf_case(torch, kern[n], c, B, H, s, d)
                line = (f"PERF {c['dtype']:4s} hd{d:3d} {'causal' if c['causal'] else 'dense ':6s} B={B:2d} H={H:2d} s={s:5d} | "
                        f"ours {r['ours_tf']:6.1f} | sdpa {r['sdpa_tf']:6.1f} | {r['ours_tf'] / r['sdpa_tf']:.2f}x  diff={r['maxdiff_vs_sdpa']:.1e}")
                log(line); summary.append(line)
    if fp8_cells:
        log("\nfp8 perf (anchor: torch flash bf16 on the same shape, same call)")
        for c in fp8_cells:
            n = c["kernel_name"]
            if n not in kern: continue
            for s in [4096, 16384]:
                B, H, d = 16384 // s, 16, 128
                r = perf_case(torch, kern[n], c, B, H, s, d)
                line = (f"FP8PERF {c['dtype']} hd{d} {'causal' if c['causal'] else 'dense '} s={s:5d} | ours {r['ours_tf']:6.1f} | sdpa-bf16 {r['sdpa_tf']:6.1f} | diff={r['maxdiff_vs_sdpa']:.1e}")
                log(line); summary.append(line)
    log("\n==== SUMMARY ====")
    for s in summary:
        log(s)


if __name__ == "__main__":
    main()
