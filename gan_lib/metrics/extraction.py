"""Extraction: uint8 images through a :class:`~gan_lib.metrics.feature_extractor.Extractor`,
batch by batch, into float32 features on the CPU; and the per-report log of what went through.

Example:
    >>> from gan_lib import config
    >>> from gan_lib.metrics.feature_extractor import load_extractor
    >>> net = load_extractor(config.ScoreConfig(device="cpu"))  # doctest: +SKIP
    >>> images = torch.zeros(4, 1, 64, 64, dtype=torch.uint8)
    >>> extract_features(net, images)["2048"].shape  # doctest: +SKIP
    torch.Size([4, 2048])
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from .. import device, storage
from ..scale import distributed


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


@torch.no_grad()
def extract_features(net: Any, images: torch.Tensor, desc: str = "features",
                     progress: bool = True, log: bool = True) -> dict[str, torch.Tensor]:
    """uint8 [N, 1 or 3, H, W] -> {feature name: float32 [N, D]} on the CPU, batch by batch,
    through ``net``, a :class:`~gan_lib.metrics.feature_extractor.Extractor` (not imported
    here: calibration, which feature_extractor calls, extracts through this function).

    Only one batch is on the device at a time (Inception resizes each to 299x299 inside).
    ``progress``: a bar; ``log``: a line in the report's :data:`EXTRACTION_LOG` (calibration
    turns both off: its passes are the machine's, not the report's).
    """
    if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"expected uint8 images [N, 1 or 3, H, W] (0..255), got {images.dtype} "
                         f"{tuple(images.shape)}; convert [-1, 1] floats with models.to_uint8")
    names = list(net.module.get_requested_features_list())
    out: dict[str, list[torch.Tensor]] = {k: [] for k in names}
    with tqdm(total=len(images), desc=desc, unit="img", leave=False,
              **(distributed.progress_bar() if progress else {"disable": True})) as bar:
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
    if log:
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
    with storage.space_checked(Path(path).parent), open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps({"images": len(images), "desc": desc, "sha256": digest}) + "\n")


def read_extraction_log(path: str | os.PathLike) -> list[dict[str, Any]]:
    """The lines :func:`extract_features` logged to ``path`` ([] when nothing was extracted)."""
    path = Path(path)
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
