"""Files written before gan_lib became subpackages still load, and give the same images.

tests/fixtures/pre_move/ holds two tiny runs that the flat package (commit 775fda6, before
issue 25 moved its modules) wrote with tests/fixtures/pre_move/make_fixture.py: an EMA run
(its checkpoint and snapshot) and a class-conditional run with a concat generator (its
snapshot). Snapshots and checkpoints are dicts of tensors and plain values loaded with
``weights_only=True``, so no module path is stored in them; these tests keep it so. The
hashes are of ``generate(snapshot, 8, seed=0)`` as the old code computed it (one CPU thread).
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest
import torch

from gan_lib import config, storage
from gan_lib.gan import checkpoint, run_folder, sampling, trainable

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "pre_move"
IMAGES_SHA256 = {  # generate(snapshot, 8, seed=0).numpy().tobytes(), by the pre-move code
    "premove-ema": "65ac4cc68584db1610ab9761eaa7da9029ed0f68cef2e454f844e00d950803e0",
    "premove-concat": "b8b9defa6c869f92019e87c71e9582efcace21d5f232b99a61929d06937d5139",
}


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    """The hashes were made with one CPU thread."""


@pytest.mark.parametrize("run", sorted(IMAGES_SHA256))
def test_a_pre_move_snapshot_gives_the_same_images(run):
    snapshot = FIXTURES / run / "snapshots" / "G_iter_000002.pt"
    images = sampling.generate(snapshot, 8, seed=0)
    assert images.dtype == torch.uint8 and tuple(images.shape) == (8, 1, 32, 32)
    assert hashlib.sha256(images.numpy().tobytes()).hexdigest() == IMAGES_SHA256[run]


def test_the_pre_move_concat_generator_keeps_its_conditioning():
    G = sampling.load_generator(FIXTURES / "premove-concat" / "snapshots" / "G_iter_000002.pt")
    assert G.kwargs["conditioning"] == "concat" and G.embed is not None


def test_a_pre_move_checkpoint_restores_and_may_resume():
    ckpt = checkpoint.read(FIXTURES / "premove-ema" / "checkpoint.pt")
    saved = checkpoint.saved_config(ckpt)
    settings = {k: v for k, v in saved.items() if k != "profile"}
    cfg = config.make_train_config(saved["profile"], **{**settings, "iterations": 3})
    checkpoint.check_resumable(cfg, ckpt, "fp32")  # nothing differs but the iterations
    built = trainable.build_nets(cfg, torch.device("cpu"))
    step, _ = checkpoint.restore(ckpt, built)
    assert step == 2
    for name, tensor in built.G.state_dict().items():
        assert torch.equal(tensor, ckpt["G"][name]), name


def test_a_pre_move_run_folder_reads(tmp_path, monkeypatch):
    monkeypatch.setattr(config, "RUNS_DIR", tmp_path / "runs")
    run_dir = shutil.copytree(FIXTURES / "premove-ema", tmp_path / "runs" / "premove-ema")
    assert [(i, p.name) for i, p in run_folder.list_snapshots(run_dir)] == [(2, "G_iter_000002.pt")]
    assert run_folder.load_run_config(run_dir)["config"]["ema_decay"] == 0.9
    assert storage.read_json(run_dir / "config.json")["data"]["source"] == "phantom"


def test_a_conditional_snapshot_from_before_the_conditioning_option_loads_as_concat(tmp_path):
    """Snapshots written before Generator took ``conditioning`` lack it in their kwargs; they
    were concat, while the constructor's default is now conditional BatchNorm (gan/legacy.py)."""
    blob = storage.load_torch(FIXTURES / "premove-concat" / "snapshots" / "G_iter_000002.pt")
    del blob["kwargs"]["conditioning"]
    storage.save_torch(blob, tmp_path / "G_iter_000002.pt")
    images = sampling.generate(tmp_path / "G_iter_000002.pt", 8, seed=0)
    assert hashlib.sha256(images.numpy().tobytes()).hexdigest() == IMAGES_SHA256["premove-concat"]
