"""The README's figure: real training X-rays beside each run's generated ones, stamped.

One panel of real training images (the first of the seeded permutation scoring uses) and one
panel per run (its final snapshot, the first latents of the scoring seed, sampled by the
snapshot's rule), with a caption that says what each panel is, the data source and its
fingerprint, and the commit. A gray PNG, kept under 300 KB.

    .venv/bin/python benchmarks/real_figure.py --runs real-quick-s0,real-quick-s1,real-quick-s2 \\
        --out benchmarks/results/real_vs_generated.png
"""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from gan_lib import config, metrics, storage
from gan_lib.gan import grids, run_folder, sampling
from gan_lib.metrics import features
from gan_lib.report import plots  # noqa: E402

MAX_BYTES = 300_000


def panels(runs: list[str], n: int) -> tuple[list[tuple[str, object]], dict]:
    """[(title, grid array)] for the real images and each run, and the first run's data info."""
    meta = run_folder.load_run_config(runs[0])
    ds = metrics.load_real(meta, "train")
    order = features.subset_order(len(ds.images))
    out = [("real training images", grids.grid_array(ds.images[order[:n]], nrow=4))]
    seed = config.make_score_config("quick").seed
    for run in runs:
        iteration, path = run_folder.list_snapshots(run)[-1]
        run_meta = run_folder.load_run_config(run)
        fakes = sampling.generate(path, n, seed=seed)
        out.append((f"{run_folder.run_path(run).name}\n(seed {run_meta['config']['seed']}, "
                    f"iteration {iteration})", grids.grid_array(fakes, nrow=4)))
    return out, {"description": ds.description, "fingerprint": ds.fingerprint}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", required=True, help="comma-separated run names")
    p.add_argument("--n", type=int, default=16, help="images per panel (4 per row)")
    p.add_argument("--out", required=True)
    p.add_argument("--dpi", type=int, default=100)
    args = p.parse_args()
    runs = args.runs.split(",")
    shown, data = panels(runs, args.n)
    fig, axes = plt.subplots(1, len(shown), figsize=(2.4 * len(shown), 3.3))
    for ax, (title, grid) in zip(axes, shown, strict=True):
        ax.imshow(grid, cmap="gray", vmin=0, vmax=255)
        ax.set_title(title, fontsize=8)
        ax.axis("off")
    plots.add_caption(fig, f"Real vs generated, 64 px. Data: {data['description']}, fingerprint "
                           f"{data['fingerprint']} (Kermany et al. 2018, CC BY 4.0; 224 px "
                           "redistributed copy, aspect squashed). Generated: final snapshot, "
                           "scoring latents, BatchNorm re-estimated. Made by "
                           f"{' '.join(['benchmarks/real_figure.py', *sys.argv[1:]])} at "
                           f"commit {(run_folder.git_commit() or 'unknown')[:10]}.")
    png = io.BytesIO()
    fig.savefig(png, dpi=args.dpi, bbox_inches="tight", format="png")
    size = len(png.getvalue())
    if size > MAX_BYTES:  # checked before anything is written
        raise SystemExit(f"the figure is {size:,} bytes, over {MAX_BYTES:,}: use fewer images "
                         "(--n) or a lower --dpi")
    with storage.atomic_path(Path(args.out)) as tmp:
        Path(tmp).write_bytes(png.getvalue())
    print(f"wrote {args.out} ({size:,} bytes)")


if __name__ == "__main__":
    main()
