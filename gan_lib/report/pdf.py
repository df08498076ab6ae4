"""report.pdf: report.html printed by the system's headless Chromium, A4 with page numbers.

The page layout is the HTML's print stylesheet (``render.PRINT_CSS``: A4, figures and table
rows never split, tables wrapped to the page width, "page N of M" in the footer through CSS
page-margin boxes), so the PDF is the same document as the HTML. Chromium runs headless with a
fresh profile in a temporary folder, no network services, and is given the file by a relative
path from its own working folder, so no folder of this machine reaches the PDF.

Where no Chromium is installed, :func:`print_pdf` returns None and :data:`HOW_TO_GET` says what
to do; the rest of the report is built regardless.

Example:
    >>> find_browser() is None or find_browser().name.startswith(("chrom", "google"))
    True
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from .. import storage

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run",
         "--no-default-browser-check", "--disable-extensions", "--no-pdf-header-footer")
TIMEOUT_S = 180  # a report of a dozen embedded figures prints in a few seconds
HOW_TO_GET = ("no report.pdf: Chromium was not found (looked for $CHROME_BIN, "
              f"{', '.join(BROWSERS)}). Install it (Debian/Ubuntu: sudo apt-get install "
              "chromium; or run sh .ci/ensure-browser), or set CHROME_BIN, then run make report "
              "again; report.md and report.html are complete without it.")


def find_browser() -> Path | None:
    """The Chromium to print with: $CHROME_BIN, else the first of :data:`BROWSERS` on PATH."""
    for name in (os.environ.get("CHROME_BIN", ""), *BROWSERS):
        found = shutil.which(name) if name else None
        if found:
            return Path(found)
    return None


def print_pdf(html: Path, pdf: Path, browser: Path | None = None) -> Path | None:
    """Print ``html`` to ``pdf`` (written whole or not at all); None when there is no browser.

    Raises RuntimeError with Chromium's own last words when it fails or writes no PDF.
    """
    browser = browser or find_browser()
    if browser is None:
        return None
    html, pdf = Path(html).resolve(), Path(pdf)
    with tempfile.TemporaryDirectory(prefix="cxr-gan-pdf-") as tmp:
        out = Path(tmp) / "report.pdf"
        cmd = [str(browser), *FLAGS, f"--user-data-dir={Path(tmp) / 'profile'}",
               f"--print-to-pdf={out}", html.name]
        try:
            done = subprocess.run(cmd, cwd=html.parent, capture_output=True, text=True,
                                  timeout=TIMEOUT_S, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            raise RuntimeError(f"{browser} did not print {html.name} within {TIMEOUT_S} s") from None
        if done.returncode != 0 or not out.is_file() or out.read_bytes()[:5] != b"%PDF-":
            tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-5:])
            raise RuntimeError(f"{browser} wrote no PDF of {html.name} (exit code "
                               f"{done.returncode}): {tail}")
        with storage.atomic_path(pdf) as part:  # whole or not at all
            shutil.copyfile(out, part)
    return pdf


__all__ = ["find_browser", "print_pdf", "HOW_TO_GET", "FLAGS", "BROWSERS"]
