"""The documentation: results come with their evidence (every file a results page names is in the
repository), the guides' runnable blocks run, and the reference pages print the code's own texts."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "docs" / "results"
EXTENSIONS = "json|jsonl|md|png|csv|yaml|txt|html|npy|tgz"
# A file a page names: `name.ext` in backticks, or the target of a Markdown link or image.
NAMED = re.compile(rf"`([^`\s]+\.(?:{EXTENSIONS}))`|\]\(([^)\s]+\.(?:{EXTENSIONS}))\)")


def missing_files(page: Path) -> list[str]:
    """Files ``page`` names that exist neither beside it nor from the repository's root (names with a
    placeholder such as ``<name>`` or ``*`` are patterns, not files)."""
    names = [a or b for a, b in NAMED.findall(page.read_text())]
    return [
        n for n in names
        if not re.search(r"[<>*{}$]", n) and not n.startswith("http")
        and not ((page.parent / n).exists() or (ROOT / n).exists())
    ]  # fmt: skip


@pytest.mark.parametrize("page", sorted(RESULTS.rglob("*.md")), ids=lambda p: str(p.relative_to(RESULTS)))
def test_every_file_a_results_page_names_is_in_the_repository(page):
    assert not missing_files(page)


def test_every_results_file_is_small_enough_for_the_repository():
    """Results are small text and PNGs (data lives in ../shared): nothing under docs/results reaches 1 MiB."""
    big = {str(f.relative_to(RESULTS)): f.stat().st_size for f in RESULTS.rglob("*") if f.is_file()}
    assert not {name: size for name, size in big.items() if size >= 1 << 20}


def test_the_check_sees_a_missing_file(tmp_path):
    page = tmp_path / "README.md"
    (tmp_path / "here.json").write_text("{}")
    page.write_text("Raw: `here.json`, `gone.json`, ![plot](plot.png), `runs/<name>/summary.json`.")
    assert missing_files(page) == ["gone.json", "plot.png"]


# ---- the documentation site's pages ---------------------------------------------------------------

# A block a page marks runnable: an HTML comment (invisible on the page) on the line before its fence.
RUNNABLE = re.compile(r"<!-- runnable -->\n```(bash|python)\n(.*?)```", re.S)
PAGES = [ROOT / "README.md", *sorted(p for p in (ROOT / "docs").rglob("*.md") if RESULTS not in p.parents)]


def runnable_blocks(page: Path) -> list[tuple[str, str]]:
    return RUNNABLE.findall(page.read_text())


def test_the_guides_mark_blocks_runnable_and_the_check_finds_them():
    pages = {p.relative_to(ROOT).as_posix(): runnable_blocks(p) for p in PAGES}
    assert [kind for kind, _ in pages["docs/getting-started.md"]] == ["bash", "python"]
    assert "byol pretrain" in pages["docs/getting-started.md"][0][1]


@pytest.mark.slow
@pytest.mark.parametrize("page", [p for p in PAGES if runnable_blocks(p)], ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_runnable_block_of_a_page_runs_as_written(page, small, tmp_path, monkeypatch):
    """A page's runnable blocks, in order, in one folder: shell blocks through bash (``set -euo
    pipefail``) with ``$DATA`` and ``$TEST`` a small labelled CIFAR subset, Python blocks in this
    process. The one change: ``byol pretrain`` runs without compiling the augmentation (the compiled
    views are tested against the eager ones elsewhere), to keep the suite fast."""
    bin_dir = Path(sys.executable).parent  # the venv's `byol`
    env = {
        **os.environ, "DATA": str(small["train"]), "TEST": str(small["test"]), "OMP_NUM_THREADS": "1",
        "BYOL_CACHE_DIR": str(small["cache"]), "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
    }  # fmt: skip
    eager = (  # a shell function in front of the command: what the block says, plus one option
        'byol() { if [ "$1" = pretrain ]; then command byol "$@" --set augment.compile=off; '
        'else command byol "$@"; fi; }\n'
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("BYOL_CACHE_DIR", str(small["cache"]))
    for kind, code in runnable_blocks(page):
        if kind == "bash":
            proc = subprocess.run(
                ["bash", "-euo", "pipefail", "-c", eager + code], env=env, capture_output=True, text=True, timeout=600
            )
            assert proc.returncode == 0, f"{page.name}:\n{code}\n{proc.stderr[-3000:]}"
        else:
            exec(compile(code, str(page), "exec"), {"__name__": "__main__"})


def test_the_reference_pages_and_help_print_the_same_text_from_the_code(monkeypatch, capsys):
    """One source of truth: the configuration reference lists every config key with the text
    ``byol pretrain --help`` prints, and the command-line reference is each subcommand's ``--help``.
    A docstring changed in the code changes the page and ``--help`` alike."""
    import dataclasses

    import byol.config.docs as config_docs
    from byol.cli.__main__ import COMMANDS, main
    from byol.cli.reference import cli_reference
    from byol.config import Config

    page = config_docs.config_reference()
    cfg = Config()
    for section in ("data", "model", "augment", "optim", "run"):
        for f in dataclasses.fields(getattr(cfg, section)):
            assert f"| `{f.name}` |" in page and config_docs.option_help(f"{section}.{f.name}") in page
    assert "## `methods.simclr`" in page and config_docs.option_help("methods.simclr.temperature") in page
    cli = cli_reference()
    assert all(f"## byol {name}" in cli for name in COMMANDS) and "### byol eval knn" in cli
    assert "--epochs EPOCHS" in cli and config_docs.option_help("run.epochs") in " ".join(cli.split())

    changed = {**config_docs.option_docstrings(), "run.epochs": "Epochs, as this test rewrote the docstring."}
    monkeypatch.setattr(config_docs, "option_docstrings", lambda: changed)
    assert "Epochs, as this test rewrote the docstring." in config_docs.config_reference()
    with pytest.raises(SystemExit):
        main(["pretrain", "--help"])
    assert "Epochs, as this test rewrote the docstring." in " ".join(capsys.readouterr().out.split())
    assert "Epochs, as this test rewrote the docstring." in " ".join(cli_reference().split())


def test_every_subcommands_device_and_workers_options_show_the_references_text():
    """Issue 42: --device and --workers of eval, embed and neighbours are pretrain's options (run.device,
    data.workers), and kNN's --k and --temperature the monitor's (run.knn_k, run.knn_temperature), so their
    help is the schema's one text, as the reference page prints it, and their defaults are the schema's."""
    import argparse

    from byol.cli.__main__ import build_parser
    from byol.config import docs as config_docs

    def subparsers(parser):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, child in action.choices.items():
                    yield name, child
                    yield from ((f"{name} {n}", c) for n, c in subparsers(child))

    from byol.config import RunConfig

    shared = {"--device": "run.device", "--workers": "data.workers"}
    knn = {"--k": "run.knn_k", "--temperature": "run.knn_temperature"}
    seen = 0
    for name, parser in subparsers(build_parser()):
        for action in parser._actions:
            flag = next(iter(action.option_strings), "")
            key = shared.get(flag) or (knn.get(flag) if name == "eval knn" else None)
            if key:
                assert action.help == config_docs.option_help(key), (name, action.help)
                seen += 1
            if key in knn.values():
                assert action.default == getattr(RunConfig(), key.split(".")[1])
    assert seen >= 12  # eval knn, linear, finetune, embed, neighbours: both options each, pretrain's, knn's two


def test_the_images_positionals_name_every_kind_of_data_they_read():
    """Issue 42: pretrain's DATA is the schema's data.path text (tar shards, Hugging Face datasets...); the
    subcommands that read images (not shards) share one text that names the Hugging Face datasets too."""
    from byol.cli.__main__ import build_parser
    from byol.cli.common import IMAGES
    from byol.config import docs as config_docs

    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command" or getattr(a, "choices", None))
    helps = {}
    for name, child in sub.choices.items():
        for action in child._actions:
            if action.dest in ("data", "train", "test") and action.help:
                helps[f"{name} {action.dest}"] = action.help
    assert helps["pretrain data"] == config_docs.option_help("data.path") and "tar shards" in helps["pretrain data"]
    for where in ("embed data", "neighbours data", "augment data"):
        assert IMAGES in helps[where] and "Hugging Face" in helps[where], where
