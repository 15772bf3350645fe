import sys, time, torch
from byol.method.byol import BYOL
from byol.models.backbones import ConvNet
torch.manual_seed(0)
fmt = torch.channels_last
B = 128
res = {}
models = {}
for w in (0.5, 0.75, 1.0):
    enc = ConvNet(w)
    m = BYOL(enc, enc.feature_dim, 2048, 256, 2048).to(memory_format=fmt)
    opt = torch.optim.AdamW([p for p in m.parameters() if p.requires_grad], lr=1e-3, fused=True)
    models[w] = (m, opt)
v1, v2 = (torch.randn(B, 3, 32, 32).contiguous(memory_format=fmt) for _ in range(2))
def step(m, opt):
    out = m(v1, v2); opt.zero_grad(set_to_none=True); out.loss.backward(); opt.step(); m.update_target(0.99)
for w,(m,o) in models.items():
    for _ in range(5): step(m,o)
times = {w: [] for w in models}
for r in range(5):
    for w,(m,o) in models.items():
        for _ in range(6):
            t=time.perf_counter(); step(m,o); times[w].append(time.perf_counter()-t)
for w,t in times.items():
    t=sorted(t); print(w, "median ms", round(t[len(t)//2]*1000,1))
