"""Small real datasets for tests: subsets of the shared CIFAR-10 JPEGs, linked, never copied."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from byol.config.presets import resolve

# One thread count in the test process and in every child it starts (children import this module, and
# inherit the environment): runs compared bit for bit then run the same kernels. Under pytest-xdist
# (``make test`` runs two workers) the cores are shared out: one thread a worker on 2 cores, so that
# OpenMP threads never outnumber the cores (two workers of two threads each ran 3x slower).
_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
TEST_THREADS = max(1, min(2, os.cpu_count() or 1) // _WORKERS)
torch.set_num_threads(TEST_THREADS)


def cifar_subset(cifar_root: Path, split: str, per_class: int, dest: Path, classes: int = 10) -> Path:
    """``dest/<class>/*.jpg`` with the first ``per_class`` files of each class (sorted), as symlinks."""
    for cls in sorted(p.name for p in (cifar_root / split).iterdir())[:classes]:
        (dest / cls).mkdir(parents=True, exist_ok=True)
        for f in sorted((cifar_root / split / cls).iterdir())[:per_class]:
            link = dest / cls / f.name
            if not (link.exists() or link.is_symlink()):
                os.symlink(f.resolve(), link)
    return dest


class SmallDisk:
    """A tmpfs mounted at ``path``: writes there meet a real ``ENOSPC``, raised by the kernel, not a mock."""

    def __init__(self, path: Path):
        self.path = path

    @classmethod
    def mount(cls, path: Path, size: int) -> SmallDisk:
        import subprocess

        import pytest

        path.mkdir(parents=True, exist_ok=True)
        try:
            done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                                  capture_output=True, text=True)  # fmt: skip
        except FileNotFoundError:
            pytest.skip("cannot mount a tmpfs for a real full disk here: no mount command")
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs for a real full disk here: {done.stderr.strip() or done.returncode}")
        return cls(path)

    def resize(self, size: int) -> None:
        """The file system's size in bytes (rounded up to pages); files already there stay."""
        import subprocess

        subprocess.run(["mount", "-o", f"remount,size={size}", str(self.path)], check=True, capture_output=True)

    def used(self) -> int:
        import shutil

        usage = shutil.disk_usage(self.path)
        return usage.total - usage.free

    def fill(self, leave: int) -> None:
        """Leave about ``leave`` bytes free: a file takes the rest."""
        import shutil

        with open(self.path / ".filler", "ab") as f:
            f.write(b"\0" * max(0, shutil.disk_usage(self.path).free - leave))

    def files(self) -> list[str]:
        return sorted(str(p.relative_to(self.path)) for p in self.path.rglob("*") if p.name != ".filler")

    def unmount(self) -> None:
        import subprocess

        subprocess.run(["umount", "-l", str(self.path)], capture_output=True)


def tiny_config(data: Path, cache_dir: Path, **run):
    """A seconds-long CPU config: convnet, small heads, eager augmentation, no compile, fp32 (the same
    numbers on every CPU: auto would be bf16 where the CPU has AMX or AVX-512 BF16)."""
    overrides = {
        "data": {"path": str(data), "cache_dir": str(cache_dir), "workers": 0},
        "model": {"backbone": "convnet", "width": 0.25, "projector_hidden": 128, "predictor_hidden": 128},
        "augment": {"compile": "off"},
        "optim": {"batch_size": 32, "warmup_epochs": 0.5},
        "run": {
            "time_budget": None,
            "epochs": 2,
            "log_every": 2,
            "knn_every": 1,
            "knn_k": 20,
            "precision": "fp32",
            **run,
        },
    }
    return resolve("cpu", overrides)


_FORK_SERVER = """
import json, os, signal, sys, traceback
sys.path.insert(0, {tests!r})
import helpers  # torch, its thread count, byol's presets
import byol.train.pretrain  # the rest of what a training child runs, imported once
for line in sys.stdin:
    job = json.loads(line)
    pid = os.fork()
    if pid == 0:  # the child: its own process, its own output, killed by a real signal
        code = 1
        try:
            log = os.open(job["log"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
            os.dup2(log, 1)
            os.dup2(log, 2)
            os.environ.update(job["env"])
            signal.alarm(job["timeout"])  # a hung child dies of SIGALRM, not the suite
            exec(compile(job["code"], "<child>", "exec"), {{"__name__": "__main__"}})
            code = 0
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else 1
        except BaseException:
            traceback.print_exc()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    code = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
    sys.stdout.write(json.dumps({{"returncode": code}}) + "\\n")
    sys.stdout.flush()
"""


class ForkServer:
    """Child processes forked from one Python that has already imported torch and byol: each child
    is a process of its own (SIGKILLed for real, its files and exit status its own), without the
    Python + torch + byol start-up each (about 3 s on 2 cores) that ``python -c`` pays."""

    def __init__(self, workdir: Path):
        import subprocess
        import sys

        self.workdir, self.count = Path(workdir), 0
        code = _FORK_SERVER.format(tests=str(Path(__file__).parent))
        self.proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True)  # fmt: skip

    def run(self, code: str, env: dict[str, str] | None = None, timeout: int = 300):
        """Run ``code`` as ``__main__`` in a fresh child with ``env`` added: what ``subprocess.run``
        of ``python -c code`` returns (returncode −N for signal N; stdout and stderr together)."""
        import json
        import subprocess

        self.count += 1
        log = self.workdir / f"child{self.count}.log"
        job = {"code": code, "env": env or {}, "log": str(log), "timeout": timeout}
        self.proc.stdin.write(json.dumps(job) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the fork server ended (exit {self.proc.wait()})")
        output = log.read_text()
        return subprocess.CompletedProcess(["<forked>"], json.loads(line)["returncode"], output, output)

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


# Resume, proved. A deterministic run that silently restarts from step 0 ends on the same weights as
# one that resumed, so comparing final weights with an unbroken run shows nothing about resuming. The
# two checks below take the resumed sitting's own word and count (its result or JSON line, the steps
# it ran, its log, the first metrics line it wrote), and every resume test goes through one of them
# (test_structure checks that).


def resume(cfg, run_dir, at: int, **kwargs):
    """``pretrain(cfg, run_dir)`` again on a folder an earlier sitting left at checkpoint step ``at``,
    asserting that this sitting went on from there: its result says ``resumed_at == at``, it ran exactly
    steps ``at + 1 … total`` (counted by ``on_step``, not taken from the result), its log says
    ``resumed from …step-{at}.pt at step {at}`` and its first metrics line (if it trained) ``resumed_at:
    at``; each failed check is named. Returns the ``RunResult``."""
    import logging

    from byol.train.pretrain import pretrain

    ran, records = [], []
    handler = logging.Handler(logging.INFO)
    handler.emit = lambda record: records.append(record.getMessage())
    logger = logging.getLogger("byol")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        result = pretrain(cfg, run_dir, progress=False, on_step=ran.append, **kwargs)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    problems = []
    if result.resumed_at != at:
        problems.append(f"its result says resumed_at {result.resumed_at}, not {at}")
    if ran != list(range(at + 1, result.steps + 1)):
        problems.append(f"it ran {len(ran)} steps ({ran[:1]}…{ran[-1:]}), not {result.steps - at} from step {at + 1}")
    problems += [_resume_not_logged("\n".join(records), at)]
    if result.steps > at:  # a sitting that resumed at the last step (to write the encoder) logs no line
        problems += [_resume_not_in_metrics(run_dir, at)]
    problems = [p for p in problems if p]
    assert not problems, f"not resumed from the checkpoint of step {at}: {'; '.join(problems)}"
    return result


def assert_resume_logged(log_text: str, at: int, summary_line: str | None = None, run_dir=None) -> None:
    """The log of a sitting (a child's stderr, a CLI run's output) says it resumed from the checkpoint of
    step ``at``; ``summary_line``, the CLI's JSON line, says ``resumed_at == at``; ``run_dir``'s metrics,
    that the first line after step ``at`` is where a sitting resumed at ``at``."""
    import json

    problems = [p for p in (_resume_not_logged(log_text, at), run_dir and _resume_not_in_metrics(run_dir, at)) if p]
    assert not problems, "; ".join(problems)
    if summary_line is not None:
        assert json.loads(summary_line)["resumed_at"] == at, summary_line


def _resume_not_logged(log_text: str, at: int) -> str:
    said = f"step-{at:09d}.pt at step {at}"
    return "" if "resumed from " in log_text and said in log_text else f"its log has no 'resumed from …{said}'"


def _resume_not_in_metrics(run_dir, at: int) -> str:
    import json

    lines = [json.loads(x) for x in (Path(run_dir) / "metrics.jsonl").read_text().splitlines() if x.strip()]
    after = [r for r in lines if r["step"] > at]
    if not after or after[0].get("resumed_at") != at:
        first = after[0] if after else None
        return f"its first metrics line after step {at} does not say resumed_at {at}: {first}"
    return ""
