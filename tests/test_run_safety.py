"""One writer per run, failed starts undone, the loss log checked on resume, stale temporary
files removed: careless use (two terminals, a killed process) must not corrupt a run."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest

from gan_lib import config, storage
from gan_lib.gan import run_lock, train
from gan_lib.metrics import features, scoring
from tests import test_features, test_train
from tests.test_train import REPO, losses, tiny

fake_data, tiny_net = test_train.fake_data, test_features.tiny  # fixtures

# One training process of tiny(name="cc"), started as the command line starts it, each step
# slowed so that a second process meets it while it trains.
CLI_RUN = """
import sys, time
sys.path.insert(0, {repo!r})
from gan_lib import config, data, typed_settings
from gan_lib.gan import train
from gan_lib.__main__ import main
from tests.test_train import fake_dataset, tiny
data.load_dataset = lambda source, split, image_size, resize='crop': fake_dataset(source, split, image_size)
step = train.train_step
def slow_step(*args):
    time.sleep({delay})
    return step(*args)
train.train_step = slow_step
cfg = tiny(name="cc", iterations=12, snapshot_at=(12,), checkpoint_every=4)
settings = {{k: v for k, v in cfg.to_dict().items() if k not in ("name", "profile")}}
main(["train", "--profile", "smoke", "--run", "cc", *sys.argv[1:],
      *("--set=" + s for s in typed_settings.format_set(settings))])
"""


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    """Tiny ops on a shared 2-core machine are faster with one thread."""


def start(home, *args: str, delay: float = 0.15) -> subprocess.Popen:
    env = {**os.environ, "GAN_LIB_HOME": str(home), "TQDM_DISABLE": "1", "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-c", CLI_RUN.format(repo=str(REPO), delay=delay),
                             *args], env=env, cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def wait_for_lock(run_dir, proc: subprocess.Popen, timeout: float = 60) -> None:
    end = time.time() + timeout
    while run_lock.holder(run_dir).get("pid") != proc.pid:
        assert proc.poll() is None and time.time() < end, proc.communicate()
        time.sleep(0.05)


def test_two_trainings_of_one_run_the_second_stops_naming_the_first(home):
    first, second = start(home), start(home)
    results = [(p.pid, p.wait(timeout=120), p.communicate()) for p in (first, second)]
    codes = sorted(rc for _, rc, _ in results)
    assert codes == [0, 2], results
    winner = next(pid for pid, rc, _ in results if rc == 0)
    loser_err = next(out[1] for _, rc, out in results if rc == 2)
    assert f"in use by process {winner} (train" in loser_err and "Traceback" not in loser_err
    assert [r["iter"] for r in losses(home / "runs" / "cc")] == list(range(1, 13))


def test_resume_overwrite_and_score_are_refused_while_a_run_trains(home, fake_data):
    proc = start(home, delay=1.0)  # 12 s of training: the checks below run while it holds the lock
    run_dir = home / "runs" / "cc"
    try:
        wait_for_lock(run_dir, proc)
        for kwargs in ({"resume": True}, {"overwrite": True}, {}):
            with pytest.raises(run_lock.RunBusy, match=f"in use by process {proc.pid}"):
                train.train(tiny(name="cc", iterations=12, snapshot_at=(12,),
                                 checkpoint_every=4), **kwargs)
        while not run_dir.is_dir():  # a new run's folder appears at its first checkpoint
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.05)
        with pytest.raises(run_lock.RunBusy, match=f"process {proc.pid} \\(train"):
            scoring.score_run(run_dir)
        assert fake_data == []  # refused before any work
        while not (run_dir / "checkpoint.pt").exists():
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
    # the kernel released the lock of the killed process: resume goes on, each iteration once
    train.train(tiny(name="cc", iterations=12, snapshot_at=(12,), checkpoint_every=4),
                resume=True)
    assert [r["iter"] for r in losses(run_dir)] == list(range(1, 13))


def test_a_process_meeting_the_lock_before_its_holder_writes_its_pid_waits_for_it(tmp_path):
    """The holder writes its record just after flock: the one who meets the lock in that
    instant (an empty file, or the last holder's record of a dead pid) must name the holder."""
    import fcntl
    import threading
    path = run_lock.lock_path(tmp_path / "cc")
    path.write_text(json.dumps({"pid": 2 ** 22 + 12345, "action": "old"}))  # a dead holder
    fd = os.open(path, os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    record = json.dumps({"pid": os.getpid(), "action": "train", "started": "now"}).encode()
    late = threading.Timer(0.3, lambda: (os.ftruncate(fd, 0), os.pwrite(fd, record, 0)))
    late.start()
    try:
        busy = pytest.raises(run_lock.RunBusy, match=f"in use by process {os.getpid()} \\(train")
        with busy, run_lock.hold(tmp_path / "cc", "score"):
            pass
    finally:
        late.join()
        os.close(fd)


def test_the_reports_kernels_work_under_its_lock_other_processes_do_not(home):
    run_dir = config.RUNS_DIR / "shared"
    probe = ("import sys; from gan_lib.gan import run_lock\n"
             "try:\n    run_lock.hold(sys.argv[1], 'score').__enter__()\n"
             "except run_lock.RunBusy as e:\n    print('busy', e)\nelse:\n    print('ok')")

    def child(env):
        return subprocess.run([sys.executable, "-c", probe, str(run_dir)], env=env, cwd=REPO,
                              capture_output=True, text=True, timeout=60).stdout

    with run_lock.hold(run_dir, "report", share=True):
        assert child({**os.environ}).startswith("ok")  # a kernel: the report's environment
        stranger = {k: v for k, v in os.environ.items() if k != run_lock.ENV}
        assert child(stranger).startswith(f"busy Run folder {run_dir} is in use by process "
                                          f"{os.getpid()} (report")
        with run_lock.hold(run_dir, "score"):  # the same process again: shared
            pass
    assert run_lock.ENV not in os.environ and child(stranger).startswith("ok")


def test_a_new_run_that_fails_before_its_first_checkpoint_is_removed(home, fake_data,
                                                                     monkeypatch):
    def broken(*args):
        raise RuntimeError("out of memory")

    real_step = train.train_step
    monkeypatch.setattr(train, "train_step", broken)
    with pytest.raises(RuntimeError, match="out of memory"):
        train.train(tiny())
    assert not (home / "runs" / "tiny").exists()
    monkeypatch.setattr(train, "train_step", real_step)
    assert len(losses(train.train(tiny()))) == 6  # a plain rerun starts it afresh
    # a failure after a checkpoint keeps the run, to resume
    monkeypatch.setattr(train, "train_step", broken)
    with pytest.raises(RuntimeError):
        train.train(tiny(iterations=8, snapshot_at=(8,)), resume=True)
    assert (home / "runs" / "tiny" / "checkpoint.pt").is_file()


@pytest.mark.parametrize("settings", [{"z_dim": 0}, {"g_channels": 0}, {"d_channels": -1},
                                      {"grid_size": 0}, {"lr": -1.0}, {"lr": float("nan")},
                                      {"beta1": 1.0}, {"beta2": float("inf")},
                                      {"name": "x" * 300}, {"name": "a\\b"},
                                      {"name": "a\nb"}])
def test_bad_settings_are_refused_naming_the_key_before_a_folder_exists(home, settings):
    key = next(iter(settings))
    with pytest.raises(ValueError, match=f"Invalid TrainConfig: {key}="):
        tiny(**settings)
    assert not (home / "runs").exists()


def rows_of(run_dir, keep) -> None:
    log = run_dir / "losses.jsonl"
    lines = log.read_text().splitlines(keepends=True)
    log.write_text("".join(line for line in lines if keep(json.loads(line)["iter"])))


@pytest.mark.parametrize(("keep", "message"), [
    (lambda it: it not in (2, 3), "lacks iterations 2-3 of 1..4"),
    (lambda it: it > 1, "lacks iterations 1 of 1..4"),
])
def test_resume_refuses_a_log_that_lost_rows_below_the_checkpoint(home, fake_data, keep,
                                                                 message):
    run_dir = train.train(tiny(iterations=4, snapshot_at=(4,)))
    rows_of(run_dir, keep)
    before = (run_dir / "losses.jsonl").read_text()
    with pytest.raises(ValueError, match=f"checkpoint.pt \\(iteration 4\\): it {message}.*"
                                         "Restore losses.jsonl.*overwrite=True"):
        train.train(tiny(iterations=6), resume=True)
    assert (run_dir / "losses.jsonl").read_text() == before
    (run_dir / "losses.jsonl").write_text(before + before.splitlines(keepends=True)[-1])
    with pytest.raises(ValueError, match="repeats iterations 4"):
        train.train(tiny(iterations=6), resume=True)
    (run_dir / "losses.jsonl").unlink()
    with pytest.raises(ValueError, match="losses.jsonl is missing"):
        train.train(tiny(iterations=6), resume=True)


def test_the_log_reaches_the_disk_before_each_checkpoint(home, fake_data, monkeypatch):
    events, real_fsync, real_save = [], os.fsync, train.checkpoint.save

    def fsync(fd):
        events.append(os.readlink(f"/proc/self/fd/{fd}").rsplit("/", 1)[-1])
        return real_fsync(fd)

    def save(path, cfg, nets, step, *args, **kwargs):
        events.append(f"checkpoint {step}")
        return real_save(path, cfg, nets, step, *args, **kwargs)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(train.checkpoint, "save", save)
    train.train(tiny())
    checkpoints = [i for i, e in enumerate(events) if e.startswith("checkpoint")]
    assert [events[i] for i in checkpoints] == ["checkpoint 2", "checkpoint 4", "checkpoint 6"]
    for before, at in zip([-1, *checkpoints], checkpoints, strict=False):
        assert "losses.jsonl" in events[before + 1:at]  # fsync'd since the last checkpoint


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_stale_temporary_files_are_removed_on_the_next_run(home, fake_data, tiny_net):
    net, ds = tiny_net
    run_dir = train.train(tiny(iterations=2, snapshot_at=(2,)))
    dead = dead_pid()
    stale = [run_dir / "grids" / f".epoch_0001.png.{dead}.abcd1234.tmp.png",
             run_dir / f".checkpoint.pt.{dead}.x_y_z_12.tmp.pt"]
    live = run_dir / f".checkpoint.pt.{os.getpid()}.qwer5678.tmp.pt"  # a writer at work
    old = run_dir / ".config.json.oldstyle.tmp.json"  # no pid, a day old
    for path in [*stale, live, old]:
        path.write_bytes(b"partial")
    os.utime(old, (time.time() - 2 * storage.STALE_SECONDS,) * 2)
    train.train(tiny(iterations=4, snapshot_at=(4,)), resume=True)
    assert [p.exists() for p in [*stale, live, old]] == [False, False, True, False]
    # a feature cache killed mid-write: the next extraction into that folder removes it
    cache = features.cache_path("real", {"n": 4}, "x").parent
    cache.mkdir(parents=True)
    leftover = cache / f".real-x.npz.{dead}.k9k9k9k9.tmp.npz"
    leftover.write_bytes(b"\0" * 1000)
    features.real_features(net, ds, 10, 8)
    assert not leftover.exists()


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # numpy on the covariance of one image
def test_one_image_never_becomes_nan_statistics_in_the_cache(tiny_net):
    net, ds = tiny_net
    with pytest.raises(ValueError, match="not finite: a covariance needs at least 2 images"):
        features.real_features(net, ds, 1, 8)
    assert not list(config.CACHE_DIR.rglob("*.npz"))
    with pytest.raises(ValueError, match="n_real=1: expected None .* or an integer >= 2"):
        config.make_score_config("smoke", n_real=1)


def test_a_copied_or_renamed_run_resumes_under_its_new_name(home, fake_data):
    from gan_lib.report import pipeline

    train.train(tiny(name="orig", iterations=4, snapshot_at=(4,)))
    (home / "runs" / "orig").rename(home / "runs" / "moved")
    assert pipeline.training_plan(tiny(name="moved", iterations=4, snapshot_at=(4,))) == {
        "resume": True, "overwrite": False}  # the report (and notebook 02) reuse it
    cfg = tiny(name="moved", iterations=6)
    assert [r["iter"] for r in losses(train.train(cfg, resume=True))] == [1, 2, 3, 4, 5, 6]
    assert storage.read_json(home / "runs" / "moved" / "config.json")["config"]["name"] == "moved"


def test_scoring_an_unfinished_run_says_which_iteration_it_uses(home, fake_data, monkeypatch,
                                                                capsys):
    def stop(*args):
        raise RuntimeError("stop before the Inception network loads")

    run_dir = train.train(tiny(iterations=4, snapshot_at=(4,)))
    capsys.readouterr()
    monkeypatch.setattr(scoring, "load_extractor", stop)
    with pytest.raises(RuntimeError, match="stop"):
        scoring.score_run(run_dir)
    assert capsys.readouterr().out == ""  # finished: nothing to say
    storage.write_json(run_dir / "config.json", {**storage.read_json(run_dir / "config.json"),
                                            "config": tiny(iterations=10).to_dict()})
    with pytest.raises(RuntimeError, match="stop"):
        scoring.score_run(run_dir)
    assert ("run 'tiny' is unfinished: its latest snapshot is iteration 4 of 10, and that is "
            "the last one scored" in capsys.readouterr().out)


@pytest.mark.parametrize("command", [["utility"], ["score", "--profile", "smoke"], ["audit"],
                                     ["quiz"]])
def test_a_folder_that_is_not_a_run_gets_no_lock_file_beside_it(home, tmp_path, capsys,
                                                                  command):
    """`utility /`, `score /etc` or `utility <data>/train` left `/..lock`, `/.etc.lock` and
    `<data>/.train.lock`: the data folder is never written, whatever the command."""
    from gan_lib.__main__ import main

    data = tmp_path / "xray"
    (data / "train" / "NORMAL").mkdir(parents=True)
    before = sorted(p.name for p in data.iterdir())
    with pytest.raises(SystemExit) as stop:
        main([*command, str(data / "train")])
    assert stop.value.code == 2 and "config.json not found" in capsys.readouterr().err
    assert sorted(p.name for p in data.iterdir()) == before
    assert not list(tmp_path.rglob("*.lock"))


def _run_folder_with(home, edit):
    """runs/x with a config.json as train() writes it, then ``edit(meta)`` applied."""
    from gan_lib.gan import run_folder

    run_dir = home / "runs" / "x"
    run_dir.mkdir(parents=True)
    meta = {"config": config.make_train_config("smoke", name="x").to_dict(),
            "data": {"source": "phantom", "description": "synthetic phantom data", "kind": "phantom",
                     "fingerprint": "0123456789abcdef", "n_images": 256, "is_synthetic": True,
                     "resized_note": None},
            "device": "cpu", "precision": "fp32", "segments": [{"from_iteration": 0}]}
    storage.write_json(run_dir / "config.json", meta)
    assert run_folder.load_run_config(run_dir)["config"]["name"] == "x"  # unedited: it reads
    edit(meta)
    storage.write_json(run_dir / "config.json", meta)
    return run_dir


@pytest.mark.parametrize(("edit", "message"), [
    (lambda m: m["config"].update(iterations="abc"),
     "config.iterations='abc': expected int, got str (a string)"),
    (lambda m: m.update(config="oops"),
     "config='oops': expected a JSON object of TrainConfig settings"),
    (lambda m: m["config"].update(profile=["smoke"]),
     "config.profile=['smoke']: expected str, got list (a list)"),
    (lambda m: m["data"].update(n_images="many"),
     "data.n_images='many': expected int, got str (a string)"),
    (lambda m: m["config"].pop("image_size"), "config lacks image_size"),
])
def test_a_hand_edited_config_json_is_refused_naming_file_key_value_and_type(
        home, capsys, edit, message):
    """They gave `error: invalid literal for int()`, `string indices must be integers` and
    `unhashable type: 'list'`: nothing that names the file or the key."""
    from gan_lib.__main__ import main

    run_dir = _run_folder_with(home, edit)
    for command in (["score", "x"], ["audit", "x"], ["utility", "x"]):
        with pytest.raises(SystemExit) as stop:
            main(command)
        err = capsys.readouterr().err
        assert stop.value.code == 2 and err.count("\n") == 1 and err.startswith("error: ")
        assert f"{run_dir / 'config.json'}: {message}" in err, err


def test_a_hand_edited_loss_row_is_refused_naming_file_row_key_and_type(home):
    from gan_lib.gan import run_folder

    log = home / "losses.jsonl"
    row = {"iter": 1, "epoch": 1, "loss_D": 1.2, "loss_G": 0.7, "D_x": 0.5, "D_G_z": 0.4,
           "seconds": 0.1}
    log.write_text(json.dumps(row) + "\n" + json.dumps({**row, "iter": 2, "loss_D": "abc"}) + "\n")
    with pytest.raises(ValueError, match=r"losses.jsonl: row 2.loss_D='abc': expected float, got "
                                         r"str \(a string\)"):
        run_folder.read_losses(log)
    log.write_text(json.dumps({k: v for k, v in row.items() if k != "D_x"}) + "\n")
    with pytest.raises(ValueError, match="row 1 lacks D_x"):
        run_folder.read_losses(log)
    pre_move = test_train.REPO / "tests" / "fixtures" / "pre_move" / "premove-ema" / "losses.jsonl"
    assert [r["iter"] for r in run_folder.read_losses(pre_move)] == [1, 2]  # older runs read


def _no_room(monkeypatch, free: int = 1000) -> None:
    """Every folder reports ``free`` bytes free (shutil.disk_usage, as storage reads it)."""
    real = storage.shutil.disk_usage
    monkeypatch.setattr(storage.shutil, "disk_usage",
                        lambda p: real(p)._replace(free=free))


def test_a_full_disk_is_said_with_what_was_needed_and_nothing_partial_is_left(tmp_path,
                                                                            monkeypatch):
    """torch's writer said `unexpected pos 12672 vs 12566`; the cause is said, with numbers."""
    import errno

    import torch

    target = tmp_path / "ckpt.pt"
    storage.save_torch({"w": torch.zeros(10)}, target)
    before = target.read_bytes()
    big = {"w": torch.zeros(1_000_000)}  # 4 MB: more than the 1000 bytes said free
    with monkeypatch.context() as full, pytest.raises(
            storage.NoSpaceLeft, match=rf"^no space left on {tmp_path}: 4\.0 MB needed, "
                                       r"0\.0 MB free\. Free some space"):
        _no_room(full)
        storage.save_torch(big, target)

    def fills_up(self, data):  # the disk fills up halfway through the write
        with open(self, "wb") as f:
            f.write(bytes(data)[: len(data) // 2])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(storage.Path, "write_bytes", fills_up)
    with pytest.raises(storage.NoSpaceLeft, match=r"0\.0 MB needed, [\d.]+ MB free"):
        storage.write_text(tmp_path / "ckpt.pt", "x" * 100)
    with pytest.raises(storage.NoSpaceLeft, match=r"at least [\d.]+ MB needed"), \
            storage.atomic_path(target) as tmp:  # torch's writer: a RuntimeError over ENOSPC
        try:
            fills_up(tmp, b"y" * 4096)
        except OSError as err:
            raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected "
                               "pos 12672 vs 12566") from err
    assert target.read_bytes() == before, "the last complete file must stay"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt.pt"], "a temporary file is left"


def test_training_on_a_full_disk_stops_with_one_error_line_and_keeps_its_checkpoint(
        home, fake_data, monkeypatch, capsys):
    from gan_lib import typed_settings
    from gan_lib.__main__ import main
    from gan_lib.gan import checkpoint

    run_dir = train.train(tiny(iterations=4, snapshot_at=(4,)))
    saved = (run_dir / "checkpoint.pt").read_bytes()
    settings = {k: v for k, v in tiny(iterations=6).to_dict().items() if k not in ("name", "profile")}
    with monkeypatch.context() as full, pytest.raises(SystemExit) as stop:
        _no_room(full)
        main(["train", "--profile", "smoke", "--run", "tiny", "--resume",
              *("--set=" + s for s in typed_settings.format_set(settings))])
    err = capsys.readouterr().err
    assert stop.value.code == 2 and err.startswith(f"error: no space left on {run_dir}") \
        and " MB needed, 0.0 MB free" in err and err.count("\n") == 1, err
    assert (run_dir / "checkpoint.pt").read_bytes() == saved
    assert not [p for p in run_dir.rglob("*") if ".tmp" in p.name]
    assert checkpoint.read(run_dir / "checkpoint.pt")["step"] == 4
    train.train(tiny(iterations=6), resume=True)  # room again: it goes on from there
    assert [r["iter"] for r in losses(run_dir)] == list(range(1, 7))


def test_an_edited_image_size_is_refused_not_scored_with_a_fingerprint_warning(home, capsys):
    """image_size 64 -> 32 in config.json: real images at 32 px would be scored against the
    snapshots' 64 px images, with only a warning that the data's fingerprint differs."""
    from gan_lib.__main__ import main
    from gan_lib.gan import run_folder, sampling

    run_dir = _run_folder_with(home, lambda m: m["config"].update(image_size=32))
    storage.save_torch({"format": sampling.SNAPSHOT_FORMAT, "kwargs": {"image_size": 64},
                        "state_dict": {}}, run_dir / "snapshots" / "G_iter_000020.pt")
    message = (f"{run_dir / 'config.json'}: config.image_size=32, but the run's snapshots "
               "generate 64 x 64 images (G_iter_000020.pt)")
    with pytest.raises(ValueError, match=re.escape(message)):
        run_folder.load_run_config(run_dir)
    with pytest.raises(SystemExit) as stop:
        main(["score", "x"])
    err = capsys.readouterr().err
    assert stop.value.code == 2 and err.startswith(f"error: {message}") and err.count("\n") == 1
    meta = storage.read_json(run_dir / "config.json")
    meta["config"]["image_size"] = 64  # as trained: it reads again
    storage.write_json(run_dir / "config.json", meta)
    assert run_folder.load_run_config(run_dir)["config"]["image_size"] == 64
