"""load_dataset on fixtures written here: Kermany folders, PneumoniaMNIST .npz, phantom, auto."""

from __future__ import annotations

import functools
import os
import shutil
import struct
import time
import warnings
import zlib

import numpy as np
import pytest
import torch
from PIL import Image

from gan_lib import config
from gan_lib.data import load as data  # the module under test (its decode_image is patched)
from gan_lib.data import phantom, pneumoniamnist, summaries


@pytest.fixture(autouse=True)
def data_dirs(tmp_path, monkeypatch):
    """Caches, phantom and raw data under tmp_path; never the network."""
    monkeypatch.setattr(config, "CACHE_DIR", tmp_path / "cache")
    monkeypatch.setattr(config, "PHANTOM_DIR", tmp_path / "phantom")
    monkeypatch.setattr(config, "RAW_DIR", tmp_path / "raw")
    monkeypatch.setattr(pneumoniamnist, "_online", lambda *a, **k: False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # ~/.medmnist lookups stay inside tmp
    small = functools.partial(phantom.make_phantom, n_train=20, n_test=8, n_val=4)
    monkeypatch.setattr(phantom, "make_phantom",
                        lambda root, **kw: small(root, **{k: v for k, v in kw.items()
                                                          if k not in ("n_train", "n_test")}))
    return tmp_path


def _gray_jpeg(path, w, h, value=100):
    rng = np.random.default_rng(0)
    arr = np.clip(value + rng.normal(0, 10, (h, w)), 0, 255).astype(np.uint8)
    Image.fromarray(arr, "L").save(path, "JPEG", quality=95)


def make_kermany(root):
    """A small train split with every kind of file a real download contains (and some bad ones)."""
    normal, pneu = root / "train" / "NORMAL", root / "train" / "PNEUMONIA"
    normal.mkdir(parents=True)
    pneu.mkdir(parents=True)
    _gray_jpeg(normal / "gray.jpeg", 300, 217)  # odd size, 8-bit gray
    Image.new("RGB", (151, 233), (200, 40, 40)).save(normal / "rgb.JPG", "JPEG", quality=95)
    ramp = np.linspace(1000, 1400, 90 * 70).reshape(70, 90).astype(np.uint16)  # narrow 16-bit
    Image.fromarray(ramp).save(normal / "sixteen.png")
    stripe = np.zeros((100, 300), np.uint8)
    stripe[:, :100] = 255  # only the left third is white: a center crop must drop it
    Image.fromarray(stripe).save(pneu / "wide.PNG")
    _gray_jpeg(pneu / "ok.jpeg", 64, 64, value=180)
    full = (pneu / "ok.jpeg").read_bytes()
    _gray_jpeg(pneu / "big.jpeg", 400, 400)
    (pneu / "truncated.jpeg").write_bytes((pneu / "big.jpeg").read_bytes()[:600])
    (pneu / "empty.jpeg").write_bytes(b"")
    (pneu / "notes.jpeg").write_text("this is not an image\n")
    (pneu / ".hidden.jpeg").write_bytes(full)  # macOS resource fork style: ignored
    (pneu / "readme.txt").write_text("ignored: not an image extension")
    return root


def _tree(root):
    return sorted((str(p.relative_to(root)), p.stat().st_size, p.stat().st_mtime_ns)
                  for p in root.rglob("*"))


def test_folder_reader_decodes_all_formats_and_skips_bad_files(tmp_path):
    root = make_kermany(tmp_path / "xr")
    with pytest.warns(UserWarning, match="skipped 3 unreadable"):
        ds = data.load_dataset(str(root), "train", 64)
    assert ds.images.dtype == torch.uint8 and ds.images.shape == (6, 1, 64, 64)
    assert ds.labels.dtype == torch.int64 and ds.labels.tolist() == [0, 0, 0, 1, 1, 1]
    assert (ds.kind, ds.source, ds.is_synthetic) == ("kermany", str(root.resolve()), False)
    reasons = {p.split("/")[-1]: r for p, r in ds.skipped}
    assert set(reasons) == {"truncated.jpeg", "empty.jpeg", "notes.jpeg"}
    assert "0 bytes" in reasons["empty.jpeg"]
    assert "not an image" in reasons["notes.jpeg"]
    assert "truncated" in reasons["truncated.jpeg"]
    sizes = dict(zip(ds.raw_modes, ds.raw_sizes.tolist(), strict=False))
    assert sizes["RGB"] == [151, 233] and sizes["I;16"] == [90, 70]


def bomb_png(width: int, height: int) -> bytes:
    """A ~70-byte PNG whose header claims width x height pixels (a decompression bomb)."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 9))
            + chunk(b"IEND", b""))


@pytest.mark.parametrize("side", [20000, 12000])  # over Pillow's error limit, between its two
def test_a_decompression_bomb_and_a_non_utf8_name_are_skipped_and_listed(tmp_path, side):
    root = make_kermany(tmp_path / "xr")
    normal = root / "train" / "NORMAL"
    (normal / "bomb.png").write_bytes(bomb_png(side, side))
    os.rename(normal / "gray.jpeg", os.fsencode(normal) + b"/gr\xe4y.jpeg")  # Latin-1 name
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Pillow's own warning, and "skipped 5 unreadable"
        ds = data.load_dataset(str(root), "train", 64)
    assert len(ds) == 5  # the folder loads: the six good images but the renamed one
    reasons = {p.split("/")[-1]: r for p, r in ds.skipped}
    bomb = reasons["bomb.png"]
    assert "decompression bomb" in bomb and (f"{side} x {side}" in bomb or f"{side**2}" in bomb)
    assert "not valid UTF-8" in reasons["gr\\xe4y.jpeg"]
    assert "skipped:     5 file(s)" in summaries.summarize(ds)  # printable: no encoding error


def test_thin_and_long_images_are_skipped_by_their_header_before_decoding(tmp_path):
    """A 179-byte 100000 x 1 PNG decoded at 2.5 GB and a 50,000,000 x 1 one asked for 819 GB:
    the header's sides and aspect ratio refuse them, and the folder loads without them."""
    root = make_kermany(tmp_path / "xr")
    normal, pneu = root / "train" / "NORMAL", root / "train" / "PNEUMONIA"
    Image.new("L", (100_000, 1), 100).save(normal / "thin.png", optimize=True)
    (normal / "header_only.png").write_bytes(bomb_png(50_000_000, 1))
    Image.new("L", (2_000, 150), 100).save(pneu / "long.png")  # 13.3 : 1
    Image.new("L", (150, 1_400), 100).save(pneu / "tall_ok.png")  # 9.3 : 1 is kept
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = data.load_dataset(str(root), "train", 64)
    reasons = {p.split("/")[-1]: r for p, r in ds.skipped}
    assert set(reasons) == {"truncated.jpeg", "empty.jpeg", "notes.jpeg", "thin.png",
                            "header_only.png", "long.png"}
    assert reasons["thin.png"] == "100000 x 1 px: a side under 8 px holds no radiograph"
    assert reasons["header_only.png"].startswith("50000000 x 1 px: a side under 8 px")
    assert reasons["long.png"].startswith("2000 x 150 px is 13.3 times longer than wide")
    assert len(ds) == 7 and [150, 1400] in ds.raw_sizes.tolist()
    assert "long.png: 2000 x 150 px" in summaries.summarize(ds)


def test_parallel_decoding_stays_within_the_memory_budget(tmp_path, monkeypatch):
    """Files are decoded by up to 8 threads; together they hold no more than DECODE_MEMORY."""
    from gan_lib.data import imagefile

    root = tmp_path / "x"
    for name in ("NORMAL", "PNEUMONIA"):
        (root / "train" / name).mkdir(parents=True)
        for i in range(4):
            Image.new("L", (200, 200), 50 * i).save(root / "train" / name / f"{i}.png")
    one_file = 200 * 200 * (1 + 12)  # imagefile.decode_bytes of each
    monkeypatch.setattr(imagefile, "DECODE_MEMORY", int(1.5 * one_file))
    monkeypatch.setattr(os, "cpu_count", lambda: 8)
    in_flight, most = [0], [0]
    to_gray = imagefile.to_gray_float

    def tracked(im):
        in_flight[0] += 1
        most[0] = max(most[0], in_flight[0])
        time.sleep(0.05)  # long enough for the other threads to start theirs
        in_flight[0] -= 1
        return to_gray(im)

    monkeypatch.setattr(imagefile, "to_gray_float", tracked)
    ds = data.load_dataset(str(root), "train", 32)
    assert len(ds) == 8 and most[0] == 1
    monkeypatch.setattr(imagefile, "DECODE_MEMORY", 8 * one_file)  # room for all: parallel
    (root / "train" / "NORMAL" / "0.png").touch()  # a new listing: decoded again, not cached
    os.utime(root / "train" / "NORMAL" / "0.png", ns=(1, 1))
    data.load_dataset(str(root), "train", 32)
    assert most[0] > 1


def test_pixels_rgb_to_gray_16bit_full_range_and_aspect_preserving_crop(tmp_path):
    root = make_kermany(tmp_path / "xr")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = data.load_dataset(str(root), "train", 64)
    by_size = {tuple(wh): img[0].float() for wh, img in zip(ds.raw_sizes.tolist(), ds.images,
                                                            strict=True)}
    gray, rgb, sixteen, wide = (by_size[wh] for wh in ((300, 217), (151, 233), (90, 70), (300, 100)))
    assert abs(gray.mean() - 100) < 3
    expected = Image.new("RGB", (1, 1), (200, 40, 40)).convert("L").getpixel((0, 0))
    assert abs(rgb.mean() - expected) < 3
    # 1000..1400 scaled by its own range spans 0..255 (truncation to 8 bits would saturate).
    assert sixteen.min() < 10 and sixteen.max() > 245
    assert wide.mean() < 5, "the white left third should be cropped away, not squeezed in"


def test_cache_hit_does_not_decode_and_data_folder_untouched(tmp_path, monkeypatch):
    root = make_kermany(tmp_path / "xr")
    before = _tree(root)
    with pytest.warns(UserWarning):
        first = data.load_dataset(str(root), "train", 64)

    def boom(*args, **kwargs):
        raise AssertionError("decoded again despite the cache")

    monkeypatch.setattr(data, "decode_image", boom)
    with pytest.warns(UserWarning, match="skipped 3"):
        second = data.load_dataset(str(root), "train", 64)
    assert torch.equal(first.images, second.images) and first.fingerprint == second.fingerprint
    assert second.skipped == first.skipped
    assert _tree(root) == before, "load_dataset wrote into the user's data folder"
    assert list((config.CACHE_DIR / "datasets").glob("kermany_train_64px_*.pt"))


def test_corrupt_cache_is_rebuilt(tmp_path):
    root = make_kermany(tmp_path / "xr")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        first = data.load_dataset(str(root), "train", 32)
    (cache,) = (config.CACHE_DIR / "datasets").glob("*.pt")
    cache.write_bytes(b"garbage")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        again = data.load_dataset(str(root), "train", 32)
    assert any("unusable" in str(w.message) for w in caught)
    assert torch.equal(first.images, again.images) and first.fingerprint == again.fingerprint
    assert cache.stat().st_size > 1000, "the cache file should have been rewritten"


def test_fingerprint_follows_content_not_location(tmp_path):
    a = make_kermany(tmp_path / "a")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fa = data.load_dataset(str(a), "train", 32).fingerprint
        shutil.copytree(a, tmp_path / "b")
        fb = data.load_dataset(str(tmp_path / "b"), "train", 32).fingerprint
        _gray_jpeg(tmp_path / "b" / "train" / "NORMAL" / "new.jpeg", 80, 80)
        new = data.load_dataset(str(tmp_path / "b"), "train", 32)
        f64 = data.load_dataset(str(a), "train", 64).fingerprint
    assert fa == fb and len(set([fa, new.fingerprint, f64])) == 3 and len(new) == 7


def test_layout_errors_name_the_expected_layout(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist") as err:
        data.load_dataset(str(tmp_path / "nowhere"), "train")
    assert data.LAYOUT in str(err.value)
    flat = tmp_path / "flat"
    (flat / "NORMAL").mkdir(parents=True)
    _gray_jpeg(flat / "NORMAL" / "a.jpeg", 50, 50)
    with pytest.raises(ValueError, match="not in the Kermany layout") as err:
        data.load_dataset(str(flat), "train")
    assert "{train,test,val}/{NORMAL,PNEUMONIA}" in str(err.value)
    nested = tmp_path / "zip" / "chest_xray" / "train"
    (nested / "NORMAL").mkdir(parents=True)
    (nested / "PNEUMONIA").mkdir()
    with pytest.raises(ValueError, match="Did you mean"):
        data.load_dataset(str(tmp_path / "zip"), "train")
    with pytest.raises(ValueError, match="empty"):  # class folders there, no images
        data.load_dataset(str(tmp_path / "zip" / "chest_xray"), "train")


def test_all_files_unreadable_is_an_error(tmp_path):
    for name in ("NORMAL", "PNEUMONIA"):
        (tmp_path / "x" / "test" / name).mkdir(parents=True)
        (tmp_path / "x" / "test" / name / "a.jpeg").write_bytes(b"")
    with pytest.raises(ValueError, match="none of the 2 files"):
        data.load_dataset(str(tmp_path / "x"), "test")


def _npz(path, n=10, size=28, **override):
    rng = np.random.default_rng(0)
    arrays = {f"{s}_images": rng.integers(0, 256, (n, size, size), dtype=np.uint8)
              for s in data.SPLITS}
    arrays.update({f"{s}_labels": (np.arange(n) % 2).reshape(n, 1) for s in data.SPLITS})
    arrays.update(override)
    arrays = {k: v for k, v in arrays.items() if v is not None}
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **arrays)
    return path


def test_npz_reader_with_medmnist_keys(tmp_path):
    path = _npz(tmp_path / "pm.npz")
    ds = data.load_dataset(str(path), "val", 64)
    assert ds.images.shape == (10, 1, 64, 64) and ds.labels.tolist() == [0, 1] * 5
    assert (ds.kind, ds.source, ds.is_synthetic) == ("pneumoniamnist", str(path.resolve()), False)
    assert ds.raw_sizes.tolist()[0] == [28, 28]


@pytest.mark.parametrize(("override", "match"), [
    ({"train_labels": None}, r"no \['train_labels'\].*found keys"),
    ({"train_images": np.zeros((10, 28), np.uint8)}, r"expected .*uint8 \[N, H, W\]"),
    ({"train_images": np.zeros((10, 28, 28), np.float32)}, "float32"),
    ({"train_labels": np.zeros((7, 1), np.int64)}, r"for 10 images: expected"),
    ({"train_labels": np.full((10, 1), 3)}, "0 normal / 1 pneumonia"),
])
def test_npz_errors_say_what_was_expected(tmp_path, override, match):
    path = _npz(tmp_path / "bad.npz", **override)
    with pytest.raises(ValueError, match=match):
        data.load_dataset(str(path), "train", 64)


def test_not_an_npz_and_unknown_source(tmp_path):
    (tmp_path / "fake.npz").write_text("nope")
    with pytest.raises(ValueError, match="cannot be read as .npz"):
        data.load_dataset(str(tmp_path / "fake.npz"))
    with pytest.raises(FileNotFoundError, match="'phantom', 'pneumoniamnist'"):
        data.load_dataset("phantm")


def test_pneumoniamnist_picks_nearest_stored_size_above(tmp_path):
    _npz(config.RAW_DIR / "pneumoniamnist.npz", size=28)
    _npz(config.RAW_DIR / "pneumoniamnist_128.npz", size=128)
    ds = data.load_dataset("pneumoniamnist", "test", 64)
    assert ds.source.endswith("pneumoniamnist_128.npz") and ds.images.shape[-1] == 64


def test_pneumoniamnist_offline_without_file_says_where_to_put_it():
    with pytest.raises(FileNotFoundError, match="pneumoniamnist_64.npz") as err:
        data.load_dataset("pneumoniamnist", "train", 64)
    assert str(config.RAW_DIR) in str(err.value)


def test_auto_prefers_kermany_then_npz_then_phantom(tmp_path, capsys):
    assert data.resolve_auto(64)[0] == "phantom"
    _npz(config.RAW_DIR / "pneumoniamnist_64.npz", size=64)
    assert data.resolve_auto(64)[0].endswith("pneumoniamnist_64.npz")
    make_kermany(config.RAW_DIR / "chest_xray")
    with pytest.warns(UserWarning):
        ds = data.load_dataset("auto", "train", 32)
    assert ds.kind == "kermany" and "chest_xray" in capsys.readouterr().out


def test_phantom_source_is_labelled_synthetic_and_cached(tmp_path):
    ds = data.load_dataset("phantom", "train", 64)
    assert (ds.kind, ds.source, ds.is_synthetic) == ("phantom", "phantom", True)
    assert ds.description.startswith("synthetic phantom data") and len(ds) == 20
    assert (config.PHANTOM_DIR / phantom.MARKER).is_file()
    text = summaries.summarize(ds)
    for part in ("synthetic phantom data", "NORMAL 5", "PNEUMONIA 15", "64 x 64",
                 ds.fingerprint, "skipped:     0"):
        assert part in text
    # A phantom folder passed by path is still recognised and named synthetic.
    assert data.load_dataset(str(config.PHANTOM_DIR), "val", 32).is_synthetic


def test_split_counts_and_raw_size_stats(tmp_path):
    counts = summaries.split_counts("phantom", 32)
    assert counts.set_index("split").loc["test", ["NORMAL", "PNEUMONIA"]].tolist() == [3, 5]
    root = make_kermany(tmp_path / "xr")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        counts = summaries.split_counts(str(root), 32).set_index("split")
        ds = data.load_dataset(str(root), "train", 32)
    assert counts.loc["train", "total"] == 6 and counts.loc["train", "skipped"] == 3
    note = counts.loc["val", "note"]  # the layout is right: only val/ is missing
    assert counts.loc["val", "total"] == 0 and "layout" not in note
    assert note.endswith("has no val/ folder (it has train)")
    stats = summaries.raw_size_stats(ds).set_index("class")
    assert stats.loc["NORMAL", "width_max"] == 300 and stats.loc["NORMAL", "n"] == 3


def test_cli_summary_and_phantom(tmp_path, capsys):
    from gan_lib.__main__ import main

    main(["data", "--source", "phantom", "--size", "32", "--split", "test"])
    assert "synthetic phantom data" in capsys.readouterr().out
    main(["data", "phantom", str(tmp_path / "ph"), "--n-train", "10", "--n-test", "4"])
    assert (tmp_path / "ph" / "train" / "PNEUMONIA").is_dir()


def test_offline_setting_never_probes_the_network(monkeypatch):
    import socket

    monkeypatch.undo()  # drop the autouse stand-in for _online: test the real one
    monkeypatch.setattr(socket, "create_connection", pytest.fail)
    monkeypatch.setenv("GAN_LIB_OFFLINE", "1")
    assert pneumoniamnist._online() is False


def test_a_folder_of_one_square_size_is_said_to_be_resized(tmp_path):
    root = tmp_path / "squashed"
    for cls in ("NORMAL", "PNEUMONIA"):
        (root / "train" / cls).mkdir(parents=True)
        for i in range(3):
            _gray_jpeg(root / "train" / cls / f"{i}.jpeg", 48, 48, value=60 + 40 * i)
    ds = data.load_dataset(str(root), "train", 32)
    assert "all 6 files are 48 x 48 px" in summaries.summarize(ds)
    assert "probably resized" in summaries.resized_note(ds)
    stats = summaries.raw_size_stats(ds).set_index("class")
    assert stats.loc["NORMAL", "aspect_median"] == 1.0 and "width_p5" in stats.columns
    varied = data.load_dataset(str(make_kermany(tmp_path / "xr")), "train", 32)
    assert summaries.resized_note(varied) is None and "note:" not in summaries.summarize(varied)


def test_a_colon_in_the_data_path_keeps_the_whole_reason_in_the_split_table(tmp_path):
    """The note kept the text before the first colon: 'a:b has no val/ folder' became 'a'."""
    root = make_kermany(tmp_path / "scans:2024")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        counts = summaries.split_counts(str(root), 32).set_index("split")
    assert counts.loc["val", "note"] == "has no val/ folder (it has train)"
    assert counts.loc["test", "note"] == "has no test/ folder (it has train)"


@pytest.mark.parametrize("case", ["unreadable class folder", "symlink loop"])
def test_an_unreadable_class_folder_or_a_symlink_loop_is_one_error_line(tmp_path, monkeypatch,
                                                                       capsys, case):
    """Both ended in a traceback (PermissionError; RuntimeError 'Symlink loop')."""
    from pathlib import Path

    from gan_lib.__main__ import main

    root = make_kermany(tmp_path / "xr")
    locked = root / "train" / "PNEUMONIA"
    iterdir = Path.iterdir

    def unreadable(self):  # chmod 000 does not stop root, who runs these tests in CI
        if self == locked:
            raise PermissionError(13, "Permission denied", str(self))
        return iterdir(self)

    monkeypatch.setattr(Path, "iterdir", unreadable)
    (tmp_path / "loop1").symlink_to(tmp_path / "loop2")
    (tmp_path / "loop2").symlink_to(tmp_path / "loop1")
    source, expected = {
        "unreadable class folder": (root, f"error: cannot read {locked} (Permission denied): "
                                          "give this user read and enter permission"),
        "symlink loop": (tmp_path / "loop1", f"error: data source {str(tmp_path / 'loop1')!r} "
                                             "cannot be resolved")}[case]
    with pytest.raises(SystemExit) as stop:
        main(["data", "--source", str(source)])
    err = capsys.readouterr().err
    assert stop.value.code == 2 and err.startswith(expected) and err.count("\n") == 1, err
