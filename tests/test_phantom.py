"""The synthetic phantom: deterministic, Kermany class ratio, labelled synthetic, safe to rerun."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from gan_lib.data import phantom

SMALL = dict(n_train=20, n_test=8, n_val=4, size=64)


def _files(root):
    return sorted(p.relative_to(root) for p in root.rglob("*.png"))


def test_same_seed_gives_identical_files_other_seed_differs(tmp_path):
    a = phantom.make_phantom(tmp_path / "a", seed=3, **SMALL)
    b = phantom.make_phantom(tmp_path / "b", seed=3, **SMALL)
    c = phantom.make_phantom(tmp_path / "c", seed=4, **SMALL)
    assert _files(a) == _files(b) == _files(c)
    assert all((a / f).read_bytes() == (b / f).read_bytes() for f in _files(a))
    assert any((a / f).read_bytes() != (c / f).read_bytes() for f in _files(a))


def test_class_ratio_follows_kermany():
    assert phantom.class_counts(5216) == (1341, 3875)
    assert phantom.class_counts(624, "test") == (234, 390)
    assert phantom.class_counts(20) == (5, 15)
    assert phantom.class_counts(16, "val") == (8, 8)


def test_layout_counts_and_png_format(tmp_path):
    root = phantom.make_phantom(tmp_path / "ph", seed=0, **SMALL)
    counts = {(s, c): len(list((root / s / c).glob("*.png")))
              for s in ("train", "test", "val") for c in phantom.CLASS_NAMES}
    assert counts == {("train", "NORMAL"): 5, ("train", "PNEUMONIA"): 15,
                      ("test", "NORMAL"): 3, ("test", "PNEUMONIA"): 5,
                      ("val", "NORMAL"): 2, ("val", "PNEUMONIA"): 2}
    with Image.open(next((root / "train" / "NORMAL").glob("*.png"))) as im:
        assert (im.mode, im.size) == ("L", (64, 64))
        px = np.asarray(im)
    assert px.std() > 20, "expected a structured image, not a flat one"


def test_marker_names_synthetic_and_rerun_is_noop_or_regenerates(tmp_path):
    root = phantom.make_phantom(tmp_path / "ph", seed=0, **SMALL)
    text = (root / phantom.MARKER).read_text()
    assert "SYNTHETIC" in text and "seed: 0" in text and phantom.VERSION in text
    first = next((root / "train" / "NORMAL").glob("*.png"))
    mtime, data = first.stat().st_mtime_ns, first.read_bytes()
    phantom.make_phantom(root, seed=0, **SMALL)  # same settings: nothing rewritten
    assert first.stat().st_mtime_ns == mtime
    phantom.make_phantom(root, seed=1, **SMALL)  # other seed: regenerated in place
    assert "seed: 1" in (root / phantom.MARKER).read_text()
    assert first.read_bytes() != data
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "temp folder left over"


def test_refuses_to_overwrite_a_foreign_folder(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "keep.txt").write_text("user data")
    with pytest.raises(FileExistsError, match="PHANTOM.txt"):
        phantom.make_phantom(tmp_path / "mine", **SMALL)
    assert (tmp_path / "mine" / "keep.txt").read_text() == "user data"


def test_pneumonia_adds_opacity_inside_the_lungs():
    # Same anatomy (params are drawn first from the same stream); consolidations only add density.
    normal = phantom.render(np.zeros(32, dtype=int), 64, np.random.default_rng(0)).astype(float)
    pneu = phantom.render(np.ones(32, dtype=int), 64, np.random.default_rng(0)).astype(float)
    lungs = (slice(None), slice(16, 44), slice(8, 56))  # the thorax of a 64 px image
    assert pneu[lungs].mean() > normal[lungs].mean() + 3
    assert abs(pneu[:, 56:].mean() - normal[:, 56:].mean()) < abs(
        pneu[lungs].mean() - normal[lungs].mean())
