import torch

from byol import BYOL, build_encoder
from byol.train.engine import train_step


def make(seed=0):
    torch.manual_seed(seed)
    enc = build_encoder("convnet", width=0.25, image_size=16)
    m = BYOL(enc.module, enc.feature_dim, projector_hidden=32, projection_dim=8, predictor_hidden=32)
    return m, torch.optim.SGD([p for p in m.parameters() if p.requires_grad], lr=0.1)


def test_accumulation_updates_the_target_once_and_averages_gradients(monkeypatch):
    g = torch.Generator().manual_seed(0)
    v = (torch.randn(8, 3, 16, 16, generator=g), torch.randn(8, 3, 16, 16, generator=g))
    single, opt1 = make()
    double, opt2 = make()
    calls = []
    real = BYOL.update_target
    monkeypatch.setattr(BYOL, "update_target", lambda self, tau: calls.append(tau) or real(self, tau))
    r1 = train_step(single, single, opt1, [v], lr=0.1, tau=0.9)
    r2 = train_step(double, double, opt2, [v, v], lr=0.1, tau=0.9)
    assert calls == [0.9, 0.9]  # once per step, not per micro-batch
    torch.testing.assert_close(r1.loss, r2.loss)
    for a, b in zip(single.parameters(), double.parameters()):
        torch.testing.assert_close(a, b)
    assert opt1.param_groups[0]["lr"] == 0.1
