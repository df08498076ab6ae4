"""Hostile text: run names, data paths and reader ids never become HTML, links, table cells or
spreadsheet formulas in the report, its tables or its CSVs."""

from __future__ import annotations

import base64
import re
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest

from gan_lib import config, storage
from gan_lib.report import reader_study, safe_text
from gan_lib.report import render as report_render
from gan_lib.studies import quiz
from tests.test_quiz import N, built, tiny_run, truth, write_answers  # noqa: F401 (fixtures)

EVIL = "<img src=x onerror=alert(1)>"


class Tags(HTMLParser):
    """Every start tag of a page with its attributes, and the cells of each table row."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.tables: list[list[int]] = []  # per table, the cell count of each row

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append(0)
        elif tag in ("td", "th"):
            self.tables[-1][-1] += 1


def render(home: Path, run_name: str, description: str) -> tuple[str, str]:
    """(report.md, report.html) of a minimal run folder, as tests/test_quiz.py renders it."""
    run_dir = home / "runs" / run_name
    cfg = config.make_train_config("smoke", name=run_name)
    storage.write_json(run_dir / "config.json", {"config": cfg.to_dict(), "data": {
        "source": description, "description": description, "kind": "kermany",
        "fingerprint": "f", "n_images": 256, "is_synthetic": False}, "versions": {"torch": "x"},
        "git_commit": None, "device": "cpu", "precision": "fp32"})
    report_render.render_report(home / "reports", run_dir, "smoke", [])
    return ((home / "reports" / "report.md").read_text(),
            (home / "reports" / "report.html").read_text())


def test_hostile_run_names_paths_and_reader_ids_stay_text(built, home, tmp_path):  # noqa: F811
    page, key = built
    local = tmp_path / "private.png"  # a file a reader id must never pull into the report
    local.write_bytes(b"\x89PNG\r\n\x1a\nsecret-bytes-of-a-local-file")
    readers = [f'<img src="{local}">', "a|b|c", "[x](javascript:alert(1))", EVIL]
    for k, reader in enumerate(readers):
        write_answers(page.parent / "answers" / f"{k}.csv", key, reader, truth(key))
    reader_study.score_answers(quiz.answer_files())
    md, html = render(home, EVIL, f"Kermany chest X-ray folder /data/{EVIL}/chest_xray")
    tags = Tags()
    tags.feed(html)
    images = [attrs for tag, attrs in tags.tags if tag == "img"]
    assert images and all(a["src"].startswith("data:image/png;base64,") for a in images)
    assert len(images) == md.count("](figures/")  # the report's own figures, no other <img
    assert not any(name.startswith("on") for _, attrs in tags.tags for name in attrs)
    assert not any(a.get("href", "").startswith("javascript") for t, a in tags.tags if t == "a")
    assert base64.b64encode(local.read_bytes()).decode() not in html
    # no table row gains a cell (a '|' in a reader id would shift its row)
    assert all(len(set(rows)) == 1 for rows in tags.tables), tags.tables
    assert any(len(rows) == 6 for rows in tags.tables)  # the reader table: 4 readers + pooled
    assert EVIL not in md and safe_text.markdown(EVIL) in md  # shown, as text
    assert html.count("&lt;img src=x onerror=alert(1)&gt;") >= 3  # run, path, reader id
    # and should a tag reach the HTML, only the report's own figures are ever inlined
    reports = home / "reports"
    for src in (str(local), f"figures/../../{local.name}", "figures/missing.png"):
        assert report_render._embed_images(f'<img src="{src}">', reports) == f'<img src="{src}">'


@pytest.mark.filterwarnings("ignore:Glyph 9")  # the tab of a reader id, in the figure
def test_formula_reader_ids_are_neutralised_in_the_csv(built, home):  # noqa: F811
    page, key = built
    ids = ['=HYPERLINK("http://evil.example","open me")', "+1+cmd", "-2+3", "@SUM(A1)",
           "\t=1", "plain"]
    for k, reader in enumerate(ids):
        write_answers(page.parent / "answers" / f"{k}.csv", key, reader, truth(key))
    result = reader_study.score_answers(quiz.answer_files())
    saved = pd.read_csv(result["files"][0].with_suffix(".csv"), keep_default_na=False)
    shown = set(saved["reader"]) - {"pooled"}
    assert shown == {"'" + r for r in ids[:-1]} | {"plain"}
    assert set(result["table"]["reader"]) - {"pooled"} == set(ids)  # the table itself as typed


@pytest.mark.parametrize(("text", "expected"), [
    ("a|b", "a\\|b"), ("*bold* _x_", "\\*bold\\* \\_x\\_"), ("`code`", "\\`code\\`"),
    ("![i](/etc/passwd.png)", "!\\[i\\](/etc/passwd.png)"), ("a & b", "a &amp; b"),
    ("line\nbreak", "line break"), ("it's \"q\"", "it's \"q\""), (3.5, "3.5"),
])
def test_markdown_escape_shows_text_as_itself(text, expected):
    assert safe_text.markdown(text) == expected


def test_run_names_in_code_spans_show_as_typed_and_skipped_files_are_listed(home):
    """`real\\_quick\\_s0` showed its backslashes inside the code span, and a `<` showed as
    `&amp;lt;` (escaped for Markdown, then again by Markdown); the skipped files' reasons were
    only in notebook 01's output."""
    from gan_lib.gan import run_folder

    root = home / "xray"
    ds = type("Data", (), {"source": str(root), "description": "Kermany chest X-ray folder xray",
                           "kind": "kermany", "fingerprint": "f", "is_synthetic": False,
                           "skipped": [(str(root / "train" / "NORMAL" / "thin.png"),
                                        "100000 x 1 px: a side under 8 px holds no radiograph"),
                                       ("/elsewhere/odd<b>.png", "not an image")]})()
    record = run_folder.describe_data(ds, 256)
    assert record["n_skipped"] == 2 and record["skipped"] == [
        ["train/NORMAL/thin.png", "100000 x 1 px: a side under 8 px holds no radiograph"],
        ["odd<b>.png", "not an image"]]  # relative to the data folder: no local path
    for name in ("real_quick_s0", "a<b_c"):
        run_dir = home / "runs" / name
        cfg = config.make_train_config("smoke", name=name)
        storage.write_json(run_dir / "config.json", {
            "config": cfg.to_dict(), "data": record, "versions": {"torch": "x"},
            "git_commit": None, "device": "cpu", "precision": "fp32"})
        report_render.render_report(home / "reports", run_dir, "smoke", [])
        md = (home / "reports" / "report.md").read_text()
        html = (home / "reports" / "report.html").read_text()
        assert "&amp;lt;" not in html and "\\" not in "".join(re.findall("<code>.*?</code>", html))
        assert f"run <strong>{name.replace('<', '&lt;')}</strong>" in html
        assert ("<li>train/NORMAL/thin.png: 100000 x 1 px: a side under 8 px holds no "
                "radiograph</li>") in html
        assert "<li>odd&lt;b&gt;.png: not an image</li>" in html
        assert "> - train/NORMAL/thin.png: 100000 x 1 px" in md
        assert str(root) not in md

