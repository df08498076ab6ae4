"""Are generated images useful? Train on synthetic, test on real (TSTR).

The same small pneumonia classifier (:mod:`gan_lib.studies.classifier`) is trained several ways and
always scored on the *real test split* (accuracy, balanced accuracy, AUROC; mean and sample
standard deviation over seeds):

- ``real``: the real training split (TRTR, train on real, test on real);
- ``synthetic``: as many generated images as the real split has, in the same class counts (TSTR);
- ``real + synthetic``: both together;
- the reference at half size: ``real (half)``, a seeded stratified half of the real split,
  against ``synthetic (half)``, generated images of that size and class counts.

The ratio AUROC(TSTR) / AUROC(TRTR) is what synthetic-data papers report; 1 means the generated
images teach the classifier as much as the real ones. A classifier at chance has AUROC 0.5, so
the ratio of a useless generator is about 0.5 / AUROC(TRTR), not 0; the chance-corrected ratio
(AUROC_syn - 0.5) / (AUROC_real - 0.5) is given too.

Generated images come from a *sampler*: ``sample(class_counts, seed) -> (images, labels)``
returning uint8 [N, 1, S, S] and labels [N] with exactly ``class_counts[k]`` images of class
``k``; a conditional snapshot plugs in there. :func:`pool_sampler` makes one from a fixed set
of images (precomputed samples, or real images for the checks in tests/test_utility.py).
:mod:`gan_lib.studies.utility_tables` puts the results into words, a table and a caption.

Example:
    >>> g = torch.Generator().manual_seed(0)
    >>> def blobs(n):  # class 1 brighter: a signal the classifier can learn
    ...     y = torch.arange(n) % 2
    ...     return (torch.rand(n, 1, 32, 32, generator=g) * 90 + 90 * y.view(-1, 1, 1, 1)).byte(), y
    >>> r = tstr(blobs(64), pool_sampler(*blobs(64)), blobs(40), seeds=(0,),
    ...          cfg=ClassifierConfig.preset("tiny"), progress=False)
    >>> list(r["ways"])
    ['real', 'synthetic', 'real + synthetic', 'real (half)', 'synthetic (half)']
"""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import sklearn
import torch

from .. import storage
from ..device import resolve_device
from ..gan import run_folder, run_lock, sampling
from ..gan.batches import derived_seed
from ..metrics import provenance, scoring
from .classifier import (
    ClassifierConfig,
    build,
    check_set,
    class_counts,
    evaluate,
    fit,
    n_parameters,
)

Sampler = Callable[[list[int], int], tuple[torch.Tensor, torch.Tensor]]
Pair = tuple[torch.Tensor, torch.Tensor]
METRICS = ("accuracy", "balanced_accuracy", "auroc")
WAYS = ("real", "synthetic", "real + synthetic", "real (half)", "synthetic (half)")
BASELINE = {"synthetic": "real", "real + synthetic": "real", "synthetic (half)": "real (half)"}
# Random streams of derived_seed (gan/batches.py lists 1-5, classifier.py 11-12).
STREAM_HALF, STREAM_SAMPLE = 13, 14


def pool_sampler(images: torch.Tensor, labels: torch.Tensor) -> Sampler:
    """A sampler drawing without replacement from a fixed set, in a seeded order per class.

    >>> s = pool_sampler(torch.zeros(6, 1, 8, 8, dtype=torch.uint8), torch.tensor([0, 1] * 3))
    >>> s([1, 2], seed=0)[1].tolist()
    [0, 1, 1]
    """
    images, labels = check_set(images, labels, "sampler pool")
    by_class = [torch.nonzero(labels == k).flatten() for k in (0, 1)]

    def sample(counts: list[int], seed: int) -> Pair:
        g = torch.Generator().manual_seed(seed)
        picks = []
        for k, (idx, want) in enumerate(zip(by_class, counts, strict=True)):
            if want > len(idx):
                raise ValueError(f"the sampler's pool has {len(idx)} images of class {k}; "
                                 f"{want} were asked for")
            picks.append(idx[torch.randperm(len(idx), generator=g)[:want]])
        pick = torch.cat(picks)
        return images[pick], labels[pick]

    return sample


def stratified_half(labels: torch.Tensor, seed: int) -> torch.Tensor:
    """Indices of half of each class (n_k // 2), in a seeded order; sorted."""
    g = torch.Generator().manual_seed(derived_seed(seed, STREAM_HALF, 0))
    picks = [idx[torch.randperm(len(idx), generator=g)[:len(idx) // 2]]
             for idx in (torch.nonzero(labels == k).flatten() for k in (0, 1))]
    return torch.cat(picks).sort().values


def draw(sample: Sampler, counts: list[int], seed: int, size: int) -> Pair:
    """``sample(counts, seed)``, checked: uint8 [N, 1, size, size] with exactly ``counts``."""
    out = sample(list(counts), seed)
    if not (isinstance(out, tuple | list) and len(out) == 2):
        raise TypeError("a sampler must return (images, labels); got "
                        f"{type(out).__name__}")
    images, labels = check_set(out[0].cpu(), torch.as_tensor(out[1]).cpu(), "synthetic")
    if images.shape[-1] != size:
        raise ValueError(f"synthetic images are {images.shape[-1]} px; the real ones {size} px")
    if class_counts(labels) != list(counts):
        raise ValueError(f"the sampler returned class counts {class_counts(labels)}; "
                         f"{list(counts)} were asked for (the synthetic set must match the real "
                         "set it stands in for)")
    return images, labels


def tstr(real_train: Pair, sample: Sampler | Pair, real_test: Pair,
         cfg: ClassifierConfig | None = None, seeds: Sequence[int] = (0, 1, 2),
         ways: Sequence[str] = WAYS, progress: bool = True) -> dict[str, Any]:
    """Train the classifier on real, synthetic and real + synthetic images; score on real test.

    real_train, real_test: (uint8 images [N, 1, S, S], 0/1 labels [N]). sample: a sampler (see
    the module docstring) or an (images, labels) pool for :func:`pool_sampler`. Each seed draws
    its own synthetic sets (sampler seed ``derived_seed(seed, 14, n)``), its own real half, and
    initialises and shuffles every classifier from that seed. ``ways``: which of :data:`WAYS` to
    train (all by default; a synthetic way's ratio needs its real baseline). Returns a
    JSON-ready dict: per way and seed the metrics, training curve, wall and CPU seconds of the
    training (CPU: this process, all threads); mean and sd; the ratios; and how it was made.
    """
    cfg = cfg or ClassifierConfig.preset("quick")
    if not seeds:
        raise ValueError("seeds: expected at least one seed, e.g. (0, 1, 2)")
    unknown = [w for w in ways if w not in WAYS]
    if unknown or not ways:
        raise ValueError(f"ways={list(ways)}: expected some of {list(WAYS)}")
    x_tr, y_tr = check_set(*real_train, "real training")
    x_te, y_te = check_set(*real_test, "real test")
    if x_te.shape[-1] != x_tr.shape[-1]:
        raise ValueError(f"real test images are {x_te.shape[-1]} px, training {x_tr.shape[-1]} px")
    sample = sample if callable(sample) else pool_sampler(*sample)
    size = x_tr.shape[-1]
    t_start, load_start = time.perf_counter(), os.getloadavg()
    runs: dict[str, dict[str, Any]] = {}
    cas: dict[str, dict[str, float]] = {}
    for seed in seeds:
        sets = _training_sets(x_tr, y_tr, sample, ways, seed)
        for way, (x, y) in sets.items():
            t0, c0 = time.perf_counter(), time.process_time()
            model, curve = fit(x, y, cfg, seed, progress, desc=f"{way}, seed {seed}")
            seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
            entry = runs.setdefault(way, {"n_train": len(y), "class_counts": class_counts(y),
                                          "seeds": {}})
            entry["seeds"][str(seed)] = {**evaluate(model, x_te, y_te), "curve": curve,
                                         "seconds": seconds, "cpu_seconds": cpu}
            if way == "real" and "synthetic" in sets:  # the same model, asked about the fakes
                cas[str(seed)] = {**evaluate(model, *sets["synthetic"]), "seconds": 0.0}
    for entry in runs.values():
        entry.update(_summary(entry["seeds"]))
    return {"ways": runs, "ratios": _ratios(runs), "seeds": list(seeds),
            **({"cas": {"n": runs["synthetic"]["n_train"], "seeds": cas, **_summary(cas),
                        "definition": CAS_DEFINITION}} if cas else {}),
            "test": {"n": len(y_te), "class_counts": class_counts(y_te)},
            "classifier": _provenance(cfg, size),
            "machine": {"device": str(resolve_device(cfg.device)), "platform": platform.platform(),
                        "torch_threads": cfg.threads or torch.get_num_threads(),
                        "load_average_start": list(load_start),
                        "load_average_end": list(os.getloadavg())},
            "versions": {"torch": torch.__version__, "scikit-learn": sklearn.__version__},
            "seconds_total": time.perf_counter() - t_start}


@run_lock.locked("utility")
def utility_run(run_dir: str | os.PathLike, cfg: ClassifierConfig | None = None,
                seeds: Sequence[int] = (0, 1, 2), ways: Sequence[str] = WAYS,
                progress: bool = True) -> dict[str, Any]:
    """TSTR for a conditional run: its final snapshot generates, per class, as many images as
    the real training split has; written to ``run_dir/utility.json`` (atomic) and returned.

    The generated images of a seed come from latents of ``derived_seed(seed, 14, n)`` (see
    :func:`tstr`) with the class asked for by label, so the study is deterministic given seeds
    (bitwise at the same thread count and CPU class, like any float training).
    """
    run_dir = Path(run_dir)
    meta = run_folder.load_run_config(run_dir)
    iteration, snapshot = run_folder.list_snapshots(run_dir)[-1]
    blob = sampling.read_snapshot(snapshot)
    if not blob.get("classes"):
        raise ValueError(f"{snapshot} is unconditional: the usefulness study asks the generator "
                         "for images of each class. Train a conditional run (--set "
                         "conditional=true) and run it on that.")
    train_set, test_set = scoring.load_real(meta, "train"), scoring.load_real(meta, "test")
    device = resolve_device((cfg or ClassifierConfig.preset("quick")).device)

    def sample(counts: list[int], seed: int) -> Pair:
        y = torch.repeat_interleave(torch.arange(len(counts)), torch.tensor(counts))
        return sampling.generate(snapshot, len(y), seed=seed, labels=y, device=device), y

    t0 = time.perf_counter()
    results = tstr((train_set.images, train_set.labels), sample,
                   (test_set.images, test_set.labels), cfg, seeds, ways, progress)
    data = provenance.data_record(train_set, "train", n_train=len(train_set.images),
                                  n_test=len(test_set.images))
    results = {**provenance.header(run_dir, data, snapshot), **results,
               "iteration": iteration, "snapshot": str(snapshot), "classes": blob["classes"],
               "seconds_with_generation": time.perf_counter() - t0}
    results = storage.portable(results)  # no folder of this machine in a result file
    storage.write_json(run_dir / "utility.json", results)
    return results


def _training_sets(x: torch.Tensor, y: torch.Tensor, sample: Sampler, ways: Sequence[str],
                   seed: int) -> dict[str, Pair]:
    """{way: (images, labels)} of one seed, in the order of :data:`WAYS`."""
    sets: dict[str, Pair] = {}
    size = x.shape[-1]
    if {"synthetic", "real + synthetic"} & set(ways):
        syn = draw(sample, class_counts(y), derived_seed(seed, STREAM_SAMPLE, len(y)), size)
    if {"real (half)", "synthetic (half)"} & set(ways):
        half = stratified_half(y, seed)
    for way in (w for w in WAYS if w in ways):
        if way == "real":
            sets[way] = (x, y)
        elif way == "synthetic":
            sets[way] = syn
        elif way == "real + synthetic":
            sets[way] = (torch.cat([x, syn[0]]), torch.cat([y, syn[1]]))
        elif way == "real (half)":
            sets[way] = (x[half], y[half])
        else:
            sets[way] = draw(sample, class_counts(y[half]),
                             derived_seed(seed, STREAM_SAMPLE, len(half)), size)
    return sets


def _summary(per_seed: dict[str, dict]) -> dict[str, Any]:
    """Mean and sample sd (ddof 1; None for one seed) of each metric, mean seconds."""
    out: dict[str, Any] = {"mean": {}, "sd": {}}
    for key in (*METRICS, "seconds"):
        values = np.array([r[key] for r in per_seed.values()], dtype=float)
        out["mean"][key] = float(values.mean())
        out["sd"][key] = float(values.std(ddof=1)) if len(values) > 1 else None
    return out


def _ratios(runs: dict[str, dict]) -> dict[str, float | None]:
    """AUROC of each synthetic way over its real baseline, plain and above chance (0.5)."""
    out: dict[str, float | None] = {}
    for way, base in BASELINE.items():
        if way not in runs or base not in runs:
            continue
        a, b = runs[way]["mean"]["auroc"], runs[base]["mean"]["auroc"]
        out[f"auroc {way} / {base}"] = a / b
        out[f"auroc above chance {way} / {base}"] = (a - 0.5) / (b - 0.5) if b != 0.5 else None
    return out


def _provenance(cfg: ClassifierConfig, size: int) -> dict[str, Any]:
    model = build(cfg, size)
    return {"config": cfg.to_dict(), "n_parameters": n_parameters(model), "image_size": size,
            "architecture": f"gan_lib.studies.classifier.Classifier: 4x4 stride-2 stem + "
                            f"{cfg.blocks - 1} conv blocks, width {cfg.width}, global average "
                            "pool, linear -> 1 logit; AdamW, cosine lr, class-balanced BCE",
            "threshold": 0.5}


CAS_DEFINITION = (
    "classification accuracy score (Ravuri & Vinyals 2019): the classifier trained on the real "
    "training images (way 'real', the same model and seed) scores the synthetic set, each image "
    "labelled with the class G was asked for; AUROC 0.5 means G's images do not show their "
    "class to a model of real X-rays (G ignores its label, or shows it in a way real images "
    "do not)")
