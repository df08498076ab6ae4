"""Calibration: "auto" measured on this machine, within the quality bounds, cached per machine.

The decision logic is checked with fake clocks (no timed assertion): the fastest candidate
within the bound wins, one over the bound is refused even when fastest, the cache is keyed by
CPU model, threads and torch version (and rebuilt when corrupt), a forced setting is kept and
nothing is timed, and the decision is recorded where the run and the scores say how they were
made.
"""

from __future__ import annotations

import contextlib
import json

import pytest
import torch

from gan_lib import config, device, storage
from gan_lib.data import load_dataset, subset_order
from gan_lib.gan import calibrate, run_folder, train
from gan_lib.metrics import calibrate as extraction_calibrate
from gan_lib.metrics import feature_extractor
from gan_lib.metrics.variant_rule import Variant

CPU = torch.device("cpu")


@pytest.fixture(autouse=True)
def bf16_screen_passes(monkeypatch):
    """The screen says bf16 convolutions are as fast as fp32's (tests below set it lower)."""
    monkeypatch.setattr(device, "bf16_conv_speed", lambda where, clock=None: 1.0)


class FakeTime:
    """A clock that only moves when a fake step says how long it took."""

    def __init__(self) -> None:
        self.now = 0.0

    def perf_counter(self) -> float:
        return self.now


def fake_step(clock: FakeTime, seconds: dict[str, float], calls: list[str]):
    """A training step that 'takes' seconds[precision] (bf16 when autocast is on)."""
    def step(nets, real, z, autocast, *args):
        precision = "bf16" if isinstance(autocast, torch.autocast) else "fp32"
        calls.append(precision)
        clock.now += seconds[precision]
        return torch.zeros(4)
    return step


@pytest.fixture
def tiny_cfg():
    return config.make_train_config("smoke", precision="auto", batch_size=4, image_size=32,
                                    g_channels=4, d_channels=4, z_dim=8, device="cpu")


def decide(monkeypatch, cfg, seconds):
    clock, calls = FakeTime(), []
    monkeypatch.setattr(calibrate, "time", clock)
    precision, record = calibrate.training_precision(cfg, CPU, fake_step(clock, seconds, calls))
    return precision, record, calls


# --- the decision ------------------------------------------------------------------------


def test_fastest_precision_within_the_bound_wins(calibration_cache, monkeypatch, tiny_cfg):
    precision, record, calls = decide(monkeypatch, tiny_cfg, {"fp32": 1.0, "bf16": 0.5})
    assert precision == "bf16" and record["how"] == "measured"
    speeds = {c["name"]: c["img_per_s"] for c in record["candidates"]}
    assert speeds == {"fp32": 4.0, "bf16": 8.0}  # batch 4 in 1 s and 0.5 s
    # one untimed and ROUNDS timed steps of each precision, interleaved
    assert calls == ["fp32", "bf16"] * (calibrate.ROUNDS + 1)


def test_slower_bf16_is_not_chosen(calibration_cache, monkeypatch, tiny_cfg):
    assert decide(monkeypatch, tiny_cfg, {"fp32": 0.5, "bf16": 1.0})[0] == "fp32"


def test_bf16_over_the_bound_is_refused_even_when_fastest(calibration_cache, monkeypatch,
                                                          tiny_cfg):
    monkeypatch.setattr(calibrate, "BF16_ALLOWED", False)
    precision, record, _ = decide(monkeypatch, tiny_cfg, {"fp32": 1.0, "bf16": 0.1})
    assert precision == "fp32"
    bf16 = next(c for c in record["candidates"] if c["name"] == "bf16")
    assert not bf16["within_bound"] and bf16["img_per_s"] > 4.0


def test_bf16_too_slow_in_the_screen_is_not_timed(calibration_cache, monkeypatch, tiny_cfg):
    monkeypatch.setattr(device, "bf16_conv_speed", lambda where, clock=None: 0.2)
    precision, record, calls = decide(monkeypatch, tiny_cfg, {"fp32": 1.0, "bf16": 0.1})
    assert precision == "fp32" and set(calls) == {"fp32"}  # bf16 never stepped
    bf16 = next(c for c in record["candidates"] if c["name"] == "bf16")
    assert bf16["img_per_s"] is None and "0.20x" in bf16["why"]
    assert record["bf16_screen"] == {"conv_bf16_over_fp32": 0.2, "min": device.BF16_SCREEN_MIN}


def test_forced_precision_is_kept_and_nothing_is_timed(calibration_cache, monkeypatch, tiny_cfg):
    for forced in ("fp32", "bf16"):
        cfg = config.make_train_config("smoke", precision=forced)
        precision, record, calls = decide(monkeypatch, cfg, {"fp32": 0.1, "bf16": 9.0})
        assert (precision, record["how"], calls) == (forced, "forced", [])
    assert not calibration_cache.exists()


def test_calibration_off_means_fp32_untimed(calibration_cache, monkeypatch, tiny_cfg):
    monkeypatch.setenv(device.CALIBRATE_ENV, "0")
    precision, record, calls = decide(monkeypatch, tiny_cfg, {"fp32": 1.0, "bf16": 0.1})
    assert (precision, record["how"], calls) == ("fp32", "skipped", [])
    assert not calibration_cache.exists()


# --- the cache ---------------------------------------------------------------------------


def test_cache_is_reused_and_keyed_by_cpu_threads_and_torch(calibration_cache, monkeypatch,
                                                             tiny_cfg):
    fast_bf16 = {"fp32": 1.0, "bf16": 0.5}
    assert decide(monkeypatch, tiny_cfg, fast_bf16)[1]["how"] == "measured"
    # the same machine: read back, nothing timed, even if the hardware had changed its mind
    precision, record, calls = decide(monkeypatch, tiny_cfg, {"fp32": 0.5, "bf16": 1.0})
    assert (precision, record["how"], calls) == ("bf16", "cached", [])
    assert len(list(calibration_cache.glob("training-*.json"))) == 1

    changes = [lambda: monkeypatch.setattr(device, "cpu_model", lambda: "Another CPU"),
               lambda: monkeypatch.setattr(torch, "__version__", "9.9.9"),
               lambda: monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")]
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1 if before != 1 else 2)
        changes.insert(0, lambda: None)  # the thread count changed above
        for n, change in enumerate(changes, start=2):
            change()
            _, record, calls = decide(monkeypatch, tiny_cfg, fast_bf16)
            assert record["how"] == "measured" and calls, n
            assert len(list(calibration_cache.glob("training-*.json"))) == n
        assert record["key"]["machine"]["cpu_model"] == "Another CPU"
        assert record["key"]["machine"]["isa_caps"]["ONEDNN_MAX_CPU_ISA"] == "AVX2"
    finally:
        torch.set_num_threads(before)


def test_cache_is_keyed_by_the_work_timed(calibration_cache, monkeypatch, tiny_cfg):
    decide(monkeypatch, tiny_cfg, {"fp32": 1.0, "bf16": 0.5})
    wider = config.TrainConfig.from_dict({**tiny_cfg.to_dict(), "g_channels": 8})
    assert decide(monkeypatch, wider, {"fp32": 1.0, "bf16": 0.5})[1]["how"] == "measured"


@pytest.mark.parametrize("damage", ['{"key": ', "[1, 2]", '{"key": {"other": 1}, "chosen": {}}'])
def test_corrupt_cache_is_measured_again(calibration_cache, monkeypatch, tiny_cfg, damage):
    decide(monkeypatch, tiny_cfg, {"fp32": 1.0, "bf16": 0.5})
    path = next(calibration_cache.glob("training-*.json"))
    path.write_text(damage)
    with pytest.warns(UserWarning, match="unusable"):
        precision, record, calls = decide(monkeypatch, tiny_cfg, {"fp32": 0.5, "bf16": 1.0})
    assert (precision, record["how"]) == ("fp32", "measured") and calls
    assert storage.read_json(path)["chosen"] == {"precision": "fp32"}  # rewritten whole


def test_failed_measurement_leaves_no_record(calibration_cache, tiny_cfg):
    def broken(*args):
        raise RuntimeError("stopped mid-calibration")
    with pytest.raises(RuntimeError, match="stopped"):
        calibrate.training_precision(tiny_cfg, CPU, broken)
    assert not calibration_cache.exists() or not any(calibration_cache.iterdir())


# --- the real step and where the decision is recorded ---------------------------------------


def test_real_step_is_timed_and_recorded_in_config_json(calibration_cache, home, tiny_cfg,
                                                        one_thread):
    cfg = config.TrainConfig.from_dict({**tiny_cfg.to_dict(), "name": "cal", "source": "phantom",
                                        "iterations": 2, "snapshot_at": [2], "subset": 16,
                                        "checkpoint_every": 2, "grid_size": 4})
    run_dir = train.train(cfg)
    meta = run_folder.load_run_config(run_dir)
    rec = meta["calibration"]
    assert rec["how"] == "measured" and meta["segments"][-1]["calibration"] == rec
    assert meta["precision"] == rec["chosen"]["precision"]
    assert {c["name"] for c in rec["candidates"]} == {"fp32", "bf16"}
    assert all(c["img_per_s"] > 0 for c in rec["candidates"])
    assert rec["key"]["machine"]["threads"] == 1 and rec["key"]["workload"]["g_channels"] == 4
    # a second run on this machine reads the decision back
    again = train.train(config.TrainConfig.from_dict({**cfg.to_dict(), "name": "cal2"}))
    assert run_folder.load_run_config(again)["calibration"]["how"] == "cached"


def test_forced_precision_is_recorded_in_config_json(home, tiny_cfg, one_thread):
    cfg = config.TrainConfig.from_dict({**tiny_cfg.to_dict(), "name": "forced", "precision":
                                        "fp32", "source": "phantom", "iterations": 1,
                                        "snapshot_at": [1], "subset": 8, "grid_size": 4})
    meta = run_folder.load_run_config(train.train(cfg))
    assert meta["calibration"] == {"how": "forced", "by": "TrainConfig.precision",
                                   "chosen": {"precision": "fp32"}}


# --- the machinery -------------------------------------------------------------------------


def test_fastest_within_bound_names_every_refusal():
    with pytest.raises(ValueError, match="a: too far.*b: too far"):
        device.fastest_within_bound([
            {"name": "a", "img_per_s": 1.0, "within_bound": False, "why": "too far"},
            {"name": "b", "img_per_s": 2.0, "within_bound": False, "why": "too far"}])


def test_machine_names_cpu_threads_torch_and_caps(monkeypatch):
    monkeypatch.setenv("ATEN_CPU_CAPABILITY", "avx2")
    m = device.machine(CPU)
    assert m["cpu_model"] == device.cpu_model() and m["torch"] == torch.__version__
    assert m["threads"] == torch.get_num_threads() and m["device"] == "cpu"
    assert m["isa_caps"]["ATEN_CPU_CAPABILITY"] == "avx2"
    json.dumps(m)  # recorded as JSON


def test_calibration_switch_spellings(monkeypatch):
    for off in ("0", "false", "No", " off "):
        monkeypatch.setenv(device.CALIBRATE_ENV, off)
        assert not device.calibration_enabled()
    for on in ("1", "yes", ""):
        monkeypatch.setenv(device.CALIBRATE_ENV, on)
        assert device.calibration_enabled()
    monkeypatch.delenv(device.CALIBRATE_ENV)
    assert device.calibration_enabled()


def test_autocast_context_type_is_what_the_fake_step_reads():
    # fake_step tells bf16 from fp32 by the context's type: keep that true
    assert isinstance(device.autocast_context("bf16", CPU), torch.autocast)
    assert isinstance(device.autocast_context("fp32", CPU), contextlib.nullcontext)


# --- extraction: every candidate timed and checked against fp32 ----------------------------


FP32, FP32F, BF16, BF16F = extraction_calibrate.EAGER
BOUND = extraction_calibrate.FEATURE_BOUND


class FakeNet:
    """What build() returns in these tests: the variant, and the FID layer's name."""

    layers = {"fid": "2048"}

    def __init__(self, variant, batch_size):
        self.variant, self.batch_size = variant, batch_size


def fake_inception(monkeypatch, cost: dict, deviation: dict, compiler: bool = True,
                   fail_compile: bool = False):
    """A fake clock and fake pool3 features: each variant 'takes' cost[v] seconds per image and
    its features deviate from fp32's by exactly deviation[v] (relative Frobenius norm)."""
    clock, passes = FakeTime(), []

    def pool3(net, images):
        v = net.variant
        if v.compiled and fail_compile:
            raise RuntimeError("torch.compile of the Inception extractor failed (no cc1plus)")
        passes.append(v)
        clock.now += cost[v] * len(images)
        ref = images.flatten(1)[:, :4].double() + 1  # a function of each image alone
        return ref * (1 + deviation[v])

    monkeypatch.setattr(extraction_calibrate, "_pool3", pool3)
    monkeypatch.setattr(extraction_calibrate, "time", clock)
    monkeypatch.setattr(extraction_calibrate, "cxx_compiler",
                        lambda: "/usr/bin/g++" if compiler else None)
    return passes


IMAGES = torch.arange(64, dtype=torch.uint8).view(64, 1, 1, 1).expand(64, 1, 8, 8).contiguous()
DEV = {FP32: 0.0, FP32F: 1e-6, BF16: BOUND * 0.98, BF16F: BOUND * 1.08}


def chosen(record) -> Variant:
    return Variant(**record["chosen"])


def test_extraction_fastest_within_the_bound_wins_and_over_the_bound_is_refused(monkeypatch):
    cost = {FP32: 0.10, FP32F: 0.09, BF16: 0.05, BF16F: 0.04}  # bf16 folded fastest...
    passes = fake_inception(monkeypatch, cost, DEV, compiler=False)
    record = extraction_calibrate.measure(IMAGES, 64, FakeNet)
    assert chosen(record) == BF16  # ...but over the bound: refused
    rows = {c["name"]: c for c in record["candidates"]}
    assert not rows[BF16F.label]["within_bound"] and rows[BF16F.label]["img_per_s"] == 25.0
    assert rows[BF16.label]["within_bound"] and rows[BF16.label]["img_per_s"] == 20.0
    assert rows[FP32.label]["deviation"] == 0.0 and len(rows) == 4  # no compiler: eager only
    # interleaved rounds of EAGER_BATCH images; every candidate sees all 64 images
    assert passes[:4] == list(extraction_calibrate.EAGER) and len(passes) == 4 * 4
    assert record["bound"]["feature_relative_error"] == BOUND


def test_extraction_compiles_the_eager_winner_and_keeps_it_only_if_faster(monkeypatch):
    dev = {**DEV, Variant("bf16", False, True): BOUND * 0.99}
    cost = {FP32: 0.10, FP32F: 0.09, BF16: 0.05, BF16F: 0.04, Variant("bf16", False, True): 0.03}
    passes = fake_inception(monkeypatch, cost, dev)
    record = extraction_calibrate.measure(IMAGES, 64, FakeNet)
    assert chosen(record) == Variant("bf16", False, True)
    compiled = record["candidates"][-1]
    assert compiled["compiled"] and "compile_seconds" in compiled
    # compiled once, then timed beside its eager self
    assert [v for v in passes[16:]] == [Variant("bf16", False, True)] + [BF16, Variant(
        "bf16", False, True)] * extraction_calibrate.PAIRED_ROUNDS
    assert compiled["vs_eager"] == pytest.approx(0.05 / 0.03, rel=1e-3)
    fake_inception(monkeypatch, {**cost, Variant("bf16", False, True): 0.06}, dev)
    assert chosen(extraction_calibrate.measure(IMAGES, 64, FakeNet)) == BF16  # slower: eager


def test_extraction_refuses_a_compiled_variant_that_deviates_or_fails(monkeypatch):
    cost = {FP32: 0.10, FP32F: 0.09, BF16: 0.05, BF16F: 0.04, Variant("bf16", False, True): 0.01}
    fake_inception(monkeypatch, cost, {**DEV, Variant("bf16", False, True): BOUND * 1.5})
    assert chosen(extraction_calibrate.measure(IMAGES, 64, FakeNet)) == BF16
    fake_inception(monkeypatch, cost, DEV, fail_compile=True)
    record = extraction_calibrate.measure(IMAGES, 64, FakeNet)
    assert chosen(record) == BF16 and "torch.compile failed" in record["candidates"][-1]["why"]


def test_extraction_bf16_too_slow_in_the_screen_is_not_timed(monkeypatch):
    monkeypatch.setattr(device, "bf16_conv_speed", lambda where, clock=None: 0.3)
    cost = {FP32: 0.10, FP32F: 0.09, BF16: 0.01, BF16F: 0.01, Variant("fp32", True, True): 0.05}
    passes = fake_inception(monkeypatch, cost, {**DEV, Variant("fp32", True, True): 0.0})
    record = extraction_calibrate.measure(IMAGES, 64, FakeNet)
    assert chosen(record) == Variant("fp32", True, True)
    assert not any(v.precision == "bf16" for v in passes)
    rows = {c["name"]: c for c in record["candidates"]}
    assert rows[BF16.label]["img_per_s"] is None and not rows[BF16.label]["within_bound"]
    assert record["bf16_screen"]["conv_bf16_over_fp32"] == 0.3


def test_bf16_screen_times_a_convolution_on_a_fake_clock(monkeypatch):
    clock = FakeTime()
    real_conv = torch.nn.functional.conv2d

    def conv(x, w, **kw):
        clock.now += 2.0 if torch.is_autocast_enabled("cpu") else 1.0
        return real_conv(x, w, **kw)
    monkeypatch.undo()  # the autouse fixture's fake screen: the real one here
    monkeypatch.setattr(torch.nn.functional, "conv2d", conv)
    assert device.bf16_conv_speed(CPU, clock=clock.perf_counter) == 0.5


def test_extraction_where_bf16_deviates_too_far_is_fp32(monkeypatch):
    cost = {FP32: 0.10, FP32F: 0.09, BF16: 0.05, BF16F: 0.04, Variant("fp32", True, True): 0.2}
    fake_inception(monkeypatch, cost, {**DEV, BF16: BOUND * 1.01, Variant("fp32", True, True): 0})
    assert chosen(extraction_calibrate.measure(IMAGES, 64, FakeNet)) == FP32F


@pytest.fixture
def fake_extractor_build(calibration_cache, monkeypatch):
    """resolve_variant with the fake Inception: built nets are FakeNets, weights a stub."""
    monkeypatch.setattr(feature_extractor, "build_extractor",
                        lambda cfg, v, extractor, weights=None: FakeNet(v, cfg.batch_size))
    monkeypatch.setattr(feature_extractor, "resolve_weights", lambda w: {"sha256": "w" * 64})
    cost = {FP32: 0.10, FP32F: 0.09, BF16: 0.05, BF16F: 0.04, Variant("bf16", False, True): 0.03}
    dev = {**DEV, Variant("bf16", False, True): BOUND * 0.99}
    return fake_inception(monkeypatch, cost, dev)


def resolve(**settings):
    return feature_extractor.resolve_variant(config.ScoreConfig(device="cpu", **settings),
                                             calibration_images=IMAGES)


def test_extraction_decision_is_cached_per_machine_and_images(fake_extractor_build, monkeypatch,
                                                             calibration_cache):
    passes = fake_extractor_build
    v, record = resolve()
    assert v == Variant("bf16", False, True) and record["how"] == "measured"
    n = len(passes)
    assert resolve()[1]["how"] == "cached" and len(passes) == n
    assert record["key"]["batch_size"] == 64 and record["key"]["images_sha256"]
    other = feature_extractor.resolve_variant(config.ScoreConfig(device="cpu"),
                                              calibration_images=IMAGES + 1)
    assert other[1]["how"] == "measured" and len(passes) > n  # other images: measured again
    monkeypatch.setattr(device, "cpu_model", lambda: "Another CPU")
    assert resolve()[1]["how"] == "measured"
    assert len(list(calibration_cache.glob("extraction-*.json"))) == 3


def test_extraction_forced_settings_are_respected(fake_extractor_build):
    passes = fake_extractor_build
    resolve()  # calibrate once
    n = len(passes)
    assert resolve(precision="fp32")[0] == FP32F  # the fastest fp32 candidate
    assert resolve(fold_bn=True)[0] == FP32F  # bf16 folded is over the bound
    assert resolve(compiled=False)[0] == BF16
    assert resolve(precision="fp32", compiled=True)[0] == Variant("fp32", True, True)  # untimed
    with pytest.warns(UserWarning, match="over calibration's quality bound"):
        assert resolve(precision="bf16", fold_bn=True)[0] == BF16F  # the user's call
    assert resolve(precision="fastmath")[0] == Variant("fastmath", False, False)
    v, record = resolve(precision="bf16", fold_bn=False, compiled=False)
    assert v == BF16 and record["how"] == "forced"
    assert len(passes) == n  # all read from the one calibration


def test_extraction_calibration_off_is_fp32_eager(fake_extractor_build, monkeypatch):
    monkeypatch.setenv(device.CALIBRATE_ENV, "0")
    v, record = resolve()
    assert v == FP32F and record["how"] == "skipped" and not fake_extractor_build


def test_calibration_batch_is_the_front_of_the_reference_set():
    images = torch.arange(200, dtype=torch.uint8).reshape(200, 1, 1, 1)
    batch = extraction_calibrate.calibration_batch(images)
    assert len(batch) == extraction_calibrate.CALIBRATION_IMAGES
    assert torch.equal(batch, images[subset_order(200)[:len(batch)]])


@pytest.mark.slow
def test_extraction_calibration_on_the_real_inception(calibration_cache, monkeypatch, one_thread):
    """The real FID Inception, a few images, no compiler: fp32 is the reference (deviation 0),
    folding changes features by rounding only, bf16 by more; the choice is within the bound."""
    monkeypatch.setattr(extraction_calibrate, "CALIBRATION_IMAGES", 8)
    monkeypatch.setattr(extraction_calibrate, "EAGER_BATCH", 4)
    monkeypatch.setattr(extraction_calibrate, "cxx_compiler", lambda: None)
    images = extraction_calibrate.calibration_batch(
        load_dataset("phantom", "train", 64).images)
    v, record = feature_extractor.resolve_variant(config.ScoreConfig(device="cpu", batch_size=8),
                                                  calibration_images=images)
    rows = {c["name"]: c for c in record["candidates"]}
    assert rows[FP32.label]["deviation"] == 0 and rows[FP32F.label]["deviation"] < 1e-4
    assert 1e-3 < rows[BF16.label]["deviation"] < 0.2
    assert all(c["img_per_s"] > 0 for c in record["candidates"])
    assert next(c for c in record["candidates"] if Variant(**{k: c[k] for k in (
        "precision", "fold_bn", "compiled")}) == v)["within_bound"]
    assert record["images"]["n"] == 8
