"""Compile-check rendered kernels with a local libnvrtc (no GPU needed)."""
import ctypes, os, sys, time
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fa_render

LIB = os.environ.get("NVRTC_LIB", "/tmp/nvrtc-x/nvidia/cu13/lib/libnvrtc.so.13")
nv = ctypes.CDLL(LIB)


def compile_src(src, name, arch="sm_90a", extra=()):
    prog = ctypes.c_void_p()
    r = nv.nvrtcCreateProgram(ctypes.byref(prog), src.encode(), (name + ".cu").encode(), 0, None, None)
    assert r == 0, r
    opts = [f"--gpu-architecture={arch}", "-std=c++17", "-default-device", *extra]
    arr = (ctypes.c_char_p * len(opts))(*[o.encode() for o in opts])
    t = time.time()
    r = nv.nvrtcCompileProgram(prog, len(opts), arr)
    dt = time.time() - t
    n = ctypes.c_size_t()
    nv.nvrtcGetProgramLogSize(prog, ctypes.byref(n))
    log = ctypes.create_string_buffer(n.value)
    nv.nvrtcGetProgramLog(prog, log)
    cubin = None
    if r == 0:
        nv.nvrtcGetCUBINSize(prog, ctypes.byref(n))
        buf = ctypes.create_string_buffer(n.value)
        nv.nvrtcGetCUBIN(prog, buf)
        cubin = buf.raw
    return r, log.value.decode(errors="replace"), dt, cubin


if __name__ == "__main__":
    import itertools
    cells = []
    for dt_, hd, causal in itertools.product(["bf16", "f16"], [64, 80, 96, 128, 192, 256], [False, True]):
        cells.append(fa_render.make_cell(dtype=dt_, head_dim=hd, causal=causal))
    cells.append(fa_render.make_cell(head_dim=128, window=64, sink=4))
    cells.append(fa_render.make_cell(head_dim=64, alibi=True, has_softcap=True, softcap="30.0f", causal=True, gqa=4, varlen=True))
    cells.append(fa_render.make_cell(head_dim=128, paged=True, page_size=16, varlen=True))
    only = sys.argv[1:] if len(sys.argv) > 1 else None
    ok = True
    for c in cells:
        src = fa_render.render(c)
        for arch in ["sm_90a", "sm_80"]:
            r, log, t, cubin = compile_src(src, c["kernel_name"], arch, ["-Xptxas=-v"])
            print(f"{c['kernel_name']:60s} {arch} rc={r} {t:.2f}s {log.strip()[-300:] if (r or 'spill' in log) else ''}")
            ok &= r == 0
            if r:
                print(log[:3000]); sys.exit(1)
