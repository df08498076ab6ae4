"""The report rendered: reports/report.md from the packaged template, report.html beside it.

:func:`render_report` fills ``templates/report.md.j2`` with :func:`report_context` (the run
folder and the artefacts the notebooks wrote) and converts it to one HTML page whose figures
are embedded, so it reads offline and alone. The pipeline (pipeline.py) calls it once every
notebook has passed.
"""

from __future__ import annotations

import base64
import datetime as dt
import importlib.resources
import json
import re
from pathlib import Path
from typing import Any

from markupsafe import Markup

from .. import storage
from ..data import KERMANY_CITATION
from ..gan import run_folder
from ..studies import protocols, recipe_comparison
from . import artefacts, safe_text

TEMPLATE = "report.md.j2"  # in gan_lib/report/templates/: ships with the package (importlib.resources)


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


__all__ = ["render_report", "report_context", "headline", "load_template"]
