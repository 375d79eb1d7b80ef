#!/usr/bin/env python3
"""Paged KV-cache decode harness (GPU machine).

Compiles the rendered cells (kernels-dev/paged/rendered/*.cu, made by render.py
on the dev box) with NVRTC (cuda.bindings), launches through the driver API on
torch's current stream, checks decode / merge / append against a float64 torch
gather-then-dense reference, and benchmarks against copy bandwidth and SDPA.

  python3 kernels-dev/paged/harness.py --correct --bench --out $OUT
  compute-sanitizer --tool memcheck python3 kernels-dev/paged/harness.py --small
  PAGES=seq ...   # every sequence's pages in order instead of shuffled (measurement aid)
  PAGES=sorted ...   # each sequence's shuffled pages in ascending block order (measurement aid)
  PAGES=bucket8 ...  # ... ordered only by which eighth of the blocks they are in
"""
import zlib, argparse, ctypes, json, math, os, re, sys, time
from concurrent.futures import ProcessPoolExecutor

HERE = os.path.dirname(os.path.abspath(__file__))
RENDERED = os.path.join(HERE, "rendered")
LOGF = None


def log(*a):
    s = " ".join(str(x) for x in a)
    print(s, flush=True)
    if LOGF:
        LOGF.write(s + "\n"); LOGF.flush()


# ---------------------------------------------------------------- split heuristic
def paged_num_splits(batch, kv_head_groups, ctx, sm_count, ctas_per_sm, smem_bytes, window=0, sink=0,
                     block_n=64, max_splits=128, min_tiles=4):
    """Host-side split heuristic (mirror of fa_runtime::paged::num_splits, whose
    doc has the model; split_model.py scores it against split_sweep.py runs).

    T     = KV tiles (block_n = 64 / heads_per_cta tokens) one CTA must visit for
            the longest context (window cells: only the window + sink tiles).
    base  = batch * kv_head_groups CTAs per split, slots = sm_count * ctas_per_sm.
    c     = CTAs that saturate the memory: 6.5 MiB (one split) / 8 MiB (splits)
            over the entry's dynamic shared memory (its ring).
    cost(s) = sum over the launch's waves of (k^5 + c^5)^(1/5) / slots, times
              (ceil(T/s) * block_n + 48) tokens; the smallest s of least cost
              in [1, min(max_splits, max(1, T // min_tiles))].
    """
    T = visited_tiles(ctx, window, sink, block_n)
    base = max(1, batch * kv_head_groups)
    slots = max(1, sm_count * ctas_per_sm)
    smax = min(max_splits, max(1, T // min_tiles))
    best, best_cost = 1, None
    for s in range(1, smax + 1):
        c = (6.5 if s == 1 else 8.0) * 2 ** 20 / max(1, smem_bytes)
        full, part = divmod(base * s, slots)
        wave = lambda k: (k ** 5 + c ** 5) ** (1 / 5) / slots
        cost = (full * wave(slots) + (wave(part) if part else 0)) * ((T + s - 1) // s * block_n + 48)
        if best_cost is None or cost < best_cost:
            best, best_cost = s, cost
    return best


# ---------------------------------------------------------------- NVRTC
def _compile_worker(args):
    src, name, arch, extra = args
    from cuda.bindings import nvrtc
    err, prog = nvrtc.nvrtcCreateProgram(src.encode(), (name + ".cu").encode(), 0, [], [])
    opts = [f"--gpu-architecture={arch}".encode(), b"-std=c++17", b"-default-device", b"-Xptxas=-v"] + [x.encode() for x in extra]
    (err,) = nvrtc.nvrtcCompileProgram(prog, len(opts), opts)
    _, n = nvrtc.nvrtcGetProgramLogSize(prog)
    buf = b" " * n
    nvrtc.nvrtcGetProgramLog(prog, buf)
    lg = buf.decode(errors="replace")
    if err != nvrtc.nvrtcResult.NVRTC_SUCCESS:
        return name, None, lg
    _, n = nvrtc.nvrtcGetCUBINSize(prog)
    cub = b" " * n
    nvrtc.nvrtcGetCUBIN(prog, cub)
    return name + "".join(extra), cub, lg


def compile_cells(cells, arch="sm_90a", extra=()):
    jobs = [(open(os.path.join(RENDERED, c["kernel_name"] + ".cu")).read(), c["kernel_name"], arch, tuple(extra)) for c in cells]
    out = {}
    with ProcessPoolExecutor(min(14, len(jobs))) as ex:
        for name, cub, lg in ex.map(_compile_worker, jobs):
            if cub is None:
                log("COMPILE FAIL", name, lg[:3000]); sys.exit(1)
            regs = re.findall(r"Used (\d+) registers", lg)
            spill = [x for x in re.findall(r"(\d+) bytes spill stores", lg) if x != "0"]
            out[name] = cub
            log(f"compiled {name}: regs {regs} spills {spill or 0}")
    return out


# ---------------------------------------------------------------- ABI mirror
P_ = ctypes.c_void_p
LL = ctypes.c_longlong
I_ = ctypes.c_int
F_ = ctypes.c_float


class PagedDecodeParams(ctypes.Structure):
    _fields_ = [(n, P_) for n in ["q", "k_cache", "v_cache", "o", "lse", "o_accum", "lse_accum", "block_table",
                                  "context_lens", "alibi_slopes", "q_descale", "k_descale", "v_descale",
                                  "merge_counters"]] + \
               [(n, LL) for n in ["q_batch_stride", "q_head_stride", "k_block_stride", "k_page_stride", "k_head_stride",
                                  "v_block_stride", "v_page_stride", "v_head_stride", "o_batch_stride", "o_head_stride"]] + \
               [(n, I_) for n in ["batch", "num_heads", "num_kv_heads", "num_blocks", "block_table_stride", "num_splits",
                                  "heads_per_cta"]] + \
               [("softmax_scale", F_), ("scale_log2", F_), ("pad_", I_)]


class PagedAppendParams(ctypes.Structure):
    _fields_ = [(n, P_) for n in ["k_new", "v_new", "k_cache", "v_cache", "slot_mapping"]] + \
               [(n, LL) for n in ["k_new_token_stride", "k_new_head_stride", "v_new_token_stride", "v_new_head_stride",
                                  "k_block_stride", "k_page_stride", "k_head_stride",
                                  "v_block_stride", "v_page_stride", "v_head_stride"]] + \
               [(n, I_) for n in ["num_tokens", "num_kv_heads", "num_blocks", "pad_"]]


class Module:
    def __init__(self, cell, cubin, torch, threads=128):
        from cuda.bindings import driver as cu
        self.cu, self.cell, self.torch = cu, cell, torch
        # Whether _decode_pair takes splits: as rendered (fa_spec::paged_pair_splits);
        # variant_exp.py sets it from a -DPD_PAIR_SPLITS= override.
        self.pair_splits = bool(cell["pd_pair_splits"])
        name = cell["kernel_name"]
        err, self.mod = cu.cuModuleLoadData(cubin)
        assert err == cu.CUresult.CUDA_SUCCESS, err
        f = lambda s: cu.cuModuleGetFunction(self.mod, (name + s).encode())[1]
        self.f_merge, self.f_app = f("_decode_merge"), f("_append")
        self.fused = False   # the last split merges (merge_counters set), no _decode_merge launch
        self.threads = threads   # kPdThreads of the build (-DPD_WARPS=n: 32 n; rendered: 4 warps on sm_90a, the harness's arch)
        # The decode entry per kv heads per CTA (1, 2; "u": one head through _decode_unsplit):
        # (function, dynamic smem, CTAs/SM, registers). Renders before _decode_pair served
        # every hc from _decode, and before _decode_unsplit have no "u".
        self.entries = {}
        for hc, stem in ((1, "_decode"), ("u", "_decode_unsplit"), (2, "_decode_pair")):
            err, fn = cu.cuModuleGetFunction(self.mod, (name + stem).encode())
            if err != cu.CUresult.CUDA_SUCCESS:
                continue
            err, dptr, sz = cu.cuModuleGetGlobal(self.mod, (name + stem + "_smem_bytes").encode())
            assert err == cu.CUresult.CUDA_SUCCESS, err
            t = torch.zeros(1, dtype=torch.int32, device="cuda")
            torch.cuda.synchronize()
            cu.cuMemcpyDtoD(t.data_ptr(), dptr, 4)
            torch.cuda.synchronize()
            smem = int(t.item())
            (err,) = cu.cuFuncSetAttribute(fn, cu.CUfunction_attribute.CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, smem)
            assert err == cu.CUresult.CUDA_SUCCESS, err
            err, occ = cu.cuOccupancyMaxActiveBlocksPerMultiprocessor(fn, threads, smem)
            regs = cu.cuFuncGetAttribute(cu.CUfunction_attribute.CU_FUNC_ATTRIBUTE_NUM_REGS, fn)[1]
            self.entries[hc] = (fn, smem, occ, regs)
        self.f_dec, self.smem, self.occ, self.regs = self.entries[1]   # one kv head per CTA
        self._keep = []

    def entry(self, hc):
        return self.entries.get(hc, self.entries[1])

    def occ_for(self, hc):
        """CTAs per SM of the entry that serves hc kv heads per CTA (for the split heuristic)."""
        return self.entry(hc)[2]

    def describe(self):
        return ", ".join(f"hc {hc}: smem {e[1]} B, regs {e[3]}, CTAs/SM {e[2]}" for hc, e in self.entries.items())

    def _launch(self, fn, grid, block, smem, prm):
        cu = self.cu
        argv = (ctypes.c_void_p * 1)(ctypes.addressof(prm))
        self._keep = [prm, argv]
        stream = cu.CUstream(self.torch.cuda.current_stream().cuda_stream)
        (err,) = cu.cuLaunchKernel(fn, grid[0], grid[1], grid[2], block, 1, 1, smem, stream, ctypes.addressof(argv), 0)
        assert err == cu.CUresult.CUDA_SUCCESS, err

    def decode(self, P, unsplit=False):
        """unsplit: one kv head a CTA through _decode_unsplit (one split; renders
        before it had none, and launch _decode)."""
        hc = P.heads_per_cta
        if hc == 2 and P.num_splits != 1 and not self.pair_splits:
            raise ValueError("this _decode_pair is compiled for one split (see split_counts)")
        if unsplit and (hc != 1 or P.num_splits != 1):
            raise ValueError("_decode_unsplit serves one kv head a CTA and one split")
        fn, smem = self.entry("u" if unsplit else hc)[:2]
        self._launch(fn, ((P.num_kv_heads + hc - 1) // hc, P.num_splits, P.batch), self.threads, smem, P)
        if P.num_splits > 1 and not P.merge_counters:
            self._launch(self.f_merge, ((P.batch * P.num_heads + 3) // 4, 1, 1), 128, 0, P)

    def append(self, A):
        d = self.cell["head_dim"]
        chunks = d * 2 // 16
        tot = A.num_tokens * A.num_kv_heads * chunks
        if tot:
            self._launch(self.f_app, ((tot + 255) // 256, 1, 1), 256, 0, A)


# ---------------------------------------------------------------- problem setup
class Problem:
    """Paged caches with shuffled pages; NaN everywhere that is not a live token."""

    def __init__(self, torch, c, ctxs, kvh, extra_pages=0, invalid=(), seed=0, fill_nan=True, bt_pad=2):
        g = torch.Generator(device="cuda").manual_seed(seed)
        self.torch, self.c = torch, c
        dt = {"bf16": torch.bfloat16, "f16": torch.float16, "e4m3": torch.float8_e4m3fn, "e5m2": torch.float8_e5m2}[c["dtype"]]
        self.dt = dt
        self.odt = torch.bfloat16 if c["dtype"] in ("e4m3", "e5m2") else dt   # O's dtype (fp8 cells: bf16)
        self.elem = 1 if c["dtype"] in ("e4m3", "e5m2") else 2
        ps, d = c["page_size"], c["head_dim"]
        B, H = len(ctxs), kvh * c["gqa"]
        self.B, self.H, self.KVH, self.d, self.ps = B, H, kvh, d, ps
        self.ctxs = list(ctxs)
        npages = [(n + extra_pages * ps + ps - 1) // ps for n in ctxs]   # room for appends
        NB = sum(npages) + 3
        self.NB = NB
        perm = torch.randperm(NB, generator=g, device="cuda").to(torch.int32)
        if os.environ.get("PAGES") == "seq":   # measurement aid: every sequence's pages in order, back to back
            perm = torch.arange(NB, device="cuda", dtype=torch.int32)
        mbs = max(max(npages), 1) + bt_pad
        bt = torch.full((B, mbs), -1, dtype=torch.int32, device="cuda")
        o = 0
        for b, n in enumerate(npages):
            mine = perm[o:o + n]
            if os.environ.get("PAGES") == "sorted":
                mine = torch.sort(mine).values
            elif os.environ.get("PAGES", "").startswith("bucket"):   # bucketN: sorted by which of N ranges of blocks a page is in
                nb = int(os.environ["PAGES"][6:])
                mine = mine[torch.sort(mine.long() * nb // NB, stable=True).indices]
            bt[b, :n] = mine
            o += n
            bt[b, n:] = torch.tensor([NB + 5, -7, 1 << 30][: mbs - n] + [-1] * max(0, mbs - n - 3), dtype=torch.int32, device="cuda")[: mbs - n]
        # in-context invalid page entries (treated as masked)
        self.invalid = []
        for (b, pg, val) in invalid:
            bt[b, pg] = val; self.invalid.append((b, pg))
        self.bt, self.mbs = bt, mbs
        shape = (NB, ps, kvh, d)
        fillv = float("nan") if fill_nan else 0.0
        if self.elem == 1:   # fp8: filled and scattered as bytes (0x7F: NaN in e4m3fn and e5m2)
            self.kc = torch.full(shape, 0x7F if fill_nan else 0, dtype=torch.uint8, device="cuda").view(dt)
            self.vc = torch.full(shape, 0x7F if fill_nan else 0, dtype=torch.uint8, device="cuda").view(dt)
        else:
            self.kc = torch.full(shape, fillv, dtype=dt, device="cuda")
            self.vc = torch.full(shape, fillv, dtype=dt, device="cuda")
        raw = (lambda t: t.view(torch.uint8)) if self.elem == 1 else (lambda t: t)
        self.K, self.V = [], []   # per seq [ctx, kvh, d] (float source of truth)
        for b, n in enumerate(ctxs):
            k = torch.randn(n, kvh, d, generator=g, device="cuda").to(dt)
            v = torch.randn(n, kvh, d, generator=g, device="cuda").to(dt)
            self.K.append(k); self.V.append(v)
            if n:
                t = torch.arange(n, device="cuda")
                blk = bt[b, (t // ps)].long()
                okb = (blk >= 0) & (blk < NB)
                raw(self.kc)[blk[okb], (t % ps)[okb]] = raw(k)[okb]
                raw(self.vc)[blk[okb], (t % ps)[okb]] = raw(v)[okb]
        self.q = torch.randn(B, H, d, generator=g, device="cuda").to(dt)
        self.slopes = (torch.rand(H, generator=g, device="cuda") * 0.5 + 0.01).float()
        self.cl = torch.tensor(ctxs, dtype=torch.int32, device="cuda")
        self.scale = 1.0 / math.sqrt(d)
        # arrival counters of the fused merge, then its slice claims (zero; the kernel leaves them zero)
        self.counters = torch.zeros(2 * B * kvh, dtype=torch.int32, device="cuda")

    def params(self, o, lse, oacc, lacc, splits, hc=1, fused=False):
        """fused: the merge inside _decode (merge_counters set when there are splits to merge)."""
        P = PagedDecodeParams()
        P.q, P.k_cache, P.v_cache = self.q.data_ptr(), self.kc.data_ptr(), self.vc.data_ptr()
        P.o, P.lse = o.data_ptr(), lse.data_ptr()
        P.o_accum = oacc.data_ptr() if oacc is not None else None
        P.lse_accum = lacc.data_ptr() if lacc is not None else None
        P.block_table, P.context_lens, P.alibi_slopes = self.bt.data_ptr(), self.cl.data_ptr(), self.slopes.data_ptr()
        P.q_batch_stride, P.q_head_stride = self.q.stride(0), self.q.stride(1)
        P.k_block_stride, P.k_page_stride, P.k_head_stride = self.kc.stride(0), self.kc.stride(1), self.kc.stride(2)
        P.v_block_stride, P.v_page_stride, P.v_head_stride = self.vc.stride(0), self.vc.stride(1), self.vc.stride(2)
        P.o_batch_stride, P.o_head_stride = o.stride(0), o.stride(1)
        P.batch, P.num_heads, P.num_kv_heads, P.num_blocks = self.B, self.H, self.KVH, self.NB
        P.block_table_stride, P.num_splits, P.heads_per_cta, P.pad_ = self.mbs, splits, hc, 0
        P.softmax_scale = self.scale
        P.scale_log2 = self.scale * math.log2(math.e)
        if fused and splits > 1:
            P.merge_counters = self.counters.data_ptr()
        return P

    def buffers(self, splits):
        """Uninitialised O [B, H, d], LSE [B, H] and, with splits, the split
        partials O_accum [splits, B, H, d] / LSE_accum [splits, B, H] (else
        None): what params() points a decode at."""
        torch = self.torch
        o = torch.empty(self.B, self.H, self.d, dtype=self.odt, device="cuda")
        lse = torch.empty(self.B, self.H, dtype=torch.float32, device="cuda")
        oacc = lacc = None
        if splits > 1:
            oacc = torch.empty(splits, self.B, self.H, self.d, dtype=torch.float32, device="cuda")
            lacc = torch.empty(splits, self.B, self.H, dtype=torch.float32, device="cuda")
        return o, lse, oacc, lacc

    def run(self, mod, splits, poison=True, hc=1, unsplit=False):
        o, lse, oacc, lacc = self.buffers(splits)
        if poison:
            for t in (o, lse, oacc, lacc):
                if t is not None: t.fill_(float("nan"))
        P = self.params(o, lse, oacc, lacc, splits, hc, fused=mod.fused)
        mod.decode(P, unsplit)
        return o, lse

    def reference(self, b, lowprec=False):
        """O [H, d], LSE [H] for sequence b (float64 or emulated low precision)."""
        torch, c = self.torch, self.c
        n, H, d, G = self.ctxs[b], self.H, self.d, c["gqa"]
        if n == 0:
            return torch.zeros(H, d, dtype=torch.float64, device="cuda"), torch.full((H,), -math.inf, dtype=torch.float64, device="cuda")
        q, k, v = self.q[b], self.K[b], self.V[b]
        ft = torch.float32 if lowprec else torch.float64
        kk = k.to(ft).repeat_interleave(G, dim=1)   # [n, H, d]
        vv = v.to(ft).repeat_interleave(G, dim=1)
        s = torch.einsum("hd,nhd->hn", q.to(ft), kk) * self.scale
        if c["has_softcap"]:
            X = float(c["softcap"].rstrip("f"))
            s = X * torch.tanh(s / X)
        pos = n - 1
        j = torch.arange(n, device="cuda")
        if c["alibi"]:
            s = s - self.slopes.to(ft).view(H, 1) * (pos - j).abs().to(ft).view(1, n)
        vis = torch.ones(n, dtype=torch.bool, device="cuda")
        if c["mask_causal"]:
            vis &= j <= pos
        if c["window"]:
            vis &= j > pos - c["window"]
        if c["sink"]:
            vis |= (j < c["sink"]) & (j <= pos)
        for (bb, pg) in self.invalid:
            if bb == b:
                vis &= (j // self.ps) != pg
        s = s.masked_fill(~vis.view(1, n), -math.inf)
        lse = torch.logsumexp(s, dim=-1)
        if not vis.any():
            return torch.zeros(H, d, dtype=ft, device="cuda").double(), torch.full((H,), -math.inf, device="cuda").double()
        m = s.max(dim=-1, keepdim=True).values
        p = torch.exp(s - m)
        l = p.sum(-1, keepdim=True)
        if lowprec:
            p = p.to(self.dt).to(ft)
        o = torch.einsum("hn,nhd->hd", p, vv)
        o = o / l
        if lowprec:
            o = o.to(self.dt)
        return o.double(), lse.double()


def check(prob, o, lse, tag):
    torch = prob.torch
    worst = 0.0
    ok = True
    for b in range(prob.B):
        ro, rl = prob.reference(b)
        lo, _ = prob.reference(b, lowprec=True)
        tol = 2 * (lo - ro).abs().max().item() + 1e-3
        ob = o[b].double()
        err = (ob - ro).abs().max().item() if torch.isfinite(ob).all() else float("nan")
        lb = lse[b].double()
        linf = torch.isinf(rl)
        lerr_ok = bool(torch.equal(torch.isinf(lb) & (lb < 0), linf)) and not torch.isnan(lb).any()
        lerr = (lb[~linf] - rl[~linf]).abs().max().item() if (~linf).any() else 0.0
        good = (err == err) and err <= tol and lerr_ok and lerr <= 1e-3
        worst = max(worst, err / tol if err == err else 1e9)
        if not good:
            ok = False
            log(f"  FAIL {tag} seq {b} ctx {prob.ctxs[b]}: max|o-ref| {err:.3e} tol {tol:.3e} lse_err {lerr:.3e} inf_ok {lerr_ok}")
    return ok, worst


def runtime_splits(B, kv_heads, ctx, sm, mod, hc, window=0, sink=0, block_n=64):
    """The split count a launch of `mod` takes with hc kv heads per CTA, as the
    runtime plans it (fa_runtime::paged::decode_layout): _decode takes
    paged_num_splits at its occupancy and shared memory; _decode_pair (hc = 2)
    one split, or where it takes splits the same model for half the CTAs and
    half-size tiles at its own occupancy and shared memory."""
    if hc == 2 and kv_heads % 2 == 0:   # the runtime pairs only an even number of kv heads
        if not mod.pair_splits:
            return 1
        _, smem, occ, _ = mod.entry(2)
        return paged_num_splits(B, (kv_heads + 1) // 2, ctx, sm, occ, smem, window, sink, block_n=block_n // 2)
    _, smem, occ, _ = mod.entry(1)
    return paged_num_splits(B, kv_heads, ctx, sm, occ, smem, window, sink, block_n=block_n)


def visited_tiles(ctx, window=0, sink=0, block_n=64):
    """Tiles the longest context visits (fa_runtime::paged::visited_tiles)."""
    eff = ctx
    if window > 0:
        eff = min(ctx, window + block_n + (sink + block_n - 1) // block_n * block_n)
    return max(1, (eff + block_n - 1) // block_n)


def launch_cost(ctas, ctx, sm, occ, smem, s, window=0, sink=0, block_n=64):
    """paged_num_splits' cost of ctas * s CTAs in CTA-tokens (its waves times
    the slots), comparable between entries (fa_runtime::paged::launch_cost)."""
    T = visited_tiles(ctx, window, sink, block_n)
    slots = max(1, sm * occ)
    c = (6.5 if s == 1 else 8.0) * 2 ** 20 / max(1, smem)
    full, part = divmod(max(1, ctas) * s, slots)
    wave = lambda k: (k ** 5 + c ** 5) ** (1 / 5)
    return (full * wave(slots) + (wave(part) if part else 0)) * ((T + s - 1) // s * block_n + 48)


def runtime_layout(B, kv_heads, ctx, sm, mod, window=0, sink=0):
    """(heads per CTA, splits, fused merge, unsplit) of a decode step, as fa_runtime::paged::decode_layout plans it: split pairs where
    the cell has them; else pairs without a split where they fill between
    half and all of the pair entry's slots; else one kv head a CTA, through
    _decode_unsplit (takes_unsplit) or _decode at num_splits. The merge is
    fused when every CTA is resident (fuses_merge)."""
    pairs = kv_heads >= 2 and kv_heads % 2 == 0 and 2 in mod.entries
    pair_ctas, pair_slots = B * (kv_heads // 2), sm * mod.occ_for(2)
    if pairs and mod.pair_splits:
        hc = 2
    elif pairs and 0 < pair_ctas and 2 * pair_ctas >= pair_slots and pair_ctas <= pair_slots:
        hc = 2
    else:
        hc = 1
    s = runtime_splits(B, kv_heads, ctx, sm, mod, hc, window, sink) if hc == 1 or mod.pair_splits else 1
    if hc == 1 and "u" in mod.entries:
        ctas = B * kv_heads
        _, smem1, occ1, _ = mod.entry(1)
        _, smemu, occu, _ = mod.entries["u"]
        if occu > 0 and ctas > 0:
            if s == 1:
                unsplit = smemu == smem1 or ctas > sm
            else:
                unsplit = (sm < ctas <= sm * occu and launch_cost(ctas, ctx, sm, occu, smemu, 1, window, sink)
                           <= launch_cost(ctas, ctx, sm, occ1, smem1, s, window, sink))
            if unsplit:
                return 1, 1, False, True
    groups = (kv_heads + hc - 1) // hc
    return hc, s, s > 1 and B * groups * s <= sm * mod.occ_for(hc), False


def split_counts(mod, hc, counts):
    """The split counts to run with hc kv heads per CTA: a _decode_pair (hc =
    2) without pair splits is compiled for one split, as the runtime launches it."""
    return {1} if hc == 2 and not mod.pair_splits else set(counts)


# ---------------------------------------------------------------- tests
def test_cell(torch, c, mod, small=False):
    ps, G = c["page_size"], c["gqa"]
    kvh = 2 if G < 32 else 1
    ctxs = [0, 1, 17, 3 * ps + 5, 555, 1300] if not small else [0, 1, 17, 3 * ps + 5, 300]
    if c["window"] or c["sink"]:
        ctxs += [c["window"] + 3, 2 * 64 + 1]
    invalid = [(4, 1, c_bad) for c_bad in [-3]] if not small else [(4, 1, 1 << 29)]
    if ps >= 256:
        invalid = [(5, 2, -3)] if not small else []
    prob = Problem(torch, c, ctxs, kvh, invalid=invalid, seed=zlib.crc32(c["kernel_name"].encode()) % 1000)
    allok, worst = True, 0.0
    sm = torch.cuda.get_device_properties(0).multi_processor_count
    for hc in [h for h in (1, 2) if h <= mod.threads // 32]:   # heads per CTA <= warps
        hs = runtime_splits(prob.B, kvh, max(ctxs), sm, mod, hc, c["window"], c["sink"], block_n=mod.threads // 2)
        for splits in sorted(split_counts(mod, hc, {1, 3, 7, 40, 150, hs} if not small else {1, 3})):   # 40, 150: merges of 32+ / 128+ splits
            for fused in (False, True):   # _decode_merge, then the merge inside _decode
                mod.fused = fused
                o, lse = prob.run(mod, splits, hc=hc)
                torch.cuda.synchronize()
                ok, w = check(prob, o, lse, f"hc={hc} splits={splits} fused={fused}")
                allok &= ok; worst = max(worst, w)
            mod.fused = False
            if not torch.equal(prob.counters, torch.zeros_like(prob.counters)):
                log(f"  FAIL hc={hc} splits={splits}: merge counters not returned to 0"); allok = False
    if "u" in mod.entries:   # one kv head a CTA, one split, through _decode_unsplit
        o, lse = prob.run(mod, 1, unsplit=True)
        torch.cuda.synchronize()
        ok, w = check(prob, o, lse, "unsplit")
        allok &= ok; worst = max(worst, w)
    return allok, worst


def test_append(torch, c, mod):
    """append one token per sequence (+ a -1 slot and an out-of-range slot),
    then decode(ctx+1) == reference over the concatenated K/V; cache untouched elsewhere."""
    ps, kvh, d = c["page_size"], 2, c["head_dim"]
    ctxs = [0, 5, 16, 100, 257]
    prob = Problem(torch, c, ctxs, kvh, extra_pages=1, seed=7)
    B = prob.B
    g = torch.Generator(device="cuda").manual_seed(11)
    T = B + 2
    kn = torch.randn(T, kvh, d, generator=g, device="cuda").to(prob.dt)
    vn = torch.randn(T, kvh, d, generator=g, device="cuda").to(prob.dt)
    slots = []
    for b, n in enumerate(ctxs):
        slots.append(int(prob.bt[b, n // ps].item()) * ps + n % ps)
    slots += [-1, prob.NB * ps + 3]
    sm_ = torch.tensor(slots, dtype=torch.int64, device="cuda")
    kc0, vc0 = prob.kc.clone(), prob.vc.clone()
    A = PagedAppendParams()
    A.k_new, A.v_new, A.k_cache, A.v_cache, A.slot_mapping = kn.data_ptr(), vn.data_ptr(), prob.kc.data_ptr(), prob.vc.data_ptr(), sm_.data_ptr()
    A.k_new_token_stride, A.k_new_head_stride = kn.stride(0), kn.stride(1)
    A.v_new_token_stride, A.v_new_head_stride = vn.stride(0), vn.stride(1)
    A.k_block_stride, A.k_page_stride, A.k_head_stride = prob.kc.stride(0), prob.kc.stride(1), prob.kc.stride(2)
    A.v_block_stride, A.v_page_stride, A.v_head_stride = prob.vc.stride(0), prob.vc.stride(1), prob.vc.stride(2)
    A.num_tokens, A.num_kv_heads, A.num_blocks, A.pad_ = T, kvh, prob.NB, 0
    mod.append(A)
    torch.cuda.synchronize()
    # expected caches
    for b in range(B):
        s = slots[b]
        kc0[s // ps, s % ps] = kn[b]; vc0[s // ps, s % ps] = vn[b]
    same = torch.equal(kc0.view(torch.int16), prob.kc.view(torch.int16)) and torch.equal(vc0.view(torch.int16), prob.vc.view(torch.int16))
    # attend over ctx+1
    for b in range(B):
        prob.K[b] = torch.cat([prob.K[b], kn[b:b + 1]]); prob.V[b] = torch.cat([prob.V[b], vn[b:b + 1]])
        prob.ctxs[b] += 1
    prob.cl = torch.tensor(prob.ctxs, dtype=torch.int32, device="cuda")
    allok = same
    for splits, hc in ((1, 1), (3, 1), (1, 2)):
        o, lse = prob.run(mod, splits, hc=hc)
        torch.cuda.synchronize()
        ok, _ = check(prob, o, lse, f"append splits={splits} hc={hc}")
        allok &= ok
    return allok, same


# ---------------------------------------------------------------- benchmarks
# FLUSH=1: every timed call (and timeline.py's recorded launches) follows a
# 256 MiB memset that evicts L2, as `fa bench --decode` and sdpa_anchor.py
# --decode time theirs; otherwise the next call finds the last one's tail
# (and its block table and context lengths) in L2. The memset leaves L2 full
# of dirty lines, which the timed call's reads write back; FLUSH=clean evicts
# L2 by reading 256 MiB instead (clean lines, nothing to write back).
FLUSH = os.environ.get("FLUSH") in ("1", "clean")
FLUSH_CLEAN = os.environ.get("FLUSH") == "clean"
_flush_buf = []


def flush_l2(torch):
    if FLUSH:
        if not _flush_buf:
            _flush_buf.append(torch.empty(256 << 20, dtype=torch.uint8, device="cuda"))
            _flush_buf.append(torch.empty(1, dtype=torch.int64, device="cuda"))
        if FLUSH_CLEAN:
            torch.sum(_flush_buf[0].view(torch.int64), dim=0, keepdim=True, out=_flush_buf[1])
        else:
            _flush_buf[0].zero_()


def time_fn(torch, fn, iters=30, warm=5):
    for _ in range(warm): fn()
    torch.cuda.synchronize()
    ev = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)) for _ in range(iters)]
    for a, b in ev:
        flush_l2(torch)
        a.record(); fn(); b.record()
    torch.cuda.synchronize()
    ts = sorted(a.elapsed_time(b) for a, b in ev)
    return ts[len(ts) // 2] * 1e-3


def sdpa_inputs(prob):
    """SDPA's view of a Problem with equal contexts: Q [B, H, 1, d] and the
    cache as contiguous K / V [B, kv heads, ctx, d]."""
    torch = prob.torch
    # (fp8 cells: SDPA has no fp8 path; bf16 tensors of the same values)
    q4 = prob.q.view(prob.B, prob.H, 1, prob.d).to(prob.odt)
    kd = torch.stack(prob.K).permute(0, 2, 1, 3).contiguous().to(prob.odt)
    vd = torch.stack(prob.V).permute(0, 2, 1, 3).contiguous().to(prob.odt)
    return q4, kd, vd


def gpu_session():
    """torch with CUDA initialised, the rendered dev cells (cells.json) by kernel name, and the SM count."""
    import torch
    torch.zeros(1, device="cuda")
    cells = {c["kernel_name"]: c for c in json.load(open(os.path.join(RENDERED, "cells.json")))}
    return torch, cells, torch.cuda.get_device_properties(0).multi_processor_count


def copy_bandwidth(torch):
    """The card's copy bandwidth (bytes read + written / s): median of a 2 GiB y.copy_(x)."""
    x = torch.empty(1 << 30, dtype=torch.int16, device="cuda").fill_(1)
    y = torch.empty_like(x)
    tc = time_fn(torch, lambda: y.copy_(x), iters=20)
    del x, y
    torch.cuda.empty_cache()
    return 2 * (1 << 30) * 2 / tc


def bench(torch, c, mods, results):
    sm = torch.cuda.get_device_properties(0).multi_processor_count
    copy_bw = copy_bandwidth(torch)
    log(f"copy bandwidth: {copy_bw / 1e9:.0f} GB/s (2 GiB y.copy_(x), read+write, median of 20)")
    results["copy_bw_GBs"] = copy_bw / 1e9
    import torch.nn.functional as F
    from torch.nn.attention import sdpa_kernel, SDPBackend
    for tag, B, ctx in (("a", 64, 4096), ("b", 1, 131072)):
        KVH, H, d = 8, 32, 128
        prob = Problem(torch, c, [ctx] * B, KVH, fill_nan=False, seed=3, bt_pad=0)
        kvbytes = 2 * B * ctx * KVH * d * 2
        qob = 2 * B * H * d * 2
        row = {"batch": B, "ctx": ctx, "sweep": {}}
        best = None
        for (vlabel, mod), hc in [(vm, h) for vm in mods for h in (1, 2)]:
            hs = runtime_splits(B, KVH, ctx, sm, mod, hc)
            row[f"heuristic_splits_{vlabel}_hc{hc}"] = hs
            cands = sorted(split_counts(mod, hc, {hs, max(1, hs // 2), hs * 2} | ({32, 64} if B == 1 else {1, 2})))
            for s in cands:
                o, lse, oacc, lacc = prob.buffers(s)
                P = prob.params(o, lse, oacc, lacc, s, hc)
                t = time_fn(torch, lambda: mod.decode(P), iters=30)
                bw = (kvbytes + qob) / t
                row["sweep"][f"{vlabel}_hc{hc}_s{s}"] = dict(us=t * 1e6, GBs=bw / 1e9, pct_copy=100 * bw / copy_bw, heur=(s == hs))
                if s == hs and (best is None or t < best[0]): best = (t, hc, s, vlabel, mod)
                log(f"  ({tag}) B={B} ctx={ctx} [{vlabel}] hc={hc} splits={s:3d}{' (heur)' if s == hs else '       '}: {t * 1e6:8.1f} us  {bw / 1e9:6.0f} GB/s  {100 * bw / copy_bw:5.1f}% of copy")
        row["best_heuristic"] = dict(us=best[0] * 1e6, hc=best[1], splits=best[2], variant=best[3])
        log(f"  ({tag}) best with heuristic splits: {best[0] * 1e6:.1f} us [{best[3]}] hc={best[1]} splits={best[2]}")
        hs = best[2]
        # correctness spot-check of the big case against a fp32 dense reference (first sequence)
        o, lse = prob.run(best[4], hs, hc=best[1])
        torch.cuda.synchronize()
        b0 = 0
        k = prob.K[b0].float().repeat_interleave(4, dim=1); v = prob.V[b0].float().repeat_interleave(4, dim=1)
        s_ = torch.einsum("hd,nhd->hn", prob.q[b0].float(), k) * prob.scale
        ref = torch.einsum("hn,nhd->hd", torch.softmax(s_, -1), v)
        row["spot_err"] = (o[b0].float() - ref).abs().max().item()
        row["spot_lse_err"] = (lse[b0] - torch.logsumexp(s_, -1)).abs().max().item()
        log(f"  ({tag}) spot check vs fp32: max|o-ref| {row['spot_err']:.2e}, lse {row['spot_lse_err']:.2e}")
        # SDPA on the equivalent contiguous cache
        q4, kd, vd = sdpa_inputs(prob)
        del prob
        torch.cuda.empty_cache()
        for name, be in (("flash", SDPBackend.FLASH_ATTENTION), ("cudnn", SDPBackend.CUDNN_ATTENTION),
                         ("efficient", SDPBackend.EFFICIENT_ATTENTION)):
            try:
                with sdpa_kernel([be]):
                    fn = lambda: F.scaled_dot_product_attention(q4, kd, vd, enable_gqa=True)
                    t = time_fn(torch, fn, iters=30)
                bw = (kvbytes + qob) / t
                row[f"sdpa_{name}"] = dict(us=t * 1e6, GBs=bw / 1e9, pct_copy=100 * bw / copy_bw)
                log(f"  ({tag}) SDPA {name:9s}: {t * 1e6:8.1f} us  {bw / 1e9:6.0f} GB/s  {100 * bw / copy_bw:5.1f}% of copy")
            except Exception as e:
                row[f"sdpa_{name}"] = f"error: {str(e)[:200]}"
                log(f"  ({tag}) SDPA {name}: not run: {str(e)[:200]}")
        del kd, vd, q4
        torch.cuda.empty_cache()
        results["bench_" + tag] = row


def main():
    global LOGF
    ap = argparse.ArgumentParser()
    ap.add_argument("--correct", action="store_true")
    ap.add_argument("--bench", action="store_true")
    ap.add_argument("--small", action="store_true")
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    if a.out:
        os.makedirs(a.out, exist_ok=True)
        LOGF = open(os.path.join(a.out, "paged_small.log" if a.small else "paged.log"), "w")
    import warnings
    warnings.filterwarnings("ignore")
    import torch
    torch.backends.cuda.matmul.allow_tf32 = False
    cells = json.load(open(os.path.join(RENDERED, "cells.json")))
    if a.small:
        cells = [c for c in cells if c["kernel_name"] in ("pd_bf16_hd128_g4_p16", "pd_f16_hd64_g16_p8_c_w33_s7", "pd_bf16_hd128_g4_p1")]
    log(f"device: {torch.cuda.get_device_name(0)}, SMs {torch.cuda.get_device_properties(0).multi_processor_count}")
    t0 = time.time()
    cubs = compile_cells(cells)
    log(f"compile {time.time() - t0:.1f}s")
    torch.zeros(1, device="cuda")
    mods = {c["kernel_name"]: Module(c, cubs[c["kernel_name"]], torch) for c in cells}
    for c in cells:
        m = mods[c["kernel_name"]]
        log(f"{c['kernel_name']}: {m.describe()}")
    results = {"device": torch.cuda.get_device_name(0), "cells": {}}
    allok = True
    if a.correct or a.small:
        for c in cells:
            m = mods[c["kernel_name"]]
            ok, worst = test_cell(torch, c, m, small=a.small)
            log(f"[{'PASS' if ok else 'FAIL'}] {c['kernel_name']}: worst err/tol {worst:.3f}")
            results["cells"][c["kernel_name"]] = dict(ok=ok, worst=worst)
            allok &= ok
        for name in ("pd_bf16_hd128_g4_p16", "pd_bf16_hd128_g4_p1"):
            if name in mods:
                c = mods[name].cell
                ok, same = test_append(torch, c, mods[name])
                log(f"[{'PASS' if ok else 'FAIL'}] append+attend {name} (cache elsewhere untouched: {same})")
                results["cells"][name + "_append"] = dict(ok=ok, cache_untouched=same)
                allok &= ok
        log("ALL CORRECT" if allok else "SOME FAILED")
    if a.bench:
        vmods = [("default", mods[cells[0]["kernel_name"]])]
        for vname, opt in (("tma", "-DPD_TMA=1"), ("stages2", "-DPD_STAGES=2")):   # the TMA loader, a 2-stage ring
            st = vname
            cub = compile_cells([cells[0]], extra=[opt])[cells[0]["kernel_name"] + opt]
            m = Module(cells[0], cub, torch)
            log(f"variant {st}: {m.describe()}")
            ok, worst = test_cell(torch, cells[0], m)
            log(f"[{'PASS' if ok else 'FAIL'}] {cells[0]['kernel_name']} {st}: worst err/tol {worst:.3f}")
            results["cells"][cells[0]["kernel_name"] + opt] = dict(ok=ok, worst=worst)
            vmods.append((vname, m))
        bench(torch, cells[0], vmods, results)
    if a.out:
        json.dump(results, open(os.path.join(a.out, "paged_small.json" if a.small else "paged.json"), "w"), indent=1, default=str)


if __name__ == "__main__":
    main()
