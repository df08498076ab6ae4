"""Device resolution, bf16 probes that exist, the CPU class label, autocast."""

from __future__ import annotations

import pytest
import torch

from gan_lib import device


def test_cpu_bf16_probes_exist_in_the_pinned_torch():
    # They are private torch functions: if torch renamed one, bf16 would silently turn off.
    for name in device.CPU_BF16_PROBES:
        assert callable(getattr(torch.cpu, name)), name


def test_cpu_class_follows_the_probes(monkeypatch):
    """cpu_isa names the class recorded beside timings; it is a label, not a decision (no
    'auto' reads it: calibration measures)."""
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: True)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    assert device.bf16_probe(torch.device("cpu")) == "torch.cpu._is_avx512_bf16_supported"
    assert device.cpu_isa() == "avx512_bf16"
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: True)
    assert device.cpu_isa() == "amx"
    for name in device.CPU_BF16_PROBES:
        monkeypatch.setattr(torch.cpu, name, lambda: False)
    assert device.bf16_probe(torch.device("cpu")) is None
    assert device.cpu_isa() == torch.backends.cpu.get_cpu_capability().lower()
    assert not hasattr(device, "bf16_is_faster")  # the flag rule is gone


def test_compute_context_records_threads(monkeypatch):
    cpu = torch.device("cpu")
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        assert device.compute_context(cpu)["threads"] == 1
    finally:
        torch.set_num_threads(before)
    assert device.compute_context(cpu)["cpu_isa"] == device.cpu_isa()


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
