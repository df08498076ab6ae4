"""A small pneumonia classifier for the usefulness study: train it, score it on real images.

:class:`Classifier` is a compact CNN for 1-channel S x S images (S = 32, 64 or 128) with one
logit out: class 1 (PNEUMONIA) is the positive class. :func:`fit` trains it from uint8 images
and labels, deterministically given a seed (bitwise at the same thread count and CPU class):
the weights are drawn from a ``torch.Generator`` and each epoch's order from
``batches.derived_seed(seed, stream, epoch)``, never from the global random state. :func:`evaluate` scores it with scikit-learn (accuracy and balanced
accuracy at probability 0.5, AUROC of the probabilities).

The training loss is binary cross-entropy with each class weighted by n / (2 n_class), so the
minority class (NORMAL in Kermany's training split: 1,341 of 5,216) counts as much as the
majority, and the 0.5 threshold is not biased towards it.

Example:
    >>> g = torch.Generator().manual_seed(0)
    >>> labels = torch.arange(64) % 2
    >>> images = (torch.rand(64, 1, 32, 32, generator=g) * 100 + 100 * labels.view(-1, 1, 1, 1))
    >>> cfg = ClassifierConfig.preset("tiny", epochs=3)
    >>> model, curve = fit(images.to(torch.uint8), labels, cfg, seed=0, progress=False)
    >>> evaluate(model, images.to(torch.uint8), labels)["auroc"]
    1.0
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.metrics import accuracy_score, balanced_accuracy_score, roc_auc_score
from torch import nn
from tqdm.auto import tqdm

from .. import config
from ..device import autocast_context, resolve_device
from ..gan.batches import derived_seed
from ..gan.train import training_precision

# Random streams of derived_seed (gan/batches.py lists 1-5): weights, epoch order.
STREAM_INIT, STREAM_ORDER = 11, 12
THRESHOLD = 0.5  # probability above which an image is called class 1 (PNEUMONIA)


@dataclass(frozen=True)
class ClassifierConfig:
    """How the classifier is built and trained. ``ClassifierConfig.preset(name)`` fills one.

    quick: sized for the usefulness study's budget on a 2-core CPU (the three trainings of one
    seed: benchmarks/results/utility_budget.json: per_seed[].three_trainings_seconds). tiny: for
    tests.
    """

    width: int = 16  # channels of the first block; each block doubles them
    blocks: int = 4  # conv blocks, each halving the image: 64 px -> 4 x 4 before pooling
    epochs: int = 3
    batch_size: int = 64
    lr: float = 2e-3  # AdamW, cosine-annealed to 0 over all steps
    weight_decay: float = 1e-4
    balanced_loss: bool = True  # weight each class by n / (2 n_class)
    device: str = "auto"
    # "fp32", "bf16" (autocast) or "auto": what calibration chose for the quick profile's DCGAN
    # training step on this machine (gan/calibrate.py; a small CNN at 64 px like this one, whose
    # own step is not timed)
    precision: str = "fp32"
    threads: int | None = None  # torch intra-op threads during fit (None: leave torch's setting)

    def __post_init__(self) -> None:
        for key in ("width", "blocks", "epochs", "batch_size"):
            value = getattr(self, key)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"ClassifierConfig.{key}={value!r}: expected an integer >= 1")
        if self.threads is not None and (not isinstance(self.threads, int) or self.threads < 1):
            raise ValueError(f"ClassifierConfig.threads={self.threads!r}: expected None or >= 1")
        if not self.lr > 0:
            raise ValueError(f"ClassifierConfig.lr={self.lr!r}: expected a positive number")
        if self.precision not in ("fp32", "bf16", "auto"):
            raise ValueError(f"ClassifierConfig.precision={self.precision!r}: expected fp32, "
                             "bf16 or auto")

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> ClassifierConfig:
        """The named preset ("quick" or "tiny") with ``overrides``; unknown keys are an error."""
        if name not in PRESETS:
            raise ValueError(f"classifier preset {name!r}: expected one of {sorted(PRESETS)}")
        unknown = sorted(set(overrides) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise ValueError(f"unknown ClassifierConfig keys {unknown}; known: "
                             f"{[f.name for f in dataclasses.fields(cls)]}")
        return dataclasses.replace(PRESETS[name], **overrides)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


PRESETS = {
    # One thread: on a shared 2-core machine one trained faster than two
    # (benchmarks/results/utility_budget.json: thread_check.images_per_second).
    "quick": ClassifierConfig(threads=1),
    # one thread: tiny ops on a shared 2-core machine are far slower with two (tests/conftest.py)
    "tiny": ClassifierConfig(width=4, blocks=3, epochs=2, batch_size=32, lr=3e-3, device="cpu",
                             threads=1),
}


class Classifier(nn.Module):
    """Compact CNN: float [B, 1, S, S] in [-1, 1] -> logits [B] (class 1 positive).

    A 4x4 stride-2 convolution (the stem), then ``blocks`` - 1 times (3x3 conv, BatchNorm, ReLU,
    2x2 max-pool), channels width, 2 width, 4 width, ...; global average pooling; one linear
    layer. The stem halves the image before any full-width layer: on a CPU the full-resolution
    layers of a plain conv stack cost most of the time. Width 16, 4 blocks: 97,633 parameters.
    """

    def __init__(self, width: int = 16, blocks: int = 4, image_size: int = 64):
        super().__init__()
        if image_size % 2**blocks or image_size < 2**(blocks + 1):
            raise ValueError(f"image_size={image_size}: {blocks} blocks halve it {blocks} times; "
                             f"expected a multiple of {2**blocks} of at least {2**(blocks + 1)}")
        self.image_size = image_size
        layers = [nn.Conv2d(1, width, 4, 2, 1, bias=False), nn.BatchNorm2d(width),
                  nn.ReLU(inplace=True)]  # stem: [B, width, S / 2, S / 2]
        c_in = width
        for i in range(1, blocks):
            c_out = width * 2**i
            layers += [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
                       nn.BatchNorm2d(c_out), nn.ReLU(inplace=True),
                       nn.MaxPool2d(2)]  # [B, width * 2^i, S / 2^(i+1), S / 2^(i+1)]
            c_in = c_out
        self.features = nn.Sequential(*layers)  # 64 px, 4 blocks: [B, 8 width, 4, 4]
        self.head = nn.Linear(c_in, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x).mean(dim=(2, 3))  # global average pool: [B, C]
        return self.head(x).squeeze(1)  # [B] logits


def build(cfg: ClassifierConfig, image_size: int, seed: int = 0) -> Classifier:
    """A :class:`Classifier` of ``cfg`` with weights drawn from ``seed`` (see :func:`init_weights`).

    torch's layers draw default weights from the global generator when built; that state is
    restored here, so building a classifier leaves every other random stream untouched.
    """
    with torch.random.fork_rng(devices=[]):
        model = Classifier(cfg.width, cfg.blocks, image_size)
    init_weights(model, seed)
    return model


def n_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def init_weights(model: nn.Module, seed: int) -> None:
    """He-normal conv and linear weights drawn from a generator seeded by ``seed``; zero biases."""
    g = torch.Generator().manual_seed(derived_seed(seed, STREAM_INIT, 0))
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.Conv2d | nn.Linear):
                w = torch.empty(m.weight.shape)
                nn.init.kaiming_normal_(w, nonlinearity="relu", generator=g)
                m.weight.copy_(w)
                if m.bias is not None:
                    m.bias.zero_()


def check_set(images: Any, labels: Any, what: str) -> tuple[torch.Tensor, torch.Tensor]:
    """``images`` uint8 [N, 1, S, S] and ``labels`` [N] of 0/1 with both classes, or an error.

    Returns the labels as int64. ``what`` names the set in the message ("real training").
    """
    if not isinstance(images, torch.Tensor) or images.dtype != torch.uint8:
        found = images.dtype if isinstance(images, torch.Tensor) else type(images).__name__
        raise TypeError(f"{what} images: expected a uint8 tensor [N, 1, S, S] (0..255, as "
                        f"load_dataset returns), got {found}")
    if images.ndim != 4 or images.shape[1] != 1 or images.shape[2] != images.shape[3]:
        raise ValueError(f"{what} images: expected shape [N, 1, S, S], got {tuple(images.shape)}")
    labels = torch.as_tensor(labels)
    if labels.dtype.is_floating_point or labels.dtype == torch.bool or labels.ndim != 1:
        raise TypeError(f"{what} labels: expected integer class indices [N] (0 NORMAL, "
                        f"1 PNEUMONIA), got {labels.dtype} {tuple(labels.shape)}")
    if len(labels) != len(images):
        raise ValueError(f"{what}: {len(images)} images but {len(labels)} labels")
    if len(labels) and not bool(((labels == 0) | (labels == 1)).all()):
        raise ValueError(f"{what} labels: expected 0 (NORMAL) or 1 (PNEUMONIA), found "
                         f"{sorted(set(labels.tolist()))}")
    counts = class_counts(labels)
    if min(counts) == 0:
        raise ValueError(f"{what}: class counts {counts} (NORMAL, PNEUMONIA); a classifier "
                         "needs images of both classes to train or to be scored")
    return images, labels.long()


def class_counts(labels: torch.Tensor) -> list[int]:
    """[n class 0, n class 1] of 0/1 labels."""
    return torch.bincount(torch.as_tensor(labels).long(), minlength=2)[:2].tolist()


def to_input(images: torch.Tensor) -> torch.Tensor:
    """uint8 [B, 1, S, S] -> float in [-1, 1], as the GAN sees its images."""
    return images.float().div_(127.5).sub_(1.0)


def fit(images: torch.Tensor, labels: torch.Tensor, cfg: ClassifierConfig | None = None,
        seed: int = 0, progress: bool = True, desc: str = "classifier",
        ) -> tuple[Classifier, list[dict[str, float]]]:
    """Train a :class:`Classifier` on uint8 ``images`` [N, 1, S, S] and 0/1 ``labels`` [N].

    Returns (model in eval mode, curve): one record per epoch with the training loss (mean
    weighted BCE over the epoch's batches, as trained), training accuracy and seconds.
    The same inputs, ``cfg`` and ``seed`` on the same device and thread count give the same
    weights.
    """
    cfg = cfg or ClassifierConfig.preset("quick")
    images, labels = check_set(images, labels, "training")
    device = resolve_device(cfg.device)
    precision = cfg.precision if cfg.precision != "auto" else training_precision(
        config.make_train_config("quick"), device)[0]
    model = build(cfg, images.shape[-1], seed).to(device)
    x, y = images.to(device), labels.to(device)
    n, counts = len(y), class_counts(labels)
    weight = torch.tensor([n / (2 * c) if cfg.balanced_loss else 1.0 for c in counts],
                          device=device)
    steps_per_epoch = -(-n // cfg.batch_size)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.epochs * steps_per_epoch)
    curve = []
    bar = tqdm(total=cfg.epochs * steps_per_epoch, desc=desc, disable=not progress, leave=False)
    with _deterministic_cudnn(), _threads(cfg.threads):
        for epoch in range(cfg.epochs):
            model.train()
            t0, loss_sum, correct = time.perf_counter(), 0.0, 0
            order = torch.randperm(n, generator=torch.Generator().manual_seed(
                derived_seed(seed, STREAM_ORDER, epoch))).to(device)
            for start in range(0, n, cfg.batch_size):
                idx = order[start:start + cfg.batch_size]
                xb, yb = to_input(x[idx]), y[idx]
                with autocast_context(precision, device):
                    logits = model(xb).float()
                loss = F.binary_cross_entropy_with_logits(logits, yb.float(), weight=weight[yb])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                loss_sum += loss.item() * len(idx)
                correct += int(((logits > 0).long() == yb).sum())
                bar.update()
            curve.append({"epoch": epoch + 1, "loss": loss_sum / n, "accuracy": correct / n,
                          "seconds": time.perf_counter() - t0})
            bar.set_postfix(loss=f"{loss_sum / n:.3f}")
    bar.close()
    return model.eval(), curve


@contextlib.contextmanager
def _deterministic_cudnn() -> Iterator[None]:
    """cuDNN's deterministic algorithms for the block, then restored (no effect on a CPU)."""
    saved = torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    try:
        yield
    finally:
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = saved


@contextlib.contextmanager
def _threads(n: int | None) -> Iterator[None]:
    """torch's intra-op thread count set to ``n`` for the block (None: unchanged), then restored.

    On a 2-core machine shared with other jobs, one thread trains faster than two (the threads
    wait on each other; utility_budget.json: thread_check, from benchmarks/utility_budget.py).
    """
    before = torch.get_num_threads()
    if n is not None:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@torch.no_grad()
def predict(model: Classifier, images: torch.Tensor, batch_size: int = 256) -> np.ndarray:
    """P(class 1) of each uint8 image [N, 1, S, S], float64 [N], in eval mode."""
    model.eval()
    device = next(model.parameters()).device
    out = [torch.sigmoid(model(to_input(images[i:i + batch_size].to(device))).float()).cpu()
           for i in range(0, len(images), batch_size)]
    return torch.cat(out).double().numpy()


def scores(labels: Any, probabilities: Any) -> dict[str, float]:
    """Accuracy and balanced accuracy at P >= 0.5, and AUROC, by scikit-learn; plus n.

    >>> scores([0, 0, 1, 1], [0.1, 0.6, 0.4, 0.9])
    {'accuracy': 0.5, 'balanced_accuracy': 0.5, 'auroc': 0.75, 'n': 4}
    """
    y = np.asarray(labels).astype(int)
    p = np.asarray(probabilities, dtype=float)
    if y.shape != p.shape or y.ndim != 1:
        raise ValueError(f"labels {y.shape} and probabilities {p.shape}: expected two [N] arrays")
    if len(set(y.tolist())) < 2:
        raise ValueError("AUROC and balanced accuracy need test images of both classes")
    called = (p >= THRESHOLD).astype(int)
    return {"accuracy": float(accuracy_score(y, called)),
            "balanced_accuracy": float(balanced_accuracy_score(y, called)),
            "auroc": float(roc_auc_score(y, p)), "n": len(y)}


def evaluate(model: Classifier, images: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
    """:func:`scores` of ``model`` on uint8 ``images`` [N, 1, S, S] with 0/1 ``labels``."""
    images, labels = check_set(images, labels, "test")
    return scores(labels.numpy(), predict(model, images))
