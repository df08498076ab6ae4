"""report.pdf's printing, with a stand-in browser (the real one prints in tests/test_report.py):
the command it is given, a fresh profile each time, whole-or-nothing output, clear failures."""

from __future__ import annotations

import os
import stat

import pytest

from gan_lib.report import pdf, render

FAKE = """#!/bin/sh
# records its arguments and working folder, then writes what $FAKE_WRITES says to --print-to-pdf
printf '%s\\n' "$PWD" "$@" > "$FAKE_LOG"
for a in "$@"; do case "$a" in --print-to-pdf=*) out="${a#--print-to-pdf=}";; esac; done
[ -n "$FAKE_FAIL" ] && { echo "chromium: cannot open display" >&2; exit 3; }
printf '%s' "$FAKE_WRITES" > "$out"
"""


@pytest.fixture
def browser(tmp_path, monkeypatch):
    exe = tmp_path / "bin" / "chromium"
    exe.parent.mkdir()
    exe.write_text(FAKE)
    exe.chmod(exe.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("FAKE_LOG", str(tmp_path / "args.log"))
    monkeypatch.setenv("FAKE_WRITES", "%PDF-1.4 fake")
    monkeypatch.delenv("FAKE_FAIL", raising=False)
    monkeypatch.setenv("CHROME_BIN", str(exe))
    return exe


def test_prints_with_a_fresh_profile_from_the_reports_folder(browser, tmp_path):
    html = tmp_path / "reports" / "report.html"
    html.parent.mkdir()
    html.write_text("<html></html>")
    assert pdf.find_browser() == browser  # CHROME_BIN first
    out = pdf.print_pdf(html, html.parent / "report.pdf")
    assert out.read_bytes() == b"%PDF-1.4 fake"
    cwd, *args = (tmp_path / "args.log").read_text().splitlines()
    assert cwd == str(html.parent) and args[-1] == "report.html"  # no folder on the page's URL
    assert set(pdf.FLAGS) <= set(args)
    profile = next(a for a in args if a.startswith("--user-data-dir="))
    pdf.print_pdf(html, html.parent / "again.pdf")
    second = (tmp_path / "args.log").read_text()
    assert profile not in second  # a new profile every time, and it is gone afterwards
    assert not os.path.exists(profile.split("=", 1)[1])


@pytest.mark.parametrize(("fail", "writes", "match"), [
    ("1", "", r"exit code 3\): chromium: cannot open display"),
    ("", "not a pdf", "wrote no PDF"),
])
def test_a_failing_browser_says_why_and_leaves_no_pdf(browser, tmp_path, monkeypatch, fail,
                                                      writes, match):
    monkeypatch.setenv("FAKE_FAIL", fail)
    monkeypatch.setenv("FAKE_WRITES", writes)
    html = tmp_path / "report.html"
    html.write_text("<html></html>")
    (tmp_path / "report.pdf").write_bytes(b"%PDF- the previous one")
    with pytest.raises(RuntimeError, match=match):
        pdf.print_pdf(html, tmp_path / "report.pdf")
    assert (tmp_path / "report.pdf").read_bytes() == b"%PDF- the previous one"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".report.pdf")] == []


def test_no_browser_is_none_and_the_message_says_how_to_get_one(monkeypatch, tmp_path):
    monkeypatch.setenv("CHROME_BIN", "")
    monkeypatch.setenv("PATH", str(tmp_path))
    assert pdf.find_browser() is None
    assert pdf.print_pdf(tmp_path / "report.html", tmp_path / "report.pdf") is None
    assert "sudo apt-get install chromium" in pdf.HOW_TO_GET and "CHROME_BIN" in pdf.HOW_TO_GET


def test_a_broken_browser_costs_the_pdf_not_the_report(browser, home, monkeypatch):
    """render_report writes report.md and report.html, and says why there is no PDF."""
    from tests.test_quiz import minimal_run

    monkeypatch.setenv("FAKE_FAIL", "1")
    said = render.render_report(home / "reports", minimal_run(home), "smoke", [])
    assert said.startswith("no report.pdf:") and "cannot open display" in said
    assert (home / "reports" / "report.md").is_file() and (home / "reports" / "report.html").is_file()
    assert not (home / "reports" / "report.pdf").exists()
    assert "\n" not in said  # one line for the terminal
