#!/usr/bin/env python3
"""Decode bandwidth vs cache layout and page order (GPU machine).

Question: is the gap to cuDNN (contiguous [B, KVH, ctx, d]) the kernel or the
access pattern? Same kernel, same data, four layouts: pages shuffled or in
order, token-major pages ([NB, page, KVH, d], vLLM / FA2) or head-major pages
([NB, KVH, page, d], FlashInfer HND: 4 KB contiguous per head and page).
Each argument is one more kernel variant (several -D flags in one quoted
argument); HC=1,2 picks heads per CTA, LAYOUTS the layouts timed,
SHAPES (default "64x4096,1x131072") the batch x context cases. SDPA
flash and cuDNN on the contiguous cache run in the same process.
  python3 kernels-dev/paged/render.py        # on the dev box (rendered/ is carried)
  HC=1 LAYOUTS="shuffled NHD" python3 kernels-dev/paged/layout_exp.py "-DPD_LOAD_ONLY" "-DPD_STAGES=3"
"""
import os, sys, math
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import harness as H
import json


def main():
    import torch
    import torch.nn.functional as F
    from torch.nn.attention import sdpa_kernel, SDPBackend
    extras = sys.argv[1:]
    torch.zeros(1, device="cuda")   # primary context before the driver-API modules
    cells = json.load(open(os.path.join(H.RENDERED, "cells.json")))
    c = cells[0]
    assert c["kernel_name"] == "pd_bf16_hd128_g4_p16"
    mods = {"default": H.Module(c, H.compile_cells([c])[c["kernel_name"]], torch)}
    for opt in extras:   # one argument per variant; several -D flags separated by spaces
        ex = opt.split()
        mods[opt] = H.Module(c, H.compile_cells([c], extra=ex)[c["kernel_name"] + "".join(ex)], torch)
    sm = torch.cuda.get_device_properties(0).multi_processor_count
    copy_bw = H.copy_bandwidth(torch)
    print(f"copy {copy_bw / 1e9:.0f} GB/s", flush=True)
    shapes = [tuple(int(v) for v in x.split("x")) for x in os.environ.get("SHAPES", "64x4096,1x131072").split(",")]
    for B, ctx in shapes:
        KVH, Hq, d, ps = 8, 32, 128, 16
        prob = H.Problem(torch, c, [ctx] * B, KVH, fill_nan=False, seed=3, bt_pad=0)
        npg = ctx // ps
        order = prob.bt[:, :npg].reshape(-1).long()
        kvbytes = 2 * B * ctx * KVH * d * 2 + 2 * B * Hq * d * 2
        variants = {}
        for shuffled in (True, False):
            if shuffled:
                kc, vc, bt = prob.kc, prob.vc, prob.bt
            else:
                kc, vc = prob.kc[order].contiguous(), prob.vc[order].contiguous()
                bt = torch.arange(B * npg, dtype=torch.int32, device="cuda").view(B, npg).contiguous()
            for hnd in (False, True):
                k2 = kc.permute(0, 2, 1, 3).contiguous() if hnd else kc
                v2 = vc.permute(0, 2, 1, 3).contiguous() if hnd else vc
                variants[("shuffled" if shuffled else "in-order") + (" HND" if hnd else " NHD")] = (k2, v2, bt, hnd)
        for name, m in mods.items():
          for hc in [int(x) for x in os.environ.get("HC", "1,2").split(",")]:
            hs = H.runtime_splits(B, KVH, ctx, sm, m, hc)
            for vname, (k2, v2, bt, hnd) in variants.items():
                if vname not in os.environ.get("LAYOUTS", "shuffled NHD,in-order HND").split(","): continue
                for s in sorted(H.split_counts(m, hc, {hs, max(1, hs - 1), hs + 1})):
                    o, lse, oacc, lacc = prob.buffers(s)
                    P = prob.params(o, lse, oacc, lacc, s, hc)
                    P.k_cache, P.v_cache, P.block_table = k2.data_ptr(), v2.data_ptr(), bt.data_ptr()
                    P.block_table_stride, P.num_blocks = bt.shape[1], k2.shape[0]
                    if hnd:
                        P.k_block_stride, P.k_head_stride, P.k_page_stride = k2.stride(0), k2.stride(1), k2.stride(2)
                        P.v_block_stride, P.v_head_stride, P.v_page_stride = v2.stride(0), v2.stride(1), v2.stride(2)
                    t = H.time_fn(torch, lambda: m.decode(P), iters=40)
                    print(f"B={B:3d} ctx={ctx:6d} [{name}] hc={hc} {vname:13s} splits={s:3d}{'*' if s == hs else ' '} "
                          f"{t * 1e6:7.1f} us {kvbytes / t / 1e9:6.0f} GB/s {100 * kvbytes / t / copy_bw:5.1f}%", flush=True)
        q4, kd, vd = H.sdpa_inputs(prob)
        del prob, variants
        torch.cuda.empty_cache()
        for nm, be in (("flash", SDPBackend.FLASH_ATTENTION), ("cudnn", SDPBackend.CUDNN_ATTENTION)):
            with sdpa_kernel([be]):
                t = H.time_fn(torch, lambda: F.scaled_dot_product_attention(q4, kd, vd, enable_gqa=True), iters=40)
            print(f"B={B:3d} ctx={ctx:6d} SDPA {nm:6s} {t * 1e6:7.1f} us {kvbytes / t / 1e9:6.0f} GB/s {100 * kvbytes / t / copy_bw:5.1f}%", flush=True)
        del kd, vd, q4
        torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
