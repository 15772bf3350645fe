import sys, time, torch
sys.path.insert(0, __import__("os").path.dirname(__file__))
import byolx
from byol.method.byol import BYOL
from byol.models.backbones import ConvNet, build_encoder
torch.manual_seed(0)
fmt = torch.channels_last
B = 128
models = {}
for name in ["convnet", *byolx.VARIANTS]:
    enc = build_encoder(name, 0.5, 32)
    m = BYOL(enc.module, enc.feature_dim, 2048, 256, 2048).to(memory_format=fmt)
    opt = torch.optim.AdamW([p for p in m.parameters() if p.requires_grad], lr=1e-3, fused=True)
    models[name] = (m, opt)
v1, v2 = (torch.randn(B, 3, 32, 32).contiguous(memory_format=fmt) for _ in range(2))
def step(m, opt):
    out = m(v1, v2); opt.zero_grad(set_to_none=True); out.loss.backward(); opt.step(); m.update_target(0.99)
for k,(m,o) in models.items():
    for _ in range(5): step(m,o)
times = {k: [] for k in models}
for r in range(5):
    for k,(m,o) in models.items():
        for _ in range(6):
            t=time.perf_counter(); step(m,o); times[k].append(time.perf_counter()-t)
base = sorted(times["convnet"])[15]
for k,t in times.items():
    t=sorted(t); print(f"{k:16s} median ms {t[len(t)//2]*1000:6.1f}  ratio {t[len(t)//2]/base:.2f}")
