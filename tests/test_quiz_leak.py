"""The quiz page gives nothing away: on a quiz of a trained run, no byte-level property of the
page (lengths, padding, runs of one character, compressibility, the PNGs' chunks, position,
ids, mask seeds) tells real images from generated ones, alone or all together in a classifier.

The one thing left is the images' content, which the readers are asked to judge: a smoke run's
images look nothing like real ones, so the pixels themselves (and how well they compress) are
not features here. See gan_lib/studies/quiz_page.py for how the page is encoded.
"""

from __future__ import annotations

import base64
import itertools
import json
import math
import re
import struct
import zlib

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from gan_lib import config
from gan_lib.gan import train
from gan_lib.studies import quiz, quiz_page

N = 80  # images: 40 real, 40 generated
Z = 3.5  # two-sided: a feature at chance passes with probability > 0.999


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
    data = json.loads(html.split("const QUIZ = ")[1].split(";\n")[0])
    return html, data, quiz.read_key(page.parent / "key.json")


def longest_run(seq) -> int:
    return max((len(list(g)) for _, g in itertools.groupby(seq)), default=0)


def chunks(png: bytes) -> list[tuple[bytes, int]]:
    """[(chunk type, length)] of a PNG file."""
    out, pos = [], 8
    while pos < len(png):
        length = struct.unpack(">I", png[pos:pos + 4])[0]
        out.append((png[pos + 4:pos + 8], length))
        pos += 12 + length
    return out


def byte_features(html: str, data: dict) -> pd.DataFrame:
    """One row per image, in page order: every property of its bytes on the page."""
    rows = []
    for position, image in enumerate(data["images"]):
        text, masked = image["png"], base64.b64decode(image["png"])
        counts = np.bincount(np.frombuffer(masked, dtype=np.uint8), minlength=256)
        p = counts[counts > 0] / len(masked)
        rows.append({
            "position": position, "id": image["id"], "offset": html.index(text),
            "mask seed": image["mask"], "mask digits": len(str(image["mask"])),
            "base64 length": len(text), "padding '='": len(text) - len(text.rstrip("=")),
            "longest run of a character": longest_run(text), "'A' count": text.count("A"),
            "longest 'A' run": max((len(r) for r in re.findall("A+", text)), default=0),
            "zlib of the base64": len(zlib.compress(text.encode(), 9)),
            "zlib of the bytes": len(zlib.compress(masked, 9)),
            "byte entropy": float(-(p * np.log2(p)).sum()),
            "zero bytes": int(counts[0]), "longest byte run": longest_run(masked),
            "first 4 bytes": int.from_bytes(masked[:4], "big"),
        })
    return pd.DataFrame(rows)


def chance_bound(n_real: int, n_fake: int) -> float:
    """|AUC - 0.5| that chance exceeds with probability about 5e-4 (the Mann-Whitney null)."""
    return Z * math.sqrt((n_real + n_fake + 1) / (12 * n_real * n_fake))


def test_no_byte_level_feature_tells_real_from_generated(trained_quiz):
    html, data, key = trained_quiz
    fake = np.array([i["truth"] == "fake" for i in key["images"]])
    assert fake.sum() == N // 2 and [i["id"] for i in data["images"]] == [
        i["id"] for i in key["images"]]
    X = byte_features(html, data)
    bound = chance_bound(N // 2, N // 2)
    aucs = {name: roc_auc_score(fake, X[name]) for name in X}
    leaks = {name: round(a, 3) for name, a in aucs.items() if abs(a - 0.5) >= bound}
    assert not leaks, f"these features tell the kinds apart (AUC; chance: 0.5 +- {bound:.2f})"
    assert X["base64 length"].nunique() == 1 and X["mask digits"].max() <= 10
    # all features together: a cross-validated logistic regression is at chance too
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    folds = StratifiedKFold(5, shuffle=True, random_state=0)
    scores = cross_val_predict(model, X.to_numpy(float), fake, cv=folds,
                               method="predict_proba")[:, 1]
    assert abs(roc_auc_score(fake, scores) - 0.5) < bound


def test_what_the_browser_decodes_has_one_length_and_chunk_layout(trained_quiz):
    """The unmasked PNGs differ only in their pixel data: same length, same chunks."""
    _, data, key = trained_quiz
    pngs = [quiz_page.mask(base64.b64decode(i["png"]), i["mask"]) for i in data["images"]]
    assert len({len(p) for p in pngs}) == 1
    assert len({tuple(chunks(p)) for p in pngs}) == 1
    assert [t for t, _ in chunks(pngs[0])] == [b"IHDR", b"IDAT", b"IDAT", b"IEND"]
    size = key["display"]["size"]
    assert struct.unpack(">II", pngs[0][16:24]) == (size, size)
