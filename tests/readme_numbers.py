"""Bind every result a README quotes to the field of the raw result file it comes from.

A number in a README is checked against ONE value: the field it is bound to, rounded to the
decimals the README prints. Swapping two columns, or printing a neighbour's value, fails.

Tables. Directly above a table (no blank line between), one HTML comment names the file and
binds each column, one line per group of body rows::

    <!-- numbers: benchmarks/results/bn_sampling_quick.json
    200, 400, 600: results[iteration={row},mode=eval].iteration | results[iteration={row},mode=eval].fid
    floor: - | floor.fid
    -->
    | iteration | FID |
    | ---: | ---: |
    | 200 | 302.0 |
    | 400 | 215.9 |
    | 600 | 160.0 |
    | floor | 3.9 |

The comment ends with ``-->`` on a line of its own. A binding line is
``KEYS: COLUMN | COLUMN | ...``, one COLUMN per table column. KEYS name the
body rows it covers, in order, separated by commas (``0..8`` is 0, 1, ..., 8); the lines
together name every body row once, top to bottom. In each COLUMN, ``{row}`` is replaced by the
row's key. A COLUMN is

- ``-``: a label or text, not checked (a cell there must not start with a number);
- an expression giving the cell's value: a path, or paths and numbers combined with
  ``+ - * /``, ``abs()``, ``min()``, ``max()`` (for a derived value, e.g. a difference);
- several expressions separated by ``;``, one per number of a cell such as ``0.936 ± 0.002``
  or ``267 / 1074``, left to right.

Paths: ``a.b`` is key b of a (b letters, digits and ``_``); ``a[some key]`` any other key
(spaces, dots, slashes); ``a[3]`` element 3 of a list; ``a[k=v,k2=v2]`` the element of a list
whose field k is v and k2 is v2; ``a[*]`` every element. Where a selector matches several
elements, or after ``[*]``, the rest of the path applies to each and arithmetic goes element
by element in file order; min() or max() must reduce them to the one number a cell shows:
``max(abs(results[mode=batch].fid - results[mode=recal-16].fid))``.

Prose. A paragraph that quotes results has ``<!-- numbers: FILE -->`` on the line directly
above it, and each quoted number is followed directly (after its unit or ``**``, if any) by
``<!-- n: EXPRESSION -->``::

    <!-- numbers: benchmarks/results/bn_sampling_paper.json -->
    The running averages score 0.45<!-- n: results[iteration=2000,mode=batch].fid - results[iteration=2000,mode=eval].fid -->
    FID lower ...

A binding may also name its file, ``<!-- n: benchmarks/results/x.json EXPRESSION -->``, for a
sentence that quotes another file than its paragraph's, or outside a marked paragraph.

Matching: a printed number equals its value rounded to the printed decimals (``114.4``
matches 114.43, not 114.3; ``7.9e-05`` two significant digits; a printed ``0`` only an exact
0); ``yes`` and ``no`` match true and false. Every numeric cell of a bound table must be bound.
A missing file, a path that resolves to nothing, a malformed binding and an ``n:`` comment
that names no file outside a marked paragraph are errors. Fast and offline: it reads files only.
"""

from __future__ import annotations

import ast
import json
import math
import operator
import re
from decimal import Decimal
from pathlib import Path

import numpy as np

RESULTS_DIR = "benchmarks/results/"
NUMBERS = re.compile(r"^\s*<!--\s*numbers:\s*(\S+)\s*(-->)?\s*$")
INLINE = re.compile(r"<!--\s*n:\s*(.*?)\s*-->")
NUMBER = r"[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:[eE][-+]?\d+)?"
UNIT = r"(?:x|×|%|s|ms|min|h|s/step|img/s|GFLOP|GFLOP/s|GiB|MiB|GB|MB)"
NUMERIC_CELL = re.compile(rf"^({NUMBER})\s*{UNIT}?$")
STARTS_NUMERIC = re.compile(r"^[~≈]?\s*[-+]?\.?\d")
JOINERS = re.compile(r"\s+(?:±|\+/-|/)\s+")
# the number just before an inline binding: not part of a word ("fid1024"), unit and ** allowed
NUMBER_BEFORE = re.compile(rf"(?<![\w.,])({NUMBER})\s?{UNIT}?[*_]*$")
PATH = re.compile(r"(?<![\w.\]])[A-Za-z_]\w*\b(?:\.\w+|\[[^\]]*\])*(?!\s*\()")
SEGMENT = re.compile(r"\.(\w+)|\[([^\]]*)\]")
OPERATORS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
             ast.Div: operator.truediv}
FUNCTIONS = {"abs": np.abs,  # min and max take numbers and many values alike: max(a, b[*].c)
             "min": lambda *a: np.min(np.concatenate([np.ravel(x) for x in a])),
             "max": lambda *a: np.max(np.concatenate([np.ravel(x) for x in a]))}


class BindingError(ValueError):
    """A binding that cannot be checked: bad syntax, a missing field, a value that is no number."""


# --- paths and expressions ----------------------------------------------------------------------


class Many(list):
    """The elements a ``[*]`` or a selector matching several elements gave (not a JSON list)."""


def same(value, text: str) -> bool:
    """A JSON value equals the text of a selector (``iteration=200``, ``mode=eval``)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            return float(text) == value
        except ValueError:
            return False
    return text in (str(value), json.dumps(value))


def step(node, key: str, bracket: bool):
    """One path segment: a dict key, a list index, ``*`` or (``k=v,...``) elements by field."""
    if isinstance(node, Many):
        return Many(step(n, key, bracket) for n in node)
    if bracket and key == "*":
        if not isinstance(node, list | dict):
            raise BindingError(f"[*] of a {type(node).__name__}")
        return Many(node.values() if isinstance(node, dict) else node)
    if bracket and "=" in key:
        if not isinstance(node, list):
            raise BindingError(f"[{key}] selects from a list, found {type(node).__name__}")
        conds = [c.split("=", 1) for c in key.split(",")]
        found = [e for e in node if isinstance(e, dict)
                 and all(k.strip() in e and same(e[k.strip()], v.strip()) for k, v in conds)]
        if not found:
            raise BindingError(f"[{key}] matches no element")
        return found[0] if len(found) == 1 else Many(found)
    if isinstance(node, list):
        if not key.isdigit() or int(key) >= len(node):
            raise BindingError(f"[{key}] is not an index of a list of {len(node)}")
        return node[int(key)]
    if isinstance(node, dict):
        if key not in node:
            raise BindingError(f"no key {key!r} (there are: {', '.join(map(str, node))[:200]})")
        return node[key]
    raise BindingError(f"{key!r} looked up in a {type(node).__name__}")


def resolve(doc, path: str):
    """The value at ``path`` in a JSON document (see the module docstring for the syntax)."""
    segments = list(SEGMENT.finditer("." + path))
    if "".join(m.group(0) for m in segments) != "." + path:
        raise BindingError(f"{path!r} is not a path")
    node = doc
    for m in segments:
        try:
            node = step(node, m.group(1) if m.group(2) is None else m.group(2), m.group(2) is not None)
        except BindingError as e:
            raise BindingError(f"{path}: {e}") from None
    return node


def evaluate(expression: str, doc):
    """The value of a binding: a path, or paths and numbers under + - * / abs min max.

    Several values (``[*]``, a selector matching several elements) are combined element by
    element, in file order, and must end in min() or max(): a cell shows one number.
    """
    values = {}

    def stash(m):
        values[f"_{len(values)}"] = resolve(doc, m.group(0))
        return f"_{len(values) - 1}"

    try:
        tree = ast.parse(PATH.sub(stash, expression.strip()), mode="eval").body
    except SyntaxError:
        raise BindingError(f"{expression!r} is not an expression") from None
    if isinstance(tree, ast.Name) and not isinstance(values[tree.id], Many):
        return values[tree.id]  # a bare path: a number or a boolean
    result = _arithmetic(tree, values, expression)
    if np.ndim(result) != 0:
        raise BindingError(f"{expression}: {np.size(result)} values, not one (use min or max)")
    return float(result)


def _arithmetic(node, values, expression):
    def ev(n):
        return _arithmetic(n, values, expression)

    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        return node.value
    if isinstance(node, ast.Name) and node.id in values:
        v = values[node.id]
        for x in v if isinstance(v, Many) else [v]:
            if isinstance(x, bool) or not isinstance(x, int | float):
                raise BindingError(f"{expression}: {x!r} is not a number")
        return np.array(v, dtype=float) if isinstance(v, Many) else v
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        return -ev(node.operand)
    if isinstance(node, ast.BinOp) and type(node.op) in OPERATORS:
        left, right = ev(node.left), ev(node.right)
        if np.ndim(left) and np.ndim(right) and np.shape(left) != np.shape(right):
            raise BindingError(f"{expression}: {np.size(left)} values against {np.size(right)}")
        return OPERATORS[type(node.op)](left, right)
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
            and node.func.id in FUNCTIONS and not node.keywords):
        return FUNCTIONS[node.func.id](*map(ev, node.args))
    raise BindingError(f"{expression}: only paths, numbers, + - * / and abs/min/max are allowed")


# --- printed numbers ----------------------------------------------------------------------------


def cell_numbers(cell: str) -> list[str]:
    """The printed numbers of a table cell ([] for a label); ValueError for a mixed cell."""
    text = plain(cell)
    if len(text) > 1 and text.startswith("`") and text.endswith("`"):
        return []  # code: a hash, a command, a path
    if not STARTS_NUMERIC.match(text):
        return []
    found = []
    for part in JOINERS.split(text):
        m = NUMERIC_CELL.match(part.strip())
        if m is None:
            raise ValueError(f"cell {cell.strip()!r} starts with a number but is not a plain "
                             "number (with an optional unit): its figures would not be checked")
        found.append(m.group(1))
    return found


def plain(text: str) -> str:
    """Cell text without emphasis, with a typographic minus made ASCII."""
    return text.strip().replace("\u2212", "-").replace("**", "").replace("__", "").strip("* ")


def rounds_to(printed: str, value) -> bool:
    """True if ``value`` rounded to the decimals ``printed`` shows is ``printed``.

    Half a unit of the printed precision either way counts (either rounding of a tie);
    ``0.00012`` has precision 1e-5, ``7.9e-05`` 1e-6, ``1,024`` 1. A printed zero has no
    significant digits and matches an exact zero only.
    """
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return False
    p = Decimal(printed.replace(",", ""))
    if p == 0:
        return value == 0
    half = Decimal(1).scaleb(p.as_tuple().exponent) / 2
    return abs(Decimal(value) - p) <= half


def check_value(printed_text: str, expressions: list[str], doc) -> str | None:
    """None if the printed text (a cell, or one prose number) equals its bound values."""
    text = plain(printed_text)
    try:
        if text in ("yes", "no"):
            value = evaluate(expressions[0], doc) if len(expressions) == 1 else None
            ok = isinstance(value, bool) and value == (text == "yes")
            return None if ok else f"{text!r} but {expressions[0]} is {value!r}"
        printed = cell_numbers(printed_text)
        if not printed:
            return f"{printed_text.strip()!r} is bound to {' ; '.join(expressions)} but shows no number"
        if len(printed) != len(expressions):
            return (f"{printed_text.strip()!r} shows {len(printed)} numbers, bound to "
                    f"{len(expressions)}")
        for p, e in zip(printed, expressions, strict=True):
            value = evaluate(e, doc)
            if not rounds_to(p, value):
                shown = f"{value:.6g}" if isinstance(value, float) else repr(value)
                return f"{p} but {e} is {shown}"
    except (BindingError, ValueError) as e:
        return str(e)
    return None


# --- the README ---------------------------------------------------------------------------------


def split_row(line: str) -> list[str]:
    return re.split(r"(?<!\\)\|", line.strip().strip("|"))


def parse_bindings(lines: list[str], n_columns: int) -> list[tuple[str, list[list[str] | None]]]:
    """(row key, per column: its expressions or None) for each body row, from binding lines."""
    rows = []
    for line in lines:
        keys, sep, columns = line.partition(":")
        if not sep:
            raise BindingError(f"{line.strip()!r} is not 'KEYS: COLUMN | COLUMN ...'")
        columns = [c.strip() for c in columns.split("|")]
        if len(columns) != n_columns:
            raise BindingError(f"{line.strip()[:60]!r}... binds {len(columns)} columns, the "
                               f"table has {n_columns}")
        for key in keys.split(","):
            key = key.strip()
            first, dots, last = key.partition("..")
            span = range(int(first), int(last) + 1) if dots else [key]
            for k in span:
                rows.append((str(k), [None if c == "-" else
                                      [e.replace("{row}", str(k)) for e in c.split(";")]
                                      for c in columns]))
    return rows


def check_table(block: list[str], binding_lines: list[str], doc,
                first_line: int = 1) -> tuple[int, list[str]]:
    """(cells checked, problems) of a table (starting at line ``first_line``) against its bindings."""
    if len(block) < 3 or not re.fullmatch(r"[\s|:\-]+", block[1]):
        return 0, ["the comment is not directly above a Markdown table (header, separator, rows)"]
    if not binding_lines:
        return 0, ["a table needs one binding per column ('KEYS: COLUMN | ...', see "
                   "tests/readme_numbers.py)"]
    n_columns = len(split_row(block[0]))
    try:
        bindings = parse_bindings(binding_lines, n_columns)
    except (BindingError, ValueError) as e:
        return 0, [str(e)]
    body = [split_row(line) for line in block[2:]]
    if len(bindings) != len(body):
        return 0, [f"the bindings name {len(bindings)} rows, the table has {len(body)}"]
    if any(len(cells) != n_columns for cells in body):
        return 0, ["a body row has another number of cells than the header"]
    checked, problems = 0, []
    for r, ((key, columns), cells) in enumerate(zip(bindings, body, strict=True)):
        for c, (cell, expressions) in enumerate(zip(cells, columns, strict=True)):
            where = f"line {first_line + 2 + r}, row {key!r}, column {c + 1}"
            if expressions is None:
                try:
                    unbound = cell_numbers(cell)
                except ValueError as e:
                    unbound, problems = [], [*problems, f"{where}: {e}"]
                if unbound:
                    problems.append(f"{where}: {cell.strip()!r} is a number in an unbound column")
            else:
                checked += 1
                if (problem := check_value(cell, expressions, doc)) is not None:
                    problems.append(f"{where}: {problem}")
    return checked, problems


def check_inline(line: str, m: re.Match, doc, root: Path) -> str | None:
    """None if the number before the inline binding ``m`` equals its value, else the problem.

    ``doc`` is the paragraph's file (None outside a marked paragraph); a binding that starts
    with a file name (``<!-- n: benchmarks/results/x.json path -->``) reads that file instead.
    """
    file, _, rest = m.group(1).partition(" ")
    expression = rest if file.endswith(".json") else m.group(1)
    before = NUMBER_BEFORE.search(line[:m.start()])
    if before is None:
        return f"<!-- n: {m.group(1)} --> does not follow a number"
    try:
        if file.endswith(".json"):
            doc = load(root, file)
        elif doc is None:
            return (f"<!-- n: {m.group(1)} --> names no file and is outside a paragraph marked "
                    "<!-- numbers: FILE -->: it would not be checked")
    except BindingError as e:
        return str(e)
    return check_value(before.group(1), [expression], doc)


def check_paragraph(block: list[str], doc, root: Path, first_line: int = 1) -> tuple[int, list[str]]:
    """(numbers checked, problems) of the numbers bound inline in lines of a README."""
    problems, bound = [], 0
    for k, line in enumerate(block):
        for m in INLINE.finditer(line):
            bound += 1
            if (problem := check_inline(line, m, doc, root)) is not None:
                problems.append(f"line {first_line + k}: {problem}")
    return bound, problems


def load(root: Path, name: str):
    if not (name.startswith(RESULTS_DIR) and name.endswith(".json")):
        raise BindingError(f"{name}: raw results live in {RESULTS_DIR}*.json")
    if not (root / name).is_file():
        raise BindingError(f"{name} does not exist (run its script with --json)")
    return json.loads((root / name).read_text(encoding="utf-8"))


def annotations(lines: list[str]):
    """(comment line, file, binding lines, first line of the block, block) of each numbers
    comment, or (line, None, [problem], 0, []) for a malformed one (1-based line numbers)."""
    i = 0
    while i < len(lines):
        m = NUMBERS.match(lines[i])
        if m is None:
            if "<!--" in lines[i] and "numbers:" in lines[i]:
                yield i + 1, None, [f"malformed numbers comment {lines[i].strip()!r}"], 0, []
            i += 1
            continue
        start, binding_lines = i + 1, []
        if m.group(2) is None:  # a multi-line comment: binding lines up to the closing -->
            i += 1
            while i < len(lines) and lines[i].strip() != "-->":
                binding_lines += [lines[i]] if lines[i].strip() else []
                i += 1
            if i == len(lines):
                yield start, None, ["the numbers comment is never closed by a '-->' line"], 0, []
                return
        i += 1
        block_line = i + 1
        while i < len(lines) and lines[i].strip():
            i += 1
        yield start, m.group(1), binding_lines, block_line, lines[block_line - 1:i]


def check_readme(text: str, root: Path) -> tuple[int, list[str]]:
    """(numbers checked, problems) of a README: every bound table, paragraph and number."""
    lines, problems, checked = text.splitlines(), [], 0
    marked = set()  # lines of marked paragraphs: their inline bindings are checked there
    for start, name, binding_lines, block_line, block in annotations(lines):
        if name is None:
            problems += [f"line {start}: {p}" for p in binding_lines]
            continue
        is_table = bool(block) and block[0].lstrip().startswith("|")
        if block and not is_table:
            marked.update(range(block_line - 1, block_line - 1 + len(block)))
        n, found = 0, []
        try:
            doc = load(root, name)
        except BindingError as e:
            found = [str(e)]
        else:
            if is_table:
                n, found = check_table(block, binding_lines, doc, block_line)
            elif block and not binding_lines:
                n, found = check_paragraph(block, doc, root, block_line)
                found += [] if n else ["a paragraph marked numbers: binds no number "
                                       "(<!-- n: ... -->)"]
            elif block:
                found = ["binding lines belong above a table; a paragraph takes "
                         "<!-- numbers: FILE --> and inline <!-- n: ... -->"]
            else:
                found = ["the comment is followed by a blank line, not by a table or paragraph"]
        checked += n
        problems += [f"{name} (comment at line {start}): {p}" for p in found]
    for k, line in enumerate(lines):  # bindings elsewhere must name their file
        if k not in marked:
            n, found = check_paragraph([line], None, root, k + 1)
            checked, problems = checked + n, problems + found
    return checked, problems
