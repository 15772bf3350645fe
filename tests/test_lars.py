import copy

import pytest
import torch
from torch import nn

from byol.optim import build_optimizer, param_groups
from byol.optim.lars import LARS


def test_hand_computed_step_on_a_tiny_tensor():
    w = nn.Parameter(torch.tensor([[3.0, 4.0]]))  # ‖w‖ = 5
    w.grad = torch.tensor([[0.0, 1.0]])
    opt = LARS([{"params": [w], "lars_exclude": False}], lr=0.1, momentum=0.9, weight_decay=0.5, trust_coefficient=1e-3)
    opt.step()
    g = torch.tensor([[0.0, 1.0]]) + 0.5 * torch.tensor([[3.0, 4.0]])  # [1.5, 3.0]
    trust = 1e-3 * 5.0 / g.norm()
    expected = torch.tensor([[3.0, 4.0]]) - 0.1 * trust * g
    torch.testing.assert_close(w.detach(), expected)
    # Second step: the momentum buffer carries the first adapted gradient.
    w.grad = torch.tensor([[0.0, 1.0]])
    p1 = expected.clone()
    g2 = torch.tensor([[0.0, 1.0]]) + 0.5 * p1
    v = 0.9 * trust * g + 1e-3 * p1.norm() / g2.norm() * g2
    opt.step()
    torch.testing.assert_close(w.detach(), p1 - 0.1 * v)


def test_excluded_parameters_get_no_decay_and_no_adaptation():
    """The group keeps the optimiser's weight decay (0.5): only ``lars_exclude`` keeps it off."""
    b = nn.Parameter(torch.tensor([2.0, -1.0]))
    b.grad = torch.tensor([0.5, 0.5])
    opt = LARS([{"params": [b], "lars_exclude": True}], lr=0.1, momentum=0.9, weight_decay=0.5)
    assert opt.param_groups[0]["weight_decay"] == 0.5
    opt.step()
    torch.testing.assert_close(b.detach(), torch.tensor([2.0 - 0.05, -1.0 - 0.05]))  # plain SGD: p - lr·g
    kept = nn.Parameter(torch.tensor([2.0, -1.0]))
    kept.grad = torch.tensor([0.5, 0.5])
    LARS([{"params": [kept], "lars_exclude": False}], lr=0.1, weight_decay=0.5).step()
    assert not torch.allclose(kept.detach(), b.detach())  # the same step with decay and adaptation differs


def test_clip_bounds_the_adapted_rate_by_the_global_lr():
    w = nn.Parameter(torch.tensor([[100.0]]))
    w.grad = torch.tensor([[1e-3]])  # trust = 0.02·100/1e-3 = 2000 ≫ lr
    opt = LARS([w], lr=0.5, momentum=0.0, weight_decay=0.0, trust_coefficient=0.02, clip=True)
    opt.step()
    torch.testing.assert_close(w.detach(), torch.tensor([[100.0 - 0.5 * 1e-3]]))


def test_param_groups_exclude_biases_and_norms():
    model = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.Linear(8, 2))
    groups = param_groups(model, weight_decay=1e-5)
    decayed, excluded = groups
    assert {id(p) for p in decayed["params"]} == {id(model[0].weight), id(model[2].weight)}
    assert len(excluded["params"]) == 4 and excluded["weight_decay"] == 0.0 and excluded["lars_exclude"]


def test_weight_decay_applies_only_to_decayed_group_through_build_optimizer():
    model = nn.Linear(3, 3)
    with torch.no_grad():
        model.weight.fill_(1.0)
        model.bias.fill_(1.0)
    opt = build_optimizer("sgd", param_groups(model, 0.1), lr=1.0, weight_decay=0.1, momentum=0.0)
    model.weight.grad = torch.zeros_like(model.weight)
    model.bias.grad = torch.zeros_like(model.bias)
    opt.step()
    torch.testing.assert_close(model.weight.detach(), torch.full((3, 3), 0.9))
    torch.testing.assert_close(model.bias.detach(), torch.ones(3))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"lr": -1}, "lr"),
        ({"lr": 1, "momentum": 1.0}, "momentum"),
        ({"lr": 1, "weight_decay": -1}, "weight_decay"),
        ({"lr": 1, "trust_coefficient": 0}, "trust"),
    ],
)
def test_lars_validates_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        LARS([nn.Parameter(torch.zeros(1))], **kwargs)


@pytest.mark.parametrize("name, reference", [("adamw", torch.optim.AdamW), ("sgd", torch.optim.SGD)])
def test_adamw_and_sgd_take_the_fused_kernels_on_a_cpu_and_step_as_the_foreach_ones(name, reference):
    """On a CPU the fused kernels are several times faster (docs/results/fused-optimizer-cpu/); they must
    take the same step as PyTorch's default (foreach) implementation, decayed and excluded groups alike."""
    torch.manual_seed(0)

    # A channels_last convolution, as byol trains on a CPU (the kernels walk memory in order), and no bias
    # before a BatchNorm: its gradient is rounding noise, which Adam scales up to whole steps.
    def make():
        layers = [nn.Conv2d(3, 8, 3, bias=False), nn.BatchNorm2d(8), nn.Flatten(), nn.Linear(8 * 36, 4)]
        return nn.Sequential(*layers).to(memory_format=torch.channels_last)

    models = [make() for _ in range(2)]
    models[1].load_state_dict(models[0].state_dict())
    assert models[0][0].weight.is_contiguous(memory_format=torch.channels_last)
    fused = build_optimizer(name, param_groups(models[0], 0.1), lr=0.01, weight_decay=0.1)
    kwargs = {"momentum": 0.9} if name == "sgd" else {}
    plain = reference(param_groups(models[1], 0.1), lr=0.01, weight_decay=0.1, foreach=True, **kwargs)
    assert fused.defaults["fused"] and not plain.defaults["fused"]
    x = torch.randn(32, 3, 8, 8).contiguous(memory_format=torch.channels_last)
    for _ in range(3):
        for model, opt in zip(models, (fused, plain)):
            opt.zero_grad()
            model(x).square().mean().backward()
            opt.step()
    for a, b in zip(models[0].parameters(), models[1].parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_a_checkpoint_saved_with_other_kernels_resumes_with_the_fused_ones_and_the_same_step():
    """Checkpoints say what the optimiser learned, not which kernels stepped it: a state saved by the foreach
    kernels (every CPU run before 2026-12-07) loads into byol's fused AdamW, which then takes the step the
    foreach one would have taken."""
    from byol.train.checkpoint import load_state_strict

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16, bias=False), nn.BatchNorm1d(16), nn.Linear(16, 4))
    x = torch.randn(32, 8)
    old = torch.optim.AdamW(param_groups(model, 0.1), lr=0.01, weight_decay=0.1, foreach=True)
    for _ in range(2):
        old.zero_grad()
        model(x).square().mean().backward()
        old.step()
    saved = copy.deepcopy(old.state_dict())  # as read from a file: no tensor shared with ``old``
    weights = {k: v.clone() for k, v in model.state_dict().items()}
    assert saved["param_groups"][0]["fused"] is None
    new = build_optimizer("adamw", param_groups(model, 0.1), lr=0.01, weight_decay=0.1)
    load_state_strict(new, saved, "the optimiser state")
    assert all(g["fused"] for g in new.param_groups) and new.state[model[0].weight]["step"] == 2
    stepped = {}
    for opt in (old, new):
        model.load_state_dict(weights)
        opt.zero_grad()
        model(x).square().mean().backward()
        opt.step()
        stepped[opt is new] = [p.detach().clone() for p in model.parameters()]
    for a, b in zip(stepped[True], stepped[False]):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_unknown_optimizer_name():
    with pytest.raises(ValueError, match="unknown optimizer"):
        build_optimizer("adagrad", [], lr=1.0, weight_decay=0.0)


def _tiny_model(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(6, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 4))


@pytest.mark.slow
def test_compiled_step_equals_the_eager_one_over_lrs_and_a_skipped_step_without_recompiling():
    """``compiled=True`` (optim.compiled_step): the same parameters and momentum as the eager step at
    every step, lr from 0 (warm-up's start, where clipping must not divide by it) up and down, a
    step flagged by ``found_inf`` whose gradients hold NaN leaving everything as it was; one graph per
    group, never recompiled for a new lr."""
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    models = [_tiny_model(0), _tiny_model(0)]
    opts = [
        LARS(param_groups(m, 1e-3), lr=0.0, weight_decay=1e-3, trust_coefficient=0.02, clip=True, compiled=c)
        for m, c in zip(models, (False, True))
    ]
    gen = torch.Generator().manual_seed(1)
    for step, lr in enumerate([0.0, 0.5, 1.0, 0.7, 0.3, 0.1]):
        x = torch.randn(8, 6, generator=gen)
        for model, opt in zip(models, opts):
            opt.zero_grad()
            model(x).square().mean().backward()
            if step == 3:  # a step the engine flags as non-finite
                model[0].weight.grad[0, 0] = float("nan")
                opt.found_inf = torch.ones(())
            for group in opt.param_groups:
                group["lr"] = lr
            before = [p.detach().clone() for p in model.parameters()]
            opt.step()
            if step == 3:
                del opt.found_inf
                assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))
        if step == 1:
            graphs = counters["stats"]["unique_graphs"]
            assert graphs >= 2  # the adapted group and the excluded one
        for a, b in zip(models[0].parameters(), models[1].parameters()):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
            torch.testing.assert_close(opts[0].state[a]["momentum_buffer"], opts[1].state[b]["momentum_buffer"])
        assert not torch.equal(models[0][0].weight, _tiny_model(0)[0].weight) or lr == 0.0
    assert counters["stats"]["unique_graphs"] == graphs  # lr and the skip flag are tensors: no new graph


def test_compiled_step_is_for_lars_only():
    from byol.config import Config
    from byol.errors import ByolError

    cfg = Config()
    cfg.optim.optimizer, cfg.optim.compiled_step = "sgd", True
    with pytest.raises(ByolError, match="optim.compiled_step must be false with --optimizer sgd or adamw"):
        cfg.optim.validate()
    cfg.optim.optimizer = "lars"
    cfg.optim.validate()


@pytest.mark.parametrize("clip", [False, True])
@pytest.mark.parametrize("grad_scale", [1e-3, 10.0])  # trust ≫ lr (the clip binds when on); trust < lr (it does not)
def test_a_group_with_an_lr_scale_steps_that_many_times_as_far_clipped_or_not(clip, grad_scale):
    """The predictor's lr × 10 (``optim.predictor_lr``): its groups carry ``lr_scale`` and 10× the lr; the
    clip stays the run's lr, so the step is 10× as long whether the clip binds or not (a clip at the scaled
    lr would leave a step whose trust is under the lr unscaled: min(trust, 10·lr) = trust)."""
    torch.manual_seed(0)
    start = torch.randn(4, 4)
    plain, scaled = nn.Parameter(start.clone()), nn.Parameter(start.clone())
    groups = [
        {"params": [plain], "lars_exclude": False},
        {"params": [scaled], "lars_exclude": False, "lr": 10 * 0.5, "lr_scale": 10.0},
    ]
    opt = LARS(groups, lr=0.5, momentum=0.0, weight_decay=0.0, trust_coefficient=1.0, clip=clip)
    grad = torch.randn(4, 4) * grad_scale
    plain.grad, scaled.grad = grad.clone(), grad.clone()
    opt.step()
    moved_plain, moved_scaled = (start - plain.detach()).norm().item(), (start - scaled.detach()).norm().item()
    assert moved_scaled == pytest.approx(10 * moved_plain, rel=1e-5)
    trust = (start.norm() / grad.norm()).item()
    rate = min(trust, 0.5) if clip else 0.5 * trust  # the plain group's: clipped to the run's lr, or lr · trust
    assert moved_plain == pytest.approx(rate * grad.norm().item(), rel=1e-5)
