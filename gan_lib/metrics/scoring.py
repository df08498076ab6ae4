"""Scoring a run: every snapshot's IS, FID and KID, and the floors beside them, in scores.json.

:func:`score_run` reads the run folder, extracts the real set's features once (cached as a
pytorch-fid-compatible ``.npz``, keyed by everything that produced them, so scoring three
snapshots makes one pass over the real images), generates each snapshot's images under the
sampling rule, and compares them with :mod:`gan_lib.metrics.is_fid_kid`; floors (real vs real at
the snapshots' n pair) say how low a FID can go on these images. Metric names carry their
sample count: ``fid5k`` = FID on exactly 5,000 generated images, ``fid1024`` on 1,024.

Example:
    >>> scores = score_run(config.RUNS_DIR / "smoke")  # doctest: +SKIP
    >>> scores["scores"][0]["name"]  # doctest: +SKIP
    'fid32'

Each line of ``scores`` is a :class:`~gan_lib.metrics.score_record.ScoreRecord`; the metrics are
those registered in :data:`gan_lib.metrics.is_fid_kid.METRICS`. Tables and captions of these
scores are in :mod:`gan_lib.metrics.score_tables`.
"""

from __future__ import annotations

import os
import time
import warnings
from pathlib import Path
from typing import Any

import torch

from .. import config, storage
from ..config import ScoreConfig
from ..gan import run_folder, run_lock, sampling
from ..scale import distributed
from . import provenance
from .calibrate import calibration_batch
from .feature_extractor import Extractor, load_extractor
from .features import at_indices, class_positions, fake_features, real_features
from .inception_weights import EXTRACTOR
from .is_fid_kid import METRICS, Reference, evaluate, metric_name, unavailable
from .score_record import LineProvenance, ScoreRecord

# --- the real images ------------------------------------------------------------------------


def load_real(run_config: dict[str, Any], split: str) -> Any:
    """The real images a run was trained on: ``split`` of its data source, at its image size,
    made square by its resize policy (runs from before the option were cropped)."""
    from .. import data

    return data.load_dataset(run_config["data"]["source"], split=split,
                             image_size=run_config["config"]["image_size"],
                             resize=run_config["config"].get("resize", "crop"))


# --- scoring a run ------------------------------------------------------------------------------


def score_config(profile: str | None = None, n_fake: int | None = None,
                 metrics: str | list[str] | tuple[str, ...] | None = None,
                 run: str | os.PathLike | None = None, **overrides: Any) -> ScoreConfig:
    """A profile's ScoreConfig with optional overrides (None = the profile's value).

    ``profile=None`` takes the profile the run ``run`` was trained with, so a paper run is
    scored with the paper's sample sizes and a smoke run with the smoke's.

    >>> score_config("smoke", metrics="fid,kid").metrics
    ('fid', 'kid')
    """
    if profile is None:
        if run is None:
            raise ValueError("score_config: name a profile (smoke, quick, paper) or a run")
        profile = run_folder.load_run_config(run)["config"]["profile"]
        if profile not in config.PROFILES:
            raise ValueError(f"run {str(run)!r} was trained with profile {profile!r}, which has "
                             "no scoring preset: name one (--profile quick)")
    if n_fake is not None:
        overrides["n_fake"] = n_fake
    if metrics is not None:
        overrides["metrics"] = tuple(m.strip() for m in metrics.split(",") if m.strip()) if isinstance(
            metrics, str) else tuple(metrics)
    return config.make_score_config(profile, **overrides)


@run_lock.locked("score")
def score_run(run_dir: str | os.PathLike, score_cfg: ScoreConfig | None = None,
              extractor: str = EXTRACTOR) -> dict[str, Any]:
    """Score every snapshot of a run; write ``run_dir/scores.json`` (atomic) and return it.

    FID and KID of each snapshot against the real training images, the IS of the final snapshot
    beside the IS of as many real images, and the real-vs-real floors computed the same way.
    ``score_cfg`` defaults to the run's profile.
    """
    t0 = time.perf_counter()
    run_cfg = run_folder.load_run_config(run_dir)
    run_dir = run_folder.run_path(run_dir)
    profile = run_cfg["config"].get("profile")
    score_cfg = score_cfg or (config.make_score_config(profile) if profile in config.PROFILES
                              else ScoreConfig())
    snapshots = run_folder.list_snapshots(run_dir)
    if (note := run_folder.unfinished(run_dir, snapshots[-1][0])) and distributed.is_main():
        print(note.replace("the one used here", "the last one scored"))
    image_size = run_cfg["config"]["image_size"]
    ds = load_real(run_cfg, "train")
    net = load_extractor(score_cfg, extractor, calibration_batch(ds.images))
    if ds.fingerprint != run_cfg["data"].get("fingerprint"):
        warnings.warn(f"the data at {run_cfg['data']['source']!r} changed since the run was trained "
                      "(fingerprint differs); scoring against the data as it is now", stacklevel=2)
    real = real_features(net, ds, score_cfg.n_real, image_size)
    prov = LineProvenance.of(net, ds)
    records = _floors(net, ds, real, run_cfg, score_cfg, prov)
    for iteration, path in snapshots:
        records += _score_snapshot(net, iteration, path, real, score_cfg, prov,
                                   final=iteration == snapshots[-1][0])
    final = sampling.read_snapshot(snapshots[-1][1])
    classes = final.get("classes")
    if classes and _pair_metrics(score_cfg):  # a conditional run: intra-class scores too
        records += _class_records(net, ds, real, snapshots, classes, image_size, score_cfg, prov)
    scores = {
        **provenance.header(run_dir, provenance.data_record(ds, "train", image_size=image_size),
                            snapshots[-1][1], net),
        "settings": score_cfg.to_dict(),
        "real_stats": {k: real[k] for k in ("path", "cache", "n", "seconds")},
        "scores": [r.to_json() for r in records], "seconds": round(time.perf_counter() - t0, 2),
    }
    scores = storage.portable(scores)  # no folder of this machine in a result file
    if distributed.is_main():
        storage.write_json(run_dir / "scores.json", scores)
    return scores


def _score_snapshot(net: Extractor, iteration: int, path: Path, real: dict[str, Any],
                    score_cfg: ScoreConfig, prov: LineProvenance,
                    final: bool) -> list[ScoreRecord]:
    """Two-set metrics of one snapshot's n_fake images; for the final one also the one-set
    metrics (IS) of its images and of as many real images."""
    singles = _single_metrics(score_cfg) if final else []
    n_gen = generated_count(net, score_cfg, final)
    if n_gen == 0 and not singles:
        return []  # e.g. metrics=("is",) and not the final snapshot: nothing to compute
    t0 = time.perf_counter()
    # Latent i depends only on (seed, i): the first n_fake images are the FID set, the first
    # n_fake_is the IS set, whichever is larger decides how many are generated. None are when
    # only an IS was asked for and the weights cannot give one (it is reported unavailable).
    feats: dict[str, torch.Tensor] = {}
    if n_gen:
        feats = fake_features(net, path, n_gen, score_cfg.seed)["features"]
    seconds = time.perf_counter() - t0
    context = dict(kind="generated", iteration=iteration, snapshot=str(path),
                   sampling=sampling.read_snapshot(path)["sampling"]["description"])
    records = []
    if _pair_metrics(score_cfg):
        fid_set = {k: v[:score_cfg.n_fake] for k, v in feats.items()}
        records = _pair_records(net, fid_set, real, score_cfg, prov, seconds, **context,
                                compared=f"generated (iteration {iteration}) vs real train "
                                         "reference")
    for name in singles:
        n = getattr(score_cfg, METRICS[name].n_setting)
        records.append(_single_record(net, name, feats, n, score_cfg, prov, seconds, **context,
                                      compared=f"generated (iteration {iteration})", n_fake=n,
                                      n_real=None))
        records.append(_single_record(net, name, real["features"], n, score_cfg, prov,
                                      real["seconds"], kind="real", n_fake=None, n_real=n,
                                      compared="real train images"))
    return records


def generated_count(net: Extractor, score_cfg: ScoreConfig, final: bool) -> int:
    """How many images of a snapshot scoring extracts (and caches): n_fake for FID/KID, and for
    the final snapshot n_fake_is when an IS is asked for and the weights can give one."""
    wanted = _pair_metrics(score_cfg) + (_single_metrics(score_cfg) if final else [])
    return max([getattr(score_cfg, METRICS[m].n_setting) for m in wanted
                if unavailable(net, m) is None], default=0)


def floor_plan(n_train: int, n_test: int, n_fake: int, n_ref: int) -> dict[str, dict[str, Any]]:
    """The (n_fake, n_real) pair each floor uses, and whether it is the snapshots' pair.

    >>> floor_plan(5216, 624, 1024, 2048)["train"]  # the quick profile
    {'n_fake': 1024, 'n_real': 2048, 'same_n': True}
    >>> floor_plan(5216, 624, 5000, 5216)["train"]  # the paper profile: no room for 5,000 more
    {'n_fake': 2608, 'n_real': 2608, 'same_n': False}
    """
    if n_train - n_ref >= n_fake:  # n_fake training images outside the reference set
        train = {"n_fake": n_fake, "n_real": n_ref, "same_n": True}
    else:  # two disjoint halves of the reference set
        train = {"n_fake": n_ref // 2, "n_real": n_ref // 2, "same_n": False}
    return {"train": train,
            "test": {"n_fake": min(n_fake, n_test), "n_real": n_ref, "same_n": n_test >= n_fake}}


def _floors(net: Extractor, ds: Any, real: dict[str, Any], run_cfg: dict[str, Any],
            score_cfg: ScoreConfig, prov: LineProvenance) -> list[ScoreRecord]:
    """Real-vs-real FID/KID at the snapshots' n pair where the data allow it.

    FID's bias depends on both set sizes, so a floor is read against a snapshot only at the
    same (n_fake, n_real): held-out training images (never in the reference set) and the test
    split each stand where the generated images stand. Where a split is too small for that, the
    pair used is recorded and the record says why it differs (``same_n`` False, ``note``).
    """
    if not _pair_metrics(score_cfg):
        return []  # IS only: no FID/KID, so no floors (and no pass over the test split)
    image_size, n_ref, n_fake = run_cfg["config"]["image_size"], real["n"], score_cfg.n_fake
    plan = floor_plan(len(ds.images), 0, n_fake, n_ref)["train"]
    floor = dict(kind="floor", iteration=None, snapshot=None)
    if plan["same_n"]:  # n_fake training images outside the reference set
        held = real_features(net, ds, n_fake, image_size, offset=n_ref)
        records = _pair_records(net, held["features"], real, score_cfg, prov, held["seconds"],
                                compared="real train, held out vs real train reference",
                                same_n=True, **floor)
    else:  # e.g. the paper profile: 5,000 + all 5,216 cannot be disjoint in one split
        half = plan["n_fake"]
        first = {k: v[:half] for k, v in real["features"].items()}
        second = {"features": {k: v[half:2 * half] for k, v in real["features"].items()},
                  "stats": None, "n": half}
        note = (f"n pair differs from the snapshots' ({n_fake} vs {n_ref}): the training split "
                f"has {len(ds.images)} images, fewer than {n_fake} + {n_ref} disjoint ones, so "
                f"two disjoint halves of the reference set are compared ({half} vs {half})")
        records = _pair_records(net, first, second, score_cfg, prov, 0.0, same_n=False,
                                note=note, compared="real train: half A vs half B (disjoint)",
                                **floor)
    compared = "real test vs real train reference"
    try:
        test = load_real(run_cfg, "test")
    except (FileNotFoundError, ValueError, KeyError) as err:
        reason = f"no test split in {run_cfg['data']['source']!r} ({err})"
        return records + [ScoreRecord(m, m, None, None, prov, "floor", compared, None, None,
                                      unavailable=reason) for m in _pair_metrics(score_cfg)]
    test_real = real_features(net, test, n_fake, image_size)
    same = test_real["n"] == n_fake
    note = {} if same else {"note": f"n pair differs from the snapshots' ({n_fake} vs {n_ref}): "
                                    f"the test split has only {test_real['n']} images"}
    return records + _pair_records(net, test_real["features"], real, score_cfg, prov,
                                   test_real["seconds"], compared=compared, same_n=same,
                                   **note, **floor)


def _class_records(net: Extractor, ds: Any, real: dict[str, Any], snapshots: list,
                   classes: dict[str, Any], image_size: int, score_cfg: ScoreConfig,
                   prov: LineProvenance) -> list[ScoreRecord]:
    """Intra-class FID/KID (as StudioGAN reports them) of a conditional run, with floors.

    The generated images of class c are those of the snapshot's own FID set that were drawn
    as class c (labels in the training ratio, sampling.labels_for), so no image is generated or
    extracted twice. They are compared with real training images of class c (the first
    ``n_real`` of that class in the reference order, at most all but ``n_c`` of them), and the
    floor is the next ``n_c`` held-out training images of class c against the same reference:
    the same n pair as the snapshots.
    """
    labels = sampling.labels_for(classes, score_cfg.n_fake, score_cfg.seed)
    in_order = class_positions(ds)
    records: list[ScoreRecord] = []
    refs: dict[int, dict[str, Any]] = {}  # class -> its reference set, for the snapshots below
    for c, name in enumerate(classes["names"]):
        n_c, positions = int((labels == c).sum()), in_order[c]
        n_ref = min(score_cfg.n_real or len(positions), len(positions) - n_c)
        if n_c < 2 or n_ref < 2:
            reason = (f"class {name}: {n_c} generated and {len(positions)} training images are "
                      "too few for two disjoint sets")
            records += [ScoreRecord(m, m, None, None, prov, "floor",
                                    f"real train {name}, held out vs reference", n_c,
                                    max(n_ref, 0), class_name=name, same_n=True,
                                    unavailable=reason) for m in _pair_metrics(score_cfg)]
            continue
        cached = (real["n"],)
        refs[c] = {"features": at_indices(net, ds, positions[:n_ref], image_size, cached),
                   "stats": None, "n": n_ref}
        held = at_indices(net, ds, positions[n_ref:n_ref + n_c], image_size, cached)
        records += _pair_records(net, held, refs[c], score_cfg, prov, 0.0, kind="floor",
                                 iteration=None, snapshot=None, class_name=name, same_n=True,
                                 compared=f"real train {name}, held out vs real train {name} "
                                          "reference")
    for iteration, path in snapshots:  # each snapshot's cached FID set, read once
        fake = fake_features(net, path, score_cfg.n_fake, score_cfg.seed)["features"]
        for c, ref in refs.items():
            name = classes["names"][c]
            records += _pair_records(net, {k: v[labels == c] for k, v in fake.items()}, ref,
                                     score_cfg, prov, 0.0, kind="generated", iteration=iteration,
                                     snapshot=str(path), class_name=name, same_n=True,
                                     compared=f"generated {name} (iteration {iteration}) vs "
                                              f"real train {name} reference")
    return records


def _pair_metrics(score_cfg: ScoreConfig) -> list[str]:
    """The metrics asked for that compare two image sets (FID, KID), in registry order."""
    return [m for m in METRICS if m in score_cfg.metrics and METRICS[m].pair]


def _single_metrics(score_cfg: ScoreConfig) -> list[str]:
    """The metrics asked for that score one image set (IS), in registry order."""
    return [m for m in METRICS if m in score_cfg.metrics and not METRICS[m].pair]


def _pair_records(net: Extractor, f1: dict[str, torch.Tensor], real: dict[str, Any],
                  score_cfg: ScoreConfig, prov: LineProvenance, seconds: float,
                  **context: Any) -> list[ScoreRecord]:
    """A record per two-set metric of feature set 1 against ``real`` (features, n)."""
    t0 = time.perf_counter()
    if "reference" not in real:  # prepared once (FID's covariance) for every snapshot
        real["reference"] = Reference(real["features"], net.layers)
    values = evaluate(net, f1, real["reference"], score_cfg, tuple(_pair_metrics(score_cfg)))
    n1 = len(next(iter(f1.values())))  # every layer has one row per image
    seconds = round(seconds + time.perf_counter() - t0, 3)
    return [ScoreRecord(metric_name(m, n1), m, v.value, v.std, prov, n_fake=n1,
                        n_real=real["n"], seconds=seconds, settings=v.settings, **context)
            for m, v in values.items()]


def _single_record(net: Extractor, metric: str, feats: dict[str, torch.Tensor], n: int,
                   score_cfg: ScoreConfig, prov: LineProvenance, seconds: float,
                   **context: Any) -> ScoreRecord:
    """A one-set metric (IS) of the first ``n`` images, or a record saying why it is
    unavailable."""
    if (why := unavailable(net, metric)) is not None:
        return ScoreRecord(metric_name(metric, n), metric, None, None, prov, **context,
                           unavailable=why[0], fix=why[1])
    layer = net.layers[METRICS[metric].layer]
    features = feats[layer][:n]
    t0 = time.perf_counter()
    (v,) = evaluate(net, {layer: features}, None, score_cfg, (metric,)).values()
    if context["kind"] == "real":
        context["n_real"] = len(features)
    return ScoreRecord(metric_name(metric, len(features)), metric, v.value, v.std, prov,
                       seconds=round(seconds + time.perf_counter() - t0, 3), settings=v.settings,
                       **context)
