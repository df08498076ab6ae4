"""Report: every figure and table, and the pipeline that regenerates the whole report.

``artefacts`` is the one registry of report figures and tables (file, section, caption);
``plots`` draws them (matplotlib, imported only when something is drawn: ``from
gan_lib.report import plots``); ``pipeline`` runs notebooks 01-09 with papermill, reusing or
resuming the run; ``render`` writes ``reports/report.md``, ``report.html`` and (``pdf``, by
the system's headless Chromium) ``report.pdf`` from ``templates/report.md.j2``, its first page
from ``summary`` (what happened, each number read from the run's result files);
``reader_study`` scores the quiz answers into the report;
``safe_text`` makes user text inert in Markdown, HTML and CSV. This is the top of the
package: it may import every stage below, none imports it.
"""

from . import artefacts, pdf, pipeline, reader_study, render, safe_text, summary
from .pipeline import (
    PROTOCOLS_NOTEBOOK,
    NotebookFailed,
    build_report,
    run_notebooks,
    training_plan,
)
from .reader_study import score_answers
from .render import render_report

__all__ = ["artefacts", "pdf", "pipeline", "reader_study", "render", "safe_text", "summary",
           "build_report",
           "render_report", "run_notebooks", "training_plan", "NotebookFailed", "PROTOCOLS_NOTEBOOK",
           "score_answers"]
