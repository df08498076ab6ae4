"""Where and at what precision tensors are computed: device, bf16 support, autocast, and the
cache of what calibration measured on this machine.

Training and scoring both read these, so they sit below both: config/storage -> device -> models,
data -> train, metrics (see ARCHITECTURE.md). "auto" precision and extraction variants are
measured on the machine at hand, never read off a CPU flag: the stages time their own work
(``gan/calibrate.py``: the training step; ``metrics/calibrate.py``: Inception extraction) and
keep the decision here, with :func:`calibrated`, one file per kind and machine under
``config.CACHE_DIR / "calibration"``, keyed by :func:`machine` (CPU model and flags, the ISA caps
in force, threads, torch version) and by what was timed.

Example:
    >>> resolve_device("cpu"), machine(resolve_device("cpu"))["device"]
    (device(type='cpu'), 'cpu')
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import os
import platform
import statistics
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from . import config, storage

# The CPU probes torch offers for native bf16 arithmetic. They are private functions of
# torch.cpu, so tests/test_device.py checks they exist in the pinned torch: a rename would
# otherwise turn bf16 off silently.
CPU_BF16_PROBES = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")


def resolve_device(name: str) -> torch.device:
    """'auto' -> cuda when present, else cpu; an unavailable device is an error naming the key."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ValueError(f"device={name!r}: expected auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={name!r}: CUDA is not available here; use device='auto' or 'cpu'")
    return device


def bf16_probe(device: torch.device) -> str | None:
    """The name of the check that says ``device`` computes bf16 natively, or None.

    CUDA: ``torch.cuda.is_bf16_supported`` (Ampere and newer). CPU: AVX512-BF16 or AMX (oneDNN).
    """
    if device.type == "cuda":
        return "torch.cuda.is_bf16_supported" if torch.cuda.is_bf16_supported() else None
    for name in CPU_BF16_PROBES:
        if getattr(torch.cpu, name)():
            return f"torch.cpu.{name}"
    return None


def bf16_supported(device: torch.device) -> bool:
    """Native bf16 arithmetic on ``device`` (see :func:`bf16_probe`)."""
    return bf16_probe(device) is not None


def cpu_isa() -> str:
    """The CPU's class for timings and bitwise reproducibility: 'amx' (AMX bf16 tiles),
    'avx512_bf16', or torch's dispatch level ('avx512', 'avx2', 'default'), lower case.

    >>> cpu_isa() in {"amx", "avx512_bf16", "avx512", "avx2", "default"}
    True
    """
    if torch.cpu._is_amx_tile_supported():
        return "amx"
    if torch.cpu._is_avx512_bf16_supported():
        return "avx512_bf16"
    return torch.backends.cpu.get_cpu_capability().lower()


def compute_context(device: torch.device) -> dict[str, object]:
    """What decides a run's float reduction order besides its settings: the intra-op thread
    count, the CPU class and the device. Training is bitwise repeatable only where all agree."""
    return {"threads": torch.get_num_threads(), "cpu_isa": cpu_isa(), "device": str(device)}


def autocast_context(precision: str, device: torch.device) -> contextlib.AbstractContextManager:
    """bf16 autocast (weights and optimiser stay fp32; no loss scaling is needed for bf16)."""
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


# --- calibration: "auto" measured on this machine -------------------------------------------

CALIBRATE_ENV = "GAN_LIB_CALIBRATE"  # 0: no calibration; "auto" means fp32 eager
# oneDNN's and ATen's caps on the instructions their kernels use: set, they make this machine
# stand in for an older CPU class (benchmarks/cpu_classes.py), so they are part of the key.
ISA_CAPS = ("ONEDNN_MAX_CPU_ISA", "ATEN_CPU_CAPABILITY")
CALIBRATION_FORMAT = 1  # bumped when what calibration times or decides changes


def calibration_enabled() -> bool:
    """False where ``GAN_LIB_CALIBRATE`` is 0 / false / no / off: "auto" is then fp32 eager."""
    return os.environ.get(CALIBRATE_ENV, "1").strip().lower() not in ("0", "false", "no", "off")


def cpu_model() -> str:
    """The CPU's model name (Linux /proc/cpuinfo), else what ``platform`` says.

    >>> isinstance(cpu_model(), str) and len(cpu_model()) > 0
    True
    """
    info = _cpuinfo()
    return info.get("model name") or platform.processor() or platform.machine() or "unknown"


def machine(where: torch.device) -> dict[str, Any]:
    """What a calibration on ``where`` depends on besides the work timed: the CPU (model name,
    a digest of its flags, class), the ISA caps in force, intra-op threads, torch's version."""
    flags = _cpuinfo().get("flags")
    return {"cpu_model": cpu_model(),
            "cpu_flags_sha256": hashlib.sha256(flags.encode()).hexdigest()[:16] if flags else None,
            "cpu_isa": cpu_isa(), "isa_caps": {k: os.environ.get(k) for k in ISA_CAPS},
            "threads": torch.get_num_threads(), "torch": torch.__version__, "device": str(where)}


def fastest_within_bound(candidates: list[dict[str, Any]]) -> dict[str, Any]:
    """The candidate with the most images per second among those ``within_bound``.

    >>> fastest_within_bound([{"name": "a", "img_per_s": 9.0, "within_bound": False},
    ...                       {"name": "b", "img_per_s": 5.0, "within_bound": True}])["name"]
    'b'
    """
    ok = [c for c in candidates if c["within_bound"]]
    if not ok:
        raise ValueError("calibration: no candidate stayed within the quality bound: "
                         + "; ".join(f"{c['name']}: {c.get('why', 'refused')}" for c in candidates))
    return max(ok, key=lambda c: c["img_per_s"])


# bf16 candidates are timed only where bf16 runs one convolution at least this fraction of
# fp32's speed: below it no bf16 variant can win (convolutions are most of both networks' work),
# and a CPU without bf16 instructions emulates it slowly enough to spend minutes on the timing.
BF16_SCREEN_MIN = 0.5


def bf16_conv_speed(where: torch.device, clock: Callable[[], float] | None = None,
                    pairs: int = 5) -> float:
    """bf16 autocast over fp32 speed of one 3x3 convolution (128 channels, 32 x 32, batch 8,
    channels_last): the median over ``pairs`` of the ratio of an fp32 call's seconds to the
    next bf16 call's (one untimed call of each first; the order alternates), so that a moment
    of load on a shared machine moves one pair, not the verdict. Calibration's screen, well
    under a second: it decides whether bf16 candidates are timed at all
    (:data:`BF16_SCREEN_MIN`)."""
    clock = clock or time.perf_counter
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(8, 128, 32, 32, generator=gen).to(where, memory_format=torch.channels_last)
    w = torch.randn(128, 128, 3, 3, generator=gen).to(where, memory_format=torch.channels_last)

    def seconds(precision: str) -> float:
        t0 = clock()
        with autocast_context(precision, where):
            torch.nn.functional.conv2d(x, w, padding=1)
        return clock() - t0

    seconds("fp32"), seconds("bf16")
    ratios = []
    for i in range(pairs):
        order = ("fp32", "bf16") if i % 2 == 0 else ("bf16", "fp32")
        t = {p: seconds(p) for p in order}
        ratios.append(t["fp32"] / t["bf16"])
    return statistics.median(ratios)


def calibration_dir() -> Path:
    """The folder of calibration decisions: ``data/cache/calibration`` (config.CACHE_DIR)."""
    return config.CACHE_DIR / "calibration"


def calibration_path(kind: str, key: dict[str, Any]) -> Path:
    """Where the decision of ``kind`` for ``key`` is kept (a digest of the key names it)."""
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    return calibration_dir() / f"{kind}-{digest}.json"


def calibrated(kind: str, key: dict[str, Any],
               measure: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """The decision of ``kind`` for ``key`` (with :func:`machine` inside): read from the cache,
    or made by ``measure()`` and kept there (atomic write). A cache file that is not JSON, not
    of this format or not of this key is measured again, with a warning.

    The record returned holds ``how``: "measured" (now, ``seconds`` long) or "cached".
    """
    key = {"format": CALIBRATION_FORMAT, "kind": kind, **key}
    path = calibration_path(kind, key)
    if path.is_file():
        try:
            record = storage.read_json(path)
            if isinstance(record, dict) and record.get("key") == key and "chosen" in record:
                return {**record, "how": "cached"}
            problem = "another format or key"
        except ValueError as err:
            problem = str(err)
        warnings.warn(f"calibration cache {path} is unusable ({problem[:200]}); calibrating "
                      "again", stacklevel=2)
    t0 = time.perf_counter()
    record = {"key": key, **measure(),
              "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}
    record["seconds"] = round(time.perf_counter() - t0, 1)
    storage.write_json(path, record)
    return {**record, "how": "measured"}


def _cpuinfo() -> dict[str, str]:
    """The first processor's fields of /proc/cpuinfo ({} where there is none)."""
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return {}
    fields: dict[str, str] = {}
    for line in text.split("\n\n")[0].splitlines():
        name, _, value = line.partition(":")
        fields.setdefault(name.strip(), value.strip())
    return fields
