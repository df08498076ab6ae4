"""The import graph of gan_lib: stages point one way, no module cycle (see ARCHITECTURE.md).

Run it as a script to print the graph: ``python tests/test_architecture.py``.
gan_lib is a few bottom modules (config, storage, device) and one subpackage per pipeline stage.
Every import of a gan_lib module counts, wherever it stands: at the top, inside a function, or
under ``if TYPE_CHECKING:`` (an annotation-only import still ties two modules together, and is
how a cycle hides), relative (``from ..gan import models``) or absolute. A module may import one
of its own stage or of a lower one; imports within a stage are what can close a cycle, so the
module graph must have none.

Two limits keep the files easy to change: no file of gan_lib is longer than
:data:`MAX_FILE_LINES`, and no comment or docstring quotes a benchmark figure (a speed ratio
such as "2.2x" or a rate in images per second): figures live in ``benchmarks/results/*.json``
and ``docs/``, and the code points at the file and field.
"""

from __future__ import annotations

import ast
import io
import re
import tokenize
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "gan_lib"

# Stages, lowest first: a module may import only modules of its own or a lower stage.
# "" is the bottom: the modules directly in gan_lib/ (config, storage, device).
STAGES = ["", "data", "scale", "gan", "metrics", "studies", "report", "__main__"]
MAX_TOP_ENTRIES = 12
MAX_FILE_LINES = 350  # STYLE.md: files stay under ~350 lines
# Files allowed over MAX_FILE_LINES for now, each with the change that brings it back under; an
# entry that is no longer needed fails too, so the list cannot outlive its reason.
OVER_LIMIT: dict[str, str] = {}  # a file allowed over the limit, and why
# A benchmark figure: a ratio written against its number ("0.77x", "3x") or a rate in images
# per second. "8 x 8" and "4x4" are shapes and "tensorflow1x" a name, not figures.
FIGURE = re.compile(r"(?<![\w.])\d+(?:\.\d+)?(?:x|×)(?!\w)|\d\s*(?:img|images?)/s\b"
                    r"|\d\s*images per second")


def module_name(path: Path, root: Path) -> str:
    """'gan.train' for gan_lib/gan/train.py, 'metrics' for gan_lib/metrics/__init__.py."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1] or ["__init__"]
    return ".".join(parts)


def _resolve(node: ast.ImportFrom, importer: str, is_package: bool) -> list[str]:
    """The gan_lib modules (dotted, without 'gan_lib.') an ImportFrom names."""
    if node.level == 0:
        if not (node.module or "").startswith("gan_lib"):
            return []
        base = node.module.split(".")[1:]
    else:
        here = importer.split(".") if importer != "__init__" else []
        if not is_package:
            here = here[:-1]  # a module's package
        base = here[:len(here) - (node.level - 1)] + (node.module.split(".") if node.module else [])
    # "from pkg import name": name may be a submodule; the caller keeps what exists
    return [".".join(base + [alias.name]) for alias in node.names] + [".".join(base)]


def import_graph(root: Path | None = None) -> dict[str, set[str]]:
    """{module: gan_lib modules it imports}, from the source files' syntax trees."""
    root = root or PACKAGE
    paths = sorted(p for p in root.rglob("*.py") if "__pycache__" not in p.parts)
    modules = {module_name(p, root) for p in paths}
    graph = {}
    for path in paths:
        name = module_name(path, root)
        deps = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):  # import gan_lib.x.y
                deps.update(alias.name.split(".", 1)[1] for alias in node.names
                            if alias.name.startswith("gan_lib."))
            elif isinstance(node, ast.ImportFrom):
                found = _resolve(node, name, path.name == "__init__.py")
                if not found:
                    continue
                named = [m for m in found[:-1] if m in modules]
                # "from ..gan import models" imports gan.models; "from ..gan import Generator"
                # imports the package gan (its __init__); "from . import x" in a package, x
                deps.update(named or [found[-1] or "__init__"])
        graph[name] = {d for d in deps if d in modules} - {name}
    return graph


def stage_of(module: str) -> int:
    """The stage index of a dotted module name ('gan.train' -> STAGES.index('gan'))."""
    first = module.split(".")[0]
    if "." not in module and first not in STAGES:
        first = ""  # config, storage, device, and gan_lib/__init__
    if first == "__init__":
        return len(STAGES)  # gan_lib/__init__ re-exports and sits above all
    return STAGES.index(first)


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


def package_graph(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """The module graph folded onto stages: {stage: stages it imports}."""
    name = [s or "bottom" for s in STAGES] + ["__init__"]
    folded: dict[str, set[str]] = {}
    for module, deps in graph.items():
        folded.setdefault(name[stage_of(module)], set()).update(
            name[stage_of(d)] for d in deps if stage_of(d) != stage_of(module))
    return folded


def test_every_module_belongs_to_a_stage():
    for module in import_graph():
        first = module.split(".")[0]
        assert "." not in module or first in STAGES, (
            f"gan_lib/{first}/ is not a stage: add it to STAGES in tests/test_architecture.py")


def test_dependencies_point_one_way():
    upward = [f"{m} imports {d}" for m, deps in import_graph().items() for d in deps
              if stage_of(d) > stage_of(m)]
    assert not upward, upward


def test_there_is_no_import_cycle():
    graph = import_graph()
    for what, g in (("module", graph), ("stage", package_graph(graph))):
        cycle = find_cycle(g)
        assert cycle is None, (
            f"{what} import cycle: {' -> '.join(cycle)}. Move what the lower module needs down "
            "into it or into a module below both (TYPE_CHECKING imports count too)")


def test_scoring_never_imports_training():
    graph = import_graph()
    for module in (m for m in graph if m.startswith("metrics")):
        assert "gan.train" not in graph[module], module


def line_counts(root: Path | None = None) -> dict[str, int]:
    """{path relative to gan_lib: number of lines} of every Python file."""
    root = root or PACKAGE
    return {p.relative_to(root).as_posix(): len(p.read_text(encoding="utf-8").splitlines())
            for p in sorted(root.rglob("*.py")) if "__pycache__" not in p.parts}


def quoted_figures(root: Path | None = None) -> list[str]:
    """'file:line: text' of every comment or docstring that quotes a benchmark figure.

    >>> import tempfile
    >>> root = Path(tempfile.mkdtemp())
    >>> _ = (root / "a.py").write_text("# 4x4 conv, 8 x 8 grid\\nx = 1  # ran 2.23x fp32\\n")
    >>> quoted_figures(root)
    ['a.py:2: # ran 2.23x fp32']
    """
    root = root or PACKAGE
    found = []
    for path in sorted(root.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        name = path.relative_to(root).as_posix()
        for tok in tokenize.generate_tokens(io.StringIO(text).readline):
            if tok.type == tokenize.COMMENT and FIGURE.search(tok.string):
                found.append(f"{name}:{tok.start[0]}: {tok.string.strip()}")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef,
                                 ast.AsyncFunctionDef)) and ast.get_docstring(node):
                doc = node.body[0]
                for i, line in enumerate(ast.get_docstring(node, clean=False).splitlines()):
                    if FIGURE.search(line):
                        found.append(f"{name}:{doc.lineno + i}: {line.strip()}")
    return found


def test_files_stay_short():
    counts = line_counts()
    long = {f: n for f, n in counts.items() if n > MAX_FILE_LINES and f not in OVER_LIMIT}
    assert not long, (
        f"gan_lib files over {MAX_FILE_LINES} lines: {long}. Split the file by job (one job per "
        "file; see ARCHITECTURE.md's module table)")
    stale = [f for f in OVER_LIMIT if counts.get(f, 0) <= MAX_FILE_LINES]
    assert not stale, f"{stale} are back under {MAX_FILE_LINES} lines: remove them from OVER_LIMIT"


def test_no_comment_quotes_a_benchmark_figure():
    found = quoted_figures()
    assert not found, (
        "comments or docstrings quote benchmark figures, which a re-run makes false: "
        + "; ".join(found) + " -- keep the rule and point at the file and field instead "
        "(e.g. precision_quality.json: speed.bf16_over_fp32)")


def test_the_checker_sees_a_long_file_and_a_quoted_figure(tmp_path):
    root = _write(tmp_path, {
        "long.py": "x = 1\n" * (MAX_FILE_LINES + 1),
        "ok.py": '"""Conv 4x4, grid 8 x 8, resize_tensorflow1x, 64 px."""\n',
        "doc.py": 'def f():\n    """Extraction runs at 11.6 img/s here."""\n',
        "ratio.py": "y = 2  # bf16 is 3.0x fp32\n"})
    assert line_counts(root)["long.py"] == MAX_FILE_LINES + 1
    assert quoted_figures(root) == ["doc.py:2: Extraction runs at 11.6 img/s here.",
                                    "ratio.py:1: # bf16 is 3.0x fp32"]


def test_the_top_of_the_package_stays_small():
    entries = sorted(p.name for p in PACKAGE.iterdir() if p.name != "__pycache__")
    assert len(entries) <= MAX_TOP_ENTRIES, (
        f"gan_lib/ has {len(entries)} entries ({entries}): at most {MAX_TOP_ENTRIES}; put a new "
        "module in the subpackage of its pipeline stage")


def test_every_subpackage_says_its_job_and_exports_its_names():
    for init in sorted(PACKAGE.glob("*/__init__.py")):
        tree = ast.parse(init.read_text(encoding="utf-8"))
        assert ast.get_docstring(tree), f"{init}: say the stage's job in a docstring"
        assert any(isinstance(n, ast.Assign) and any(getattr(t, "id", "") == "__all__"
                                                     for t in n.targets) for n in tree.body), (
            f"{init}: list the public names in __all__")


def _write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def test_the_checker_sees_upward_annotation_and_relative_imports(tmp_path):
    root = _write(tmp_path, {
        "config.py": "from .gan import train\n",
        "gan/__init__.py": "",
        "gan/train.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                        "    from ..metrics.scoring import x\n"
                        "def f():\n    import gan_lib.storage\n    from . import trainable\n",
        "gan/trainable.py": "from ..metrics import Extractor\n",
        "metrics/__init__.py": "", "metrics/scoring.py": "", "storage.py": ""})
    graph = import_graph(root)
    assert graph["config"] == {"gan.train"}
    assert graph["gan.train"] == {"metrics.scoring", "storage", "gan.trainable"}
    assert graph["gan.trainable"] == {"metrics"}
    assert stage_of("gan.train") > stage_of("config")
    assert stage_of("metrics.scoring") > stage_of("gan.train")


def test_the_checker_names_a_cycle_within_a_stage(tmp_path):
    """The cycle this package once had: checkpoint annotated with train's class, train
    importing checkpoint; both are in one stage, so only the cycle test sees it."""
    root = _write(tmp_path, {
        "gan/__init__.py": "",
        "gan/checkpoint.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                             "    from .train import Networks\n",
        "gan/train.py": "from . import checkpoint\nfrom .. import storage\n", "storage.py": ""})
    assert find_cycle(import_graph(root)) == ["gan.checkpoint", "gan.train", "gan.checkpoint"]


if __name__ == "__main__":
    graph = import_graph()
    print("module -> what it imports (* the same stage)")
    for module, deps in sorted(graph.items(), key=lambda kv: (stage_of(kv[0]), kv[0])):
        names = [d + "*" * (stage_of(d) == stage_of(module)) for d in sorted(deps)]
        print(f"{module:>22} -> {', '.join(names) or '-'}")
    for stage, deps in package_graph(graph).items():
        print(f"stage {stage:>9} -> {', '.join(sorted(deps)) or '-'}")
    print("import cycle:", " -> ".join(find_cycle(graph) or ["none"]))
    longest = sorted(line_counts().items(), key=lambda kv: -kv[1])[:5]
    print(f"longest files (limit {MAX_FILE_LINES}):", ", ".join(f"{f} {n}" for f, n in longest))
    print("comments quoting a benchmark figure:", quoted_figures() or "none")
