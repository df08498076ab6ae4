"""A recipe run beside the report's DCGAN: the same data, length, seed and scoring.

A run trained with options beyond the DCGAN (docs/recipes.md; the profiles sn-hinge-quick and
sn-hinge-paper) has a *DCGAN twin*: the same settings with every option at the DCGAN's value
(:func:`dcgan_twin`). :func:`compare_with_dcgan` trains the twin (or reuses or resumes it, as
``runs/<run>-dcgan``), scores both with the same ScoreConfig, and returns FID and KID per
snapshot side by side with the floor at the same n pair; the report's section "The recipe
beside the DCGAN" (notebook 09) shows that table and real | DCGAN | recipe images drawn from
the same latents. A DCGAN run has no twin: ``None``, and the section is left out.

One pair of runs is one training seed: the comparison that decides whether the recipe wins is
benchmarks/recipes.py, over seeds and by the declared paired rule.

Example:
    >>> from gan_lib import config
    >>> dcgan_twin(config.make_train_config("quick")) is None
    True
    >>> twin = dcgan_twin(config.make_train_config("sn-hinge-quick", name="r"))
    >>> twin.name, twin.loss, twin.d_norm, twin.lr, twin.iterations
    ('r-dcgan', 'bce', 'batchnorm', 0.0002, 600)
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from .. import config, storage
from ..config import ScoreConfig, TrainConfig
from ..gan import run_folder, sampling, train
from ..metrics import calibrate, feature_extractor, features, scoring

# Every setting in which a recipe may differ from the report's DCGAN (TrainConfig's defaults)
RECIPE_SETTINGS = ("g_upsample", "d_norm", "d_mbstd", "loss", "lr", "beta1", "beta2", "lr_d",
                   "beta1_d", "beta2_d", "r1_gamma", "r1_every", "ac_weight", "augment",
                   "ema_decay", "ema_warmup")
TWIN_SUFFIX = "-dcgan"


def recipe_options(cfg: TrainConfig) -> dict[str, Any]:
    """The settings of ``cfg`` that differ from the report's DCGAN (empty: it is the DCGAN).
    ``ema_warmup`` and ``r1_every`` only count where the EMA or R1 is on."""
    dcgan = TrainConfig()
    out = {k: getattr(cfg, k) for k in RECIPE_SETTINGS if getattr(cfg, k) != getattr(dcgan, k)}
    if not cfg.ema_decay:
        out.pop("ema_warmup", None)
    if not cfg.r1_gamma:
        out.pop("r1_every", None)
    return out


def describe_options(config_dict: dict[str, Any]) -> str:
    """A run's options beyond the DCGAN in one line, for the report's settings table.

    >>> describe_options({"loss": "hinge"})
    'loss=hinge'
    >>> describe_options({})
    "none (the report's DCGAN)"
    """
    dcgan = TrainConfig().to_dict()
    options = recipe_options(TrainConfig.from_dict({**dcgan, **config_dict}))
    return ", ".join(f"{k}={v}" for k, v in options.items()) or "none (the report's DCGAN)"


def dcgan_twin(cfg: TrainConfig) -> TrainConfig | None:
    """``cfg`` with every recipe option at the DCGAN's value, named ``<name>-dcgan``; None
    when ``cfg`` is the DCGAN already."""
    options = recipe_options(cfg)
    if not options:
        return None
    dcgan = TrainConfig()
    return TrainConfig.from_dict({**cfg.to_dict(), **{k: getattr(dcgan, k) for k in options},
                                  "name": cfg.name + TWIN_SUFFIX})


def compare_with_dcgan(run_dir: str | os.PathLike,
                       score_cfg: ScoreConfig | None = None) -> dict[str, Any] | None:
    """Train (or reuse) the DCGAN twin of a recipe run, score both alike, and return the side
    by side scores; None for a DCGAN run. Writes ``<run>/recipe_comparison.json`` (atomic)."""
    run_dir = run_folder.run_path(run_dir)
    cfg = TrainConfig.from_dict(run_folder.load_run_config(run_dir)["config"])
    twin = dcgan_twin(cfg)
    if twin is None:
        return None
    twin_dir = config.RUNS_DIR / twin.name
    score_cfg = score_cfg or scoring.score_config(run=run_dir)
    if not _finished(twin_dir, twin.iterations):
        train.train(twin, resume=(twin_dir / "checkpoint.pt").is_file())
    scores = {name: _scored(path, score_cfg) for name, path in
              (("recipe", run_dir), ("dcgan", twin_dir))}
    result = {"recipe": run_dir.name, "dcgan": twin.name, "options": recipe_options(cfg),
              "seed": cfg.seed, "rows": _rows(scores), "floor": _floor(scores["recipe"]),
              "extraction": scores["recipe"].get("extraction"),
              "extractor": scores["recipe"]["extractor"]}
    storage.write_json(run_dir / "recipe_comparison.json", result)
    return result


def _finished(run_dir: Path, iterations: int) -> bool:
    snapshots = run_folder.list_snapshots(run_dir) if (run_dir / "config.json").is_file() else []
    return bool(snapshots) and snapshots[-1][0] == iterations


def _scored(run_dir: Path, score_cfg: ScoreConfig) -> dict[str, Any]:
    """A run's scores.json, made now unless it exists under the same extraction variant."""
    path = run_dir / "scores.json"
    if path.is_file():
        scores = storage.read_json(path)
        real = scoring.load_real(run_folder.load_run_config(run_dir), "train").images
        wanted = feature_extractor.variant_name(
            score_cfg, calibration_images=calibrate.calibration_batch(real))
        if scores.get("extraction") == wanted:
            return scores
    return scoring.score_run(run_dir, score_cfg)


def _by_iteration(scores: dict[str, Any], metric: str) -> dict[int, float]:
    return {r["iteration"]: r["value"] for r in scores["scores"]
            if r["metric"] == metric and r["kind"] == "generated"}


def _rows(scores: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    fid = {k: _by_iteration(v, "fid") for k, v in scores.items()}
    kid = {k: _by_iteration(v, "kid") for k, v in scores.items()}
    return [{"iteration": it, "fid_dcgan": fid["dcgan"].get(it), "fid_recipe": fid["recipe"][it],
             "kid_dcgan": kid["dcgan"].get(it), "kid_recipe": kid["recipe"].get(it)}
            for it in sorted(fid["recipe"])]


def _floor(scores: dict[str, Any]) -> dict[str, Any]:
    """The FID floor at the snapshots' n pair (held-out training images vs the reference)."""
    row = next(r for r in scores["scores"] if r["metric"] == "fid" and r["kind"] == "floor"
               and r.get("same_n"))
    return {"value": row["value"], "n_fake": row["n_fake"], "n_real": row["n_real"]}


def real_and_generated(run_dirs: list[str | os.PathLike], n: int,
                       seed: int) -> list[tuple[str, torch.Tensor]]:
    """[(title, uint8 images [n, 1, S, S])]: the first ``n`` real training images of scoring's
    seeded order (from the first run's data), then each run's final snapshot given the same
    latents (``seed``), so that the panels differ only by the generators."""
    meta = run_folder.load_run_config(run_dirs[0])
    ds = scoring.load_real(meta, "train")
    out = [("real training images", ds.images[features.subset_order(len(ds.images))[:n]])]
    for run in run_dirs:
        iteration, path = run_folder.list_snapshots(run)[-1]
        seed_of_run = run_folder.load_run_config(run)["config"]["seed"]
        out.append((f"{run_folder.run_path(run).name}\n(seed {seed_of_run}, iteration "
                    f"{iteration})", sampling.generate(path, n, seed=seed)))
    return out


def comparison_table(result: dict[str, Any]) -> pd.DataFrame:
    """One row per snapshot: FID and KID of the DCGAN and of the recipe, and the FID floor."""
    floor = result["floor"]
    return pd.DataFrame([{
        "iteration": r["iteration"], "FID, DCGAN": r["fid_dcgan"], "FID, recipe": r["fid_recipe"],
        "KID, DCGAN": r["kid_dcgan"], "KID, recipe": r["kid_recipe"],
        f"FID floor (n {floor['n_fake']:,} vs {floor['n_real']:,})": floor["value"]}
        for r in result["rows"]])


__all__ = ["RECIPE_SETTINGS", "recipe_options", "describe_options", "dcgan_twin", "compare_with_dcgan",
           "real_and_generated", "comparison_table"]
