"""One optimisation step: gradients averaged over micro-batches, equal to a plain reference step."""

import copy

import torch

from byol import BYOL, build_encoder
from byol.train.engine import train_step


def make(seed=0):
    torch.manual_seed(seed)
    enc = build_encoder("convnet", width=0.25, image_size=16)
    return BYOL(enc.module, enc.feature_dim, projector_hidden=32, projection_dim=8, predictor_hidden=32)


def sgd(model, lr=0.1):
    return torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=lr, momentum=0.0)


def views(seed, n=8):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, 16, 16, generator=g), torch.randn(n, 3, 16, 16, generator=g)


def gradients(model, micro):
    """The online gradients of one micro-batch alone, from a copy of ``model``."""
    m = copy.deepcopy(model)
    loss = m(*micro)
    loss.backward()
    return loss.detach(), [p.grad.clone() for p in m.parameters() if p.requires_grad]


def test_accumulation_averages_the_micro_batch_gradients_and_leaves_the_target_alone():
    model = make()
    a, b = views(1), views(2)
    loss_a, grad_a = gradients(model, a)
    loss_b, grad_b = gradients(model, b)
    before = [p.detach().clone() for p in model.parameters() if p.requires_grad]
    target = [t.clone() for t in model.target_parameters()]

    result = train_step(model, sgd(model, 0.1), [a, b], lr=0.1)

    torch.testing.assert_close(result.loss, (loss_a + loss_b) / 2)
    after = [p.detach() for p in model.parameters() if p.requires_grad]
    for p0, p1, ga, gb in zip(before, after, grad_a, grad_b):
        torch.testing.assert_close(p1, p0 - 0.1 * (ga + gb) / 2, rtol=1e-5, atol=1e-6)
    # The micro-batches differ enough that using only the last one, or summing, would be caught.
    last_only = [p0 - 0.1 * gb for p0, gb in zip(before, grad_b)]
    summed = [p0 - 0.1 * (ga + gb) for p0, ga, gb in zip(before, grad_a, grad_b)]
    assert max((x - y).abs().max().item() for x, y in zip(after, last_only)) > 1e-4
    assert max((x - y).abs().max().item() for x, y in zip(after, summed)) > 1e-4
    assert all(torch.equal(t0, t1) for t0, t1 in zip(target, model.target_parameters()))  # after_step's job


def test_train_step_sets_the_learning_rate_of_every_group():
    model = make()
    opt = torch.optim.SGD([{"params": [p]} for p in model.parameters() if p.requires_grad], lr=1.0)
    train_step(model, opt, [views(3)], lr=0.025)
    assert {g["lr"] for g in opt.param_groups} == {0.025}


def test_after_step_is_the_target_update():
    model = make()
    with torch.no_grad():
        for p in model.online_parameters():
            p.add_(1.0)
    before = [t.clone() for t in model.target_parameters()]
    model.after_step(0.75)
    for t0, t1, o in zip(before, model.target_parameters(), model.online_parameters()):
        torch.testing.assert_close(t1, 0.75 * t0 + 0.25 * o)
