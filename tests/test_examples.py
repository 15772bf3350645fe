"""examples/: the SLURM script parses, and the torchrun line it runs is one torchrun and byol accept."""

import os
import stat
import subprocess
from pathlib import Path

from torch.distributed.run import get_args_parser

from byol.cli.__main__ import build_parser

SBATCH = Path(__file__).resolve().parents[1] / "examples" / "slurm.sbatch"


def _stub(folder: Path, name: str, body: str) -> None:
    path = folder / name
    path.write_text("#!/bin/bash\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)


def test_slurm_script_runs_one_srun_torchrun_line_that_torchrun_and_byol_parse(tmp_path):
    assert subprocess.run(["bash", "-n", str(SBATCH)]).returncode == 0
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    # many nodes: a script that cut this list with `| head` would die of SIGPIPE under pipefail
    _stub(bin_dir, "scontrol", 'printf "gpu-node-7\\ngpu-node-8\\n"; seq 100000\n')
    record = tmp_path / "srun.args"
    _stub(bin_dir, "srun", f'printf "%s\\n" "$TORCH_DISABLE_SHARE_RDZV_TCP_STORE" "$@" > {record}\n')
    env = {
        **os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "SLURM_JOB_NODELIST": "gpu-node-[7-8]",
        "SLURM_NNODES": "2", "SLURM_GPUS_PER_NODE": "4", "SLURM_JOB_ID": "4242",
    }  # fmt: skip
    cmd = ["bash", str(SBATCH), "/data/train", "runs/r1", "--epochs", "300", "--batch-size", "128"]
    assert subprocess.run(cmd, env=env).returncode == 0
    store_flag, program, *argv = record.read_text().splitlines()
    assert store_flag == "1" and program == "torchrun"
    args = get_args_parser().parse_args(argv)
    assert (args.nnodes, args.nproc_per_node, args.rdzv_endpoint) == ("2", "4", "gpu-node-7:29500")
    assert args.rdzv_backend == "c10d" and args.rdzv_id == "4242" and args.max_restarts == 3
    assert args.module and args.training_script == "byol"
    byol_args = build_parser().parse_args(args.training_script_args)
    assert (byol_args.command, byol_args.data, byol_args.out) == ("pretrain", "/data/train", "runs/r1")
    assert "--epochs" in args.training_script_args and byol_args.preset == "imagenet"
    # without DATA and OUT: the usage, not a launch
    usage = subprocess.run(["bash", str(SBATCH)], env=env, capture_output=True, text=True)
    assert usage.returncode != 0 and "usage: sbatch examples/slurm.sbatch DATA OUT" in usage.stderr


def test_slurm_script_on_the_time_limit_signal_passes_sigterm_down_and_requeues(tmp_path):
    """``--signal=B:USR1@180`` sends the script SIGUSR1: srun must get SIGTERM (byol checkpoints on it)
    and be waited for, then the job is requeued (stubs stand in for srun and scontrol)."""
    import signal
    import time

    assert "#SBATCH --signal=B:USR1@" in SBATCH.read_text()
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    got, requeued, started = tmp_path / "srun.signal", tmp_path / "requeued", tmp_path / "srun.started"
    _stub(bin_dir, "scontrol", f'if [ "$1" = requeue ]; then echo "$@" > {requeued}; else echo node-1; fi\n')
    srun = f"trap 'echo TERM > {got}; exit 143' TERM\ntouch {started}\nwhile true; do sleep 0.05; done\n"
    _stub(bin_dir, "srun", srun)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "SLURM_JOB_NODELIST": "node-1"}
    env.update(SLURM_NNODES="1", SLURM_GPUS_PER_NODE="1", SLURM_JOB_ID="4242")
    proc = subprocess.Popen(["bash", str(SBATCH), "/data/train", "runs/r1"], env=env, stdout=subprocess.PIPE, text=True)
    for _ in range(200):
        if started.exists():
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGUSR1)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out
    assert got.read_text().strip() == "TERM" and requeued.read_text().strip() == "requeue 4242"
    assert "requeueing job 4242" in out
