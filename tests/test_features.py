"""The feature caches: which images a cached set holds, and that nothing is extracted twice."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from gan_lib import config
from gan_lib.metrics import features
from gan_lib.metrics.feature_extractor import Extractor


class CountingNet(torch.nn.Module):
    """Features = the first 8 pixels; counts the images it sees."""

    def __init__(self):
        super().__init__()
        self.seen = 0

    def get_requested_features_list(self):
        return ["2048"]

    def forward(self, x):
        self.seen += len(x)
        return (x[:, 0].float().flatten(1)[:, :8],)


@pytest.fixture
def tiny(tmp_path, monkeypatch):
    monkeypatch.setattr(config, "CACHE_DIR", tmp_path / "cache")
    net = Extractor("tiny", CountingNet(), {"fid": "2048", "kid": "2048"}, {"sha256": None},
                    torch.device("cpu"), "fp32", 16, library="test")
    images = torch.arange(40 * 64, dtype=torch.int64).reshape(40, 1, 8, 8) % 251
    images[:, 0, 0, 0] = torch.arange(40)  # image i is recognisable by its first pixel
    ds = SimpleNamespace(images=images.to(torch.uint8), fingerprint="f" * 16, split="train")
    return net, ds


def test_at_indices_returns_the_features_of_those_images_and_reuses_the_cached_sets(tiny):
    net, ds = tiny
    ref = features.real_features(net, ds, 10, 8)
    held = features.real_features(net, ds, 5, 8, offset=10)
    assert net.module.seen == 15
    trained = torch.tensor([39, 3, 17, 0, 25, 8, 33, 12])
    feats = features.at_indices(net, ds, trained, 8, cached=(10, 5))["2048"]
    assert feats[:, 0].tolist() == trained.tolist()  # row i is image trained[i]
    in_sets = set(torch.cat([ref["features"]["2048"], held["features"]["2048"]])[:, 0].tolist())
    assert net.module.seen == 15 + sum(int(i) not in in_sets for i in trained)  # only the rest
    again = features.at_indices(net, ds, trained, 8, cached=(10, 5))["2048"]
    assert torch.equal(again, feats) and net.module.seen == 15 + sum(
        int(i) not in in_sets for i in trained)  # the rest is cached too


def test_at_indices_without_cached_sets_extracts_each_image_once(tiny):
    net, ds = tiny
    everything = features.at_indices(net, ds, torch.arange(40), 8)["2048"]
    assert everything[:, 0].tolist() == list(range(40)) and net.module.seen == 40
