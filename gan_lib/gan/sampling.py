"""Snapshots and the sampling rule: generator-only files, and drawing images from them.

A snapshot (``runs/NAME/snapshots/G_iter_000500.pt``) holds G's weights, the constructor
arguments that rebuild it, which weights they are (G or its EMA), and how its BatchNorm
statistics were made: :func:`recalibrate_batchnorm` re-estimates them on the snapshot's own
weights (the sampling rule every grid, score, sample and study uses; :func:`sampling_record`
says how). :func:`save_snapshot` and :func:`read_snapshot` mirror each other;
:func:`load_generator` rebuilds the network (:mod:`gan_lib.gan.models`) and :func:`generate`
draws uint8 images, each a function of (seed, index) only. A conditional snapshot records its
classes (:func:`class_record`); labels are drawn in their training ratio (:func:`sample_labels`).

Example:
    >>> G = Generator(z_dim=8, g_channels=4, image_size=32)
    >>> generate(G, n=2, seed=0).shape
    torch.Size([2, 1, 32, 32])
"""

from __future__ import annotations

import copy
import math
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .. import storage
from ..scale import distributed
from . import legacy
from .batches import STREAM_LABELS, derived_seed
from .models import Generator, to_uint8, unwrap

SNAPSHOT_FORMAT = 2  # 2: BatchNorm statistics re-estimated on the snapshot's own weights
SAMPLING_RULE = "batchnorm-recalibrated"


def sampling_record(batches: int, batch_size: int, seed: int) -> dict[str, Any]:
    """How a snapshot's BatchNorm statistics were made: stored in it, reported with its scores."""
    return {"rule": SAMPLING_RULE, "batches": batches, "batch_size": batch_size, "seed": seed,
            "description": f"eval-mode BatchNorm with statistics re-estimated on the snapshot's "
                           f"own weights over {batches} batches of {batch_size} latents"}


def save_snapshot(G: Generator, path: str | os.PathLike, iteration: int,
                  sampling: dict[str, Any], **meta: Any) -> None:
    """Write G's weights, how it samples, and the constructor arguments to rebuild it (atomic)."""
    state = {k: v.detach().cpu() for k, v in unwrap(G).state_dict().items()}
    storage.save_torch({"format": SNAPSHOT_FORMAT, "kwargs": unwrap(G).kwargs, "state_dict": state,
                   "iteration": iteration, "sampling": sampling, **meta}, path)


def read_snapshot(snapshot: str | os.PathLike) -> dict[str, Any]:
    """A snapshot file's contents; a clear error for a missing, unreadable or older file."""
    path = Path(snapshot)
    if not path.is_file():
        raise FileNotFoundError(f"Generator snapshot {path} not found: expected a file written "
                                "by train(), e.g. runs/NAME/snapshots/G_iter_000500.pt")
    try:
        blob = storage.load_torch(path)
        found = blob.get("format")
    except Exception as err:  # truncated file, foreign pickle
        raise ValueError(f"{path} is not a readable generator snapshot ({err}); "
                         "re-create it by training or resuming the run") from err
    if found != SNAPSHOT_FORMAT:
        raise ValueError(f"{path} is a generator snapshot of format {found}; this gan_lib reads "
                         f"format {SNAPSHOT_FORMAT}, which records how BatchNorm samples. "
                         "Train the run again (overwrite=True) to re-create its snapshots.")
    return blob


def load_generator(snapshot: str | os.PathLike, device: str | torch.device = "cpu",
                   bn_stats: str = "sampling") -> Generator:
    """Rebuild a Generator from a snapshot file, in eval mode on ``device``.

    ``bn_stats="sampling"`` (the rule every grid, score and sample uses) keeps the statistics
    re-estimated for the snapshot; ``"training"`` puts back the running averages training had
    kept, to measure what the rule changes (benchmarks/bn_sampling.py).
    """
    return _rebuild(read_snapshot(snapshot), snapshot, device, bn_stats)


def _rebuild(blob: dict[str, Any], snapshot: str | os.PathLike, device: str | torch.device,
             bn_stats: str = "sampling") -> Generator:
    """The Generator of a snapshot's contents (:func:`read_snapshot`), in eval mode."""
    state = dict(blob["state_dict"])
    if bn_stats == "training":
        state.update(blob["training_bn_stats"])
    elif bn_stats != "sampling":
        raise ValueError(f"bn_stats={bn_stats!r}: expected 'sampling' or 'training'")
    try:
        G = Generator(**legacy.generator_kwargs(blob["kwargs"]))
        G.load_state_dict(state)
    except Exception as err:  # wrong keys or shapes
        raise ValueError(f"{snapshot} is not a readable generator snapshot ({err}); "
                         "re-create it by training or resuming the run") from err
    return G.to(device).eval()


@torch.no_grad()
def generate(snapshot: str | os.PathLike | Generator, n: int, seed: int = 0,
             batch_size: int = 256, device: str | torch.device = "cpu",
             rows: slice | None = None, label: str | int | None = None,
             labels: torch.Tensor | None = None) -> torch.Tensor:
    """``n`` images as uint8 [n, 1, S, S] on the CPU, from a snapshot file or a Generator.

    Latent i depends only on (seed, i), never on batch_size, so the same call gives the same
    images however it is batched. ``rows`` (a slice of range(n)) generates only those images
    of the ``n``, as one process's share of the set.

    A conditional snapshot draws each image's class in the training set's class ratio
    (:func:`sample_labels`, also a function of (seed, i) only), or gives every image the class
    ``label`` (a name such as "PNEUMONIA", or an index). Its file records the class names and
    ratio; a conditional Generator passed as a module has neither, so it needs ``labels``, the
    class of each image (int64 [n]), which a snapshot file accepts too.

    >>> imgs = generate(Generator(g_channels=8, image_size=32), n=5, seed=0)
    >>> imgs.dtype, tuple(imgs.shape)
    (torch.uint8, (5, 1, 32, 32))
    """
    if isinstance(snapshot, nn.Module):
        G, classes = snapshot, None
    else:
        blob = read_snapshot(snapshot)  # read once: the weights and the classes
        G, classes = _rebuild(blob, snapshot, device), blob.get("classes")
    if unwrap(G).n_classes and classes is None and labels is None:
        raise ValueError("this generator is class-conditional: sample it from its snapshot file, "
                         "which records the class names and ratio (runs/NAME/snapshots/...)")
    if (label is not None or labels is not None) and not unwrap(G).n_classes:
        raise ValueError("class labels given for an unconditional generator (trained without "
                         "classes); sample it with label=None")
    z = torch.randn(n, unwrap(G).z_dim, generator=torch.Generator().manual_seed(seed))
    y = labels if labels is not None else (
        labels_for(classes, n, seed, label) if unwrap(G).n_classes else None)
    if y is not None and y.shape != (n,):
        raise ValueError(f"labels: expected int64 [{n}], one class per image; got {tuple(y.shape)}")
    rows = rows if rows is not None else slice(0, n)
    z, y = z[rows], (y[rows] if y is not None else None)
    was_training = G.training
    G.eval()
    dev = next(G.parameters()).device
    out = [to_uint8(G(z[i:i + batch_size].to(dev),
                      y[i:i + batch_size].to(dev) if y is not None else None)).cpu()
           for i in range(0, len(z), batch_size)]
    G.train(was_training)
    return torch.cat(out) if out else torch.empty(0, 1, 0, 0, dtype=torch.uint8)


@torch.no_grad()
def recalibrate_batchnorm(G: nn.Module, batches: int, batch_size: int, seed: int,
                          classes: dict[str, Any] | None = None) -> nn.Module:
    """A copy of ``G`` in eval mode whose BatchNorm statistics belong to its own weights.

    "Precise BN" (Wu & Johnson 2021): every training step normalised with the statistics of its
    own batch, while the running averages that eval mode uses lag a fast-moving G (momentum
    0.1) and, for an EMA generator, belong to other weights altogether. Here they are reset and
    re-estimated as the equal-weight mean over ``batches`` batches of ``batch_size`` fresh
    latents (``momentum=None``), the training batch size, with latents drawn from ``seed``
    (and, for a conditional G, labels drawn in the ratio of ``classes``, from ``seed`` too).
    Eval-mode samples from the copy then do not depend on the batch they are drawn in.

    >>> G = Generator(z_dim=8, g_channels=4, image_size=32)
    >>> bn = recalibrate_batchnorm(G, batches=2, batch_size=4, seed=0).main[1]
    >>> bool(bn.num_batches_tracked == 2), G.main[1].num_batches_tracked.item()
    (True, 0)
    """
    G = distributed.local_batchnorm(copy.deepcopy(unwrap(G)))  # one process evaluates it
    norms = [m for m in G.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    momenta = [bn.momentum for bn in norms]
    for bn in norms:
        bn.reset_running_stats()
        bn.momentum = None  # cumulative average: every batch weighs the same
    G.train()
    latents = torch.Generator().manual_seed(seed)
    device = next(G.parameters()).device
    if G.n_classes and classes is None:
        raise ValueError("a class-conditional G needs ``classes`` (names and ratio) to draw the "
                         "labels its BatchNorm statistics are re-estimated with")
    labels = sample_labels(classes, batches * batch_size, seed) if G.n_classes else None
    for b in range(batches):
        y = labels[b * batch_size:(b + 1) * batch_size].to(device) if labels is not None else None
        G(torch.randn(batch_size, G.z_dim, generator=latents).to(device), y)
    for bn, momentum in zip(norms, momenta, strict=True):
        bn.momentum = momentum
    return G.eval()


def class_record(class_names: list[str], labels: torch.Tensor) -> dict[str, Any]:
    """What a conditional snapshot records of its classes: names and training-set ratio.

    >>> class_record(["NORMAL", "PNEUMONIA"], torch.tensor([0, 1, 1, 1]))
    {'names': ['NORMAL', 'PNEUMONIA'], 'ratio': [0.25, 0.75]}
    """
    counts = torch.bincount(labels.cpu(), minlength=len(class_names)).double()
    return {"names": list(class_names), "ratio": (counts / counts.sum()).tolist()}


def resolve_label(label: str | int, classes: dict[str, Any]) -> int:
    """A class name or index -> its index; anything else is an error naming the classes.

    >>> resolve_label("PNEUMONIA", {"names": ["NORMAL", "PNEUMONIA"]})
    1
    """
    names = classes["names"]
    if isinstance(label, str) and label in names:
        return names.index(label)
    if isinstance(label, int) and not isinstance(label, bool) and 0 <= label < len(names):
        return label
    raise ValueError(f"label={label!r}: expected one of the class names {names} or an index "
                     f"0..{len(names) - 1}")


def sample_labels(classes: dict[str, Any], n: int, seed: int) -> torch.Tensor:
    """``n`` class labels drawn in the recorded ratio; label i depends on (seed, i) only.

    >>> sample_labels({"names": ["a", "b"], "ratio": [0.0, 1.0]}, 3, seed=0).tolist()
    [1, 1, 1]
    """
    u = torch.rand(n, generator=torch.Generator().manual_seed(derived_seed(seed, STREAM_LABELS, 0)),
                   dtype=torch.float64)
    edges = torch.tensor(classes["ratio"], dtype=torch.float64).cumsum(0)[:-1]
    return torch.bucketize(u, edges, right=True)


def labels_for(classes: dict[str, Any], n: int, seed: int,
               label: str | int | None = None) -> torch.Tensor:
    """The class of each of ``n`` generated images: all ``label``, or drawn in the ratio."""
    if label is None:
        return sample_labels(classes, n, seed)
    return torch.full((n,), resolve_label(label, classes), dtype=torch.long)


def grid_labels(n_classes: int, n: int) -> torch.Tensor:
    """Classes of an ``n``-image square grid: equal blocks of whole rows, class 0 on top.

    >>> grid_labels(2, 16).view(4, 4)[:, 0].tolist()
    [0, 0, 1, 1]
    """
    nrow = int(math.sqrt(n))
    per_block = max(1, nrow // n_classes)
    row_class = (torch.arange(-(-n // nrow)) // per_block).clamp(max=n_classes - 1)
    return row_class.repeat_interleave(nrow)[:n]
