"""The report pipeline: notebooks 01-09 executed by papermill, then reports/report.{md,html}.

Everything is written to a staging folder beside reports/ first; only when every notebook has
passed are the new figures, tables, executed notebooks and report swapped in, so a failure
leaves the previous complete report untouched.

Example:
    >>> default_profile() in ("quick", "paper")
    True
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import importlib.resources
import io
import json
import os
import re
import shutil
import time
from pathlib import Path
from typing import Any

import torch
from markupsafe import Markup

from .. import config, storage
from ..data import KERMANY_CITATION
from ..gan import checkpoint, run_folder, run_lock, train
from ..metrics import extraction
from ..studies import protocols, quiz, recipe_comparison
from . import artefacts, reader_study, safe_text

GENERATED = ("figures", "tables", "notebooks", "report.md", "report.html", "build.json")
TEMPLATE = "report.md.j2"  # in gan_lib/report/templates/: ships with the package (importlib.resources)
PROTOCOLS_NOTEBOOK = "08_fid_protocols.ipynb"  # the "Why FIDs disagree" section (optional)
RETRAIN = "RETRAIN=1 (--retrain; retrain = True in notebook 02)"  # how to replace a run


class NotebookFailed(RuntimeError):
    """A notebook of the pipeline raised; the previous report is left as it was."""


def default_profile() -> str:
    return "paper" if torch.cuda.is_available() else "quick"


def build_report(profile: str | None = None, run: str | None = None, source: str | None = None,
                 reports_dir: str | Path | None = None, retrain: bool = False,
                 conditional: bool | None = None, fid_protocols: bool = True) -> Path:
    """Run notebooks 01-09 with papermill and (re)build ``reports/``; return report.md's path.

    Answers in ``reports/quiz/answers/`` are checked before the notebooks run and scored into
    the report's "Reader study" section; without answers the report has no such section.
    ``fid_protocols=False`` skips notebook 08, and with it the section "Why FIDs disagree".

    ``profile`` defaults to the existing run's own profile, else paper where CUDA is present,
    else quick; ``run`` to the profile name ("-conditional" added for a conditional report).
    ``conditional=True`` trains a class-conditional run and adds per-class samples, per-class
    Table 1 rows and the usefulness study (notebook 07); None: the existing run's setting, else
    the report's unconditional DCGAN.
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
    run = run or (f"{profile}-conditional" if conditional else profile)
    overrides = {"conditional": True} if conditional else {}
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
    staging = reports_dir / ".staging"
    shutil.rmtree(staging, ignore_errors=True)
    params = {"profile": profile, "run": run, "source": source,
              "reports_dir": str(staging), "overrides": overrides, "retrain": retrain}
    answers = reader_answers(reports_dir)  # bad answer files: fail before the notebooks run
    skip = () if fid_protocols else (PROTOCOLS_NOTEBOOK,)
    if skip:
        print(f"[report] 'Why FIDs disagree' is off: {PROTOCOLS_NOTEBOOK} is not run")
    try:
        stages = run_notebooks(params, staging / "notebooks", skip=skip)
        if answers:
            reader_study.score_answers(answers, quiz.quiz_dir(reports_dir) / "key.json", staging)
        render_report(staging, run_dir=config.RUNS_DIR / run, profile=profile, stages=stages)
        storage.write_json(staging / "build.json", {
            "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "command": {**{k: v for k, v in params.items() if k != "reports_dir"},
                        "fid_protocols": fid_protocols},
            "git_commit": run_folder.git_commit(), "stages": stages,
            "total_seconds": round(sum(s["seconds"] for s in stages), 1)})
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


def load_template() -> str:
    """The report template that ships inside the package (gan_lib/report/templates/report.md.j2)."""
    return importlib.resources.files(__package__).joinpath("templates", TEMPLATE).read_text("utf-8")


def render_report(out: Path, run_dir: Path, profile: str, stages: list[dict[str, Any]]) -> None:
    """report.md from the packaged template, and report.html with the figures embedded."""
    import jinja2
    import markdown

    ctx = report_context(out, run_dir, profile, stages)
    # Every value the template shows is escaped (safe_text.markdown: run names, paths and reader
    # ids show as text, never as tags, links or table cells) but the Markdown this package wrote
    # itself (tables, figure paths), which report_context marks as Markup.
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True,
                             finalize=safe_text.markdown)
    md = env.from_string(load_template()).render(**ctx)
    storage.write_text(out / "report.md", md)
    converter = markdown.Markdown(extensions=["tables", "fenced_code"])
    # and raw HTML is never passed through, should any reach the Markdown: it shows as text
    converter.preprocessors.deregister("html_block")
    converter.inlinePatterns.deregister("html")
    body = converter.convert(md)
    storage.write_text(out / "report.html", _html_page(_embed_images(body, out), ctx["title"]))


def report_context(out: Path, run_dir: Path, profile: str,
                   stages: list[dict[str, Any]]) -> dict[str, Any]:
    """Everything the template shows, read from the run folder and the artefacts just written.

    ``figures[section]`` lists (file, title) of the figures that section shows, in the order
    of :data:`gan_lib.report.artefacts.ARTEFACTS`; ``tables[name]`` is a table's Markdown.
    """
    run_cfg = run_folder.load_run_config(run_dir)
    scores_path = run_dir / "scores.json"
    scores = storage.read_json(scores_path) if scores_path.exists() else {}
    cfg, data = run_cfg["config"], run_cfg["data"]
    # Markup: Markdown written by plots.write_table (its cells and caption escaped there) and
    # the registry's own file names, shown as they are
    tables = {a.name: Markup((out / a.file).read_text(encoding="utf-8").strip())
              for a in artefacts.ARTEFACTS.values() if a.kind == "table" and (out / a.file).exists()}
    figures = {section: [(Markup(a.file), a.title) for a in artefacts.in_section(section)
                         if a.kind == "figure" and (out / a.file).exists()]
               for section in artefacts.SECTIONS}
    return {
        "title": "Generating pediatric chest X-rays with a DCGAN",
        "created": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "profile": profile,
        "run": run_dir.name,
        "cfg": cfg,
        "recipe_options": recipe_comparison.describe_options(cfg),
        "data": data,
        "kermany_citation": KERMANY_CITATION,
        "epochs": cfg["iterations"] * cfg["batch_size"] / max(1, data["n_images"]),
        "run_info": run_cfg,
        "scores": scores,
        "tables": tables,
        "figures": figures,
        "headline": headline(scores),
        "original_fids": [f"{v:g}" for v in protocols.ORIGINAL_FIDS],
        "stages": stages,
        "total_seconds": round(sum(s["seconds"] for s in stages), 1),
        "json": lambda obj: json.dumps(obj, indent=2, sort_keys=True),
    }


def headline(scores: dict[str, Any]) -> str:
    """One sentence of results for the abstract: FID first -> last snapshot, against the floor."""
    fids = [r for r in scores.get("scores", []) if r["metric"] == "fid" and r["value"] is not None]
    gen = sorted((r for r in fids if r["kind"] == "generated"), key=lambda r: r["iteration"])
    if not gen:
        return "The run was not scored."
    first, last = gen[0], gen[-1]
    text = (f"FID ({last['name']}: {last['n_fake']:,} generated vs {last['n_real']:,} real "
            f"images) went from {first['value']:.1f} at iteration {first['iteration']:,} to "
            f"{last['value']:.1f} at iteration {last['iteration']:,}")
    floors = [r for r in fids if r["kind"] == "floor"]
    if floors:
        text += "; real images score " + " and ".join(
            f"{r['value']:.1f} ({r['compared']})" for r in floors)
    return text + "."


def _embed_images(html: str, base: Path) -> str:
    """Inline <img src="figures/x.png"> as data URIs so report.html reads offline, alone.

    Only the report's own figures (files under ``base/figures``) are read: no other path on
    the machine ever ends up in the page.
    """
    figures = (base / "figures").resolve()

    def inline(m: re.Match) -> str:
        path = (base / m.group(1)).resolve()
        if not path.is_relative_to(figures) or not path.is_file():
            return m.group(0)
        data = base64.b64encode(path.read_bytes()).decode("ascii")
        return f'src="data:image/png;base64,{data}"'

    return re.sub(r'src="([^"]+\.png)"', inline, html)


def _html_page(body: str, title: str) -> str:
    style = ("body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;"
             "line-height:1.5;color:#222}img{max-width:100%}table{border-collapse:collapse;margin:1rem 0}"
             "th,td{border:1px solid #ccc;padding:.25rem .6rem;text-align:right}"
             "pre{background:#f6f6f6;padding:.75rem;overflow:auto}"
             "blockquote{background:#fff3cd;border-left:4px solid #e0a800;margin:1rem 0;"
             "padding:.25rem 1rem}td:first-child,th:first-child{text-align:left}")
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title}</title>"
            f"<style>{style}</style></head><body>\n{body}\n</body></html>\n")


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
