"""What the schema validates against and what its fields declare besides their text.

The names some keys choose from live with the modules that own them, which register them here
(``register_choices``: backbones, head norms, encoder norms and inits, optimisers), as the methods'
registry registers itself (``register_methods``: each method's name, options class and views): a new
backbone or method is one line where it is defined. ``byol/__init__`` imports those modules, so every
registry is full before a ``Config`` is validated. ``option`` declares a field with its flag and resume
policy.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import MISSING, field
from typing import Any

from byol.config.views import JITTERS

COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


AUTO_ON_OFF = ("auto", "on", "off")

# The keys whose values are names from a list, and where the list comes from: validation and the help
# text (``byol.config.docs.option_help``) both read it. The schema's own lists stand here; a list owned by
# another module (backbones, head norms, encoder norms and inits, optimisers, methods) is registered by it
# (``register_choices``), so a new backbone, optimiser or method shows up in ``--help`` and in the error
# without anyone writing it here.
CHOICES: dict[str, Callable[[], Sequence[str]]] = {
    "data.cache": lambda: AUTO_ON_OFF,
    "data.cache_on_device": lambda: AUTO_ON_OFF,
    "model.sync_bn": lambda: AUTO_ON_OFF,
    "model.method": lambda: list(registered_methods()),
    "augment.interpolation": lambda: ("bilinear", "bicubic"),
    "augment.jitter": lambda: JITTERS,
    "augment.compile": lambda: AUTO_ON_OFF,
    "run.precision": lambda: ("auto", "fp32", "bf16"),
    "run.compile_mode": lambda: COMPILE_MODES,
}

# Keys whose value is checked by the module that owns its names (``check(value)`` raises ``ValueError``
# saying why): a backbone may be a registered name or timm:<name>, which a list cannot say.
CHECKS: dict[str, Callable[[Any], None]] = {}


def register_choices(key: str, names: Callable[[], Sequence[str]], check: Callable[[Any], None] | None = None) -> None:
    """``key``'s values are ``names()`` (read when validating, so a registry that grows is seen), or, with
    ``check``, whatever ``check`` accepts (``names()`` then lists them for ``--help``)."""
    CHOICES[key] = names
    if check is not None:
        CHECKS[key] = check


_methods: Callable[[], Mapping[str, Any]] = dict


def register_methods(methods: Callable[[], Mapping[str, Any]]) -> None:
    """The methods ``model.method`` can name (``byol.method.METHODS``, read when asked, so an entry added
    there brings its name and its section), each with ``options`` (its options class: the config's
    ``methods.<name>`` section; None for none) and ``views(values, keep)`` (the views it asks for)."""
    global _methods
    _methods = methods


def registered_methods() -> Mapping[str, Any]:
    """The registered methods by name (``register_methods``)."""
    return _methods()


def method_option_classes() -> dict[str, type]:
    """Each method's options class (its section ``methods.<name>``), by name."""
    return {name: spec.options for name, spec in registered_methods().items() if spec.options is not None}


def default_options() -> dict[str, Any]:
    """Every registered method's options at their defaults, by name (the config's ``methods`` section)."""
    return {name: cls() for name, cls in method_option_classes().items()}


def option(
    default: Any = MISSING, *, flag: str | None = None, resumable: bool = False, default_factory: Any = MISSING
) -> Any:
    """A config field and all that is said of it besides its text (the docstring under it): its default;
    ``flag``, the option of ``byol pretrain`` that sets it (a bool's flag is a switch: ``--no-x`` sets it
    false, any other true; every key is also ``--set section.key=value``); ``resumable``, whether a resumed
    run may change it (``byol pretrain`` on a run folder applies it and records it in
    ``config_history.jsonl``; the saved config keeps every other)."""
    return field(default=default, default_factory=default_factory, metadata={"flag": flag, "resumable": resumable})
