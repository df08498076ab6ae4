"""Real or fake? A reader study: a self-contained quiz page, its answer key, and its scoring.

:func:`build_quiz` writes ``reports/quiz/index.html`` (one file, images embedded, no answer
key, no network) and ``reports/quiz/key.json``. Readers answer each image real or fake with a
confidence 1..5 and download their answers as CSV; :func:`read_answers` checks those CSVs
against the key (statistics in :mod:`gan_lib.studies.quiz_stats`;
:func:`gan_lib.report.reader_study.score_answers` writes the reader-study table and figure).

Real images come from the data source's test split: never trained on, so "real" means a
radiograph the generator did not see. Fakes come from the run's final snapshot via
:func:`gan_lib.gan.sampling.generate` (the sampling rule every grid and score uses). Both kinds are
shown at the training resolution, upscaled by the same integer factor with the same filter.

Example:
    >>> page = build_quiz("bn-quick", n=40, seed=0)   # doctest: +SKIP
    >>> read_answers(sorted(page.parent.glob("answers/*.csv")), read_key(page.parent / "key.json"))  # doctest: +SKIP
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import json
import os
import secrets
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from .. import config, storage
from ..gan import run_folder, run_lock, sampling
from ..metrics import scoring
from . import quiz_page

KEY_FORMAT = 1
SECRET_FILE = "quiz.secret"  # in the run folder: orders and encodes the run's quizzes
DISPLAY_SIZE = 256  # pixels per side on screen, at most (an integer multiple of the image)
# Nearest neighbour: every pixel is shown as the generator or the detector made it, and no
# smoothing can hide (or add) texture; the page's CSS asks the browser for the same.
FILTER = "nearest"
COLUMNS = ("quiz_id", "reader", "image", "answer", "confidence", "ms")
ANSWERS = ("real", "fake")


def quiz_dir(reports_dir: str | os.PathLike | None = None) -> Path:
    """reports/quiz: the page, the key, and answers/ (the readers' CSVs)."""
    return Path(reports_dir or config.REPORTS_DIR) / "quiz"


# --- building the quiz -------------------------------------------------------------------------


def build_quiz(run: str | os.PathLike, out_dir: str | os.PathLike | None = None, n: int = 40,
               seed: int = 0) -> Path:
    """Write ``index.html`` and ``key.json`` of a quiz on ``run``'s final snapshot; the page's path.

    ``n`` images, half real (test split, drawn with ``seed``) and half generated (latents of
    ``seed``). Their order and the page's encoding come from the run's quiz secret
    (:func:`run_secret`), which only the key holds: a reader who knows ``seed`` cannot rebuild
    the order, and no byte of the page tells the kinds apart (quiz_page.py). The same run and
    arguments give the same quiz and quiz id, so rebuilding it keeps answers already collected
    valid.
    """
    if n < 2 or n % 2:
        raise ValueError(f"n={n}: expected an even number >= 2 (half real, half generated)")
    run_dir = run_folder.run_path(run)
    meta = run_folder.load_run_config(run_dir)
    iteration, snapshot = run_folder.list_snapshots(run_dir)[-1]
    if note := run_folder.unfinished(run_dir, iteration):
        print(note.replace("the one used here", "the one the quiz shows"))
    rng = np.random.default_rng(seed)
    real_ds = scoring.load_real(meta, "test")
    if len(real_ds.images) < n // 2:
        raise ValueError(f"n={n} needs {n // 2} real test images; the test split of "
                         f"{real_ds.description} has {len(real_ds.images)}: lower --n")
    real_idx = np.sort(rng.choice(len(real_ds.images), n // 2, replace=False))
    fakes = sampling.generate(snapshot, n // 2, seed=seed)  # uint8 [n/2, 1, S, S]
    pool = [("real", int(i), real_ds.images[int(i)]) for i in real_idx]
    pool += [("fake", i, fakes[i]) for i in range(n // 2)]  # index = latent number
    secret = run_secret(run_dir)
    order = np.random.default_rng(quiz_page.derived(secret, "order", seed, n)).permutation(n)
    shown = [pool[j] for j in order]
    key = make_key(meta, run_dir, snapshot, iteration, seed, real_ds, shown, secret)
    out = Path(out_dir) if out_dir is not None else quiz_dir()
    _refuse_orphaning(out, key["quiz_id"])
    scale = max(1, DISPLAY_SIZE // int(fakes.shape[-1]))
    images = quiz_page.page_images([img for _, _, img in shown], scale, secret)
    storage.write_json(out / "key.json", key)
    storage.write_text(out / "index.html", quiz_page.render_page(key["quiz_id"], n,
                                                            key["display"]["size"], images))
    return out / "index.html"


def run_secret(run_dir: Path) -> str:
    """The run's quiz secret (``runs/<name>/quiz.secret``, made on first use): it orders and
    encodes every quiz of the run, and only the quiz keys hold it."""
    path = run_dir / SECRET_FILE
    if not path.is_file():
        with run_lock.hold(run_dir, "quiz"):
            if not path.is_file():
                storage.write_text(path, secrets.token_hex(16) + "\n")
    return path.read_text(encoding="utf-8").strip()


def _refuse_orphaning(out: Path, new_id: str) -> None:
    """A quiz whose answers are collected in ``out/answers/`` is replaced only by itself."""
    old = out / "key.json"
    if old.is_file() and list((out / "answers").glob("*.csv")):
        old_id = storage.read_json(old).get("quiz_id")
        if old_id != new_id:
            raise FileExistsError(
                f"{out} holds quiz {old_id} with answers in {out / 'answers'}; this quiz "
                f"({new_id}) would orphan them. Score them first, then move answers/ away, or "
                "write the new quiz elsewhere (--out DIR).")


def make_key(meta: dict[str, Any], run_dir: Path, snapshot: Path, iteration: int, seed: int,
             real_ds: Any, shown: list[tuple[str, int, torch.Tensor]],
             secret: str) -> dict[str, Any]:
    """The answer key: the truth of each image (in page order) and everything that made it,
    with the secret that ordered and encoded the page."""
    size = int(shown[0][2].shape[-1])
    key = {
        "format": KEY_FORMAT, "quiz_id": "", "run": run_dir.name,
        "run_dir": storage.portable_path(run_dir),  # not hashed: the id of a quiz stays its own
        "snapshot": {"file": snapshot.name, "iteration": iteration,
                     "sampling": sampling.read_snapshot(snapshot)["sampling"]["description"]},
        "seed": seed, "n": len(shown), "image_size": size,
        "display": {"size": size * max(1, DISPLAY_SIZE // size), "filter": FILTER},
        "data": {"source": meta["data"]["source"], "description": meta["data"]["description"],
                 "fingerprint": meta["data"]["fingerprint"], "real_split": "test",
                 "real_fingerprint": real_ds.fingerprint,
                 "is_synthetic": bool(meta["data"].get("is_synthetic", False))},
        "images": [{"id": k + 1, "truth": truth, "index": index,
                    "sha256": hashlib.sha256(img.numpy().tobytes()).hexdigest()[:16]}
                   for k, (truth, index, img) in enumerate(shown)],
        "secret": secret,
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }
    key["quiz_id"] = quiz_id(key)
    return key


def quiz_id(key: dict[str, Any]) -> str:
    """A hash of what defines the quiz (run, snapshot, seed, data, images in order, the secret
    where the key has one: keys written before it had none), not of when.

    >>> quiz_id({"run": "r", "snapshot": {"iteration": 1}, "seed": 0, "data": {},
    ...          "images": [{"id": 1, "truth": "real", "sha256": "ab"}]})
    '901b656a9ccdd8f1'
    """
    what = {"run": key["run"], "iteration": key["snapshot"]["iteration"], "seed": key["seed"],
            "data": key["data"], "images": [(i["id"], i["truth"], i["sha256"])
                                            for i in key["images"]]}
    if "secret" in key:  # the page shows the id: with the secret in it, no guess rebuilds it
        what["secret"] = key["secret"]
    return hashlib.sha256(json.dumps(what, sort_keys=True).encode()).hexdigest()[:16]


# --- reading answers ----------------------------------------------------------------------------


def read_key(path: str | os.PathLike) -> dict[str, Any]:
    """A quiz key, checked: the format, and that its content still hashes to its quiz id."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Quiz key {path} not found: build the quiz first "
                                "(python -m gan_lib quiz RUN) or pass --key")
    try:
        key = storage.read_json(path)
        if key.get("format") != KEY_FORMAT:
            raise ValueError(f"format {key.get('format')!r}, expected {KEY_FORMAT}")
        ok = key["quiz_id"] == quiz_id(key)
    except (ValueError, KeyError, TypeError, AttributeError) as err:
        raise ValueError(f"{path} is not a quiz key ({err}): expected the key.json that "
                         "python -m gan_lib quiz wrote beside its index.html") from None
    if not ok:
        raise ValueError(f"{path} is not an intact quiz key: its content does not give its quiz "
                         f"id {key.get('quiz_id')!r} (edited, or another format). Use the "
                         "key.json written with the quiz the readers took.")
    return key


def read_answers(paths: list[str | os.PathLike], key: dict[str, Any]) -> pd.DataFrame:
    """All readers' answers, checked against ``key``: one row per reader and image, with truth.

    Each CSV must come from this quiz (its quiz id), answer every image once, with answer real
    or fake and confidence 1..5; anything else is an error naming the file and line.
    """
    if not paths:
        raise FileNotFoundError("No answer CSVs given: put the readers' files in "
                                "reports/quiz/answers/ and pass them (answers/*.csv)")
    given = [Path(p).resolve() for p in paths]
    if twice := sorted({str(p) for p in given if given.count(p) > 1}):
        raise ValueError(f"Answers file(s) given twice: {twice}; each reader's CSV counts once")
    rows = [row for p in paths for row in _read_csv(Path(p), key)]
    seen: dict[tuple[str, int], str] = {}
    for row in rows:
        where = seen.setdefault((row["reader"], row["image"]), row["where"])
        if where != row["where"]:
            raise ValueError(f"Duplicate answer: reader {row['reader']!r} answered image "
                             f"{row['image']} twice ({where} and {row['where']}). Each reader "
                             "id must be one person's, and each CSV given once.")
    answers = pd.DataFrame(rows)
    truth = {i["id"]: i["truth"] for i in key["images"]}
    for reader, group in answers.groupby("reader", sort=False):
        missing = sorted(set(truth) - set(group["image"]))
        if missing:
            raise ValueError(f"Reader {reader!r} did not answer {len(missing)} of {key['n']} "
                             f"images (ids {missing[:10]}{'...' if len(missing) > 10 else ''}): "
                             "every image needs an answer; the page's CSV has them all")
    answers["truth"] = answers["image"].map(truth)
    return answers.drop(columns="where")


def _read_csv(path: Path, key: dict[str, Any]) -> list[dict[str, Any]]:
    """The rows of one answers CSV, each checked; errors name the file and line."""
    if not path.is_file():
        raise FileNotFoundError(f"Answers file {path} not found")
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        try:
            if tuple(reader.fieldnames or ()) != COLUMNS:
                raise ValueError(f"{path}: columns {reader.fieldnames}, expected "
                                 f"{list(COLUMNS)}: not an answers file of this quiz page")
            rows = [_check_row(row, f"{path.name} line {line}", key)
                    for line, row in enumerate(reader, start=2)]
        except UnicodeDecodeError as err:
            raise ValueError(f"{path} is not UTF-8 text ({err.reason} at byte {err.start}): "
                             "expected the CSV the quiz page downloads; save it as UTF-8") from None
        except csv.Error as err:  # e.g. a field over the csv module's limit (128 KB)
            raise ValueError(f"{path.name} line {reader.line_num + 1}: {err}: not an answers file "
                             "of this quiz page (its fields are a few characters each)") from None
    if not rows:
        raise ValueError(f"{path}: no answers, only the header row: expected one row per image "
                         f"({key['n']}), as the quiz page's download has")
    return rows


def _check_row(row: dict[str, str], where: str, key: dict[str, Any]) -> dict[str, Any]:
    if row["quiz_id"] != key["quiz_id"]:
        raise ValueError(f"{where}: answers of quiz {row['quiz_id']!r}, but the key is quiz "
                         f"{key['quiz_id']!r} (run {key['run']}): score each CSV with the "
                         "key.json of the quiz page its reader took")
    try:
        image, confidence, ms = int(row["image"]), int(row["confidence"]), int(row["ms"])
    except ValueError:
        raise ValueError(f"{where}: image, confidence and ms must be integers, got "
                         f"{row['image']!r}, {row['confidence']!r}, {row['ms']!r}") from None
    if not 1 <= image <= key["n"] or row["answer"] not in ANSWERS or not 1 <= confidence <= 5:
        raise ValueError(f"{where}: expected image 1..{key['n']}, answer real|fake, confidence "
                         f"1..5; got {image}, {row['answer']!r}, {confidence}")
    if not row["reader"].strip():
        raise ValueError(f"{where}: empty reader id")
    if ms < 0:
        raise ValueError(f"{where}: ms={ms}: expected the milliseconds (>= 0) from the image to "
                         "the answer, as the quiz page records them")
    return {"reader": row["reader"], "image": image, "answer": row["answer"],
            "confidence": confidence, "ms": ms, "where": where}


# --- scoring -----------------------------------------------------------------------------------


def default_key(paths: list[str | os.PathLike]) -> Path:
    """key.json beside the answers/ folder the CSVs are in, else reports/quiz/key.json."""
    parents = {Path(p).resolve().parent for p in paths}
    if len(parents) == 1 and (beside := next(iter(parents)).parent / "key.json").is_file():
        return beside
    return quiz_dir() / "key.json"


def answer_files(reports_dir: str | os.PathLike | None = None) -> list[Path]:
    """The answer CSVs collected in reports/quiz/answers/, sorted (empty when none)."""
    return sorted((quiz_dir(reports_dir) / "answers").glob("*.csv"))


def install_quiz(staged: Path, target: Path) -> str:
    """Move a staged quiz (page + key) into ``target``, unless that would orphan answers.

    The report pipeline builds the quiz in its staging folder. ``target/answers/`` is never
    touched; a quiz whose answers are there is replaced only by the same quiz (same quiz id),
    since answers are scored against the key of the page their readers took.
    """
    new_key, old_key = staged / "key.json", target / "key.json"
    if not new_key.is_file():
        return "no quiz was staged"
    new_id = storage.read_json(new_key)["quiz_id"]
    old_id = storage.read_json(old_key).get("quiz_id") if old_key.is_file() else None
    if old_id not in (None, new_id) and list((target / "answers").glob("*.csv")):
        return (f"kept {target} (quiz {old_id}): its answers/ belong to it; the run's quiz "
                f"{new_id} was not installed (move answers/ away and run python -m gan_lib "
                "quiz RUN to replace it)")
    target.mkdir(parents=True, exist_ok=True)
    for name in ("key.json", "index.html"):
        os.replace(staged / name, target / name)
    return f"quiz {new_id} in {target}"
