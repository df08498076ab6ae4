"""Class-conditional DCGAN: G with conditional BatchNorm (or a class embedding), a projection D,
labelled sampling and grids, snapshots that know their classes, exact resume. Tiny networks on
stand-in data."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from gan_lib import storage
from gan_lib.gan import models, run_folder, sampling, train
from tests.test_metrics import assert_header
from tests.test_train import fake_data, losses, tiny  # noqa: F401  (fixture)

pytestmark = pytest.mark.usefixtures("fake_data")


def conditional(**overrides):
    return tiny(conditional=True, **overrides)


def test_shapes_and_parameter_counts():
    G, D = models.Generator(image_size=64), models.Discriminator(image_size=64)
    Gc = models.Generator(image_size=64, n_classes=2, conditioning="concat")
    Dc = models.Discriminator(image_size=64, n_classes=2)
    # G: the first layer reads z and the class embedding; D: one embedding row per class
    assert models.count_parameters(Gc) - models.count_parameters(G) == \
        models.CLASS_DIM * 512 * 4 * 4 + 2 * models.CLASS_DIM
    assert models.count_parameters(Dc) - models.count_parameters(D) == 2 * 512
    y = torch.tensor([0, 1, 1])
    x = Gc(torch.randn(3, 100), y)
    assert x.shape == (3, 1, 64, 64) and Dc(x, y).shape == (3,)
    assert Gc.kwargs["n_classes"] == 2 and "n_classes" not in G.kwargs  # old snapshots load
    # Conditional BatchNorm instead: each of G's 4 BatchNorms (512, 256, 128, 64 channels)
    # trades its affine weight and bias for one gain and one bias row per class; z alone in.
    Gb = models.Generator(image_size=64, n_classes=2)  # the default: conditional BatchNorm
    assert models.count_parameters(Gb) - models.count_parameters(G) == (2 - 1) * 2 * 960
    assert Gb.main[0].in_channels == 100 and Gb.kwargs["conditioning"] == "batchnorm"
    assert Gb(torch.randn(3, 100), y).shape == (3, 1, 64, 64)
    with pytest.raises(ValueError, match=r"conditioning='film': expected one of"):
        models.Generator(n_classes=2, conditioning="film")
    with pytest.raises(ValueError, match=r"g_conditioning='film': expected one of"):
        conditional(g_conditioning="film")


@pytest.mark.parametrize("conditioning", ["concat", "batchnorm"])
def test_the_class_changes_what_g_draws_and_what_d_says(conditioning):
    torch.manual_seed(0)
    G = models.Generator(z_dim=8, g_channels=4, image_size=32, n_classes=2,
                         conditioning=conditioning).apply(models.weights_init).eval()
    D = models.Discriminator(d_channels=4, image_size=32, n_classes=2).eval()
    z, x = torch.randn(4, 8), torch.rand(4, 1, 32, 32) * 2 - 1
    zeros, ones = torch.zeros(4, dtype=torch.long), torch.ones(4, dtype=torch.long)
    assert not torch.allclose(G(z, zeros), G(z, ones))
    assert not torch.allclose(D(x, zeros), D(x, ones))


@pytest.mark.parametrize("call, message", [
    (lambda G, D: G(torch.randn(2, 8)), "class-conditional"),
    (lambda G, D: G(torch.randn(2, 8), torch.tensor([0.0, 1.0])), "expected int64"),
    (lambda G, D: D(torch.zeros(2, 1, 32, 32)), "class-conditional"),
    (lambda G, D: models.Generator(z_dim=8, g_channels=4, image_size=32)(
        torch.randn(2, 8), torch.tensor([0, 1])), "unconditional"),
])
@pytest.mark.parametrize("conditioning", ["concat", "batchnorm"])
def test_missing_or_bad_labels_are_clear_errors(call, message, conditioning):
    G = models.Generator(z_dim=8, g_channels=4, image_size=32, n_classes=2,
                         conditioning=conditioning)
    D = models.Discriminator(d_channels=4, image_size=32, n_classes=2)
    with pytest.raises(ValueError, match=message):
        call(G, D)


@pytest.mark.parametrize("conditioning", ["concat", "batchnorm"])
def test_a_conditional_run_samples_by_class_name_and_in_the_training_ratio(home, conditioning):
    run_dir = train.train(conditional(g_conditioning=conditioning))
    snap = run_folder.list_snapshots(run_dir)[-1][1]
    blob = sampling.read_snapshot(snap)
    assert blob["classes"] == {"names": ["NORMAL", "PNEUMONIA"],
                               "ratio": pytest.approx([0.5, 0.5], abs=0.1)}
    normal = sampling.generate(snap, 8, seed=3, label="NORMAL")
    pneumonia = sampling.generate(snap, 8, seed=3, label="PNEUMONIA")
    assert torch.equal(pneumonia, sampling.generate(snap, 8, seed=3, label=1))
    assert not torch.equal(normal, pneumonia)  # same latents, other class
    mixed = sampling.generate(snap, 8, seed=3)  # classes drawn in the training ratio
    drawn = sampling.labels_for(blob["classes"], 8, seed=3)
    for k, expected in ((0, normal), (1, pneumonia)):
        assert torch.equal(mixed[drawn == k], expected[drawn == k])
    with pytest.raises(ValueError, match=r"expected one of the class names \['NORMAL', "):
        sampling.generate(snap, 4, label="COVID")
    with pytest.raises(ValueError, match="sample it from its snapshot file"):
        sampling.generate(sampling.load_generator(snap), 4)


def test_sampled_labels_follow_the_ratio_and_depend_on_seed_and_index_only():
    classes = {"names": ["NORMAL", "PNEUMONIA"], "ratio": [0.27, 0.73]}
    many = sampling.sample_labels(classes, 20000, seed=1)
    assert many.float().mean().item() == pytest.approx(0.73, abs=0.01)
    assert torch.equal(sampling.sample_labels(classes, 100, seed=1), many[:100])
    assert not torch.equal(sampling.sample_labels(classes, 100, seed=2), many[:100])


def test_an_unconditional_snapshot_refuses_a_label(home):
    run_dir = train.train(tiny())
    with pytest.raises(ValueError, match="unconditional"):
        sampling.generate(run_folder.list_snapshots(run_dir)[-1][1], 4, label="NORMAL")


def test_grids_show_one_labelled_block_of_rows_per_class(home):
    run_dir = train.train(conditional(grid_size=16))
    plain_dir = train.train(tiny(name="plain", grid_size=16))
    grid = np.asarray(Image.open(run_folder.list_grids(run_dir)[-1][2]))
    plain = np.asarray(Image.open(run_folder.list_grids(plain_dir)[-1][2]))
    margin = grid.shape[1] - plain.shape[1]
    assert grid.shape[0] == plain.shape[0] and margin > 20  # a label margin on the left
    rows = (plain.shape[0] - 2) // 4  # 4 rows of 32 px images with 2 px padding
    dark = [(grid[r * rows:(r + 1) * rows, :margin] < 128).any() for r in range(4)]
    assert dark == [True, False, True, False]  # a label at the top of each class's block
    assert sampling.grid_labels(2, 16).tolist() == [0] * 8 + [1] * 8


def test_bf16_and_channels_last_train_a_conditional_run(home):
    run_dir = train.train(conditional(precision="bf16", channels_last=True, iterations=3,
                                      snapshot_at=(3,)))
    assert all(np.isfinite(r["loss_D"]) and np.isfinite(r["loss_G"]) for r in losses(run_dir))
    ckpt = storage.load_torch(run_dir / "checkpoint.pt")
    assert ckpt["D"]["embed.weight"].shape == (2, 32)
    # the default G: a gain and a bias per class after each BatchNorm, no class embedding at z
    assert ckpt["G"]["main.1.gain.weight"].shape == (2, 32) and "embed.weight" not in ckpt["G"]


def test_a_conditional_run_needs_two_classes_in_its_images(home, monkeypatch):
    from gan_lib import data
    from tests.test_train import fake_dataset

    def one_class(source="auto", split="train", image_size=64, resize="crop"):
        ds = fake_dataset(source, split, image_size)
        ds.labels = torch.zeros_like(ds.labels)
        return ds

    monkeypatch.setattr(data, "load_dataset", one_class)
    with pytest.raises(ValueError, match="needs at least two"):
        train.train(conditional())
    assert not (home / "runs" / "tiny").exists()


def test_utility_trains_on_the_conditional_snapshots_images_per_class(home, monkeypatch):
    from gan_lib.studies import utility
    from gan_lib.studies.classifier import ClassifierConfig

    run_dir = train.train(conditional())
    calls = []
    real_generate = sampling.generate

    def counting(*args, **kwargs):
        calls.append(kwargs["labels"].bincount().tolist())
        return real_generate(*args, **kwargs)

    monkeypatch.setattr(sampling, "generate", counting)
    result = utility.utility_run(run_dir, ClassifierConfig.preset("tiny", epochs=1), seeds=(0,),
                                 ways=("real", "synthetic"), progress=False)
    assert calls == [[24, 24]]  # as many as the real split (48), in its class counts
    assert storage.read_json(run_dir / "utility.json")["iteration"] == 6
    assert_header(result, run_dir, extractor=False)  # no features: no extractor
    assert result["data"]["n_train"] == 48
    assert result["ways"]["synthetic"]["class_counts"] == result["ways"]["real"]["class_counts"]
    assert result["classes"]["names"] == ["NORMAL", "PNEUMONIA"]
    assert 0.0 <= result["ways"]["synthetic"]["seeds"]["0"]["auroc"] <= 1.0


def test_utility_refuses_an_unconditional_run(home):
    from gan_lib.studies import utility

    run_dir = train.train(tiny(name="plain"))
    with pytest.raises(ValueError, match="conditional=true"):
        utility.utility_run(run_dir)
    assert not (run_dir / "utility.json").exists()


def test_intra_class_scores_compare_each_class_with_its_own_real_images(home, tmp_path,
                                                                         monkeypatch):
    from gan_lib import config, metrics
    from gan_lib.metrics import features
    from gan_lib.metrics.extraction import extract_features
    from gan_lib.metrics.feature_extractor import load_extractor
    from tests.test_metrics import TINY, tiny_cfg

    monkeypatch.setattr(config, "CACHE_DIR", tmp_path / "cache")
    run_dir = train.train(conditional())
    cfg = tiny_cfg(n_fake=24, n_real=16)
    scores = metrics.score_run(run_dir, cfg, extractor=TINY)
    per_class = [r for r in scores["scores"] if r.get("class_name")]
    # per class: a floor and two snapshots, FID and KID each
    assert len(per_class) == 2 * (1 + 2) * 2
    assert not [r for r in scores["scores"] if "NORMAL" in r["compared"]
                and not r.get("class_name")]  # the overall rows are as before

    ds = metrics.load_real(run_folder.load_run_config(run_dir), "train")
    net = load_extractor(cfg, TINY)
    snap = run_folder.list_snapshots(run_dir)[-1][1]
    labels = sampling.labels_for(sampling.read_snapshot(snap)["classes"], 24, cfg.seed)
    fakes = sampling.generate(snap, 24, seed=cfg.seed)
    for c, name in enumerate(["NORMAL", "PNEUMONIA"]):
        n_c = int((labels == c).sum())
        positions = features.class_positions(ds)[c]
        assert (ds.labels[positions] == c).all()
        n_ref = min(16, len(positions) - n_c)
        ref = extract_features(net, ds.images[positions[:n_ref]])["feat"]
        fake = extract_features(net, fakes[labels == c])["feat"]
        expected = metrics.fid_from_statistics(metrics.statistics(fake), metrics.statistics(ref))
        got = next(r for r in per_class if r["class_name"] == name and r["metric"] == "fid"
                   and r["iteration"] == 6)
        assert got["n_fake"] == n_c and got["n_real"] == n_ref and got["same_n"]
        assert got["value"] == pytest.approx(expected, rel=1e-6)
        floor = next(r for r in per_class if r["class_name"] == name and r["kind"] == "floor"
                     and r["metric"] == "fid")
        assert (floor["n_fake"], floor["n_real"]) == (n_c, n_ref)


def test_table_1_gains_per_class_rows_only_for_a_conditional_run():
    from gan_lib.metrics import score_tables

    def rec(kind, it, compared, value, class_name=None):
        r = {"metric": "fid", "kind": kind, "iteration": it, "compared": compared,
             "value": value, "std": None, "n_fake": 8, "n_real": 16, "same_n": True}
        return {**r, "class_name": class_name} if class_name else r

    plain = [rec("generated", 10, "generated (iteration 10) vs ref", 50.0),
             rec("floor", None, "held out vs ref", 3.0)]
    table = score_tables.fid_table({"scores": plain})
    assert "class" not in table.columns and table["FID"].tolist() == [50.0, 3.0]
    per_class = [rec("floor", None, "NORMAL held out", 4.0, "NORMAL"),
                 rec("generated", 10, "generated NORMAL (iteration 10)", 60.0, "NORMAL"),
                 rec("generated", 10, "generated PNEUMONIA (iteration 10)", 70.0, "PNEUMONIA"),
                 rec("floor", None, "PNEUMONIA held out", 5.0, "PNEUMONIA")]
    table = score_tables.fid_table({"scores": plain + per_class})
    assert table["class"].tolist() == ["all", "all", "NORMAL", "NORMAL", "PNEUMONIA",
                                       "PNEUMONIA"]
    assert table["FID"].tolist() == [50.0, 3.0, 60.0, 4.0, 70.0, 5.0]
    rows, floors = score_tables.fid_curve({"scores": plain + per_class})  # the curve: all classes
    assert rows == [{"iteration": 10, "fid": 50.0}] and list(floors.values()) == [3.0]
