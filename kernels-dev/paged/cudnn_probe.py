"""SDPA cuDNN decode (64 x 4096, 32/8 heads, hd128, bf16), a few launches, for
ncu to profile beside our decode kernel:
  ncu --launch-skip 8 --launch-count 2 --section SpeedOfLight --section LaunchStats \
      --section Occupancy --section MemoryWorkloadAnalysis python3 kernels-dev/paged/cudnn_probe.py
"""
import torch, torch.nn.functional as F
from torch.nn.attention import sdpa_kernel, SDPBackend
B, H, KVH, ctx, d = 64, 32, 8, 4096, 128
q = torch.randn(B, H, 1, d, dtype=torch.bfloat16, device="cuda")
k = torch.randn(B, KVH, ctx, d, dtype=torch.bfloat16, device="cuda")
v = torch.randn(B, KVH, ctx, d, dtype=torch.bfloat16, device="cuda")
with sdpa_kernel([SDPBackend.CUDNN_ATTENTION]):
    for _ in range(12):
        F.scaled_dot_product_attention(q, k, v, enable_gqa=True)
torch.cuda.synchronize()
