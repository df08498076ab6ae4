"""The module import graph of gan_lib: dependencies point one way (see ARCHITECTURE.md).

Run it as a script to print the graph: ``python tests/test_architecture.py``.
Every import of a gan_lib module counts, wherever it stands: at the top, inside a function, or
under ``if TYPE_CHECKING:`` (an annotation-only import still ties the two modules together, and
is how a cycle hides). A module may import one of a lower layer or of its own; the second kind
is what can close a cycle, so the graph must have none.
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
    """{module: gan_lib modules it imports}, from the source files' syntax trees."""
    graph = {}
    for path in sorted(PACKAGE.glob("*.py")):
        deps = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):  # import gan_lib.x
                deps.update(alias.name.split(".")[1] for alias in node.names
                            if alias.name.startswith("gan_lib."))
            elif not isinstance(node, ast.ImportFrom):
                continue
            elif node.level == 1 and node.module:  # from .x import y
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


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as [a, b, ..., a], or None: a depth-first search that meets a module
    still on its own path.

    >>> find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}})
    ['a', 'b', 'c', 'a']
    >>> find_cycle({"a": {"b"}, "b": set()}) is None
    True
    """
    done: set[str] = set()
    path: list[str] = []

    def visit(module: str) -> list[str] | None:
        if module in path:
            return path[path.index(module):] + [module]
        if module in done:
            return None
        path.append(module)
        for dep in sorted(graph.get(module, ())):
            cycle = visit(dep)
            if cycle:
                return cycle
        path.pop()
        done.add(module)
        return None

    for module in sorted(graph):
        cycle = visit(module)
        if cycle:
            return cycle
    return None


def test_every_module_has_a_layer():
    missing = sorted(set(import_graph()) - set().union(*LAYERS))
    assert not missing, f"add {missing} to LAYERS in tests/test_architecture.py"


def test_dependencies_point_one_way():
    upward = [f"{m} imports {d}" for m, deps in import_graph().items() for d in deps
              if layer_of(d) > layer_of(m)]
    assert not upward, upward


def test_there_is_no_import_cycle():
    cycle = find_cycle(import_graph())
    assert cycle is None, (
        f"import cycle: {' -> '.join(cycle)}. Move what the lower module needs down into it "
        "or into a module below both (TYPE_CHECKING imports count too)")


def test_scoring_never_imports_training():
    graph = import_graph()
    for module in ("inception", "metrics", "score_tables"):
        assert "train" not in graph[module], module


def test_the_checker_sees_upward_and_annotation_imports(tmp_path, monkeypatch):
    (tmp_path / "config.py").write_text("from . import train\n")
    (tmp_path / "train.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .metrics import x\n"
        "def f():\n    import gan_lib.io\n")
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", tmp_path)
    graph = import_graph()
    assert graph == {"config": {"train"}, "train": {"metrics", "io"}}
    assert layer_of("train") > layer_of("config")


def test_the_checker_names_a_cycle_between_modules_of_one_layer(tmp_path, monkeypatch):
    """The cycle this package once had: checkpoint annotated with train's class, train
    importing checkpoint; both are in one layer, so only the cycle test sees it."""
    (tmp_path / "checkpoint.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .train import Networks\n")
    (tmp_path / "train.py").write_text("from . import checkpoint, io\n")
    (tmp_path / "io.py").write_text("")
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", tmp_path)
    assert find_cycle(import_graph()) == ["checkpoint", "train", "checkpoint"]
    assert layer_of("checkpoint") == layer_of("train")


if __name__ == "__main__":
    graph = import_graph()
    print("module -> what it imports (* the same layer)")
    for module, deps in sorted(graph.items(), key=lambda kv: (layer_of(kv[0]), kv[0])):
        names = [d + "*" * (layer_of(d) == layer_of(module)) for d in sorted(deps)]
        print(f"{module:>14} -> {', '.join(names) or '-'}")
    print("import cycle:", " -> ".join(find_cycle(graph) or ["none"]))
