"""Does the reader-study page give its answers away? Every byte-level feature against the key.

Builds the quiz of a trained run (by default ``real-quick-s0``, trained on the Kermany chest
X-rays, with real test-split images) into a temporary folder and asks whether anything a reader
can see without judging the pictures tells real from generated: for each image, its lengths,
base64 padding, runs of one character, compressibility of the text and of the bytes, byte
entropy, PNG chunk layout, position on the page, id and mask seed. Each feature alone (its
ROC AUC for "generated") and all of them together (a 5-fold cross-validated logistic
regression) must sit within the chance band declared here before measuring: |AUC - 0.5| below
:func:`chance_bound`, which chance exceeds with probability about 5e-4 (Mann-Whitney null,
3.5 sd). tests/test_quiz_leak.py runs the same check on a smoke run of the phantom.

    .venv/bin/python benchmarks/quiz_leak.py --run real-quick-s0 --n 400 \\
        --json                                    # benchmarks/results/real_quiz_leak.json
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import itertools
import json
import math
import re
import struct
import sys
import tempfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from gan_lib import storage
from gan_lib.gan import run_folder
from gan_lib.studies import quiz, quiz_page

sys.path.insert(0, str(Path(__file__).resolve().parent))
import timing  # noqa: E402  (benchmarks/ is not a package)

DEFAULT_JSON = Path(__file__).resolve().parent / "results" / "real_quiz_leak.json"
Z = 3.5  # two-sided: a feature at chance stays inside the band with probability > 0.999


def page_data(html: str) -> dict[str, Any]:
    """The QUIZ object the page's script reads (images in page order, masks, ids)."""
    return json.loads(html.split("const QUIZ = ")[1].split(";\n")[0])


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


def byte_features(html: str, data: dict[str, Any]) -> pd.DataFrame:
    """One row per image, in page order: every property of its bytes on the page."""
    rows = []
    for position, image in enumerate(data["images"]):
        text, masked = image["png"], base64.b64decode(image["png"])
        counts = np.bincount(np.frombuffer(masked, dtype=np.uint8), minlength=256)
        p = counts[counts > 0] / len(masked)
        unmasked = quiz_page.mask(masked, image["mask"])  # what the browser decodes
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
            "decoded PNG length": len(unmasked), "PNG chunk count": len(chunks(unmasked)),
        })
    return pd.DataFrame(rows)


def chance_bound(n_real: int, n_fake: int) -> float:
    """|AUC - 0.5| that chance exceeds with probability about 5e-4 (the Mann-Whitney null)."""
    return Z * math.sqrt((n_real + n_fake + 1) / (12 * n_real * n_fake))


def leak_check(html: str, key: dict[str, Any]) -> dict[str, Any]:
    """Each feature's AUC for 'generated', the classifier's cross-validated AUC, the band."""
    data = page_data(html)
    if [i["id"] for i in data["images"]] != [i["id"] for i in key["images"]]:
        raise ValueError("the key's images are not the page's, in its order: another quiz?")
    fake = np.array([i["truth"] == "fake" for i in key["images"]])
    X = byte_features(html, data)
    bound = chance_bound(int((~fake).sum()), int(fake.sum()))
    aucs = {name: float(roc_auc_score(fake, X[name])) for name in X}
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    folds = StratifiedKFold(5, shuffle=True, random_state=0)
    scores = cross_val_predict(model, X.to_numpy(float), fake, cv=folds,
                               method="predict_proba")[:, 1]
    together = float(roc_auc_score(fake, scores))
    leaks = sorted(k for k, a in aucs.items() if abs(a - 0.5) >= bound)
    return {"n_real": int((~fake).sum()), "n_fake": int(fake.sum()), "chance_bound": bound,
            "auc": aucs, "auc_all_features_logistic_cv5": together,
            "distinct_values": {k: int(X[k].nunique()) for k in X},
            "leaking_features": leaks, "at_chance": not leaks and abs(together - 0.5) < bound}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", default="real-quick-s0", help="a trained run (its final snapshot)")
    p.add_argument("--n", type=int, default=400, help="images on the page, half real")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", nargs="?", const=str(DEFAULT_JSON), help="write the result here")
    args = p.parse_args()
    whole = timing.Stopwatch().start()
    run_dir = run_folder.run_path(args.run)
    with tempfile.TemporaryDirectory() as tmp:
        page = quiz.build_quiz(run_dir, Path(tmp) / "quiz", n=args.n, seed=args.seed)
        html = page.read_text(encoding="utf-8")
        key = quiz.read_key(page.parent / "key.json")
    result = leak_check(html, key)
    print(f"{'feature':<28} AUC (chance: 0.5 +- {result['chance_bound']:.3f})")
    for name, a in result["auc"].items():
        print(f"{name:<28} {a:.3f}{'  LEAK' if name in result['leaking_features'] else ''}")
    print(f"{'all, logistic (5-fold CV)':<28} {result['auc_all_features_logistic_cv5']:.3f}")
    print("at chance" if result["at_chance"] else "LEAKS")
    if args.json:
        storage.write_json(Path(args.json), storage.portable({
            "what": "byte-level features of the quiz page against its key (real vs generated)",
            "rule": f"every feature's and the classifier's |AUC - 0.5| < {Z} sd of the "
                    "Mann-Whitney null", **result,
            "run": run_dir.name, "snapshot": key["snapshot"],
            "quiz_seed": args.seed, "page_bytes": len(html.encode()),
            "data": key.get("data"), "git_commit": run_folder.git_commit(),
            "versions": run_folder.versions(),
            "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "seconds": round(whole.elapsed, 1),
            "command": " ".join(["benchmarks/quiz_leak.py", *sys.argv[1:]]),
        }))
    if not result["at_chance"]:
        sys.exit(1)


if __name__ == "__main__":
    main()
