import dataclasses
import math

import pytest
import torch

from byol.schedules import Plan, lr_schedule, scaled_lr, tau_schedule


def test_tau_starts_at_base_and_ends_at_one():
    assert tau_schedule(0, 1000, 0.996) == pytest.approx(0.996)
    assert tau_schedule(1000, 1000, 0.996) == 1.0
    assert tau_schedule(500, 1000, 0.996) == pytest.approx(0.998)
    values = [tau_schedule(k, 100, 0.99) for k in range(101)]
    assert all(a <= b for a, b in zip(values, values[1:]))


def test_lr_warmup_and_cosine_end_points():
    peak = scaled_lr(0.2, 4096)
    assert peak == pytest.approx(3.2)
    assert lr_schedule(0, 1000, peak, warmup_steps=100) == 0.0
    assert lr_schedule(50, 1000, peak, warmup_steps=100) == pytest.approx(peak / 2)
    assert lr_schedule(100, 1000, peak, warmup_steps=100) == pytest.approx(peak)
    assert lr_schedule(550, 1000, peak, warmup_steps=100) == pytest.approx(peak / 2)
    assert lr_schedule(1000, 1000, peak, warmup_steps=100) == pytest.approx(0.0, abs=1e-12)
    assert lr_schedule(0, 10, 1.0) == 1.0
    assert lr_schedule(5, 10, 1.0) == pytest.approx(0.5 * (1 + math.cos(math.pi / 2)))


def _curves(schedule, steps, tau_base=0.99):
    return [schedule.lr_at(s) for s in steps], [schedule.tau_at(s, tau_base) for s in steps]


def _biggest_step(values):
    return max(abs(b - a) for a, b in zip(values, values[1:]))


@pytest.mark.parametrize("stop_at", [1000, 600])  # a finished run; one broken off after its peak
def test_extending_a_run_re_warms_from_where_it_stands_with_no_jump(stop_at):
    old = Plan(1000, 100, 50)
    before_lr, before_tau = _curves(old, range(stop_at + 1))
    extended = old.extended(stop_at, 2000, 100)
    assert old == Plan(1000, 100, 50)  # a new plan; the old one is unchanged
    after = range(stop_at, 2001)
    lr, tau = _curves(extended, after)
    assert lr[0] == pytest.approx(before_lr[-1]) and tau[0] == pytest.approx(before_tau[-1])  # the join
    assert extended.total_steps == 2000 and lr[-1] == pytest.approx(0.0, abs=1e-12) and tau[-1] == 1.0
    # No jump: lr moves no more in a step than the original warm-up did, τ at most its whole range
    # (1 − τ_base) spread over the 100 steps of the re-warm.
    assert _biggest_step(lr) <= _biggest_step(before_lr + [0.0]) + 1e-9
    assert _biggest_step(tau) <= (1 - 0.99) / 100 + 1e-12
    top = max(range(len(lr)), key=lr.__getitem__)
    if stop_at == 1000:  # lr had decayed to 0: re-warmed over the warm-up's length, to the new length's cosine
        planned = Plan(2000, 100, 50)
        assert top == 100 and lr[top] == pytest.approx(planned.lr_at(stop_at + 100))
        assert all(a <= b for a, b in zip(lr[: top + 1], lr[1 : top + 1]))
        assert lr[top:] == pytest.approx(_curves(planned, range(stop_at + top, 2001))[0])  # then the planned run's
        assert min(tau) == pytest.approx(planned.tau_at(stop_at + 100, 0.99))  # τ came down from 1 with the lr
    assert all(a >= b for a, b in zip(lr[top:], lr[top + 1 :]))  # after the top, only down


@pytest.mark.slow
def test_a_cli_run_lightning_and_a_resumed_then_extended_run_follow_one_lr_and_tau_plan(synthetic, tmp_path):
    """One implementation of the curves: ``byol pretrain`` (its metrics lines: the lr and τ each step
    used), ``BYOLModule`` under a Lightning Trainer of the same length, and a run broken off, resumed,
    then extended to more epochs all read ``byol.schedules.Plan``. Where they should agree (the same
    length) they agree at every step; the extension goes on from where the run stood, with no jump, and
    ends at lr 0 and τ 1."""
    import lightning.pytorch as L
    from helpers import resume
    from torch.utils.data import DataLoader, TensorDataset

    from byol.cli.__main__ import main as cli
    from byol.config.io import load_yaml
    from byol.lightning import BYOLModule
    from byol.train import checkpoint as ckpt_io
    from byol.train.metrics_file import read_metrics
    from byol.train.pretrain import pretrain

    args = ["pretrain", str(synthetic["train"]), "--preset", "cpu", "--backbone", "convnet", "--width", "0.25"]
    args += ["--batch-size", "32", "--warmup-epochs", "1", "--log-every", "1", "--knn-every", "0", "--workers", "0"]
    args += ["--precision", "fp32", "--cache-dir", str(synthetic["cache"]), "--set", "augment.compile=off"]
    args += ["--set", "model.projector_hidden=64", "--set", "model.predictor_hidden=64", "--epochs", "3"]
    assert cli([*args, "--out", str(tmp_path / "cli")]) == 0
    curves = lambda run: [(r["lr"], r["tau"]) for r in read_metrics(run) if "lr" in r]  # noqa: E731
    cli_curves = curves(tmp_path / "cli")
    per_epoch = len(cli_curves) // 3
    assert len(cli_curves) == 3 * per_epoch == 36 and cli_curves[0][0] == 0.0 and cli_curves[-1][1] < 1.0

    cfg = load_yaml(tmp_path / "cli" / "config.yaml")  # the CLI run's own config, for the other two
    module, lightning_lrs, lightning_taus = BYOLModule(cfg), [], []
    module.method.after_step = lambda tau, move=module.method.after_step: lightning_taus.append(tau) or move(tau)

    class LrAtEachStep(L.Callback):  # the lr the step is about to use (the scheduler has set it)
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            lightning_lrs.append(trainer.optimizers[0].param_groups[0]["lr"])

    images = torch.zeros(per_epoch * 32, 3, 32, 32, dtype=torch.uint8)  # as many batches; content is not read
    trainer = L.Trainer(
        max_epochs=3, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, callbacks=[LrAtEachStep()],
    )  # fmt: skip
    trainer.fit(module, DataLoader(TensorDataset(images), batch_size=32))
    assert lightning_lrs == pytest.approx([lr for lr, _ in cli_curves], rel=1e-12, abs=1e-15)
    assert lightning_taus == [tau for _, tau in cli_curves]

    class Stop(Exception):
        pass

    def stop(step):
        if step == per_epoch + 5:  # mid-epoch 2, after the epoch-1 checkpoint
            raise Stop

    broken = tmp_path / "broken"
    with pytest.raises(Stop):
        pretrain(cfg, broken, progress=False, on_step=stop)
    resume(cfg, broken, at=per_epoch)
    assert curves(broken) == cli_curves  # resumed: the same plan, bit for bit
    resume(dataclasses.replace(cfg, run=dataclasses.replace(cfg.run, epochs=5)), broken, at=3 * per_epoch)
    extended = curves(broken)
    assert len(extended) == 5 * per_epoch and extended[: 3 * per_epoch] == cli_curves  # nothing before it moved
    lrs, taus = [lr for lr, _ in extended], [tau for _, tau in extended]
    assert _biggest_step(lrs) <= _biggest_step([lr for lr, _ in cli_curves]) + 1e-12  # no jump at the join
    assert _biggest_step(taus) <= _biggest_step([tau for _, tau in cli_curves]) + 1e-12
    plan = Plan.from_dict(ckpt_io.load_checkpoint(ckpt_io.list_checkpoints(broken)[-1])["schedule"])
    assert plan.total_steps == 5 * per_epoch and plan.lr_at(plan.total_steps) == 0.0
    assert plan.tau_at(plan.total_steps, cfg.optim.tau_base) == 1.0


@pytest.mark.parametrize("decay_to", [0.7, 0.2], ids=["ramp-down", "ramp-up"])
def test_a_run_extended_in_the_middle_of_a_budgets_ramp_continues_from_its_lr(decay_to):
    """A time budget's plan can be saved mid-ramp (its lr coming back to the clock after a stall: down,
    or up); extending it there (``--time-budget`` raised on resume) goes on from the lr it had, down to
    0 at the new end, without a jump or a math domain error."""
    plan = Plan(3000, 300, 390, True, 600).rewarmed(1000, 2500, 1100, decay_to, 0.5)
    for step in (1000, 1050, 1099):
        longer = plan.extended(step, 4000, 390)
        assert longer.lr_at(step) == pytest.approx(plan.lr_at(step), abs=1e-9)
        lrs = [longer.lr_at(s) for s in range(step, 4000)]
        assert all(b <= a + 1e-12 for a, b in zip(lrs, lrs[1:])) and longer.lr_at(3999) < 1e-5
