"""The README's Python example runs as written (on a small CIFAR subset, up to loading a finished run)."""

import re
from pathlib import Path

import torch

from byol import BYOL, tau_schedule


def test_readme_python_example_trains_the_online_network_and_moves_the_target(small, monkeypatch, capsys):
    monkeypatch.setenv("BYOL_CACHE_DIR", str(small["cache"]))
    taus, onlines, moves = [], [], []
    update = BYOL.update_target

    def watched_update(self, tau):
        """The update as written, checked: θ' ← τθ' + (1 − τ)θ from the online weights of this step."""
        online = [p.detach().clone() for p in self.online_parameters()]
        target = [p.detach().clone() for p in self.target_parameters()]
        update(self, tau)
        moves.append(all(
            torch.allclose(after, tau * before + (1 - tau) * o, atol=1e-6)
            for after, before, o in zip(self.target_parameters(), target, online)
        ))  # fmt: skip
        taus.append(tau)
        onlines.append(online)

    monkeypatch.setattr(BYOL, "update_target", watched_update)
    text = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    code = next(block for block in re.findall(r"```python\n(.*?)```", text, re.S) if "train_step(" in block)
    code = code.split("encoder = byol.load_encoder")[0]
    code, n = re.subn(r'^DATA = ".*?"', f"DATA = {str(small['train'])!r}", code, flags=re.M)
    assert n == 1
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)
    model = namespace["model"]
    losses = [float(line.split()[1]) for line in capsys.readouterr().out.splitlines()]
    assert len(losses) == 3 and all(0 < loss < 8 for loss in losses)
    assert taus == [tau_schedule(s, 3) for s in range(3)]  # once per step, on the cosine schedule
    assert namespace["encoder"] is model.online_encoder
    assert moves == [True, True, True]  # the target followed the online network by its EMA at every step
    # The optimiser moved the online network at every step (between two target updates).
    for earlier, later in zip(onlines, onlines[1:]):
        assert any(not torch.equal(a, b) for a, b in zip(earlier, later))
