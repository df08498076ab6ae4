"""The reader study: quiz building, the answer checks, and statistics on readers of known truth."""

from __future__ import annotations

import base64
import csv
import io
import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from scipy.stats import beta

from gan_lib import config, storage
from gan_lib.gan import models, sampling
from gan_lib.report import pipeline, reader_study, render
from gan_lib.studies import quiz, quiz_page, quiz_stats

N = 40  # images per quiz: 20 real, 20 fake


def blobs(n: int, seed: int) -> torch.Tensor:
    """n smooth 32 px uint8 images (stand-ins for test radiographs)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.nn.functional.avg_pool2d(torch.rand(n, 1, 32, 32, generator=g), 5, 1, 2)
    return (x * 255).to(torch.uint8)


def fake_real(run_config: dict, split: str) -> SimpleNamespace:
    """Stands in for metrics.load_real: 30 test images."""
    return SimpleNamespace(images=blobs(30, 11), description="test blobs (not X-rays)",
                           fingerprint=f"blobs-{split}", split=split)


@pytest.fixture
def tiny_run(home, monkeypatch):
    """A run folder with one tiny 32 px snapshot; real images from fake_real."""
    monkeypatch.setattr(quiz.scoring, "load_real", fake_real)
    run_dir = config.RUNS_DIR / "tiny"
    G = models.Generator(z_dim=8, g_channels=4, image_size=32)
    torch.manual_seed(0)
    G.apply(models.weights_init)
    sampling.save_snapshot(G, run_dir / "snapshots" / "G_iter_000004.pt", 4,
                           sampling=sampling.sampling_record(1, 4, 0))
    cfg = config.make_train_config("smoke", name="tiny", image_size=32, z_dim=8, g_channels=4)
    storage.write_json(run_dir / "config.json", {"config": cfg.to_dict(), "data": {
        "source": "blobs", "description": "test blobs (not X-rays)", "kind": "phantom",
        "fingerprint": "blobs-train", "n_images": 80, "is_synthetic": True}})
    return run_dir


@pytest.fixture
def built(tiny_run):
    """(page, key) of a 40-image quiz on the tiny run."""
    page = quiz.build_quiz("tiny", n=N, seed=3)
    return page, quiz.read_key(page.parent / "key.json")


def write_answers(path: Path, key: dict, reader: str, answers: list[str],
                  confidence: list[int] | int = 3, quiz_id: str | None = None) -> Path:
    """An answers CSV as the page writes it, answering image k+1 with answers[k]."""
    conf = [confidence] * len(answers) if isinstance(confidence, int) else confidence
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        w = csv.writer(f, lineterminator="\r\n")
        w.writerow(quiz.COLUMNS)
        for k, (a, c) in enumerate(zip(answers, conf, strict=True)):
            w.writerow([quiz_id or key["quiz_id"], reader, k + 1, a, c, 1000 + k])
    return path


def truth(key: dict) -> list[str]:
    return [i["truth"] for i in key["images"]]


def coin(key: dict, seed: int = 7) -> list[str]:
    return list(np.random.default_rng(seed).choice(["real", "fake"], size=key["n"]))


def exact_ci(k: int, n: int) -> tuple[float, float]:
    """Clopper-Pearson 95% interval from its beta-quantile definition (the reference)."""
    low = beta.ppf(0.025, k, n - k + 1) if k > 0 else 0.0
    high = beta.ppf(0.975, k + 1, n - k) if k < n else 1.0
    return low, high


def by_reader(table: pd.DataFrame) -> dict[str, pd.Series]:
    return {r["reader"]: r for _, r in table.iterrows()}


# --- the quiz page and its key ------------------------------------------------------------------


def page_data(page: Path) -> dict:
    """The QUIZ object of a quiz page."""
    return json.loads(page.read_text().split("const QUIZ = ")[1].split(";\n")[0])


def page_pngs(page: Path) -> list[bytes]:
    """The PNG of each image of a page, in page order, unmasked as the page's script does."""
    return [quiz_page.mask(base64.b64decode(i["png"]), i["mask"])
            for i in page_data(page)["images"]]


def test_quiz_holds_half_real_half_fake_shuffled_and_no_answer_key(built):
    page, key = built
    html = page.read_text()
    kinds = truth(key)
    assert kinds.count("real") == kinds.count("fake") == N // 2
    assert kinds != sorted(kinds)  # shuffled
    code = html.split("<script>")[1].replace(html.split("const QUIZ = ")[1].split(";\n")[0], "")
    assert "http" not in code and key["secret"] not in html  # the data is base64: any letters
    data = page_data(page)
    assert data["quiz_id"] == key["quiz_id"] and data["n"] == N
    assert [set(i) for i in data["images"]] == [{"id", "mask", "png"}] * N  # no truth, no index
    assert [i["id"] for i in data["images"]] == [i["id"] for i in key["images"]] == list(
        range(1, N + 1))  # ids are positions, and the order is the secret's
    assert (key["run"], key["snapshot"]["iteration"], key["seed"]) == ("tiny", 4, 3)
    assert key["data"]["fingerprint"] == "blobs-train" and key["data"]["real_split"] == "test"
    assert key["display"] == {"size": 256, "filter": "nearest"}  # 32 px x 8, both kinds


def test_the_page_shows_the_keys_images_and_their_bytes_do_not_tell_the_kind(built):
    """Every image is an uncompressed PNG of one length and chunk layout (compressed size
    would betray generated images), masked into noise of one length, and decodes to its key
    entry's image upscaled by nearest neighbour."""
    page, key = built
    data = page_data(page)
    assert len({len(i["png"]) for i in data["images"]}) == 1
    assert not any(i["png"].startswith(base64.b64encode(b"\x89PNG").decode()[:4])
                   for i in data["images"])  # masked: not a PNG until the script unmasks it
    pngs = page_pngs(page)
    assert len({len(p) for p in pngs}) == 1
    for png, entry in zip(pngs, key["images"], strict=True):
        shown = np.asarray(Image.open(io.BytesIO(png)))  # 256 x 256
        small = torch.from_numpy(shown[::8, ::8].copy())[None]
        assert shown.shape == (256, 256) and np.array_equal(shown, np.kron(small[0], np.ones(
            (8, 8), dtype=np.uint8)))
        assert quiz.hashlib.sha256(small.numpy().tobytes()).hexdigest()[:16] == entry["sha256"]


def test_the_order_comes_from_the_runs_secret_not_from_the_public_seed(built, tmp_path):
    page, key = built
    secret_file = config.RUNS_DIR / "tiny" / quiz.SECRET_FILE
    assert secret_file.read_text().strip() == key["secret"] and len(key["secret"]) == 32
    secret_file.write_text("another run's secret\n")
    other = quiz.read_key(quiz.build_quiz("tiny", tmp_path / "other", n=N, seed=3).parent
                          / "key.json")
    assert {i["sha256"] for i in other["images"]} == {i["sha256"] for i in key["images"]}
    assert truth(other) != truth(key) and other["quiz_id"] != key["quiz_id"]


def test_same_arguments_give_the_same_quiz_and_images_come_from_their_sources(built, tmp_path):
    page, key = built
    again = quiz.read_key(quiz.build_quiz("tiny", tmp_path / "again", n=N, seed=3).parent
                          / "key.json")
    assert again["quiz_id"] == key["quiz_id"]
    assert quiz.read_key(quiz.build_quiz("tiny", tmp_path / "other", n=N, seed=4).parent
                         / "key.json")["quiz_id"] != key["quiz_id"]
    fakes = sampling.generate(config.RUNS_DIR / "tiny" / "snapshots" / "G_iter_000004.pt",
                              N // 2, seed=3)
    real = fake_real({}, "test").images
    for img in key["images"]:  # each image is the one its key entry names
        pixels = (fakes if img["truth"] == "fake" else real)[img["index"]]
        assert quiz.hashlib.sha256(pixels.numpy().tobytes()).hexdigest()[:16] == img["sha256"]


def test_quiz_refuses_an_odd_n_or_more_reals_than_the_test_split(tiny_run):
    with pytest.raises(ValueError, match="n=7: expected an even number"):
        quiz.build_quiz("tiny", n=7)
    with pytest.raises(ValueError, match="needs 31 real test images.*has 30"):
        quiz.build_quiz("tiny", n=62)


# --- statistics on readers whose answers are known -----------------------------------------


def test_perfect_always_real_and_coin_readers(built, tmp_path):
    _, key = built
    files = [write_answers(tmp_path / "a" / "perfect.csv", key, "perfect", truth(key), 5),
             write_answers(tmp_path / "a" / "real.csv", key, "always-real", ["real"] * N, 2),
             write_answers(tmp_path / "a" / "coin.csv", key, "coin", coin(key), 1)]
    table = quiz_stats.study_table(quiz.read_answers(files, key))
    rows = by_reader(table)
    perfect, real, flip = rows["perfect"], rows["always-real"], rows["coin"]
    assert (perfect["accuracy"], perfect["sensitivity"], perfect["specificity"],
            perfect["AUC"]) == (1.0, 1.0, 1.0, 1.0)
    assert (perfect["95% CI low"], perfect["95% CI high"]) == pytest.approx(
        (0.025 ** (1 / N), 1.0))  # Clopper-Pearson at k = n
    assert perfect["p (vs 0.5)"] == pytest.approx(2 * 0.5**N) and perfect[
        "differs from chance"] == "yes"
    assert (real["accuracy"], real["sensitivity"], real["specificity"], real["AUC"]) == (
        0.5, 0.0, 1.0, 0.5)
    assert (real["95% CI low"], real["95% CI high"]) == pytest.approx(exact_ci(20, N))
    assert real["p (vs 0.5)"] == pytest.approx(1.0) and real["differs from chance"] == "no"
    k = sum(a == t for a, t in zip(coin(key), truth(key), strict=True))
    assert flip["correct"] == k and flip["accuracy"] == k / N
    assert (flip["95% CI low"], flip["95% CI high"]) == pytest.approx(exact_ci(k, N))
    pooled = rows["pooled"]
    assert pooled["n"] == 3 * N and pooled["correct"] == N + 20 + k
    assert pooled["Fleiss kappa"] == pytest.approx(fleiss_by_hand(
        [truth(key), ["real"] * N, coin(key)]))


def fleiss_by_hand(readers: list[list[str]]) -> float:
    """Fleiss (1971) from its definition: the reference the library call is checked against."""
    m, n = len(readers), len(readers[0])
    fake = np.array([sum(r[i] == "fake" for r in readers) for i in range(n)])
    counts = np.stack([m - fake, fake], axis=1)
    p_i = ((counts * (counts - 1)).sum(axis=1)) / (m * (m - 1))
    p_j = counts.sum(axis=0) / (n * m)
    return (p_i.mean() - (p_j**2).sum()) / (1 - (p_j**2).sum())


def test_fleiss_kappa_of_known_pairs(built, tmp_path):
    _, key = built
    t = truth(key)

    def kappa(*readers):
        files = [write_answers(tmp_path / f"{name}.csv", key, name, answers)
                 for name, answers in readers]
        return quiz_stats.fleiss_kappa(quiz.read_answers(files, key))

    assert kappa(("a", t), ("b", t)) == (1.0, N, 2)  # two perfect readers agree completely
    # perfect vs always-real: agree on the 20 reals, disagree on the 20 fakes:
    # P = 0.5, P_e = 0.75^2 + 0.25^2 = 0.625, kappa = (0.5 - 0.625) / 0.375 = -1/3
    assert kappa(("c", t), ("d", ["real"] * N))[0] == pytest.approx(-1 / 3)
    assert np.isnan(kappa(("e", ["real"] * N), ("f", ["real"] * N))[0])  # 0/0: undefined
    coins = kappa(("g", coin(key, 1)), ("h", coin(key, 2)))[0]
    assert coins == pytest.approx(fleiss_by_hand([coin(key, 1), coin(key, 2)]))
    assert abs(coins) < 0.5  # independent coins agree about as often as chance says


def test_auc_uses_the_confidence(built, tmp_path):
    """Always 'fake', but surer on the fakes: accuracy is chance, the AUC is perfect."""
    _, key = built
    conf = [5 if x == "fake" else 1 for x in truth(key)]
    path = write_answers(tmp_path / "sure.csv", key, "sure", ["fake"] * N, conf)
    row = quiz_stats.study_table(quiz.read_answers([path], key)).iloc[0]
    assert (row["accuracy"], row["AUC"], row["sensitivity"], row["specificity"]) == (
        0.5, 1.0, 1.0, 0.0)


# --- clear errors --------------------------------------------------------------------------------


def test_a_csv_of_another_quiz_is_refused(built, tmp_path):
    _, key = built
    path = write_answers(tmp_path / "x.csv", key, "r", truth(key), quiz_id="0123456789abcdef")
    with pytest.raises(ValueError, match=r"x.csv line 2: answers of quiz '0123456789abcdef', "
                                         r"but the key is quiz"):
        quiz.read_answers([path], key)


def test_a_wrong_or_edited_key_is_refused(built, tmp_path):
    page, key = built
    edited = {**key, "images": [{**i, "truth": "fake"} for i in key["images"]]}
    storage.write_json(tmp_path / "edited.json", edited)
    with pytest.raises(ValueError, match="not an intact quiz key"):
        quiz.read_key(tmp_path / "edited.json")
    storage.write_json(tmp_path / "other.json", {"some": "json"})
    with pytest.raises(ValueError, match="is not a quiz key"):
        quiz.read_key(tmp_path / "other.json")
    with pytest.raises(FileNotFoundError, match="build the quiz first"):
        quiz.read_key(tmp_path / "missing.json")


def test_duplicate_and_missing_answers_are_refused(built, tmp_path):
    _, key = built
    a = write_answers(tmp_path / "a.csv", key, "sam", truth(key))
    b = write_answers(tmp_path / "b.csv", key, "sam", truth(key))
    with pytest.raises(ValueError, match=r"reader 'sam' answered image 1 twice "
                                         r"\(a.csv line 2 and b.csv line 2\)"):
        quiz.read_answers([a, b], key)
    with pytest.raises(ValueError, match=r"given twice: \['.*a.csv'\]"):
        quiz.read_answers([a, a], key)
    short = write_answers(tmp_path / "short.csv", key, "kim", truth(key)[:-2])
    with pytest.raises(ValueError, match=r"'kim' did not answer 2 of 40 images \(ids \[39, 40\]"):
        quiz.read_answers([short], key)


@pytest.mark.parametrize("bad, message", [
    ({"answer": "maybe"}, "answer real|fake"), ({"confidence": "6"}, "confidence 1..5"),
    ({"image": "41"}, "image 1..40"), ({"ms": "soon"}, "must be integers"),
])
def test_malformed_rows_name_the_file_and_line(built, tmp_path, bad, message):
    _, key = built
    path = write_answers(tmp_path / "m.csv", key, "r", truth(key))
    rows = list(csv.DictReader(path.read_text().splitlines()))
    rows[4].update(bad)
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, quiz.COLUMNS)
        w.writeheader()
        w.writerows(rows)
    with pytest.raises(ValueError, match=f"m.csv line 6: .*{message}"):
        quiz.read_answers([path], key)


def test_a_csv_with_other_columns_is_refused(built, tmp_path):
    _, key = built
    (tmp_path / "o.csv").write_text("name,score\nx,1\n")
    with pytest.raises(ValueError, match="not an answers file of this quiz page"):
        quiz.read_answers([tmp_path / "o.csv"], key)


# --- outputs: table, figure, report section ------------------------------------------------


def test_score_answers_writes_table_and_figure_and_the_report_section(built, home):
    page, key = built
    answers = page.parent / "answers"
    write_answers(answers / "p.csv", key, "perfect", truth(key), 5)
    write_answers(answers / "c.csv", key, "coin", coin(key), 2)
    result = reader_study.score_answers(quiz.answer_files())  # the key beside answers/
    md, png = result["files"]
    assert md == home / "reports" / "tables" / "reader_study.md"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    saved = pd.read_csv(md.with_suffix(".csv"))
    assert saved["reader"].tolist() == ["coin", "perfect", "pooled"]  # files in sorted order
    assert key["quiz_id"] in md.read_text() and "Clopper-Pearson" in md.read_text()

    ctx_md = _render(home)
    assert "## Reader study: real or fake?" in ctx_md and "reader_study_figure.png" in ctx_md


def test_report_has_no_reader_section_without_answers(home):
    assert "Reader study" not in _render(home)


def minimal_run(home: Path) -> Path:
    """A run folder with only config.json (as tests/test_package.py writes): enough to render."""
    run_dir = home / "runs" / "r"
    cfg = config.make_train_config("smoke", name="r")
    storage.write_json(run_dir / "config.json", {"config": cfg.to_dict(), "data": {
        "source": "phantom", "description": "synthetic phantom data", "kind": "phantom",
        "fingerprint": "f", "n_images": 256, "is_synthetic": True}, "versions": {"torch": "x"},
        "git_commit": None, "device": "cpu", "precision": "fp32"})
    return run_dir


def _render(home: Path) -> str:
    """report.md rendered from a minimal run folder."""
    render.render_report(home / "reports", minimal_run(home), "smoke", [], make_pdf=False)
    return (home / "reports" / "report.md").read_text()


def test_a_new_quiz_never_orphans_collected_answers(built, tmp_path):
    page, key = built
    staged = quiz.build_quiz("tiny", tmp_path / "staged", n=N, seed=9).parent
    write_answers(page.parent / "answers" / "a.csv", key, "a", truth(key))
    note = quiz.install_quiz(staged, page.parent)
    assert note.startswith("kept") and quiz.read_key(page.parent / "key.json") == key
    with pytest.raises(FileExistsError, match=r"holds quiz .* with answers.*would orphan them"):
        quiz.build_quiz("tiny", page.parent, n=N, seed=9)
    assert quiz.build_quiz("tiny", page.parent, n=N, seed=3) == page  # the same quiz: fine
    same = quiz.build_quiz("tiny", tmp_path / "same", n=N, seed=3).parent
    assert quiz.install_quiz(same, page.parent).startswith(f"quiz {key['quiz_id']}")
    assert (page.parent / "answers" / "a.csv").exists()


def test_cli_quiz_score_prints_the_table_and_errors_plainly(built, home, capsys):
    from gan_lib.__main__ import main

    page, key = built
    good = write_answers(home / "g.csv", key, "g", truth(key))
    cmd = ["quiz-score", "--key", str(page.parent / "key.json")]
    main([*cmd, str(good)])
    assert "pooled" in capsys.readouterr().out
    assert (home / "reports" / "tables" / "reader_study.csv").exists()
    bad = write_answers(home / "b.csv", key, "b", truth(key), quiz_id="feedfeedfeedfeed")
    with pytest.raises(SystemExit) as stop:
        main([*cmd, str(bad)])
    assert stop.value.code == 2
    assert capsys.readouterr().err.startswith("error: b.csv line 2: answers of quiz")
    assert json.loads((page.parent / "key.json").read_text())["quiz_id"] == key["quiz_id"]


def test_report_checks_answers_before_any_notebook_runs(built, home):
    page, key = built
    assert pipeline.reader_answers(home / "reports") == []  # none: no reader study
    write_answers(page.parent / "answers" / "x.csv", key, "x", truth(key), quiz_id="f" * 16)
    with pytest.raises(ValueError, match="answers of quiz 'ffffffffffffffff'"):
        pipeline.reader_answers(home / "reports")
    with pytest.raises(ValueError, match="answers of quiz 'ffffffffffffffff'"):
        pipeline.build_report(profile="smoke", run="nothing-trained")
    assert not (home / "runs" / "nothing-trained").exists()
