"""Inception features of real and generated image sets, cached on disk by what produced them.

Scoring, the audit and the floors read the same sets, so each is extracted once:

- real: ``n`` images at positions ``offset .. offset + n`` of one seeded permutation of a split
  (the reference set is offset 0; a held-out set starts where it ends, never overlapping it);
- generated: the first ``n`` latents of ``seed`` through one snapshot file, keyed by the file's
  SHA-256 (which holds its sampling rule), so a retrained snapshot is never mistaken for an old.

Each cache file is a pytorch-fid-compatible ``.npz`` (``mu``, ``sigma`` of the FID layer) plus
the features every metric needs, and the key it was made under; a file that does not match its
key or is unreadable is rebuilt with a warning. A set can be made under a :class:`Recipe` (a named
change to the uint8 images before extraction, e.g. a JPEG round trip): its name is part of the key.

Under torchrun (scale/distributed.py) each rank generates and extracts its contiguous share of a set,
the shares are gathered in order on every rank, and rank 0 writes the cache: every rank then
holds the features one process would have extracted.

Example:
    >>> cache_path("real", {"n": 4}, "x").parent.name
    'fid_stats'
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from torch_fidelity import metric_fid

from .. import config, storage
from ..data import SUBSET_SEED, subset_order
from ..gan import sampling
from ..scale import distributed
from .extraction import extract_features
from .feature_extractor import Extractor

CACHE_FORMAT = 1


class Recipe(NamedTuple):
    """A named change to uint8 images [N, 1, H, W] before extraction (gan_lib.protocols)."""

    name: str  # part of the cache key and file name: say exactly what ``apply`` does
    apply: Callable[[torch.Tensor], torch.Tensor]


def cache_path(kind: str, key: dict[str, Any], stem: str) -> Path:
    """Where a feature set of ``kind`` (real | fake) with ``key`` is cached."""
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    folder = "fid_stats" if kind == "real" else "fake_features"
    return config.CACHE_DIR / folder / f"{stem}-{digest}.npz"


def real_features(net: Extractor, ds: Any, n: int | None, image_size: int,
                  offset: int = 0, recipe: Recipe | None = None) -> dict[str, Any]:
    """Features of ``n`` real images of ``ds`` (all remaining ones if None), cached.

    Returns {'features': {name: [n, D]}, 'stats': FID statistics, 'path', 'cache': hit|built,
    'n', 'seconds'}. With ``recipe``, of the images as ``recipe.apply`` changes them.
    """
    total = len(ds.images) - offset
    n = total if n is None else min(n, total)
    key = {"format": CACHE_FORMAT, "fingerprint": ds.fingerprint, "split": ds.split, "n": n,
           "subset_seed": SUBSET_SEED, "image_size": image_size, **net.key()}
    if offset:
        key["offset"] = offset  # absent at 0, so caches written before offsets stay valid
    where = f"-from{offset}" if offset else ""
    stem = f"{net.name}-{str(ds.fingerprint)[:12]}-{ds.split}{where}-n{n}"
    return _cached(path_for("real", key, stem, recipe), key, net,
                   lambda rows: ds.images[subset_order(len(ds.images))[offset:offset + n][rows]],
                   f"real {ds.split} ({n})", recipe)


def at_indices(net: Extractor, ds: Any, indices: torch.Tensor, image_size: int,
               cached: tuple[int, ...] = ()) -> dict[str, torch.Tensor]:
    """Features of the images of ``ds`` at ``indices`` (e.g. those a run trained on), in order.

    Reuses the sets of sizes ``cached`` at the start of the seeded permutation (the reference
    and held-out sets scoring extracted); the images they do not hold are extracted once and
    cached under the list of their indices.
    """
    order, found = subset_order(len(ds.images)), {}
    offset = 0
    for n in cached:
        part = real_features(net, ds, n, image_size, offset=offset)
        _place(found, part["features"], order[offset:offset + part["n"]], len(ds.images))
        offset += part["n"]
    indices = torch.as_tensor(indices, dtype=torch.long)
    have = ~found[net.layers["fid"]][indices].isnan().any(1) if found else torch.zeros(
        len(indices), dtype=torch.bool)
    missing = indices[~have].unique()
    if len(missing):
        key = {"format": CACHE_FORMAT, "fingerprint": ds.fingerprint, "split": ds.split,
               "n": len(missing), "image_size": image_size, **net.key(),
               "indices_sha256": hashlib.sha256(missing.numpy().tobytes()).hexdigest()}
        path = cache_path("real", key, f"{net.name}-{str(ds.fingerprint)[:12]}-{ds.split}"
                                       f"-rest-n{len(missing)}")
        rest = _cached(path, key, net, lambda rows: ds.images[missing[rows]],
                       f"real {ds.split}, the rest ({len(missing)})")
        _place(found, rest["features"], missing, len(ds.images))
    return {name: feats[indices] for name, feats in found.items()}


def _place(found: dict[str, torch.Tensor], feats: dict[str, torch.Tensor], where: torch.Tensor,
           n: int) -> None:
    """Write the rows of ``feats`` at ``where`` into split-sized tables (NaN until filled)."""
    for name, rows in feats.items():
        found.setdefault(name, torch.full((n, rows.shape[1]), float("nan")))[where] = rows


def class_positions(ds: Any) -> list[torch.Tensor]:
    """Per class, the indices of its images in the order real sets are taken (the reference
    set's order), so a class's reference set overlaps the cached ones as far as it can."""
    order = subset_order(len(ds.images))
    ordered_labels = ds.labels[order]
    return [order[ordered_labels == c] for c in range(int(ds.labels.max()) + 1)]


def fake_features(net: Extractor, snapshot: str | os.PathLike, n: int,
                  seed: int, recipe: Recipe | None = None) -> dict[str, Any]:
    """Features of the first ``n`` generated images of ``snapshot`` (latents of ``seed``), cached:
    scoring writes the set the audit then reads. With ``recipe``, of the images it changes."""
    key = {"format": CACHE_FORMAT, "snapshot_sha256": storage.sha256_file(snapshot), "seed": seed,
           "n": n, **net.key()}
    stem = f"{net.name}-{Path(snapshot).stem}-seed{seed}-n{n}"
    return _cached(path_for("fake", key, stem, recipe), key, net,
                   lambda rows: generated_images(snapshot, n, seed, net.device, rows,
                                                 key["snapshot_sha256"]),
                   f"{Path(snapshot).stem} ({n})", recipe)


def generated_images(snapshot: str | os.PathLike, n: int, seed: int,
                     where: str | torch.device = "cpu", rows: slice | None = None,
                     sha256: str | None = None) -> torch.Tensor:
    """``sampling.generate(snapshot, n, seed=seed, device=where, rows=rows)``, kept in memory
    for the next use of the same images in this process (the protocols apply up to three
    recipes to each snapshot's set; the audit reads the final set's pixels twice). Keyed by the
    snapshot's SHA-256 (``sha256`` if already known), so a rewritten file is generated again;
    each call gets its own copy."""
    rows = rows if rows is not None else slice(0, n)
    return _generated(str(snapshot), sha256 or storage.sha256_file(snapshot), n, seed, str(where),
                      rows.start, rows.stop).clone()


@functools.lru_cache(maxsize=4)
def _generated(snapshot: str, sha256: str, n: int, seed: int, where: str, start: int,
               stop: int) -> torch.Tensor:
    return sampling.generate(snapshot, n, seed=seed, device=where, rows=slice(start, stop))


def path_for(kind: str, key: dict[str, Any], stem: str, recipe: Recipe | None) -> Path:
    """:func:`cache_path`, with the recipe's name added to ``key`` (in place) and the file name."""
    if recipe is None:
        return cache_path(kind, key, stem)
    key["recipe"] = recipe.name
    return cache_path(kind, key, f"{stem}-{recipe.name}")


def unique_features(net: Extractor, images: torch.Tensor,
                    desc: str = "features") -> tuple[dict[str, torch.Tensor], int]:
    """(features of ``images`` in order, number of distinct images): each distinct image is
    extracted once, so a set of near-constant images (a pixel-scaling slip) costs a few."""
    distinct, inverse = torch.unique(images.flatten(1), dim=0, return_inverse=True)
    feats = extract_features(net, distinct.view(-1, *images.shape[1:]), desc)
    return {k: v[inverse] for k, v in feats.items()}, len(distinct)


def _cached(path: Path, key: dict[str, Any], net: Extractor,
            images: Callable[[slice], torch.Tensor], desc: str,
            recipe: Recipe | None = None) -> dict[str, Any]:
    """Read the feature set at ``path``, or extract it and write it.

    ``images(rows)`` gives the set's images at ``rows`` (a slice of range(n)): all of them in
    one process, this rank's share under torchrun. Under a ``recipe`` the changed images are
    extracted once per distinct image, and the number of distinct images is stored and
    returned ('distinct'; None without a recipe; under torchrun, the sum of the ranks' counts).
    """
    t0 = time.perf_counter()
    found = _read(path, key, net)
    if found is not None:
        return {**found, "path": str(path), "cache": "hit", "n": key["n"],
                "seconds": round(time.perf_counter() - t0, 3)}
    local_images = images(distributed.shard(key["n"]))
    distinct = None
    if recipe is None:
        part = extract_features(net, local_images, desc)
    else:
        part, distinct = unique_features(net, recipe.apply(local_images), f"{desc}, {recipe.name}")
        distinct = distributed.total(distinct)
    feats = {k: distributed.gather_rows(v, key["n"]) for k, v in part.items()}
    stats = metric_fid.fid_features_to_statistics(feats[net.layers["fid"]])
    if not all(np.isfinite(v).all() for v in stats.values()):  # one image has no covariance
        raise ValueError(f"the FID statistics of {key['n']} image(s) ({desc}) are not finite: "
                         "a covariance needs at least 2 images; raise n_real / n_fake")
    if distributed.is_main():
        storage.remove_stale_temps(path.parent)  # of a writer killed mid-write (tens of MB each)
        with storage.atomic_path(path) as tmp, open(tmp, "wb") as f:
            np.savez(f, mu=stats["mu"], sigma=stats["sigma"],
                     meta=np.array(json.dumps(key, sort_keys=True)),
                     **({} if distinct is None else {"distinct": np.array(distinct)}),
                     **{f"features_{k}": v.numpy() for k, v in feats.items()})
    distributed.barrier()  # the file is there before any rank looks for it again
    return {"features": feats, "stats": stats, "path": str(path), "cache": "built",
            "n": key["n"], "distinct": distinct, "seconds": round(time.perf_counter() - t0, 3)}


def _read(path: Path, key: dict[str, Any], net: Extractor) -> dict[str, Any] | None:
    """The cached features and statistics, or None (missing, stale or corrupt: then rebuilt)."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            if json.loads(str(z["meta"])) != json.loads(json.dumps(key, sort_keys=True)):
                raise ValueError("its key does not match")
            feats = {k: torch.from_numpy(z[f"features_{k}"].copy())
                     for k in net.module.get_requested_features_list()}
            stats = {"mu": z["mu"].copy(), "sigma": z["sigma"].copy()}
            distinct = int(z["distinct"]) if "distinct" in z.files else None
        fid = feats[net.layers["fid"]]
        if len(fid) != key["n"] or not all(torch.isfinite(v).all() for v in feats.values()):
            raise ValueError("its features have the wrong count or are not finite")
        if not np.allclose(stats["mu"], fid.numpy().mean(0), rtol=1e-4, atol=1e-5):
            raise ValueError("mu does not match the stored features")
    except Exception as err:  # truncated zip, missing arrays, edited file
        warnings.warn(f"feature cache {path} is stale or corrupt ({err}); rebuilding",
                      stacklevel=4)
        return None
    return {"features": feats, "stats": stats, "distinct": distinct}
