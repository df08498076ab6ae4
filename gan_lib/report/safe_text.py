"""Text from users made inert where it lands: Markdown (and the HTML made from it), CSV cells.

Run names, data paths, class-folder names and reader ids are typed by people. In the report's
Markdown, ``<img src=x onerror=alert(1)>`` would become a live tag in report.html, ``[x](...)``
a link, ``|`` a shifted table cell; in a CSV, a reader id ``=HYPERLINK(...)`` is a formula to
a spreadsheet. :func:`markdown` escapes a string so that it shows as itself (markupsafe for the
HTML part, backslashes for Markdown's own syntax); :func:`csv_cell` neutralises a formula as
OWASP's CSV-injection advice says (a leading single quote).

Example:
    >>> print(markdown("<img src=x onerror=alert(1)> a|b [c](d)"))
    &lt;img src=x onerror=alert(1)&gt; a\\|b \\[c\\](d)
    >>> csv_cell('=HYPERLINK("http://x","y")'), csv_cell("-0.5"), csv_cell("bob")
    ('\\'=HYPERLINK("http://x","y")', '-0.5', 'bob')
"""

from __future__ import annotations

import re
from typing import Any

import markupsafe

# Markdown's inline syntax that Python-Markdown (and the tables extension) honour a backslash
# before: code, emphasis, links and images, table cells, and the backslash itself.
MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]|])")
# Cells a spreadsheet reads as a formula (OWASP "CSV Injection"): =, +, -, @, tab, CR first.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def markdown(value: Any) -> str:
    """``value`` as text that Markdown and the HTML made from it show as itself, on one line.

    Markup (markupsafe) passes unchanged: it is Markdown this package wrote on purpose.
    """
    if isinstance(value, markupsafe.Markup):
        return str(value)
    text = " ".join(str(value).splitlines())  # a line break would end a table row
    text = str(markupsafe.escape(text)).replace("&#39;", "'").replace("&#34;", '"')
    return MARKDOWN_SPECIAL.sub(r"\\\1", text)


def csv_cell(value: Any) -> Any:
    """``value``, with a leading single quote when a spreadsheet would run it as a formula.

    Numbers, and text that is a plain number ("-0.5"), are left alone: they are no formulas.
    """
    if not isinstance(value, str) or not value.startswith(FORMULA_START):
        return value
    try:
        float(value)
    except ValueError:
        return "'" + value
    return value


__all__ = ["markdown", "csv_cell", "MARKDOWN_SPECIAL", "FORMULA_START"]
