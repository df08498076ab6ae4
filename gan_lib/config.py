"""Settings, named profiles and repository paths: the one place every other module reads them from.

A notebook's ``parameters`` cell holds plain literals; they become a :class:`TrainConfig` via
:func:`make_train_config`, which starts from a named profile and applies overrides. Unknown or
ill-typed keys fail early with a message naming the key.

Example:
    >>> cfg = make_train_config("smoke", name="demo", iterations=12, snapshot_at=[6, 12])
    >>> cfg.batch_size, cfg.snapshot_at
    (32, (6, 12))
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .typed_settings import check_keys, check_types

# ---------------------------------------------------------------------------------------------
# Paths. Everything is resolved from the repository root, never from the working directory, so
# notebooks behave the same under JupyterLab (cwd = notebooks/), papermill and pytest.
# GAN_LIB_HOME moves the outputs (runs/, reports/) elsewhere, so `make test` never overwrites the
# report that `make report` built; data/ (user data and content-keyed caches) stays shared.
# GAN_LIB_DATA moves data/ too.
# ---------------------------------------------------------------------------------------------
REPO_ROOT = Path(__file__).resolve().parent.parent
HOME = Path(os.environ.get("GAN_LIB_HOME", REPO_ROOT)).resolve()
NOTEBOOKS_DIR = REPO_ROOT / "notebooks"
DATA_DIR = Path(os.environ.get("GAN_LIB_DATA", REPO_ROOT / "data")).resolve()
RAW_DIR = DATA_DIR / "raw"  # user data, read-only
CACHE_DIR = DATA_DIR / "cache"  # decoded image tensors, real-set feature statistics, weights
PHANTOM_DIR = DATA_DIR / "phantom"  # the built-in synthetic set, Kermany layout
RUNS_DIR = HOME / "runs"
REPORTS_DIR = HOME / "reports"



def offline() -> bool:
    """GAN_LIB_OFFLINE=1: never try a download (data set, weights); `make test` and CI set it."""
    return os.environ.get("GAN_LIB_OFFLINE", "") not in ("", "0")


IMAGE_SIZES = (32, 64, 128)
PRECISIONS = ("auto", "fp32", "bf16")
RESIZE_POLICIES = ("crop", "squash", "pad")  # data/imagefile.py: how an image is made square
# How Inception runs (gan_lib/metrics/variant_rule.py): fp32; bf16 autocast; fp32 tensors with
# oneDNN's bf16 arithmetic inside convolutions and matmuls ("fastmath", CPU only). "auto" is
# decided by calibration on this machine (gan_lib/metrics/calibrate.py).
EXTRACTION_PRECISIONS = ("auto", "fp32", "bf16", "fastmath")
METRICS = ("is", "fid", "kid")
AUGMENT_OPS = ("translation", "cutout", "brightness", "contrast")  # gan_lib/gan/augment.py
G_CONDITIONINGS = ("concat", "batchnorm")  # how a conditional G takes its class (gan/models.py)
G_UPSAMPLINGS = ("transposed", "resize")  # how G doubles its side (gan/models.py)
D_NORMS = ("batchnorm", "spectral")  # what normalises D's hidden layers (gan/models.py)
LOSSES = ("bce", "hinge")  # the adversarial loss (gan/losses.py)
MAX_NAME = 100  # characters of a run name: runs/<name> and the files beside it stay short


@dataclass(frozen=True)
class TrainConfig:
    """Every training setting. Defaults are the report's DCGAN (Radford et al. 2016)."""

    name: str = "smoke"  # run folder: runs/<name>
    profile: str = "custom"  # the preset these values started from (recorded, not used)
    source: str = "auto"  # data source for load_dataset(): auto | phantom | pneumoniamnist | path
    image_size: int = 64  # pixels per side: 32, 64 or 128
    # How a non-square radiograph becomes image_size x image_size (gan_lib/data/imagefile.py):
    # crop (centre square, the lateral edges go), squash (all kept, narrowed) or pad (letterbox
    # with the image's border value). Training, scoring, the audit and the studies all load the
    # run's images this way; it is part of the data fingerprint and so of every cache key.
    resize: str = "crop"
    subset: int | None = None  # use only the first N training images (seeded shuffle); None = all
    batch_size: int = 128
    iterations: int = 2000  # generator updates; epochs follow from the data size
    snapshot_at: tuple[int, ...] = (500, 1000, 2000)  # iterations that save G for scoring
    z_dim: int = 100
    g_channels: int = 64  # ngf: feature maps of the generator's last hidden layer
    d_channels: int = 64  # ndf: feature maps of the discriminator's first layer
    lr: float = 2e-4  # Adam's learning rate (G's; D's too unless lr_d is set)
    beta1: float = 0.5
    beta2: float = 0.999
    # --- Options beyond the report's DCGAN; each default is the DCGAN's (docs/training.md) ---
    # G's upsampling: "transposed" (strided 4x4 transposed convolutions, the DCGAN's) or
    # "resize" (nearest x2, then a 3x3 convolution: no checkerboard, Odena et al. 2016)
    g_upsample: str = "transposed"
    # D's hidden normalisation: "batchnorm" (the DCGAN's) or "spectral" (spectral normalisation
    # of every D weight in place of BatchNorm, Miyato et al. 2018)
    d_norm: str = "batchnorm"
    # a minibatch standard-deviation feature map before D's last layer (Karras et al. 2018)
    d_mbstd: bool = False
    loss: str = "bce"  # "bce": the non-saturating loss (the DCGAN's); "hinge" (Lim & Ye 2017)
    # Two time-scale update rule (Heusel et al. 2017): D's own Adam settings; None = G's
    lr_d: float | None = None
    beta1_d: float | None = None
    beta2_d: float | None = None
    # R1 penalty on real images (Mescheder et al. 2018): gamma/2 E||grad_x D(x)||^2, applied
    # lazily every r1_every D steps and scaled by r1_every (Karras et al. 2020); 0 = off
    r1_gamma: float = 0.0
    r1_every: int = 16
    # AC-GAN (Odena et al. 2017), conditional runs only: D gains a classifier of the class on its
    # last features, trained on real images; G's loss adds its cross-entropy on the fakes at the
    # class they were asked for, times this weight; 0 = off
    ac_weight: float = 0.0
    ema_decay: float = 0.0  # generator EMA (e.g. 0.999); 0 = off, as in the report
    # The EMA's decay ramps up with its update count n: min(ema_decay, (1 + n) / (10 + n)), as
    # tf.train.ExponentialMovingAverage(num_updates); False: ema_decay from the first update
    ema_warmup: bool = True
    conditional: bool = False  # class-conditional G and projection D; False = the report's DCGAN
    # How a conditional G takes its class: batchnorm (per-class gain and bias after each
    # BatchNorm) | concat (an embedding beside z); docs/conditional.md compares the two (one
    # training run per arm, so no verdict between them)
    g_conditioning: str = "batchnorm"
    seed: int = 0
    device: str = "auto"  # auto = cuda when present, else cpu
    # fp32 | bf16 (autocast) | auto: the faster of the two on this machine, timed once per
    # machine and network shape (gan/calibrate.py; bf16 is allowed by the FID evidence of
    # benchmarks/results/precision_quality.json); on CUDA, bf16 where native. config.json
    # records how it was chosen.
    precision: str = "auto"
    # channels_last: the default; its speed against the contiguous layout has not been measured
    # (train_throughput.py runs every gan_lib contestant channels_last)
    channels_last: bool = True
    compile: bool = False  # torch.compile the two networks
    checkpoint_every: int = 100  # iterations between resume checkpoints (and always at the end)
    grid_size: int = 64  # images in each fixed-noise grid (8 x 8)
    # Sampling rule: before each grid and snapshot, BatchNorm statistics are re-estimated on
    # the generator's own weights over this many batches of batch_size latents (precise BN;
    # chosen because each image is then independent of its batch; docs/benchmarks.md shows the
    # modes' FIDs on one phantom run, no verdict). Every grid, score and sample uses them.
    bn_batches: int = 16
    # DiffAugment policy (gan_lib/augment.py): a comma-separated subset of AUGMENT_OPS applied
    # to every batch D sees, real and generated; "" = off, as in the report.
    augment: str = ""

    def __post_init__(self) -> None:
        check_types(self)
        ops = [op.strip() for op in self.augment.split(",") if op.strip()]
        object.__setattr__(self, "augment", ",".join(ops))  # one spelling: "a,b"
        # Lists from JSON / papermill become tuples so the config stays hashable and comparable.
        object.__setattr__(self, "snapshot_at", tuple(int(s) for s in self.snapshot_at))
        problems = []
        if self.image_size not in IMAGE_SIZES:
            problems.append(f"image_size={self.image_size}: expected one of {IMAGE_SIZES}")
        if self.iterations < 1:
            problems.append(f"iterations={self.iterations}: expected an integer >= 1")
        if self.batch_size < 1:
            problems.append(f"batch_size={self.batch_size}: expected an integer >= 1")
        if self.subset is not None and self.subset < self.batch_size:
            problems.append(f"subset={self.subset}: expected at least batch_size={self.batch_size} images")
        bad = [s for s in self.snapshot_at if not 1 <= s <= self.iterations]
        if bad:
            problems.append(
                f"snapshot_at={list(self.snapshot_at)}: {bad} outside 1..iterations={self.iterations}"
            )
        if self.precision not in PRECISIONS:
            problems.append(f"precision={self.precision!r}: expected one of {PRECISIONS}")
        if self.resize not in RESIZE_POLICIES:
            problems.append(f"resize={self.resize!r}: expected one of {RESIZE_POLICIES} (crop: "
                            "centre square; squash: both sides scaled; pad: letterbox)")
        if not 0.0 <= self.ema_decay < 1.0:
            problems.append(f"ema_decay={self.ema_decay}: expected 0 (off) or a value in (0, 1)")
        if any(op not in AUGMENT_OPS for op in ops):
            problems.append(f"augment={self.augment!r}: expected a comma-separated subset of "
                            f"{list(AUGMENT_OPS)}, or '' for none")
        for key, allowed in (("g_upsample", G_UPSAMPLINGS), ("d_norm", D_NORMS),
                             ("loss", LOSSES)):
            if getattr(self, key) not in allowed:
                problems.append(f"{key}={getattr(self, key)!r}: expected one of {allowed}")
        if not (math.isfinite(self.r1_gamma) and self.r1_gamma >= 0):
            problems.append(f"r1_gamma={self.r1_gamma}: expected 0 (off) or a finite value > 0")
        if not (math.isfinite(self.ac_weight) and self.ac_weight >= 0):
            problems.append(f"ac_weight={self.ac_weight}: expected 0 (off) or a finite value > 0")
        if self.ac_weight > 0 and not self.conditional:
            problems.append(f"ac_weight={self.ac_weight}: the auxiliary classifier needs class "
                            "labels; set conditional=True, or ac_weight=0")
        if self.r1_every < 1:
            problems.append(f"r1_every={self.r1_every}: expected an integer >= 1")
        if self.g_conditioning not in G_CONDITIONINGS:
            problems.append(f"g_conditioning={self.g_conditioning!r}: expected one of "
                            f"{G_CONDITIONINGS}")
        if self.bn_batches < 1:
            problems.append(f"bn_batches={self.bn_batches}: expected an integer >= 1")
        if self.checkpoint_every < 1:
            problems.append(f"checkpoint_every={self.checkpoint_every}: expected an integer >= 1")
        for key in ("z_dim", "g_channels", "d_channels", "grid_size"):
            if getattr(self, key) < 1:
                problems.append(f"{key}={getattr(self, key)}: expected an integer >= 1")
        for key in ("lr", "lr_d"):
            value = getattr(self, key)
            if value is not None and not (math.isfinite(value) and value > 0):
                problems.append(f"{key}={value}: expected a finite learning rate > 0, e.g. 2e-4")
        for key in ("beta1", "beta2", "beta1_d", "beta2_d"):
            value = getattr(self, key)
            if value is not None and not 0.0 <= value < 1.0:  # also false for nan
                problems.append(f"{key}={value}: expected a value in [0, 1)")
        if (not self.name or len(self.name) > MAX_NAME or self.name.startswith(".")
                or any(c in "/\\" or not c.isprintable() for c in self.name)):
            problems.append(f"name={self.name[:40]!r}{'...' if len(self.name) > 40 else ''}: "
                            f"expected a plain folder name of at most {MAX_NAME} characters, "
                            "such as 'quick' (no '/', '\\', line breaks or a leading '.')")
        if problems:
            raise ValueError("Invalid TrainConfig: " + "; ".join(problems))

    def adam_d(self) -> tuple[float, tuple[float, float]]:
        """D's Adam learning rate and betas: its own where set (TTUR), else G's."""
        def own(value: float | None, shared: float) -> float:
            return shared if value is None else value
        return own(self.lr_d, self.lr), (own(self.beta1_d, self.beta1),
                                         own(self.beta2_d, self.beta2))

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["snapshot_at"] = list(self.snapshot_at)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        check_keys(cls, d)
        return cls(**d)


@dataclass(frozen=True)
class ScoreConfig:
    """How snapshots are scored: sample sizes, metrics, and how Inception runs (10 IS splits)."""

    n_fake: int = 5000  # generated images per snapshot for FID / KID
    n_fake_is: int = 4096  # generated images for the Inception Score (of the final snapshot)
    n_real: int | None = None  # real images for the reference statistics; None = the whole split
    metrics: tuple[str, ...] = METRICS
    batch_size: int = 64
    device: str = "auto"
    # How Inception runs: precision fp32 | bf16 | fastmath; fold_bn: each BatchNorm folded
    # into its convolution; compiled: torch.compile (inductor). "auto" / None: decided on this
    # machine by calibration (metrics/calibrate.py: the fastest variant whose features stay
    # within the committed quality bound of fp32's), what is set is kept (variant_rule.py).
    # Recorded in every score's provenance (with how it was chosen) and part of the feature
    # cache key. The smoke profile fixes all three: its sets are smaller than a calibration.
    precision: str = "auto"
    fold_bn: bool | None = None
    compiled: bool | None = None
    is_splits: int = 10
    kid_subset_size: int = 1000  # torch-fidelity's default; lowered to n when fewer images
    kid_subsets: int = 100
    seed: int = 1234  # latents for scoring, independent of the training seed
    weights: str | None = None  # explicit Inception weights (else found: inception_weights.py)

    def __post_init__(self) -> None:
        check_types(self)
        object.__setattr__(self, "metrics", tuple(m.lower() for m in self.metrics))
        unknown = sorted(set(self.metrics) - set(METRICS))
        if unknown:
            raise ValueError(f"Invalid ScoreConfig: metrics {unknown}: expected some of {METRICS}")
        for key in ("n_fake", "n_fake_is", "batch_size", "is_splits", "kid_subsets",
                    "kid_subset_size"):
            if getattr(self, key) < 1:
                raise ValueError(f"Invalid ScoreConfig: {key}={getattr(self, key)}: expected >= 1")
        for key in ("n_fake", "n_real"):  # FID fits a covariance: one image has none
            if getattr(self, key) is not None and getattr(self, key) < 2:
                raise ValueError(f"Invalid ScoreConfig: {key}={getattr(self, key)}: expected "
                                 f"{'None (the whole split) or ' if key == 'n_real' else ''}"
                                 "an integer >= 2: FID needs at least 2 images (their "
                                 "covariance)")
        if self.precision not in EXTRACTION_PRECISIONS:
            raise ValueError(f"Invalid ScoreConfig: precision={self.precision!r}: expected one "
                             f"of {EXTRACTION_PRECISIONS}")

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["metrics"] = list(self.metrics)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ScoreConfig:
        check_keys(cls, d)
        return cls(**d)


# Named presets (README.md "Profiles"). Iterations and milestones are the report's in
# `paper`; `quick` is sized for a CPU in minutes; `smoke` for tests, nbval and CI in seconds.
PROFILES: dict[str, dict[str, dict[str, Any]]] = {
    "smoke": {
        # Variants fixed (fp32, BatchNorm folded, eager): a calibration would cost more than
        # the whole smoke run, and tests and nbval want the same arithmetic on every machine.
        "train": dict(subset=256, image_size=64, batch_size=32, iterations=20,
                      snapshot_at=(10, 20), checkpoint_every=10, g_channels=16, d_channels=16,
                      precision="fp32"),
        # Inception is slow on a CPU (extraction_precision.json: rows.fp32.img_per_s_full_pass):
        # keep every real/fake set tiny here.
        "score": dict(n_fake=32, n_fake_is=32, n_real=64, kid_subset_size=16, kid_subsets=10,
                      is_splits=2, batch_size=32, precision="fp32", fold_bn=True,
                      compiled=False),
    },
    "quick": {
        "train": dict(image_size=64, batch_size=64, iterations=600, snapshot_at=(200, 400, 600),
                      checkpoint_every=100),
        "score": dict(n_fake=1024, n_fake_is=1024, n_real=2048, kid_subset_size=500),
    },
    "paper": {
        "train": dict(image_size=64, batch_size=128, iterations=2000,
                      snapshot_at=(500, 1000, 2000), checkpoint_every=250),
        "score": dict(n_fake=5000, n_fake_is=4096, n_real=None, kid_subset_size=1000),
    },
}


# The recipe beside the report's DCGAN (benchmarks/recipes.py screens it against the DCGAN, with
# seeds, in benchmarks/results/real_recipes.json; docs/recipes.md): G upsampling by resize-
# convolution, spectral normalisation in D instead of BatchNorm, a minibatch-std feature, the
# hinge loss, TTUR (D at twice G's rate, Adam betas (0, 0.9)), DiffAugment and an EMA of G.
SN_HINGE = dict(g_upsample="resize", d_norm="spectral", d_mbstd=True, loss="hinge", lr=2e-4,
                lr_d=4e-4, beta1=0.0, beta2=0.9, augment="translation,cutout", ema_decay=0.999)
for _length in ("quick", "paper"):  # the recipe at the DCGAN's lengths, scored alike
    PROFILES[f"sn-hinge-{_length}"] = {"train": {**PROFILES[_length]["train"], **SN_HINGE},
                                       "score": PROFILES[_length]["score"]}


def make_train_config(profile: str = "smoke", **overrides: Any) -> TrainConfig:
    """A TrainConfig from a named profile plus overrides; the run name defaults to the profile."""
    base = _profile(profile)["train"]
    values = {"name": profile, **base, **overrides, "profile": profile}
    return TrainConfig.from_dict(values)


def make_score_config(profile: str = "smoke", **overrides: Any) -> ScoreConfig:
    """A ScoreConfig from a named profile plus overrides."""
    return ScoreConfig.from_dict({**_profile(profile)["score"], **overrides})


def _profile(name: str) -> dict[str, dict[str, Any]]:
    if name not in PROFILES:
        raise ValueError(f"Unknown profile {name!r}: expected one of {', '.join(PROFILES)}")
    return PROFILES[name]


__all__ = [
    "REPO_ROOT", "HOME", "NOTEBOOKS_DIR", "DATA_DIR", "RAW_DIR", "CACHE_DIR", "PHANTOM_DIR",
    "RUNS_DIR", "REPORTS_DIR", "TrainConfig", "ScoreConfig", "PROFILES", "SN_HINGE",
    "make_train_config",
    "make_score_config",
]
