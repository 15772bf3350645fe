"""The command line's config flags, one table: ``byol pretrain`` (and ``ablate``) build their
arguments from it, read them back from it, and errors name a config key the way a user sets it.

A flag's help is its config key's docstring (``byol.config_docs.option_help``: one text per option, the
same in ``--help`` and in the reference), given to ``add_flags``. Every other key is set with
``--set section.key=value``.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Flag:
    name: str  # "--epochs"
    key: str  # "run.epochs": the config section and key it sets ("methods.simclr.temperature": a method's)
    type: type | None  # what argparse parses the value as; None for a switch
    switch: Any = None  # a switch takes no value and sets the key to this

    @property
    def dest(self) -> str:
        return self.name.lstrip("-").replace("-", "_")


FLAGS: tuple[Flag, ...] = (
    Flag("--epochs", "run.epochs", float),
    Flag("--time-budget", "run.time_budget", float),
    Flag("--batch-size", "optim.batch_size", int),
    Flag("--accumulate", "optim.accumulate", int),
    Flag("--micro-batch", "optim.micro_batch", str),
    Flag("--lr", "optim.base_lr", float),
    Flag("--weight-decay", "optim.weight_decay", float),
    Flag("--optimizer", "optim.optimizer", str),
    Flag("--warmup-epochs", "optim.warmup_epochs", float),
    Flag("--tau-base", "optim.tau_base", float),
    Flag("--backbone", "model.backbone", str),
    Flag("--method", "model.method", str),
    Flag("--temperature", "methods.simclr.temperature", float),
    Flag("--simclr-recipe", "methods.simclr.recipe", str),
    Flag("--head-norm", "model.norm", str),
    Flag("--encoder-norm", "model.encoder_norm", str),
    Flag("--encoder-init", "model.encoder_init", str),
    Flag("--width", "model.width", float),
    Flag("--image-size", "data.image_size", int),
    Flag("--workers", "data.workers", int),
    Flag("--cache-dir", "data.cache_dir", str),
    Flag("--seed", "run.seed", int),
    Flag("--device", "run.device", str),
    Flag("--precision", "run.precision", str),
    Flag("--log-every", "run.log_every", int),
    Flag("--knn-every", "run.knn_every", float),
    Flag("--knn-test", "data.knn_test", str),
    Flag("--checkpoint-every", "run.checkpoint_every_minutes", float),
    Flag("--compile", "run.compile", None, switch=True),
    Flag("--deterministic", "run.deterministic", None, switch=True),
    Flag("--no-predictor", "model.use_predictor", None, switch=False),
    Flag("--no-color", "augment.color", None, switch=False),
)
_BY_KEY = {f.key: f.name for f in FLAGS}


def option_name(key: str) -> str:
    """How a user sets ``section.key``: its flag, or ``--set section.key``."""
    return _BY_KEY.get(key, f"--set {key}")


def add_flags(parser: argparse.ArgumentParser, help_for: Callable[[str], str] | None = None) -> None:
    """Every flag of the table, its help ``help_for(key)`` (``byol.config_docs.option_help``)."""
    for f in FLAGS:
        text = help_for(f.key).replace("%", "%%") if help_for is not None else None
        if f.switch is None:
            parser.add_argument(f.name, type=f.type, default=None, help=text)
        else:
            parser.add_argument(f.name, action="store_true", default=None, help=text)


def flag_values(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """The config values the flags in ``args`` set, as ``{section: {key: value}}`` (nested deeper for
    a method's options: ``{"methods": {"simclr": {"temperature": ...}}}``)."""
    out: dict[str, dict[str, Any]] = {}
    for f in FLAGS:
        given = getattr(args, f.dest)
        if given is None:
            continue
        *path, key = f.key.split(".")
        where = out
        for part in path:
            where = where.setdefault(part, {})
        where[key] = given if f.switch is None else f.switch
    return out
