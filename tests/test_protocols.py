"""FID protocols: each recipe is applied as named, the standard one is Table 1's FID, every
number says its n, and the verdicts on the original report's FIDs follow from the table."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torch_fidelity
from torch_fidelity.interpolate_compat_tensorflow import (
    interpolate_bilinear_2d_like_tensorflow1x as resize_tf1,
)
from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY

from gan_lib import metrics
from gan_lib.gan import sampling
from gan_lib.metrics import feature_extractor, features, score_tables
from gan_lib.studies import protocol_verdicts, protocols
from tests.test_metrics import TinyExtractor, assert_header, blobs, fake_real, tiny_cfg
from tests.test_metrics import run as run  # noqa: F401, PLC0414 (the fixture, by its name)

WIDE = "gan-lib-test-widths"


class WidthsExtractor(TinyExtractor):
    """uint8 [N, 3, H, W] -> pooled pixels under the names of Inception's layers (any H, W)."""

    @staticmethod
    def get_provided_features_list():
        return "64", "192", "768", "2048"

    @staticmethod
    def get_default_feature_layer_for_metric(metric):
        return "2048"

    def forward(self, x):
        # Layer names as Inception's, widths kept small: a 2048-d FID costs seconds on a CPU.
        x = x.float() / 255
        out = {"64": F.adaptive_avg_pool2d(x[:, :1], 2).flatten(1),  # [N, 4]
               "192": F.adaptive_avg_pool2d(x, 2).flatten(1),  # [N, 12]
               "768": F.adaptive_avg_pool2d(x[:, :1], 3).flatten(1),  # [N, 9]
               "2048": F.adaptive_avg_pool2d(x[:, :1], 4).flatten(1)}  # [N, 16]
        return tuple(out[k] for k in self.features_list)


if WIDE not in FEATURE_EXTRACTORS_REGISTRY:
    torch_fidelity.register_feature_extractor(WIDE, WidthsExtractor)


def with_white(n: int = 6) -> torch.Tensor:
    """Blobs with a pure-black and a pure-white corner, so every slip has both levels to map."""
    images = blobs(n, seed=3)
    images[:, :, 0, 0], images[:, :, -1, -1] = 0, 255
    return images


def test_each_recipe_does_what_its_name_says():
    images = with_white()
    for slip in (protocols.slip_unit, protocols.slip_signed):
        slipped = slip(images)
        assert slipped.dtype == torch.uint8 and slipped.shape == images.shape
        assert set(slipped.unique().tolist()) == {0, 1}  # two grey levels: 255 -> 1, else 0
        assert torch.equal(slipped == 1, images == 255)
    for q in (95, 75):
        jpeg = protocols.jpeg_round_trip(images, q)
        assert jpeg.shape == images.shape and not torch.equal(jpeg, images)  # bytes changed
        assert (jpeg.float() - images.float()).abs().mean() < 12  # still the same pictures
    assert not torch.equal(protocols.jpeg_round_trip(images, 75),
                           protocols.jpeg_round_trip(images, 95))
    big = protocols.pil_bicubic(images)
    assert big.shape == (6, 1, 299, 299) and big.dtype == torch.uint8
    # torch-fidelity's own resize then leaves 299 px images as they are: PIL's filter decides
    x = big.expand(-1, 3, -1, -1).float()
    assert torch.equal(resize_tf1(x, size=(299, 299), align_corners=False), x)


def test_recipes_are_named_in_the_cache_and_composed_in_order():
    p = next(p for p in protocols.PROTOCOLS if p.name == "jpeg75")
    assert p.recipes()["fake"].name == "jpeg-q75" and p.recipes()["real"] is None
    bicubic = next(p for p in protocols.PROTOCOLS if p.name == "pil_bicubic").recipes()
    assert bicubic["fake"].name == bicubic["real"].name == "pil-bicubic-299"
    both = protocols.Protocol("x", "x", "2048", pixels="unit-float-as-uint8", fake_jpeg=75)
    assert both.recipes()["fake"].name == "jpeg-q75+unit-float-as-uint8"
    key_plain, key_jpeg = {"n": 1}, {"n": 1}
    assert features.path_for("fake", key_plain, "s", None) != features.path_for(
        "fake", key_jpeg, "s", p.recipes()["fake"])
    assert key_jpeg["recipe"] == "jpeg-q75" and "recipe" not in key_plain


@pytest.fixture
def scored(run, monkeypatch):
    """Table 1 and the protocols of the two-snapshot test run, with every extraction recorded."""
    seen = []
    extract = features.extract_features

    def recording(net, images, desc="features"):
        seen.append((desc, images.clone()))
        return extract(net, images, desc)

    monkeypatch.setattr(features, "extract_features", recording)
    cfg = tiny_cfg(metrics=("fid", "kid"))
    scores = metrics.score_run(run, cfg, extractor=WIDE)
    before = len(seen)
    result = protocols.score_protocols(run, cfg, extractor=WIDE)
    return scores, result, seen[before:], cfg


def test_the_standard_protocol_is_table_1s_fid(scored):
    scores, result, _, _ = scored
    table_1 = {(r["kind"], r["iteration"]): r["value"] for r in scores["scores"]
               if r["metric"] == "fid" and (r["kind"] == "generated" or r["compared"]
                                            == "real train, held out vs real train reference")}
    standard = {(r["kind"], r["iteration"]): r["value"] for r in result["records"]
                if r["protocol"] == "standard"}
    assert standard.keys() == table_1.keys() and len(standard) == 3  # 2 snapshots + the floor
    for k, v in standard.items():
        assert v == pytest.approx(table_1[k], rel=1e-6), k  # frechet's engine vs torch-fidelity


def test_recipes_reach_the_extractor_as_named(scored, run):
    _, result, seen, cfg = scored
    by_recipe = {desc.rsplit(", ", 1)[1]: imgs for desc, imgs in seen if ", " in desc}
    final = sampling.generate(run / "snapshots" / "G_iter_000010.pt", 6, seed=cfg.seed)
    def distinct(images):  # what is extracted: each distinct image once, in sorted order
        return torch.unique(images.flatten(1), dim=0)

    for q in (75, 95):  # the first n_small generated images of the final snapshot, recoded
        assert torch.equal(by_recipe[f"jpeg-q{q}"].flatten(1),
                           distinct(protocols.jpeg_round_trip(final, q)))
        assert not torch.equal(by_recipe[f"jpeg-q{q}"].flatten(1), distinct(final))
    for name in ("unit-float-as-uint8", "signed-float-as-uint8"):
        assert len(by_recipe[name].unique()) <= 2  # distinct slipped images, at most 2 levels
    assert by_recipe["pil-bicubic-299"].shape[-2:] == (299, 299)
    # Table 1's sets are read from its cache: only recipes are extracted here, and counted
    assert all(", " in desc for desc, _ in seen)
    assert result["images_extracted"] == sum(len(imgs) for _, imgs in seen)


def test_every_number_says_how_it_was_made(scored, run):
    _, result, _, _ = scored
    assert json.loads((run / "protocols.json").read_text()) == json.loads(json.dumps(result))
    assert_header(result, run, extractor=True)
    assert result["n_pairs"] == {"standard": (24, 48), "n1000": (24, 48), "small": (6, 12)}
    names = [p["name"] for p in result["protocols"]]
    assert names == [p.name for p in protocols.PROTOCOLS]
    for r in result["records"]:
        assert r["value"] is not None, r  # each value itself: test_each_value_is_the_fid_...
        assert {"n_fake", "n_real", "layer", "extractor", "weights_sha256", "data_source",
                "data_fingerprint", "compared"} <= set(r)
        assert (r["n_fake"], r["n_real"]) == tuple(result["n_pairs"][next(
            p.n for p in protocols.PROTOCOLS if p.name == r["protocol"])])
    scored_its = {p: sorted(r["iteration"] for r in result["records"]
                            if r["protocol"] == p and r["kind"] == "generated")
                  for p in ("standard", "width64", "slip_unit", "jpeg75", "pil_bicubic")}
    assert scored_its == {"standard": [5, 10], "width64": [5, 10], "slip_unit": [5, 10],
                          "jpeg75": [10], "pil_bicubic": [10]}  # fresh extractions: final only
    slips = [r for r in result["records"] if r["protocol"].startswith("slip")]
    assert all(1 <= r["distinct_fake"] <= r["n_fake"] for r in slips)
    table = score_tables.protocol_table(result)
    assert list(table["protocol"]) == [p.label for p in protocols.PROTOCOLS]
    assert {"n_fake", "n_real", "iteration 5", "iteration 10", "floor (real vs real)"} <= set(
        table.columns)


def unit_slip(x: torch.Tensor) -> torch.Tensor:
    return (x.float() / 255).to(torch.uint8)  # [0, 1] floats read as uint8: 255 -> 1, else 0


def signed_slip(x: torch.Tensor) -> torch.Tensor:
    return (x.float() / 127.5 - 1).clamp(min=0).to(torch.uint8)  # negatives taken as 0


# Each protocol by what its name says (README, "Why FIDs disagree"): the feature layer, the n
# pair, and what happens to the generated and to the real images before extraction.
SPEC = {
    "standard": ("2048", "standard", None, None),
    "width768": ("768", "standard", None, None),
    "width192": ("192", "standard", None, None),
    "width64": ("64", "standard", None, None),
    "slip_unit": ("2048", "standard", unit_slip, unit_slip),
    "slip_signed": ("2048", "standard", signed_slip, signed_slip),
    "n1000": ("2048", "n1000", None, None),
    "small": ("2048", "small", None, None),
    "jpeg95": ("2048", "small", lambda x: protocols.jpeg_round_trip(x, 95), None),
    "jpeg75": ("2048", "small", lambda x: protocols.jpeg_round_trip(x, 75), None),
    "pil_bicubic": ("2048", "small", protocols.pil_bicubic, protocols.pil_bicubic),
}
N_PAIRS = {"standard": (24, 48), "n1000": (24, 48), "small": (6, 12)}  # 24 fakes, 48 reals


def fid_by_definition(f1: np.ndarray, f2: np.ndarray) -> float:
    """|mu1 - mu2|^2 + tr(S1 + S2 - 2 (S1 S2)^1/2), the trace of the root from the eigenvalues
    of the symmetric S1^1/2 S2 S1^1/2 (stable for the singular covariances of small n)."""
    s1, s2 = np.cov(f1, rowvar=False), np.cov(f2, rowvar=False)
    w, v = np.linalg.eigh(s1)
    root_1 = (v * np.sqrt(w.clip(min=0))) @ v.T
    cross = np.sqrt(np.linalg.eigvalsh(root_1 @ s2 @ root_1).clip(min=0)).sum()
    return float(((f1.mean(0) - f2.mean(0)) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * cross)


def test_each_value_is_the_fid_of_its_named_sets(scored, run):
    """Known answers: every record's FID recomputed here from the images its protocol names
    (the seeded reference and held-out real sets, the first n generated images of a snapshot,
    the recipe applied), features from WidthsExtractor directly, FID in numpy."""
    _, result, _, cfg = scored
    train_images = fake_real({}, "train").images
    order = torch.randperm(len(train_images),
                           generator=torch.Generator().manual_seed(features.SUBSET_SEED))
    assert result["n_pairs"] == N_PAIRS and {r["protocol"] for r in result["records"]} == set(SPEC)
    for r in result["records"]:
        layer, group, on_fake, on_real = SPEC[r["protocol"]]
        n_fake, n_real = N_PAIRS[group]
        real = train_images[order[:n_real]]
        if r["kind"] == "floor":  # the held-out real images that follow the reference set
            other, on_other = train_images[order[n_real:n_real + n_fake]], on_real
        else:
            snapshot = run / "snapshots" / f"G_iter_{r['iteration']:06d}.pt"
            other, on_other = sampling.generate(snapshot, n_fake, seed=cfg.seed), on_fake
        other = on_other(other) if on_other else other
        real = on_real(real) if on_real else real

        def feats(images, layer=layer):
            return WidthsExtractor(WIDE, [layer])(images.expand(-1, 3, -1, -1))[0].double().numpy()

        expected = fid_by_definition(feats(other), feats(real))
        assert r["value"] == pytest.approx(expected, rel=1e-4, abs=1e-7), (r["protocol"], r["kind"],
                                                                          r["iteration"])
        if r["distinct_fake"] is not None:  # the slips: each distinct image extracted once
            assert r["distinct_fake"] == len(torch.unique(other.flatten(1), dim=0))


def test_verdicts_follow_from_the_measured_range():
    def recs(gen, floor):
        return [{"protocol": "p", "kind": "generated", "value": v, "n_fake": 4, "n_real": 8}
                for v in gen] + [{"protocol": "p", "kind": "floor", "value": floor,
                                  "n_fake": 4, "n_real": 8}]

    assert protocol_verdicts.consistency(recs([300.0, 150.0], 1.0), "p")["verdict"] == "could be"
    assert protocol_verdicts.consistency(recs([300.0], 8.0), "p")["verdict"] == "no: all below the floor"
    assert protocol_verdicts.consistency(recs([0.3, 0.02], 0.001), "p")["verdict"] == (
        "not shown: all above every value measured")
    mixed = protocol_verdicts.consistency(recs([5.0], 3.5), "p")
    assert mixed["verdict"] == "partly: 7.09 above every value measured; 3.37 below the floor"
    assert "4 generated vs 8 real" in mixed["reason"]
    # another length or synthetic data: no verdict, only why
    why = protocol_verdicts.not_comparable([200, 400, 600], False)
    assert protocol_verdicts.consistency(recs([300.0, 150.0], 1.0), "p", why) == {
        "protocol": "p", "verdict": "not comparable", "reason": why}
    assert "synthetic" in protocol_verdicts.not_comparable([500, 1000, 2000], True)
    assert protocol_verdicts.not_comparable([500, 1000, 2000], False) is None


def test_the_extractor_requests_the_narrower_widths_and_its_cache_key_says_so():
    net = feature_extractor.load_extractor(tiny_cfg(), WIDE)
    assert sorted(net.module.get_requested_features_list()) == ["192", "2048", "64", "768"]
    assert net.key()["features"] == ["192", "2048", "64", "768"] and net.layers["fid"] == "2048"


def test_at_the_paper_n_pair_the_floor_is_table_1s_halves(run):
    # n_real None: the reference is every training image, as in the paper profile
    cfg = tiny_cfg(metrics=("fid",), n_real=None, n_fake=32)
    scores = metrics.score_run(run, cfg, extractor=WIDE)
    result = protocols.score_protocols(run, cfg, extractor=WIDE)
    halves = next(r for r in scores["scores"] if r["kind"] == "floor"
                  and r["compared"].startswith("real train: half A"))
    floor = next(r for r in result["records"] if r["protocol"] == "standard"
                 and r["kind"] == "floor")
    assert floor["value"] == pytest.approx(halves["value"], rel=1e-6)
    assert (floor["n_fake"], floor["n_real"], floor["same_n"]) == (
        halves["n_fake"], halves["n_real"], False) and "two disjoint halves" in floor["note"]
