"""The package's shape, held by a test: short functions, short modules, no module importing the face."""

import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "byol"
MODULES = sorted(PACKAGE.rglob("*.py"))
MAX_FUNCTION_LINES, MAX_MODULE_LINES = 60, 400
PACKAGES = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists()}
SUBMODULES = {p.stem for p in PACKAGE.glob("*.py")} | PACKAGES


def long_functions(source: str) -> list[str]:
    return [
        f"{node.name} ({node.end_lineno - node.lineno + 1} lines)"
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES
    ]


def face_imports(source: str) -> list[str]:
    """``from byol import faults`` names a module; ``from byol import BYOL`` (or ``import byol``) runs the
    face's imports from inside the package: an arrow back up, and a circle waiting to happen."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module == "byol":
            found += [f"line {node.lineno}: {a.name}" for a in node.names if a.name not in SUBMODULES]
        if isinstance(node, ast.Import):
            found += [f"line {node.lineno}: import byol" for a in node.names if a.name == "byol"]
    return found


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_function_over_60_lines_no_module_over_400(path):
    source = path.read_text()
    assert not long_functions(source)
    assert len(source.splitlines()) <= MAX_MODULE_LINES


@pytest.mark.parametrize("path", [p for p in MODULES if p != PACKAGE / "__init__.py"], ids=lambda p: p.name)
def test_no_module_imports_from_the_package_face(path):
    assert not face_imports(path.read_text())


def test_the_checks_catch_what_they_forbid():
    assert face_imports("from byol import BYOL\nimport byol\nfrom byol import faults\n") == [
        "line 1: BYOL",
        "line 2: import byol",
    ]
    assert long_functions("def f():\n" + "    x = 1\n" * 60) == ["f (61 lines)"]
    assert long_functions("def f():\n" + "    x = 1\n" * 59) == []


TESTS = Path(__file__).resolve().parent
RESUMING = re.compile(r"resum|rerun|restart|extend")
RUNS = {"pretrain", "cli", "_torchrun_cli"}  # what starts a sitting in a test
PROVES_RESUME = {"resume", "assert_resume_logged"}  # helpers.py: the sitting's own word and count
NOT_A_RESUME = {  # tests whose names match but whose second sitting is not a resume, and why
    "test_resume_with_different_options_is_refused": "refused before a step",
    "test_rerunning_a_finished_run_changes_nothing": "a complete run returns its stored result, nothing resumes",
    "test_a_config_without_checkpoints_is_not_overwritten_and_no_resume_says_what_to_do": "refused before a step",
}


def unproved_resumes(source: str) -> list[str]:
    """Tests named for a resume (or a re-run, restart, extension) that start a sitting but never check,
    through ``helpers.resume`` or ``assert_resume_logged``, that it went on from its checkpoint: a
    restart from step 0 of a deterministic run would pass them."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not (isinstance(node, ast.FunctionDef) and node.name.startswith("test_") and RESUMING.search(node.name)):
            continue
        called = {
            getattr(c.func, "id", getattr(c.func, "attr", None)) for c in ast.walk(node) if isinstance(c, ast.Call)
        }
        if called & RUNS and not called & PROVES_RESUME and node.name not in NOT_A_RESUME:
            found.append(node.name)
    return found


@pytest.mark.parametrize("path", sorted(TESTS.glob("test_*.py")), ids=lambda p: p.name)
def test_every_resume_test_proves_the_sitting_resumed_at_its_checkpoint(path):
    assert not unproved_resumes(path.read_text())


def test_the_resume_rule_catches_a_test_that_compares_weights_only():
    weights_only = "def test_x_resumes(a):\n    pretrain(a)\n    pretrain(a)\n"
    proved = "def test_x_resumes(a):\n    pretrain(a)\n    resume(a, at=12)\n"
    assert unproved_resumes(weights_only) == ["test_x_resumes"] and unproved_resumes(proved) == []
