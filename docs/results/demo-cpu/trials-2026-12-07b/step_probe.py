"""One BYOL step of the demo's model on random views: median ms of 30 steps after 5.

    python step_probe.py {cl,nchw} [HIDDEN]   # memory format; heads' hidden width (2048 by default)
"""

import sys
import time

import torch

from byol.method.byol import BYOL
from byol.models.backbones import ConvNet

torch.manual_seed(0)
fmt = torch.channels_last if sys.argv[1] == "cl" else torch.contiguous_format
hidden = int(sys.argv[2]) if len(sys.argv) > 2 else 2048
B = 128
encoder = ConvNet(0.5)
model = BYOL(encoder, encoder.feature_dim, hidden, 256, hidden).to(memory_format=fmt)
opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3, fused=True)
v1, v2 = (torch.randn(B, 3, 32, 32).contiguous(memory_format=fmt) for _ in range(2))


def step():
    out = model(v1, v2)
    opt.zero_grad(set_to_none=True)
    out.loss.backward()
    opt.step()
    model.update_target(0.99)


for _ in range(5):
    step()
times = []
for _ in range(30):
    t = time.perf_counter()
    step()
    times.append(time.perf_counter() - t)
median = sorted(times)[15]
print(sys.argv[1:], "median ms", round(median * 1000, 1), "img/s", round(B / median))
