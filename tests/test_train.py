"""Training: the run folder and its contents, determinism, exact resume after SIGKILL, NaN guard,
and errors raised before any work. Tiny networks on a random stand-in data set: a few seconds."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import types

import pytest
import torch
from PIL import Image

from gan_lib import config, data, device, storage
from gan_lib.gan import batches, models, run_folder, sampling, train

REPO = config.REPO_ROOT
LOSS_KEYS = ("iter", "epoch", "loss_D", "loss_G", "D_x", "D_G_z")
BN_BUFFERS = ("running_mean", "running_var", "num_batches_tracked")


def fake_dataset(source="fake", split="train", image_size=32, n=48):
    """A ChestXrayData stand-in: smooth random uint8 images (fixed seed), half per class."""
    g = torch.Generator().manual_seed(123)
    low = torch.rand(n, 1, 8, 8, generator=g)
    images = torch.nn.functional.interpolate(low, size=image_size, mode="bilinear")
    return types.SimpleNamespace(
        images=(images * 255).round().to(torch.uint8), labels=torch.arange(n) % 2,
        class_names=["NORMAL", "PNEUMONIA"], description="random test images", source=source,
        kind="phantom", split=split, fingerprint="f" * 16, skipped=[], is_synthetic=True)


def tiny(**overrides) -> config.TrainConfig:
    """5 batches per epoch (40 images, batch 8); 6 iterations; snapshots at 3 and 6."""
    values = dict(name="tiny", source="fake", image_size=32, g_channels=8, d_channels=8,
                  batch_size=8, subset=40, iterations=6, snapshot_at=(3, 6), checkpoint_every=2,
                  grid_size=16, precision="fp32", device="cpu")
    return config.make_train_config("smoke", **{**values, **overrides})


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    """The killed subprocess below runs with one thread too (same arithmetic, same losses)."""


@pytest.fixture
def fake_data(monkeypatch):
    calls = []

    def load(source="auto", split="train", image_size=64, resize="crop"):
        calls.append((source, split, image_size))
        return fake_dataset(source, split, image_size)

    monkeypatch.setattr(data, "load_dataset", load)
    return calls


def precise_bn_by_definition(kwargs: dict, weights: dict, batches: int, batch_size: int,
                             seed: int) -> dict[str, torch.Tensor]:
    """Re-estimated BatchNorm statistics computed here from their definition, not by
    sampling.recalibrate_batchnorm: G in train mode on ``batches`` batches of latents drawn in turn
    from ``torch.Generator().manual_seed(seed)``; each BatchNorm's statistics are the mean over
    batches of its input's per-channel batch mean and unbiased variance (float64)."""
    G = models.Generator(**kwargs)
    G.load_state_dict(weights)
    G.train()
    seen: dict[str, list] = {}
    for name, module in G.named_modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.register_forward_pre_hook(
                lambda m, inputs, name=name: seen.setdefault(name, []).append(
                    inputs[0].detach().double()))
    latents = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _ in range(batches):
            G(torch.randn(batch_size, G.z_dim, generator=latents))
    out = {}
    for name, xs in seen.items():
        out[f"{name}.running_mean"] = torch.stack([x.mean((0, 2, 3)) for x in xs]).mean(0)
        out[f"{name}.running_var"] = torch.stack([x.var((0, 2, 3)) for x in xs]).mean(0)
        out[f"{name}.num_batches_tracked"] = torch.tensor(len(xs))
    return out


def assert_bn_statistics(state: dict, expected: dict) -> None:
    assert {k for k in state if k.endswith(BN_BUFFERS)} == set(expected)
    for k, v in expected.items():
        assert torch.allclose(state[k].double(), v.double(), rtol=1e-4, atol=1e-6), k


def losses(run_dir):
    """losses.jsonl without the wall-clock column."""
    return [{k: r[k] for k in LOSS_KEYS} for r in storage.read_jsonl(run_dir / "losses.jsonl")]


def test_run_folder_files_and_contents(home, fake_data):
    run_dir = train.train(tiny())
    assert run_dir == home / "runs" / "tiny"
    assert fake_data == [("fake", "train", 32)]
    meta = json.loads((run_dir / "config.json").read_text())
    assert meta["config"] == tiny().to_dict()
    assert meta["data"] == {"source": "fake", "description": "random test images", "kind": "phantom",
                            "fingerprint": "f" * 16, "n_images": 40, "is_synthetic": True,
                            "resize": "crop", "resized_note": None, "n_skipped": 0,
                            "skipped": []}
    assert set(meta["versions"]) >= {"torch", "torchvision", "numpy", "gan_lib"}
    assert meta["device"] == "cpu" and meta["precision"] == "fp32" and meta["created"]
    assert "git_commit" in meta
    rows = storage.read_jsonl(run_dir / "losses.jsonl")
    assert [r["iter"] for r in rows] == [1, 2, 3, 4, 5, 6]
    assert [r["epoch"] for r in rows] == [1, 1, 1, 1, 1, 2]  # 40 images / batch 8 = 5 per epoch
    assert all(0 < r["D_x"] < 1 and 0 < r["D_G_z"] < 1 and r["loss_D"] > 0 for r in rows)
    assert all(b["seconds"] >= a["seconds"] for a, b in zip(rows, rows[1:], strict=False))
    # a grid after each epoch and at the end: 16 tiles of 32 px, 4 per row, 2 px padding
    grids = run_folder.list_grids(run_dir)
    assert [(e, it, p.name) for e, it, p in grids] == [(1, 5, "epoch_0001.png"),
                                                       (2, 6, "epoch_0002.png")]
    assert Image.open(grids[0][2]).size == (4 * 34 + 2, 4 * 34 + 2)
    assert run_folder.grid_at(run_dir, 0.5)[:2] == (1, 5) and run_folder.grid_at(run_dir, 1.0)[:2] == (2, 6)
    snaps = run_folder.list_snapshots(run_dir)
    assert [(it, p.name) for it, p in snaps] == [(3, "G_iter_000003.pt"), (6, "G_iter_000006.pt")]
    G = sampling.load_generator(snaps[-1][1])
    assert sampling.generate(G, 5, seed=0).shape == (5, 1, 32, 32)
    assert storage.load_torch(snaps[-1][1])["ema"] is False
    ckpt = storage.load_torch(run_dir / "checkpoint.pt")
    assert {"G", "D", "opt_G", "opt_D", "ema", "step", "epoch", "batch_in_epoch", "rng",
            "config"} <= set(ckpt)
    assert (ckpt["step"], ckpt["epoch"], ckpt["batch_in_epoch"]) == (6, 1, 1)
    assert ckpt["config"] == tiny().to_dict()
    # the final snapshot holds the checkpoint's final G weights; its BatchNorm statistics are
    # re-estimated on those weights (the sampling rule), training's kept ones stored beside them
    snap = storage.load_torch(snaps[-1][1])
    assert snap["sampling"]["rule"] == "batchnorm-recalibrated" and snap["weights"] == "G"
    assert snap["sampling"]["batches"] == 16 and snap["sampling"]["batch_size"] == 8
    for k, v in snap["state_dict"].items():
        if not k.endswith(BN_BUFFERS):
            assert torch.equal(v, ckpt["G"][k]), k
    assert snap["training_bn_stats"].keys() == {k for k in ckpt["G"] if k.endswith(BN_BUFFERS)}
    assert all(torch.equal(v, ckpt["G"][k]) for k, v in snap["training_bn_stats"].items())
    # seed 0, stream 3 (BatchNorm), iteration 6: derived_seed's documented hash, as a number
    assert snap["sampling"]["seed"] == (3 * 0xBF58476D1CE4E5B9 + 6 * 0x94D049BB133111EB) % 2**63
    assert_bn_statistics(snap["state_dict"], precise_bn_by_definition(
        snap["kwargs"], ckpt["G"], 16, 8, snap["sampling"]["seed"]))
    assert not torch.allclose(snap["state_dict"]["main.1.running_var"],
                              ckpt["G"]["main.1.running_var"])  # the rule changed something
    assert run_folder.load_run_config("tiny")["data"]["n_images"] == 40


def test_same_seed_same_losses_other_seed_differs(home, fake_data):
    a = losses(train.train(tiny(name="a")))
    b = losses(train.train(tiny(name="b")))
    c = losses(train.train(tiny(name="c", seed=1)))
    assert a == b
    assert [r["loss_D"] for r in a] != [r["loss_D"] for r in c]


def test_existing_run_folder_needs_resume_or_overwrite(home, fake_data):
    run_dir = train.train(tiny())
    before = (run_dir / "losses.jsonl").read_text()
    with pytest.raises(FileExistsError, match="resume=True.*overwrite=True"):
        train.train(tiny())
    assert len(fake_data) == 1  # refused before loading any data
    assert (run_dir / "losses.jsonl").read_text() == before
    (run_dir / "stray.txt").write_text("x")
    train.train(tiny(), overwrite=True)
    assert not (run_dir / "stray.txt").exists()
    first = [json.loads(line) for line in before.splitlines()]
    assert losses(run_dir) == [{k: r[k] for k in LOSS_KEYS} for r in first]


@pytest.mark.parametrize(("overrides", "key"), [
    ({"image_size": 48}, "image_size"),
    ({"iterations": 0}, "iterations"),
    ({"snapshot_at": (3, 7)}, "snapshot_at"),
    ({"learning_rate": 1e-3}, "learning_rate"),
])
def test_invalid_settings_name_the_key(overrides, key):
    with pytest.raises(ValueError, match=key):
        tiny(**overrides)


def test_ill_typed_setting_names_the_key():
    with pytest.raises(TypeError, match="iterations"):
        tiny(iterations="6")


@pytest.mark.parametrize(("overrides", "key"), [
    ({"subset": 400}, "subset"),
    ({"subset": None, "batch_size": 64}, "batch_size"),
    ({"device": "cuda:0"} if not torch.cuda.is_available() else {"device": "nope"}, "device"),
])
def test_train_rejects_before_writing(home, fake_data, overrides, key):
    with pytest.raises(ValueError, match=key):
        train.train(tiny(**overrides))
    assert not (home / "runs" / "tiny").exists()


def test_nan_stops_training_and_keeps_last_checkpoint(home, fake_data, monkeypatch):
    real_step, calls = train.train_step, []

    def poisoned(nets, real, z, *args):
        calls.append(1)
        if len(calls) == 5:  # iteration 5: a corrupt batch makes D's loss (and weights) NaN
            real = real * float("nan")
        return real_step(nets, real, z, *args)

    monkeypatch.setattr(train, "train_step", poisoned)
    with pytest.raises(FloatingPointError, match=r"iteration 5: loss_D=nan.*iteration 4\) is intact"):
        train.train(tiny())
    run_dir = home / "runs" / "tiny"
    ckpt = storage.load_torch(run_dir / "checkpoint.pt")
    assert ckpt["step"] == 4
    assert all(torch.isfinite(v).all() for v in ckpt["D"].values() if v.is_floating_point())
    assert [r["iter"] for r in storage.read_jsonl(run_dir / "losses.jsonl")] == [1, 2, 3, 4]


def test_weights_gone_bad_at_a_checkpoint_are_not_saved(home, fake_data, monkeypatch):
    real_step, calls = train.train_step, []

    def overflowing(*args):
        nets = args[0]
        stats = real_step(*args)
        calls.append(1)
        if len(calls) == 4:  # the update of iteration 4 overflows; its loss was still finite
            next(nets.D.parameters()).data.fill_(float("inf"))
        return stats

    monkeypatch.setattr(train, "train_step", overflowing)
    with pytest.raises(FloatingPointError, match=r"iteration 4: non-finite weights.*iteration 2\)"):
        train.train(tiny())
    assert storage.load_torch(home / "runs" / "tiny" / "checkpoint.pt")["step"] == 2


def test_resume_without_checkpoint(home, fake_data):
    run_dir = train.train(tiny(name="fresh"), resume=True)  # nothing to resume: a new run
    assert len(losses(run_dir)) == 6
    (run_dir / "checkpoint.pt").unlink()
    with pytest.raises(FileNotFoundError, match="overwrite=True"):
        train.train(tiny(name="fresh"), resume=True)


def test_resume_refuses_changed_settings(home, fake_data):
    train.train(tiny())
    with pytest.raises(ValueError, match="lr"):
        train.train(tiny(lr=1e-3), resume=True)
    # a longer run may continue a finished one
    run_dir = train.train(tiny(iterations=8, snapshot_at=(3, 6, 8)), resume=True)
    assert [r["iter"] for r in losses(run_dir)] == list(range(1, 9))
    segments = json.loads((run_dir / "config.json").read_text())["segments"]
    assert [seg["from_iteration"] for seg in segments] == [0, 6]
    assert all(seg["precision"] == "fp32" for seg in segments)


def test_resume_refuses_another_precision_unless_asked(home, fake_data):
    run_dir = train.train(tiny(precision="bf16", iterations=4, snapshot_at=(3,)))
    ckpt = run_dir / "checkpoint.pt"
    before = ckpt.read_bytes()
    # 'auto' resolving to fp32 on other hardware: refused, nothing touched
    auto = tiny(precision="auto", iterations=6)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(train, "training_precision", lambda cfg, d=None: ("fp32", {"how": "measured"}))
        with pytest.raises(ValueError, match=r"trained in bf16.*precision='fp32'"):
            train.train(auto, resume=True)
    assert ckpt.read_bytes() == before
    # named explicitly: continues, and config.json keeps both segments
    train.train(tiny(precision="fp32", iterations=6), resume=True)
    segments = run_folder.load_run_config(run_dir)["segments"]
    assert [(seg["from_iteration"], seg["precision"]) for seg in segments] == [(0, "bf16"),
                                                                                (4, "fp32")]
    assert storage.load_torch(ckpt)["precision"] == "fp32"


def test_threads_are_recorded_and_a_resume_under_others_says_so(home, fake_data, capsys):
    run_dir = train.train(tiny(iterations=4, snapshot_at=(3,)))  # one thread (autouse fixture)
    assert storage.load_torch(run_dir / "checkpoint.pt")["compute"]["threads"] == 1
    torch.set_num_threads(2)
    try:
        capsys.readouterr()
        train.train(tiny(iterations=6), resume=True)
    finally:
        torch.set_num_threads(1)
    out = capsys.readouterr().out
    assert "threads 1 -> 2" in out and "not expected to equal an uninterrupted run bitwise" in out
    segments = run_folder.load_run_config(run_dir)["segments"]
    assert [(seg["from_iteration"], seg["threads"]) for seg in segments] == [(0, 1), (4, 2)]
    assert all(seg["cpu_isa"] == device.cpu_isa() for seg in segments)
    assert [r["iter"] for r in losses(run_dir)] == list(range(1, 7))


def test_checkpoint_of_another_format_is_a_clear_error(home, fake_data):
    run_dir = train.train(tiny(iterations=4, snapshot_at=(3,)))
    ckpt = storage.load_torch(run_dir / "checkpoint.pt")
    for found, word in ((1, "older"), (99, "newer")):
        storage.save_torch({**ckpt, "format": found}, run_dir / "checkpoint.pt")
        with pytest.raises(ValueError, match=f"checkpoint format {found}.*{word}"):
            train.train(tiny(iterations=6), resume=True)
    assert [r["iter"] for r in losses(run_dir)] == [1, 2, 3, 4]  # log untouched


def test_resume_never_rewrites_a_log_it_cannot_read_whole(home, fake_data):
    run_dir = train.train(tiny(iterations=4, snapshot_at=(3,)))
    log = run_dir / "losses.jsonl"
    lines = log.read_text().splitlines(keepends=True)
    broken = "".join([*lines[:2], "{not json\n", *lines[2:]])
    log.write_text(broken)
    with pytest.raises(ValueError, match=r"losses.jsonl, line 3"):
        train.train(tiny(iterations=6), resume=True)
    assert log.read_text() == broken
    # a torn last line (a killed writer) is dropped, and resume then continues
    log.write_text("".join(lines) + '{"iter": 5, "ep')
    train.train(tiny(iterations=6), resume=True)
    assert [r["iter"] for r in losses(run_dir)] == [1, 2, 3, 4, 5, 6]


def test_ema_snapshot_has_its_own_batchnorm_statistics(home, fake_data):
    run_dir = train.train(tiny(name="ema", ema_decay=0.5, iterations=4, snapshot_at=(4,)))
    snap = storage.load_torch(run_folder.list_snapshots(run_dir)[-1][1])
    ckpt = storage.load_torch(run_dir / "checkpoint.pt")
    assert snap["ema"] is True and snap["weights"].startswith("EMA")
    # the EMA weights' own statistics (with whatever buffers the EMA carried, reset first)
    assert_bn_statistics(snap["state_dict"], precise_bn_by_definition(
        snap["kwargs"], ckpt["ema"], 16, 8, snap["sampling"]["seed"]))
    for k, v in snap["state_dict"].items():
        if k.endswith(BN_BUFFERS):
            assert not torch.equal(v, ckpt["G"][k]) or k.endswith("num_batches_tracked")
        else:
            assert torch.equal(v, ckpt["ema"][k]), k


@pytest.mark.parametrize("warmup, decay_used", [(True, 0.1), (False, 0.99)])
def test_the_ema_warms_up_from_its_first_update(home, fake_data, warmup, decay_used):
    """After one update the EMA is lerp(G before, G after, 1 - decay): decay 0.1 warmed up
    (n = 0: (1 + 0) / (10 + 0)), the full 0.99 without warm-up."""
    cfg = tiny(name="ema1", ema_decay=0.99, ema_warmup=warmup, iterations=1, snapshot_at=(1,),
               checkpoint_every=1)
    G = train.build_nets(cfg, torch.device("cpu")).G  # seeded: G before the first step
    start = {name: p.detach().clone() for name, p in G.named_parameters()}
    ckpt = storage.load_torch(train.train(cfg) / "checkpoint.pt")
    moved = 0
    for name in start:  # weights (BatchNorm buffers are re-estimated, not averaged)
        expected = torch.lerp(start[name], ckpt["G"][name], 1 - decay_used)
        assert torch.allclose(ckpt["ema"][name], expected, atol=1e-7), name
        moved += not torch.equal(ckpt["G"][name], start[name])
    assert moved > 0  # G did take a step


@pytest.mark.parametrize("augment", ["", "translation,cutout"])
def test_an_ema_run_keeps_the_raw_snapshots_of_the_same_run_without_ema(home, fake_data,
                                                                        augment):
    """The EMA only watches G: the raw weights it keeps are what training without it writes.

    small_data.py scores the baseline (and DiffAugment alone) from the EMA runs' raw snapshots;
    this is what makes that the same measurement as training them again.
    """
    plain = train.train(tiny(name="plain", augment=augment))
    ema = train.train(tiny(name="with-ema", augment=augment, ema_decay=0.9))
    assert losses(plain) == losses(ema)
    raw, own = run_folder.list_snapshots(ema, raw=True), run_folder.list_snapshots(plain)
    assert [it for it, _ in raw] == [it for it, _ in own] == [3, 6]
    for (_, a), (_, b), (_, e) in zip(raw, own, run_folder.list_snapshots(ema), strict=True):
        a, b, e = storage.load_torch(a), storage.load_torch(b), storage.load_torch(e)
        assert a["ema"] is False and a["weights"] == "G" and e["ema"] is True
        assert a["sampling"] == b["sampling"]
        for k, v in b["state_dict"].items():
            assert torch.equal(a["state_dict"][k], v), k
        assert not torch.equal(e["state_dict"]["main.0.weight"], b["state_dict"]["main.0.weight"])
    with pytest.raises(FileNotFoundError, match="only a run trained with ema_decay > 0"):
        run_folder.list_snapshots(plain, raw=True)


KILLED_RUN = """
import sys, time
sys.path.insert(0, {repo!r})
from gan_lib import data
from gan_lib.gan import train
from tests.test_train import fake_dataset, tiny
data.load_dataset = lambda source, split, image_size, resize='crop': fake_dataset(source, split, image_size)
step = train.train_step
def slow_step(*args):
    time.sleep(0.15)  # slow enough to be killed mid-run
    return step(*args)
train.train_step = slow_step
train.train(tiny(name="killed", **{cfg!r}))
"""


@pytest.mark.parametrize("augment, conditional, conditioning", [
    ("", False, "concat"), ("translation,cutout,brightness,contrast", False, "concat"),
    ("", True, "concat"), ("", True, "batchnorm")])
def test_resume_after_sigkill_repeats_the_uninterrupted_run(home, fake_data, augment,
                                                           conditional, conditioning):
    cfg = dict(iterations=12, snapshot_at=(12,), checkpoint_every=4, ema_decay=0.9,
               augment=augment, conditional=conditional, g_conditioning=conditioning)
    env = {**os.environ, "GAN_LIB_HOME": str(home), "TQDM_DISABLE": "1", "OMP_NUM_THREADS": "1"}
    script = KILLED_RUN.format(repo=str(REPO), cfg=cfg)
    proc = subprocess.Popen([sys.executable, "-c", script], env=env, cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    run_dir = home / "runs" / "killed"
    deadline = time.time() + 60
    # kill once the checkpoint of iteration 4 exists and iteration 5 is logged: SIGKILL leaves
    # log rows past the checkpoint, which resume must drop and recompute
    while proc.poll() is None and time.time() < deadline and not (
            (run_dir / "checkpoint.pt").exists() and len(losses(run_dir)) >= 5):
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    _, err = proc.communicate()
    assert proc.returncode == -signal.SIGKILL, err.decode()[-2000:]
    step = storage.load_torch(run_dir / "checkpoint.pt")["step"]
    assert step == 4 < len(losses(run_dir)) < 12  # really killed mid-way, after a checkpoint

    train.train(tiny(name="killed", **cfg), resume=True)
    whole = train.train(tiny(name="whole", **cfg))
    assert losses(run_dir) == losses(whole)
    a, b = storage.load_torch(run_dir / "checkpoint.pt"), storage.load_torch(whole / "checkpoint.pt")
    for part in ("G", "D", "ema"):
        assert all(torch.equal(a[part][k], b[part][k]) for k in a[part])
    assert a["opt_G"]["state"][0]["step"] == b["opt_G"]["state"][0]["step"] == 12


def test_bf16_autocast_computes_in_bf16(home, fake_data, monkeypatch):
    """Fails if autocast were a no-op: D's convolutions must output bfloat16 inside the step."""
    seen = []
    real_build = train.build_nets

    def build(cfg, dev, n_classes=0):
        nets = real_build(cfg, dev, n_classes)
        nets.D.main[0].register_forward_hook(lambda m, i, o: seen.append(o.dtype))
        return nets

    monkeypatch.setattr(train, "build_nets", build)
    bf16 = train.train(tiny(name="bf16", precision="bf16", iterations=2, snapshot_at=(2,)))
    assert set(seen) == {torch.bfloat16}
    seen.clear()
    fp32 = train.train(tiny(name="fp32", precision="fp32", iterations=2, snapshot_at=(2,)))
    assert set(seen) == {torch.float32}
    assert run_folder.load_run_config(bf16)["precision"] == "bf16"
    # Same seed and data: bf16 changes rounding (more than fp32 noise), not the computation.
    first = [storage.read_jsonl(run / "losses.jsonl")[0] for run in (bf16, fp32)]
    assert first[0]["loss_D"] == pytest.approx(first[1]["loss_D"], rel=0.05)
    assert first[0]["loss_D"] != first[1]["loss_D"]


def test_channels_last_lays_out_the_weights(home):
    cfg = tiny(channels_last=True)
    nets = train.build_nets(cfg, torch.device("cpu"))
    conv = nets.D.main[2].weight  # [16, 8, 4, 4]
    assert conv.is_contiguous(memory_format=torch.channels_last) and not conv.is_contiguous()
    plain = train.build_nets(tiny(channels_last=False), torch.device("cpu")).D.main[2].weight
    assert plain.is_contiguous() and plain.stride() != conv.stride()
    batch = batches.real_batch(torch.zeros(8, 1, 32, 32, dtype=torch.uint8), torch.arange(4), True)
    assert batch.is_contiguous(memory_format=torch.channels_last)


def test_run_readers_explain_what_is_missing(home):
    with pytest.raises(FileNotFoundError, match="train"):
        run_folder.load_run_config("nothing-here")
    (home / "runs" / "empty").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="snapshot"):
        run_folder.list_snapshots(home / "runs" / "empty")
    with pytest.raises(FileNotFoundError, match="config.json"):
        run_folder.load_run_config(home / "runs" / "empty")


def test_atomic_writes_reach_the_disk(tmp_path, monkeypatch):
    """The file's bytes and then its folder entry are fsync'd, so a power cut keeps them."""
    synced = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: synced.append(os.readlink(f"/proc/self/fd/{fd}"))
                        or real_fsync(fd))
    storage.write_json(tmp_path / "a.json", {"x": 1})
    assert len(synced) == 2
    assert synced[0].startswith(str(tmp_path / ".a.json.")) and synced[1] == str(tmp_path)
    assert storage.read_json(tmp_path / "a.json") == {"x": 1}


def test_equal_objects_save_to_equal_bytes_at_any_path(tmp_path):
    """A snapshot's SHA-256 keys its feature caches: retraining must reproduce the bytes too."""
    state = {"w": torch.arange(6.0).reshape(2, 3), "iteration": 20}
    storage.save_torch(state, tmp_path / "a" / "G.pt")
    storage.save_torch(state, tmp_path / "b" / "other-name.pt")
    assert storage.sha256_file(tmp_path / "a" / "G.pt") == storage.sha256_file(tmp_path / "b" / "other-name.pt")
    assert torch.equal(storage.load_torch(tmp_path / "b" / "other-name.pt")["w"], state["w"])
