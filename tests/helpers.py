"""Small real datasets for tests: subsets of the shared CIFAR-10 JPEGs, linked, never copied."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from byol.presets import resolve

# One thread count in the test process and in every child it starts (children import this module):
# runs compared bit for bit then run the same kernels.
TEST_THREADS = min(2, os.cpu_count() or 1)
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


def tiny_config(data: Path, cache_dir: Path, **run):
    """A seconds-long CPU config: convnet, small heads, eager augmentation, no compile, fp32 (the same
    numbers on every CPU: auto would be bf16 where the CPU has AMX)."""
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
