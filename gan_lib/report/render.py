"""reports/report.{md,html,pdf} from the packaged template and what the notebooks wrote.

:func:`report_context` reads the run's files (config.json, scores.json, audit.json,
utility.json, protocols.json) and the artefacts under the output folder; the first page's
sentences come from :mod:`summary`, captions from the registry's short ``summary`` templates
filled with :func:`facts`, and how everything was made from :func:`provenance_rows`, once.
Tables appear in the report with the columns a reader needs (``Artefact.columns``); the files
under ``tables/`` keep every column and their full captions.

Example:
    >>> facts({"config": {"image_size": 64}, "data": {"n_images": 8}}, {}, {}, {})["size"]
    64
"""

from __future__ import annotations

import base64
import datetime as dt
import importlib.resources
import re
from collections import defaultdict
from pathlib import Path
from typing import Any

import pandas as pd
from markupsafe import Markup

from .. import storage
from ..data import KERMANY_CITATION
from ..gan import run_folder
from ..studies import protocols, recipe_comparison
from . import artefacts, pdf, safe_text, summary

TEMPLATE = "report.md.j2"  # in gan_lib/report/templates/: ships with the package
TITLE = "Generating pediatric chest X-rays with a DCGAN"
# A4 on paper: figures and table rows never split across pages, tables wrapped to the page
# width in a smaller type, the sections after the first page starting on a new page, and
# "page N of M" at the foot of each page (CSS page-margin boxes, Chromium 131 and later).
PRINT_CSS = (
    "@page{size:A4;margin:16mm 14mm 18mm 14mm;"
    "@bottom-center{content:'page ' counter(page) ' of ' counter(pages);font:9pt system-ui,"
    "sans-serif;color:#555}}"
    "@media print{body{max-width:none;margin:0;padding:0;font-size:10pt;line-height:1.35}"
    "p{orphans:3;widows:3}p.caption{break-before:avoid}"  # a caption stays with its table
    "p.figure,table,tr,pre,blockquote{break-inside:avoid}h2,h3,p.figure{break-after:avoid}"
    "h2.first-section{break-before:page}img{max-height:125mm}"
    ".first-page img{max-height:80mm}a{color:inherit;text-decoration:none}}")
SCREEN_CSS = (
    "body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;"
    "line-height:1.5;color:#222}img{max-width:100%;display:block;margin:0 auto}"
    "table{border-collapse:collapse;margin:.6rem 0;font-size:.85em;max-width:100%}"
    "th,td{border:1px solid #ccc;padding:.2rem .4rem;text-align:left;vertical-align:top;"
    "overflow-wrap:break-word}th{background:#f3f3f3}"
    "pre{background:#f6f6f6;padding:.75rem;white-space:pre-wrap}"
    "blockquote{background:#fff3cd;border-left:4px solid #e0a800;margin:1rem 0;"
    "padding:.25rem 1rem}p.caption{font-size:.9em;color:#333;margin-top:.2rem}"
    ".first-page p{margin:.45rem 0}")


def load_template() -> str:
    """The report template that ships inside the package (gan_lib/report/templates/)."""
    return importlib.resources.files(__package__).joinpath("templates", TEMPLATE).read_text("utf-8")


def render_report(out: Path, run_dir: Path, profile: str, stages: list[dict[str, Any]],
                  make_pdf: bool = True) -> str:
    """report.md from the template, report.html (figures embedded) and report.pdf printed
    from it; returns what became of the PDF (its name, or why there is none)."""
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
    converter = markdown.Markdown(extensions=["tables", "fenced_code", "toc"])
    # and raw HTML is never passed through, should any reach the Markdown: it shows as text
    converter.preprocessors.deregister("html_block")
    converter.inlinePatterns.deregister("html")
    body = _layout(converter.convert(md))
    storage.write_text(out / "report.html", html_page(_embed_images(body, out), TITLE))
    if not make_pdf:
        return "report.pdf not made (make_pdf=False)"
    try:
        made = pdf.print_pdf(out / "report.html", out / "report.pdf")
    except RuntimeError as err:  # a broken browser costs the PDF, not the report built so far
        return f"no report.pdf: {err}; report.md and report.html are complete"
    return "report.pdf" if made else pdf.HOW_TO_GET


def report_context(out: Path, run_dir: Path, profile: str,
                   stages: list[dict[str, Any]]) -> dict[str, Any]:
    """Everything the template shows, read from the run folder and the artefacts just written.

    ``figures[section]`` lists (file, alt text, caption) of the figures that section shows, in
    the registry's order; ``tables[name]`` is a table's Markdown for the report and
    ``captions[name]`` its short caption.
    """
    run_cfg = run_folder.load_run_config(run_dir)
    results = {name: _read(run_dir / f"{name}.json")
               for name in ("scores", "audit", "utility", "protocols")}
    scores, audit, utility = results["scores"], results["audit"], results["utility"]
    cfg, data = run_cfg["config"], run_cfg["data"]
    epochs = cfg["iterations"] * cfg["batch_size"] / max(1, data["n_images"])
    known = facts(run_cfg, scores, audit, utility)
    present = [a for a in artefacts.ARTEFACTS.values() if (out / a.file).exists()]
    texts = {a.name: safe_text.markdown(a.summary.format_map(known) or a.title) for a in present}
    captions = {name: Markup(f"{text} [Provenance](#provenance)") for name, text in texts.items()}
    tables = {a.name: compact_table(out, a) for a in present if a.kind == "table"}
    figures = {section: [(Markup(a.file), Markup(texts[a.name]), captions[a.name])
                         for a in present if a.kind == "figure" and a.section == section]
               for section in artefacts.SECTIONS}
    return {
        "title": TITLE, "profile": profile, "run": run_dir.name, "cfg": cfg, "data": data,
        "recipe_options": recipe_comparison.describe_options(cfg),
        "created": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "kermany_citation": KERMANY_CITATION, "epochs": epochs, "run_info": run_cfg,
        "scores": scores, "audit": audit, "utility": utility,
        "setting": summary.setting_line(run_cfg, epochs),
        "final_table": final_table(summary.final_rows(scores)),
        "audit_verdict": summary.audit_verdict(audit) if audit else None,
        "tstr_verdict": summary.tstr_verdict(utility) if utility else None,
        "tables": tables, "captions": captions, "figures": figures,
        "full_tables": [Markup(a.file) for a in present if a.kind == "table"],  # registry names
        "is_note": _is_note(scores), "headline": headline(scores),
        "protocol_notes": protocol_notes(out),
        "original_fids": [f"{v:g}" for v in protocols.ORIGINAL_FIDS],
        "provenance": provenance_rows(run_cfg, results),
        "stages": stages, "total_seconds": round(sum(s["seconds"] for s in stages), 1),
    }


def _read(path: Path) -> dict[str, Any]:
    return storage.read_json(path) if path.is_file() else {}


def facts(run_cfg: dict[str, Any], scores: dict[str, Any], audit: dict[str, Any],
          utility: dict[str, Any]) -> dict[str, Any]:
    """The numbers the registry's short captions name, from the run's files ("n/a" where a
    file is missing)."""
    c, s = run_cfg["config"], scores.get("settings", {})
    known: dict[str, Any] = {
        "size": c.get("image_size"), "resize": c.get("resize", "crop"),
        "iterations": c.get("iterations"), "batch": c.get("batch_size"),
        "grid": c.get("grid_size"), "final": max(c.get("snapshot_at") or [0]),
        "n_train": run_cfg["data"].get("n_images"), "key_n": 16,
        "n_fake": s.get("n_fake"), "n_fake_is": s.get("n_fake_is"),
        "n_real": scores.get("real_stats", {}).get("n"),
        "n_audit": audit.get("settings", {}).get("n_fake"),
        "n_audit_real": audit.get("settings", {}).get("n_real"),
        "n_test": utility.get("test", {}).get("n")}
    return defaultdict(lambda: "n/a", {k: v for k, v in known.items() if v is not None})


def final_table(rows: list[dict[str, Any]]) -> Markup:
    """Table 1's final snapshot and floors as a small Markdown table (the first page)."""
    if not rows:
        return Markup("(the run was not scored)")
    lines = ["| snapshot or floor | FID | KID | n pair (generated or held-out vs real) "
             "| floor at the same n |", "| --- | ---: | ---: | ---: | --- |"]
    for r in rows:
        fid = "unavailable" if r["FID"] is None else f"{r['FID']:.1f}"
        kid = "unavailable" if r["KID"] is None else f"{r['KID']:.4f}"
        bound = "" if not r["row"].startswith("floor") else "yes" if r["bound"] else "no"
        lines.append(f"| {safe_text.markdown(r['row'])} | {fid} | {kid} | {r['n pair']} | "
                     f"{bound} |")
    return Markup("\n".join(lines))


def compact_table(out: Path, art: artefacts.Artefact) -> Markup:
    """The table of ``art`` as the report shows it: its ``columns`` from the CSV (every
    column when None, the Markdown as written), without the full caption."""
    if art.columns is None:
        text = (out / art.file).read_text(encoding="utf-8").strip()
        return Markup(text.split("\n\n")[0])  # the table; its full caption stays in the file
    df = pd.read_csv(out / art.file.replace(".md", ".csv"), keep_default_na=False)
    df = df[[c for c in art.columns if c in df.columns]]
    shown = df.rename(columns=safe_text.markdown).map(
        lambda v: safe_text.markdown(v) if isinstance(v, str) else v)
    return Markup(shown.to_markdown(index=False, floatfmt=".4g"))


def protocol_notes(out: Path) -> Markup:
    """What each FID protocol is, once: protocols whose explanations differ only in a number
    (the feature widths, the JPEG qualities) share one line, with N standing for it.

    >>> import tempfile
    >>> d = Path(tempfile.mkdtemp()); (d / "tables").mkdir()
    >>> pd.DataFrame({"protocol": ["768-d", "64-d"], "what it is": ["the 768-d layer",
    ...     "the 64-d layer"]}).to_csv(d / "tables" / "fid_protocols_notes.csv", index=False)
    >>> print(protocol_notes(d))
    - **768-d, 64-d** (N = 768, 64): the N-d layer
    """
    path = out / "tables" / "fid_protocols_notes.csv"
    if not path.is_file():
        return Markup("")
    notes = pd.read_csv(path, keep_default_na=False)
    groups: dict[str, list[tuple[str, str]]] = {}
    for label, text in zip(notes["protocol"], notes["what it is"], strict=True):
        groups.setdefault(re.sub(r"\d+", "#", text), []).append((label, text))
    lines = []
    for members in groups.values():
        labels = ", ".join(safe_text.markdown(label) for label, _ in members)
        text, values = _merge_numbers([text for _, text in members])
        lines.append(f"- **{labels}**{f' (N = {values})' if values else ''}: "
                     f"{safe_text.markdown(text)}")
    return Markup("\n".join(lines))


def _merge_numbers(texts: list[str]) -> tuple[str, str]:
    """Texts equal but for some numbers -> (the first with those numbers as N, their values)."""
    pieces = [re.split(r"(\d+)", t) for t in texts]  # text, number, text, number, ...
    differ = [i for i, column in enumerate(zip(*pieces, strict=True)) if len(set(column)) > 1]
    merged = "".join("N" if i in differ else piece for i, piece in enumerate(pieces[0]))
    return merged, ", ".join(p[differ[0]] for p in pieces) if differ else ""


def _is_note(scores: dict[str, Any]) -> str:
    """Why the IS is unavailable, once (the table's note column repeats it per row)."""
    notes = {r.get("unavailable") for r in scores.get("scores", []) if r["metric"] == "is"}
    notes.discard(None)
    return "; ".join(sorted(notes))


def headline(scores: dict[str, Any]) -> str:
    """One sentence of results: FID first -> last snapshot, against the floor."""
    fids = [r for r in scores.get("scores", []) if r["metric"] == "fid" and r["value"] is not None
            and not r.get("class_name")]
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


def provenance_rows(run_cfg: dict[str, Any], results: dict[str, dict[str, Any]]) -> list[tuple]:
    """(item, value) rows of the report's one Provenance section: data, preprocessing,
    training, sampling, extractor and weights, scoring, audit, studies, versions."""
    c, data, scores = run_cfg["config"], run_cfg["data"], results["scores"]
    seg = (run_cfg.get("segments") or [{}])[-1]
    rows = [("data", f"{data['description']}; {data['n_images']:,} training images used"),
            ("data fingerprint", f"{data['fingerprint']} (pixels, labels, size, preprocessing)"),
            ("preprocessing", f"gray, {c['image_size']} x {c['image_size']} px, made square "
                              f"by '{c.get('resize', 'crop')}'"),
            ("run", f"{run_cfg['config']['name']} (profile {c['profile']}), training seed "
                    f"{c['seed']}, {run_cfg['precision']} on {run_cfg['device']}"
                    + (f" ({run_cfg['device_name']})" if run_cfg.get("device_name") else "")),
            ("training threads / CPU class", f"{seg.get('threads', 'not recorded')} / "
                                              f"{seg.get('cpu_isa', 'not recorded')}")]
    if scores:
        w = scores["weights"]
        rows += [("sampling rule", scores["sampling"]),
                 ("feature extractor", f"{scores['extractor']}; extraction "
                                       f"{scores.get('extraction', 'not recorded')}"),
                 ("Inception weights", f"{w['origin']}: {w['path']}"),
                 ("weights SHA-256", w["sha256"]),
                 ("scoring", f"{scores['device']}, {scores['precision']}, {scores['threads']} "
                             f"thread(s), {scores['processes']} process(es); latents seed "
                             f"{scores['settings']['seed']}; n_fake {scores['settings']['n_fake']:,}"
                             f", n_real {scores['real_stats']['n']:,}"),
                 ("weights note", w.get("note", "none"))]
    else:
        rows.append(("scores", "not computed (no scores.json in the run folder)"))
    for name, label in (("audit", "audit"), ("protocols", "FID protocols")):
        r = results[name]
        if r and scores and (r.get("extractor"), (r.get("weights") or {}).get("sha256")) != \
                (scores["extractor"], scores["weights"]["sha256"]):
            rows.append((label, f"other features: {r['extractor']}, weights "
                                f"{(r.get('weights') or {}).get('sha256')}"))
        elif r:
            rows.append((label, f"the same extractor and weights; latents seed "
                                f"{r['settings']['seed']}"))
    if results["utility"]:
        u = results["utility"]
        rows.append(("usefulness classifier", f"{u['classifier']['architecture']}, seeds "
                                               f"{u['seeds']}"))
    rows.append(("git commit", run_cfg.get("git_commit") or "unknown"))
    rows.append(("versions", ", ".join(f"{k} {v}" for k, v in run_cfg["versions"].items())))
    return [(k, storage.portable(str(v))) for k, v in rows]


def _layout(html: str) -> str:
    """Page structure the Markdown cannot say: the first page in its own block (the sections
    start on page 2), each figure paragraph and its caption marked for the print layout."""
    first = html.find("<h2")
    if first > 0:
        html = (f'<div class="first-page">{html[:first]}</div>\n'
                + html[first:].replace("<h2", '<h2 class="first-section"', 1))
    html = re.sub(r"<p>(<img [^>]*>)</p>", r'<p class="figure">\1</p>', html)
    return html.replace("<p><em>", '<p class="caption"><em>')  # captions: italic paragraphs


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


def html_page(body: str, title: str) -> str:
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title}"
            f"</title><style>{SCREEN_CSS}{PRINT_CSS}</style></head><body>\n{body}\n"
            "</body></html>\n")


__all__ = ["render_report", "report_context", "facts", "final_table", "compact_table",
           "protocol_notes",
           "headline", "provenance_rows", "load_template", "html_page", "PRINT_CSS"]
