"""Each periodic concern of the training loop, alone: fed made-up steps, checked by what it wrote."""

import dataclasses
import json
import logging
import math
import types

import numpy as np
import pytest
import torch
from helpers import tiny_config

from byol.dist import DistInfo
from byol.errors import ByolError
from byol.method import MethodOutput
from byol.schedules import Plan
from byol.train import checkpoint as ckpt_io
from byol.train.engine import StepResult
from byol.train.hooks import (
    CheckpointCadence,
    CollapseWatch,
    KnnMonitor,
    MetricsLog,
    NonFiniteGuard,
    OnlineClassifierHook,
    ProgressBar,
    StepCallback,
    StepEvent,
    TimeBudget,
    monitor_split,
)
from byol.train.metrics_file import MetricsWriter, read_metrics
from byol.train.setup import build_run
from byol.train.state import TrainState


@pytest.fixture
def run(synthetic, tmp_path):
    """The parts of a tiny run on 400 labelled images (random pixels: the hooks need none real): 12 steps per epoch."""
    cfg = tiny_config(synthetic["train"], synthetic["cache"], epochs=2, knn_every=1, log_every=4).validate()
    return build_run(cfg, tmp_path / "run", True, torch.device("cpu"), DistInfo())


def output(batch=8, spread=1.0, seed=0):
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(batch, 16, generator=g) * spread + 1.0
    return MethodOutput(torch.tensor(0.0), torch.randn(batch, 64, generator=g), z)


def event(state, loss, labels=None, out=None, lr=0.1, tau=0.99):
    out = out or output()
    return StepEvent(state, lr, tau, StepResult(torch.tensor(float(loss)), out), labels)


def after_step(state, hook, ev):
    """``hook.after_step(ev)``, its ``Stop`` taken as the loop takes it."""
    stop = hook.after_step(ev)
    if stop is not None and state.stop is None:
        state.stop = stop


def advance(state, hook, losses, **kw):
    for loss in losses:
        state.step += 1
        after_step(state, hook, event(state, loss, **kw))


def test_metrics_log_writes_the_mean_loss_of_each_interval_and_the_online_accuracy(run):
    state = TrainState(0, Plan(100, 0, 12))
    logger = MetricsWriter(run.run_dir, tensorboard=False)
    probe = OnlineClassifierHook(run)
    hooks = [probe, MetricsLog(run, logger, start_step=0, probe=probe)]
    labels = torch.arange(8) % 10
    out = output()
    with torch.no_grad():  # a classifier that is right on every sample: class = argmax of the features
        run.classifier.linear.weight.zero_()
        run.classifier.linear.bias.zero_()
        for i, y in enumerate(labels.tolist()):
            run.classifier.linear.weight[y, i] = 100.0
            out.representation_view1[i].zero_()
            out.representation_view1[i, i] = 1.0
    for loss in [1.0, 2.0, 3.0, 6.0, 0.5, 0.5, 0.5, 0.5]:
        state.step += 1
        for hook in hooks:
            hook.after_step(event(state, loss, labels=labels, out=out))
    rows = [r for r in read_metrics(run.run_dir) if r["step"] > 0]  # the log steps (step 0: the start)
    assert [r["step"] for r in rows] == [4, 8]
    assert [r["loss"] for r in rows] == [3.0, 0.5]  # the mean over each interval of log_every=4 steps
    assert hooks[1].final_loss == 0.5 and hooks[1].last_line["loss"] == 0.5
    assert rows[0]["online_top1"] == 1.0 and rows[0]["epoch"] == 4 / 12  # the probe's hits reach the line
    assert probe.take()[1] == 0  # the line took the counts: they restart
    assert rows[0]["projection_std_ratio"] == pytest.approx(rows[0]["projection_std"] * 4)  # √16


def test_metrics_log_without_a_probe_writes_no_online_accuracy(run):
    state = TrainState(0, Plan(100, 0, 12))
    advance(state, MetricsLog(run, MetricsWriter(run.run_dir, tensorboard=False), start_step=0), [1.0] * 4)
    rows = read_metrics(run.run_dir)
    assert [r["step"] for r in rows] == [0, 4] and "online_top1" not in rows[-1]


def test_metrics_log_counts_skipped_steps_and_averages_the_others(run):
    state = TrainState(0, Plan(100, 0, 12))
    hook = MetricsLog(run, MetricsWriter(run.run_dir, tensorboard=False), start_step=0)
    for loss in (1.0, math.nan, 3.0, 2.0, math.inf, math.nan, math.nan, math.nan):
        state.step += 1
        skipped = torch.tensor(not math.isfinite(loss))
        hook.after_step(StepEvent(state, 0.1, 0.99, StepResult(torch.tensor(loss), output(), skipped), None))
    rows = [r for r in read_metrics(run.run_dir) if r["step"] > 0]
    assert [(r["loss"], r["skipped_steps"]) for r in rows] == [(2.0, 1), (None, 4)]  # the mean of 1, 3, 2
    assert hook.final_loss == 2.0  # the last mean that had steps


def _skips(state, hook, flags):
    for skip in flags:
        state.step += 1
        loss = torch.tensor(math.nan if skip else 1.0)
        hook.after_step(StepEvent(state, 0.1, 0.99, StepResult(loss, output(), torch.tensor(skip)), None))


@pytest.mark.parametrize("every", [1, 2])  # a CPU looks every step; a GPU every max_skipped_steps (here 2)
def test_the_non_finite_guard_stops_the_run_after_too_many_skipped_steps_in_a_row(run, every):
    run.cfg.run.max_skipped_steps = 2
    state = TrainState(0, Plan(100, 0, 12))
    ckpt_io.atomic_save({"x": torch.zeros(1)}, ckpt_io.checkpoint_path(run.run_dir, 2))
    guard = NonFiniteGuard(run)
    assert guard.every == 1  # on this CPU
    guard.every = every
    _skips(state, guard, [False, True, True, False, True, True])  # 2 in a row, twice: allowed
    # Every step: the third in a row (step 7). Every 2: the next step it looks (8), the streak 4 by then.
    stop_at, streak = (7, 3) if every == 1 else (8, 4)
    message = (
        rf"not finite for {streak} steps in a row \(up to step {stop_at}\); the last good checkpoint is "
        r".*step-000000002\.pt; "
    )
    with pytest.raises(ByolError, match=message + "resume with a lower learning rate: the same command with --lr"):
        _skips(state, guard, [True, True])
    assert state.step == stop_at


def test_on_a_gpu_the_guard_reads_the_copy_of_its_last_look_and_stops_one_look_later(run):
    """The GPU path, with CPU stand-ins for the pinned copy and its event: the host never reads the
    device's counter at a look, it takes the copy the look before started."""
    import types

    run.cfg.run.max_skipped_steps = 2
    state = TrainState(0, Plan(100, 0, 12))
    guard = NonFiniteGuard(run)
    guard.every, guard.defer, reads = 2, True, []
    guard._start_copy = lambda: (reads.append(state.step) or guard.longest.clone(), types.SimpleNamespace(
        synchronize=lambda: None))  # fmt: skip
    _skips(state, guard, [False, True, True, False, True, True, True, True])  # 3 in a row by step 7
    assert reads == [2, 4, 6, 8]  # a copy started at each look; nothing read from the device
    with pytest.raises(ByolError, match=r"not finite for 4 steps in a row \(up to step 10\)"):
        _skips(state, guard, [True, True])  # step 10's look reads step 8's copy: 4 in a row


def test_metrics_lines_do_not_stop_a_run_the_guard_does_not_stop(run):
    """Safety is the guard's: MetricsLog writes a line of skipped steps and goes on, whatever the streak."""
    run.cfg.run.max_skipped_steps = 0
    state = TrainState(0, Plan(100, 0, 12))
    _skips(state, MetricsLog(run, MetricsWriter(run.run_dir, tensorboard=False), start_step=0), [True] * 8)
    assert [r["skipped_steps"] for r in read_metrics(run.run_dir) if r["step"] > 0] == [4, 4]


def test_the_collapse_watch_warns_once_at_the_first_collapsed_metrics_line(run, caplog):
    state = TrainState(0, Plan(100, 0, 12))
    metrics = MetricsLog(run, MetricsWriter(run.run_dir, tensorboard=False), start_step=0)
    watch = CollapseWatch(metrics)
    both = type("Both", (), {"after_step": lambda self, e: (metrics.after_step(e), watch.after_step(e))})()
    with caplog.at_level(logging.WARNING):
        advance(state, both, [1.0] * 4, out=output(spread=1.0))
        assert "collapsed" not in caplog.text
        advance(state, both, [1.0] * 8, out=output(spread=1e-6))
    assert caplog.text.count("looks collapsed") == 1 and "step 8: the representation looks collapsed" in caplog.text
    assert read_metrics(run.run_dir)[-1]["projection_std_ratio"] < 0.1


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_time_budget_estimates_the_steps_from_measured_speed_and_stops_on_time(run):
    budget, spe = 100.0, 40
    state = TrainState(0, Plan(spe * 1000, 20, spe, budget_seconds=budget))
    state.elapsed = clock = Clock()  # the training clock (the first step's compilation is not on it)
    hook = TimeBudget(run, start_step=0)
    while not state.finished:
        clock.now += 1.0 if state.step < 23 else 2.0  # 1 s per step, then 2 s after the first estimate
        state.step += 1
        after_step(state, hook, event(state, 1.0))
        if state.step == 22:
            assert not state.plan.estimated
        if state.step == 23:  # 3 warm-up steps, then 20 timed ones: the first estimate
            assert state.plan.estimated and state.plan.total_steps == 23 + int((budget - 23.0) / 1.0)
        if state.step == spe:  # the epoch's end: 17 steps since the last estimate, timed with the next stretch
            assert hook.paces == [1.0] and state.plan.total_steps == spe + int((budget - clock.now) / 1.0)
        if state.step == 60:  # an estimate every 20 steps too: 37 steps at 2 s since step 23; the median of 1 and 2
            assert hook.paces == [1.0, 2.0] and state.plan.total_steps == 60 + int((budget - clock.now) / 1.5)
    assert state.stop.reason == "the time budget of 1.66667 minutes is spent" and state.stop.signal is None
    assert clock.now >= budget and state.step == 62  # 23 s at step 23, then 2 s per step
    assert state.plan.total_steps == state.step  # τ and lr reach their ends at the stop


def budget_sequence(run, spe, warmup, seconds_per_step, budget=300.0):
    """lr (peak 1), τ and the clock at every step of a budget run whose speed changes as
    ``seconds_per_step(step, now)``; and the warm-up the first estimate fixed."""
    state = TrainState(0, Plan(spe * 1000, warmup, spe, budget_seconds=budget))
    state.elapsed = clock = Clock()
    hook = TimeBudget(run, start_step=0)
    lrs, taus, times, first_warmup = [], [], [], None
    while not state.finished:
        lrs.append(state.plan.lr_at(state.step))  # as the loop reads them, before the step
        taus.append(state.plan.tau_at(state.step, 0.99))
        times.append(clock.now)
        clock.now += seconds_per_step(state.step, clock.now)
        state.step += 1
        after_step(state, hook, event(state, 1.0))
        if state.plan.estimated and first_warmup is None:
            first_warmup = state.plan.warmup_steps
    return np.array(lrs), np.array(taus), np.array(times), first_warmup, state


@pytest.mark.parametrize("speeds", [(1.0, 2.0, 0.5), (1.0, 0.5, 2.0)], ids=["slower-then-faster", "faster-then-slower"])
def test_time_budget_lr_rises_through_its_warm_up_then_never_jumps(run, speeds):
    """The estimates of a budget whose speed changes twice re-lay the schedule; the lr must never jump:
    up to the peak through the warm-up (fixed at the first estimate), then along cosines and ramps of at
    least TIMED_STEPS steps (no step moves it by more than 1/20 of the peak), to about 0 at the end."""
    spe = 40
    run.cfg.optim.warmup_epochs = 1.5  # 60 steps: the first estimate (step 23) falls in the warm-up

    def seconds_per_step(step, now):
        return speeds[0] if step < 60 else speeds[1] if step < 150 else speeds[2]

    lrs, taus, _, warmup, state = budget_sequence(run, spe, warmup=60, seconds_per_step=seconds_per_step)
    peak_at = int(lrs.argmax())
    assert peak_at == warmup == 60 and lrs.max() == pytest.approx(1.0)
    assert (np.diff(lrs[: peak_at + 1]) > 0).all()  # the warm-up rises at every step, through the first estimate
    assert np.abs(np.diff(lrs)).max() <= 1 / TimeBudget.TIMED_STEPS
    assert lrs[-1] < 0.05 and state.plan.total_steps == state.step  # it ended near 0, on the budget's last step
    assert (np.diff(taus) >= 0).all() and taus[-1] > 0.999  # τ only rises, and ends near 1


STALL_START, STALL = 120.0, 180.0


@pytest.mark.parametrize(
    "stall",
    [
        lambda step, now: 0.2 + STALL if STALL_START <= now < STALL_START + 0.2 else 0.2,  # stopped for 3 minutes
        lambda step, now: 0.6 if STALL_START <= now < STALL_START + STALL else 0.2,  # 3× slower for 3 minutes
        lambda step, now: 2.0 if STALL_START <= now < STALL_START + STALL else 0.2,  # 10× slower for 3 minutes
    ],
    ids=["stopped", "3x-slower", "10x-slower"],
)
def test_a_slowdown_costs_a_budget_its_steps_not_the_shape_of_its_schedule(run, stall):
    """A 10-minute budget at 0.2 s per step, disturbed for 3 minutes from minute 2 (a hook that sleeps:
    the clock is the test's). Before, one slow stretch laid the tail short and the lr decayed to about 0,
    to stay there when the speed came back (docs/results/demo-cpu/: 53.7% instead of 59.1%). Now the lr
    at each moment is the undisturbed run's (within 0.05 of the peak) but in the stretch the stall took
    and the minute after it; the run loses the steps the stall took, no more; lr and τ reach their ends
    on the budget's last step."""
    run.cfg.optim.warmup_epochs = 1.0
    base_lrs, _, base_times, _, base = budget_sequence(run, 100, 100, lambda step, now: 0.2, budget=600.0)
    lrs, taus, times, _, state = budget_sequence(run, 100, 100, stall, budget=600.0)
    away = (times < STALL_START) | (times > STALL_START + STALL + 60)
    assert np.abs(lrs - np.interp(times, base_times, base_lrs))[away].max() < 0.05
    lost = sum(1 for t in times if STALL_START <= t < STALL_START + STALL)  # steps made while disturbed
    expected = base.step - round(STALL / 0.2) + lost  # the undisturbed steps, less those the 3 minutes held
    assert abs(state.step - expected) <= 0.02 * base.step, (state.step, expected)
    assert lrs[-1] < 0.01 and state.plan.total_steps == state.step and taus[-1] > 0.999
    assert np.abs(np.diff(lrs)).max() <= 1 / TimeBudget.TIMED_STEPS and (np.diff(taus) >= 0).all()


def test_time_budget_does_nothing_for_a_run_of_fixed_length(run):
    state = TrainState(0, Plan(50, 5, 12))
    state.elapsed = lambda: 1e9
    hook = TimeBudget(run, start_step=0)
    advance(state, hook, [1.0] * 30)
    assert not state.stop and state.plan.total_steps == 50 and not state.plan.estimated


def test_knn_monitor_runs_on_its_steps_and_at_the_end(run, monkeypatch):
    state = TrainState(0, Plan(30, 0, 12))
    hook = KnnMonitor(run, MetricsWriter(run.run_dir, tensorboard=False))
    assert hook.every == 12  # knn_every = 1 epoch
    advance(state, hook, [1.0] * 30)
    knn_steps = [r["step"] for r in read_metrics(run.run_dir) if "knn_top1" in r]
    assert knn_steps == [12, 24, 30]
    assert 0 <= hook.last["knn_top1"] <= hook.last["knn_top5"] <= 1


def test_knn_monitor_runs_in_the_runs_precision_with_features_on_its_device(run, monkeypatch):
    import byol.train.hooks.knn as hooks

    # bf16 is what auto is on a GPU; CPU autocast stands in for it here
    run = dataclasses.replace(run, policy=dataclasses.replace(run.policy, precision="bf16"))
    dtypes, devices = [], []
    handle = run.method.online_encoder.register_forward_hook(lambda m, i, o: dtypes.append(o.dtype))
    real = hooks.knn_accuracy
    monkeypatch.setattr(hooks, "knn_accuracy", lambda *a, **k: devices.extend(t.device for t in a[:4]) or real(*a, **k))
    knn = KnnMonitor(run, MetricsWriter(run.run_dir, tensorboard=False)).evaluate()
    handle.remove()
    assert dtypes and set(dtypes) == {torch.bfloat16}
    assert devices == [run.device] * 4 and 0 <= knn["knn_top1"] <= knn["knn_top5"] <= 1


def test_knn_monitor_split_is_disjoint_and_fixed_by_the_seed(run):
    q1, b1 = monitor_split(run.data, 0, 0.1, 10000)
    q2, b2 = monitor_split(run.data, 0, 0.1, 10000)
    q3, _ = monitor_split(run.data, 1, 0.1, 10000)
    assert torch.equal(q1, q2) and torch.equal(b1, b2) and not torch.equal(q1, q3)
    assert len(q1) == 40 and len(b1) == 360 and not set(q1.tolist()) & set(b1.tolist())
    _, small_bank = monitor_split(run.data, 0, 0.1, 100)
    assert len(small_bank) == 100


def test_knn_monitor_with_a_test_folder_is_byol_eval_knn_and_summary_keeps_final_and_max(synthetic, tmp_path):
    """--knn-test: every training image in the bank, the test folder as queries: the figure byol eval knn gives."""
    from byol.eval.runner import EncoderEval, knn_evaluate
    from byol.train.pretrain import pretrain

    cfg = tiny_config(synthetic["train"], synthetic["cache"], epochs=3, knn_every=1)
    cfg.data.knn_test = str(synthetic["test"])
    pretrain(cfg, tmp_path / "run", progress=False)
    lines = [r for r in read_metrics(tmp_path / "run") if "knn_top1" in r]
    assert [r["step"] for r in lines] == [12, 24, 36] and {r["knn_protocol"] for r in lines} == {"test"}
    assert all(r["knn_seconds"] > 0 for r in lines)
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    final, best = summary["knn_final"], summary["knn_max"]
    scored = knn_evaluate(EncoderEval.load(tmp_path / "run"), str(synthetic["train"]), str(synthetic["test"]), k=20)
    assert final["top1"] == pytest.approx(scored["top1"], abs=1e-6) == summary["knn_top1"]
    assert final["step"] == 36 and final["epoch"] == 3 and final["protocol"] == "test"
    assert best["top1"] == max(r["knn_top1"] for r in lines) and best["step"] in (12, 24, 36)
    assert best["epoch"] == best["step"] / 12


def test_knn_monitor_with_a_test_folder_banks_every_training_image(run, synthetic):
    run.cfg.data.knn_test = str(synthetic["test"])
    hook = KnnMonitor(run, MetricsWriter(run.run_dir, tensorboard=False))
    assert hook.protocol == "test" and hook.query_idx is None and torch.equal(hook.bank_idx, torch.arange(400))
    knn = hook.evaluate()
    assert knn["knn_protocol"] == "test" and 0 <= knn["knn_top1"] <= knn["knn_top5"] <= 1


def test_knn_test_folder_that_does_not_fit_is_refused_in_one_line(run, synthetic, tmp_path):
    for name in ("class0", "zebra"):
        (tmp_path / "odd" / name).mkdir(parents=True)
        (tmp_path / "odd" / name / "a.png").write_bytes((synthetic["test"] / "class0" / "0.png").read_bytes())
    for folder, message in (
        (tmp_path / "missing", "--knn-test .*missing: data folder .* does not exist"),
        (tmp_path / "odd", "--knn-test .*odd: its class zebra is not among the 10 classes of .*train \\(class0, "),
    ):
        run.cfg.data.knn_test = str(folder)
        with pytest.raises(ByolError, match=message):
            KnnMonitor(run, MetricsWriter(run.run_dir, tensorboard=False))


def test_knn_summary_keeps_the_last_pass_and_the_best_of_the_last_protocol():
    from byol.train.hooks.knn import knn_summary

    rows = [
        {"step": 5, "epoch": 1, "knn_top1": 0.9, "knn_top5": 1.0},  # an older held-out line: another protocol
        {"step": 8, "loss": 1.0},
        {"step": 10, "epoch": 2, "knn_top1": 0.4, "knn_top5": 0.8, "knn_protocol": "test"},
        {"step": 15, "epoch": 3, "knn_top1": 0.5, "knn_top5": 0.9, "knn_protocol": "test"},
        {"step": 20, "epoch": 4, "knn_top1": 0.5, "knn_top5": 0.9, "knn_protocol": "test"},
        {"step": 25, "epoch": 5, "knn_top1": 0.45, "knn_top5": 0.9, "knn_protocol": "test"},
    ]
    out = knn_summary(rows)
    assert (out["knn_final"]["top1"], out["knn_final"]["step"]) == (0.45, 25)
    assert (out["knn_max"]["top1"], out["knn_max"]["step"], out["knn_max"]["epoch"]) == (0.5, 15, 3)
    assert out["knn_max"]["protocol"] == "test" and "4 passes" in out["knn_max"]["what"]
    assert knn_summary([{"step": 1, "loss": 2.0}]) == {}


def test_checkpointer_saves_at_epoch_ends_on_time_and_at_the_end_keeping_the_newest(run):
    state = TrainState(0, Plan(30, 0, 12))
    hook = CheckpointCadence(run)
    advance(state, hook, [1.0] * 13)
    assert [p.name for p in ckpt_io.list_checkpoints(run.run_dir)] == ["step-000000012.pt"]
    hook.last_time -= run.cfg.run.checkpoint_every_minutes * 60  # the interval has passed
    advance(state, hook, [1.0])
    advance(state, hook, [1.0] * 16)  # 24 (epoch end) and 30 (the end)
    assert [p.name for p in ckpt_io.list_checkpoints(run.run_dir)] == ["step-000000024.pt", "step-000000030.pt"]
    saved = ckpt_io.load_checkpoint(ckpt_io.list_checkpoints(run.run_dir)[-1])
    assert saved["step"] == 30 and saved["schedule"]["total_steps"] == 30 and "classifier" in saved


def test_background_checkpoints_hold_the_weights_of_their_step_and_raise_write_errors(run, monkeypatch):
    """The GPU path, run on a CPU: the file is written after training has moved the weights on."""
    import threading

    from byol.files import WriteFailed

    release, real_save = threading.Event(), ckpt_io.atomic_save

    def held_save(obj, path):  # the write starts only once the loop has changed the weights
        assert release.wait(10)
        real_save(obj, path)

    monkeypatch.setattr(ckpt_io, "atomic_save", held_save)
    state = TrainState(11, Plan(30, 0, 12))
    hook = CheckpointCadence(run, background=True)
    first = next(run.method.online_encoder.parameters())
    before = first.detach().clone()
    advance(state, hook, [1.0])  # step 12, an epoch end: the write is in flight
    assert hook.writer.pending is not None and ckpt_io.list_checkpoints(run.run_dir) == []
    with torch.no_grad():
        first.fill_(7.0)  # the next steps
    release.set()
    hook.close()
    saved = ckpt_io.load_checkpoint(ckpt_io.list_checkpoints(run.run_dir)[-1])
    key = next(k for k in saved["model"] if k.startswith("online_encoder"))
    assert saved["step"] == 12 and torch.equal(saved["model"][key], before)

    def failing_save(obj, path):
        raise WriteFailed(f"cannot write {path}: No space left on device")

    monkeypatch.setattr(ckpt_io, "atomic_save", failing_save)
    hook = CheckpointCadence(run, background=True)
    advance(state, hook, [1.0] * 12)  # step 24: the write fails in the background
    with pytest.raises(WriteFailed, match="step-000000024.pt: No space"):
        hook.close()


def test_the_data_fingerprint_is_hashed_once_a_run_not_at_every_checkpoint(run, monkeypatch):
    calls = []
    real = type(run.data.image_list).fingerprint
    monkeypatch.setattr(type(run.data.image_list), "fingerprint", lambda self: calls.append(1) or real(self))
    state = TrainState(0, Plan(36, 0, 12))
    advance(state, CheckpointCadence(run), [1.0] * 36)  # three checkpoints
    saved = [ckpt_io.load_checkpoint(p)["data"] for p in ckpt_io.list_checkpoints(run.run_dir)]
    assert len(calls) == 1 and saved[0] == saved[-1] == real(run.data.image_list)


def test_checkpointer_refuses_to_write_non_finite_weights(run):
    state = TrainState(11, Plan(30, 0, 12))
    with torch.no_grad():
        next(run.method.online_encoder.parameters()).fill_(math.inf)
    with pytest.raises(ByolError, match="non-finite at step 12"):
        advance(state, CheckpointCadence(run), [1.0])
    assert ckpt_io.list_checkpoints(run.run_dir) == []


def test_progress_bar_follows_the_steps_and_shows_the_last_figures():
    state = TrainState(5, Plan(100, 0, 12))
    metrics = types.SimpleNamespace(last_line=None)  # what MetricsLog wrote last, as the bar is wired to it
    hook = ProgressBar(state, metrics)
    state.plan = dataclasses.replace(state.plan, total_steps=40)  # the run's length changed
    metrics.last_line = {"epoch": 0.5, "loss": 1.234, "lr": 0.1, "tau": 0.99, "images_per_sec": 321.0}
    advance(state, hook, [1.0])
    assert hook.bar.total == 40 and hook.bar.n == 6
    assert hook.bar.postfix and "loss=1.234" in hook.bar.postfix and "ips=321" in hook.bar.postfix
    hook.close()


def test_progress_bar_of_a_time_budget_counts_training_seconds_and_shows_the_time_left(capsys):
    state = TrainState(0, Plan(12_000, 10, 12, budget_seconds=120.0))
    state.elapsed = clock = Clock()
    metrics = types.SimpleNamespace(last_line=None)
    hook = ProgressBar(state, metrics)
    assert hook.bar.total == 120 and hook.bar.unit == "s"  # not the provisional 1000 epochs of steps
    state.plan = dataclasses.replace(state.plan, total_steps=300)  # an estimate
    metrics.last_line = {"epoch": 0.5, "loss": 1.234, "lr": 0.1, "tau": 0.99, "images_per_sec": None}
    for _ in range(3):
        clock.now += 15.0
        advance(state, hook, [1.0])
    assert hook.bar.n == 45.0
    assert "1:15 left, step 3/~300" in hook.bar.postfix and "ips=-" in hook.bar.postfix
    hook.close()
    assert "45/120 s of training, 1:15 left" in capsys.readouterr().err


def test_step_callback_gets_every_step():
    state = TrainState(0, Plan(10, 0, 5))
    seen = []
    advance(state, StepCallback(seen.append), [1.0] * 3)
    assert seen == [1, 2, 3]


def test_metrics_file_has_no_lines_after_the_resumed_step(run):
    from byol.train.run_folder import truncate_metrics

    logger = MetricsWriter(run.run_dir, tensorboard=False)
    for step in (4, 8, 12, 16):
        logger.log(step, {"loss": 1.0})
    truncate_metrics(run.run_dir, 12)
    assert [json.loads(line)["step"] for line in (run.run_dir / "metrics.jsonl").read_text().splitlines()] == [4, 8, 12]


def test_long_run_warning_says_once_when_the_run_would_take_days(run, caplog):
    from byol.train.hooks import LongRunWarning

    state = TrainState(0, Plan(100_000, 0, 12))
    state.elapsed = clock = Clock()
    hook = LongRunWarning(run, start_step=0)
    with caplog.at_level(logging.WARNING):
        for _ in range(30):
            clock.now += 2.0  # 2 s per step: 100,000 steps are 2.3 days
            state.step += 1
            hook.after_step(event(state, 1.0))
    warnings = [r.getMessage() for r in caplog.records if "days on this machine" in r.getMessage()]
    assert len(warnings) == 1 and "at 2.0 s per step the 99992 steps left take about 2.3 days" in warnings[0]
    assert "--preset cpu" in warnings[0]
    quick = TrainState(0, Plan(1_000, 0, 12))
    quick.elapsed = clock
    hook = LongRunWarning(run, start_step=0)
    caplog.clear()
    for _ in range(30):
        clock.now += 2.0
        quick.step += 1
        hook.after_step(event(quick, 1.0))
    assert not [r for r in caplog.records if "days" in r.getMessage()]


def test_the_centred_diagnostics_tell_a_shared_mean_from_a_collapse():
    """Two batches: outputs that vary around a large shared mean, and outputs that are one vector (up
    to float noise); and a third that varies along one direction only. The uncentred ratio calls the
    first two collapsed; the centred diagnostics only the second, and the third a dimensional collapse."""
    from byol.train.diagnostics import centred_diagnostics, is_collapsed, projection_std

    g = torch.Generator().manual_seed(0)
    shared_mean = torch.full((256, 64), 20.0) + torch.randn(256, 64, generator=g)
    one_vector = torch.full((256, 64), 20.0) + 1e-6 * torch.randn(256, 64, generator=g)
    one_direction = torch.randn(256, 1, generator=g) * torch.randn(1, 64, generator=g)
    for batch in (shared_mean, one_vector):
        assert projection_std(batch) * 8 < 0.1  # √64 = 8: the uncentred ratio cannot tell them apart
    healthy = centred_diagnostics(shared_mean)
    assert healthy["centred_std_ratio"] > 0.8 and healthy["spread"] > 0.04 and healthy["top_share"] < 0.1
    assert not is_collapsed(healthy)
    collapsed = centred_diagnostics(one_vector)
    assert collapsed["spread"] < 1e-6 and is_collapsed(collapsed)
    flat = centred_diagnostics(one_direction)
    assert flat["top_share"] > 0.99 and flat["spread"] > 0.5 and is_collapsed(flat)


def test_metrics_start_with_a_step_0_line_of_the_untrained_network(run):
    state = TrainState(0, Plan(100, 0, 12))
    advance(state, MetricsLog(run, MetricsWriter(run.run_dir, tensorboard=False), start_step=0), [2.5] * 4)
    rows = read_metrics(run.run_dir)
    assert [r["step"] for r in rows] == [0, 4] and rows[0]["loss"] == 2.5 and "lr" not in rows[0]
    assert {"centred_std_ratio", "spread", "top_share", "projection_std_ratio", "effective_rank"} <= set(rows[0])


def test_the_hooks_order_is_declared_and_a_hook_put_before_what_it_reads_is_refused(run):
    """Issue 42: a hook that reads another's work of the same step (the metrics line, a stop) names it in
    ``runs_after``; the shipped order holds it, and the loop refuses an order that does not, before a step."""
    from byol.train.hooks import check_order, default_hooks
    from byol.train.loop import train_loop

    state = TrainState(0, Plan(30, 0, 12))
    hooks = default_hooks(run, state, progress=False)
    check_order(hooks)
    names = [type(h).__name__ for h in hooks]
    assert names.index("TimeBudget") < names.index("MetricsLog") < names.index("CollapseWatch")
    assert names.index("TimeBudget") < names.index("CheckpointCadence")
    metrics = next(h for h in hooks if type(h).__name__ == "MetricsLog")
    late_line = [h for h in hooks if h is not metrics] + [metrics]
    with pytest.raises(ValueError, match="CollapseWatch reads what MetricsLog does in a step"):
        check_order(late_line)
    budget = next(h for h in hooks if type(h).__name__ == "TimeBudget")
    with pytest.raises(ValueError, match="NonFiniteGuard reads what TimeBudget does in a step"):
        train_loop(run, state, [h for h in hooks if h is not budget] + [budget])
    assert state.step == 0
    typo = types.SimpleNamespace(runs_after=("MetricLog",), name="Typo")
    with pytest.raises(ValueError, match="Typo: runs_after names MetricLog, which is no hook class"):
        check_order([*hooks, typo])
    for hook in hooks:
        hook.close()


def test_a_resume_keeps_the_precision_of_the_checkpoint_it_resumes_from(tmp_path):
    """``saved_precision`` reads the checkpoint a resume will use: a newest file without its keys is passed
    over for the one before, as ``latest_checkpoint`` passes it over (the precision must not flip)."""
    whole = {"model": {}, "optimizer": {}, "step": 12, "schedule": {}, "config": {}, "rng": {}, "precision": "fp32"}
    ckpt_io.atomic_save(whole, ckpt_io.checkpoint_path(tmp_path, 12))
    ckpt_io.atomic_save({**whole, "step": 24, "precision": "bf16"}, ckpt_io.checkpoint_path(tmp_path, 24))
    assert ckpt_io.saved_precision(tmp_path) == "bf16"  # a whole newest file: its own
    broken = {k: v for k, v in whole.items() if k != "rng"} | {"step": 36}
    ckpt_io.atomic_save(broken, ckpt_io.checkpoint_path(tmp_path, 36))
    assert ckpt_io.saved_precision(tmp_path) == "bf16"  # step 24's, the one latest_checkpoint resumes from
    assert ckpt_io.latest_checkpoint(tmp_path)[1].step == 24
