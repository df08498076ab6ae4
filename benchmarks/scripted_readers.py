"""Scripted readers for a reader-study quiz: answers with a known skill, to try the analysis.

Writes one CSV per reader into the quiz's answers/ folder, in the page's own format. Reader k
is right with probability ``--skill`` (one value per reader), and says how sure it is with a
confidence that is higher when it is right, so the ROC AUC is above the accuracy's chance
level too. File and reader names start with ``scripted-``, so nobody takes them for people.

    .venv/bin/python benchmarks/scripted_readers.py reports/quiz --skill 0.85,0.6,0.5
    make report RUN=quick      # the report gains its "Reader study" section

Then ``rm reports/quiz/answers/scripted-*.csv`` removes them again.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np

from gan_lib.studies import quiz


def write_reader(key: dict, reader: str, skill: float, seed: int, out: Path) -> Path:
    """One scripted reader's answers CSV (the columns and line ends the page writes)."""
    rng = np.random.default_rng(seed)
    path = out / f"{reader}.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        w = csv.writer(f, lineterminator="\r\n")
        w.writerow(quiz.COLUMNS)
        for image in key["images"]:
            right = rng.random() < skill
            other = "fake" if image["truth"] == "real" else "real"
            confidence = int(rng.integers(3, 6) if right else rng.integers(1, 4))
            w.writerow([key["quiz_id"], reader, image["id"], image["truth"] if right else other,
                        confidence, int(rng.integers(800, 6000))])
    return path


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("quiz_dir", type=Path, help="the folder with the quiz's key.json")
    p.add_argument("--skill", default="0.85,0.6,0.5", help="chance of a right answer per reader")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    key = quiz.read_key(args.quiz_dir / "key.json")
    for k, skill in enumerate(float(s) for s in args.skill.split(",")):
        path = write_reader(key, f"scripted-{chr(65 + k)}", skill, args.seed + k,
                            args.quiz_dir / "answers")
        print(f"wrote {path} (right with probability {skill})")


if __name__ == "__main__":
    main()
