#!/usr/bin/env python3
"""ncu driver: launch our fwd kernel and torch SDPA flash once each (bf16, dense,
s=4096, 16384 tokens, hidden 2048) for the head dims given on argv."""
import sys, os, json
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fa_render, harness

def main():
    hds = [int(x) for x in (sys.argv[1] if len(sys.argv) > 1 else "128,256").split(",")]
    defs = json.loads(sys.argv[2]) if len(sys.argv) > 2 else []
    causal = os.environ.get("CAUSAL", "0") == "1"
    cells = [fa_render.make_cell(dtype="bf16", head_dim=hd, causal=causal, defines=defs) for hd in hds]
    comp = harness.compile_all(cells, procs=4)
    import torch
    torch.zeros(1, device="cuda")
    from cuda.bindings import driver as cu
    cu.cuInit(0)
    from torch.nn.attention import sdpa_kernel, SDPBackend
    for c in cells:
        r = comp[c["kernel_name"]]
        print(c["kernel_name"], "regs", r["regs"], "spill", r["spill"], flush=True)
        out = os.environ.get("SASS_DIR")
        if out:
            fn = f"/tmp/{c['kernel_name']}.cubin"; open(fn, "wb").write(r["cubin"])
            os.system(f"nvdisasm -c {fn} > {out}/sass_hd{c['head_dim']}.txt 2>&1 || cuobjdump -sass {fn} > {out}/sass_hd{c['head_dim']}.txt")
        k = harness.Kernel(c, r["cubin"])
        s, d = 4096, c["head_dim"]; B, H = 16384 // s, 2048 // d
        q = torch.randn(B, s, H, d, device="cuda").bfloat16(); kk = torch.randn_like(q); v = torch.randn_like(q)
        o = torch.empty_like(q); lse = torch.empty(B, H, s, device="cuda")
        P, grid, _ = harness.make_params(torch, c, q, kk, v, o, lse, B, H, H, s, s)
        k.launch(P, grid, torch.cuda.current_stream().cuda_stream)
        with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
            torch.nn.functional.scaled_dot_product_attention(q.transpose(1, 2), kk.transpose(1, 2), v.transpose(1, 2), is_causal=causal)
        torch.cuda.synchronize()

if __name__ == "__main__":
    main()
