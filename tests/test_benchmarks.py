"""The benchmarks' own logic, on constructed inputs: nothing is trained or timed.

benchmarks/small_data.py's training and scoring are gan_lib's own (tested elsewhere); what it
adds is the comparison of each option with the baseline on the same images, tested here on
constructed rows. benchmarks/train_throughput.py's tutorial reference must read the same
in-memory uint8 tensor as gan_lib (no decoding in its timed loop): its batch function is
tested here, not its timing. Fast and offline.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import math
import re
import sys
from pathlib import Path

import pytest

from tests.readme_numbers import check_readme

PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "small_data.py"


def bench_module(name: str):
    """benchmarks/<name>.py imported as a module (benchmarks/ is not a package)."""
    spec = importlib.util.spec_from_file_location(name, PATH.parent / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def small_data():
    return bench_module("small_data")


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


def row(setting: str, subset: int | None, fids: dict[int, float], seed: int = 0,
        copy: float = 0.01, c_t: float = -2.0) -> dict:
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
    return {"setting": setting, "subset": subset, "seed": seed, "scores": scores,
            "copy_rate": {"feature (cosine)": copy, "pixel (RMS)": copy / 2},
            "C_T": {"C_T": c_t}}


def seeds(setting, subset, finals, first=300.0):
    return [row(setting, subset, {200: first, 600: f}, seed=k) for k, f in enumerate(finals)]


def test_compare_pairs_each_option_with_the_baseline_of_its_seed_and_subset(small_data):
    rows = [*seeds("baseline", None, [100.0, 120.0, 90.0]),
            *reversed(seeds("diffaug", None, [91.0, 109.0, 80.5])),  # 9, 11, 9.5 lower
            *seeds("baseline", 1000, [150.0, 160.0, 140.0]),
            *seeds("diffaug", 1000, [140.0, 165.0, 139.0], first=290.0)]  # -10, +5, -1
    got = {c["id"]: c for c in small_data.compare(rows)}
    assert set(got) == {"diffaug-all", "diffaug-1000"}  # no baseline-vs-itself
    full, sub = got["diffaug-all"], got["diffaug-1000"]
    assert full["final"]["per_seed"] == [-9.0, -11.0, -9.5] and full["seeds"] == [0, 1, 2]
    assert full["final"]["mean"] == pytest.approx(-9.8333, abs=1e-4)
    assert full["verdict"] == "lower FID" and full["final"]["ci95"][1] < 0
    assert sub["final"]["per_seed"] == [-10.0, 5.0, -1.0]
    assert sub["verdict"] == "no change detected"  # the interval includes 0
    assert sub["by_iteration"]["200"]["per_seed"] == [-10.0, -10.0, -10.0]  # shown, not judged
    assert full["pairing"].startswith("two trainings")


def test_an_option_worse_in_every_seed_is_called_higher(small_data):
    rows = [*seeds("baseline", None, [100.0, 120.0, 90.0]),
            *seeds("ema", None, [110.0, 131.0, 99.0])]
    (c,) = small_data.compare(rows)
    assert c["verdict"] == "higher FID" and c["pairing"].startswith("within one training")


def test_retime_replaces_only_the_step_cost_and_says_when_and_under_what_load(
        small_data, tmp_path, monkeypatch):
    """--retime times every setting's step again (here: the smoke profile, one short round)
    into a written JSON and leaves the rest of it as it was."""
    path = tmp_path / "real_small_data.json"
    path.write_text(json.dumps({"arms": [{"id": "kept"}], "step_cost": {"baseline": "stale"}}))
    monkeypatch.setattr(small_data, "step_cost",
                        functools.partial(small_data.step_cost, rounds=1, steps=1))
    monkeypatch.setattr(sys, "argv", ["small_data.py", "--profile", "smoke", "--retime",
                                      str(path)])
    small_data.main()
    got = json.loads(path.read_text())
    assert got["arms"] == [{"id": "kept"}]
    cost = got["step_cost"]
    assert set(cost) == {*small_data.SETTINGS, "timing"} and cost["baseline"]["vs_baseline"] == 1.0
    assert all(cost[s]["images_per_second"] > 0 for s in small_data.SETTINGS)
    assert len(cost["timing"]["load_average_at_start"]) == 3 and cost["timing"]["rounds"] == 1


def test_compare_uses_only_seeds_that_both_arms_have(small_data):
    rows = [*seeds("baseline", None, [100.0, 120.0]), *seeds("ema", None, [90.0, 110.0, 70.0])]
    (c,) = small_data.compare(rows)
    assert c["seeds"] == [0, 1] and c["final"]["n_seeds"] == 2
    assert small_data.compare([row("ema", 500, {600: 80.0})]) == []


def test_arms_are_mean_and_sd_over_seeds(small_data):
    (arm,) = small_data.arms(seeds("both", 1000, [90.0, 100.0, 110.0]))
    assert arm["id"] == "both-1000" and arm["seeds"] == [0, 1, 2]
    assert arm["fid"]["600"] == {"mean": 100.0, "sd": 10.0, "n_seeds": 3}
    assert arm["fid_final_per_seed"] == [90.0, 100.0, 110.0] and arm["floor_fid"] == 3.9


def check_bound_markdown(text: str, doc) -> int:
    """Check ``text`` (tables and marked paragraphs, all bound to one result file) against
    ``doc`` exactly as tests/readme_numbers.py checks the README; the numbers checked."""
    import json
    import re
    import tempfile

    name = re.search(r"<!--\s*numbers:\s*(benchmarks/results/\S+\.json)", text).group(1)
    with tempfile.TemporaryDirectory() as root:
        (Path(root) / name).parent.mkdir(parents=True)
        (Path(root) / name).write_text(json.dumps(doc), encoding="utf-8")
        checked, problems = check_readme(text, Path(root))
    assert not problems, problems
    return checked


def test_markdown_tables_are_bound_cell_by_cell_and_a_swap_fails(small_data):
    rows = [*seeds("baseline", None, [100.04, 120.0, 90.0]),
            *seeds("both", None, [95.55, 101.0, 88.0])]
    result = {"arms": small_data.arms(rows), "comparisons": small_data.compare(rows),
              "step_cost": {"baseline": {"vs_baseline": 1.0}, "both": {"vs_baseline": 0.833}}}
    text = small_data.markdown(result)
    assert check_bound_markdown(text, result) == 2 * 7 + 6  # 2 arms x 7; 3 seeds, mean, interval
    assert "| both | all | 300.0 ± 0.0 | 94.9 ± 6.5 |" in text
    # the table of these numbers, checked against a result whose two columns are swapped
    swapped = [a | {"fid": {"200": a["fid"]["600"], "600": a["fid"]["200"]}}
               for a in result["arms"]]
    with pytest.raises(AssertionError):
        check_bound_markdown(text, result | {"arms": swapped})


def test_a_setting_not_timed_says_so(small_data):
    rows = seeds("baseline", None, [100.0, 110.0])
    text = small_data.markdown({"arms": small_data.arms(rows), "comparisons": [],
                                "step_cost": None})
    assert "| not timed |" in text


@pytest.fixture(scope="module")
def real_data():
    return bench_module("real_data")


@pytest.fixture(scope="module")
def over_seeds():
    return bench_module("over_seeds")


def test_paired_difference_follows_the_declared_rule(over_seeds):
    out = over_seeds.paired_difference([3.0, 4.0, 5.0], [1.0, 1.0, 1.0])
    assert out["per_seed"] == [2.0, 3.0, 4.0] and out["mean"] == 3.0 and out["sd"] == 1.0
    # t(0.975, 2) = 4.3027: 3 +/- 4.3027 / sqrt(3)
    assert out["ci95"] == pytest.approx([3 - 2.4842, 3 + 2.4842], abs=1e-3)
    assert out["verdict"].startswith("change")
    noisy = over_seeds.paired_difference([1.0, 2.0, 3.0], [2.0, 1.0, 3.0])
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


def test_precision_quality_table_is_bound_and_paired_by_seed(over_seeds):
    pq = bench_module("precision_quality")
    fids = {"fp32": [400.0, 380.0, 390.0], "bf16": [395.0, 381.0, 392.0]}
    rows = {p: [{"seed": k, "fid": {"200": 500.0 + k, "600": v}} for k, v in enumerate(vs)]
            for p, vs in fids.items()}
    paired = pq.paired(rows)
    assert paired["600"]["per_seed"] == [-5.0, 1.0, 2.0]  # bf16 - fp32, seed by seed
    summary = {p: {"fid": {it: over_seeds.mean_sd([r["fid"][it] for r in rs])
                           for it in ("200", "600")}} for p, rs in rows.items()}
    result = {"seeds": [0, 1, 2], "rows": rows, "paired": paired, "summary": summary}
    text = pq.markdown(result)
    assert check_bound_markdown(text, result) == 3 * 7 + 6 + 4  # the table, 2 intervals
    assert "| 0 | 500.0 | 400.0 | 500.0 | 395.0 | 0.0 | -5.0 |" in text
    assert "at 600: no change detected" in text


@pytest.fixture(scope="module")
def train_throughput():
    return bench_module("train_throughput")


def test_the_tutorial_reference_takes_its_batches_from_the_in_memory_tensor(train_throughput):
    """The reference gets gan_lib's advantage (the uint8 tensor, batches by index) and keeps
    the tutorial's conversion: ToTensor + Normalize((0.5,), (0.5,)) of each indexed image."""
    import torch
    import torchvision.transforms as T

    images = torch.randint(0, 256, (10, 1, 4, 4), dtype=torch.uint8)
    loader = train_throughput.tutorial_batches(images, 4, torch.Generator().manual_seed(0))
    tutorial = T.Compose([T.ToTensor(), T.Normalize((0.5,), (0.5,))])
    epochs = [[next(loader) for _ in range(2)] for _ in range(2)]  # drop_last: 2 batches of 4
    for epoch in epochs:
        seen = []
        for batch in epoch:
            assert batch.shape == (4, 1, 4, 4) and batch.dtype == torch.float32
            for x in batch:  # each row is one stored image, converted the tutorial's way
                k = next(i for i in range(10)
                         if torch.allclose(x, tutorial(images[i, 0].numpy()), atol=1e-6))
                seen.append(k)
        assert len(set(seen)) == 8  # no image twice within an epoch
    assert epochs[0][0].tolist() != epochs[1][0].tolist()  # a fresh order each epoch


def test_the_json_says_every_contestant_reads_the_same_tensor(train_throughput):
    import argparse

    import torch

    args = argparse.Namespace(batch_size=8, channels_last=True, compile=False)
    images = torch.zeros(20, 1, 8, 8, dtype=torch.uint8)
    rec = train_throughput.contestants_record(args, ["fp32", "bf16"], images, torch.device("cpu"))
    assert set(rec) == {"reference fp32", "gan_lib fp32", "gan_lib bf16"}
    assert len({c["data"] for c in rec.values()}) == 1 and "[20, 1, 8, 8]" in rec["gan_lib fp32"]["data"]
    assert not any(c["decoding or DataLoader workers in the timed loop"] for c in rec.values())
    assert rec["reference fp32"]["precision"] == "fp32" and "BCELoss" in rec["reference fp32"]["loss"]


@pytest.fixture(scope="module")
def score_throughput():
    return bench_module("score_throughput")


def test_scoring_benchmark_defaults_to_the_quick_profiles_sizes(score_throughput):
    from gan_lib import config

    quick = config.make_score_config("quick")
    args = score_throughput.parse_args([])
    assert (args.n_fake, args.n_real, args.batch_size) == (quick.n_fake, quick.n_real,
                                                           quick.batch_size)
    assert (args.n_fake, args.n_real) == (1024, 2048) and args.source == "phantom"
    small = score_throughput.parse_args(["--n-fake", "16", "--n-real", "32"])
    assert (small.n_fake, small.n_real) == (16, 32)  # smoke checks stay possible


def test_both_scorers_run_in_this_process_unless_asked(score_throughput):
    rec = score_throughput.contestants_record(score_throughput.parse_args([]))
    assert "no worker processes" in rec["torch-fidelity"]["loader"]
    assert rec["torch-fidelity"]["cache"].startswith("part 1: on")
    assert rec["torch-fidelity"]["threads"] == rec["gan_lib"]["threads"]
    assert "in this process's memory" in rec["gan_lib"]["images"]
    workers = score_throughput.contestants_record(
        score_throughput.parse_args(["--fidelity-workers", "--with-no-cache"]))
    assert "save_cpu_ram=False" in workers["torch-fidelity"]["loader"]
    assert "off (--with-no-cache)" in workers["torch-fidelity"]["cache"]


def test_the_extraction_bound_is_the_committed_measurements():
    """metrics/calibrate.py refuses a variant whose features deviate from fp32's more than
    FEATURE_BOUND: the largest deviation of a variant that met the FID rule in
    benchmarks/results/extraction_precision.json (real chest X-rays), below that of every
    variant that failed it; its candidates are the file's measured precisions and foldings."""
    from gan_lib.metrics import calibrate

    result = json.loads((PATH.parent / "results" / "extraction_precision.json").read_text("utf-8"))
    measured = {k: r for k, r in result["rows"].items() if r["meets_rule"] is not None}
    passed = [r["feature_relative_error"] for r in measured.values() if r["meets_rule"]]
    failed = [r["feature_relative_error"] for r in measured.values() if not r["meets_rule"]]
    assert max(passed) == calibrate.FEATURE_BOUND and failed and max(passed) < min(failed)
    assert "extraction_precision.json" in calibrate.BOUND_SOURCE
    rule = result["rule"]
    chosen = measured[result["default"]]  # the file's own verdict meets its rule
    assert chosen["max_abs_relative_change_at_snapshots"] <= rule[
        "max_relative_fid_change_at_snapshots"]
    assert chosen["abs_change_at_floor"] <= rule["max_abs_fid_change_at_floor"]
    rows = {(r["precision"], r["fold_bn"]) for r in measured.values() if not r["compiled"]}
    assert {(v.precision, v.fold_bn) for v in calibrate.EAGER} <= rows


def test_bf16_training_is_allowed_as_precision_quality_json_says():
    """gan/calibrate.py may choose bf16 training only where the committed paired FID evidence
    (bf16 - fp32 per seed, precision_quality.json's paired.<iteration>) shows no iteration at
    which bf16 is worse by the paired rule: the constant follows the file."""
    from gan_lib.gan import calibrate

    result = json.loads((PATH.parent / "results" / "precision_quality.json").read_text("utf-8"))
    worse = [it for it, p in result["paired"].items() if p["ci95"][0] > 0]
    assert result["paired"] and (not worse) == calibrate.BF16_ALLOWED
    assert "precision_quality.json" in calibrate.BF16_EVIDENCE


# --- benchmarks/timing.py: the one way the scripts time code ------------------------------------


class FakeClock:
    """time.perf_counter / process_time that advance only when a contestant says so."""

    def __init__(self):
        self.now = 0.0

    def perf_counter(self):
        return self.now

    def process_time(self):
        return self.now / 2


def test_interleaved_rounds_time_each_contestant_alone_in_a_fixed_or_alternating_order(
        monkeypatch):
    timing = bench_module("timing")
    clock = FakeClock()
    monkeypatch.setattr(timing, "time", clock)
    calls = []

    def contestant(name, seconds):
        def run():
            calls.append(name)
            clock.now += seconds
            return name.upper()
        return run

    def prep():
        calls.append("prep")
        clock.now += 100.0  # untimed: must not count

    rounds = timing.interleaved({"a": contestant("a", 2.0), "b": contestant("b", 1.0)}, 3,
                                untimed={"b": prep})
    assert calls == ["a", "b"] + ["a", "prep", "b"] * 3  # one warm-up call each, untimed
    assert rounds.seconds == {"a": [2.0, 2.0, 2.0], "b": [1.0, 1.0, 1.0]}
    assert rounds.results["b"] == ["B", "B", "B"]
    assert rounds.rate("a", work=64) == 32.0 and rounds.ratio("b", "a") == 2.0
    calls.clear()
    timing.interleaved({"a": contestant("a", 1.0), "b": contestant("b", 1.0)}, 3, warmup=0,
                       alternate=True)
    assert calls == ["a", "b", "b", "a", "a", "b"]
    with pytest.raises(ValueError, match="rounds=0"):
        timing.interleaved({"a": contestant("a", 1.0)}, 0)


def test_rates_use_the_median_round_or_the_best(monkeypatch):
    timing = bench_module("timing")
    rounds = timing.Rounds({"a": [4.0, 1.0, 2.0, 8.0]})
    assert rounds.rate("a", 8.0) == 8.0 / 3.0  # median of 1, 2, 4, 8 is 3
    assert rounds.rate("a", 8.0, best=True) == 8.0
    assert rounds.rates("a", 8.0) == [2.0, 8.0, 4.0, 1.0]
    clock = FakeClock()
    monkeypatch.setattr(timing, "time", clock)
    with timing.Stopwatch() as watch:
        clock.now += 3.0
    assert (watch.seconds, watch.cpu_seconds) == (3.0, 1.5)


def test_every_benchmark_script_times_through_the_helper():
    """No script reads a clock or the load average itself: benchmarks/timing.py does."""
    own = re.compile(r"time\.(perf_counter|process_time|time|monotonic)\(|os\.getloadavg\(")
    found = [f"{p.name}:{i}" for p in sorted(PATH.parent.glob("*.py")) if p.name != "timing.py"
             for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1)
             if own.search(line)]
    assert not found, f"time these through benchmarks/timing.py: {found}"


def cpu_class_result(name: str, bf16_train: float | None, chosen: str) -> dict:
    """One class of a cpu_classes.json as cpu_class.py writes it (constructed numbers)."""
    speeds = {"fp32": 7.1, "fp32-folded": 8.0, "bf16": 13.7, "bf16-folded": 14.2,
              "fastmath-folded": 8.2, "bf16-compiled": 21.5}
    return {"caps": {"ONEDNN_MAX_CPU_ISA": name.upper(), "ATEN_CPU_CAPABILITY": "avx512"},
            "onednn": {"isa": f"Intel {name}"}, "conv_bf16_over_fp32": 1.97,
            "training": {"chosen": "bf16" if bf16_train else "fp32", "seconds": 6.2,
                         "img_per_s": {"fp32": 42.6, "bf16": bf16_train}},
            "extraction": {"chosen": chosen, "seconds": 48.9,
                           "candidates": {k: {"img_per_s": v} for k, v in speeds.items()}},
            "floor": {"fid_change": -0.0184}}


def test_cpu_classes_tables_are_bound_cell_by_cell_and_a_swap_fails():
    cc = bench_module("cpu_classes")
    result = {"classes": {"avx512_bf16": cpu_class_result("avx512_bf16", 76.4, "bf16-compiled"),
                          "avx2": cpu_class_result("avx2", None, "fp32-folded")}}
    text = cc.markdown(result)
    # per class: conv ratio, training img/s (one not timed), calibration seconds; 6 extraction
    # speeds (fp32-folded-compiled not timed) and the FID change
    assert check_bound_markdown(text, result) == (4 + 3) + 2 * 7
    assert "| avx2 | 7.1 | 8.0 | 13.7 | 14.2 | 8.2 | not timed | 21.5 | fp32-folded | -0.018 |" \
        in text and "| not timed | fp32 | 55 |" in text
    swapped = json.loads(json.dumps(result))
    e = swapped["classes"]["avx2"]["extraction"]["candidates"]
    e["bf16"], e["bf16-folded"] = e["bf16-folded"], e["bf16"]
    with pytest.raises(AssertionError):
        check_bound_markdown(text, swapped)
    assert set(cc.CLASSES) == {"avx2", "avx512", "avx512_bf16", "amx"}


def test_report_timing_records_the_cpu_class_and_both_calibrations():
    rt = bench_module("report_timing")
    meta = {"calibration": {"how": "measured", "chosen": {"precision": "bf16"}}}
    scores = {"calibration": {"how": "cached", "chosen": {"precision": "bf16", "fold_bn": False,
                                                          "compiled": True}}}
    out = rt.calibration(meta, scores)
    assert out["calibration"] == {"training": meta["calibration"],
                                  "extraction": scores["calibration"]}
    assert {"cpu_model", "cpu_isa", "isa_caps", "threads", "torch"} <= set(out["cpu_class"])
