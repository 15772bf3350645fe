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


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(source: str, modules: set[str]) -> tuple[set[str], list[str]]:
    """The byol modules ``source`` imports (at any depth: a deferred import is still an arrow), and its
    imports of another module's private names (``from byol.x import _y``)."""
    targets, private = set(), []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("byol"):
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                targets.add(full if full in modules else node.module)
                if alias.name.startswith("_") and not alias.name.startswith("__"):
                    private.append(f"line {node.lineno}: {node.module}.{alias.name}")
        elif isinstance(node, ast.Import):
            targets |= {a.name for a in node.names if a.name in modules}
    return targets, private


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The import circles of ``graph`` (module → modules it imports): each strongly connected
    component of more than one module (Tarjan), sorted."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while not component or component[-1] != v:
                component.append(stack.pop())
                on_stack.discard(component[-1])
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(found)


def test_no_import_cycles_and_no_private_name_imported_across_modules():
    modules = {_module_name(p): p for p in MODULES}
    graph, private = {}, []
    for name, path in modules.items():
        targets, found = imports_of(path.read_text(), set(modules))
        graph[name] = targets - {name, "byol"} if name != "byol" else set()  # the face imports everything
        private += [f"{name}: {p}" for p in found]
    assert not import_cycles(graph)
    assert not private


def test_the_checks_catch_what_they_forbid():
    assert face_imports("from byol import BYOL\nimport byol\nfrom byol import faults\n") == [
        "line 1: BYOL",
        "line 2: import byol",
    ]
    assert long_functions("def f():\n" + "    x = 1\n" * 60) == ["f (61 lines)"]
    assert long_functions("def f():\n" + "    x = 1\n" * 59) == []
    modules = {"byol.a", "byol.b", "byol.c", "byol.x"}
    assert imports_of("from byol.x import _hidden, shown\nimport byol.a\n", modules) == (
        {"byol.x", "byol.a"},
        ["line 1: byol.x._hidden"],
    )
    assert imports_of("from byol import a\n", modules)[0] == {"byol.a"}  # a submodule by name
    cycle = {"byol.a": {"byol.b"}, "byol.b": {"byol.c"}, "byol.c": {"byol.a"}, "byol.x": {"byol.a"}}
    assert import_cycles(cycle) == [["byol.a", "byol.b", "byol.c"]]
    assert import_cycles({**cycle, "byol.c": set()}) == []


def module_graph() -> tuple[dict[str, set[str]], dict[str, Path]]:
    """Every byol module's imports of other byol modules (the face's left out), and its file."""
    modules = {_module_name(p): p for p in MODULES}
    graph = {name: imports_of(path.read_text(), set(modules))[0] - {name, "byol"} for name, path in modules.items()}
    return graph, modules


SCHEMA_FLOOR = {"byol.config.schema", "byol.config.registry", "byol.config.views"}
GROUND_FLOOR = {"byol.constants", "byol.errors", *SCHEMA_FLOOR}
CONFIG_PARAMETERS = re.compile(r"^(cfg|config|[a-z]+_cfg)$")


def below(graph: dict[str, set[str]], top: str) -> set[str]:
    """What ``top`` imports, at any depth, outside the config package (the schema may be imported)."""
    seen, todo = set(), [top]
    while todo:
        for target in graph.get(todo.pop(), ()):
            if target not in seen and not target.startswith("byol.config"):
                seen.add(target)
                todo.append(target)
    return seen


def config_takers(source: str) -> list[str]:
    """Where ``source`` takes a ``Config`` (or a section of one): a parameter named ``cfg`` / ``config`` /
    ``*_cfg``, an annotation naming a ``*Config``, an import of a ``*Config`` from byol.config."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            args = node.args
            for a in [*args.posonlyargs, *args.args, *args.kwonlyargs]:
                annotation = ast.unparse(a.annotation) if a.annotation is not None else ""
                if CONFIG_PARAMETERS.match(a.arg) or re.search(r"\w*Config\b", annotation):
                    found.append(f"line {a.lineno}: {getattr(node, 'name', 'lambda')}({a.arg})")
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("byol.config"):
            found += [f"line {node.lineno}: imports {a.name}" for a in node.names if a.name.endswith("Config")]
    return found


def test_the_schema_stands_on_the_ground_floor_and_nothing_below_the_builder_takes_a_config():
    """Issue 42: the schema imports nothing of byol but the ground floor (the names it validates against
    are registered upward into it); ``byol.build`` is the one module that turns a ``Config`` into objects,
    and what it builds with takes plain values."""
    graph, files = module_graph()
    for name in SCHEMA_FLOOR:
        assert graph[name] <= GROUND_FLOOR, (name, graph[name] - GROUND_FLOOR)
    under = below(graph, "byol.build")
    assert {"byol.data.source", "byol.encoder_io", "byol.method.registry", "byol.optim"} <= under
    assert {
        name: config_takers(files[name].read_text()) for name in under if config_takers(files[name].read_text())
    } == {}


def test_the_config_rules_catch_a_builder_taking_a_config_and_a_schema_import_from_above():
    assert config_takers("def build(cfg, n):\n    pass\n") == ["line 1: build(cfg)"]
    assert config_takers("def build(m: ModelConfig):\n    pass\n") == ["line 1: build(m)"]
    assert config_takers("from byol.config import Config, option\n") == ["line 1: imports Config"]
    assert config_takers("def build(heads: Heads, options, n: int):\n    pass\n") == []
    graph = {"byol.build": {"byol.a", "byol.config.schema"}, "byol.a": {"byol.b"}, "byol.config.schema": {"byol.c"}}
    assert below(graph, "byol.build") == {"byol.a", "byol.b"}


def checkpoint_key_reads(source: str, keys: set[str]) -> list[str]:
    """Where ``source`` reads or writes a checkpoint's key by its string: ``ckpt["step"]``,
    ``checkpoint.get("rng")``, ``{"model": ...}`` next to another key (a checkpoint written by hand)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        target = None
        if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant):
            target, key = node.value, node.slice.value
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "get" and node.args:
            target, key = node.func.value, getattr(node.args[0], "value", None)
        if target is not None and key in keys and re.search(r"ckpt|checkpoint", ast.unparse(target)):
            found.append(f"line {node.lineno}: {ast.unparse(node)}")
        if isinstance(node, ast.Dict):
            named = {k.value for k in node.keys if isinstance(k, ast.Constant)} & keys
            if {"model", "optimizer", "step"} <= named:
                found.append(f"line {node.lineno}: a checkpoint dict")
    return found


def test_the_checkpoints_keys_are_written_and_read_in_one_place():
    """Issue 42: ``byol.train.checkpoint.Checkpoint`` is the one place a checkpoint's keys are named."""
    from dataclasses import fields

    from byol.train.checkpoint import Checkpoint

    keys = {f.name for f in fields(Checkpoint)}
    home = PACKAGE / "train" / "checkpoint.py"
    found = {str(p.relative_to(PACKAGE)): checkpoint_key_reads(p.read_text(), keys) for p in MODULES if p != home}
    assert {name: where for name, where in found.items() if where} == {}
    bad = 'ckpt = {"model": m, "optimizer": o, "step": 1}\nstep = ckpt["step"]\n'
    bad += 'rng = checkpoint.get("rng")\nx = d["step"]\n'
    assert checkpoint_key_reads(bad, keys) == [
        "line 1: a checkpoint dict", "line 2: ckpt['step']", "line 3: checkpoint.get('rng')"
    ]  # fmt: skip


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


# The evaluation protocols' numbers, each defined once (byol.constants): a default written as a literal
# anywhere else is a second definition that can drift from the first.
PROTOCOL_LITERALS = re.compile(
    r"\b(k|knn_k)(: int)? ?= ?200\b|\btemperature(: float)? ?= ?0\.1\b|\bk=200\b|T=0\.1\b"
    r"|0\.4, 0\.3, 0\.2, 0\.1, 0\.05|\bepochs(: int)? ?= ?80\b"
)


def protocol_literals(source: str) -> list[str]:
    return [
        f"line {i}: {line.strip()}" for i, line in enumerate(source.splitlines(), 1) if PROTOCOL_LITERALS.search(line)
    ]


@pytest.mark.parametrize(
    "path", [m for m in MODULES if m.name != "constants.py"], ids=lambda p: str(p.relative_to(PACKAGE))
)
def test_knn_and_linear_protocol_numbers_are_defined_once(path):
    assert not protocol_literals(path.read_text())


def test_the_protocol_rule_catches_a_literal_default_and_the_defaults_agree_everywhere(capsys):
    import inspect

    from byol.cli.__main__ import main
    from byol.config import Config
    from byol.config.docs import option_help
    from byol.constants import KNN_K, KNN_TEMPERATURE, LINEAR_BATCH_SIZE, LINEAR_EPOCHS, LINEAR_LRS
    from byol.eval.knn import knn_accuracy
    from byol.eval.protocols import linear_augmented
    from byol.eval.runner import knn_evaluate

    assert protocol_literals("def f(x, k: int = 200, temperature=0.1):") and not protocol_literals("k = KNN_K")
    assert (Config().run.knn_k, Config().run.knn_temperature) == (KNN_K, KNN_TEMPERATURE)
    for fn in (knn_accuracy, knn_evaluate):
        params = inspect.signature(fn).parameters
        assert (params["k"].default, params["temperature"].default) == (KNN_K, KNN_TEMPERATURE)
    params = inspect.signature(linear_augmented).parameters
    assert (params["lrs"].default, params["epochs"].default) == (LINEAR_LRS, LINEAR_EPOCHS)
    assert params["batch_size"].default == LINEAR_BATCH_SIZE
    from byol.cli.__main__ import build_parser

    knn = build_parser().parse_args(["eval", "knn", "RUN", "--train", "A", "--test", "B"])
    lin = build_parser().parse_args(["eval", "linear", "RUN", "--train", "A", "--test", "B", "--augment"])
    assert (knn.k, knn.temperature) == (KNN_K, KNN_TEMPERATURE)
    assert (tuple(lin.lrs), lin.epochs, lin.batch_size) == (LINEAR_LRS, LINEAR_EPOCHS, LINEAR_BATCH_SIZE)
    with pytest.raises(SystemExit):
        main(["eval", "knn", "--help"])
    shown = " ".join(capsys.readouterr().out.split())  # byol eval knn's options say what the reference says
    assert option_help("run.knn_k") in shown and option_help("run.knn_temperature") in shown


# The run folder's files, named in one module (byol.run_files, issue 42): a file name written as a
# string anywhere else in the package is a second definition of the layout. Docstrings may describe it.
RUN_FILE_NAMES = ("config.yaml", "config_history.jsonl", ".lock", "metrics.jsonl", "summary.json",
                  "encoder.safetensors", "encoder.json", "checkpoints", "skipped-rank", "tb")  # fmt: skip
OTHERS_FILES = {"eval/pretrained.py": "checkpoints"}  # torch.hub's cache layout, not a run folder's


def run_file_literals(source: str) -> list[str]:
    tree = ast.parse(source)
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            text = node.value.strip("/")
            if (
                text in RUN_FILE_NAMES
                or text.startswith("skipped-rank")
                or text.endswith(("/summary.json", "/config.yaml"))
            ):
                found.append(f"line {node.lineno}: {node.value!r}")
    return found


@pytest.mark.parametrize(
    "path", [m for m in MODULES if m.name != "run_files.py"], ids=lambda p: str(p.relative_to(PACKAGE))
)
def test_no_run_folder_file_name_outside_run_files(path):
    allowed = OTHERS_FILES.get(path.relative_to(PACKAGE).as_posix())
    assert [f for f in run_file_literals(path.read_text()) if f"'{allowed}'" not in f] == []


def test_the_run_files_rule_catches_a_literal_and_run_files_names_the_layout(tmp_path):
    from byol.run_files import RunFiles

    assert run_file_literals('p = run_dir / "summary.json"') == ["line 1: 'summary.json'"]
    assert run_file_literals('"""Writes summary.json."""\nx = 1') == []  # a docstring describes
    files = RunFiles(tmp_path)
    assert [p.name for p in (files.config, files.summary, files.encoder, files.encoder_meta)] == [
        "config.yaml", "summary.json", "encoder.safetensors", "encoder.json"]  # fmt: skip
    assert files.checkpoint(12).relative_to(tmp_path).as_posix() == "checkpoints/step-000000012.pt"
    assert not files.is_run() and not files.is_finished()
    files.config.write_text("{}")
    files.summary.write_text("{}")
    assert files.is_run() and not files.is_finished()  # the encoder is written before the summary
    files.encoder.write_bytes(b"")
    assert files.is_finished()
