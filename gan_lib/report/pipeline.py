"""The report pipeline: notebooks 01-09 executed by papermill, then reports/report.{md,html,pdf}
(rendered by render.py).

Everything is written to a staging folder beside reports/ first; only when every notebook has
passed are the new figures, tables, executed notebooks and report swapped in, so a failure
leaves the previous complete report untouched.

Example:
    >>> default_profile() in ("quick", "paper")
    True
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import os
import shutil
import time
from pathlib import Path
from typing import Any

import torch

from .. import config, storage
from ..gan import checkpoint, run_folder, run_lock, train
from ..metrics import extraction
from ..studies import quiz
from . import reader_study
from .render import render_report

GENERATED = ("figures", "tables", "notebooks", "report.md", "report.html", "report.pdf",
             "build.json")
PROTOCOLS_NOTEBOOK = "08_fid_protocols.ipynb"  # the "Why FIDs disagree" section (optional)
RETRAIN = "RETRAIN=1 (--retrain; retrain = True in notebook 02)"  # how to replace a run


class NotebookFailed(RuntimeError):
    """A notebook of the pipeline raised; the previous report is left as it was."""


def default_profile() -> str:
    return "paper" if torch.cuda.is_available() else "quick"


def build_report(profile: str | None = None, run: str | None = None, source: str | None = None,
                 reports_dir: str | Path | None = None, retrain: bool = False,
                 conditional: bool | None = None, fid_protocols: bool = True,
                 resize: str | None = None) -> Path:
    """Run notebooks 01-09 with papermill and (re)build ``reports/``; return report.md's path.

    Answers in ``reports/quiz/answers/`` are checked before the notebooks run and scored into
    the report's "Reader study" section; without answers the report has no such section.
    ``fid_protocols=False`` skips notebook 08, and with it the section "Why FIDs disagree".

    ``profile`` defaults to the existing run's own profile, else paper where CUDA is present,
    else quick; ``run`` to the profile name ("-conditional" added for a conditional report).
    ``conditional=True`` trains a class-conditional run and adds per-class samples, per-class
    Table 1 rows and the usefulness study (notebook 07); None: the existing run's setting, else
    the report's unconditional DCGAN.
    ``resize`` (crop | squash | pad): how non-square images become square, for training,
    scoring, the audit and the studies alike; None: the existing run's policy, else crop.
    An existing run folder is reused when finished and resumed when not (its settings must be
    the profile's); ``retrain=True`` replaces it with a fresh run.
    """
    existing = config.RUNS_DIR / run / "config.json" if run else None
    known = run_folder.load_run_config(existing.parent)["config"] if existing is not None \
        and existing.is_file() and not retrain else None
    if profile is None and known is not None:
        profile = known["profile"]
        print(f"profile: {profile} (the profile run {run!r} was trained with)")
    elif profile is None:
        profile = default_profile()
        print(f"profile: {profile} ({'CUDA present' if profile == 'paper' else 'no CUDA: CPU'})")
    if conditional is None:
        conditional = bool(known.get("conditional", False)) if known is not None else False
    if resize is None:
        resize = known.get("resize", "crop") if known is not None else "crop"
    run = run or (f"{profile}-conditional" if conditional else profile)
    overrides = {"conditional": True} if conditional else {}
    if resize != "crop":  # crop is the default: a crop run's overrides stay as they were
        overrides["resize"] = resize
    wanted = config.make_train_config(profile, name=run, source=source or "auto", **overrides)
    # The run stays locked until the report is built: the notebooks' kernels (children) train
    # and score it under this lock, any other process is refused (gan/run_lock.py).
    reports_dir = Path(reports_dir or config.REPORTS_DIR)
    with run_lock.hold(config.RUNS_DIR / run, "report", share=True):
        with contextlib.redirect_stdout(io.StringIO()) as plan:  # said once the folder is ours
            training_plan(wanted, retrain)  # a mismatched run fails here; notebook 02 plans again
        # One build at a time per output folder (its staging folder is shared): a second
        # report stops here, before it reads, deletes or writes anything there.
        with run_lock.hold_reports(reports_dir, f"report of run {run!r}"):
            print(plan.getvalue(), end="")
            return _build(wanted, retrain, reports_dir, fid_protocols)


def _build(wanted: config.TrainConfig, retrain: bool, reports_dir: Path,
           fid_protocols: bool) -> Path:
    """The notebooks into a staging folder, the report rendered there, then swapped in."""
    profile, run, source = wanted.profile, wanted.name, wanted.source
    overrides = {"conditional": True} if wanted.conditional else {}
    if wanted.resize != "crop":
        overrides["resize"] = wanted.resize
    staging = reports_dir / ".staging"
    shutil.rmtree(staging, ignore_errors=True)
    params = {"profile": profile, "run": run, "source": source, "resize": wanted.resize,
              "reports_dir": str(staging), "overrides": overrides, "retrain": retrain}
    answers = reader_answers(reports_dir)  # bad answer files: fail before the notebooks run
    skip = () if fid_protocols else (PROTOCOLS_NOTEBOOK,)
    if skip:
        print(f"[report] 'Why FIDs disagree' is off: {PROTOCOLS_NOTEBOOK} is not run")
    try:
        stages = run_notebooks(params, staging / "notebooks", skip=skip)
        if answers:
            reader_study.score_answers(answers, quiz.quiz_dir(reports_dir) / "key.json", staging)
        made = render_report(staging, run_dir=config.RUNS_DIR / run, profile=profile,
                             stages=stages)
        print(f"[report] {made}")
        storage.write_json(staging / "build.json", storage.portable({
            "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "command": {**{k: v for k, v in params.items() if k != "reports_dir"},
                        "fid_protocols": fid_protocols},
            "git_commit": run_folder.git_commit(), "stages": stages,
            "total_seconds": round(sum(s["seconds"] for s in stages), 1)}))
    except BaseException:
        _keep_failed(staging, reports_dir)
        raise
    _swap_in(staging, reports_dir)
    return reports_dir / "report.md"


def reader_answers(reports_dir: Path) -> list[Path]:
    """The reader-study answers in reports/quiz/answers/, checked against their key (or [])."""
    answers = quiz.answer_files(reports_dir)
    if answers:
        print(f"[report] reader study: {len(answers)} answer file(s) in "
              f"{quiz.quiz_dir(reports_dir) / 'answers'}")
        quiz.read_answers(answers, quiz.read_key(quiz.quiz_dir(reports_dir) / "key.json"))
    return answers


def training_plan(cfg: config.TrainConfig, retrain: bool = False) -> dict[str, bool]:
    """train()'s resume/overwrite for ``cfg``'s run folder, said aloud; mismatches raise.

    No folder: train. ``retrain``: replace it. A folder with a checkpoint: its settings must
    equal ``cfg``'s (apart from what may change on resume, e.g. more iterations, or the name of
    a copied folder); then it is reused when finished and resumed when not. The report and
    notebook 02 (run by the report, or again by hand) plan with it alike.
    """
    folder = config.RUNS_DIR / cfg.name
    if retrain:
        print(f"retrain: {folder} is replaced by a fresh run" if folder.exists()
              else f"retrain: no {folder} yet; training it")
        return {"resume": False, "overwrite": True}
    ckpt_path = folder / "checkpoint.pt"
    if not ckpt_path.is_file():
        if folder.is_dir() and any(folder.iterdir()):
            raise FileExistsError(f"{folder} exists but has no checkpoint.pt to reuse or resume; "
                                  f"{RETRAIN} replaces it, or choose another run name")
        print(f"training a new run in {folder}")
        return {"resume": False, "overwrite": False}
    try:
        ckpt = checkpoint.read(ckpt_path)
    except ValueError as err:
        raise ValueError(f"{err} For the report or notebook 02: {RETRAIN} replaces the "
                         "run.") from None
    old, new = checkpoint.saved_config(ckpt), cfg.to_dict()
    same = {"snapshot_at", "checkpoint_every", "compile", "device", "name"}  # not the arithmetic
    if ckpt["precision"] == train.training_precision(cfg)[0]:
        same.add("precision")  # 'auto' that resolves to what the run used
    differ = checkpoint.differing(old, new, ignore=same)
    if differ:
        diff = ", ".join(f"{k}: run {old.get(k)!r}, profile {new.get(k)!r}" for k in differ)
        raise ValueError(f"Run {cfg.name!r} ({folder}) does not match profile "
                         f"{cfg.profile!r}: {diff}. Use the run's own profile and settings "
                         f"(PROFILE=...), another run name, or {RETRAIN}.")
    done = int(ckpt["step"]) == cfg.iterations
    print(f"{'reusing the finished' if done else 'resuming the unfinished'} run "
          f"{folder} (iteration {ckpt['step']} of {cfg.iterations})")
    return {"resume": True, "overwrite": False}


def run_notebooks(params: dict[str, Any], out_dir: Path, progress: bool = True,
                  skip: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """Execute notebooks/0*.ipynb in order, but those named in ``skip``; each gets the
    parameters it declares."""
    import papermill as pm
    from papermill.exceptions import PapermillExecutionError

    out_dir.mkdir(parents=True, exist_ok=True)
    stages = []
    for nb in sorted(p for p in config.NOTEBOOKS_DIR.glob("0*.ipynb") if p.name not in skip):
        declared = pm.inspect_notebook(str(nb))
        given = {k: v for k, v in params.items() if k in declared}
        print(f"[report] {nb.name} {given}", flush=True)
        start = time.perf_counter()
        log = out_dir / f"{nb.stem}.extracted.jsonl"  # extraction.EXTRACTION_LOG, per notebook
        log.unlink(missing_ok=True)
        os.environ[extraction.EXTRACTION_LOG] = str(log)  # the kernel inherits it
        try:
            # progress_bar: cells done per notebook; log_output: the notebook's own prints and
            # tqdm bars (training, feature extraction) stream to this terminal as they happen.
            pm.execute_notebook(str(nb), str(out_dir / nb.name), parameters=given,
                                kernel_name="python3", cwd=str(config.NOTEBOOKS_DIR),
                                progress_bar=progress, log_output=progress)
        except PapermillExecutionError as err:
            raise NotebookFailed(
                f"notebook {nb.name} failed in cell {err.cell_index} "
                f"(execution count {err.exec_count}): {err.ename}: {err.evalue}\n"
                f"cell source:\n{err.source}\nThe executed notebook is kept in "
                "reports/.failed/; the previous report was left in place."
            ) from None
        finally:
            os.environ.pop(extraction.EXTRACTION_LOG, None)
        sets = extraction.read_extraction_log(log)
        stages.append({"notebook": nb.name, "seconds": round(time.perf_counter() - start, 1),
                       "images_extracted": sum(x["images"] for x in sets),
                       "sets_extracted": sets})
    return stages


def _swap_in(staging: Path, reports_dir: Path) -> None:
    """Replace the generated parts of reports/ with the staged ones (the template stays).

    The quiz (notebook 04) goes in beside its collected answers, never over them.
    """
    print(f"[report] {quiz.install_quiz(quiz.quiz_dir(staging), quiz.quiz_dir(reports_dir))}")
    for name in GENERATED:
        new, old = staging / name, reports_dir / name
        if not new.exists():
            continue
        trash = reports_dir / f".old-{name}"
        _remove(trash)
        if old.exists():
            old.rename(trash)
        new.rename(old)
        _remove(trash)
    shutil.rmtree(staging, ignore_errors=True)


def _remove(path: Path) -> None:
    """Delete a file or a folder tree, if it is there."""
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _keep_failed(staging: Path, reports_dir: Path) -> None:
    """Keep the executed notebooks of a failed attempt in reports/.failed/ for inspection."""
    failed = reports_dir / ".failed"
    shutil.rmtree(failed, ignore_errors=True)
    if (staging / "notebooks").exists():
        (staging / "notebooks").rename(failed)
    shutil.rmtree(staging, ignore_errors=True)
