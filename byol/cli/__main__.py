"""``byol`` entry point: a dispatch table of subcommands, each in its own module."""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys

from byol.errors import ByolError

# name -> (module, one-line help). Each module defines add_arguments(parser) and run(args) -> int.
COMMANDS = {
    "augment": ("byol.cli.augment", "write a grid of images beside their two augmented views"),
    "pretrain": ("byol.cli.pretrain", "pretrain an encoder with BYOL on a folder of images"),
    "eval": ("byol.cli.evaluate", "evaluate a pretrained encoder: knn, linear, finetune"),
    "embed": ("byol.cli.embed", "write an embedding for every image of a folder"),
    "neighbours": (
        "byol.cli.neighbours",
        "a gallery of each query's nearest images, and near-duplicates",
    ),
    "export": ("byol.cli.export", "export the encoder (.safetensors, .pt, ONNX, or a Hugging Face Hub folder)"),
    "push": ("byol.cli.push", "upload the encoder to a Hugging Face Hub model repository"),
    "report": ("byol.cli.report", "write an HTML report with plots of a run"),
    "shard": ("byol.cli.shard", "write a folder of images as WebDataset tar shards"),
    "ablate": ("byol.cli.ablate", "run BYOL's ablations (and a SimCLR baseline) and report them beside the paper's"),
}


class OneLineParser(argparse.ArgumentParser):
    """argparse, with its errors on one line (no usage block) and exit code 2."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="byol", description="BYOL self-supervised learning (Grill et al. 2020).")
    parser.add_argument("--version", action="version", version=f"byol {importlib.import_module('byol').__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        importlib.import_module(module).add_arguments(p)
        p.set_defaults(_module=module)
    return parser


def main(argv: list[str] | None = None) -> int:
    # Under torchrun only rank 0 speaks; the other ranks report warnings and errors.
    rank = int(os.environ.get("RANK", "0"))
    logging.basicConfig(level=logging.INFO if rank == 0 else logging.WARNING, format="%(message)s")
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # as typed: evaluations keep their command
    try:
        return importlib.import_module(args._module).run(args) or 0
    except ByolError as e:
        code = getattr(e, "exit_code", 2)  # a preempted run: 128 + the signal, as if it had ended the process
        print(f"byol {args.command}: {'error: ' if code == 2 else ''}{e}", file=sys.stderr)
        return code
    except KeyboardInterrupt:
        print(f"byol {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
