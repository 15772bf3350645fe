"""The command line's reference, from its own parsers: every subcommand's ``--help``, as printed."""

from __future__ import annotations

import argparse
import os

from byol.cli.__main__ import COMMANDS, build_parser

WIDTH = 100  # columns the help is wrapped to on the page


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:  # argparse keeps its subcommands in the action that parses them
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _help(parser: argparse.ArgumentParser) -> str:
    before = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = str(WIDTH)  # argparse wraps to the terminal's width: the page's is fixed
    try:
        return parser.format_help()
    finally:
        if before is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = before


def cli_reference() -> str:
    """Every subcommand (and sub-subcommand, as ``byol eval knn``) with its ``--help``, as Markdown."""
    parser = build_parser()
    lines = [
        "# Command-line reference",
        "",
        "Generated from the parsers `byol` runs: each block is what `--help` prints. The options of",
        "`byol pretrain` are config keys; their texts are the [configuration reference](config.md)'s.",
        "",
        "| command | what it does |",
        "|---|---|",
        *(f"| [`byol {name}`](#byol-{name}) | {text} |" for name, (_, text) in COMMANDS.items()),
    ]
    for name, sub in _subcommands(parser).items():
        lines += ["", f"## byol {name}", "", "```text", _help(sub).rstrip(), "```"]
        for inner, leaf in _subcommands(sub).items():
            lines += ["", f"### byol {name} {inner}", "", "```text", _help(leaf).rstrip(), "```"]
    return "\n".join(lines) + "\n"
