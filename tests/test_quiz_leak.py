"""The quiz page gives nothing away: on a quiz of a trained run, no byte-level property of the
page (lengths, padding, runs of one character, compressibility, the PNGs' chunks, position,
ids, mask seeds) tells real images from generated ones, alone or all together in a classifier.

The one thing left is the images' content, which the readers are asked to judge: a smoke run's
images look nothing like real ones, so the pixels themselves (and how well they compress) are
not features here. See gan_lib/studies/quiz_page.py for how the page is encoded.
"""

from __future__ import annotations

import base64
import struct

import pytest

from gan_lib import config
from gan_lib.gan import train
from gan_lib.studies import quiz, quiz_page
from tests.test_benchmarks import bench_module

# The features and the chance band are benchmarks/quiz_leak.py's, which runs the same check on
# a quiz of a run trained on real X-rays.
quiz_leak = bench_module("quiz_leak")

N = 80  # images: 40 real, 40 generated


@pytest.fixture(scope="module")
def trained_quiz(tmp_path_factory):
    """(page source, page data, key) of a quiz on a smoke run trained on the phantom."""
    home = tmp_path_factory.mktemp("leak")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(config, "RUNS_DIR", home / "runs")
        cfg = config.make_train_config("smoke", name="leak", source="phantom", precision="fp32")
        run_dir = train.train(cfg)
        (run_dir / quiz.SECRET_FILE).write_text("5" * 32 + "\n")  # fixed: a repeatable test
        page = quiz.build_quiz(run_dir, home / "quiz", n=N, seed=0)
    html = page.read_text(encoding="utf-8")
    return html, quiz_leak.page_data(html), quiz.read_key(page.parent / "key.json")


def test_no_byte_level_feature_tells_real_from_generated(trained_quiz):
    html, data, key = trained_quiz
    result = quiz_leak.leak_check(html, key)
    assert (result["n_real"], result["n_fake"]) == (N // 2, N // 2)
    leaks = {k: round(result["auc"][k], 3) for k in result["leaking_features"]}
    assert not leaks, ("these features tell the kinds apart (AUC; chance: 0.5 +- "
                       f"{result['chance_bound']:.2f})")
    assert result["distinct_values"]["base64 length"] == 1
    assert max(len(str(i["mask"])) for i in data["images"]) <= 10
    # all features together: a cross-validated logistic regression is at chance too
    assert abs(result["auc_all_features_logistic_cv5"] - 0.5) < result["chance_bound"]
    assert result["at_chance"]


def test_what_the_browser_decodes_has_one_length_and_chunk_layout(trained_quiz):
    """The unmasked PNGs differ only in their pixel data: same length, same chunks."""
    _, data, key = trained_quiz
    pngs = [quiz_page.mask(base64.b64decode(i["png"]), i["mask"]) for i in data["images"]]
    assert len({len(p) for p in pngs}) == 1
    assert len({tuple(quiz_leak.chunks(p)) for p in pngs}) == 1
    assert [t for t, _ in quiz_leak.chunks(pngs[0])] == [b"IHDR", b"IDAT", b"IDAT", b"IEND"]
    size = key["display"]["size"]
    assert struct.unpack(">II", pngs[0][16:24]) == (size, size)


def test_the_check_finds_a_leak_where_there_is_one(trained_quiz):
    """The same check on a key whose truth follows the page order (real first) flags position."""
    html, _, key = trained_quiz
    ordered = {**key, "images": [{**i, "truth": "real" if k < N // 2 else "fake"}
                                 for k, i in enumerate(key["images"])]}
    result = quiz_leak.leak_check(html, ordered)
    assert {"position", "id", "offset"} <= set(result["leaking_features"])
    assert result["auc"]["position"] == 1.0 and not result["at_chance"]
