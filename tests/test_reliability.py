"""Faults during training and mistakes in a run folder: nothing is lost, every error is one line."""

import errno
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
import torch
from helpers import assert_resume_logged, resume, tiny_config
from safetensors.torch import load_file

from byol.cli.__main__ import main as cli
from byol.errors import ByolError
from byol.faults import FAULT_ENV
from byol.files import exclusive_lock
from byol.train import checkpoint as ckpt_io
from byol.train.pretrain import pretrain


def config(small, **run):
    return tiny_config(small["train"], small["cache"], epochs=3, knn_every=0, deterministic=True, **run)


@pytest.fixture(scope="module")
def reference(small, tmp_path_factory):
    """An unbroken deterministic run of 36 steps (12 per epoch): what every interrupted run must equal."""
    out = tmp_path_factory.mktemp("reference") / "run"
    pretrain(config(small), out, progress=False)
    return load_file(str(out / "encoder.safetensors"))


SCRIPT = """
import sys
import time
sys.path.insert(0, {tests!r})
from helpers import tiny_config
from byol.train.pretrain import pretrain
pretrain(tiny_config({train!r}, {cache!r}, epochs=3, knn_every=0, deterministic=True), {out!r}, progress=False)
"""


def run_child(fork_server, small, out, **env):
    script = SCRIPT.format(
        tests=os.path.dirname(__file__), train=str(small["train"]), cache=str(small["cache"]), out=str(out)
    )
    return fork_server.run(script, {**os.environ, **env})


@pytest.mark.parametrize("phase", ["mid-write", "before-rename"])
def test_a_kill_inside_a_checkpoint_write_loses_nothing_and_the_rerun_resumes_from_the_one_before(
    small, tmp_path, reference, fork_server, phase
):
    """SIGKILL while step 24's checkpoint is half written, or whole but not renamed: step 12's survives,
    the temporary file is removed at the next start, and the resumed run ends where an unbroken one does."""
    out = tmp_path / "run"
    proc = run_child(fork_server, small, out, **{FAULT_ENV: f"{phase}:step-000000024.pt"})
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    assert [p.name for p in ckpt_io.list_checkpoints(out)] == ["step-000000012.pt"]
    stale = list((out / "checkpoints").glob(".step-000000024.pt.tmp*"))
    assert len(stale) == 1 and stale[0].stat().st_size > 0
    ckpt_io.load_checkpoint(out / "checkpoints" / "step-000000012.pt")  # the previous one reads
    result = resume(config(small), out, at=12)
    assert result.steps == 36 and not list((out / "checkpoints").glob(".*tmp*"))
    resumed = load_file(str(out / "encoder.safetensors"))
    assert all(torch.equal(reference[k], resumed[k]) for k in reference)


def _pretrain_args(small, out, epochs: int) -> list[str]:
    args = ["pretrain", str(small["train"]), "--out", str(out), "--preset", "cpu", "--epochs", str(epochs)]
    args += ["--batch-size", "32", "--cache-dir", str(small["cache"]), "--workers", "0", "--no-progress"]
    return args + [
        "--set",
        "augment.compile=off",
        "--set",
        "model.projector_hidden=64",
        "--set",
        "model.predictor_hidden=64",
    ]


def _assert_failed_at_24_keeping_12(err: str, out) -> None:
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert "step-000000024.pt: No space left on device" in err and "MiB free in" in err
    assert [p.name for p in ckpt_io.list_checkpoints(out)] == ["step-000000012.pt"]
    assert ckpt_io.load_checkpoint(ckpt_io.list_checkpoints(out)[0])["step"] == 12
    assert not [p for p in out.rglob("*") if ".tmp" in p.name]


def test_a_full_disk_is_a_one_line_error_that_keeps_the_previous_checkpoint(small, tmp_path, capsys, monkeypatch):
    """The rename fails (mocked): what a file system may raise at the last moment."""
    import byol.files

    real_replace = os.replace

    def replace(src, dst):
        if str(dst).endswith("step-000000024.pt"):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_replace(src, dst)

    monkeypatch.setattr(byol.files.os, "replace", replace)
    out = tmp_path / "run"
    assert cli(_pretrain_args(small, out, 3)) == 2
    _assert_failed_at_24_keeping_12(capsys.readouterr().err.strip(), out)


def test_a_real_full_disk_is_a_one_line_error_and_the_run_resumes_when_there_is_room(small, small_disk, capsys, caplog):
    """A tmpfs (conftest.small_disk) with room for one checkpoint more than the run has: torch.save's zip
    writer meets ENOSPC and raises a RuntimeError on its way out ("unexpected pos ..."); one line, exit 2,
    the checkpoint before intact, no temporary file, every metrics line whole; given room, the same command
    resumes from it and finishes."""
    out = small_disk.path / "run"
    assert cli(_pretrain_args(small, out, 1)) == 0  # 12 steps: step-000000012.pt, the encoder, the summary
    capsys.readouterr()
    checkpoint = ckpt_io.list_checkpoints(out)[0].stat().st_size
    small_disk.resize(small_disk.used() + checkpoint // 4)  # the next checkpoint stops a quarter in
    assert cli(_pretrain_args(small, out, 3)) == 2
    _assert_failed_at_24_keeping_12(capsys.readouterr().err.strip(), out)
    assert [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()]  # all whole
    small_disk.resize(64 * 2**20)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="byol"):
        assert cli(_pretrain_args(small, out, 3)) == 0
    printed = capsys.readouterr().out.strip().splitlines()[-1]  # the command's summary line
    assert_resume_logged(caplog.text, 12, printed, out)
    assert json.loads(printed)["steps"] == 36


def test_a_second_run_in_the_same_folder_is_refused_naming_the_holder(small, tmp_path, capsys):
    out = tmp_path / "run"
    args = ["pretrain", str(small["train"]), "--out", str(out), "--preset", "cpu", "--cache-dir", str(small["cache"])]
    with exclusive_lock(out / ".lock", "held"):
        assert cli(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"in use by another process (PID {os.getpid()})" in err, err


@pytest.mark.slow
def test_a_lock_left_by_a_killed_run_blocks_nothing(small, tmp_path, reference):
    out = tmp_path / "run"
    hold = f"from byol.files import exclusive_lock\nwith exclusive_lock({str(out / '.lock')!r}, 'x'):\n"
    hold += "    print('held', flush=True)\n    import time\n    time.sleep(60)"
    holder = subprocess.Popen([sys.executable, "-c", hold], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    with pytest.raises(ByolError, match=f"PID {holder.pid}"):
        pretrain(config(small), out, progress=False)
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    assert (out / ".lock").read_text().strip() == str(holder.pid)  # the dead holder's PID is still written
    pretrain(config(small), out, progress=False)
    assert all(torch.equal(reference[k], v) for k, v in load_file(str(out / "encoder.safetensors")).items())


def _copy_run(run_dir, dest):
    shutil.copytree(run_dir, dest, ignore=shutil.ignore_patterns("tb", "encoder.*", "summary.json", ".lock"))
    return dest


def test_a_checkpoint_of_another_model_is_passed_over_and_the_run_resumes_from_the_one_before(
    short_run, tmp_path, caplog
):
    """The newest checkpoint reads but does not fit (e.g. another backbone's): a warning names both
    files and the run resumes from the one before; when none fits, a one-line error."""
    from byol.config.io import load_yaml

    run_dir, result = short_run
    copy = _copy_run(run_dir, tmp_path / "copy")  # no encoder and summary: the run is not complete
    cfg = load_yaml(copy / "config.yaml")
    older, newest = ckpt_io.list_checkpoints(copy)

    def spoil(path):
        state = ckpt_io.load_checkpoint(path)
        key = next(k for k in state["model"] if k.endswith("weight") and state["model"][k].ndim == 4)
        state["model"][key] = torch.zeros(3, 3, 3, 3)
        ckpt_io.atomic_save(state, path)

    spoil(newest)
    with caplog.at_level(logging.WARNING):
        resumed = resume(cfg, copy, at=ckpt_io.load_checkpoint(older)["step"])
    warning = next(r.getMessage() for r in caplog.records if "resuming from the checkpoint before" in r.getMessage())
    assert newest.name in warning and older.name in warning and "does not match" in warning
    assert resumed.steps == result.steps  # it trained from the older checkpoint to the end again
    for path in ckpt_io.list_checkpoints(copy):
        spoil(path)
    (copy / "summary.json").unlink()
    with pytest.raises(ByolError, match="no usable checkpoint in .*does not match") as e:
        pretrain(cfg, copy, progress=False)
    assert "\n" not in str(e.value)


def test_resuming_on_other_images_is_refused_unless_allowed(small, tmp_path):
    out = tmp_path / "run"
    other = tmp_path / "other"
    shutil.copytree(small["train"], other, symlinks=True)
    sorted(sorted(other.iterdir())[0].iterdir())[0].unlink()  # one image fewer

    class Crash(Exception):
        pass

    def crash(step):
        if step == 14:
            raise Crash

    cfg = tiny_config(small["train"], small["cache"], epochs=2, knn_every=0)
    with pytest.raises(Crash):
        pretrain(cfg, out, progress=False, on_step=crash)
    moved = tiny_config(other, small["cache"], epochs=2, knn_every=0)
    with pytest.raises(ByolError) as e:
        pretrain(moved, out, progress=False)
    message = str(e.value)
    assert "other data (400 images" in message and "(399 images" in message and "data.allow_changed=true" in message
    assert "\n" not in message
    moved.data.allow_changed = True
    assert resume(moved, out, at=12).steps == 24


def test_resuming_on_other_classes_restarts_the_online_classifier_whose_rows_stood_for_the_old(small, tmp_path, caplog):
    """--set data.allow_changed=true onto a folder whose classes differ (airplane left out: every class
    after it moves up a row): the online classifier's rows would be read as the wrong classes, or not fit.
    It starts afresh, saying why, and the checkpoints after say which classes its rows stand for."""
    import logging

    other = tmp_path / "other"
    shutil.copytree(small["train"], other, symlinks=True)
    shutil.rmtree(other / "airplane")
    out = tmp_path / "run"
    pretrain(tiny_config(small["train"], small["cache"], epochs=1, knn_every=0), out, progress=False)
    moved = tiny_config(other, small["cache"], epochs=2, knn_every=0)
    moved.data.allow_changed = True
    with caplog.at_level(logging.WARNING, logger="byol"):
        assert resume(moved, out, at=12).steps > 12
    assert "online classifier: started afresh, the training folder's classes changed since" in caplog.text
    assert "(10 then, 9 now)" in caplog.text
    saved = ckpt_io.load_checkpoint(ckpt_io.list_checkpoints(out)[-1])
    assert saved["classes"] == sorted(p.name for p in other.iterdir())
    assert saved["classifier"]["linear"]["weight"].shape[0] == 9


def test_a_config_without_checkpoints_is_not_overwritten_and_no_resume_says_what_to_do(
    short_run, small, tmp_path, capsys
):
    out = tmp_path / "started"
    out.mkdir()
    from byol.config.io import save_yaml

    other = tiny_config(small["train"], small["cache"], epochs=5)
    save_yaml(other, out / "config.yaml")
    before = (out / "config.yaml").read_text()
    args = ["pretrain", str(small["train"]), "--out", str(out), "--preset", "cpu", "--cache-dir", str(small["cache"])]
    assert cli(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "wrote no checkpoint" in err and "delete" in err, err
    assert (out / "config.yaml").read_text() == before
    run_dir, _ = short_run
    assert cli(["pretrain", str(small["train"]), "--out", str(run_dir), "--preset", "cpu", "--no-resume"]) == 2
    err = capsys.readouterr().err.strip()
    assert "drop --no-resume to continue it" in err and len(err.splitlines()) == 1


@pytest.fixture(scope="module")
def trial_data(cifar_root, tmp_path_factory):
    from helpers import cifar_subset

    base = tmp_path_factory.mktemp("trials")
    return {"train": cifar_subset(cifar_root, "train", 20, base / "train"), "cache": base / "cache"}


TRIAL_SCRIPT = """
import sys
import time
sys.path.insert(0, {tests!r})
from helpers import tiny_config
from byol.train.pretrain import pretrain
cfg = tiny_config({train!r}, {cache!r}, epochs=3, knn_every=1, deterministic=True, checkpoint_every_minutes=0)
pretrain(cfg, {out!r}, progress=False)
"""


def _run_state(out):
    """What a finished run leaves: the encoder, the last checkpoint's weights (target included) and
    optimiser state, and the metrics lines without their timings."""
    ckpt = ckpt_io.load_checkpoint(ckpt_io.list_checkpoints(out)[-1])
    tensors = {f"model.{k}": v for k, v in ckpt["model"].items()}
    for i, state in ckpt["optimizer"]["state"].items():
        tensors.update({f"optim.{i}.{k}": v for k, v in state.items() if torch.is_tensor(v)})
    tensors.update({f"encoder.{k}": v for k, v in load_file(str(out / "encoder.safetensors")).items()})
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return tensors, [{k: v for k, v in r.items() if not _volatile(k)} for r in rows]


def _volatile(key: str) -> bool:
    """Fields of a metrics line that two runs of the same deterministic config may disagree on: wall-clock
    ones (throughput, elapsed time, the monitor's seconds) and the mark of where a sitting resumed."""
    return key in ("images_per_sec", "elapsed", "resumed_at") or key.endswith("_seconds")


def test_ten_kills_at_random_steps_and_phases_all_resume_to_the_unbroken_run(trial_data, tmp_path, fork_server):
    """18 steps (6 per epoch), a kNN monitor and a checkpoint at each epoch end. Each trial SIGKILLs
    the run at a random step inside a step, inside the monitor, or inside a checkpoint, encoder or
    summary write, then re-runs it: weights, target, optimiser state and metrics equal an unbroken run."""
    import random

    def cfg():
        return tiny_config(trial_data["train"], trial_data["cache"], epochs=3, knn_every=1, deterministic=True,
                           checkpoint_every_minutes=0)  # fmt: skip

    pretrain(cfg(), tmp_path / "unbroken", progress=False)
    expected_tensors, expected_rows = _run_state(tmp_path / "unbroken")
    rng = random.Random(11)
    files = [f"step-{s:09d}.pt" for s in (6, 12, 18)] + ["encoder.safetensors", "encoder.json", "summary.json"]
    points = [f"step:{rng.randint(1, 5)}"] + [
        f"step:{rng.randint(7, 18)}" for _ in range(2)
    ]  # before and after a checkpoint
    points += [f"knn:{rng.choice([6, 12, 18])}" for _ in range(2)]
    points += [f"{rng.choice(['mid-write', 'before-rename'])}:{name}" for name in rng.sample(files, 5)]

    def checkpoint_left(point: str) -> int | None:
        """The step of the newest whole checkpoint on disk when the kill at ``point`` comes (epochs end
        at 6, 12, 18; the kNN monitor runs before the epoch's checkpoint is written); None: none yet."""
        kind, where = point.split(":")
        if kind == "step":  # killed inside step k: the epochs that ended before it are saved
            return 6 * ((int(where) - 1) // 6) or None
        if kind == "knn" or where.startswith("step-"):  # inside epoch N's monitor or checkpoint write
            return int(where.removeprefix("step-").removesuffix(".pt")) - 6 or None
        return 18  # inside the encoder's or the summary's write: every checkpoint is there

    survived, resumed = [], []
    for trial, point in enumerate(points):
        out = tmp_path / f"trial{trial}"
        script = TRIAL_SCRIPT.format(
            tests=os.path.dirname(__file__),
            train=str(trial_data["train"]),
            cache=str(trial_data["cache"]),
            out=str(out),
        )
        proc = fork_server.run(script, {**os.environ, FAULT_ENV: point}, timeout=120)
        assert proc.returncode == -signal.SIGKILL, (point, proc.stderr[-2000:])
        at = checkpoint_left(point)
        if at is None:  # killed before its first checkpoint: the re-run starts over, as it must
            assert pretrain(cfg(), out, progress=False).resumed_at is None, point
        else:  # the re-run goes on from that checkpoint, not from 0
            resume(cfg(), out, at=at)
            resumed.append(point)
        tensors, rows = _run_state(out)
        assert rows == expected_rows, point  # no duplicated or missing step
        assert tensors.keys() == expected_tensors.keys()
        assert all(torch.equal(tensors[k], expected_tensors[k]) for k in tensors), point
        survived.append(point)
    print(f"{len(survived)} kill trials survived: {', '.join(survived)}")
    # Every trial killed after the first checkpoint went on from its newest one (random.Random(11) draws
    # step:4 first, before any checkpoint: 9 of the 10); none lost its checkpoints to the kill.
    assert len(resumed) == 9, resumed


@pytest.mark.slow
def test_non_finite_steps_are_skipped_then_stop_the_run_which_resumes_with_a_lower_lr(small, tmp_path, monkeypatch):
    """From step 15 every loss is NaN: those updates are skipped (weights stay finite, checkpoints
    too), and at the first step past max_skipped_steps in a row (the guard looks every step on a CPU,
    whatever log_every) the run stops naming the checkpoint and --lr. The same run resumed with a lower
    --lr finishes; the change is recorded in config_history.jsonl."""
    from byol.method import BYOL

    real_forward, calls = BYOL.forward, {"n": 0}

    def poisoned(self, view1, view2):
        out = real_forward(self, view1, view2)
        calls["n"] += self.training  # the training steps' calls (the start's memory probe runs in eval mode)
        if calls["n"] >= 15:
            out.loss = out.loss * float("nan")
        return out

    monkeypatch.setattr(BYOL, "forward", poisoned)
    cfg = tiny_config(small["train"], small["cache"], epochs=3, knn_every=0, log_every=4, max_skipped_steps=3)
    with pytest.raises(ByolError, match=r"not finite for 4 steps in a row \(up to step 18\); the last good "
                       r"checkpoint is .*step-000000012\.pt; resume with a lower learning rate"):  # fmt: skip
        pretrain(cfg, tmp_path / "run", progress=False)
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [(r["step"], r["skipped_steps"]) for r in rows if r["step"] > 12] == [(16, 2)]
    monkeypatch.setattr(BYOL, "forward", real_forward)
    lower = tiny_config(small["train"], small["cache"], epochs=3, knn_every=0, log_every=4, max_skipped_steps=3)
    lower.optim.base_lr = cfg.optim.base_lr / 2
    assert resume(lower, tmp_path / "run", at=12).steps == 36
    history = [json.loads(line) for line in (tmp_path / "run" / "config_history.jsonl").read_text().splitlines()]
    assert history[-1]["optim.base_lr"] == [cfg.optim.base_lr, cfg.optim.base_lr / 2]
    assert history[-1]["from_step"] == 12


def test_a_resume_that_restarts_from_step_0_fails_every_resume_check_though_its_weights_match(
    small, tmp_path, reference, monkeypatch
):
    """The break the resume tests must catch: the re-run finds no checkpoint and starts over. Being
    deterministic it still ends on the unbroken run's weights bit for bit, so the weights prove nothing;
    ``helpers.resume`` (which every resume test goes through, test_structure checks) fails on each of
    its four checks: the result's resumed_at, the steps the sitting ran, its log, its first metrics line."""

    class Crash(Exception):
        pass

    def crash(step):
        if step == 17:  # mid-epoch 2, after the step-12 checkpoint
            raise Crash

    out = tmp_path / "run"
    with pytest.raises(Crash):
        pretrain(config(small), out, progress=False, on_step=crash)
    assert [p.name for p in ckpt_io.list_checkpoints(out)] == ["step-000000012.pt"]
    monkeypatch.setattr(ckpt_io, "latest_checkpoint", lambda *args, **kwargs: None)  # the break
    with pytest.raises(AssertionError) as e:
        resume(config(small), out, at=12)
    message = str(e.value)
    assert "resumed_at None, not 12" in message and "ran 36 steps ([1]…[36]), not 24 from step 13" in message
    assert "its log has no 'resumed from …step-000000012.pt at step 12'" in message, message
    assert "its first metrics line after step 12 does not say resumed_at 12" in message, message
    resumed = load_file(str(out / "encoder.safetensors"))
    assert all(torch.equal(reference[k], resumed[k]) for k in reference)  # what the old tests compared


@pytest.mark.parametrize("name", ["SIGTERM", "SIGINT", "SIGUSR1"])
def test_a_signal_mid_epoch_checkpoints_that_step_and_the_resumed_run_equals_the_unbroken_one(
    small, tmp_path, reference, name
):
    """SLURM, Kubernetes and spot instances send SIGTERM, ``sbatch --signal`` SIGUSR1, Ctrl-C SIGINT: the
    run stops after the step in flight with a checkpoint of it (mid-epoch: epochs are 12 steps), raises
    one line naming it, and the same call resumes to the unbroken run's weights bit for bit."""
    from byol.train.signals import Preempted

    out = tmp_path / "run"
    number = getattr(signal, name)
    before = signal.getsignal(number)

    def on_step(step):
        if step == 17:
            os.kill(os.getpid(), number)  # arrives during step 17's hooks: seen after step 18

    with pytest.raises(Preempted, match=f"stopped by {name} at step 18; checkpoint .*step-000000018.pt") as e:
        pretrain(config(small), out, progress=False, on_step=on_step)
    assert e.value.exit_code == 128 + number
    assert signal.getsignal(number) == before  # the handlers are put back
    assert [p.name for p in ckpt_io.list_checkpoints(out)][-1] == "step-000000018.pt"
    assert not (out / "encoder.safetensors").exists() and not (out / "summary.json").exists()
    result = resume(config(small), out, at=18)
    assert result.steps == 36
    resumed = load_file(str(out / "encoder.safetensors"))
    assert all(torch.equal(reference[k], resumed[k]) for k in reference)


def test_byol_pretrain_sent_sigterm_from_outside_exits_143_with_one_line_and_the_same_command_resumes(
    small, tmp_path, capsys, caplog
):
    """A real ``byol pretrain`` process, SIGTERMed while it trains: exit 143, one line naming the step and
    its checkpoint; the same command (its length shortened to end within an epoch of that step, to stay
    short) then goes on from that checkpoint, as its log and JSON line say."""
    out = tmp_path / "run"
    args = [sys.executable, "-m", "byol", "pretrain", str(small["train"]), "--out", str(out), "--preset", "cpu"]
    args += ["--set", f"data.cache_dir={small['cache']}", "--set", "augment.compile=off", "--width", "0.25"]
    args += ["--epochs", "20", "--knn-every", "0", "--log-every", "1", "--batch-size", "32", "--no-progress"]
    args += ["--precision", "fp32", "--workers", "0"]
    proc = subprocess.Popen(args, stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        for _ in range(600):  # wait for the first metrics line: the run is training
            if (out / "metrics.jsonl").exists() and (out / "metrics.jsonl").read_text().strip():
                break
            if proc.poll() is not None:
                break
            time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 128 + signal.SIGTERM, err[-2000:]
    last = err.strip().splitlines()[-1]
    assert last.startswith("byol pretrain: stopped by SIGTERM at step ") and "checkpoint" in last, last
    step = int(last.split("at step ")[1].split(";")[0])
    assert 0 < step < 240 and ckpt_io.list_checkpoints(out)[-1].name == f"step-{step:09d}.pt"
    state = ckpt_io.load_checkpoint(ckpt_io.list_checkpoints(out)[-1])
    assert state["step"] == step and state["schedule"]["total_steps"] == 240  # the schedule kept its length
    again = [*args[3:], "--epochs", str(step // 12 + 1)]  # the same flags after `byol`; the later --epochs wins
    with caplog.at_level(logging.INFO, logger="byol"):
        assert cli(again) == 0
    assert_resume_logged(caplog.text, step, capsys.readouterr().out.strip().splitlines()[-1], out)
