"""Every number in a README results table comes from a committed raw result file.

A table whose numbers come from a file has, on the line just above it, a comment naming it:

    <!-- numbers: benchmarks/results/train_throughput.json -->
    | contestant | img/s | vs reference |
    | --- | ---: | ---: |
    | gan_lib, bf16 | 114.4 | 2.40x |

Each numeric cell of its body (header row excluded) must equal a numeric leaf of that JSON file
(any depth) rounded to the decimals the cell prints: ``114.4`` matches 114.43 but not 114.3 or
74.9; ``0.00012`` matches 0.000118 but not 0.0001; ``7.9e-05`` is read at its two significant
digits; a printed ``0`` matches only an exact 0. Integers (iterations, batch sizes) must be in
the file too. A numeric cell is a number with optional ``**``, thousands commas and a unit
(``x``, ``%``, ``s``, ``img/s``, ...); several numbers joined by `` ± `` or `` / `` are each
checked. A cell that starts with a number but is not one of those is an error (its number would
escape the check); cells wholly in backticks and label cells are not checked, so keep measured
numbers out of labels. Fast and offline: it reads files only.
"""

from __future__ import annotations

import json
import math
import re
from decimal import Decimal
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
READMES = ("README.md", "benchmarks/README.md")
RESULTS_DIR = "benchmarks/results/"
COMMENT = re.compile(r"^\s*<!--\s*numbers:\s*(\S+)\s*-->\s*$")
NUMBER = r"[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:[eE][-+]?\d+)?"
UNIT = r"(?:x|×|%|s|ms|min|h|s/step|img/s|GFLOP|GFLOP/s|GiB|MiB|GB|MB)"
NUMERIC_CELL = re.compile(rf"^({NUMBER})\s*{UNIT}?$")
STARTS_NUMERIC = re.compile(r"^[~≈]?\s*[-+]?\.?\d")
JOINERS = re.compile(r"\s+(?:±|\+/-|/)\s+")


# --- the pieces ---------------------------------------------------------------------------------


def numeric_leaves(obj) -> list[float]:
    """Every finite int/float in a JSON document, at any depth (booleans are not numbers)."""
    if isinstance(obj, bool):
        return []
    if isinstance(obj, int | float):
        return [obj] if math.isfinite(obj) else []
    if isinstance(obj, dict):
        obj = list(obj.values())
    if isinstance(obj, list):
        return [x for item in obj for x in numeric_leaves(item)]
    return []


def cell_numbers(cell: str) -> list[str]:
    """The printed numbers of a table cell ([] for a label); ValueError for a mixed cell."""
    text = cell.strip().replace("\u2212", "-")  # a typographic minus
    if len(text) > 1 and text.startswith("`") and text.endswith("`"):
        return []  # code: a hash, a command, a path
    text = text.replace("**", "").replace("__", "").strip("* ").strip()
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


def matches(printed: str, values: list[float]) -> bool:
    """True if some value, rounded to the decimals ``printed`` shows, is ``printed``.

    The precision is that of the printed text itself (``0.00012``: 1e-5; ``7.9e-05``: 1e-6;
    ``1,024``: 1); half a unit of it either way counts (either rounding of a tie). A printed
    zero has no significant digits and matches an exact zero only.
    """
    p = Decimal(printed.replace(",", ""))
    if p == 0:
        return any(v == 0 for v in values)
    half = Decimal(1).scaleb(p.as_tuple().exponent) / 2
    return any(abs(Decimal(v) - p) <= half for v in values)


def numbered_tables(text: str) -> list[tuple[int, str, list[list[str]]]]:
    """(line of the comment, file it names, body rows as cells) of each marked table."""
    lines = text.splitlines()
    tables = []
    for i, line in enumerate(lines):
        m = COMMENT.match(line)
        if m is None:
            continue
        j = i + 1
        block = []
        while j < len(lines) and lines[j].lstrip().startswith("|"):
            block.append(lines[j])
            j += 1
        if len(block) < 3 or not re.fullmatch(r"[\s|:\-]+", block[1]):
            raise ValueError(f"line {i + 1}: {line.strip()} is not directly above a Markdown "
                             "table (header, separator, at least one row)")
        rows = [[c for c in re.split(r"(?<!\\)\|", row.strip().strip("|"))] for row in block[2:]]
        tables.append((i + 1, m.group(1), rows))
    return tables


def stray_numbers(rows: list[list[str]], values: list[float]) -> tuple[int, list[str]]:
    """(how many numeric cells were checked, the printed numbers not found in ``values``)."""
    checked, missing = 0, []
    for row in rows:
        for cell in row:
            for printed in cell_numbers(cell):
                checked += 1
                if not matches(printed, values):
                    missing.append(f"{printed} (row {row[0].strip()!r})")
    return checked, missing


# --- the READMEs --------------------------------------------------------------------------------


@pytest.mark.parametrize("readme", READMES)
def test_readme_tables_match_their_result_files(readme):
    tables = numbered_tables((ROOT / readme).read_text(encoding="utf-8"))
    assert tables, f"{readme} has no table marked <!-- numbers: {RESULTS_DIR}....json -->"
    problems = []
    for line, name, rows in tables:
        where = f"{readme}:{line} ({name})"
        assert name.startswith(RESULTS_DIR) and name.endswith(".json"), (
            f"{where}: raw results live in {RESULTS_DIR}*.json")
        path = ROOT / name
        assert path.is_file(), f"{where}: the file does not exist (run the script with --json)"
        values = numeric_leaves(json.loads(path.read_text(encoding="utf-8")))
        checked, missing = stray_numbers(rows, values)
        assert checked, f"{where}: the table has no numeric cell"
        problems += [f"{where}: {m} is in no value of the file" for m in missing]
    assert not problems, "\n".join(problems)


# --- the matching itself ------------------------------------------------------------------------


def test_matches_at_the_printed_precision():
    values = [114.43, 0.000118, 7.87e-05, 416.002422, 1024, 2.4049]
    assert matches("114.4", values)
    assert matches("114", values)  # 114.43 printed without decimals
    assert matches("2.40", values) and matches("2.4", values)
    assert matches("1,024", values)
    assert matches("416.002422", values)
    assert matches("0.00012", values)  # 0.000118 at five decimals
    assert matches("7.9e-05", values)  # two significant digits
    assert not matches("0.00011", values)
    assert not matches("0.0001", [0.00004, 0.00016])  # 0.0001 covers [0.00005, 0.00015]
    assert matches("0.0001", [0.000118])


def test_a_stale_or_unknown_number_fails():
    values = [73.2, 114.4, 2.4]
    assert not matches("74.9", values)  # a superseded run's figure
    assert not matches("114.3", values)
    assert not matches("2.41", values)  # more decimals than the value supports
    assert not matches("130", values)
    assert not matches("-114.4", values)


def test_small_values_and_zero():
    assert matches("0.5", [0.47]) and not matches("0.5", [0.44])
    assert matches("0.00", [0.0]) and matches("0", [0])
    assert not matches("0", [1e-5]) and not matches("0.000", [0.0004])  # no significant digit
    assert matches("0.0004", [0.0004])


def test_cells_and_leaves():
    assert cell_numbers("**2.40x**") == ["2.40"]
    assert cell_numbers(" 1,024 ") == ["1,024"]
    assert cell_numbers("12.9 s") == ["12.9"]
    assert cell_numbers("0.165 ± 0.012") == ["0.165", "0.012"]
    assert cell_numbers("gan_lib, bf16 autocast") == []
    assert cell_numbers("`3e5c75a1b89e`") == []
    assert cell_numbers("") == []
    for mixed in ("16.9 min: notebooks 01 10 s", "~1 h", "64x64"):
        with pytest.raises(ValueError):
            cell_numbers(mixed)
    doc = {"a": 1, "b": [2.5, {"c": -3}], "ok": True, "s": "7", "nan": float("nan")}
    assert sorted(numeric_leaves(doc)) == [-3, 1, 2.5]


def test_tables_are_found_only_under_their_comment(tmp_path):
    text = ("| a | b |\n| --- | --- |\n| x | 1 |\n\n"
            "<!-- numbers: benchmarks/results/t.json -->\n"
            "| what | value |\n| --- | ---: |\n| speed | **2.5x** |\n| n | 1,024 |\n")
    (line, name, rows), = numbered_tables(text)
    assert (line, name) == (5, "benchmarks/results/t.json")
    assert stray_numbers(rows, [2.5, 1024]) == (2, [])
    assert stray_numbers(rows, [2.5, 1000])[1] == ["1,024 (row 'n')"]
    with pytest.raises(ValueError, match="not directly above"):
        numbered_tables("<!-- numbers: benchmarks/results/t.json -->\n\n| a |\n| --- |\n| 1 |\n")
