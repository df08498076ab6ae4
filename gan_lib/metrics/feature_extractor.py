"""The feature extractor: torch-fidelity's network built from the resolved weights, in the
variant the rule chose (precision, BatchNorm folded or not, channels_last, torch.compile).

:func:`load_extractor` returns an :class:`Extractor`, which carries the settings that shape its
features (:meth:`Extractor.key` is the feature caches' key) and runs the forward pass, compiled
on first use when :attr:`Extractor.compiled`. :mod:`gan_lib.metrics.extraction` feeds it images.

Example:
    >>> from gan_lib import config
    >>> net = load_extractor(config.ScoreConfig(precision="fp32", device="cpu"))  # doctest: +SKIP
    >>> net.variant  # doctest: +SKIP
    'fp32, BatchNorm folded'
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
import torch_fidelity
from torch.nn.utils.fusion import fuse_conv_bn_eval
from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY
from torch_fidelity.utils import create_feature_extractor

from .. import config, device
from . import resize
from .inception_weights import EXTRACTOR, resolve_weights
from .variant_rule import resolve_compile, resolve_extraction, resolve_fold, variant_label

if TYPE_CHECKING:
    from ..config import ScoreConfig

# Narrower feature layers of the same network, requested in every extraction: they come out of
# the same forward pass as pool3 (torch-fidelity stops at the last requested layer, pool3 comes
# after them), so they cost nothing extra and let gan_lib.protocols compare FID widths.
WIDTHS = ("64", "192", "768")


@dataclass
class Extractor:
    """A torch-fidelity feature extractor with the settings that shape its features."""

    name: str
    module: torch.nn.Module
    layers: dict[str, str]  # metric ('fid', 'kid', 'is') -> feature ('2048', 'logits_unbiased')
    weights: dict[str, Any]  # what resolve_weights() found (path, sha256, origin, has_logits)
    device: torch.device
    precision: str  # fp32 | bf16 (autocast) | fastmath (oneDNN bf16 arithmetic, fp32 tensors)
    batch_size: int
    library: str = field(default="")
    fold_bn: bool = False  # BatchNorm folded into the convolutions (fold_batchnorm)
    compiled: bool = False  # run through torch.compile (resolve_compile); compiled on first use
    _forward: Callable[[torch.Tensor], Any] | None = field(default=None, repr=False)

    @property
    def variant(self) -> str:
        """How the features were computed, e.g. 'bf16, BatchNorm folded' (every score says it)."""
        return variant_label(self.precision, self.fold_bn, self.compiled)

    def forward(self, x: torch.Tensor) -> Any:
        """The module's forward pass, through torch.compile when :attr:`compiled`. The first
        batch compiles it (its cost: extraction_precision.json: rows.bf16-compiled.compile_seconds;
        inductor's on-disk cache shortens later ones). The
        resize to 299 px is compiled apart (:mod:`.resize`, bit-identical to torch-fidelity's),
        so the network's graph sees 299 px whatever the input size and is compiled once."""
        if not self.compiled:
            return self.module(x)
        with resize.compiled_resize():
            if self._forward is not None:
                return self._forward(x)
            os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(config.CACHE_DIR / "inductor"))
            # inductor's C++ builder warns "No CUDA runtime is found" on every CPU-only machine
            logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)
            compiled = torch.compile(self.module, dynamic=False)
            try:
                out = compiled(x)
            except Exception as err:  # inductor: no working C++ compiler, or an unsupported op
                raise RuntimeError(
                    f"torch.compile of the Inception extractor failed ({type(err).__name__}: "
                    f"{str(err).splitlines()[0] if str(err) else ''}); score without it: "
                    "ScoreConfig(compiled=False) / --set compiled=false") from err
        self._forward = compiled
        return out

    def describe(self) -> str:
        return (f"{self.name} ({self.library}), FID/KID layer {self.layers['fid']}, "
                f"{self.variant}")

    def key(self) -> dict[str, Any]:
        """What the features depend on (the real-statistics cache key)."""
        return {"extractor": self.name, "library": self.library,
                "layers": sorted(self.layers.items()), "weights_sha256": self.weights.get("sha256"),
                "features": sorted(self.module.get_requested_features_list()),
                "precision": self.precision, "fold_bn": self.fold_bn,
                "memory_format": "channels_last",
                # only when compiled, so that eager features keep the keys (and the caches)
                # they had without it
                **({"compiled": True} if self.compiled else {})}


def fold_batchnorm(module: torch.nn.Module) -> torch.nn.Module:
    """Fold each eval-mode BatchNorm of torch-fidelity's ``BasicConv2d`` blocks into its conv
    (torch.nn.utils.fusion.fuse_conv_bn_eval), in place: one op fewer per block, the same
    function up to float rounding (features change by ~1e-6 relative)."""
    for block in module.modules():
        if isinstance(getattr(block, "bn", None), torch.nn.BatchNorm2d) and isinstance(
                getattr(block, "conv", None), torch.nn.Conv2d):
            block.conv = fuse_conv_bn_eval(block.conv.eval(), block.bn.eval())
            block.bn = torch.nn.Identity()
    return module


def load_extractor(score_cfg: ScoreConfig, extractor: str = EXTRACTOR) -> Extractor:
    """Build torch-fidelity's extractor ``extractor`` with resolved weights on the chosen device.

    The IS layer is added only when the weights have classifier logits; the narrower layers
    :data:`WIDTHS` are requested beside them when the extractor provides them.
    """
    if extractor not in FEATURE_EXTRACTORS_REGISTRY:
        raise ValueError(f"extractor={extractor!r} is not registered with torch-fidelity; "
                         f"known: {sorted(FEATURE_EXTRACTORS_REGISTRY)}")
    cls = FEATURE_EXTRACTORS_REGISTRY[extractor]
    if extractor == EXTRACTOR or score_cfg.weights:
        weights = resolve_weights(score_cfg.weights)
    else:
        weights = {"path": None, "sha256": None, "origin": f"none needed by {extractor}",
                   "has_logits": True}
    layers = {m: cls.get_default_feature_layer_for_metric(m) for m in ("fid", "kid")}
    if weights["has_logits"]:
        layers["is"] = cls.get_default_feature_layer_for_metric("isc")
    where = device.resolve_device(score_cfg.device)
    precision = resolve_extraction(score_cfg.precision, where)
    widths = [w for w in WIDTHS if w in cls.get_provided_features_list()]
    try:
        module = create_feature_extractor(extractor, sorted({*layers.values(), *widths}),
                                          cuda=False, verbose=False,
                                          feature_extractor_weights_path=weights["path"])
    except RuntimeError as err:  # load_state_dict: passed our checks but still does not fit
        raise ValueError(f"torch-fidelity could not load {weights['path']}: {err}") from None
    # channels_last: oneDNN's preferred CPU layout (its fp32 speed against contiguous is the
    # "fp32-contiguous" row of benchmarks/extraction_precision.py); features change ~1e-6.
    module = module.to(device=where, memory_format=torch.channels_last)
    fold = resolve_fold(score_cfg.fold_bn, precision)
    if fold:
        module = fold_batchnorm(module)
    return Extractor(extractor, module, layers, weights, where, precision,
                     score_cfg.batch_size, library=f"torch-fidelity {torch_fidelity.__version__}",
                     fold_bn=fold,
                     compiled=resolve_compile(score_cfg.compiled, precision, where, extractor))
