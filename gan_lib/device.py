"""Where and at what precision tensors are computed: device, bf16 support, autocast.

Training and scoring both read these, so they sit below both: config/storage -> device -> models,
data -> train, inception/metrics (see ARCHITECTURE.md).

Example:
    >>> resolve_device("cpu"), resolve_precision("fp32", "cpu")
    (device(type='cpu'), 'fp32')
"""

from __future__ import annotations

import contextlib

import torch

# The CPU probes torch offers for native bf16 arithmetic. They are private functions of
# torch.cpu, so tests/test_device.py checks they exist in the pinned torch: a rename would
# otherwise turn bf16 off silently.
CPU_BF16_PROBES = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
# "auto" picks bf16 on CPUs with AMX (matrix tiles) only, where oneDNN has bf16 matrix kernels.
# The rule rests on two measurements of the DCGAN step, bf16 autocast over fp32: on AVX512-BF16
# without AMX (benchmarks/results/train_throughput_noamx_phantom.json:
# ratio_gan_lib_bf16_over_fp32, below 1) and with AMX (benchmarks/results/precision_quality.json:
# speed.bf16_over_fp32, above 1).
CPU_FAST_BF16_PROBE = "_is_amx_tile_supported"


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


def bf16_is_faster(device: torch.device) -> bool:
    """Whether ``precision="auto"`` picks bf16 autocast on ``device``: CUDA with native bf16,
    or a CPU with AMX tiles (:data:`CPU_FAST_BF16_PROBE` names the files and fields the CPU rule
    rests on; train_throughput.json: ratio_gan_lib_bf16_over_fp32 on the real X-rays). CUDA
    follows its native bf16 support; no result file in benchmarks/results covers it."""
    if device.type == "cuda":
        return bf16_supported(device)
    return bool(getattr(torch.cpu, CPU_FAST_BF16_PROBE)())


def resolve_precision(precision: str, device: str | torch.device = "auto") -> str:
    """'auto' -> 'bf16' where :func:`bf16_is_faster` says so, else
    'fp32'; 'fp32' and 'bf16' are kept as asked."""
    device = resolve_device(device) if isinstance(device, str) else device
    if precision == "auto":
        return "bf16" if bf16_is_faster(device) else "fp32"
    return precision


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
