"""Figures and tables of the report. Plots only read what training and scoring wrote.

Every figure carries a caption line at its foot naming how it was made (data source, run,
sample counts), so a PNG lifted out of the report still says what it shows.

Example:
    >>> import torch
    >>> fig = plot_by_class(torch.zeros(8, 1, 64, 64, dtype=torch.uint8),
    ...                         torch.tensor([0, 1] * 4), ["NORMAL", "PNEUMONIA"], "demo")
    >>> len(fig.axes)
    2
"""

from __future__ import annotations

import os
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use(os.environ.get("MPLBACKEND", "Agg"))  # headless unless a notebook chose one

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from .. import storage  # noqa: E402
from ..gan.grids import grid_array  # noqa: E402
from ..studies import utility, utility_tables  # noqa: E402
from . import safe_text  # noqa: E402

sns.set_theme(context="notebook", style="whitegrid")


def save_figure(fig: plt.Figure, path: str | os.PathLike, dpi: int = 150) -> Path:
    """Write ``fig`` as a PNG atomically and close it."""
    path = Path(path)
    with storage.atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, bbox_inches="tight", format="png")
    plt.close(fig)
    return path


def add_caption(fig: plt.Figure, caption: str) -> None:
    """Lay the figure out, then put the caption under the lowest axes, wrapped to its width."""
    fig.tight_layout()
    if caption:
        y0 = min(ax.get_tightbbox().y0 for ax in fig.axes) / fig.bbox.height
        chars = int(fig.get_figwidth() * 15)  # ~15 characters of 8-pt text per inch
        fig.text(0.5, y0 - 0.01, textwrap.fill(caption, chars), ha="center", va="top",
                 fontsize=8, color="0.25", parse_math=False)  # a '$' in a path is a '$'


def plot_by_class(images: torch.Tensor, labels: torch.Tensor, class_names: Sequence[str],
                      caption: str, n_per_class: int = 16) -> plt.Figure:
    """The first ``n_per_class`` images of each class, one panel per class (Figure 1 for real
    images; fresh samples per class for a conditional run)."""
    fig, axes = plt.subplots(1, len(class_names), figsize=(4.5 * len(class_names), 4.8))
    for k, (ax, name) in enumerate(zip(np.atleast_1d(axes), class_names, strict=True)):
        idx = torch.nonzero(labels == k).flatten()[:n_per_class]
        ax.axis("off")
        if len(idx) == 0:
            ax.set_title(f"{name} (none)")
            continue
        ax.imshow(grid_array(images[idx], nrow=int(np.ceil(np.sqrt(n_per_class)))),
                  cmap="gray", vmin=0, vmax=255)
        ax.set_title(f"{name} ({int((labels == k).sum()):,} images)")
    add_caption(fig, caption)
    return fig


def plot_samples(images: torch.Tensor, title: str, caption: str) -> plt.Figure:
    """One square grid of images (e.g. fresh samples from a snapshot) with a title and caption."""
    fig, ax = plt.subplots(figsize=(6, 6.3))
    ax.imshow(grid_array(images, nrow=int(np.ceil(np.sqrt(len(images))))), cmap="gray",
              vmin=0, vmax=255)
    ax.set_title(title)
    ax.axis("off")
    add_caption(fig, caption)
    return fig


def plot_intensity_histograms(images: torch.Tensor, labels: torch.Tensor,
                              class_names: Sequence[str], caption: str) -> plt.Figure:
    """Pixel-intensity densities (0..255) per class, each class normalised to area 1."""
    rows = []
    for k, name in enumerate(class_names):
        px = images[labels == k].flatten()
        counts = torch.bincount(px.long(), minlength=256).double()
        rows.append(pd.DataFrame({"intensity": np.arange(256), "class": name,
                                  "density": (counts / counts.sum().clamp(min=1)).numpy()}))
    df = pd.concat(rows, ignore_index=True)
    fig, ax = plt.subplots(figsize=(7, 4))
    sns.lineplot(data=df, x="intensity", y="density", hue="class", ax=ax)
    ax.set(xlim=(0, 255), xlabel="pixel intensity (uint8)", ylabel="fraction of pixels",
           title="Pixel-intensity distribution per class")
    add_caption(fig, caption)
    return fig


def plot_losses(rows: list[dict], caption: str, smooth: int | None = None) -> plt.Figure:
    """Figure 2: G and D losses per iteration (raw, faint) with a moving average; D(x), D(G(z))."""
    if not rows:
        raise ValueError("no loss records: expected losses.jsonl rows written by train()")
    df = pd.DataFrame(rows)
    window = smooth or max(1, len(df) // 50)
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(9, 6.5), sharex=True,
                                   gridspec_kw={"height_ratios": [3, 2]})
    for col, label, color in (("loss_D", "D", "C0"), ("loss_G", "G", "C1")):
        ax1.plot(df["iter"], df[col], color=color, alpha=0.25, lw=0.8)
        ax1.plot(df["iter"], df[col].rolling(window, min_periods=1).mean(), color=color,
                 lw=1.8, label=f"{label} loss ({window}-iteration mean)")
    ax1.set(ylabel="BCE loss", title="Generator and discriminator loss during training")
    ax1.legend()
    for col, label, color in (("D_x", "D(x), real", "C2"), ("D_G_z", "D(G(z)), fake", "C3")):
        ax2.plot(df["iter"], df[col].rolling(window, min_periods=1).mean(), color=color,
                 lw=1.5, label=label)
    ax2.set(xlabel="iteration", ylabel="mean D output", ylim=(0, 1))
    ax2.legend()
    add_caption(fig, caption)
    return fig


def plot_grid_pair(left_png: str | os.PathLike, right_png: str | os.PathLike,
                   titles: tuple[str, str], caption: str) -> plt.Figure:
    """Figure 3: two saved grids side by side (e.g. halfway and end of training)."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 5.8))
    for ax, png, title in zip(axes, (left_png, right_png), titles, strict=True):
        ax.imshow(np.asarray(Image.open(png).convert("L")), cmap="gray", vmin=0, vmax=255)
        ax.set_title(title)
        ax.axis("off")
    add_caption(fig, caption)
    return fig


def plot_panels(panels: Sequence[tuple[str, torch.Tensor]], caption: str,
                nrow: int = 4) -> plt.Figure:
    """Image sets side by side, one titled panel each (uint8 [N, 1, S, S] tiled ``nrow`` to a
    row): real images beside each generator's, drawn from the same latents by the caller."""
    fig, axes = plt.subplots(1, len(panels), figsize=(2.4 * len(panels), 3.3), squeeze=False)
    for ax, (title, images) in zip(axes[0], panels, strict=True):
        ax.imshow(grid_array(images, nrow=nrow), cmap="gray", vmin=0, vmax=255)
        ax.set_title(title, fontsize=8)
        ax.axis("off")
    add_caption(fig, caption)
    return fig


def plot_evolution(grid_pngs: Sequence[str | os.PathLike], labels: Sequence[str], caption: str,
                   row_height_px: int | None = None, max_rows: int = 12) -> plt.Figure:
    """Evolution strip: the top row of each fixed-noise grid, one strip per epoch, top to bottom.

    The top row of an 8-column grid is the same 8 latents every epoch, so reading down a column
    follows one latent through training. At most ``max_rows`` grids, evenly spaced, are shown.
    """
    if not grid_pngs:
        raise ValueError("no grid images: expected runs/NAME/grids/epoch_*.png written by train()")
    pick = np.unique(np.linspace(0, len(grid_pngs) - 1, min(max_rows, len(grid_pngs))).round()
                     .astype(int))
    strips = []
    for i in pick:
        img = np.asarray(Image.open(grid_pngs[i]).convert("L"))
        h = row_height_px or _first_row_height(img)
        strips.append(img[:h])
    fig, axes = plt.subplots(len(strips), 1, figsize=(10, 1.25 * len(strips) + 0.4), squeeze=False)
    for ax, strip, i in zip(axes[:, 0], strips, pick, strict=True):
        ax.imshow(strip, cmap="gray", vmin=0, vmax=255)
        ax.set_yticks([])
        ax.set_xticks([])
        ax.set_ylabel(labels[i], rotation=0, ha="right", va="center", fontsize=9)
    axes[0, 0].set_title("Fixed-noise samples across training (one row per grid)")
    add_caption(fig, caption)
    return fig


def _first_row_height(grid: np.ndarray) -> int:
    """Height of the first tile row of a make_grid image: up to the first all-white pad line."""
    white = np.all(grid == 255, axis=1)
    start = int(np.argmin(white))  # skip the top padding
    after = np.nonzero(white[start:])[0]
    return start + int(after[0]) + 1 if len(after) else grid.shape[0]


def plot_fid_curve(rows: Sequence[dict], floors: dict[str, float], caption: str,
                   ylabel: str = "FID (lower is better)") -> plt.Figure:
    """FID against training iteration, with real-vs-real floors as horizontal lines."""
    df = pd.DataFrame(rows)
    fig, ax = plt.subplots(figsize=(7, 4.2))
    ax.plot(df["iteration"], df["fid"], marker="o", color="C0", label="generated vs real")
    for (label, value), color in zip(floors.items(), ("C2", "C4", "C5"), strict=False):
        ax.axhline(value, ls="--", color=color, label=f"floor: {label} ({value:.2f})")
    ax.set(xlabel="training iteration", ylabel=ylabel, title="FID during training")
    ax.set_ylim(bottom=0)
    # below the axes: inside, the floors' long labels cover the curve (a conditional run's three)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), fontsize=8, frameon=False)
    add_caption(fig, caption)
    return fig


def write_table(df: pd.DataFrame, tables_dir: str | os.PathLike, name: str,
                caption: str = "", floatfmt: str = ".4g") -> tuple[Path, Path]:
    """Write ``name.csv`` and ``name.md`` (GitHub Markdown, caption below the table), atomically.

    Text is made inert where it lands (safe_text.py): a cell a spreadsheet would run as a
    formula gets a leading quote in the CSV; in the Markdown every text cell, header and the
    caption show as themselves (no tags, links or extra cells from a reader id or a path).
    """
    tables_dir = Path(tables_dir)
    csv_path, md_path = tables_dir / f"{name}.csv", tables_dir / f"{name}.md"
    storage.write_text(csv_path, df.map(safe_text.csv_cell).to_csv(index=False))
    shown = df.rename(columns=safe_text.markdown).map(
        lambda v: safe_text.markdown(v) if isinstance(v, str) else v)
    md = shown.to_markdown(index=False, floatfmt=floatfmt)
    storage.write_text(md_path, md + (f"\n\n{safe_text.markdown(caption)}\n" if caption else "\n"))
    return csv_path, md_path


def plot_closest_pairs(fakes: torch.Tensor, neighbours: torch.Tensor, labels: Sequence[str],
                       caption: str) -> plt.Figure:
    """Generated images (top of each pair) above their nearest training image, with distances."""
    n = len(fakes)
    cols = min(8, n)
    rows = 2 * int(np.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(1.6 * cols, 1.75 * rows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for k in range(n):
        r, c = 2 * (k // cols), k % cols
        axes[r, c].imshow(fakes[k, 0].numpy(), cmap="gray", vmin=0, vmax=255)
        axes[r, c].set_title(labels[k], fontsize=6)
        axes[r + 1, c].imshow(neighbours[k, 0].numpy(), cmap="gray", vmin=0, vmax=255)
        axes[r + 1, c].set_title("nearest training", fontsize=6)
    add_caption(fig, caption)
    return fig


def plot_fid_vs_inverse_n(curves: dict[str, dict], caption: str) -> plt.Figure:
    """FID against 1/n with the fit FID_n = FID_inf + k/n, one line per snapshot or floor."""
    fig, ax = plt.subplots(figsize=(7, 4.4))
    for (label, curve), color in zip(curves.items(), sns.color_palette("tab10"), strict=False):
        x = np.array([1 / p["n"] for p in curve["points"]])
        ax.plot(x, [p["fid"] for p in curve["points"]], "o", color=color)
        grid = np.linspace(0, x.max(), 20)
        ax.plot(grid, curve["fid_inf"] + curve["slope_k"] * grid, "-", color=color,
                label=f"{label}: FID_inf {curve['fid_inf']:.1f}")
    ax.set(xlabel="1 / n (generated or held-out images)", ylabel="FID",
           title="FID against 1/n, extrapolated to n = infinity")
    ax.set_xlim(left=0)
    ax.legend(fontsize=7)
    add_caption(fig, caption)
    return fig


def plot_reader_study(table: pd.DataFrame, roc: dict[str, np.ndarray], caption: str) -> plt.Figure:
    """Reader study: accuracy per reader and pooled with 95% intervals against chance; pooled ROC.

    ``table`` is :func:`gan_lib.studies.quiz_stats.study_table`'s (pooled row last), ``roc`` the pooled
    curve of the signed confidence ({'fpr', 'tpr'}).
    """
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4.2),
                                      gridspec_kw={"width_ratios": [1.4, 1]})
    y = np.arange(len(table))[::-1]  # first reader on top, pooled at the bottom
    acc = table["accuracy"].to_numpy()
    err = [acc - table["95% CI low"].to_numpy(), table["95% CI high"].to_numpy() - acc]
    colors = ["C0"] * (len(table) - 1) + ["C3"]
    for k in range(len(table)):
        left.errorbar(acc[k], y[k], xerr=[[err[0][k]], [err[1][k]]], fmt="o", color=colors[k],
                      capsize=4)
    left.axvline(0.5, ls="--", color="0.4", label="chance (0.5)")
    left.set_yticks(y, [f"{r} (n={n})" for r, n in zip(table["reader"], table["n"], strict=True)],
                    parse_math=False)  # reader ids are shown as typed
    left.set(xlim=(0, 1.02), xlabel="accuracy (exact 95% interval)",
             title="Real or fake: accuracy per reader")
    left.legend(loc="lower left", fontsize=8)
    pooled = table.iloc[-1]
    right.plot(roc["fpr"], roc["tpr"], marker="o", color="C3",
               label=f"pooled, AUC {pooled['AUC']:.2f} (n={int(pooled['n'])})")
    right.plot([0, 1], [0, 1], ls="--", color="0.4", label="chance")
    right.set(xlabel="1 - specificity (reals called fake)",
              ylabel="sensitivity (fakes called fake)", title="ROC of the confidence ratings",
              xlim=(0, 1), ylim=(0, 1.02))
    right.set_aspect("equal")
    right.legend(loc="lower right", fontsize=8)
    add_caption(fig, caption)
    return fig


def plot_fid_protocols(points: pd.DataFrame, band: tuple[float, float], band_label: str,
                       caption: str) -> plt.Figure:
    """FID of each set (snapshot or floor) under each protocol, one row per protocol, on a
    symmetric-log axis (values from ~0 to hundreds); ``band`` shades a range of FIDs."""
    order = list(dict.fromkeys(points["protocol"]))
    fig, ax = plt.subplots(figsize=(9, 0.42 * len(order) + 1.6))
    ax.axvspan(*band, color="C3", alpha=0.15, label=band_label)
    sets = list(dict.fromkeys(points["set"]))
    for k, (name, color) in enumerate(zip(sets, sns.color_palette("tab10"), strict=False)):
        of_set = points[points["set"] == name]
        y = [order.index(p) + (k - (len(sets) - 1) / 2) * 0.12 for p in of_set["protocol"]]
        ax.plot(of_set["fid"], y, "x" if name.startswith("floor") else "o", color=color,
                label=name, ms=6)
    ax.set_xscale("symlog", linthresh=1e-3)
    ax.set_yticks(range(len(order)), order, fontsize=8)
    ax.invert_yaxis()
    ax.set(xlabel="FID (symmetric log scale; lower is better)",
           title="The same images under different FID protocols")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1))
    add_caption(fig, caption)
    return fig


def plot_utility_curves(results: dict[str, Any], data_description: str = "",
                        caption_text: str = "") -> plt.Figure:
    """The usefulness study's classifier training (:func:`gan_lib.studies.utility.utility_run`):
    loss and accuracy per epoch, one line per way; mean over seeds, band min..max."""
    df = utility_tables.curves_frame(results)
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, key, label in zip(axes, ("loss", "accuracy"),
                              ("class-balanced BCE (training)", "accuracy (training set)"),
                              strict=True):
        for way in (w for w in utility.WAYS if w in set(df["way"])):
            stats = df[df["way"] == way].groupby("epoch")[key].agg(["mean", "min", "max"])
            color, style = utility_tables.WAY_STYLE[way]
            ax.plot(stats.index, stats["mean"], style, marker="o", color=color, label=way)
            ax.fill_between(stats.index, stats["min"], stats["max"], color=color, alpha=0.2)
        ax.set(xlabel="epoch", ylabel=label)
        ax.xaxis.get_major_locator().set_params(integer=True)
    axes[0].set_title("Classifier training loss")
    axes[1].set_title("Classifier training accuracy")
    axes[1].legend(fontsize=8)
    n = len(results["seeds"])
    caption = utility_tables.caption(results, data_description)
    add_caption(fig, caption_text or (f"Mean over {n} seed{'s' * (n > 1)}; band: min to max "
                                      "over seeds. " + caption))
    return fig
