"""The report pipeline: notebooks 01-05 executed by papermill, then reports/report.{md,html}.

Everything is written to a staging folder beside reports/ first; only when every notebook has
passed are the new figures, tables, executed notebooks and report swapped in, so a failure
leaves the previous complete report untouched.

Example:
    >>> default_profile() in ("quick", "paper")
    True
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
import shutil
import time
from pathlib import Path
from typing import Any

import torch

from . import config, io

GENERATED = ("figures", "tables", "notebooks", "report.md", "report.html")
TEMPLATE = "template.md.j2"

# Figure files the notebooks write, in report order, with what each shows.
FIGURES = {
    "fig1_real_samples.png": "Figure 1. Training images per class (the data source is named under the figure).",
    "data_intensity_histograms.png": "Pixel-intensity distribution of the training images per class.",
    "fig2_losses.png": "Figure 2. Generator and discriminator losses per iteration.",
    "fig3_halfway_final.png": "Figure 3. Fixed-noise samples halfway through and at the end of training.",
    "evolution_strip.png": "Fixed-noise samples across training (one row per epoch grid).",
    "samples_final.png": "Fresh samples from the final generator snapshot.",
    "fid_vs_iteration.png": "FID against training iteration, with the real-vs-real floors.",
}


class NotebookFailed(RuntimeError):
    """A notebook of the pipeline raised; the previous report is left as it was."""


def default_profile() -> str:
    return "paper" if torch.cuda.is_available() else "quick"


def build_report(profile: str | None = None, run: str | None = None, source: str | None = None,
                 reports_dir: str | Path | None = None) -> Path:
    """Run notebooks 01-05 with papermill and (re)build ``reports/``; return report.md's path.

    ``profile`` defaults to paper where CUDA is present, else quick; ``run`` to the profile name.
    """
    if profile is None:
        profile = default_profile()
        print(f"profile: {profile} ({'CUDA present' if profile == 'paper' else 'no CUDA: CPU'})")
    config.make_train_config(profile)  # unknown profile: fail before any work
    run = run or profile
    reports_dir = Path(reports_dir or config.REPORTS_DIR)
    staging = reports_dir / ".staging"
    shutil.rmtree(staging, ignore_errors=True)
    params = {"profile": profile, "run": run, "source": source or "auto",
              "reports_dir": str(staging)}
    try:
        stages = run_notebooks(params, staging / "notebooks")
        render_report(staging, run_dir=config.RUNS_DIR / run, profile=profile, stages=stages)
    except BaseException:
        _keep_failed(staging, reports_dir)
        raise
    _swap_in(staging, reports_dir)
    return reports_dir / "report.md"


def run_notebooks(params: dict[str, Any], out_dir: Path,
                  progress: bool = True) -> list[dict[str, Any]]:
    """Execute notebooks/0*.ipynb in order; each gets the parameters it declares."""
    import papermill as pm
    from papermill.exceptions import PapermillExecutionError

    out_dir.mkdir(parents=True, exist_ok=True)
    stages = []
    for nb in sorted(config.NOTEBOOKS_DIR.glob("0*.ipynb")):
        declared = pm.inspect_notebook(str(nb))
        given = {k: v for k, v in params.items() if k in declared}
        print(f"[report] {nb.name} {given}", flush=True)
        start = time.perf_counter()
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
        stages.append({"notebook": nb.name, "seconds": round(time.perf_counter() - start, 1)})
    return stages


def render_report(out: Path, run_dir: Path, profile: str, stages: list[dict[str, Any]]) -> None:
    """report.md from the committed template, and report.html with the figures embedded."""
    import jinja2
    import markdown

    ctx = report_context(out, run_dir, profile, stages)
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(config.REPO_ROOT / "reports"),
                             undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    md = env.get_template(TEMPLATE).render(**ctx)
    io.write_text(out / "report.md", md)
    body = markdown.markdown(md, extensions=["tables", "fenced_code"])
    io.write_text(out / "report.html", _html_page(_embed_images(body, out), ctx["title"]))


def report_context(out: Path, run_dir: Path, profile: str,
                   stages: list[dict[str, Any]]) -> dict[str, Any]:
    """Everything the template shows, read from the run folder and the tables just written."""
    run_cfg = io.read_json(run_dir / "config.json")
    scores_path = run_dir / "scores.json"
    scores = io.read_json(scores_path) if scores_path.exists() else {}
    cfg, data = run_cfg["config"], run_cfg["data"]
    tables = {p.stem: p.read_text(encoding="utf-8").strip()
              for p in sorted((out / "tables").glob("*.md"))}
    figures = [(f"figures/{name}", caption) for name, caption in FIGURES.items()
               if (out / "figures" / name).exists()]
    return {
        "title": "Generating pediatric chest X-rays with a DCGAN",
        "created": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "profile": profile,
        "run": run_dir.name,
        "cfg": cfg,
        "data": data,
        "epochs": cfg["iterations"] * cfg["batch_size"] / max(1, data["n_images"]),
        "run_info": run_cfg,
        "scores": scores,
        "tables": tables,
        "figures": figures,
        "headline": headline(scores),
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
    """Inline <img src="figures/x.png"> as data URIs so report.html reads offline, alone."""
    def inline(m: re.Match) -> str:
        path = base / m.group(1)
        if not path.exists():
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
    """Replace the generated parts of reports/ with the staged ones (the template stays)."""
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
