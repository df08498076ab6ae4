"""The extraction variant rule: which precision, BatchNorm folding and torch.compile a
:class:`~gan_lib.config.ScoreConfig` resolves to on this machine, and how scores name it.

What a ScoreConfig sets (``precision`` other than "auto", ``fold_bn`` and ``compiled`` other than
None) is kept: a user can force any variant. What it leaves open is decided here:

- on a CPU, with the FID Inception, by calibration (:mod:`gan_lib.metrics.calibrate`): every
  candidate timed on this machine, and the fastest among those whose features stay within the
  committed quality bound of fp32's (:func:`from_calibration`);
- otherwise by a rule (:func:`by_rule`): on CUDA bf16 where the GPU computes it natively
  (not measured: no GPU was at hand), BatchNorm folded in fp32 only (folding is exact up to
  rounding there; in bf16 it moved the FID past the rule: extraction_precision.json:
  rows.bf16-folded.meets_rule), eager; with ``GAN_LIB_CALIBRATE=0`` and for other extractors,
  fp32 with BatchNorm folded, eager.

:mod:`gan_lib.metrics.feature_extractor` builds the network in the variant chosen.

Example:
    >>> from gan_lib import config
    >>> cfg = config.ScoreConfig(precision="fp32", fold_bn=False, compiled=False)
    >>> v, record = by_rule(cfg, torch.device("cpu"), how="forced")
    >>> v.label, record["chosen"]
    ('fp32, BatchNorm separate', {'precision': 'fp32', 'fold_bn': False, 'compiled': False})
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from .. import device
from .inception_weights import EXTRACTOR

if TYPE_CHECKING:
    from ..config import ScoreConfig

SETTINGS = ("precision", "fold_bn", "compiled")  # the ScoreConfig fields that name a variant


@dataclass(frozen=True)
class Variant:
    """How Inception runs: arithmetic, BatchNorm folded into the convolutions, torch.compile."""

    precision: str  # fp32 | bf16 (autocast) | fastmath (oneDNN bf16 arithmetic, fp32 tensors)
    fold_bn: bool
    compiled: bool = False

    @property
    def label(self) -> str:
        return variant_label(self.precision, self.fold_bn, self.compiled)

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def forced(score_cfg: ScoreConfig) -> dict[str, Any]:
    """The variant settings ``score_cfg`` fixes (the others are left to calibration or rule).

    >>> from gan_lib import config
    >>> forced(config.ScoreConfig(precision="bf16"))
    {'precision': 'bf16'}
    """
    given = {"precision": None if score_cfg.precision == "auto" else score_cfg.precision,
             "fold_bn": score_cfg.fold_bn, "compiled": score_cfg.compiled}
    return {k: v for k, v in given.items() if v is not None}


def calibrates(score_cfg: ScoreConfig, where: torch.device, extractor: str = EXTRACTOR) -> bool:
    """Whether ``score_cfg`` leaves something for calibration to decide here: a CPU, the FID
    Inception (the only extractor the quality bound was measured for), a setting left open,
    calibration not switched off (``GAN_LIB_CALIBRATE=0``)."""
    return (where.type == "cpu" and extractor == EXTRACTOR and len(forced(score_cfg)) < 3
            and device.calibration_enabled())


def by_rule(score_cfg: ScoreConfig, where: torch.device, how: str = "rule",
            why: str | None = None) -> tuple[Variant, dict[str, Any]]:
    """The variant without calibration (see the module's docstring) and its record."""
    given = forced(score_cfg)
    precision = given.get("precision")
    if precision is None:
        precision = "bf16" if where.type == "cuda" and device.bf16_supported(where) else "fp32"
    if precision == "fastmath" and where.type != "cpu":
        precision = "fp32"  # oneDNN's (CPU) mode; a GPU has no such mode here
    v = Variant(precision, given.get("fold_bn", precision == "fp32"),
                _checked_compile(given.get("compiled", False), where))
    why = why or {"forced": "every setting given by ScoreConfig",
           "skipped": f"{device.CALIBRATE_ENV}=0: fp32 eager unless set",
           "rule": "not calibrated: a GPU or another extractor (fp32 eager on a CPU; bf16 "
                   "where a GPU computes it natively)"}[how]
    return v, {"how": how, "why": why, "forced": given, "chosen": v.as_dict()}


def from_calibration(score_cfg: ScoreConfig, where: torch.device,
                     record: dict[str, Any]) -> tuple[Variant, dict[str, Any]]:
    """The fastest calibrated candidate within the bound that agrees with what ``score_cfg``
    fixes. A fixed setting no candidate has (``fastmath``; ``compiled=True`` for a variant
    that was not compiled) is applied to the best candidate of the rest; where every matching
    candidate is over the bound (e.g. ``precision="bf16"`` where bf16 deviates too far), the
    user's setting still wins, with a warning."""
    given = forced(score_cfg)
    cands = record["candidates"]
    if given.get("precision") not in (None, *{c["precision"] for c in cands}):
        return by_rule(score_cfg, where, how="forced", why=f"precision={given['precision']!r} "
                       "is not a calibration candidate: the rule for the other settings")
    match = [c for c in cands if all(c[k] == v for k, v in given.items())]
    if not match:  # compiled=True (or False) where calibration timed only the other
        match = [{**c, "compiled": given["compiled"]} for c in cands
                 if all(c[k] == v for k, v in given.items() if k != "compiled")]
    ok = [c for c in match if c["within_bound"]]
    if not ok:
        warnings.warn(f"extraction: {given} is over calibration's quality bound here "
                      f"({', '.join(c['name'] + ': ' + c['why'] for c in match)}); used as set",
                      stacklevel=3)
        ok = [min(match, key=lambda c: float("inf") if c["deviation"] is None else c["deviation"])]
    best = device.fastest_within_bound([{**c, "within_bound": True} for c in ok])
    v = Variant(best["precision"], best["fold_bn"], _checked_compile(best["compiled"], where))
    return v, {**record, "forced": given, "chosen": v.as_dict()}


def cxx_compiler() -> str | None:
    """The C++ compiler torch.compile's inductor would build CPU kernels with ($CXX, g++ or
    clang++), or None where there is none."""
    found = (shutil.which(name) for name in (os.environ.get("CXX"), "g++", "clang++") if name)
    return next((path for path in found if path), None)


def _checked_compile(compiled: bool, where: torch.device) -> bool:
    """``compiled``, refused where it cannot work (no C++ compiler for CPU kernels)."""
    if compiled and where.type == "cpu" and cxx_compiler() is None:
        raise ValueError("compiled=True: torch.compile needs a C++ compiler for CPU kernels and "
                         "none was found (CXX, g++, clang++); install one (Debian: apt-get "
                         "install g++) or score with compiled=False")
    return compiled


def variant_label(precision: str, fold_bn: bool, compiled: bool = False) -> str:
    """How scores name an extraction variant.

    >>> variant_label("bf16", False, True)
    'bf16, BatchNorm separate, compiled'
    """
    return (f"{precision}, BatchNorm {'folded' if fold_bn else 'separate'}"
            + (", compiled" if compiled else ""))


__all__ = ["Variant", "SETTINGS", "forced", "calibrates", "by_rule", "from_calibration",
           "cxx_compiler", "variant_label"]
