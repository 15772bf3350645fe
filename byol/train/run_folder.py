"""A run's folder and its length: what a run folder holds, what a resume may change, and extension.

``prepare_run_dir`` creates the folder or takes up the run it holds (its saved config wins; options
that would change what is trained are refused, the resumable ones applied and written to
``config_history.jsonl``). A new length (``--epochs`` / ``--time-budget``) on a run with checkpoints
is an extension: ``fit_length`` checks it against the checkpoint's step and lays the new plan, and only
then ``record_length`` writes it into config.yaml and the history. ``truncate_metrics`` drops the
metrics lines a broken sitting wrote past its checkpoint; ``check_same_data`` refuses a resume on
other images unless ``data.allow_changed``.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
import time
from pathlib import Path
from typing import Any

from byol.config import Config, resumable_keys
from byol.config.flags import option_name
from byol.config.io import load_yaml, save_yaml
from byol.dist import DistInfo
from byol.errors import ByolError
from byol.files import atomic_write, remove_stale_temporaries, write_failed
from byol.run_files import RunFiles
from byol.schedules import Plan, warmup_steps
from byol.train import checkpoint as ckpt_io

log = logging.getLogger(__name__)

# A run's length: given anew on a run with checkpoints, it extends the run (``fit_length`` checks it
# against the checkpoint's step; only then ``record_length`` writes it into config.yaml and the history).
LENGTH_CHANGES = ("run.epochs", "run.time_budget")
# Values that may differ when a run is resumed (declared so in the schema: byol.config.resumable); the
# saved config keeps the others.
RESUMABLE_CHANGES = resumable_keys()


def prepare_run_dir(run_dir: Path, cfg: Config, resume: bool, info: DistInfo) -> Config:
    """Create the run folder, or take up the run it holds: its saved config wins, and options that
    would change what is trained are refused. Temporary files left by a crash are removed."""
    files = RunFiles(run_dir)
    config_path = files.config
    if info.is_main:
        for folder in (run_dir, files.checkpoints):
            if stale := remove_stale_temporaries(folder):
                log.warning("removed %d file(s) a crash left half-written: %s", len(stale), ", ".join(map(str, stale)))
    checkpoints = ckpt_io.list_checkpoints(run_dir)
    to_file = cfg  # what config.yaml gets
    if not config_path.exists():
        if checkpoints:
            raise ByolError(
                f"{run_dir} holds checkpoints but no {config_path.name}; restore it, or choose another --out"
            )
    elif checkpoints and not resume:
        raise ByolError(
            f"{run_dir} already holds a run (newest checkpoint {checkpoints[-1].name}); drop --no-resume to "
            "continue it, or choose another --out"
        )
    else:
        cfg, to_file = _take_up(run_dir, load_yaml(config_path), cfg, bool(checkpoints), info)
    if info.is_main:
        try:
            run_dir.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise write_failed(run_dir, e) from None
        save_yaml(to_file, config_path)
    return cfg


def _take_up(run_dir: Path, saved: Config, cfg: Config, checkpoints: bool, info: DistInfo) -> tuple[Config, Config]:
    """The config a run folder's run goes on with (the saved one, the resumable changes applied) and
    what config.yaml gets now (a new length waits for ``fit_length``)."""
    changed = [c for c in _differences(saved.to_dict(), cfg.to_dict()) if c not in RESUMABLE_CHANGES]
    named = ", ".join(option_name(c) for c in changed[:3])  # as the user sets them: --epochs, --set ...
    if changed and checkpoints:
        raise ByolError(
            f"{run_dir} was started with a different config ({named}); use a new --out or the same options to resume"
        )
    if changed:
        raise ByolError(
            f"{RunFiles(run_dir).config} belongs to a run with other options ({named}) that wrote no "
            f"checkpoint; choose another --out, or delete {RunFiles(run_dir).config} to start this run there"
        )
    applied = {}
    for key in RESUMABLE_CHANGES:  # the new values apply, and are recorded
        section, name = key.split(".")
        old, new = getattr(getattr(saved, section), name), getattr(getattr(cfg, section), name)
        if old != new:
            applied[key] = [old, new]
        setattr(getattr(saved, section), name, new)
    to_file = saved
    if checkpoints and any(k in applied for k in LENGTH_CHANGES):  # written once fit_length accepts it
        to_file = copy.deepcopy(saved)
        for key in LENGTH_CHANGES:
            section, name = key.split(".")
            setattr(getattr(to_file, section), name, applied.pop(key, [getattr(getattr(saved, section), name)])[0])
    if applied and info.is_main:
        record_history(run_dir, applied)
    return saved, to_file


def record_history(run_dir: Path, applied: dict[str, list]) -> None:
    """One line in config_history.jsonl: the options a resume changed, from the newest checkpoint's step."""
    path = RunFiles(run_dir).history
    lines = path.read_text().splitlines() if path.exists() else []
    steps = [int(p.stem.split("-")[1]) for p in ckpt_io.list_checkpoints(run_dir)]
    lines.append(
        json.dumps({"time": time.strftime("%Y-%m-%d %H:%M:%S"), "from_step": max(steps, default=0), **applied})
    )
    with atomic_write(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    log.info("resumed with changed options: %s", ", ".join(f"{k} {a!r} -> {b!r}" for k, (a, b) in applied.items()))


def _differences(a: dict, b: dict, prefix: str = "") -> list[str]:
    out = []
    for k in sorted(set(a) | set(b)):
        va, vb = a.get(k), b.get(k)
        if isinstance(va, dict) and isinstance(vb, dict):
            out += _differences(va, vb, f"{prefix}{k}.")
        elif va != vb:
            out.append(f"{prefix}{k}")
    return out


# ---- the run's length ---------------------------------------------------------------------------


def fit_length(cfg: Config, plan: Plan, step: int, spent: float, timed_steps: int) -> tuple[Plan, dict[str, Any]]:
    """The plan of a resumed run at ``step`` for the length ``cfg`` gives now, and what changed
    (``{}`` when nothing did). Another ``--epochs`` (or ``--time-budget``) than the plan was laid for
    goes on over the new length from ``step`` (``Plan.extended``; a shorter one that has not been
    reached shrinks the tail, ``Plan.relaid``); one the run has trained past, or another kind of
    length, is refused. ``spent``: seconds of training so far, over ``timed_steps`` timed steps."""
    budget = None if cfg.run.time_budget is None else cfg.run.time_budget * 60
    if (budget is None) != (plan.budget_seconds is None):
        was = "--time-budget" if plan.budget_seconds is not None else "--epochs"
        raise ByolError(f"this run was laid out by {was}: give {was} to resume or extend it")
    spe = plan.steps_per_epoch
    if budget is None:
        total, before = max(1, round(cfg.run.epochs * spe)), plan.total_steps
        if total == before:
            return plan, {}
        if total <= step:
            raise ByolError(
                f"--epochs {cfg.run.epochs:g} is {total} steps; this run has trained {step} "
                f"({step / spe:g} epochs): give more epochs, or another --out"
            )
        what = {"from_epochs": round(before / spe, 6), "to_epochs": round(total / spe, 6)}
    else:
        before = plan.budget_seconds
        if budget == before:
            return plan, {}
        if budget <= spent:
            raise ByolError(
                f"--time-budget {cfg.run.time_budget:g} minutes: this run has trained {spent / 60:.2f}; give more"
            )
        per_step = spent / max(timed_steps, 1)
        total = max(step + 1, step + int((budget - spent) / max(per_step, 1e-9)))
        plan = dataclasses.replace(plan, budget_seconds=budget)
        what = {"from_minutes": round(before / 60, 6), "to_minutes": round(budget / 60, 6)}
    warmup = warmup_steps(cfg.optim.warmup_epochs, spe, total)
    if total > plan.total_steps or budget is not None:
        return plan.extended(step, total, warmup), what
    return plan.relaid(step, total), what


def record_length(run_dir: Path, cfg: Config, step: int, what: dict[str, Any], info: DistInfo) -> None:
    """An accepted new length: config.yaml and the history say it (rank 0), and the log."""
    if info.is_main:
        save_yaml(cfg, RunFiles(run_dir).config)
        record_history(run_dir, {"run.epochs" if "to_epochs" in what else "run.time_budget": list(what.values())})
    log.info(
        "extended the run at step %d: %s (lr and τ go on from their values there)",
        step, ", ".join(f"{k} {v:g}" for k, v in what.items()),
    )  # fmt: skip


# ---- what a resume finds -------------------------------------------------------------------------


def truncate_metrics(run_dir: Path, step: int, is_main: bool = True) -> None:
    """Drop metric lines written after the checkpoint we resume from (they will be written again)."""
    path = RunFiles(run_dir).metrics
    if not path.exists() or not is_main:
        return
    keep = [line for line in path.read_text().splitlines() if line.strip() and json.loads(line)["step"] <= step]
    with atomic_write(path, "w") as f:
        f.writelines(line + "\n" for line in keep)


def check_same_data(cfg: Config, path: Path, saved: dict[str, Any] | None, now: dict[str, Any]) -> None:
    """A checkpoint (``path``) of other images (``saved``: its data fingerprint) than the data holds
    ``now`` is refused unless ``data.allow_changed``, with a warning then."""
    if saved is None or saved == now or cfg.data.allow_changed:
        if saved is not None and saved != now:
            log.warning("resuming on other data than %s was trained on (data.allow_changed)", path)
        return
    raise ByolError(
        f"{path} was trained on other data ({saved['count']} images, fingerprint {saved['sha256'][:12]}) than "
        f"{cfg.data.path} holds now ({now['count']} images, {now['sha256'][:12]}); resume on the same images, "
        "or --set data.allow_changed=true to go on with these"
    )
