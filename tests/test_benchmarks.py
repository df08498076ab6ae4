"""The small-data benchmark's arithmetic: each option against the baseline on the same images.

benchmarks/small_data.py's training and scoring are gan_lib's own (tested elsewhere); what it
adds is the comparison the README's recommendation rests on, tested here on constructed rows.
Fast and offline: nothing is trained.
"""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import pytest

from tests.readme_numbers import cell_numbers, rounds_to

PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "small_data.py"


@pytest.fixture(scope="module")
def small_data():
    spec = importlib.util.spec_from_file_location("small_data", PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def numeric_leaves(obj) -> list[float]:
    """Every finite int/float in a JSON document, at any depth (booleans are not numbers)."""
    if isinstance(obj, bool):
        return []
    if isinstance(obj, int | float):
        return [obj] if math.isfinite(obj) else []
    if isinstance(obj, dict):
        obj = list(obj.values())
    if isinstance(obj, list):
        return [x for item in obj for x in numeric_leaves(item)]
    return []


def row(setting: str, subset: int | None, fids: dict[int, float], copy: float = 0.01,
        c_t: float = -2.0) -> dict:
    scores = [{"metric": "fid", "kind": "floor", "iteration": None, "value": 3.9, "std": None,
               "n_fake": 1024, "n_real": 2048, "compared": "real train, held out vs reference",
               "same_n": True},
              {"metric": "fid", "kind": "floor", "iteration": None, "value": 5.6, "std": None,
               "n_fake": 624, "n_real": 2048, "compared": "real test vs reference",
               "same_n": False}]
    for it, v in fids.items():
        scores += [{"metric": "fid", "kind": "generated", "iteration": it, "value": v},
                   {"metric": "kid", "kind": "generated", "iteration": it, "value": v / 1000,
                    "std": 0.002}]
    return {"setting": setting, "subset": subset, "scores": scores,
            "copy_rate": {"feature (cosine)": copy, "pixel (RMS)": copy / 2},
            "C_T": {"C_T": c_t}}


def test_compare_takes_the_baseline_of_the_same_subset(small_data):
    rows = [row("baseline", None, {200: 300.0, 600: 100.0}),
            row("diffaug", None, {200: 250.0, 600: 90.0}),
            row("baseline", 1000, {200: 320.0, 600: 150.0}),
            row("diffaug", 1000, {200: 330.0, 600: 120.0})]
    got = {(c["setting"], c["subset"]): c for c in small_data.compare(rows)}
    full, sub = got["diffaug", None], got["diffaug", 1000]
    assert full["fid_change_final"] == -10.0 and full["fid_change_final_percent"] == -10.0
    assert full["baseline_fid_final"] == 100.0 and full["better_at_every_snapshot"]
    assert sub["fid_change_final"] == -30.0 and sub["fid_change_final_percent"] == -20.0
    assert sub["fid_change_by_iteration"] == {"200": 10.0, "600": -30.0}
    assert not sub["better_at_every_snapshot"]  # worse at 200: no effect shown
    assert got["baseline", 1000]["fid_change_final"] == 0.0


def test_a_repeated_baseline_sets_the_run_to_run_bar(small_data):
    rows = [row("baseline", None, {200: 300.0, 600: 100.0}),
            row(small_data.REPEATED, None, {200: 310.0, 600: 92.0}),  # 8 apart at the end
            row("diffaug", None, {200: 250.0, 600: 95.0}),  # 5 better: within run-to-run
            row("ema", None, {200: 250.0, 600: 80.0}),  # 20 better: beyond it
            row("baseline", 1000, {600: 150.0}), row("ema", 1000, {600: 120.0})]
    got = {(c["setting"], c["subset"]): c for c in small_data.compare(rows)}
    assert got["diffaug", None]["run_to_run_final"] == 8.0
    assert got["diffaug", None]["better_at_every_snapshot"]
    assert got["diffaug", None]["beyond_run_to_run"] is False
    assert got["ema", None]["beyond_run_to_run"] is True
    assert got["ema", 1000]["beyond_run_to_run"] is None  # no repeat of the subset baseline
    assert got[small_data.REPEATED, None]["beyond_run_to_run"] is None
    lines = small_data.comparison_table(small_data.compare(rows)).splitlines()
    assert "| yes | no |" in lines[3] and "| yes | yes |" in lines[4]
    assert "(is the run-to-run)" in lines[2] and "not measured" in lines[5]


def test_compare_skips_runs_without_a_baseline(small_data):
    assert small_data.compare([row("ema", 500, {600: 80.0})]) == []


def test_tables_print_only_numbers_that_are_in_the_result(small_data):
    """Every numeric cell of both tables is a value of what --json writes, so the README can
    bind it to its field (tests/readme_numbers.py)."""
    rows = [row("baseline", None, {200: 300.04, 600: 100.06}, copy=0.0123, c_t=-1.234),
            row("both", None, {200: 280.0, 600: 95.55})]
    cost = {"baseline": {"images_per_second": 40.0, "vs_baseline": 1.0},
            "both": {"images_per_second": 33.3, "vs_baseline": 0.833}}
    comparisons = small_data.compare(rows)
    leaves = numeric_leaves({"rows": rows, "comparisons": comparisons, "step_cost": cost})
    lines = [*small_data.table(rows, cost).splitlines()[2:],
             *small_data.comparison_table(comparisons).splitlines()[2:]]
    assert len(lines) == 3  # two runs, one comparison (the baseline is not compared with itself)
    for line in lines:
        for cell in line.strip("|").split("|"):
            for number in cell_numbers(cell):
                assert any(rounds_to(number, v) for v in leaves), (cell, line)
    assert "| both | all | 280.0 | 95.5 |" in small_data.table(rows, cost)
    assert "| 95.5 | 100.1 | -4.5 | -4.5% | yes |" in small_data.comparison_table(comparisons)


def test_a_setting_not_timed_says_so(small_data):
    rows = [row("baseline", None, {600: 100.0})]
    assert small_data.table(rows, {}).splitlines()[2].endswith("| not timed | not timed |")


@pytest.fixture(scope="module")
def real_data():
    path = PATH.parent / "real_data.py"
    spec = importlib.util.spec_from_file_location("real_data", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_paired_difference_follows_the_declared_rule(real_data):
    out = real_data.paired_difference([3.0, 4.0, 5.0], [1.0, 1.0, 1.0])
    assert out["per_seed"] == [2.0, 3.0, 4.0] and out["mean"] == 3.0 and out["sd"] == 1.0
    # t(0.975, 2) = 4.3027: 3 +/- 4.3027 / sqrt(3)
    assert out["ci95"] == pytest.approx([3 - 2.4842, 3 + 2.4842], abs=1e-3)
    assert out["verdict"].startswith("change")
    noisy = real_data.paired_difference([1.0, 2.0, 3.0], [2.0, 1.0, 3.0])
    assert noisy["verdict"].startswith("no change") and noisy["ci95"][0] < 0 < noisy["ci95"][1]


def test_summary_is_mean_and_sd_over_seeds(real_data):
    def one(fid, floor, precision):
        return {"fid": {"600": fid}, "kid": {"600": fid / 1000},
                "floors": {"train": {"fid": floor, "kid": 0.0}},
                "audit": {"precision": precision, "iteration": 600}}

    out = real_data.summary([one(300.0, 12.0, 0.1), one(310.0, 12.0, 0.3), one(320.0, 12.0, 0.2)])
    assert out["fid"]["600"] == {"mean": 310.0, "sd": 10.0, "n_seeds": 3}
    assert out["floors"]["train"]["fid"]["sd"] == 0.0
    assert out["audit"]["precision"]["mean"] == pytest.approx(0.2)
    assert "iteration" not in out["audit"]  # settings are not averaged
