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

from gan_lib import config, metrics, storage
from gan_lib.gan import run_folder
from gan_lib.report import plots
from gan_lib.studies import recipe_comparison

MAX_BYTES = 300_000


def panels(runs: list[str], n: int) -> tuple[list[tuple[str, object]], dict]:
    """[(title, uint8 images)] for the real images and each run, and the first run's data info."""
    shown = recipe_comparison.real_and_generated(runs, n, config.make_score_config("quick").seed)
    ds = metrics.load_real(run_folder.load_run_config(runs[0]), "train")
    return shown, {"description": ds.description, "fingerprint": ds.fingerprint}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", required=True, help="comma-separated run names")
    p.add_argument("--n", type=int, default=16, help="images per panel (4 per row)")
    p.add_argument("--out", required=True)
    p.add_argument("--dpi", type=int, default=100)
    args = p.parse_args()
    runs = args.runs.split(",")
    shown, data = panels(runs, args.n)
    fig = plots.plot_panels(shown, storage.portable(  # no folder of this machine in it
        f"Real vs generated, 64 px. Data: {data['description']}, fingerprint "
        f"{data['fingerprint']} (Kermany et al. 2018, CC BY 4.0; 224 px redistributed copy, "
        "aspect squashed). Generated: final snapshot, the same scoring latents for every run, "
        "BatchNorm re-estimated. Made by "
        f"{' '.join(['benchmarks/real_figure.py', *sys.argv[1:]])} at commit "
        f"{(run_folder.git_commit() or 'unknown')[:10]}."))
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
