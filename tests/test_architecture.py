"""The module import graph of gan_lib: dependencies point one way (see ARCHITECTURE.md).

Run it as a script to print the graph: ``python tests/test_architecture.py``.
Imports under ``if TYPE_CHECKING:`` are annotations only and do not count.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "gan_lib"

# Layers, lowest first: a module may import only modules of its own or a lower layer.
LAYERS = [
    {"config", "io", "safe_text"},
    {"device", "distributed", "frechet", "runlock"},
    {"imagefile", "phantom", "pneumoniamnist", "data", "models", "nets", "grids", "batches",
     "augment", "classifier", "quiz_page"},
    {"checkpoint", "runinfo", "run_state", "milestones", "train", "inception"},
    {"features", "launch"},
    {"metrics"},
    {"score_tables", "plots", "audit", "quiz_stats", "utility", "protocols"},
    {"artefacts", "quiz"},
    {"report"},
    {"__main__", "__init__"},
]


def import_graph() -> dict[str, set[str]]:
    """{module: gan_lib modules it imports at run time}, from the source files' syntax trees."""
    graph = {}
    for path in sorted(PACKAGE.glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        skip = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If)
                and ast.unparse(node.test) in ("TYPE_CHECKING", "typing.TYPE_CHECKING")
                for n in ast.walk(node)}
        deps = set()
        for node in ast.walk(tree):
            if id(node) in skip or not isinstance(node, ast.ImportFrom):
                continue
            if node.level == 1 and node.module:  # from .x import y
                deps.add(node.module.split(".")[0])
            elif node.level == 1:  # from . import x, y
                deps.update(alias.name for alias in node.names)
            elif node.module and node.module.startswith("gan_lib"):
                parts = node.module.split(".")
                deps.update([parts[1]] if len(parts) > 1 else [a.name for a in node.names])
        graph[path.stem] = deps - {path.stem}
    return graph


def layer_of(module: str) -> int:
    return next(i for i, layer in enumerate(LAYERS) if module in layer)


def test_every_module_has_a_layer():
    missing = sorted(set(import_graph()) - set().union(*LAYERS))
    assert not missing, f"add {missing} to LAYERS in tests/test_architecture.py"


def test_dependencies_point_one_way():
    upward = [f"{m} imports {d}" for m, deps in import_graph().items() for d in deps
              if layer_of(d) > layer_of(m)]
    assert not upward, upward


def test_scoring_never_imports_training():
    graph = import_graph()
    for module in ("inception", "metrics", "score_tables"):
        assert "train" not in graph[module], module


def test_the_checker_sees_an_upward_import(tmp_path, monkeypatch):
    (tmp_path / "config.py").write_text("from . import train\n")
    (tmp_path / "train.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .metrics import x\n")
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", tmp_path)
    graph = import_graph()
    assert graph == {"config": {"train"}, "train": set()}
    assert layer_of("train") > layer_of("config")


if __name__ == "__main__":
    for module, deps in sorted(import_graph().items(), key=lambda kv: (layer_of(kv[0]), kv[0])):
        print(f"{module:>14} -> {', '.join(sorted(deps)) or '-'}")
