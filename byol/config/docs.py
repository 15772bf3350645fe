"""The one text of each config option: the attribute docstring written under it in the schema
(``byol.config.schema``'s sections, each method's options class), then its choices from their registries.
``--help`` (``byol.config.flags.add_flags``) and the documentation's reference both print it.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import inspect
from typing import Any

from byol.config import schema
from byol.config.registry import CHOICES, method_option_classes
from byol.config.schema import option_name


@functools.cache
def option_docstrings() -> dict[str, str]:
    """``section.key`` → the attribute docstring written under that key in byol.config's sections and in
    each method's options class (``MethodSpec.options``, section ``methods.<name>``)."""
    sources = [inspect.getsource(schema)]
    sources += [inspect.getsource(cls) for cls in method_option_classes().values()]
    docs = {}
    for source in sources:
        for cls in (n for n in ast.parse(inspect.cleandoc(source)).body if isinstance(n, ast.ClassDef)):
            docs.update(_attribute_docs(cls.body))
    return docs


def _attribute_docs(body: list[ast.stmt]) -> dict[str, str]:
    """The docstrings under the attributes of one class body that names its ``SECTION``."""
    section = next(
        (n.value.value for n in body if isinstance(n, ast.AnnAssign) and getattr(n.target, "id", "") == "SECTION"),
        None,
    )
    docs = {}
    for node, after in zip(body, body[1:]):
        is_doc = isinstance(after, ast.Expr) and isinstance(getattr(after, "value", None), ast.Constant)
        if section and isinstance(node, ast.AnnAssign) and is_doc and isinstance(after.value.value, str):
            docs[f"{section}.{node.target.id}"] = " ".join(after.value.value.split())
    return docs


def option_help(key: str) -> str:
    """The one text of option ``section.key``: its docstring in the schema, then its choices (from their
    registries, ``CHOICES``) where the docstring does not name them all. ``--help`` and the reference
    both print it (defaults are the preset's, which ``byol pretrain --preset P`` resolves)."""
    text = option_docstrings().get(key, "")
    choices = [str(c) for c in CHOICES[key]()] if key in CHOICES else []
    if choices and not all(c in text for c in choices):
        text += f" One of: {', '.join(choices)}."
    return text


# Defaults computed on the machine that reads them: the page says how, not this machine's value.
_COMPUTED = {"data.workers": "the cores, at most 8"}


def _default_text(value: Any) -> str:
    if dataclasses.is_dataclass(value):  # a view's parameters: their defaults are the paper's table 6
        return ", ".join(f"{k}={_default_text(v)}" for k, v in dataclasses.asdict(value).items())
    if isinstance(value, tuple | list):
        return "[" + ", ".join(_default_text(v) for v in value) + "]"
    if isinstance(value, float):
        return f"{value:.4g}"
    return "(empty)" if value == "" or value == {} else str(value)


def config_reference() -> str:
    """Every config key as a Markdown page: its section, type, default, how it is set and its text
    (``option_help``, the text ``--help`` prints). The documentation's reference is this page."""
    cfg = schema.Config()
    sections = [(s, getattr(cfg, s)) for s in ("data", "model", "augment", "optim", "run")]
    sections += [(f"methods.{name}", options) for name, options in cfg.methods.items()]
    lines = [
        "# Configuration reference",
        "",
        "Generated from the schema (`byol/config/schema.py` and each method's options): the text of each key is",
        "its docstring there, the same text `byol pretrain --help` prints. Defaults are the schema's; a",
        "preset (`--preset cpu|cifar10|imagenet`) sets many of them (`byol/presets/*.yaml`). Set a key in a",
        "YAML file, with its flag, or with `--set section.key=value`.",
    ]
    for name, section in sections:
        lines += ["", f"## `{name}`", "", "| key | type | default | set with | what it is |", "|---|---|---|---|---|"]
        hints = {f.name: f.type for f in dataclasses.fields(section)}
        for f in dataclasses.fields(section):
            key = f"{name}.{f.name}"
            kind = str(hints[f.name]).replace("|", "or")
            default = _COMPUTED.get(key) or _default_text(getattr(section, f.name)).replace("|", "\\|")
            text = option_help(key).replace("|", "\\|")
            lines.append(f"| `{f.name}` | {kind} | `{default}` | `{option_name(key)}` | {text} |")
    return "\n".join(lines) + "\n"
