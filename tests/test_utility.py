"""Train on synthetic, test on real: the classifier, the metrics and the study's invariants.

Smoke size: 600 phantom training images and all 624 phantom test images, both average-pooled
from 64 to 32 px (the consolidation that separates the classes is larger than a 2x2 block), a
width-8 classifier for 8 epochs, one thread. At this size one classifier's test AUROC varies by
~0.03 between seeds (measured when these tests were written), which sets the tolerances below.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from sklearn.metrics import accuracy_score, balanced_accuracy_score, roc_auc_score

from gan_lib.data import load_dataset
from gan_lib.studies import classifier, utility, utility_tables
from gan_lib.studies.classifier import ClassifierConfig

SMOKE = ClassifierConfig.preset("tiny", width=8, blocks=3, epochs=8)


def smoke_split(split: str, n: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Phantom images (built into data/ on first use, ~1 min) at 32 px; n in a seeded order."""
    ds = load_dataset("phantom", split=split, image_size=64)
    x = F.avg_pool2d(ds.images.float(), 2).round().to(torch.uint8)
    if n is None:
        return x, ds.labels
    idx = torch.randperm(len(ds.labels), generator=torch.Generator().manual_seed(0))[:n]
    return x[idx], ds.labels[idx]


@pytest.fixture(scope="module")
def train_set():
    return smoke_split("train", 600)


@pytest.fixture(scope="module")
def test_set():
    return smoke_split("test")


@pytest.fixture(scope="module")
def identity(train_set, test_set):
    """The study with a 'generator' that returns real training images: all ways, 3 seeds."""
    return utility.tstr(train_set, utility.pool_sampler(*train_set), test_set, SMOKE,
                        seeds=(0, 1, 2), progress=False)


def blobs(n: int, size: int = 32, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """n uint8 images, class 1 brighter than class 0 (an easy signal), alternating labels."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 2
    return (torch.rand(n, 1, size, size, generator=g) * 90 + 90 * y.view(-1, 1, 1, 1)).byte(), y


def untimed(curve: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "seconds"} for r in curve]


# --- metrics ------------------------------------------------------------------------------------
def test_scores_on_known_predictions():
    # 4 images: 0.1 and 0.6 are NORMAL, 0.4 and 0.9 PNEUMONIA. Called at >= 0.5: 0, 1, 0, 1:
    # two of four right (accuracy 0.5), each class 1 of 2 (balanced 0.5). Of the 4 (normal,
    # pneumonia) pairs 3 are ranked right (0.4 < 0.6 is the wrong one): AUROC 0.75.
    assert classifier.scores([0, 0, 1, 1], [0.1, 0.6, 0.4, 0.9]) == {
        "accuracy": 0.5, "balanced_accuracy": 0.5, "auroc": 0.75, "n": 4}
    # Imbalanced: all called PNEUMONIA -> accuracy 3/4, balanced (0 + 1) / 2; exactly 0.5 is
    # called PNEUMONIA.
    s = classifier.scores([0, 1, 1, 1], [0.5, 0.5, 0.7, 0.9])
    assert (s["accuracy"], s["balanced_accuracy"]) == (0.75, 0.5)
    assert s["auroc"] == pytest.approx(5 / 6)  # 5 of 6 pairs ranked right


def test_evaluate_equals_scikit_learn_on_the_models_predictions():
    x, y = blobs(40)
    model, _ = classifier.fit(x, y, SMOKE, seed=0, progress=False)
    p = classifier.predict(model, x)
    assert p.shape == (40,) and ((p > 0) & (p < 1)).all()
    got = classifier.evaluate(model, x, y)
    assert got == {"accuracy": accuracy_score(y, p >= 0.5),
                   "balanced_accuracy": balanced_accuracy_score(y, p >= 0.5),
                   "auroc": roc_auc_score(y, p), "n": 40}
    assert got["auroc"] > 0.9  # the signal is easy: the model did learn


# --- the classifier ----------------------------------------------------------------------------
@pytest.mark.parametrize("size", [32, 64, 128])
def test_classifier_sizes_and_parameter_count(size):
    model = classifier.Classifier(width=16, blocks=4, image_size=size)
    assert model(torch.zeros(2, 1, size, size)).shape == (2,)
    assert classifier.n_parameters(model) == 97_633  # as its docstring states
    with pytest.raises(ValueError, match="multiple of 16"):
        classifier.Classifier(width=16, blocks=4, image_size=40)


def test_fit_is_deterministic_given_the_seed(train_set, test_set):
    x, y = train_set[0][:200], train_set[1][:200]
    rng_before = torch.random.get_rng_state()
    runs = [classifier.fit(x, y, SMOKE, seed=s, progress=False) for s in (3, 3, 4)]
    assert torch.equal(torch.random.get_rng_state(), rng_before)  # no global RNG drawn
    (a, curve_a), (b, curve_b), (c, _) = runs
    for (name, pa), pb in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(pa, pb), name
    assert untimed(curve_a) == untimed(curve_b)
    assert len(curve_a) == SMOKE.epochs and curve_a[-1]["loss"] < curve_a[0]["loss"]
    ma, mb, mc = (classifier.evaluate(m, *test_set) for m in (a, b, c))
    assert ma == mb
    assert ma["auroc"] != mc["auroc"]
    assert not torch.equal(a.head.weight, c.head.weight)


def test_threads_are_restored():
    before = torch.get_num_threads()
    classifier.fit(*blobs(16), ClassifierConfig.preset("tiny", threads=2, epochs=1),
                   progress=False)
    assert torch.get_num_threads() == before


# --- the study ---------------------------------------------------------------------------------
def test_identity_generator_gives_tstr_close_to_trtr(identity):
    """Real images as 'synthetic' ones: the ratio is 1 up to seed noise.

    Full size: the same 600 images in another order, so only the batches differ; the mean of 3
    seeds has sd ~0.02, so |ratio - 1| <= 0.05 is ~2.5 sd of a difference. Half size: another
    random half of the same pool, so the images differ too: <= 0.1.
    """
    assert identity["ratios"]["auroc synthetic / real"] == pytest.approx(1, abs=0.05)
    assert identity["ratios"]["auroc synthetic (half) / real (half)"] == pytest.approx(1, abs=0.1)
    # More real-like images help, as they should: real + synthetic at least as good as real.
    ways = identity["ways"]
    assert ways["real + synthetic"]["mean"]["auroc"] >= ways["real"]["mean"]["auroc"] - 0.02


def test_tstr_beats_chance_clearly_on_the_phantom(identity):
    # Measured at this size: AUROC ~0.88, balanced accuracy ~0.80 (chance: 0.5 each).
    for way in ("real", "synthetic", "real + synthetic"):
        mean = identity["ways"][way]["mean"]
        assert mean["auroc"] > 0.75 and mean["balanced_accuracy"] > 0.65, (way, mean)


def test_shuffled_labels_give_chance_auroc(train_set, test_set):
    """A generator whose labels are shuffled (fresh per seed) teaches nothing: AUROC ~0.5.

    One model's test AUROC at chance has sd ~0.024 here (624 test images, 234 / 390); a random
    labelling of 600 images also agrees with the truth a little by chance. 0.08 on the mean of
    3 seeds is > 3 sd of both together; the real baseline stays far above it.
    """
    identity = utility.pool_sampler(*train_set)

    def shuffled(counts, seed):
        images, labels = identity(counts, seed)
        g = torch.Generator().manual_seed(seed + 1)
        return images, labels[torch.randperm(len(labels), generator=g)]

    r = utility.tstr(train_set, shuffled, test_set, SMOKE, seeds=(0, 1, 2),
                     ways=("real", "synthetic"), progress=False)
    assert r["ways"]["synthetic"]["mean"]["auroc"] == pytest.approx(0.5, abs=0.08)
    assert r["ways"]["real"]["mean"]["auroc"] > 0.75
    assert r["ratios"]["auroc synthetic / real"] < 0.7
    # and the classification accuracy score sees that the labels say nothing about the images
    assert r["cas"]["mean"]["auroc"] == pytest.approx(0.5, abs=0.08)
    assert "does not clearly show it" in utility_tables.cas_verdict(r)


def test_cas_asks_the_real_trained_model_about_the_intended_classes(identity, train_set):
    """Real images as 'generated' ones: the model trained on real images recognises the class
    each was 'asked for' (they are its own training images: better than on the test split)."""
    cas = identity["cas"]
    assert cas["n"] == len(train_set[1]) and set(cas["seeds"]) == {"0", "1", "2"}
    assert cas["mean"]["auroc"] > identity["ways"]["real"]["mean"]["auroc"] - 0.02 > 0.7
    assert utility_tables.cas_verdict(identity).startswith("Asked for a class, G shows it")
    assert utility_tables.cas_verdict(identity) in utility_tables.caption(identity)


def test_verdict_says_above_at_or_below_chance_with_the_numbers():
    # The phantom's test split, 234 / 390: one classifier's AUROC at chance has sd 0.0239
    # (the ~0.024 quoted above), so the band is 0.5 +/- 0.072.
    assert utility_tables.chance_sd([234, 390]) == pytest.approx(0.0239, abs=1e-4)

    def results(*aurocs):
        return {"test": {"n": 624, "class_counts": [234, 390]}, "ways": {"synthetic": {
            "seeds": {str(i): {"auroc": a} for i, a in enumerate(aurocs)}}}}

    assert "above chance (AUROC 0.880 to 0.910 over 3 seeds" in utility_tables.verdict(
        results(0.91, 0.88, 0.9))
    below = utility_tables.verdict(results(0.36, 0.35, 0.37))
    assert "below chance (AUROC 0.350 to 0.370" in below and "wrong way round" in below
    assert "not clearly better than chance" in utility_tables.verdict(results(0.45, 0.52, 0.6))
    assert "not clearly better than chance" in utility_tables.verdict(results(0.43, 0.44, 0.45))


def test_the_caption_carries_the_verdict(identity):
    assert "the classifier is above chance (AUROC" in utility_tables.caption(identity)


def test_synthetic_sets_match_the_real_sets_they_replace(identity, train_set):
    counts = classifier.class_counts(train_set[1])
    ways = identity["ways"]
    for way in ("real", "synthetic"):
        assert (ways[way]["n_train"], ways[way]["class_counts"]) == (600, counts)
    assert ways["real + synthetic"]["class_counts"] == [2 * c for c in counts]
    half = [c // 2 for c in counts]
    for way in ("real (half)", "synthetic (half)"):
        assert ways[way]["class_counts"] == half


def test_the_sampler_is_asked_for_the_real_counts_and_checked(train_set, test_set):
    asked = []
    identity = utility.pool_sampler(*train_set)

    def recording(counts, seed):
        asked.append((list(counts), seed))
        return identity(counts, seed)

    ways = ("synthetic", "synthetic (half)")
    utility.tstr(train_set, recording, test_set, ClassifierConfig.preset("tiny", epochs=1),
                 seeds=(0,), ways=ways, progress=False)
    counts = classifier.class_counts(train_set[1])
    assert [a[0] for a in asked] == [counts, [c // 2 for c in counts]]

    def one_short(counts, seed):
        images, labels = identity(counts, seed)
        return images[1:], labels[1:]

    with pytest.raises(ValueError, match="class counts"):
        utility.tstr(train_set, one_short, test_set, seeds=(0,), ways=ways, progress=False)


def test_stratified_half_is_seeded_and_keeps_the_ratio():
    labels = torch.tensor([0] * 11 + [1] * 30)
    a, b, c = (utility.stratified_half(labels, s) for s in (0, 0, 1))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert classifier.class_counts(labels[a]) == [5, 15] and len(set(a.tolist())) == 20


def test_bad_input_is_a_clear_error():
    x, y = blobs(20)
    cases = [
        ((x.float(), y), TypeError, "uint8"),
        ((x, y[:-1]), ValueError, "20 images but 19 labels"),
        ((x, torch.ones(20, dtype=torch.long)), ValueError, "both classes"),
        ((x, y.float()), TypeError, "integer class indices"),
        ((x, y + 1), ValueError, r"0 \(NORMAL\) or 1"),
        ((x[:, :, :, :16], y), ValueError, r"\[N, 1, S, S\]"),
    ]
    for (images, labels), kind, message in cases:
        with pytest.raises(kind, match=message):
            classifier.fit(images, labels, SMOKE, progress=False)
        with pytest.raises(kind, match=message):
            utility.tstr((images, labels), blobs(20), blobs(20), seeds=(0,), progress=False)
    with pytest.raises(ValueError, match="px"):
        utility.tstr(blobs(20), blobs(20), blobs(20, size=64), seeds=(0,), progress=False)
    with pytest.raises(ValueError, match="ways"):
        utility.tstr(blobs(20), blobs(20), blobs(20), ways=("fake",), progress=False)
    with pytest.raises(ValueError, match="pool has 10 images of class 0"):
        utility.pool_sampler(*blobs(20))([11, 0], seed=0)
    with pytest.raises(ValueError, match=r"unknown ClassifierConfig keys \['epoch'\]"):
        ClassifierConfig.preset("quick", epoch=3)
    with pytest.raises(ValueError, match="epochs"):
        ClassifierConfig(epochs=0)


# --- what the report shows ----------------------------------------------------------------------
def test_results_are_json_ready_with_provenance(identity, tmp_path):
    from gan_lib import storage

    storage.write_json(tmp_path / "utility.json", identity)
    back = storage.read_json(tmp_path / "utility.json")
    assert back["seeds"] == [0, 1, 2] and back["test"] == {"n": 624, "class_counts": [234, 390]}
    assert back["classifier"]["config"] == SMOKE.to_dict()
    assert back["classifier"]["n_parameters"] == classifier.n_parameters(
        classifier.Classifier(8, 3, 32))
    run = back["ways"]["synthetic"]["seeds"]["1"]
    assert set(run) == {"accuracy", "balanced_accuracy", "auroc", "n", "curve", "seconds",
                        "cpu_seconds"}
    assert back["ways"]["synthetic"]["mean"]["auroc"] == pytest.approx(np.mean(
        [back["ways"]["synthetic"]["seeds"][s]["auroc"] for s in ("0", "1", "2")]))
    assert back["machine"]["device"] == "cpu" and len(back["machine"]["load_average_start"]) == 3


def test_table_and_figure(identity, tmp_path):
    table = utility_tables.results_table(identity)
    assert table["way"].tolist() == list(utility.WAYS)
    assert table["n train"].tolist() == [600, 600, 1200, 299, 299]
    ratio = table.set_index("way")["AUROC / real"]
    assert ratio["synthetic"] == pytest.approx(identity["ratios"]["auroc synthetic / real"])
    assert ratio["synthetic (half)"] == pytest.approx(identity["ratios"]["auroc synthetic (half) / real (half)"])
    assert pd.isna(ratio["real"])
    text = utility_tables.caption(identity, "phantom")
    assert "624 real test images" in text and "8 epochs" in text and "Data: phantom." in text
    from gan_lib.report import plots

    fig = plots.plot_utility_curves(identity)
    loss_ax = fig.axes[0]
    assert [line.get_label() for line in loss_ax.get_lines()] == list(utility.WAYS)
    curves = utility_tables.curves_frame(identity)
    real = curves[curves["way"] == "real"].groupby("epoch")["loss"].mean()
    assert loss_ax.get_lines()[0].get_ydata() == pytest.approx(real.to_numpy())
    png = plots.save_figure(fig, tmp_path / "utility_curves.png")
    assert png.stat().st_size > 10_000
