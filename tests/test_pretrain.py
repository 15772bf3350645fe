"""End to end on a small CIFAR-10 subset: pretrain, monitor, checkpoint, resume, evaluate."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from helpers import assert_resume_logged, resume, tiny_config
from safetensors.torch import load_file

from byol.cli.__main__ import main as cli
from byol.device import cpu_bf16_units, cpu_name
from byol.encoder_io import load_encoder_with_meta
from byol.eval.runner import EncoderEval, knn_evaluate
from byol.schedules import Plan
from byol.train import checkpoint as ckpt_io
from byol.train.pretrain import pretrain


def test_run_writes_config_metrics_checkpoints_and_encoder(short_run):
    run_dir, result = short_run
    assert result.steps == 6 * (400 // 32)
    cfg = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert cfg["model"]["backbone"] == "convnet" and cfg["run"]["epochs"] == 6
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert rows[0]["step"] == 0 and {"loss", "spread", "top_share", "projection_std"} <= set(rows[0])  # untrained
    train_rows = [r for r in rows if "lr" in r]
    assert {"loss", "lr", "tau", "images_per_sec", "projection_std", "effective_rank", "online_top1"} <= set(
        train_rows[0]
    )
    assert train_rows[-1]["tau"] > train_rows[0]["tau"]
    knn_rows = [r for r in rows if "knn_top1" in r]
    assert [round(r["epoch"]) for r in knn_rows] == [2, 4, 6]
    assert any((run_dir / "tb").iterdir())
    ckpts = ckpt_io.list_checkpoints(run_dir)
    assert len(ckpts) == 2 and ckpts[-1].name == f"step-{result.steps:09d}.pt"  # the last K kept
    state = ckpt_io.load_checkpoint(ckpts[-1])
    assert {"model", "optimizer", "step", "config", "rng", "classifier"} <= set(state)
    assert any(k.startswith("target_encoder.") for k in state["model"])
    encoder, meta = load_encoder_with_meta(run_dir)
    assert meta["backbone"] == "convnet" and meta["feature_dim"] == 64
    saved = load_file(str(run_dir / "encoder.safetensors"))
    online = {
        k.removeprefix("online_encoder."): v for k, v in state["model"].items() if k.startswith("online_encoder.")
    }
    assert saved.keys() == online.keys()
    assert all(torch.equal(saved[k], online[k]) for k in saved)


def _weights(run_dir):
    return load_file(str(run_dir / "encoder.safetensors"))


VARIANTS = {  # name: (config changes, steps per epoch)
    "plain": ({}, 12),
    "accumulate-2": ({"optim": {"accumulate": 2}}, 6),
    "micro-batches": ({"optim": {"micro_batch": "16"}}, 12),
    "simclr": ({"model": {"method": "simclr"}}, 12),  # no target network in its checkpoint
    "groupnorm-ws": ({"model": {"encoder_norm": "groupnorm-ws"}}, 12),  # no batch statistics in the encoder
}


@pytest.mark.slow
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_interrupted_and_resumed_run_equals_an_uninterrupted_one(small, tmp_path, variant):
    from byol.config.io import config_from_dict, merge

    changes, per_epoch = VARIANTS[variant]

    def cfg():
        base = tiny_config(small["train"], small["cache"], epochs=3, deterministic=True, knn_every=0)
        return config_from_dict(merge(base.to_dict(), changes)).validate()

    pretrain(cfg(), tmp_path / "full", progress=False)

    class Crash(Exception):
        pass

    def crash_at(step):
        if step == per_epoch + 5:  # after the epoch-1 checkpoint, mid-epoch 2
            raise Crash

    with pytest.raises(Crash):
        pretrain(cfg(), tmp_path / "resumed", progress=False, on_step=crash_at)
    assert not (tmp_path / "resumed" / "encoder.safetensors").exists()
    result = resume(cfg(), tmp_path / "resumed", at=per_epoch)  # from the epoch-1 checkpoint, not from 0
    assert result.steps == 3 * per_epoch
    full, resumed = _weights(tmp_path / "full"), _weights(tmp_path / "resumed")
    for k in full:
        assert torch.equal(full[k], resumed[k]), k
    steps = [json.loads(line)["step"] for line in (tmp_path / "resumed" / "metrics.jsonl").read_text().splitlines()]
    assert steps == sorted(steps) and len(steps) == len(set(steps))  # no duplicated lines after resume
    # The encoder exports and loads back to the same features (its norm and method recorded or moot).
    from byol.encoder_io import export_encoder, load_encoder

    export_encoder(tmp_path / "resumed", tmp_path / "encoder.safetensors")
    x = torch.rand(4, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(
            load_encoder(tmp_path / "encoder.safetensors")(x), load_encoder(tmp_path / "full")(x)
        )


@pytest.mark.slow
def test_a_resumed_time_budget_run_keeps_its_schedule_and_spends_its_budget_once(small, tmp_path):
    """A 6-second budget broken off mid-epoch after its first estimate, then resumed: the schedule
    comes back from the checkpoint (lr only falls after its peak, across the resume too), the training
    clock goes on from the checkpoint's, and each sitting's first step is timed apart."""

    class Crash(Exception):
        pass

    def crash_at(step):
        if step == 30:  # after the first estimate (step 23) and the epoch-2 checkpoint (step 24)
            raise Crash

    cfg = tiny_config(small["train"], small["cache"], time_budget=0.1, knn_every=0)
    with pytest.raises(Crash):
        pretrain(cfg, tmp_path / "run", progress=False, on_step=crash_at)
    saved = ckpt_io.load_checkpoint(ckpt_io.list_checkpoints(tmp_path / "run")[-1])
    assert saved["step"] == 24 and saved["schedule"]["estimated"] and saved["timed_steps"] == 23
    result = resume(cfg, tmp_path / "run", at=24)
    assert 5.0 <= result.seconds <= 9.0  # the budget, once: steps 25-30 of the broken sitting are not counted
    final = ckpt_io.load_checkpoint(ckpt_io.list_checkpoints(tmp_path / "run")[-1])
    assert final["timed_steps"] == result.steps - 2  # the first step of each sitting is not timed
    assert final["compile_seconds"] > saved["compile_seconds"] > 0
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    lrs = [r["lr"] for r in rows if "lr" in r]
    peak = lrs.index(max(lrs))
    assert all(b <= a + 1e-12 for a, b in zip(lrs[peak:], lrs[peak + 1 :])), lrs
    assert rows[-1]["tau"] > 0.998


KILL_SCRIPT = """
import os, signal, sys
sys.path.insert(0, {tests!r})
from helpers import tiny_config
from byol.train.pretrain import pretrain
cfg = tiny_config({train!r}, {cache!r}, epochs=3, knn_every=0, deterministic=True)
def kill(step):
    if step == 14:
        os.kill(os.getpid(), signal.SIGKILL)
pretrain(cfg, {out!r}, progress=False, on_step=kill)
"""


@pytest.mark.slow
def test_kill_9_then_rerun_resumes_from_the_last_checkpoint(small, tmp_path, fork_server):
    out = tmp_path / "killed"
    script = KILL_SCRIPT.format(
        tests=os.path.dirname(__file__), train=str(small["train"]), cache=str(small["cache"]), out=str(out)
    )
    proc = fork_server.run(script, dict(os.environ))
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    assert [p.name for p in ckpt_io.list_checkpoints(out)] == ["step-000000012.pt"]
    assert not list((out / "checkpoints").glob(".*tmp*"))  # no half-written file left behind
    cfg = tiny_config(small["train"], small["cache"], epochs=3, knn_every=0, deterministic=True)
    assert not torch.are_deterministic_algorithms_enabled()
    resume(cfg, out, at=12)
    assert not torch.are_deterministic_algorithms_enabled()  # the run's global switch is undone
    reference = tmp_path / "reference"
    pretrain(
        tiny_config(small["train"], small["cache"], epochs=3, knn_every=0, deterministic=True),
        reference,
        progress=False,
    )
    full, resumed = _weights(reference), _weights(out)
    assert all(torch.equal(full[k], resumed[k]) for k in full)


def test_a_corrupt_newest_checkpoint_falls_back_to_the_previous(short_run, tmp_path):
    run_dir, _ = short_run
    ckpts = ckpt_io.list_checkpoints(run_dir)
    copy = tmp_path / "copy" / "checkpoints"
    copy.mkdir(parents=True)
    for p in ckpts:
        (copy / p.name).write_bytes(p.read_bytes())
    newest = copy / ckpts[-1].name
    newest.write_bytes(newest.read_bytes()[:1000])
    path, state = ckpt_io.latest_checkpoint(copy.parent)
    assert path.name == ckpts[0].name and state.step < 72


def test_cli_pretrain_then_eval_knn_json(small, tmp_path, capsys):
    out = tmp_path / "cli"
    args = [
        "pretrain", str(small["train"]), "--out", str(out), "--preset", "cpu", "--epochs", "1", "--batch-size", "64",
        "--width", "0.25", "--workers", "0", "--cache-dir", str(small["cache"]), "--no-progress",
        "--set", "augment.compile=off", "--set", "model.projector_hidden=64", "--set", "model.predictor_hidden=64",
    ]  # fmt: skip
    assert cli(args) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["steps"] == 400 // 64 and summary["images_seen"] == 6 * 64 and summary["resumed_at"] is None
    # the hardware it trained on, so a figure from a run folder names its host
    stored = json.loads((out / "summary.json").read_text())
    assert stored["cpu"] == cpu_name() and stored["threads"] == torch.get_num_threads()
    assert (
        stored["cpu_capability"] == torch.backends.cpu.get_cpu_capability() and stored["cpu_bf16"] == cpu_bf16_units()
    )
    assert ("gpu" in stored) == torch.cuda.is_available()  # the CLI's default device: CUDA where there is one
    assert (
        cli(
            [
                "eval",
                "knn",
                str(out),
                "--train",
                str(small["train"]),
                "--test",
                str(small["test"]),
                "--json",
                "--baseline",
                "--workers",
                "0",
            ]
        )
        == 0
    )
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    ev = EncoderEval.load(out, workers=0)
    direct = knn_evaluate(ev, small["train"], small["test"])
    baseline = knn_evaluate(ev.untrained(), small["train"], small["test"])
    assert (result["top1"], result["top5"]) == (direct["top1"], direct["top5"])
    assert (result["baseline_top1"], result["baseline_top5"]) == (baseline["top1"], baseline["top5"])
    adapted = knn_evaluate(ev.bn_adapted(str(small["train"])), small["train"], small["test"])
    assert (result["bn_adapted_top1"], result["bn_adapted_top5"]) == (adapted["top1"], adapted["top5"])


def test_missing_data_folder_is_one_line(tmp_path, capsys):
    assert cli(["pretrain", str(tmp_path / "none"), "--out", str(tmp_path / "x"), "--preset", "cpu"]) == 2
    err = capsys.readouterr().err.strip()
    assert "does not exist" in err and len(err.splitlines()) == 1
    assert cli(["eval", "knn", str(tmp_path), "--train", "a", "--test", "b"]) == 2
    assert "no encoder" in capsys.readouterr().err


def test_resume_with_different_options_is_refused(short_run, small, capsys):
    """The same run with only --tau-base changed is refused, the option named as the user sets it
    (--epochs and --time-budget extend a run instead: test_extend...)."""
    run_dir, _ = short_run
    saved = yaml.safe_load((run_dir / "config.yaml").read_text())
    flags = [
        "pretrain", str(small["train"]), "--out", str(run_dir), "--preset", "cpu", "--epochs", "6",
        "--tau-base", "0.97", "--width", "0.25", "--batch-size", "32", "--workers", "0",
        "--cache-dir", str(small["cache"]),
        "--warmup-epochs", "0.5", "--knn-every", "2", "--log-every", "2", "--precision", "fp32",
        "--set", "augment.compile=off", "--set", "model.projector_hidden=128", "--set", "model.predictor_hidden=128",
        "--set", "run.knn_k=20",
    ]  # fmt: skip
    assert saved["run"]["epochs"] == 6 and saved["optim"]["tau_base"] != 0.97
    code = cli(flags)
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.endswith("was started with a different config (--tau-base); use a new --out or the "
                                      "same options to resume"), err  # fmt: skip


@pytest.mark.slow
def test_time_budget_lays_the_schedule_over_the_budget_and_ends_on_time(small, tmp_path, monkeypatch):
    """The budget counts training: a first step that takes 3 s (as compilation does) is timed apart,
    reported as compile_seconds, and the budget's 6 seconds are all spent on the steps after it."""
    import time

    import byol.train.loop as loop

    step, calls = loop.train_step, []

    def slow_first_step(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            time.sleep(3.0)
        return step(*args, **kwargs)

    monkeypatch.setattr(loop, "train_step", slow_first_step)
    cfg = tiny_config(small["train"], small["cache"], time_budget=0.1, knn_every=0)  # 6 seconds
    started = time.perf_counter()
    result = pretrain(cfg, tmp_path / "budget", progress=False)
    wall = time.perf_counter() - started
    assert 5.0 <= result.seconds <= 9.0 and 3.0 <= result.compile_seconds < 4.5
    assert wall >= result.seconds + 3.0  # the 3 s of the first step were not taken out of the budget
    summary = json.loads((tmp_path / "budget" / "summary.json").read_text())
    assert summary["compile_seconds"] == pytest.approx(result.compile_seconds)
    # images/s over the timed steps (all but the first): what 6 s of steps did, not diluted by the 3 s
    assert summary["images_per_sec"] == pytest.approx((result.steps - 1) * 32 / result.seconds, rel=1e-6)
    state = ckpt_io.load_checkpoint(ckpt_io.list_checkpoints(tmp_path / "budget")[-1])
    assert state["schedule"]["estimated"] and state["schedule"]["total_steps"] == result.steps
    assert (
        state["compile_seconds"] == pytest.approx(result.compile_seconds) and state["timed_steps"] == result.steps - 1
    )
    rows = [json.loads(line) for line in (tmp_path / "budget" / "metrics.jsonl").read_text().splitlines()]
    rows = [r for r in rows if "lr" in r]  # the training lines (step 0's: the untrained network)
    # The first line's rate: the one timed step of its interval over the training clock, which had not
    # run during the slow first step (counted, it would be 2 × 32 images / more than 3 s: ≈ 20 times
    # lower). Not to 5 %: the clock's few milliseconds before step 1 are a tenth of a step on a slow host.
    assert rows[0]["step"] == 2 and rows[0]["images_per_sec"] == pytest.approx(32 / rows[0]["elapsed"], rel=0.2)
    # τ neared 1 at the end of the budget (over 1000 epochs it would still be 0.996). Not 0.999: a
    # machine that slows down mid-run (a shared CI host) ends the budget before the estimated last step.
    assert rows[-1]["tau"] > 0.998


def test_cli_augment_writes_a_grid_with_the_preset_pretrain_would_pick(small, tmp_path, capsys):
    from PIL import Image

    out = tmp_path / "grid.png"
    assert cli(["augment", str(small["train"]), "--out", str(out), "-n", "3"]) == 0
    assert "preset cifar10" in capsys.readouterr().out
    img = Image.open(out)
    # 3 columns (original, view 1, view 2) × 3 rows of 32 px images upscaled to 128 px, 2 px padding.
    assert img.size == (3 * 128 + 4 * 2, 3 * 128 + 4 * 2)
    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(3):
        Image.new("RGB", (300 + 20 * i, 240), (40 * i, 90, 200)).save(photos / f"{i}.jpg")
    assert cli(["augment", str(photos), "--out", str(out), "-n", "2"]) == 0
    assert "preset imagenet" in capsys.readouterr().out
    assert Image.open(out).size == (3 * 224 + 4 * 2, 2 * 224 + 3 * 2)  # the paper's 224 px views


def test_rerunning_a_finished_run_changes_nothing(short_run):
    run_dir, result = short_run
    before = (run_dir / "summary.json").read_text()
    weights = _weights(run_dir)
    cfg = yaml.safe_load((run_dir / "config.yaml").read_text())
    from byol.config.io import config_from_dict

    rerun = pretrain(config_from_dict(cfg), run_dir, progress=False)
    assert rerun.steps == result.steps and (run_dir / "summary.json").read_text() == before
    assert all(torch.equal(weights[k], v) for k, v in _weights(run_dir).items())


DDP_SCRIPT = """
import os, sys, time
sys.path.insert(0, {tests!r})
from helpers import tiny_config
from byol.train.pretrain import pretrain
cfg = tiny_config({train!r}, {cache!r}, epochs=2, knn_every=1, deterministic=True, time_budget={budget})
if os.environ["RANK"] == "1":
    time.sleep({rank1_late})  # a late rank: its clock differs from rank 0's
result = pretrain(cfg, {out!r}, progress=False)
sys.stdout.write(f"steps {{result.steps}}\\n")  # one write: the ranks share the pipe
sys.stdout.flush()
"""


def _torchrun(small, tmp_path, out, budget=None, rank1_late=0) -> subprocess.CompletedProcess:
    script = DDP_SCRIPT.format(
        tests=os.path.dirname(__file__),
        train=str(small["train"]),
        cache=str(small["cache"]),
        out=str(out),
        budget=budget,
        rank1_late=rank1_late,
    )
    path = tmp_path / f"ddp_{out.name}.py"
    path.write_text(script)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(path)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)


@pytest.mark.slow
def test_torchrun_time_budget_ends_every_rank_at_the_same_step(small, tmp_path):
    """Ranks whose clocks differ take rank 0's estimate and stop together (else one would hang)."""
    proc = _torchrun(small, tmp_path, tmp_path / "budget", budget=0.15, rank1_late=2)
    assert proc.returncode == 0, proc.stderr[-3000:]
    import re

    steps = [int(n) for n in re.findall(r"steps (\d+)", proc.stdout)]  # the ranks' lines may interleave
    assert len(steps) == 2 and steps[0] == steps[1] > 0, proc.stdout


MICRO_SCRIPT = """
import os, sys
sys.path.insert(0, {tests!r})
import torch
from helpers import tiny_config
from byol.dist import init_distributed, shutdown_distributed
from byol.train import memory
from byol.train.setup import build_run
if os.environ["RANK"] == "1":  # this rank alone would split its batch: it has little memory
    memory.available_bytes = lambda: 8 * 2**20
cfg = tiny_config({train!r}, {cache!r})
info = init_distributed("cpu")
run = build_run(cfg, __import__("pathlib").Path({out!r}), True, torch.device("cpu"), info)
sys.stdout.write(f"rank {{info.rank}} passes {{run.passes_per_batch}}\\n")  # one write: the ranks share the pipe
sys.stdout.flush()
shutdown_distributed(info)
"""


@pytest.mark.slow
def test_torchrun_ranks_take_rank_0s_micro_batch(small, tmp_path):
    """``--micro-batch auto`` under torchrun: rank 1 measures too little memory for its batch, rank 0
    plenty; both run rank 0's choice (ranks that split alike stay in step)."""
    script = MICRO_SCRIPT.format(
        tests=os.path.dirname(__file__), train=str(small["train"]), cache=str(small["cache"]), out=str(tmp_path / "run")
    )
    path = tmp_path / "micro.py"
    path.write_text(script)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(path)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    import re

    passes = sorted(re.findall(r"rank \d passes \d+", proc.stdout))  # the ranks' lines may interleave in the pipe
    assert passes == ["rank 0 passes 1", "rank 1 passes 1"], proc.stdout


def _torchrun_cli(launcher: list[str], small, out, extra_env=None) -> subprocess.CompletedProcess:
    """``torchrun ... LAUNCHER pretrain`` of the tiny CPU config as command-line flags, two gloo processes."""
    flags = [
        "pretrain", str(small["train"]), "--out", str(out), "--preset", "cpu", "--width", "0.25",
        "--batch-size", "32", "--epochs", "2", "--workers", "0", "--cache-dir", str(small["cache"]),
        "--no-progress", "--deterministic", "--set", "augment.compile=off", "--set", "model.projector_hidden=128",
        "--set", "model.predictor_hidden=128", "--set", "run.knn_every=1", "--set", "run.log_every=2",
    ]  # fmt: skip
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", *launcher, *flags]
    env = {**os.environ, "OMP_NUM_THREADS": "1", **(extra_env or {})}
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)


TORCHRUN_STEPS_PER_EPOCH = 400 // (32 * 2)  # 400 images, batch 32 on each of 2 ranks


@pytest.fixture(scope="module")
def torchrun_unbroken(small, tmp_path_factory):
    """One unbroken two-rank run of the CLI (the console script under ``torchrun --no-python``): the
    reference the torchrun resume tests end on."""
    out = tmp_path_factory.mktemp("torchrun") / "full"
    proc = _torchrun_cli(["--no-python", str(Path(sys.executable).parent / "byol")], small, out)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out, proc


@pytest.mark.slow
def test_torchrun_two_processes_split_the_data_only_rank_0_writes_and_resume_is_exact(
    small, tmp_path, torchrun_unbroken
):
    """DDP on CPU (gloo): each rank takes half of every step's batch (the sampler's test in
    test_data); rank 0 alone logs and saves; a run whose rank died mid-epoch, launched again under
    torchrun, ends bit for bit where an unbroken one does."""
    full, proc = torchrun_unbroken
    n = TORCHRUN_STEPS_PER_EPOCH
    assert json.loads(proc.stdout.strip().splitlines()[-1])["steps"] == 2 * n  # rank 0's summary line
    rows = [json.loads(line) for line in (full / "metrics.jsonl").read_text().splitlines()]
    steps = [r["step"] for r in rows if "loss" in r]
    assert steps == sorted(set(steps)) and steps[-1] == 2 * n  # one writer: no line twice
    assert [round(r["epoch"]) for r in rows if "knn_top1" in r] == [1, 2]
    online = [r["online_top1"] for r in rows if "online_top1" in r]
    assert online and all(0 <= a <= 1 for a in online)
    assert ckpt_io.list_checkpoints(full)[-1].name == f"step-{2 * n:09d}.pt"
    assert "resumed from" not in proc.stderr

    broken = tmp_path / "broken"
    crash = _torchrun_cli(["-m", "byol"], small, broken, {"BYOL_FAULT": f"step:{n + 2}", "BYOL_FAULT_RANK": "1"})
    assert crash.returncode != 0
    assert [p.name for p in ckpt_io.list_checkpoints(broken)] == [f"step-{n:09d}.pt"]
    again = _torchrun_cli(["-m", "byol"], small, broken)
    assert again.returncode == 0, again.stderr[-3000:]
    assert_resume_logged(again.stderr, n, again.stdout.strip().splitlines()[-1], broken)
    a, b = _weights(full), _weights(broken)
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.slow
def test_torchrun_cli_restarts_a_group_whose_rank_was_killed_and_ends_where_an_unbroken_run_does(
    small, tmp_path, torchrun_unbroken
):
    """``-m byol`` under torchrun with an elastic restart after SIGKILL of rank 1 mid-epoch: the
    restarted group resumes from the last checkpoint and ends where the unbroken run does."""
    n = TORCHRUN_STEPS_PER_EPOCH
    # TORCH_DISABLE_SHARE_RDZV_TCP_STORE: without it the restarted group reads its predecessors'
    # addresses and cannot connect (PyTorch issue 135712; byol warns, see the next test).
    fault = {"BYOL_FAULT": f"step:{n + 2}", "BYOL_FAULT_RANK": "1", "TORCH_DISABLE_SHARE_RDZV_TCP_STORE": "1"}
    broken = _torchrun_cli(["--max-restarts", "1", "-m", "byol"], small, tmp_path / "broken", fault)
    assert broken.returncode == 0, broken.stderr[-3000:]
    # rank 1 died in the first attempt; the second resumed from the epoch-end checkpoint
    assert_resume_logged(broken.stderr, n, broken.stdout.strip().splitlines()[-1], tmp_path / "broken")
    a, b = _weights(torchrun_unbroken[0]), _weights(tmp_path / "broken")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_a_restartable_torchrun_without_its_own_store_per_attempt_is_warned_about():
    from byol.dist import elastic_restart_warning

    assert "TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1" in elastic_restart_warning({"TORCHELASTIC_MAX_RESTARTS": "1"})
    ok = {"TORCHELASTIC_MAX_RESTARTS": "1", "TORCH_DISABLE_SHARE_RDZV_TCP_STORE": "1"}
    assert elastic_restart_warning(ok) is None and elastic_restart_warning({"TORCHELASTIC_MAX_RESTARTS": "0"}) is None


@pytest.mark.slow
def test_extending_a_finished_run_to_more_epochs_goes_on_from_its_last_step(synthetic, tmp_path, caplog):
    """A 2-epoch run given --epochs 4: steps go on from 24 to 48, lr and τ continue from where they
    were (re-warmed, no jump), τ ends at 1, the log and summary.json say it was extended; a length
    the run has already passed, or a time budget in place of epochs, is refused in one line."""
    import logging

    from byol.errors import ByolError
    from byol.train.metrics_file import read_metrics

    out = tmp_path / "run"

    def config(**run):
        return tiny_config(synthetic["train"], synthetic["cache"], knn_every=0, log_every=1, **run)

    pretrain(config(epochs=2), out, progress=False)
    with caplog.at_level(logging.INFO, logger="byol"):
        result = resume(config(epochs=4), out, at=24)
    assert result.steps == 48
    rows = [r for r in read_metrics(out) if "lr" in r]
    assert [r["step"] for r in rows] == list(range(1, 49))  # each step once: nothing trained twice
    lr, tau = [r["lr"] for r in rows], [r["tau"] for r in rows]
    jumps = [abs(b - a) for a, b in zip(lr, lr[1:])]
    assert jumps[23] <= max(jumps[:23]) and lr[26] > lr[25] > lr[24]  # no jump at the join (24 → 25), then it rises
    tau_jumps = [abs(b - a) for a, b in zip(tau, tau[1:])]
    assert tau_jumps[23] <= max(tau_jumps[24:]) and tau[23] > 0.999 and tau[-1] > 0.999
    state = ckpt_io.load_checkpoint(ckpt_io.list_checkpoints(out)[-1])
    assert Plan.from_dict(state["schedule"]).tau_at(48, 0.99) == 1.0  # τ reaches 1 at the run's new end
    assert "extended the run at step 24: from_epochs 2, to_epochs 4" in caplog.text
    summary = json.loads((out / "summary.json").read_text())
    assert summary["steps"] == 48 and summary["extended"] == [{"at_step": 24, "from_epochs": 2.0, "to_epochs": 4.0}]
    with pytest.raises(ByolError, match="--epochs 3 is 36 steps; this run has trained 48"):
        pretrain(config(epochs=3), out, progress=False)
    with pytest.raises(ByolError, match="this run was laid out by --epochs: give --epochs"):
        pretrain(config(time_budget=5), out, progress=False)
    assert yaml.safe_load((out / "config.yaml").read_text())["run"]["epochs"] == 4  # refusals wrote nothing
    history = [json.loads(line) for line in (out / "config_history.jsonl").read_text().splitlines()]
    assert [h["run.epochs"] for h in history if "run.epochs" in h] == [[2.0, 4.0]]


@pytest.mark.slow
def test_a_time_budget_run_given_more_minutes_resumes_and_trains_on(synthetic, tmp_path):
    from byol.train.metrics_file import read_metrics

    out = tmp_path / "run"
    config = lambda minutes: tiny_config(  # noqa: E731
        synthetic["train"], synthetic["cache"], knn_every=0, log_every=1, time_budget=minutes
    )
    first = pretrain(config(0.03), out, progress=False)
    second = resume(config(0.06), out, at=first.steps)
    assert second.steps > first.steps and 3.4 <= second.seconds <= 5.5  # the budget spent once: 3.6 s in all
    steps = [r["step"] for r in read_metrics(out) if "lr" in r]
    assert steps == list(range(1, second.steps + 1))
    summary = json.loads((out / "summary.json").read_text())
    assert summary["extended"] == [{"at_step": first.steps, "from_minutes": 0.03, "to_minutes": 0.06}]
