"""The reader study's report artefacts: answer CSVs scored into its table and figure.

The quiz itself (page, key, answer checks) is :mod:`gan_lib.studies.quiz`; its statistics are
:mod:`gan_lib.studies.quiz_stats`. This module writes what the report shows of them, through
the artefact registry, for ``python -m gan_lib quiz-score`` and for the report whenever
``reports/quiz/answers/`` holds answers.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .. import config
from ..studies import quiz, quiz_stats
from . import artefacts


def score_answers(paths: list[str | os.PathLike], key_path: str | os.PathLike | None = None,
                  reports_dir: str | os.PathLike | None = None) -> dict[str, Any]:
    """Score answer CSVs against their key; write the reader-study table and figure.

    Returns {'table': DataFrame, 'caption': str, 'key': dict, 'files': [table .md, figure]}.
    """
    from . import plots  # matplotlib loads only when something is drawn

    key = quiz.read_key(key_path or quiz.default_key(paths))
    answers = quiz.read_answers(paths, key)
    table = quiz_stats.study_table(answers)
    caption = artefacts.caption("reader_study", table=table, key=key)
    reports_dir = Path(reports_dir or config.REPORTS_DIR)
    files = [artefacts.save("reader_study", table, reports_dir, caption)]
    fig = plots.plot_reader_study(table, quiz_stats.pooled_roc(answers), caption)
    files.append(artefacts.save("reader_study_figure", fig, reports_dir, caption))
    return {"table": table, "caption": caption, "key": key, "files": files}


__all__ = ["score_answers"]
