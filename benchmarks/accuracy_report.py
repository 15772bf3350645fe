"""accuracy.json from the files of one ``gpu_accuracy.sh`` run: byol's figures beside the peers' published ones.

    python benchmarks/accuracy_report.py EVIDENCE_DIR CONTROL_CPU_JSON OUT_JSON

EVIDENCE_DIR is what the script packs into evidence.tgz (sections.jsonl, env.json, one folder per run);
unpack an archive to regenerate its accuracy.json. Prints one JSON line; exits 1 when a section failed.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import yaml

# Published figures to stand beside (lightly's CIFAR-10 benchmark table, docs/source/getting_started/benchmarks/
# cifar10_benchmark.py, 27.03.2023; solo-learn's CIFAR-10 BYOL row). lightly reports the best kNN over its
# epochs, with its kNN every epoch inside those minutes.
PEERS = {
    "lightly_batch512": {"knn_top1": 0.868, "epochs": 200, "minutes": 108.3, "batch": 512, "gpu": "RTX A6000",
                         "figure": "kNN (train bank, test queries, k 200, T 0.1), max over epochs"},
    "lightly_batch128": {"knn_top1": 0.869, "epochs": 200, "minutes": 121.9, "batch": 128, "gpu": "RTX A6000",
                         "figure": "kNN (train bank, test queries, k 200, T 0.1), max over epochs"},
    "solo_learn": {"linear_top1": 0.9258, "epochs": 1000, "batch": 256,
                   "figure": "linear probe on the test set after 1000 epochs (no kNN figure published)"},
}  # fmt: skip
# Dense bf16 tensor-core peaks (NVIDIA's data sheets, SXM parts): MFU's denominator.
PEAK_BF16_FLOPS = {"H100": 989.4e12, "H200": 989.4e12, "A100": 312e12, "L40S": 362e12}
GOAL = {"knn_top1": 0.868, "training_minutes": 8.0}


def sections(evidence: Path) -> dict[str, dict]:
    out = {}
    for line in (evidence / "sections.jsonl").read_text().splitlines():
        d = json.loads(line)
        out[d.pop("section")] = d
    return out


def peak_flops(gpu: str | None) -> float | None:
    for name, peak in PEAK_BF16_FLOPS.items():
        if gpu and name in gpu:
            return peak
    return None


def accuracy_run(evidence: Path, found: dict[str, dict], gpu: str | None) -> dict | None:
    """The accuracy run's figures, from its summary.json, config.yaml and metrics.jsonl."""
    run = evidence / "r18"
    if not (run / "summary.json").exists():
        return None
    done = json.loads((run / "summary.json").read_text())
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    optim = cfg["optim"]
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines() if x.strip()]
    knn_lines = [r for r in rows if "knn_top1" in r]
    images_per_sec, seconds = done.get("images_per_sec"), done["seconds"]
    out = {
        "knn_final": done.get("knn_final"),
        "knn_max": done.get("knn_max"),
        "epochs": done["epochs"],
        "steps": done["steps"],
        "training_minutes": seconds / 60,
        "time_budget_minutes": cfg["run"].get("time_budget"),
        "compile_seconds": done.get("compile_seconds"),
        "images_per_sec": images_per_sec,
        "precision": done.get("precision"),
        "recipe": {
            "preset": cfg.get("preset"),
            "backbone": cfg["model"]["backbone"],
            "batch": optim["batch_size"],
            "optimizer": optim["optimizer"],
            "base_lr": optim["base_lr"],
            "weight_decay": optim["weight_decay"],
            "warmup_epochs": optim["warmup_epochs"],
            "tau_base": optim["tau_base"],
        },
    }
    if knn_lines:  # the monitor's cost: its share of this run, and at one pass per 10 epochs of a 200-epoch run
        per_pass = sum(r.get("knn_seconds", 0.0) for r in knn_lines) / len(knn_lines)
        share = per_pass * len(knn_lines) / seconds if seconds else None
        out["knn_monitor"] = {"passes": len(knn_lines), "seconds_per_pass": per_pass, "share_of_training": share}
        if images_per_sec:
            epoch_seconds = done["images"] / images_per_sec
            out["knn_monitor"]["share_of_200_epochs_every_10"] = 20 * per_pass / (200 * epoch_seconds)
    counted = [(m, v) for k, v in found.get("flops", {}).items() if (m := re.search(r"_b(\d+)_byol_gflop$", k))]
    if counted:  # benchmarks/step.py: GFLOP of one training step at its batch (two views, online + target)
        match, gflop = counted[0]
        out["flop_per_image"] = gflop * 1e9 / int(match.group(1))
        peak = peak_flops(gpu)
        if peak and images_per_sec:
            out["mfu_bf16"] = out["flop_per_image"] * images_per_sec / peak
    best = (done.get("knn_max") or {}).get("top1")
    out["goal"] = {**GOAL, "reached": best is not None and best >= GOAL["knn_top1"]
                   and seconds / 60 <= GOAL["training_minutes"] + 0.01}  # fmt: skip
    return out


def control_check(evidence: Path, found: dict[str, dict], cpu_file: Path) -> dict | None:
    control = found.get("control-knn", {})
    if "top1" not in control or not cpu_file.exists() or not (evidence / "control" / "summary.json").exists():
        return None
    precision = json.loads((evidence / "control" / "summary.json").read_text()).get("precision", "bf16")
    ref = json.loads(cpu_file.read_text()).get(precision, {}).get("knn_top1")
    return {"knn_top1": control["top1"], "precision": precision, "cpu_knn_top1": ref,
            "within_2_points": None if ref is None else abs(control["top1"] - ref) <= 0.02}  # fmt: skip


def main(argv=None) -> int:
    evidence, cpu_file, out_file = map(Path, (argv or sys.argv[1:]))
    found = sections(evidence)
    env = json.loads((evidence / "env.json").read_text()) if (evidence / "env.json").exists() else {}
    out = {"env": env, "sections": found, "peers": PEERS}
    r18 = accuracy_run(evidence, found, env.get("gpu"))
    if r18 is not None:
        eval_knn = found.get("r18-knn", {})
        if "top1" in eval_knn:  # byol eval knn on the saved encoder: the monitor's final pass must equal it
            r18["eval_knn_top1"] = eval_knn["top1"]
        if "top1" in found.get("r18-linear", {}):
            r18["linear_top1"] = found["r18-linear"]["top1"]
        out["r18"] = r18
    oom = evidence / "oom" / "summary.json"
    if oom.exists():  # the batch of 4096 ran as micro-batches that fit
        done = json.loads(oom.read_text())
        out["oom"] = {"batch": 4096, "micro_batch": done.get("micro_batch"), "steps": done.get("steps")}
    control = control_check(evidence, found, cpu_file)
    if control is not None:
        out["control"] = control
    out_file.write_text(json.dumps(out, indent=1) + "\n")
    failed = [k for k, v in found.items() if "error" in v]
    brief = {k: out.get(k) for k in ("r18", "control", "oom")}
    if r18 is not None:
        brief["r18"] = {k: r18.get(k) for k in ("knn_final", "knn_max", "epochs", "training_minutes", "images_per_sec")}
    print(json.dumps({"out": str(out_file), **brief, "failed": failed}))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
