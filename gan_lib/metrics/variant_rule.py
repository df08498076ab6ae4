"""The extraction variant rule: which precision, BatchNorm folding and torch.compile a
:class:`~gan_lib.config.ScoreConfig` resolves to on this device, and how scores name it.

``precision="auto"``, ``fold_bn=None`` and ``compiled=None`` are resolved here and nowhere
else; :mod:`gan_lib.metrics.feature_extractor` builds the network in the variant chosen.

Example:
    >>> resolve_fold(None, "fp32"), variant_label("bf16", False, True)
    (True, 'bf16, BatchNorm separate, compiled')
"""

from __future__ import annotations

import os
import shutil
from typing import TYPE_CHECKING

import torch

from .. import device
from .inception_weights import EXTRACTOR

if TYPE_CHECKING:
    from ..config import ScoreConfig

# The default extraction where bf16 is faster (AMX CPUs, CUDA), chosen by a rule declared
# before measuring: the fastest variant whose FID stays within 0.5% of fp32 at every snapshot
# and within 0.05 at the held-out floor, on real chest X-rays. The measurement is
# benchmarks/results/extraction_precision.json: rows.<variant> (speed_vs_fp32, meets_rule,
# abs_change_at_floor) and the variant chosen, default. tests/test_benchmarks.py checks that
# these constants are the file's choice. Elsewhere: fp32 with BatchNorm folded (exact up to
# rounding), eager (compiling it there is unmeasured).
MEASURED_DEFAULT = "bf16"
# Whether that default runs through torch.compile (inductor fuses each BatchNorm, ReLU and cast
# into one pass; BatchNorm is not folded): the file's "bf16-compiled" row.
MEASURED_DEFAULT_COMPILED = True


def resolve_extraction(precision: str, where: torch.device) -> str:
    """'auto' -> :data:`MEASURED_DEFAULT` where ``device.bf16_is_faster``, else 'fp32'; others kept.
    'fastmath' is oneDNN's (CPU) and falls back to fp32 on a GPU, which has no such mode here.

    >>> resolve_extraction("fp32", torch.device("cpu"))
    'fp32'
    """
    if precision == "auto":
        return MEASURED_DEFAULT if device.bf16_is_faster(where) else "fp32"
    if precision == "fastmath" and where.type != "cpu":
        return "fp32"
    return precision


def resolve_fold(fold_bn: bool | None, precision: str) -> bool:
    """None -> fold BatchNorm in fp32 only (see :data:`MEASURED_DEFAULT`); True/False kept.

    >>> resolve_fold(None, "fp32"), resolve_fold(None, "bf16"), resolve_fold(True, "bf16")
    (True, False, True)
    """
    return precision == "fp32" if fold_bn is None else fold_bn


def cxx_compiler() -> str | None:
    """The C++ compiler torch.compile's inductor would build CPU kernels with ($CXX, g++ or
    clang++), or None where there is none."""
    found = (shutil.which(name) for name in (os.environ.get("CXX"), "g++", "clang++") if name)
    return next((path for path in found if path), None)


def resolve_compile(compiled: bool | None, precision: str, where: torch.device,
                    extractor: str = EXTRACTOR) -> bool:
    """None -> compile where it was measured to meet the rule (:data:`MEASURED_DEFAULT_COMPILED`:
    the FID Inception in the measured default precision on a CPU where bf16 is faster) and a C++
    compiler exists; elsewhere (GPUs, fp32 CPUs, other extractors) it is unmeasured and off.
    True without a compiler is refused; True/False otherwise kept.

    >>> resolve_compile(None, "fp32", torch.device("cpu")), resolve_compile(False, "bf16", torch.device("cpu"))
    (False, False)
    """
    if compiled is None:
        return (MEASURED_DEFAULT_COMPILED and precision == MEASURED_DEFAULT
                and where.type == "cpu" and device.bf16_is_faster(where)
                and extractor == EXTRACTOR and cxx_compiler() is not None)
    if compiled and where.type == "cpu" and cxx_compiler() is None:
        raise ValueError("compiled=True: torch.compile needs a C++ compiler for CPU kernels and "
                         "none was found (CXX, g++, clang++); install one (Debian: apt-get "
                         "install g++) or score with compiled=False")
    return compiled


def variant_name(score_cfg: ScoreConfig, extractor: str = EXTRACTOR) -> str:
    """The extraction variant ``score_cfg`` resolves to here, as scores record it.

    >>> from gan_lib import config
    >>> variant_name(config.ScoreConfig(precision="fp32", fold_bn=False, device="cpu"))
    'fp32, BatchNorm separate'
    """
    where = device.resolve_device(score_cfg.device)
    precision = resolve_extraction(score_cfg.precision, where)
    return variant_label(precision, resolve_fold(score_cfg.fold_bn, precision),
                    resolve_compile(score_cfg.compiled, precision, where, extractor))


def variant_label(precision: str, fold_bn: bool, compiled: bool = False) -> str:
    """How scores name an extraction variant.

    >>> variant_label("bf16", False, True)
    'bf16, BatchNorm separate, compiled'
    """
    return (f"{precision}, BatchNorm {'folded' if fold_bn else 'separate'}"
            + (", compiled" if compiled else ""))
