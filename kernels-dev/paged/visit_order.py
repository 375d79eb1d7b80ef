#!/usr/bin/env python3
"""The order in which the one-split decode entries (_decode_unsplit, the
unsplit _decode_pair) visit their slices (GPU machine): builds a cell with
-DPD_VISIT_LOG (lane 0 of each warp records its visits' first tokens and
blocks in issue order), runs shuffled block tables (with bad entries inside
two contexts), and checks, CTA by CTA:

- the warps of each slice kb (a pair's two warps: the same visits) visit
  every 16-token slice of the range exactly once between them, each with
  its page's block (-1 past the context or for a bad entry);
- window by window (64 visits a list; pairs 128, each warp sorting half),
  the visits dealt across the CTA
  (position j of every list kb in turn) are in ascending block order, dead
  slices (past the context, or a bad entry) first, after the prologue's
  first AHEAD visits of each list, which keep their own slices in token
  order.

The GPU tests see a slice visited twice or not at all (wrong results), but
not an order that is merely unsorted; this sees both.

  python3 kernels-dev/paged/render.py        # on the dev box (rendered/ is carried)
  python3 kernels-dev/paged/visit_order.py
  CELLS=pd_bf16_hd128_g4_p16,pd_f16_hd128_g8_p256 AHEAD=1 ...
  EXTRA=-DPD_CTA_PAGES=0 ...   # each warp's own order: the order check must fail
  EXTRA="-DPD_UNSPLIT_STAGES=3 -DPD_PAIR_STAGES=3" AHEAD=2 ...   # 3-stage rings: two prologue visits
  EXTRA=-DPD_WIDE_WINDOWS=0 WIDE=0 ...   # pairs in windows of 64 visits a list
"""
import os, sys, json
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import harness as H

WARPS = 4          # kPdWarps of the rendered sm_90a cells
LOG_WARPS = 8      # pd_visit_log's warps per CTA
LOG_VISITS = 512   # ... and visits per warp (a token and a block each)


def coverage(lists, n_tiles, K, T):
    want = sorted(v * T + 16 * kb for v in range(n_tiles) for kb in range(K))
    got = sorted(t for l in lists for t in l)
    if got == want:
        return []
    return [f"slices visited {len(got)} ({len(set(got))} distinct) against {len(want)}: "
            f"missing {sorted(set(want) - set(got))[:4]}, extra {sorted(set(got) - set(want))[:4]}"]


def check_cta(log, b, grp, cta, hc, ctx, bt, ps, nb, ahead, wide=True):
    """Problems found in one CTA's log (a list of strings); log: per warp
    LOG_VISITS (token, block) pairs, flattened, -1 where not written."""
    K, T = WARPS // hc, 64 // hc   # slices (lists) per tile, tokens per tile
    win = 64 * hc if wide else 64  # visits of a list a window
    n_tiles = (ctx + T - 1) // T
    n = min(n_tiles, LOG_VISITS)   # visits logged

    def key(t):
        if t >= ctx:
            return -1
        blk = bt[t // ps]
        return blk if 0 <= blk < nb else -1
    errs = []
    lists = []
    for kb in range(K):
        rows = []
        for hw in range(hc):
            at = (cta * LOG_WARPS + kb * hc + hw) * LOG_VISITS * 2
            rows.append([(log[at + 2 * j], log[at + 2 * j + 1]) for j in range(n)])
            if n_tiles < LOG_VISITS and log[at + 2 * n_tiles] != -1:
                errs.append(f"kb {kb} hw {hw}: more than {n_tiles} visits")
        if any(v != rows[0] for v in rows[1:]):
            errs.append(f"kb {kb}: the pair's warps visit differently")
        bad = [(t, blk) for t, blk in rows[0] if blk != key(t)]
        if bad:
            errs.append(f"kb {kb}: {len(bad)} visits with the wrong block, e.g. token {bad[0][0]} block {bad[0][1]}"
                        f" (its page's: {key(bad[0][0])})")
        vis = [[t for t, _ in r] for r in rows]
        lists.append(vis[0])
        for j in range(min(ahead, n_tiles)):
            if vis[0][j] != j * T + 16 * kb:
                errs.append(f"kb {kb}: prologue visit {j} is token {vis[0][j]}, not {j * T + 16 * kb}")
    if n_tiles <= LOG_VISITS:   # (past the log the coverage is not checkable)
        errs += coverage(lists, n_tiles, K, T)
    for w in range(0, n, win):
        seq = [(key(lists[kb][j]), lists[kb][j]) for j in range(w, min(w + win, n)) for kb in range(K)
               if not (w == 0 and j < ahead)]
        for (k0, t0), (k1, t1) in zip(seq, seq[1:]):
            if k1 < k0:
                errs.append(f"window {w // win}: block {k1} (token {t1}) dealt after block {k0} (token {t0})")
                break
    return errs


def main():
    import torch
    torch.zeros(1, device="cuda")
    cells = {c["kernel_name"]: c for c in json.load(open(os.path.join(H.RENDERED, "cells.json")))}
    ahead = int(os.environ.get("AHEAD", "1"))   # kStages - 1 of the one-split rings (2 stages at these cells)
    wide = os.environ.get("WIDE", "1") == "1"    # pairs: windows of 128 visits a list (PD_WIDE_WINDOWS)
    KVH = 8
    bad = 0
    for name in os.environ.get("CELLS", "pd_bf16_hd128_g4_p16,pd_f16_hd128_g8_p256").split(","):
        c = cells[name]
        extra = ["-DPD_VISIT_LOG", *os.environ.get("EXTRA", "").split()]
        m = H.Module(c, H.compile_cells([c], extra=extra)[name + "".join(extra)], torch)
        cu = m.cu
        err, lp, lsize = cu.cuModuleGetGlobal(m.mod, b"pd_visit_log")
        assert err == cu.CUresult.CUDA_SUCCESS, err
        buf = torch.empty(lsize // 4, dtype=torch.int32, device="cuda")
        # (contexts, kv heads per CTA): one window a list and several (up to
        # 512 visits: a pair's 16384 tokens), ragged ends (dead slices in the
        # last tile), empty and one-token contexts
        cases = [([4096] * 32, 1), ([4096] * 32, 2), ([5000, 4097, 300, 1, 0, 8200, 16384], 1),
                 ([5000, 4097, 300, 1, 0, 8200, 12000, 16384], 2)]
        for ctxs, hc in cases:
            ps = c["page_size"]
            # bad entries inside contexts: past the blocks, and negative
            invalid = [(b, pg, v) for b, pg, v in ((0, 3 * 16 // ps, 1 << 29), (5, 10 * 16 // ps, -5)) if b < len(ctxs)
                       and pg * ps < ctxs[b]]
            prob = H.Problem(torch, c, ctxs, KVH, fill_nan=False, seed=11, bt_pad=2, invalid=invalid)
            o, lse, oacc, lacc = prob.buffers(1)
            P = prob.params(o, lse, oacc, lacc, 1, hc, fused=False)
            torch.cuda.synchronize()
            cu.cuMemsetD32(lp, 0xFFFFFFFF, lsize // 4)
            cu.cuCtxSynchronize()
            m.decode(P, unsplit=(hc == 1))
            torch.cuda.synchronize()
            cu.cuMemcpyDtoD(buf.data_ptr(), lp, lsize)
            torch.cuda.synchronize()
            log = buf.cpu().tolist()
            bt = prob.bt.cpu().tolist()
            groups = KVH // hc
            errs = []
            for b, ctx in enumerate(ctxs):
                for grp in range(groups):
                    cta = grp + groups * b
                    for e in check_cta(log, b, grp, cta, hc, ctx, bt[b], c["page_size"], prob.NB, ahead, wide):
                        errs.append(f"seq {b} group {grp}: {e}")
            ok = not errs
            bad += not ok
            entry = "_decode_pair" if hc == 2 else "_decode_unsplit"
            H.log(f"[{'PASS' if ok else 'FAIL'}] {name} {entry} contexts {ctxs[:8]}{'...' if len(ctxs) > 8 else ''}"
                  + ("" if ok else f": {len(errs)} problems, e.g. " + "; ".join(errs[:3])))
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
