"""Studies: what users of synthetic medical images ask beyond FID, each into its own file.

``audit`` measures fidelity and diversity (precision / recall / density / coverage), copying of
training images and FID's sample-size bias (``audit.json``); ``utility`` trains a small
pneumonia ``classifier`` on synthetic images and tests it on real ones (TSTR,
``utility.json``; ``utility_tables`` its verdicts, table and caption); ``protocols`` scores
the snapshots under the common FID protocols to show why published FIDs disagree
(``protocols.json``; ``protocol_verdicts`` places the original report's FIDs among them);
``recipe_comparison`` puts a recipe run beside its DCGAN twin (same data, length, seed,
scoring); ``quiz``, ``quiz_page`` and ``quiz_stats`` are the reader study: a real-or-fake page, its key
and the statistics of readers' answers.
They build on ``metrics`` and read runs from disk; drawing them is the report's job.
"""

from . import (
    audit,
    classifier,
    protocol_verdicts,
    protocols,
    quiz,
    quiz_page,
    quiz_stats,
    recipe_comparison,
    utility,
    utility_tables,
)
from .audit import audit_run
from .classifier import ClassifierConfig
from .protocols import score_protocols
from .quiz import build_quiz, read_answers, read_key
from .recipe_comparison import compare_with_dcgan
from .utility import utility_run

__all__ = ["audit", "utility", "utility_tables", "classifier", "protocols", "protocol_verdicts",
           "quiz", "quiz_page", "quiz_stats", "recipe_comparison",
           "audit_run", "compare_with_dcgan", "utility_run", "ClassifierConfig", "score_protocols", "build_quiz",
           "read_answers", "read_key"]
