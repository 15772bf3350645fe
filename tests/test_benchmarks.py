"""The benchmarks stay runnable: the GPU script's CPU smoke run, and the step benchmark's figures."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def smoke(script: str, out: Path) -> None:
    """``bash benchmarks/SCRIPT --smoke --out OUT``: the GPU script's path on a CPU, in tiny sizes."""
    proc = subprocess.run(
        ["bash", str(ROOT / "benchmarks" / script), "--smoke", "--out", str(out)],
        capture_output=True, text=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "2"},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]


@pytest.mark.slow
def test_gpu_script_smoke_run_fills_every_section(tmp_path):
    out = tmp_path / "gpu.json"
    smoke("gpu.sh", out)
    figures = json.loads(out.read_text())
    assert set(figures) == {
        "env", "augment", "step", "pretrain", "knn", "pretrain_speed", "loop", "loop_compiled_step", "torchrun",
        "scale_plain", "scale_plain_speed", "scale_shards_torchrun", "scale_shards_speed",
    }  # fmt: skip
    assert not [k for k, v in figures.items() if "error" in v]
    assert figures["augment"]["byol_eager_32px_1t"] > 0 and figures["augment"]["pil_32px_1t"] > 0
    assert figures["step"]["convnet_32px_b16_byol_s"] > 0 and figures["step"]["convnet_32px_b16_byol_vs_floor_cl"] > 0
    assert figures["pretrain"]["steps"] > 0 and 0 <= figures["knn"]["top1"] <= 1
    assert figures["torchrun"]["steps"] > 0 and figures["pretrain_speed"]["images_per_sec_median"] > 0
    assert figures["loop"]["parts_calls"]["step (fwd+bwd+opt)"] == 3 and figures["loop"]["full_images_per_sec"] > 0
    assert figures["loop_compiled_step"]["parts_calls"]["step (fwd+bwd+opt)"] == 3
    assert figures["loop_compiled_step"]["compiled_step"] and not figures["loop"]["compiled_step"]
    assert figures["scale_plain"]["steps"] > 0 and figures["scale_shards_torchrun"]["steps"] > 0


@pytest.mark.slow
def test_gpu_accuracy_script_smoke_run_leaves_every_runs_files_and_figures(tmp_path):
    import tarfile

    out = tmp_path / "accuracy"
    smoke("gpu_accuracy.sh", out)
    assert sorted(p.name for p in out.iterdir()) == ["accuracy.json", "evidence.tgz"]  # the device returns 8 files
    figures = json.loads(out.joinpath("accuracy.json").read_text())
    assert set(figures["sections"]) == {
        "budget", "r18", "flops", "r18-knn", "r18-linear", "control", "control-knn", "oom"
    }  # fmt: skip
    assert not [k for k, v in figures["sections"].items() if "error" in v]
    assert figures["oom"]["micro_batch"] == 32 and figures["oom"]["steps"] == 96 // 32  # no OOM on a CPU
    r18 = figures["r18"]
    # A time-budget run (0.1 training minutes here): the monitor is the test-set protocol, and its final
    # pass is what byol eval knn gives on the saved encoder; the maximum over passes is kept beside it.
    assert r18["time_budget_minutes"] == 0.1 and r18["epochs"] > 1 and r18["steps"] == round(r18["epochs"] * 6)
    assert r18["knn_final"]["protocol"] == "test" and r18["knn_final"]["step"] == r18["steps"]
    assert r18["knn_final"]["top1"] == pytest.approx(r18["eval_knn_top1"], abs=1e-6)
    assert r18["knn_max"]["top1"] >= r18["knn_final"]["top1"] and r18["knn_monitor"]["passes"] >= 2
    assert r18["flop_per_image"] > 0 and r18["images_per_sec"] > 0 and 0 <= r18["linear_top1"] <= 1
    assert r18["recipe"]["batch"] == 16 and r18["recipe"]["optimizer"] == "lars" and not r18["goal"]["reached"]
    assert figures["peers"]["lightly_batch512"]["knn_top1"] == 0.868
    with tarfile.open(out / "evidence.tgz") as tar:
        names = {Path(n).as_posix().removeprefix("./") for n in tar.getnames()}
    for run in ("control", "r18", "oom"):  # the raw files of each run, packed as it ended
        assert {f"{run}/summary.json", f"{run}/config.yaml", f"{run}/metrics.jsonl", f"{run}/{run}.log"} <= names
    assert {"sections.jsonl", "env.json"} <= names


@pytest.mark.slow
def test_step_benchmark_times_every_implementation_and_counts_flops():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import step
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    args = step.main.__globals__["argparse"].Namespace(
        batch=8, batch_scale=1, precision="fp32", compile=False, impls=["byol", "floor", "floor_cl"],
        warmup=1, repeats=2, steps=1,
    )  # fmt: skip
    import torch

    rows, figures = step.run_config("convnet_32px", args, torch.device("cpu"))
    assert [r[1] for r in rows] == ["byol", "floor", "floor_cl"]
    gflop = {impl: figures[f"convnet_32px_b8_{impl}_gflop"] for impl in ("byol", "floor", "floor_cl")}
    assert gflop["byol"] > gflop["floor_cl"] > 0  # the heads add arithmetic to the backbone's
    assert gflop["floor"] == gflop["floor_cl"]  # the memory format changes the speed, not the work
    assert figures["convnet_32px_b8_byol_vs_floor_cl"] > 0


@pytest.mark.slow
def test_precision_benchmark_times_both_precisions_and_says_what_auto_chooses(capsys):
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import precision
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    assert precision.main(["--configs", "convnet_32px", "--batch", "8", "--repeats", "1", "--steps", "1",
                           "--warmup", "1"]) == 0  # fmt: skip
    figures = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert figures["convnet_32px_b8_fp32_s"] > 0 and figures["convnet_32px_b8_bf16_s"] > 0
    assert figures["convnet_32px_b8_bf16_speedup"] > 0 and figures["convnet_32px_b8_auto"] in ("fp32", "bf16")
    if figures["bf16_units"] is None:  # nothing to measure: fp32, said so
        assert figures["convnet_32px_b8_auto_reason"].startswith("fp32: auto, this CPU has no bf16 matrix units")
    else:
        assert "bf16 measured" in figures["convnet_32px_b8_auto_reason"]


@pytest.mark.slow
def test_precision_accuracy_trains_each_seed_in_both_precisions_and_pairs_them(small, tmp_path, capsys, monkeypatch):
    """Tiny: two seeds of one epoch of 400 images (the demo's batch 128: 3 steps) per precision; each run
    trained in the precision it names, the differences paired by seed; a second call trains nothing."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import precision_accuracy
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    out = tmp_path / "acc"
    argv = ["--data", str(small["train"].parent), "--epochs", "1", "--seeds", "0", "1", "--out", str(out),
            "--set", "augment.compile=off", "--set", "data.workers=0"]  # fmt: skip
    assert precision_accuracy.main(argv) == 0
    figures = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    runs = {(r["precision"], r["seed"]): r for r in figures["runs"]}
    assert sorted(runs) == [("bf16", 0), ("bf16", 1), ("fp32", 0), ("fp32", 1)]
    assert all(r["trained_in"] == p and r["steps"] == 3 for (p, _), r in runs.items())
    diff = [runs["bf16", s]["knn_top1"] - runs["fp32", s]["knn_top1"] for s in (0, 1)]
    d = figures["bf16_minus_fp32"]
    assert d["per_seed"] == pytest.approx(diff) and d["ci95"][0] <= d["mean"] <= d["ci95"][1]
    import byol.train.pretrain

    monkeypatch.setattr(byol.train.pretrain, "pretrain", lambda *a, **k: pytest.fail("a finished run trained again"))
    assert precision_accuracy.main(argv) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["runs"] == figures["runs"]


def test_vs_lightly_time_mode_records_each_sides_own_length_not_the_unused_epoch_flag(capsys):
    """In ``--mode time`` each side trains its minutes (byol: a time budget; lightly: the epochs its speed
    fits): the summary keeps the minutes and each run's epochs, and no ``--epochs``/``--width`` it never used."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import vs_lightly
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    args = vs_lightly.main.__globals__["argparse"].Namespace(
        mode="time", preset="cpu", width=0.125, batch=128, epochs=1, minutes=10.0, peer_schedules="documented",
        sides=["lightly", "byol_cpu"], cold=False,
    )  # fmt: skip

    def run(side, knn, epochs, speed):
        return {"side": side, "seed": 0, "knn": knn, "steps": round(epochs * 390), "epochs": epochs,
                "images_per_sec": speed, "wall_seconds": 600.0}  # fmt: skip

    results = [{"side": "baselines", "seed": 0, "knn_untrained": 0.38, "knn_bn_adapted": 0.416},
               run("lightly", 0.482, 3.0, 300.0), run("byol_cpu", 0.582, 8.87, 738.0)]  # fmt: skip
    figures = vs_lightly.summarise(args, results)
    assert figures["mode"] == "time" and figures["minutes"] == 10.0
    assert figures["epochs"] is None and figures["width"] is None  # the cpu preset's convnet; no --epochs used
    rows = {r["side"]: r for r in figures["rows"]}
    assert rows["lightly"]["epochs"] == [3.0] and rows["byol_cpu"]["epochs"] == [8.87]
    assert figures["byol_cpu_vs_lightly_speed"] == pytest.approx(738 / 300)
    vs_lightly.print_table(figures)
    out = capsys.readouterr().out
    assert "10 minutes each" in out and "8.9" in out and "1 epochs" not in out


@pytest.mark.slow
def test_vs_lightly_parity_trains_both_sides_on_the_same_steps_and_pairs_their_gains(small, tmp_path, capsys):
    """--mode parity, tiny: two seeds, one epoch of 400 images each, lightly's own modules (the real
    package) beside byol's method; one metrics file per seed with both sides' losses, lr and τ at the same
    steps, and the paired difference of the gains with its 95% interval."""
    pytest.importorskip("lightly")
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import vs_lightly
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    out = tmp_path / "parity"
    argv = ["--mode", "parity", "--preset", "cpu", "--data", str(small["train"].parent), "--out", str(out),
            "--epochs", "1", "--batch", "32", "--seeds", "0", "1", "--log-every", "4"]  # fmt: skip
    assert vs_lightly.main(argv) == 0
    figures = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert figures["seeds"] == [0, 1] and figures["steps"] == [12]  # 400 images, batch 32: 12 steps each
    diff = figures["byol_minus_lightly"]
    gains = [b - a for b, a in zip(figures["gain_byol"]["per_seed"], figures["gain_lightly"]["per_seed"])]
    assert diff["per_seed"] == pytest.approx(gains) and diff["ci95"][0] <= diff["mean"] <= diff["ci95"][1]
    for seed in (0, 1):
        lines = [json.loads(x) for x in (out / "runs" / f"parity-s{seed}" / "metrics.jsonl").read_text().splitlines()]
        assert [x["step"] for x in lines] == [4, 8, 12]
        for x in lines:  # both sides follow their own schedules to the same length
            assert -1 <= x["byol_cos"] <= 1 and -1 <= x["lightly_cos"] <= 1
            assert 0 < x["byol_tau"] <= 1 and 0 < x["lightly_tau"] <= 1 and x["byol_lr"] >= 0 and x["lightly_lr"] >= 0
        assert lines[-1]["lightly_tau"] == 1.0  # lightly's cosine_schedule reaches its end at the last step


@pytest.mark.slow
def test_loop_benchmark_times_each_part_of_the_real_loop(small, capsys):
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import loop
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    argv = ["--data", str(small["train"]), "--batch", "64", "--steps", "6", "--warmup", "1"]
    assert loop.main([*argv, "--set", "augment.compile=off"]) == 0  # compiling would take a minute here
    figures = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    calls = figures["parts_calls"]
    # 400 images / 64 = 6 steps an epoch: each part once a step, the CheckpointCadence's file once (max > 0).
    assert calls["step (fwd+bwd+opt)"] == calls["data (batch)"] == calls["views (augment)"] == 6
    assert calls["CheckpointCadence"] == calls["MetricsLog"] == calls["target update"] == 6
    assert figures["parts_max_ms"]["CheckpointCadence"] > 0 and abs(sum(figures["parts_share"].values()) - 1) < 0.01
    assert figures["bare_images_per_sec"] > 0 and figures["full_images_per_sec"] > 0


@pytest.mark.skipif(shutil.which("strace") is None, reason="needs strace to see the write() calls")
def test_record_to_appends_each_section_line_in_one_write(tmp_path):
    """Sections that run two at a time share one LINES file: a line written in two parts (the text,
    then its newline) lets a neighbour's line in between, two objects on one line (CI, once)."""
    script = (
        f'source {ROOT}/benchmarks/gpu_lib.sh; '
        f'record_to {tmp_path}/lines.jsonl {tmp_path} ok 30 echo \'{{"x": 1}}\'; '
        f'record_to {tmp_path}/lines.jsonl {tmp_path} bad 30 false'
    )  # fmt: skip
    trace = tmp_path / "trace"
    subprocess.run(["strace", "-f", "-s", "4096", "-e", "trace=write", "-o", str(trace), "bash", "-c", script],
                   check=True, capture_output=True)  # fmt: skip
    writes = [w for w in trace.read_text().splitlines() if "write(" in w and '{\\"section\\"' in w]
    assert len(writes) == 2, writes
    assert all('}\\n"' in w for w in writes), writes  # the object and its newline in the same write
    lines = [json.loads(line) for line in (tmp_path / "lines.jsonl").read_text().splitlines()]
    assert [(d["section"], d.get("x"), "error" in d) for d in lines] == [("ok", 1, False), ("bad", None, True)]
