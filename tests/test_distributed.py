"""torchrun on the CPU (gloo): two processes train as one does, resume after one is killed,
and share the extraction of a scoring run without changing a score.

Each case launches ``torchrun --standalone --nproc_per_node=2`` as a subprocess on a driver
script that swaps in the tiny stand-in data and feature extractor of test_train/test_metrics,
then runs the package's own command line. About half a minute in all.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from gan_lib import __main__ as main
from gan_lib import config, metrics, storage, typed_settings
from gan_lib.gan import launch, train
from gan_lib.scale import distributed
from tests.test_metrics import TINY, fake_real, run, tiny_cfg  # noqa: F401  (fixture)
from tests.test_train import fake_data, losses, tiny  # noqa: F401, F811  (fixture)

pytestmark = pytest.mark.distributed
REPO = config.REPO_ROOT
TORCHRUN = Path(sys.executable).with_name("torchrun")

# The run of every training case: 5 batches of 8 per epoch, snapshots, checkpoints every 4.
SETTINGS = dict(iterations=12, snapshot_at=(12,), checkpoint_every=4, ema_decay=0.9,
                augment="translation,cutout,brightness,contrast")

DRIVER = """
import sys, time
sys.path.insert(0, {repo!r})
from gan_lib import __main__, config, data, metrics
from gan_lib.metrics import scoring
from gan_lib.scale import distributed
from gan_lib.gan import train
from tests.test_train import fake_dataset
from tests.test_metrics import TINY, fake_real, tiny_cfg  # registers the tiny extractor
data.load_dataset = lambda source, split, image_size, resize='crop': fake_dataset(source, split, image_size)
scoring.load_real = fake_real  # where score_run looks it up
if {slow}:  # slow enough to be killed mid-run
    step = train.train_step
    train.train_step = lambda *args: (time.sleep(0.15), step(*args))[1]
if sys.argv[1] == "score-tiny":  # the CLI's score command, with the tiny extractor
    with distributed.launched():
        metrics.score_run(config.RUNS_DIR / sys.argv[2], tiny_cfg(), extractor=TINY)
else:
    __main__.main(sys.argv[1:])
"""


def torchrun(home: Path, args: list[str], slow: bool = False, nproc: int = 2,
             wait: bool = True) -> subprocess.Popen | subprocess.CompletedProcess:
    """``torchrun`` on the driver with ``args``, outputs and caches under ``home``."""
    driver = home / "driver.py"
    driver.write_text(DRIVER.format(repo=str(REPO), slow=slow))
    env = {**os.environ, "GAN_LIB_HOME": str(home), "GAN_LIB_DATA": str(home / "data"),
           "TQDM_DISABLE": "1", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    # "--": torchrun would take --run (and any prefix of its own options) for itself
    cmd = [str(TORCHRUN), "--standalone", f"--nproc_per_node={nproc}", str(driver), "--", *args]
    if not wait:
        return subprocess.Popen(cmd, env=env, cwd=REPO, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, start_new_session=True)
    done = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    return done


def train_args(name: str, **settings) -> list[str]:
    args = launch.command(tiny(name=name, **{**SETTINGS, **settings}), 2)
    return args[args.index("--") + 1:]  # what launch passes to gan_lib's command line


def assert_same_steps(two: list[dict], one: list[dict], steps: int) -> None:
    """A 2-process run's log against one process's: the same steps, up to reduction order."""
    assert [r["iter"] for r in two] == [r["iter"] for r in one] == list(range(1, steps + 1))
    # Step 1's D evaluations come before any update: the global batch, its augmentation and
    # BatchNorm over all 8 images must be those of one process, up to rounding.
    for k in ("loss_D", "D_x", "D_G_z"):
        assert two[0][k] == pytest.approx(one[0][k], rel=1e-5), k
    # Later steps differ by the order of the gradient all-reduce only; Adam's first updates
    # (~lr * sign(g)) magnify such rounding to ~1e-3 of a loss within a dozen steps.
    for ra, rb in zip(two, one, strict=True):
        for k in ("loss_D", "loss_G", "D_x", "D_G_z"):
            assert ra[k] == pytest.approx(rb[k], rel=2e-2, abs=1e-3), (ra["iter"], k)


@pytest.fixture(scope="module")
def two_process_run(tmp_path_factory):
    """One uninterrupted 2-process run (module-wide: two cases compare with it)."""
    home = tmp_path_factory.mktemp("ddp")
    torchrun(home, train_args("two"))
    return home / "runs" / "two"


@pytest.mark.usefixtures("fake_data")
def test_two_processes_take_the_steps_of_one(two_process_run, home):
    one = train.train(tiny(name="one", **SETTINGS))
    assert_same_steps(losses(two_process_run), losses(one), 12)
    meta = storage.read_json(two_process_run / "config.json")
    assert meta["segments"][-1]["world_size"] == 2
    assert storage.load_torch(two_process_run / "checkpoint.pt")["world_size"] == 2
    # rank 0 alone wrote the run folder: one row per step, one snapshot (EMA, and G's raw), grids
    assert sorted(p.name for p in (two_process_run / "snapshots").iterdir()) == \
        ["G_iter_000012.pt", "raw"]
    assert [p.name for p in (two_process_run / "snapshots" / "raw").iterdir()] == \
        ["G_iter_000012.pt"]


@pytest.mark.usefixtures("fake_data")
def test_a_conditional_run_takes_the_steps_of_one_in_two_processes(home):
    """Conditional BatchNorm in G and the projection D, over the global batch and its labels."""
    settings = dict(conditional=True, iterations=4, snapshot_at=(4,), checkpoint_every=4)
    torchrun(home, train_args("two-c", **settings))
    one = train.train(tiny(name="one-c", **{**SETTINGS, **settings}))
    assert_same_steps(losses(home / "runs" / "two-c"), losses(one), 4)
    assert "main.1.gain.weight" in storage.load_torch(home / "runs" / "two-c" / "checkpoint.pt")["G"]


@pytest.mark.usefixtures("fake_data")
def test_a_batch_that_does_not_split_evenly_is_refused_before_any_work(home, monkeypatch):
    monkeypatch.setattr(distributed, "world_size", lambda: 2)
    with pytest.raises(ValueError, match="batch_size=7 is the global batch"):
        train.train(tiny(name="odd", batch_size=7))
    assert not (home / "runs" / "odd").exists()


def test_resume_after_one_rank_is_killed_continues_the_uninterrupted_run(two_process_run,
                                                                         tmp_path):
    proc = torchrun(tmp_path, train_args("two"), slow=True, wait=False)
    run_dir = tmp_path / "runs" / "two"
    deadline = time.time() + 90
    while proc.poll() is None and time.time() < deadline and not (
            (run_dir / "checkpoint.pt").exists() and len(losses(run_dir)) >= 5):
        time.sleep(0.02)
    workers = _children(proc.pid)
    assert len(workers) == 2, workers
    os.kill(max(workers), signal.SIGKILL)  # one rank dies; torchrun stops the other
    proc.communicate(timeout=120)
    assert proc.returncode != 0
    step = storage.load_torch(run_dir / "checkpoint.pt")["step"]
    assert step in (4, 8) and step < len(losses(run_dir)) < 12  # killed mid-way
    torchrun(tmp_path, [*train_args("two"), "--resume"])
    assert losses(run_dir) == losses(two_process_run)
    a = storage.load_torch(run_dir / "checkpoint.pt")
    b = storage.load_torch(two_process_run / "checkpoint.pt")
    for part in ("G", "D", "ema"):
        assert all(torch.equal(a[part][k], b[part][k]) for k in a[part]), part


@pytest.mark.usefixtures("fake_data")
def test_resuming_with_another_world_size_says_so_and_finishes(two_process_run, home, capsys):
    run_dir = home / "runs" / "two"
    shutil.copytree(two_process_run, run_dir)
    train.train(tiny(name="two", **{**SETTINGS, "iterations": 16, "snapshot_at": (16,)}),
                resume=True)
    assert "resuming 'two' with 1 process(es); it was trained with 2" in capsys.readouterr().out
    assert [r["iter"] for r in losses(run_dir)] == list(range(1, 17))
    assert [s["world_size"] for s in storage.read_json(run_dir / "config.json")["segments"]] == [2, 1]


def test_sharded_scoring_equals_one_process(run):  # noqa: F811  (the fixture)
    one = metrics.score_run(run, tiny_cfg(), extractor=TINY)
    os.remove(run / "scores.json")
    torchrun(run.parent.parent, ["score-tiny", run.name])  # its own, empty feature cache
    two = json.loads((run / "scores.json").read_text())
    assert two["processes"] == 2 and one["processes"] == 1
    assert all(s["cache"] == "built" for s in (two["real_stats"],))
    pairs = {(r["name"], r["compared"]): r["value"] for r in one["scores"]}
    assert len(pairs) == len(two["scores"]) > 5
    for r in two["scores"]:
        assert r["value"] == pytest.approx(pairs[(r["name"], r["compared"])], rel=1e-6), r["name"]


def _children(pid: int) -> list[int]:
    """The worker processes torchrun started (its direct children)."""
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


def test_the_launch_command_carries_every_setting():
    cfg = tiny(name="carried", **SETTINGS)
    args = launch.command(cfg, 4, resume=True)
    assert args[:4] == ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node=4"]
    parsed = main.build_parser().parse_args(args[args.index("--") + 1:])
    assert parsed.command == "train" and parsed.run == "carried" and parsed.resume
    sets = typed_settings.parse_set([s.removeprefix("--set=") for s in args
                                     if s.startswith("--set=")], config.TrainConfig)
    assert config.make_train_config(parsed.profile, name=parsed.run, **sets) == cfg


def test_launch_trains_on_the_phantom_in_two_processes_and_streams_progress(home, capfd):
    cfg = config.make_train_config("smoke", name="launched", source="phantom", iterations=4,
                                   snapshot_at=(4,), checkpoint_every=2, precision="fp32")
    run_dir = launch.train(cfg, processes=2)
    out = capfd.readouterr().out
    assert "batch 32 (2 processes of 16)" in out and "run folder:" in out
    assert run_dir == home / "runs" / "launched"
    assert [r["iter"] for r in losses(run_dir)] == [1, 2, 3, 4]
    assert storage.read_json(run_dir / "config.json")["segments"][-1]["world_size"] == 2


def test_a_failing_launch_raises_with_the_end_of_its_output(home, monkeypatch, capfd):
    """What torchrun prints streams through, and a non-zero exit raises with its last lines."""
    failing = "import sys; print('rank 0: runs/x exists'); sys.exit(3)"
    monkeypatch.setattr(launch, "command", lambda *args: ["-c", failing])
    with pytest.raises(RuntimeError, match=r"(?s)2 processes failed \(exit 3\).*runs/x exists"):
        launch.train(tiny(), processes=2)
    assert "rank 0: runs/x exists" in capfd.readouterr().out


def test_one_process_trains_here_without_torchrun(home, monkeypatch):
    monkeypatch.setattr(launch.subprocess, "Popen", None)  # would fail if torchrun were used
    seen = []
    monkeypatch.setattr(launch.training, "train", lambda cfg, **kw: seen.append(kw) or "here")
    assert launch.train(tiny(), processes=None if not torch.cuda.is_available() else 1) == "here"
    assert seen == [{"resume": False, "overwrite": False}]
