"""The resize policy (TrainConfig.resize): crop, squash and pad on made non-square images, the
same pixels from every path that loads images, crop unchanged from before the option, and the
raw aspect-ratio summary read from file headers."""

from __future__ import annotations

import functools
import hashlib

import numpy as np
import pytest
import torch
import torchvision.transforms.functional as TF
from PIL import Image, ImageFile

from gan_lib import config
from gan_lib.data import imagefile, phantom, pneumoniamnist, sizes, summaries
from gan_lib.data import load as data

S = 30  # output side: a 300 x 100 image scales by exactly 0.3 (crop) or 0.1 (pad)
BORDER = 40  # the background band of the made images
LEFT, MIDDLE, RIGHT = 250, 0, 128  # the three thirds of the made wide image


@pytest.fixture(autouse=True)
def data_dirs(tmp_path, monkeypatch):
    monkeypatch.setattr(config, "CACHE_DIR", tmp_path / "cache")
    monkeypatch.setattr(config, "PHANTOM_DIR", tmp_path / "phantom")
    monkeypatch.setattr(pneumoniamnist, "_online", lambda *a, **k: False)
    small = functools.partial(phantom.make_phantom, n_train=8, n_test=4, n_val=4)
    monkeypatch.setattr(phantom, "make_phantom",
                        lambda root, **kw: small(root, **{k: v for k, v in kw.items()
                                                          if k not in ("n_train", "n_test")}))


def wide(h: int = 100, w: int = 300) -> np.ndarray:
    """Three vertical thirds (250 / 0 / 128) between bands of BORDER, 20 rows top and bottom."""
    a = np.full((h, w), BORDER, np.uint8)
    a[20:h - 20, : w // 3], a[20:h - 20, w // 3: 2 * w // 3] = LEFT, MIDDLE
    a[20:h - 20, 2 * w // 3:] = RIGHT
    return a


def folder(root, images: list[np.ndarray]):
    """A Kermany-layout train split of lossless PNGs (the pixels reach the loader unchanged)."""
    for name in ("NORMAL", "PNEUMONIA"):
        (root / "train" / name).mkdir(parents=True)
    for i, a in enumerate(images):
        Image.fromarray(a).save(root / "train" / ("NORMAL", "PNEUMONIA")[i % 2] / f"{i}.png")
    return root


def test_crop_keeps_the_centre_square():
    out = imagefile.fit_square(wide().astype(np.float32), S, "crop")
    assert out.shape == (S, S) and out.dtype == np.uint8
    # 100 rows -> 30: the kept columns are the original's 100..200, all MIDDLE between the bands
    assert (out[8:22, 1:-1] == MIDDLE).all()
    assert LEFT not in out and RIGHT not in out  # the outer thirds are cut off


def test_squash_keeps_everything_narrowed():
    out = imagefile.fit_square(wide().astype(np.float32), S, "squash")
    assert out.shape == (S, S)
    rows = out[8:22]  # between the bands (rows 20..80 of 100 -> 6..24 of 30)
    assert (rows[:, 1:9] == LEFT).all() and (rows[:, 11:19] == MIDDLE).all()
    assert (rows[:, 21:29] == RIGHT).all()


def test_pad_letterboxes_with_the_border_value():
    out = imagefile.fit_square(wide().astype(np.float32), S, "pad")
    assert out.shape == (S, S)
    # 300 x 100 -> 30 x 10 in rows 10..19, the rest padding with the image's own border (40)
    assert (out[:10] == BORDER).all() and (out[20:] == BORDER).all()
    inner = out[10:20]
    assert (inner[3:7, 1:9] == LEFT).all() and (inner[3:7, 11:19] == MIDDLE).all()
    assert (inner[3:7, 21:29] == RIGHT).all()
    # a tall image is padded left and right, with the median of its left and right columns
    tall = np.ascontiguousarray(wide().T)  # 100 wide: its columns 0..19 and 80..99 are bands
    tall[:, :20], tall[:, 80:] = 7, 9  # -> the kept image's edge columns: 7 and 9 (30 each)
    out = imagefile.fit_square(tall.astype(np.float32), S, "pad")
    assert (out[:, 10] == 7).all() and (out[:, 19] == 9).all()
    assert (out[:, :10] == 7).all() and (out[:, 20:] == 7).all()  # their (lower) median


def test_pad_value_is_each_images_own_in_a_batch():
    a = torch.stack([torch.full((10, 30), 5.0), torch.full((10, 30), 200.0)])
    out = imagefile.square_tensor(a, S, "pad")
    assert out.shape == (2, S, S)
    assert (out[0] == 5).all() and (out[1] == 200).all()


def test_square_images_are_the_same_under_every_policy():
    a = np.random.default_rng(0).integers(0, 256, (90, 90)).astype(np.float32)
    crop = imagefile.fit_square(a, S, "crop")
    for policy in ("squash", "pad"):
        assert np.array_equal(imagefile.fit_square(a, S, policy), crop)


def test_an_unknown_policy_is_refused_with_the_choices(tmp_path):
    with pytest.raises(ValueError, match=r"resize='stretch'.*\('crop', 'squash', 'pad'\)"):
        imagefile.fit_square(wide().astype(np.float32), S, "stretch")
    with pytest.raises(ValueError, match="resize='stretch': expected one of"):
        data.load_dataset(str(folder(tmp_path / "xr", [wide()] * 2)), "train", 32, "stretch")
    with pytest.raises(ValueError, match="resize='stretch': expected one of"):
        config.make_train_config("smoke", resize="stretch")


def test_crop_is_bit_for_bit_the_loader_before_the_option(tmp_path):
    """Pixels, fingerprint and cache file name of crop as the code made them before resize
    existed (shorter side, centre crop; fingerprint over size and prep-v1 only)."""
    rng = np.random.default_rng(1)
    images = [rng.integers(0, 256, (70 + 9 * i, 110 - 7 * i)).astype(np.uint8) for i in range(4)]
    ds = data.load_dataset(str(folder(tmp_path / "xr", images)), "train", 32)
    assert ds.resize == "crop"
    order = [0, 2, 1, 3]  # NORMAL files first (0, 2), then PNEUMONIA (1, 3)
    old = torch.stack([TF.center_crop(TF.resize(torch.from_numpy(images[i]).float()[None], 32,
                                                antialias=True), [32, 32])
                       for i in order]).round().clamp(0, 255).to(torch.uint8)
    assert torch.equal(ds.images, old)
    h = hashlib.sha256(b"32|prep-v1|")
    h.update(old.numpy().tobytes())
    h.update(torch.tensor([0, 0, 1, 1]).numpy().tobytes())
    assert ds.fingerprint == h.hexdigest()[:16]
    cached = sorted(p.name for p in (config.CACHE_DIR / "datasets").iterdir())
    assert len(cached) == 1 and cached[0].startswith("kermany_train_32px_")
    assert len(cached[0].removeprefix("kermany_train_32px_").removesuffix(".pt")) == 16


def test_each_policy_is_its_own_data_set_and_cache(tmp_path):
    root = str(folder(tmp_path / "xr", [wide(), wide()[:, ::-1].copy()]))
    loaded = {p: data.load_dataset(root, "train", S, p) for p in ("crop", "squash", "pad")}
    assert len({ds.fingerprint for ds in loaded.values()}) == 3
    assert {p: ds.resize for p, ds in loaded.items()} == {p: p for p in loaded}
    assert len(list((config.CACHE_DIR / "datasets").iterdir())) == 3
    again = data.load_dataset(root, "train", S, "pad")  # from its own cache, not crop's
    assert torch.equal(again.images, loaded["pad"].images)
    assert again.fingerprint == loaded["pad"].fingerprint
    assert (loaded["pad"].images[0, 0, :10] == BORDER).all()


def test_folder_and_npz_paths_make_the_same_pixels(tmp_path):
    """The PneumoniaMNIST path resizes whole arrays: the same policy, the same pixels."""
    a = wide()
    root = str(folder(tmp_path / "xr", [a, a]))
    npz = tmp_path / "pm.npz"
    np.savez(npz, train_images=np.stack([a, a]), train_labels=np.array([[0], [1]]))
    for policy in ("crop", "squash", "pad"):
        from_folder = data.load_dataset(root, "train", S, policy).images
        from_npz = data.load_dataset(str(npz), "train", S, policy).images
        assert torch.equal(from_folder, from_npz), policy


def test_summary_names_the_policy(tmp_path):
    ds = data.load_dataset(str(folder(tmp_path / "xr", [wide()] * 2)), "train", S, "pad")
    assert "resize:      pad" in summaries.summarize(ds)


def test_file_sizes_read_headers_only(tmp_path, monkeypatch):
    root = folder(tmp_path / "xr", [wide(), wide(120, 180), wide(100, 100), wide(200, 100)])
    (tmp_path / "xr" / "test" / "NORMAL").mkdir(parents=True)
    (tmp_path / "xr" / "test" / "PNEUMONIA").mkdir(parents=True)
    Image.fromarray(wide(50, 60)).save(root / "test" / "NORMAL" / "t.png")
    (root / "test" / "PNEUMONIA" / "bad.png").write_text("not an image")

    def no_decoding(self, *a, **k):
        raise AssertionError("pixels were decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decoding)  # a file's pixel decoding
    table = sizes.file_sizes(str(root))
    assert table.sort_values(["split", "width", "height"]).values.tolist() == [
        ["test", "NORMAL", 60, 50],  # the unreadable file is left out
        ["train", "NORMAL", 100, 100], ["train", "PNEUMONIA", 100, 200],
        ["train", "PNEUMONIA", 180, 120], ["train", "NORMAL", 300, 100]]
    summary = sizes.aspect_table(table).set_index("split")
    assert summary.loc["train", "n"] == 4 and summary.loc["test", "n"] == 1
    assert summary.loc["train", "aspect median"] == 1.25  # of 0.5, 1, 1.5, 3
    assert (summary.loc["train", "wider"], summary.loc["train", "square"],
            summary.loc["train", "taller"]) == ("50%", "25%", "25%")
    assert summary.loc["test", "median width x height"] == "60 x 50"


def test_training_scoring_and_the_audit_load_the_runs_policy(tmp_path, monkeypatch, one_thread):
    """A pad run: config.json records the policy and the fingerprint of the padded images,
    and load_real (scoring, audit, protocols, usefulness, quiz) loads them the same way."""
    from gan_lib.gan import run_folder, train
    from gan_lib.metrics import load_real

    monkeypatch.setattr(config, "RUNS_DIR", tmp_path / "runs")
    rng = np.random.default_rng(2)
    images = [np.clip(wide() + rng.normal(0, 20, (100, 300)), 0, 255).astype(np.uint8)
              for _ in range(16)]
    root = str(folder(tmp_path / "xr", images))
    cfg = config.make_train_config("smoke", name="padded", source=root, resize="pad",
                                   image_size=32, subset=None, batch_size=8, iterations=2,
                                   snapshot_at=(2,), checkpoint_every=2, g_channels=8,
                                   d_channels=8, grid_size=4, precision="fp32", device="cpu")
    meta = run_folder.load_run_config(train.train(cfg))
    padded = data.load_dataset(root, "train", 32, "pad")
    assert meta["config"]["resize"] == "pad" and meta["data"]["resize"] == "pad"
    assert meta["data"]["fingerprint"] == padded.fingerprint
    assert padded.fingerprint != data.load_dataset(root, "train", 32).fingerprint
    real = load_real(meta, "train")
    assert real.resize == "pad" and real.fingerprint == padded.fingerprint
    older = {**meta, "config": {k: v for k, v in meta["config"].items() if k != "resize"}}
    assert load_real(older, "train").resize == "crop"  # a run from before the option: cropped


def test_cli_data_summary_names_the_policy_and_the_aspect_ratios(tmp_path, capsys):
    from gan_lib.__main__ import main

    root = folder(tmp_path / "xr", [wide(), wide(120, 180)])
    main(["data", "--source", str(root), "--size", "32", "--resize", "squash"])
    out = capsys.readouterr().out
    assert "resize:      squash" in out and "aspect median" in out
    assert "2.25" in out  # the median of 3.0 and 1.5
