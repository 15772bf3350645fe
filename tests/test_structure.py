"""The package's shape, held by a test: short functions, short modules, no module importing the face."""

import ast
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
