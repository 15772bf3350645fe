"""One optimisation step: gradients averaged over micro-batches, equal to a plain reference step."""

import copy
import dataclasses

import pytest
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
    loss = m(*micro).loss
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


# ---- one step of byol equals a plain reference step --------------------------------------------


def _ref_loss(m, view1, view2):
    """BYOL's loss written out: each view its own batch, 2 − 2·cos per sample, both orders summed."""

    def online(v):
        z = m.online_projector(m.online_encoder(v))
        return m.predictor(z)

    with torch.no_grad():
        t1 = m.target_projector(m.target_encoder(view1))
        t2 = m.target_projector(m.target_encoder(view2))
    total = 0
    for p, t in ((online(view1), t2), (online(view2), t1)):
        cos = (p * t).sum(1) / (p.norm(dim=1) * t.norm(dim=1))
        total = total + (2 - 2 * cos).mean()
    return total


def _ref_optimizer_step(name, params, state, lr, wd, momentum=0.9, trust=1e-3):
    """SGD (momentum, decay), LARS (decay and trust ratio, biases/norms excluded) and AdamW, one
    tensor at a time; biases and norm parameters (ndim ≤ 1) get no weight decay."""
    for i, p in enumerate(params):
        g, decay = p.grad.clone(), (wd if p.ndim > 1 else 0.0)
        s = state.setdefault(i, {"step": 0})
        s["step"] += 1
        if name == "adamw":
            b1, b2, eps = 0.9, 0.999, 1e-8
            p.mul_(1 - lr * decay)
            s["exp_avg"] = b1 * s.get("exp_avg", torch.zeros_like(p)) + (1 - b1) * g
            s["exp_avg_sq"] = b2 * s.get("exp_avg_sq", torch.zeros_like(p)) + (1 - b2) * g * g
            m_hat = s["exp_avg"] / (1 - b1 ** s["step"])
            v_hat = s["exp_avg_sq"] / (1 - b2 ** s["step"])
            p.sub_(lr * m_hat / (v_hat.sqrt() + eps))
            continue
        g = g + decay * p
        if name == "lars" and p.ndim > 1:
            p_norm, g_norm = p.norm(), g.norm()
            if p_norm > 0 and g_norm > 0:
                g = trust * p_norm / g_norm * g
        s["momentum_buffer"] = g if "momentum_buffer" not in s else momentum * s["momentum_buffer"] + g
        p.sub_(lr * s["momentum_buffer"])


@pytest.mark.parametrize("optimizer", ["lars", "sgd", "adamw"])
@pytest.mark.parametrize("micro_batches", [1, 2])
def test_a_byol_step_equals_a_plain_reference_step(optimizer, micro_batches):
    from byol import build_optimizer, param_groups

    model = make().double()  # float64: the comparison checks the algebra, not rounding (Adam amplifies noise)
    reference = copy.deepcopy(model)
    lr, wd, taus = 0.05, 1e-3, (0.99, 0.995)
    opt = build_optimizer(optimizer, param_groups(model, wd), lr=lr, weight_decay=wd, momentum=0.9)
    ref_params = [p for p in reference.parameters() if p.requires_grad]
    ref_state: dict = {}
    for step, tau in enumerate(taus):  # two steps: momentum and Adam moments carry over
        micro = [tuple(v.double() for v in views(10 * step + i)) for i in range(micro_batches)]
        train_step(model, opt, micro, lr)
        model.after_step(tau)

        for p in ref_params:
            p.grad = None
        for v1, v2 in micro:
            (_ref_loss(reference, v1, v2) / len(micro)).backward()
        with torch.no_grad():
            _ref_optimizer_step(optimizer, ref_params, ref_state, lr, wd)
            for t, o in zip(reference.target_parameters(), reference.online_parameters()):
                t.copy_(tau * t + (1 - tau) * o)

    close = dict(rtol=1e-5, atol=1e-5)
    for a, b in zip(model.state_dict().values(), reference.state_dict().values()):  # online, target, BN statistics
        torch.testing.assert_close(a, b, **close)
    ours = [p for p in model.parameters() if p.requires_grad]
    for i, p in enumerate(ours):
        for key, value in ref_state[i].items():
            if key != "step":
                torch.testing.assert_close(opt.state[p][key], value, **close)


def test_a_non_finite_loss_skips_the_update():
    model = make()
    opt = sgd(model)
    before = [p.detach().clone() for p in model.parameters()]
    bad = views(5)
    bad[0][0, 0, 0, 0] = float("nan")
    result = train_step(model, opt, [bad], lr=0.1)
    assert bool(result.skipped) and not torch.isfinite(result.loss)
    assert all(torch.equal(a, b) for a, b in zip(before, [p.detach() for p in model.parameters()]))
    assert not bool(train_step(model, opt, [views(6)], lr=0.1).skipped)  # the next good batch trains


def _norm_state(model):
    return {k: v.clone() for k, v in model.state_dict().items() if "running" in k or "num_batches" in k}


@pytest.mark.parametrize("optimizer", ["sgd", "lars", "adamw"])
def test_a_skipped_step_leaves_batchnorm_as_if_the_bad_batch_never_came(optimizer):
    """A batch that turns the forward pass non-finite moves every running mean to NaN before the loss is
    known; the skipped step puts the statistics (and their counters) back. Two good steps with a bad one
    between them end bit for bit where the two good steps alone end: weights, optimiser state, running
    statistics of online and target."""
    from byol import LARS, build_optimizer, param_groups

    def build():
        model = make()
        if optimizer == "adamw":  # byol's AdamW: PyTorch's fused kernels on a CPU too
            opt = build_optimizer("adamw", param_groups(model, 1e-3), lr=0.1, weight_decay=1e-3)
            assert opt.defaults["fused"]
        else:
            opt = LARS(param_groups(model, 1e-3), lr=0.1) if optimizer == "lars" else sgd(model)
        return model, opt

    bad = views(5)
    bad[0][:, :, :, :] = float("inf")
    (seen, opt_seen), (never, opt_never) = build(), build()
    before = _norm_state(seen)
    train_step(seen, opt_seen, [views(1)], lr=0.1)
    result = train_step(seen, opt_seen, [bad], lr=0.1)
    train_step(seen, opt_seen, [views(2)], lr=0.1)
    for batch in (views(1), views(2)):
        train_step(never, opt_never, [batch], lr=0.1)
    assert bool(result.skipped)
    after_seen, after_never = _norm_state(seen), _norm_state(never)
    assert any(k.startswith("target_encoder") for k in after_seen) and any("predictor" in k for k in after_seen)
    assert all(torch.equal(after_seen[k], after_never[k]) for k in after_seen)
    assert not all(torch.equal(after_seen[k], before[k]) for k in before)  # the good steps did move them
    assert all(torch.equal(a, b) for a, b in zip(seen.state_dict().values(), never.state_dict().values()))


def test_without_the_restore_a_non_finite_batch_spoils_batchnorm_for_good():
    """What the restore prevents: the forward pass alone writes NaN into the running statistics."""
    model = make()
    bad = views(5)
    bad[0][:, :, :, :] = float("inf")
    model(*bad)
    means = [m.running_mean for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert means and all(torch.isnan(mean).any() for mean in means)


@pytest.mark.parametrize("found", [0.0, 1.0])
def test_lars_skips_on_the_device_flag_and_otherwise_steps_as_usual(found):
    """The sync-free path a GPU takes: ``found_inf`` set, the choice made by ``torch.where``."""
    from byol import LARS, param_groups

    flagged, plain = make(), make()
    for m in (flagged, plain):
        m(*views(7)).loss.backward()
    if found:
        next(flagged.online_encoder.parameters()).grad[0] = float("nan")
    opt_f, opt_p = LARS(param_groups(flagged, 1e-3), lr=0.1), LARS(param_groups(plain, 1e-3), lr=0.1)
    opt_f.found_inf = torch.tensor(found)
    before = [p.detach().clone() for p in flagged.parameters()]
    opt_f.step()
    opt_p.step()
    if found:
        assert all(torch.equal(a, b) for a, b in zip(before, flagged.parameters()))
        assert all(
            torch.equal(s["momentum_buffer"], torch.zeros_like(s["momentum_buffer"])) for s in opt_f.state.values()
        )
    else:
        assert all(torch.equal(a, b) for a, b in zip(flagged.parameters(), plain.parameters()))


@pytest.mark.parametrize(
    "amx, avx512_bf16, expected",
    [(True, True, "bf16"), (True, False, "bf16"), (False, True, "bf16"), (False, False, "fp32")],
    ids=["amx", "amx-only", "avx512-bf16", "neither"],
)
def test_precision_auto_is_bf16_on_cuda_and_on_cpus_with_bf16_units(amx, avx512_bf16, expected, monkeypatch):
    """AMX (Intel Xeon) or AVX-512 BF16 (Intel, AMD Zen 4): bf16; neither: fp32. The reason is said."""
    from byol.device import DevicePolicy, autocast_for, hardware, precision_reason, resolve_precision

    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16)
    cpu = torch.device("cpu")
    assert resolve_precision("auto", cpu) == expected
    assert resolve_precision("auto", torch.device("cuda")) == "bf16"
    assert resolve_precision("fp32", cpu) == "fp32"  # asked for: kept, whatever the CPU
    reason = precision_reason("auto", cpu)
    units = "AMX" if amx else "AVX-512 BF16" if avx512_bf16 else None
    assert reason.startswith(f"{expected}: auto") and (units is None or f"({units})" in reason), reason
    assert precision_reason("bf16", cpu) == "bf16: run.precision=bf16"
    assert DevicePolicy.resolve(cpu, "auto").precision_reason == reason
    assert hardware(cpu)["cpu_bf16"] == units  # summary.json names the unit: VMs often mask the model name
    model = make()
    with autocast_for(resolve_precision("auto", torch.device("cpu")), torch.device("cpu")):
        out = model(*views(3))
    # The encoder's convolutions ran in bf16 under auto on such a CPU; the loss stays fp32.
    assert out.representation_view1.dtype == (torch.bfloat16 if expected == "bf16" else torch.float32)
    assert out.loss.dtype == torch.float32 and torch.isfinite(out.loss)


@pytest.mark.parametrize(
    "units, bf16_seconds, expected",
    [(None, 0.002, "fp32"), ("AVX-512 BF16", 0.002, "bf16"), ("AVX-512 BF16", 0.0038, "fp32"), ("AMX", 0.006, "fp32")],
    ids=["no-units", "bf16-twice-as-fast", "bf16-5pc-faster", "bf16-slower"],
)
def test_auto_precision_on_a_cpu_with_bf16_units_is_measured(units, bf16_seconds, expected, monkeypatch):
    """What the CPU reports is not what it gains (an Intel Xeon with AVX-512 BF16: ResNet-18 8% slower in
    bf16): auto keeps bf16 only where a probe of the run's own passes finds it 1.1× faster. Without bf16
    units nothing is probed; fp32 or bf16 asked for, or CUDA, are not probed either."""
    import types

    import byol.train.precision_probe as probe_module
    from byol.device import DevicePolicy
    from byol.dist import DistInfo

    monkeypatch.setattr(probe_module, "cpu_bf16_units", lambda: units)
    clock = [0.0]  # a pass's seconds on a clock of the test's own: no scheduler jitter near the threshold
    monkeypatch.setattr(probe_module, "time", types.SimpleNamespace(perf_counter=lambda: clock[0]))
    probed = []

    def probe(policy):
        probed.append(policy.precision)
        return lambda: clock.__setitem__(0, clock[0] + (bf16_seconds if policy.precision == "bf16" else 0.004))

    cpu = DevicePolicy.resolve(torch.device("cpu"), "fp32")
    chosen, speedup = probe_module.measured_precision(cpu, "auto", probe, DistInfo())
    assert chosen.precision == expected and (speedup is None) == (units is None)
    if units is None:
        assert probed == [] and chosen == cpu
    else:
        assert sorted(set(probed)) == ["bf16", "fp32"] and f"measured {speedup:.2f}×" in chosen.precision_reason
        assert chosen.precision_reason.startswith(f"{expected}: auto") and units in chosen.precision_reason
    for setting, device in (("fp32", "cpu"), ("bf16", "cpu"), ("auto", "cuda")):
        policy = dataclasses.replace(cpu, device=torch.device(device))
        probed.clear()
        assert probe_module.measured_precision(policy, setting, probe, DistInfo()) == (policy, None) and not probed
    # measured once a run: short runs (by steps or budget) and resumed ones are not probed
    for planned, saved, expected_reason in (
        ((199, None), None, "fp32: auto, 199 steps is too short"),
        ((10_000, 1.5), None, "fp32: auto, a 1.5-minute budget is too short"),
        ((10, None), "bf16", "bf16: auto, as its checkpoint was trained"),
        ((10_000, None), "fp32", "fp32: auto, as its checkpoint was trained"),
    ):
        probed.clear()
        chosen, speedup = probe_module.measured_precision(cpu, "auto", probe, DistInfo(), planned, saved)
        if units is not None:
            assert chosen.precision_reason.startswith(expected_reason) and not probed and speedup is None
            assert chosen.precision == expected_reason[:4]
    probed.clear()
    assert probe_module.measured_precision(cpu, "auto", probe, DistInfo(), (200, None))[0].precision == expected
    assert probe_module.measured_precision(cpu, "auto", probe, DistInfo(), (1, 2.0))[0].precision == expected


def test_the_precision_probe_reads_the_hardware_through_a_busy_spell(monkeypatch):
    """Another process holding a core for part of the probe slows some of its passes, never speeds one
    up: bf16 twice as fast, its first three passes tripled by load, is still chosen (a median would read
    0.67× and pick fp32, as a run beside the test suite did on an AMD EPYC)."""
    import types

    import byol.train.precision_probe as probe_module
    from byol.device import DevicePolicy
    from byol.dist import DistInfo

    monkeypatch.setattr(probe_module, "cpu_bf16_units", lambda: "AVX-512 BF16")
    clock, bf16_passes = [0.0], []
    monkeypatch.setattr(probe_module, "time", types.SimpleNamespace(perf_counter=lambda: clock[0]))

    def probe(policy):
        def one_pass():
            if policy.precision == "bf16":
                bf16_passes.append(1)  # the warm-up pass is the first: passes 2-4 are the busy spell
                clock[0] += 0.006 if 2 <= len(bf16_passes) <= 4 else 0.002
            else:
                clock[0] += 0.004

        return one_pass

    cpu = DevicePolicy.resolve(torch.device("cpu"), "fp32")
    chosen, speedup = probe_module.measured_precision(cpu, "auto", probe, DistInfo())
    assert len(bf16_passes) == 1 + probe_module.ROUNDS and probe_module.ROUNDS >= 5  # warm-up, then the rounds
    assert chosen.precision == "bf16" and speedup == pytest.approx(2.0)


def test_the_precision_probe_runs_the_runs_own_passes_and_leaves_no_trace(synthetic, tmp_path, monkeypatch):
    """byol pretrain with precision auto on a CPU said to have bf16 units: both precisions are timed on
    the run's model and the choice and its reason reach summary.json. A run whose probe chose fp32 ends
    bit for bit as a run that asked for fp32 (the probe left weights, statistics and RNG as they were);
    one whose probe chose bf16 trains in bf16."""
    import json

    from helpers import tiny_config

    import byol.train.precision_probe as probe_module
    from byol.train.pretrain import pretrain

    monkeypatch.setattr(probe_module, "cpu_bf16_units", lambda: "AVX-512 BF16")
    monkeypatch.setattr(probe_module, "PROBE_FROM_STEPS", 0)  # these runs are seconds long
    summaries = {}
    for name, precision, threshold in (("fp32", "fp32", None), ("auto-fp32", "auto", 1e9), ("auto-bf16", "auto", 0.0)):
        if threshold is not None:
            monkeypatch.setattr(probe_module, "BF16_AT_LEAST", threshold)
        cfg = tiny_config(synthetic["train"], synthetic["cache"], epochs=1, knn_every=0, precision=precision)
        pretrain(cfg, tmp_path / name, progress=False)
        summaries[name] = json.loads((tmp_path / name / "summary.json").read_text())
    assert summaries["fp32"]["precision_reason"] == "fp32: run.precision=fp32"
    for name in ("auto-fp32", "auto-bf16"):
        chosen = name.split("-")[1]
        assert summaries[name]["precision"] == chosen and "bf16 measured" in summaries[name]["precision_reason"]
    assert summaries["auto-fp32"]["final_loss"] == summaries["fp32"]["final_loss"]  # no trace of the probe
    assert summaries["auto-bf16"]["final_loss"] != summaries["fp32"]["final_loss"]
    # a resumed (here: extended) run keeps the precision its checkpoint was trained in, whatever a
    # new measurement would say (a resume that flipped would not end where an unbroken run does)
    monkeypatch.setattr(probe_module, "BF16_AT_LEAST", 1e9)
    cfg = tiny_config(synthetic["train"], synthetic["cache"], epochs=2, knn_every=0, precision="auto")
    pretrain(cfg, tmp_path / "auto-bf16", progress=False)
    resumed = json.loads((tmp_path / "auto-bf16" / "summary.json").read_text())
    assert resumed["precision"] == "bf16" and "as its checkpoint was trained" in resumed["precision_reason"]
    assert resumed["steps"] == 2 * summaries["auto-bf16"]["steps"]


@pytest.mark.parametrize("mode", ["default", "reduce-overhead", "max-autotune"])
def test_compile_mode_is_the_mode_torch_compile_gets(mode, synthetic, monkeypatch):
    """run.compile_mode reaches torch.compile (compiling itself takes a minute on a CPU, and CUDA graphs
    need a GPU: benchmarks/gpu_accuracy.sh measures the modes there)."""
    from helpers import tiny_config

    from byol.device import DevicePolicy
    from byol.dist import DistInfo
    from byol.train.setup import build_model

    cfg = tiny_config(synthetic["train"], synthetic["cache"])
    cfg.run.compile, cfg.run.compile_mode = True, mode
    seen = []
    monkeypatch.setattr(torch, "compile", lambda model, **kw: seen.append(kw) or model)
    method, model, _, _ = build_model(cfg, DevicePolicy(torch.device("cpu")), DistInfo())
    assert seen == [{"mode": None if mode == "default" else mode}] and model is method
