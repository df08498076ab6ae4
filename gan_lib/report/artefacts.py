"""The one registry of report artefacts: every figure and table, its file, section and caption.

Notebooks write artefacts by name (:func:`save`), the report places them by section
(:func:`in_section`), and the tests read the same table, so adding a figure touches this file
and the notebook that draws it. Captions are built here for every notebook: each says how the
artefact was made (run, data source, sizes), so a PNG lifted out of the report still does.

Example:
    >>> ARTEFACTS["fig2_losses"].file, ARTEFACTS["fig2_losses"].notebook
    ('figures/fig2_losses.png', '03_plot_losses')
    >>> [a.name for a in in_section("fid") if a.kind == "table"]
    ['fid']
    >>> [a.name for a in in_section("reader") if a.optional]
    ['reader_study', 'reader_study_figure']
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..metrics import score_tables
from ..studies import quiz_stats, utility_tables

SECTIONS = ("data", "training", "is", "fid", "recipe", "protocols", "audit", "utility",
            "reader")  # report order


@dataclass(frozen=True)
class Artefact:
    name: str  # also the file stem
    kind: str  # figure (PNG) | table (CSV + Markdown)
    notebook: str  # the notebook that writes it
    section: str  # where the report places it: one of SECTIONS
    title: str  # the line under it in the report
    caption: Callable[..., str]  # the full caption, drawn into the figure / under the table
    # Written only when its input exists (reader answers; a conditional run) or its section
    # is switched on (FID protocols, on by default): a report without it is complete.
    optional: bool = False

    @property
    def file(self) -> str:
        """Path under reports/: figures/NAME.png, or tables/NAME.md (with NAME.csv beside it)."""
        return f"figures/{self.name}.png" if self.kind == "figure" else f"tables/{self.name}.md"


# --- caption builders: one per artefact, from what the notebook has at hand -------------------


def _data_note(meta: dict[str, Any]) -> str:
    return f"Data: {meta['data']['description']}, {meta['data']['n_images']:,} training images."


def _data_summary(ds: Any) -> str:
    return (f"Images per class and split ({ds.image_size}x{ds.image_size} px after "
            f"preprocessing). Data: {ds.description}.")


def _real_samples(ds: Any) -> str:
    kind = "SYNTHETIC phantom" if ds.is_synthetic else "Real"
    return (f"Figure 1. {kind} training images, first 16 per class ({ds.split} split, "
            f"{len(ds):,} images, {ds.image_size}x{ds.image_size} px). Data: {ds.description}.")


def _histograms(ds: Any) -> str:
    return (f"Pixel intensities (uint8, after preprocessing to {ds.image_size}x{ds.image_size} "
            f"px) per class, {ds.split} split. Data: {ds.description}.")


def _losses(meta: dict[str, Any], n_rows: int) -> str:
    c = meta["config"]
    return (f"Run '{c['name']}': {n_rows:,} iterations, batch {c['batch_size']}, "
            f"{c['image_size']} px, Adam lr {c['lr']:g} (beta1 {c['beta1']}), "
            f"{meta['precision']} on {meta['device']}. " + (
                "Losses are the hinge loss on logits (D: real + fake; G: -D(G(z)))"
                if c.get("loss") == "hinge" else "Losses are BCE on logits (D: real + fake; "
                "G: non-saturating)") + f". {_data_note(meta)}")


def _halfway_final(meta: dict[str, Any], half: tuple, final: tuple) -> str:
    c = meta["config"]
    return (f"Run '{c['name']}': the same {c['grid_size']} latents (fixed noise) after "
            f"{half[1]:,} and {final[1]:,} of {c['iterations']:,} iterations, generator with "
            f"BatchNorm statistics re-estimated on its weights at each grid. {_data_note(meta)}")


def _evolution(meta: dict[str, Any]) -> str:
    return (f"Run '{meta['config']['name']}': the top row of each fixed-noise grid, epoch by "
            f"epoch (one column = one latent). {_data_note(meta)}")


def _samples(meta: dict[str, Any], snapshot: dict[str, Any], n: int, seed: int) -> str:
    return (f"Run '{meta['config']['name']}': {n} fresh samples (seed {seed}) from the final "
            f"snapshot ({snapshot['weights']}, iteration {snapshot['iteration']:,}; "
            f"{snapshot['sampling']['description']}) via gan_lib.gan.sampling.generate. "
            f"{_data_note(meta)}")


def _samples_by_class(meta: dict[str, Any], snapshot: dict[str, Any], n: int, seed: int) -> str:
    return (f"Run '{meta['config']['name']}' (class-conditional): {n} fresh samples per class "
            f"(seed {seed}), each class asked for by name, from the final snapshot "
            f"({snapshot['weights']}, iteration {snapshot['iteration']:,}). "
            f"{_data_note(meta)}")


def _utility(result: dict[str, Any]) -> str:
    return (f"Run '{result['run']}', iteration {result['iteration']:,} ({result['weights']}). "
            + utility_tables.caption(result, result["data"]["description"]))


def _fid_curve(scores: dict[str, Any]) -> str:
    return f"Run '{scores['run']}'. {score_tables.provenance(scores)}"


def _fid_protocols(result: dict[str, Any]) -> str:
    band = " / ".join(f"{v:g}" for v in result["original"]["fid"])
    return ("FID of each snapshot (dots) and of held-out real images (crosses, the floor) under "
            "each protocol, n pairs as in the table above; shaded: the range of the original "
            f"report's FIDs ({band}). {score_tables.protocol_provenance(result)}")


def _closest(audit: dict[str, Any]) -> str:
    m = audit["memorization"]
    return (f"Run '{audit['run']}', iteration {m['iteration']}: the 16 generated images (of "
            f"{m['pixel (RMS)']['n_fake']}) closest in pixels to a training image, each above "
            "its nearest training image; titles: pixel RMS distance, cosine feature distance, "
            "and the share of test images closer to the training set (a percentile). "
            f"Data: {audit['data']['description']}.")


def _fid_inverse_n(audit: dict[str, Any]) -> str:
    return ("FID against 1/n for each snapshot and the real-vs-real sets, with the fit "
            "FID_n = FID_inf + k/n; a snapshot is above its floor where its line stays above "
            "the floor's at every n. " + score_tables.audit_caption(audit, "audit"))


def _recipe_comparison(result: dict[str, Any]) -> str:
    options = ", ".join(f"{k}={v}" for k, v in result["options"].items())
    floor = result["floor"]
    return (f"Run '{result['recipe']}' ({options}) beside its DCGAN twin '{result['dcgan']}' "
            f"(the same data, length, batch and seed {result['seed']}, every option at the "
            f"DCGAN's value), both scored alike: {floor['n_fake']:,} generated images against "
            f"{floor['n_real']:,} real training images per snapshot; the floor is held-out "
            "training images at the same n pair. One training seed: the comparison over seeds "
            "by the declared rule is docs/recipes.md's.")


def _recipe_figure(result: dict[str, Any], n: int) -> str:
    return (f"Real training images beside the final snapshots of '{result['dcgan']}' (DCGAN) and "
            f"'{result['recipe']}' (recipe), {n} images each; both generators are given the "
            "same latents (the scoring seed), so the panels differ only by the networks.")


ARTEFACTS: dict[str, Artefact] = {a.name: a for a in (
    Artefact("data_summary", "table", "01_explore_data", "data",
             "Images per class and split.", _data_summary),
    Artefact("fig1_real_samples", "figure", "01_explore_data", "data",
             "Figure 1. Training images per class (the data source is named under the figure).",
             _real_samples),
    Artefact("data_intensity_histograms", "figure", "01_explore_data", "data",
             "Pixel-intensity distribution of the training images per class.", _histograms),
    Artefact("fig2_losses", "figure", "03_plot_losses", "training",
             "Figure 2. Generator and discriminator losses per iteration.", _losses),
    Artefact("fig3_halfway_final", "figure", "04_generate_grids", "training",
             "Figure 3. Fixed-noise samples halfway through and at the end of training.",
             _halfway_final),
    Artefact("evolution_strip", "figure", "04_generate_grids", "training",
             "Fixed-noise samples across training (one row per epoch grid).", _evolution),
    Artefact("samples_final", "figure", "04_generate_grids", "training",
             "Fresh samples from the final generator snapshot.", _samples),
    Artefact("is", "table", "05_score_is_fid", "is", "Inception Score.",
             lambda scores: score_tables.table_caption(scores, "is")),
    Artefact("fid", "table", "05_score_is_fid", "fid", "Table 1. FID and KID per snapshot.",
             lambda scores: score_tables.table_caption(scores, "fid")),
    Artefact("fid_vs_iteration", "figure", "05_score_is_fid", "fid",
             "FID against training iteration, with the real-vs-real floors.", _fid_curve),
    # Notebook 09 writes these only for a run with options beyond the DCGAN (docs/recipes.md).
    Artefact("recipe_comparison", "table", "09_recipe_vs_dcgan", "recipe",
             "The recipe beside the DCGAN: FID and KID per snapshot, one training seed.",
             _recipe_comparison, optional=True),
    Artefact("recipe_figure", "figure", "09_recipe_vs_dcgan", "recipe",
             "Real | DCGAN | recipe, from the same latents.", _recipe_figure, optional=True),
    # Notebook 08 runs unless the report is built with fid_protocols=False (--no-fid-protocols).
    Artefact("fid_protocols", "table", "08_fid_protocols", "protocols",
             "Why FIDs disagree: this run's snapshots under each FID protocol.",
             lambda result: score_tables.protocol_caption(result, "values"), optional=True),
    Artefact("fid_protocols_figure", "figure", "08_fid_protocols", "protocols",
             "The same images under each FID protocol, against the original report's range.",
             _fid_protocols, optional=True),
    Artefact("fid_protocols_notes", "table", "08_fid_protocols", "protocols",
             "What each protocol does, and where the original report's FIDs fall against it.",
             lambda result: score_tables.protocol_caption(result, "notes"), optional=True),
    Artefact("audit", "table", "06_audit", "audit",
             "Fidelity, diversity and FID_inf per snapshot.",
             lambda audit: score_tables.audit_caption(audit, "audit")),
    Artefact("fid_vs_inverse_n", "figure", "06_audit", "audit",
             "FID against 1/n, extrapolated to infinitely many images.", _fid_inverse_n),
    Artefact("memorization", "table", "06_audit", "audit",
             "Copying of training images by the final snapshot.",
             lambda audit: score_tables.audit_caption(audit, "memorization")),
    Artefact("closest_to_training", "figure", "06_audit", "audit",
             "The generated images closest to a training image, beside it.", _closest),
    Artefact("samples_by_class", "figure", "04_generate_grids", "training",
             "Fresh samples of each class from the final snapshot (a conditional run).",
             _samples_by_class, optional=True),
    Artefact("utility", "table", "07_utility", "utility",
             "Are the images useful? A pneumonia classifier trained on real, synthetic and "
             "both, scored on real test images.", _utility, optional=True),
    Artefact("utility_curves", "figure", "07_utility", "utility",
             "The classifier's training loss per epoch, for each way of training it.",
             _utility, optional=True),
    # Not a notebook's: `python -m gan_lib quiz-score` writes these, and the report pipeline
    # does whenever reports/quiz/answers/ holds answers (gan_lib.quiz.score_answers).
    Artefact("reader_study", "table", "quiz-score", "reader",
             "Reader study: can people tell generated images from real ones?",
             quiz_stats.caption, optional=True),
    Artefact("reader_study_figure", "figure", "quiz-score", "reader",
             "Reader study: accuracy per reader against chance, and the pooled ROC.",
             quiz_stats.caption, optional=True),
)}


def caption(name: str, **context: Any) -> str:
    """The caption of artefact ``name`` from the notebook's objects (see each builder)."""
    return ARTEFACTS[name].caption(**context)


def path(name: str, reports_dir: str | os.PathLike) -> Path:
    """Where artefact ``name`` lives under ``reports_dir`` (the .md of a table)."""
    return Path(reports_dir) / ARTEFACTS[name].file


def save(name: str, obj: Any, reports_dir: str | os.PathLike, caption_text: str) -> Path:
    """Write a figure (matplotlib) or a table (DataFrame, CSV + Markdown) under its name."""
    from . import plots  # matplotlib loads only when something is drawn

    art = ARTEFACTS[name]
    if art.kind == "figure":
        return plots.save_figure(obj, path(name, reports_dir))
    return plots.write_table(obj, Path(reports_dir) / "tables", name, caption=caption_text)[1]


def in_section(section: str) -> list[Artefact]:
    """The artefacts the report places in ``section``, in report order."""
    if section not in SECTIONS:
        raise ValueError(f"section={section!r}: expected one of {SECTIONS}")
    return [a for a in ARTEFACTS.values() if a.section == section]
