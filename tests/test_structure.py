"""The code's shape, held: no import circles, short functions, tasks that know themselves (no task name compared as a
string outside the task modules), and every private Keras/TensorFlow name in one compatibility module."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from cnnbench.tasks import TASKS

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("architectures", "cnnbench")
MAX_LINES = 80


def _modules(*dirs: str) -> dict[str, Path]:
    out = {}
    for d in dirs:
        for path in (ROOT / d).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


MODULES = _modules(*PACKAGES)
TREES = {name: ast.parse(path.read_text()) for name, path in {**MODULES, **_modules("benchmarks")}.items()}


def _imports(name: str) -> set[str]:
    """The package modules ``name`` imports (at any depth of its code); a module's own packages are not edges (Python
    runs a package's ``__init__`` before its modules)."""
    is_package = MODULES[name].name == "__init__.py"
    found = set()
    for node in ast.walk(TREES[name]):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = name.split(".")[: len(name.split(".")) - node.level + is_package]
                base = ".".join([*up, *([base] if base else [])])
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names]
        else:
            continue
        for target in targets:
            while target and target not in MODULES:
                target = target.rpartition(".")[0]
            if target and target != name and not name.startswith(target + "."):
                found.add(target)
    return found


def test_no_import_circles():
    graph = {name: _imports(name) for name in MODULES}
    circles, state = [], {}

    def visit(node, path):
        state[node] = "open"
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                circles.append([*path[path.index(nxt):], nxt])
            elif nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = "done"

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    assert not circles, "\n".join(" → ".join(c) for c in circles)


def test_no_function_over_80_lines():
    long = [f"{name}.{node.name}: {node.end_lineno - node.lineno + 1} lines"
            for name in MODULES for node in ast.walk(TREES[name])
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.end_lineno - node.lineno >= MAX_LINES]
    assert not long, long


def _task_names(node) -> list[str]:
    values = node.elts if isinstance(node, ast.Tuple | ast.List | ast.Set) else [node]
    return [v.value for v in values if isinstance(v, ast.Constant) and v.value in TASKS]


def test_no_task_name_is_compared_outside_the_task_modules():
    """A task's title, score, columns, recipe and options belong to it (cnnbench.tasks.base.Task): no other module
    switches on its name. (A model's ``kind`` — "segmentation" too — is the registry's, not a task's name.)"""
    found = [f"{name}:{node.lineno} {ast.unparse(node)}" for name, tree in TREES.items()
             if not name.startswith("cnnbench.tasks") for node in ast.walk(tree) if isinstance(node, ast.Compare)
             and any(_task_names(side) for side in [node.left, *node.comparators])
             and not any(isinstance(side, ast.Attribute) and side.attr == "kind"
                         for side in [node.left, *node.comparators])]
    assert not found, found


PRIVATE_MODULES = ("tensorflow.python", "tensorflow.core", "tensorflow.tsl", "keras.src", "tensorflow.compiler")


def _private_uses(name: str, tree) -> list[str]:
    ours = {m.rpartition(".")[2] for m in MODULES} | {"records"}
    uses = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom | ast.Import):
            modules = [node.module or ""] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names]
            uses += [f"{name}:{node.lineno} import {m}" for m in modules if m.startswith(PRIVATE_MODULES)]
        elif (isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__")
              and ast.unparse(node.value) not in ("self", "cls", "super()", *ours)
              and ast.unparse(node.value).split(".")[0] != "np"):  # safe_pickle's allow-list names numpy's
            uses.append(f"{name}:{node.lineno} {ast.unparse(node)}")
    return uses


def test_private_keras_and_tensorflow_names_live_in_one_module():
    found = [use for name, tree in TREES.items() if name != "cnnbench.compat" for use in _private_uses(name, tree)]
    assert not found, found


@pytest.mark.parametrize("source, caught", [
    ("import keras\nmodel._symbolic_build(data_batch=x)\n", True),
    ("from tensorflow.python.grappler import tf_optimizer\n", True),
    ("self._cache = {}\nrecords._reject_constant\n", False),
])
def test_the_private_name_check_sees_what_it_should(source, caught):
    assert bool(_private_uses("example", ast.parse(source))) is caught


def test_the_task_check_sees_a_comparison():
    assert _task_names(ast.parse('("mnist", "transfer")').body[0].value) == ["mnist", "transfer"]
    assert not _task_names(ast.parse('"cifar"').body[0].value)
