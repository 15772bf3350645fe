import copy
import dataclasses
import math
from typing import ClassVar

import pytest
import torch
from torch import nn

from byol import BYOL, build_encoder
from byol.losses import regression_loss


def tiny_byol(**kw) -> BYOL:
    torch.manual_seed(0)
    enc = build_encoder("convnet", width=0.25, image_size=16)
    return BYOL(enc.module, enc.feature_dim, projector_hidden=64, projection_dim=16, predictor_hidden=64, **kw)


def views(n=8, size=16):
    g = torch.Generator().manual_seed(1)
    return torch.randn(n, 3, size, size, generator=g), torch.randn(n, 3, size, size, generator=g)


def test_target_starts_as_exact_copy_without_grad():
    m = tiny_byol()
    for o, t in zip(m.online_parameters(), m.target_parameters()):
        assert torch.equal(o, t) and o is not t
        assert o.requires_grad and not t.requires_grad


def test_loss_is_sum_of_both_view_orders_each_view_its_own_batch():
    m = tiny_byol()
    v1, v2 = views()
    loss = m(v1, v2).loss
    # Recompute by hand, each view as its own forward batch.
    z1 = m.online_projector(m.online_encoder(v1))
    z2 = m.online_projector(m.online_encoder(v2))
    with torch.no_grad():
        t1 = m.target_projector(m.target_encoder(v1))
        t2 = m.target_projector(m.target_encoder(v2))
    expected = regression_loss(m.predictor(z1), t2) + regression_loss(m.predictor(z2), t1)
    torch.testing.assert_close(loss, expected)
    # Summed: each term is at most 4, the sum is well above one averaged term's range at init.
    assert loss.item() > regression_loss(m.predictor(z1), t2).item()
    # Swapping the views gives the same symmetrised loss.
    torch.testing.assert_close(m(v2, v1).loss, loss)


def test_target_gets_no_gradient_and_only_moves_by_update_target():
    m = tiny_byol()
    opt = torch.optim.SGD([p for p in m.parameters() if p.requires_grad], lr=0.5)
    before = [t.clone() for t in m.target_parameters()]
    v1, v2 = views()
    loss = m(v1, v2).loss
    loss.backward()
    assert all(t.grad is None for t in m.target_parameters())
    assert all(p.grad is not None for p in m.online_parameters())
    opt.step()
    for b, t in zip(before, m.target_parameters()):
        assert torch.equal(b, t)
    m.update_target(0.9)
    changed = [not torch.equal(b, t) for b, t in zip(before, m.target_parameters())]
    assert any(changed)
    for b, t, o in zip(before, m.target_parameters(), m.online_parameters()):
        torch.testing.assert_close(t, 0.9 * b + 0.1 * o)


def test_tau_zero_copies_and_tau_one_keeps():
    m = tiny_byol()
    with torch.no_grad():
        for p in m.online_parameters():
            p.add_(torch.randn_like(p))
    before = [t.clone() for t in m.target_parameters()]
    m.update_target(1.0)
    assert all(torch.equal(b, t) for b, t in zip(before, m.target_parameters()))
    m.update_target(0.0)
    assert all(torch.equal(o, t) for o, t in zip(m.online_parameters(), m.target_parameters()))


def test_update_target_uses_foreach_not_a_python_loop(monkeypatch):
    m = tiny_byol()
    calls = []
    real = torch._foreach_lerp_
    monkeypatch.setattr(torch, "_foreach_lerp_", lambda *a: calls.append(1) or real(*a))
    m.update_target(0.5)
    assert len(calls) == 1


def test_target_keeps_its_own_batchnorm_statistics():
    m = tiny_byol()
    m.train()
    m(*views())
    bn_online = next(x for x in m.online_encoder.modules() if isinstance(x, nn.BatchNorm2d))
    bn_target = next(x for x in m.target_encoder.modules() if isinstance(x, nn.BatchNorm2d))
    assert bn_target.num_batches_tracked.item() == 2  # one forward per view, target in train mode
    stats = copy.deepcopy(bn_target.running_mean)
    m.update_target(0.0)
    assert torch.equal(bn_target.running_mean, stats)  # buffers are not averaged
    assert bn_online is not bn_target


def test_forward_returns_the_loss_and_what_the_monitors_read():
    m = tiny_byol()
    out = m(*views())
    assert out.loss.shape == () and out.projection_view1.shape == (8, 16)
    assert out.representation_view1.shape == (8, m.feature_dim)


def test_no_predictor_variant_regresses_projections_directly():
    """Without a predictor the online projection is compared with the target's as it is: at the
    start (target = online) one view against itself gives a loss of exactly 0; with a predictor not."""
    m = tiny_byol(use_predictor=False)
    assert isinstance(m.predictor, nn.Identity) and not any(p.requires_grad for p in m.predictor.parameters())
    v1, v2 = views()
    torch.testing.assert_close(m(v1, v1).loss, torch.tensor(0.0), atol=1e-6, rtol=0)
    z1, z2 = m.online_projector(m.online_encoder(v1)), m.online_projector(m.online_encoder(v2))
    with torch.no_grad():
        t1, t2 = m.target_projector(m.target_encoder(v1)), m.target_projector(m.target_encoder(v2))
    torch.testing.assert_close(m(v1, v2).loss, regression_loss(z1, t2) + regression_loss(z2, t1))
    assert tiny_byol()(v1, v1).loss.item() > 0.1


@pytest.mark.parametrize("norm", ["batchnorm", "layernorm", "groupnorm", "none"])
def test_one_step_on_a_fixed_batch_lowers_the_loss(norm):
    m = tiny_byol(norm=norm)
    opt = torch.optim.SGD([p for p in m.parameters() if p.requires_grad], lr=0.05, momentum=0.0)
    v1, v2 = views(16)
    torch.manual_seed(0)
    before = m(v1, v2).loss
    before.backward()
    opt.step()
    with torch.no_grad():
        after = m(v1, v2).loss
    assert after.item() < before.item()


def test_any_module_mapping_images_to_vectors_works():
    encoder = nn.Sequential(nn.Conv2d(3, 8, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    m = BYOL(encoder, 8, projector_hidden=32, projection_dim=8, predictor_hidden=32)
    loss = m(*views()).loss
    assert 0 < loss.item() < 8  # two terms, each 2 − 2·cos ∈ [0, 4]
    loss.backward()
    assert encoder[0].weight.grad.abs().sum() > 0  # the gradient reaches the user's encoder
    assert m.online_encoder is encoder and m.target_encoder[0].weight.grad is None


@pytest.mark.parametrize("name", ["byol", "simclr"])
def test_each_method_is_a_method_the_loop_can_drive(name):
    """Both methods meet the ``Method`` protocol the loop, checkpoints and exporters use, and both
    return a ``MethodOutput``; an encoder alone does not pass for one."""
    from byol.build import method as build_method
    from byol.config import Config, ModelConfig
    from byol.method import Method, MethodOutput

    enc = build_encoder("convnet", width=0.25, image_size=16)
    model = ModelConfig(backbone="convnet", method=name, projector_hidden=32, projection_dim=8, predictor_hidden=32)
    method = build_method(Config(model=model), enc.module, enc.feature_dim)
    assert isinstance(method, Method) and not isinstance(enc.module, Method)
    g = torch.Generator().manual_seed(0)
    out = method(
        torch.randn(4, 3, 16, 16, generator=g),
        torch.randn(4, 3, 16, 16, generator=g),
    )
    assert isinstance(out, MethodOutput) and out.representation_view1.shape == (4, method.feature_dim)
    assert method.trained_modules()[0] is method.online_encoder
    method.after_step(0.99)


class InvarianceVariance(nn.Module):
    """A third method, defined here only: the views' projections pulled together, their per-dimension
    std held near 1 (VICReg without its covariance term), the std term weighted by an option of its own.
    Nothing in byol/ knows it; its encoder is ``encoder`` (``Method.encoder``: each method names its own)."""

    def __init__(self, encoder: nn.Module, feature_dim: int, projection_dim: int, spread_weight: float):
        super().__init__()
        self.encoder, self.feature_dim = encoder, feature_dim
        self.projector = nn.Linear(feature_dim, projection_dim)
        self.spread_weight, self.steps_after = spread_weight, 0

    def trained_modules(self) -> list[nn.Module]:
        return [self.encoder, self.projector]

    def forward(self, view1, view2):
        from byol.method import MethodOutput

        h1 = self.encoder(view1)
        z1, z2 = self.projector(h1), self.projector(self.encoder(view2))
        spread = sum(torch.relu(1 - z.std(dim=0)).mean() for z in (z1, z2))
        loss = (z1 - z2).pow(2).mean() + self.spread_weight * spread
        return MethodOutput(loss, h1, z1)

    def after_step(self, tau: float) -> None:
        self.steps_after += 1


@dataclasses.dataclass
class InvarianceOptions:
    """The third method's own options: the config's methods.invariance section."""

    SECTION: ClassVar[str] = "methods.invariance"

    spread_weight: float = 1.0
    """Weight of the term that holds each dimension's std near 1."""

    def check(self, require):
        require("spread_weight", self.spread_weight > 0, "positive (without it the projections collapse)")


def test_a_third_method_is_one_registry_line_and_trains_through_the_real_loop(synthetic, tmp_path, monkeypatch):
    """The registry line brings the method's builder, its options (a section of the config of its
    own, checked by it, set with --set methods.invariance.KEY) and the views it asks for (here: no
    solarisation in either view); nothing in byol/ is edited."""
    from helpers import tiny_config

    import byol
    from byol.cli.__main__ import build_parser
    from byol.cli.pretrain import overrides_from_args
    from byol.config.docs import option_docstrings, option_help
    from byol.config.presets import resolve
    from byol.errors import ByolError
    from byol.method import METHODS, Method, MethodSpec
    from byol.train.pretrain import pretrain

    built, initial = [], {}

    def build(heads, options, encoder, feature_dim):
        initial.update({k: v.clone() for k, v in encoder.state_dict().items()})
        built.append(InvarianceVariance(encoder, feature_dim, heads.projection_dim, options.spread_weight))
        return built[-1]

    def views(values, keep=frozenset()):
        augment = values.setdefault("augment", {})
        for name in {"view1", "view2"} - keep:
            augment[name] = {**augment.get(name, {}), "solarize_p": 0.0}
        return values

    monkeypatch.setitem(METHODS, "invariance", MethodSpec(build, InvarianceOptions, views))  # the one line it adds
    assert resolve("cpu", {"model": {"method": "invariance"}}).augment.view2.solarize_p == 0.0
    assert resolve("cpu", {"model": {"method": "byol"}}).augment.view2.solarize_p == 0.2  # its views only
    args = ["pretrain", "data", "--out", "o", "--method", "invariance", "--set", "methods.invariance.spread_weight=0.5"]
    cfg = resolve("cpu", overrides_from_args(build_parser().parse_args(args)))
    assert cfg.methods["invariance"].spread_weight == 0.5 and cfg.methods["simclr"].temperature == 0.5
    with pytest.raises(ByolError, match=r"--set methods.invariance.spread_weight must be positive \(without"):
        resolve("cpu", {"model": {"method": "invariance"}, "methods": {"invariance": {"spread_weight": 0}}})
    option_docstrings.cache_clear()  # read once per process; the help reads its docstring, as SimCLR's
    text = option_help("methods.invariance.spread_weight")
    assert text == "Weight of the term that holds each dimension's std near 1."
    cfg = tiny_config(synthetic["train"], synthetic["cache"], epochs=2 / 12, knn_every=0, log_every=1)
    cfg.model.method = "invariance"
    cfg.methods["invariance"] = InvarianceOptions(spread_weight=0.5)
    result = pretrain(cfg, tmp_path / "run", progress=False)
    method = built[0]
    assert isinstance(method, Method) and result.steps == 2 and method.steps_after == 2
    assert method.spread_weight == 0.5  # its option reached it
    assert math.isfinite(result.final_loss)  # logged from a real step
    trained = method.encoder.state_dict()
    assert any(not torch.equal(initial[k], trained[k]) for k in initial if trained[k].is_floating_point())
    loaded = byol.load_encoder(tmp_path / "run")  # exported as the built-in methods are
    x = torch.rand(2, 3, 32, 32)
    method.encoder.eval()
    with torch.no_grad():
        assert torch.allclose(loaded(x), method.encoder(x), atol=1e-6)


def test_simclrs_own_recipe_has_its_views_projector_and_temperature():
    """--method simclr --simclr-recipe paper: symmetric views at colour strength 1 without
    solarisation (blur 0.5, none on small images), SimCLR's 2-layer projector to 128-d with BN; the
    default recipe keeps BYOL's pipeline (its asymmetric views and projector)."""
    import argparse

    from byol.ablate import VARIANTS, variant_config
    from byol.build import method as build_method
    from byol.config.flags import add_flags, flag_values
    from byol.config.presets import resolve
    from byol.models.heads import MLP, SimCLRProjector

    parser = argparse.ArgumentParser()
    add_flags(parser)
    paper = flag_values(parser.parse_args(["--method", "simclr", "--simclr-recipe", "paper"]))
    assert paper == {"model": {"method": "simclr"}, "methods": {"simclr": {"recipe": "paper"}}}
    cfg = resolve("cpu", paper)
    v1, v2 = cfg.augment.views()
    assert v1 == v2 and v1.solarize_p == 0.0 and v1.blur_p == 0.0 and v1.crop_scale == (0.2, 1.0)
    assert (v1.brightness, v1.contrast, v1.saturation, v1.hue, v1.jitter_p, v1.grayscale_p) == (
        0.8, 0.8, 0.8, 0.2, 0.8, 0.2
    )  # fmt: skip
    big = resolve("imagenet", paper)
    assert big.augment.view1.blur_p == big.augment.view2.blur_p == 0.5 and big.methods["simclr"].temperature == 0.1
    pipeline = resolve("cpu", {"model": {"method": "simclr"}})
    assert pipeline.augment.view1 != pipeline.augment.view2  # BYOL's asymmetric views stay by default
    kept = resolve("cpu", {**paper, "augment": {"view2": {"solarize_p": 0.3}}})
    assert kept.augment.view2.solarize_p == 0.3 and kept.augment.view1.brightness == 0.8  # a view the user set
    assert variant_config(resolve("cpu", {}), VARIANTS["simclr_paper"], epochs=1).augment.views() == (v1, v2)
    enc = build_encoder("convnet", width=0.25, image_size=16)
    method = build_method(cfg, enc.module, enc.feature_dim)
    assert isinstance(method.online_projector, SimCLRProjector)
    assert isinstance(method.online_projector[-1], nn.BatchNorm1d)  # BN on the 128-d output
    out = method(
        *views(),
    )
    assert out.projection_view1.shape == (8, 128) and torch.isfinite(out.loss)
    assert isinstance(build_method(pipeline, enc.module, enc.feature_dim).online_projector, MLP)
