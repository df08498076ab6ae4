"""Shared fixtures. Tests never write into the repository's runs/ or reports/."""

from __future__ import annotations

import os

import matplotlib
import pytest

matplotlib.use("Agg")
os.environ.setdefault("TQDM_DISABLE", "1")


@pytest.fixture
def home(tmp_path, monkeypatch):
    """Point gan_lib's runs/ and reports/ at a temporary folder for one test.

    The environment variable reaches kernels that papermill starts; the attributes this process.
    """
    from gan_lib import config

    monkeypatch.setenv("GAN_LIB_HOME", str(tmp_path))

    monkeypatch.setattr(config, "HOME", tmp_path)
    monkeypatch.setattr(config, "RUNS_DIR", tmp_path / "runs")
    monkeypatch.setattr(config, "REPORTS_DIR", tmp_path / "reports")
    return tmp_path


@pytest.fixture
def one_thread():
    """One intra-op thread: tiny ops on a shared 2-core machine are far slower with two."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(autouse=True)
def no_calibration():
    """Unit tests never time this machine: "auto" means fp32 eager (GAN_LIB_CALIBRATE=0) and
    nothing is written to data/cache/calibration. The ``calibration_cache`` fixture turns
    calibration back on with a temporary cache. (Not monkeypatch: an autouse fixture that
    requested it would set monkeypatch up before other autouse fixtures, which then could not
    see a test's own monkeypatching undone.)"""
    before = os.environ.get("GAN_LIB_CALIBRATE")
    os.environ["GAN_LIB_CALIBRATE"] = "0"
    yield
    if before is None:
        os.environ.pop("GAN_LIB_CALIBRATE", None)
    else:
        os.environ["GAN_LIB_CALIBRATE"] = before


@pytest.fixture
def calibration_cache(tmp_path, monkeypatch):
    """Calibration on, its cache in a temporary folder for one test."""
    from gan_lib import device

    monkeypatch.setenv("GAN_LIB_CALIBRATE", "1")
    monkeypatch.setattr(device, "calibration_dir", lambda: tmp_path / "calibration")
    return tmp_path / "calibration"
