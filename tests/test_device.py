"""Device and precision resolution: probes that exist, 'auto' that follows the hardware."""

from __future__ import annotations

import pytest
import torch

from gan_lib import device


def test_cpu_bf16_probes_exist_in_the_pinned_torch():
    # They are private torch functions: if torch renamed one, bf16 would silently turn off.
    for name in device.CPU_BF16_PROBES:
        assert callable(getattr(torch.cpu, name)), name


def test_precision_auto_follows_the_probe(monkeypatch):
    cpu = torch.device("cpu")
    probe = device.bf16_probe(cpu)
    assert probe is None or probe.startswith("torch.cpu._is_")
    assert device.resolve_precision("auto", cpu) == ("bf16" if probe else "fp32")
    assert device.resolve_precision("fp32", cpu) == "fp32"
    monkeypatch.setattr(torch.cpu, device.CPU_BF16_PROBES[0], lambda: True)
    assert device.bf16_probe(cpu) == f"torch.cpu.{device.CPU_BF16_PROBES[0]}"
    assert device.resolve_precision("auto", cpu) == "bf16"
    for name in device.CPU_BF16_PROBES:
        monkeypatch.setattr(torch.cpu, name, lambda: False)
    assert device.resolve_precision("auto", cpu) == "fp32"


def test_autocast_context_is_bf16_only_when_asked():
    cpu = torch.device("cpu")
    x = torch.ones(2, 2)
    with device.autocast_context("bf16", cpu):
        assert (x @ x).dtype == torch.bfloat16
    with device.autocast_context("fp32", cpu):
        assert (x @ x).dtype == torch.float32


def test_unavailable_device_names_the_key():
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: the error for a missing GPU cannot be provoked")
    with pytest.raises(ValueError, match="device='cuda:0'"):
        device.resolve_device("cuda:0")
    with pytest.raises(ValueError, match="device='nope'"):
        device.resolve_device("nope")
