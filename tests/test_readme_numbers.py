"""Every result a README or docs/ page quotes equals the field of a committed result file it is
bound to.

The binding syntax is in tests/readme_numbers.py. These tests check README.md,
benchmarks/README.md and every docs/*.md page, the README's length and links, then the checker
itself on constructed snippets: each kind of wrong number must fail.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.readme_numbers import (
    BindingError,
    cell_numbers,
    check_readme,
    evaluate,
    resolve,
    rounds_to,
)

ROOT = Path(__file__).resolve().parents[1]

README_MAX_LINES = 250  # a front door, not the manual (issue 25): the rest lives in docs/


def documents() -> list[str]:
    """Every Markdown file whose numbers are checked: the READMEs and each docs/ page."""
    return ["README.md", "benchmarks/README.md",
            *sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "docs").glob("*.md"))]


@pytest.mark.parametrize("document", documents())
def test_numbers_equal_their_fields(document):
    checked, problems = check_readme((ROOT / document).read_text(encoding="utf-8"), ROOT)
    assert not problems, f"{document}:\n" + "\n".join(problems)


def test_the_quoted_results_are_bound():
    """The README's headline tables and the docs pages together bind the published numbers."""
    checked = {d: check_readme((ROOT / d).read_text(encoding="utf-8"), ROOT)[0] for d in documents()}
    assert len([d for d in checked if d.startswith("docs/")]) >= 10, checked  # one per capability
    assert checked["README.md"] > 30, checked
    assert sum(checked[d] for d in checked if d.startswith("docs/")) > 300, checked


def test_the_readme_is_short_and_its_docs_links_resolve():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(text.splitlines()) <= README_MAX_LINES
    links = re.findall(r"\]\((docs/[^)#\s]+)(?:#[^)]*)?\)", text)
    assert len(links) >= 10, links  # one page per capability
    missing = [link for link in links if not (ROOT / link).is_file()]
    assert not missing, f"README.md links to docs pages that do not exist: {missing}"


def anchor(heading: str) -> str:
    """GitHub's anchor of a Markdown heading: lower case, punctuation dropped, spaces to '-'."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_relative_links_and_anchors_resolve():
    """Every relative link of the READMEs and docs/ pages names a file, and an anchor a heading."""
    broken = []
    for document in documents():
        here = (ROOT / document).parent
        for target, _, fragment in re.findall(r"\]\(([^)#\s:]*)(#([^)\s]*))?\)",
                                               (ROOT / document).read_text(encoding="utf-8")):
            file = (here / target).resolve() if target else ROOT / document
            if not file.exists():
                broken.append(f"{document}: {target}")
            elif fragment and file.suffix == ".md":
                headings = re.findall(r"^#+ (.+)$", file.read_text(encoding="utf-8"), re.M)
                if fragment not in {anchor(h) for h in headings}:
                    broken.append(f"{document}: {target}#{fragment}")
    assert not broken, broken


def test_a_docs_page_with_a_wrong_number_fails():
    """A docs/ page is checked like the README: two swapped cells of a bound table fail."""
    text = (ROOT / "docs" / "audit.md").read_text(encoding="utf-8")
    assert check_readme(text, ROOT)[1] == []
    lines = text.splitlines()
    row = next(k for k, line in enumerate(lines) if line.startswith("| 0 |"))  # seed 0's audit
    cells = lines[row].strip("|").split("|")
    cells[-2], cells[-1] = cells[-1], cells[-2]  # C_T and FID_inf swapped
    lines[row] = "|" + "|".join(cells) + "|"
    problems = check_readme("\n".join(lines), ROOT)[1]
    assert len(problems) == 2 and all(f"line {row + 1}," in p for p in problems), problems


# --- a constructed README and result file -------------------------------------------------------

DOC = {"results": [{"iteration": 200, "mode": "eval", "fid": 302.03, "kid": 0.4890},
                   {"iteration": 200, "mode": "batch", "fid": 289.97, "kid": 0.4673},
                   {"iteration": 400, "mode": "eval", "fid": 215.86, "kid": 0.3145},
                   {"iteration": 400, "mode": "batch", "fid": 213.34, "kid": 0.3085}],
       "floor": {"fid": 3.8788, "kid": -1.2e-05},
       "ways": {"real + synthetic": {"auroc": {"mean": 0.9733, "sd": 0.0048}}},
       "better": True}

TABLE = """\
<!-- numbers: benchmarks/results/t.json
200, 400: results[iteration={row},mode=eval].iteration | results[iteration={row},mode=eval].fid | results[iteration={row},mode=batch].fid
floor: - | floor.fid | floor.fid
-->
| iteration | eval | batch |
| ---: | ---: | ---: |
| 200 | 302.0 | 290.0 |
| 400 | 215.9 | 213.3 |
| floor: held out | 3.9 | 3.9 |
"""

PROSE = """\
<!-- numbers: benchmarks/results/t.json -->
Running averages score 2.5<!-- n: results[iteration=400,mode=eval].fid - results[iteration=400,mode=batch].fid -->
FID higher at iteration 400 (**1.2%**<!-- n: 100 * (results[2].fid / results[3].fid - 1) -->).
"""


def check(tmp_path, text, doc=DOC):
    (tmp_path / "benchmarks" / "results").mkdir(parents=True, exist_ok=True)
    (tmp_path / "benchmarks" / "results" / "t.json").write_text(json.dumps(doc))
    return check_readme(text, tmp_path)


def test_a_correct_table_and_paragraph_pass(tmp_path):
    assert check(tmp_path, TABLE) == (8, [])
    assert check(tmp_path, PROSE) == (2, [])
    assert check(tmp_path, TABLE + "\n" + PROSE) == (10, [])


def swap_columns(table: str, a: int, b: int) -> str:
    out = []
    for line in table.splitlines():
        if line.startswith("|"):
            cells = line.strip("|").split("|")
            cells[a], cells[b] = cells[b], cells[a]
            line = "|" + "|".join(cells) + "|"
        out.append(line)
    return "\n".join(out) + "\n"


def test_swapped_columns_fail(tmp_path):
    """The old check (any value of the file) passed this: every number is still in the file."""
    _, problems = check(tmp_path, swap_columns(TABLE, 1, 2))
    assert len(problems) == 4, problems  # two rows x two columns; the floor row is the same
    assert any("302.0 but results[iteration=200,mode=batch].fid is 289.97" in p for p in problems)


def test_a_neighbours_value_or_a_stale_one_fails(tmp_path):
    _, problems = check(tmp_path, TABLE.replace("| 215.9 | 213.3 |", "| 213.3 | 213.3 |"))
    assert problems == ["benchmarks/results/t.json (comment at line 1): line 8, row '400', "
                        "column 2: 213.3 but results[iteration=400,mode=eval].fid is 215.86"]
    assert check(tmp_path, TABLE.replace("| 215.9 |", "| 215.8 |"))[1]  # a stale digit
    assert check(tmp_path, TABLE.replace("| 215.9 |", "| 215.90 |"))[1]  # finer than the value
    assert check(tmp_path, TABLE.replace("| 215.9 |", "| 216 |"))[1] == []  # coarser is fine


def test_swapped_rows_and_a_wrong_row_key_fail(tmp_path):
    lines = TABLE.splitlines()
    lines[6], lines[7] = lines[7], lines[6]
    assert len(check(tmp_path, "\n".join(lines))[1]) == 6
    # a key that selects nothing is an error, not a skipped row
    bad = TABLE.replace("200, 400:", "200, 500:")
    assert any("matches no element" in p for p in check(tmp_path, bad)[1])


def test_wrong_prose_numbers_fail(tmp_path):
    _, problems = check(tmp_path, PROSE.replace("2.5<!--", "3.5<!--"))
    assert len(problems) == 1 and problems[0].endswith("is 2.52")
    assert check(tmp_path, PROSE.replace("1.2%", "1.3%"))[1]
    # a number that is bound but has no value in the file fails; so does a comment after text
    assert check(tmp_path, PROSE.replace("results[2].fid /", "results[7].fid /"))[1]
    assert "does not follow a number" in check(tmp_path, PROSE.replace("2.5<!--", "2.5 FID<!--"))[1][0]


def test_missing_files_and_paths_fail(tmp_path):
    missing = TABLE.replace("t.json", "gone.json")
    assert "does not exist" in check(tmp_path, missing)[1][0]
    problems = check(tmp_path, PROSE.replace("t.json", "gone.json"))[1]
    assert len(problems) == 1 and "does not exist" in problems[0]  # said once, for the paragraph
    assert "raw results live in" in check(tmp_path, TABLE.replace("benchmarks/results/", ""))[1][0]
    typo = TABLE.replace("floor.fid | floor.fid", "floor.fid | floor.fdi")
    assert "no key 'fdi'" in check(tmp_path, typo)[1][0]


def test_malformed_annotations_fail(tmp_path):
    header_only = "<!-- numbers: benchmarks/results/t.json -->\n" + TABLE.split("-->\n", 1)[1]
    assert "needs one binding per column" in check(tmp_path, header_only)[1][0]
    too_few = TABLE.replace("| floor.fid | floor.fid", "| floor.fid")
    assert "binds 2 columns, the table has 3" in check(tmp_path, too_few)[1][0]
    too_many_rows = TABLE.replace("200, 400:", "200, 400, 600:")
    assert "name 4 rows, the table has 3" in check(tmp_path, too_many_rows)[1][0]
    unbound = TABLE.replace("floor: - |", "floor: - |").replace("floor: held out", "7")
    assert "number in an unbound column" in check(tmp_path, unbound)[1][0]
    gap = TABLE.replace("-->\n|", "-->\n\n|")
    assert "followed by a blank line" in check(tmp_path, gap)[1][0]
    stray = "Some 3.9<!-- n: floor.fid --> here.\n"
    assert "outside a paragraph" in check(tmp_path, stray)[1][0]
    named = "Some 3.9<!-- n: benchmarks/results/t.json floor.fid --> here.\n"
    assert check(tmp_path, named) == (1, [])
    assert check(tmp_path, named.replace("3.9", "3.8"))[1]
    assert "never closed" in check(tmp_path, TABLE.replace("-->\n", ""))[1][0]


def test_multi_number_cells_and_booleans(tmp_path):
    text = ("<!-- numbers: benchmarks/results/t.json\n"
            "real + synthetic: - | ways[{row}].auroc.mean ; ways[{row}].auroc.sd | better\n"
            "-->\n| way | AUROC | better |\n| --- | ---: | --- |\n"
            "| real + synthetic | 0.973 ± 0.005 | yes |\n")
    assert check(tmp_path, text) == (2, [])
    assert check(tmp_path, text.replace("0.973 ± 0.005", "0.005 ± 0.973"))[1]
    assert check(tmp_path, text.replace("| yes |", "| no |"))[1]
    assert "shows 1 numbers, bound to 2" in check(tmp_path, text.replace(" ± 0.005", ""))[1][0]


# --- the pieces ---------------------------------------------------------------------------------


def test_paths_and_expressions():
    assert resolve(DOC, "results[iteration=400,mode=batch].fid") == 213.34
    assert resolve(DOC, "results[1].mode") == "batch"
    assert resolve(DOC, "ways[real + synthetic].auroc.sd") == 0.0048
    assert evaluate("results[0].fid - results[1].fid", DOC) == pytest.approx(12.06)
    assert evaluate("max(abs(results[0].fid - results[1].fid), 1)", DOC) == pytest.approx(12.06)
    assert evaluate("-floor.kid", DOC) == 1.2e-05
    assert evaluate("max(results[mode=eval].fid - results[mode=batch].fid)", DOC) == pytest.approx(12.06)
    assert evaluate("min(results[*].kid, floor.kid)", DOC) == -1.2e-05
    for bad, message in [("results[iteration=200].fid", "2 values, not one"),
                         ("results[mode=eval].fid - results[*].fid", "2 values against 4"),
                         ("results[mode=none].fid", "matches no element"),
                         ("results[9].fid", "not an index"), ("floor.fid.x", "looked up"),
                         ("results.fid", "is not an index"), ("floor.fid ** 2", "only paths"),
                         ("better + 1", "not a number"), ("floor..fid", "not an expression")]:
        with pytest.raises(BindingError, match=message):
            evaluate(bad, DOC)
    with pytest.raises(BindingError, match="not a path"):
        resolve(DOC, "floor..fid")


def test_matches_at_the_printed_precision():
    assert rounds_to("114.4", 114.43) and rounds_to("114", 114.43)
    assert rounds_to("2.40", 2.4049) and rounds_to("1,024", 1024)
    assert rounds_to("0.00012", 0.000118) and rounds_to("7.9e-05", 7.87e-05)
    assert not rounds_to("0.00011", 0.000118) and not rounds_to("114.3", 114.43)
    assert not rounds_to("2.41", 2.4049) and not rounds_to("-114.4", 114.43)
    assert rounds_to("0.5", 0.47) and not rounds_to("0.5", 0.44)
    assert rounds_to("0.00", 0.0) and not rounds_to("0", 1e-5) and not rounds_to("0.000", 0.0004)
    assert not rounds_to("1", True) and not rounds_to("1", float("nan"))


def test_cells():
    assert cell_numbers("**2.40x**") == ["2.40"]
    assert cell_numbers(" 1,024 ") == ["1,024"]
    assert cell_numbers("12.9 s") == ["12.9"]
    assert cell_numbers("0.165 ± 0.012") == ["0.165", "0.012"]
    assert cell_numbers("gan_lib, bf16 autocast") == []
    assert cell_numbers("`3e5c75a1b89e`") == []
    assert cell_numbers("") == [] and cell_numbers("-") == []
    for mixed in ("16.9 min: notebooks 01 10 s", "~1 h", "64x64"):
        with pytest.raises(ValueError):
            cell_numbers(mixed)
