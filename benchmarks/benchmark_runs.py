"""The runs that benchmark scripts share: finished or not, raw views of EMA runs, scored once.

Training does not depend on the EMA (tests/test_train.py::test_an_ema_run_keeps_the_raw_
snapshots_of_the_same_run_without_ema), so an EMA run's raw snapshots (snapshots/raw/) are the
run without EMA: :func:`raw_run` makes that run's folder from them instead of a second training.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import torch

from gan_lib import metrics, storage
from gan_lib.gan import run_folder
from gan_lib.metrics import calibrate, feature_extractor
from gan_lib.studies import audit


def last_snapshot(run_dir: Path, iterations: int, raw: bool = False) -> Path:
    return run_dir / "snapshots" / (run_folder.RAW_SNAPSHOTS if raw else "") / \
        f"G_iter_{iterations:06d}.pt"


def finished(run_dir: Path, iterations: int, raw: bool = False) -> bool:
    return last_snapshot(run_dir, iterations, raw).is_file()


def raw_run(ema_dir: Path, run_dir: Path) -> None:
    """Make ``run_dir`` the run without EMA from the EMA run ``ema_dir``: its config with
    ema_decay 0, its log, and its raw snapshots (written whole: a folder, then one rename)."""
    record = storage.read_json(ema_dir / "config.json")
    record["config"] |= {"name": run_dir.name, "ema_decay": 0.0}
    record["raw_snapshots_of"] = (f"{ema_dir.name}: G's own weights beside its EMA; training "
                                  "does not depend on the EMA, so these are this run's")
    tmp = run_dir.with_name(run_dir.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "snapshots").mkdir(parents=True)
    storage.write_json(tmp / "config.json", record)
    shutil.copy2(ema_dir / "losses.jsonl", tmp / "losses.jsonl")
    for _, path in run_folder.list_snapshots(ema_dir, raw=True):
        shutil.copy2(path, tmp / "snapshots" / path.name)
    tmp.rename(run_dir)


def raw_check(run_dir: Path, ema_dir: Path, iterations: int) -> dict[str, Any] | None:
    """For a run trained on its own: are its final weights those of the EMA run's raw snapshot
    (the tensors; metadata such as the run name aside)? None when there is no such snapshot."""
    if not finished(ema_dir, iterations, raw=True):
        return None
    a = storage.load_torch(last_snapshot(run_dir, iterations))["state_dict"]
    b = storage.load_torch(last_snapshot(ema_dir, iterations, raw=True))["state_dict"]
    return {"run": ema_dir.name, "final_snapshot_weights_equal":
            a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)}


def scored(run_dir: Path, **score_overrides: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """(scores.json, audit.json) of a run, made now unless both exist under today's extraction
    (the variant recorded in each, :func:`gan_lib.metrics.feature_extractor.variant_name`).
    ``score_overrides``: ScoreConfig settings that fix the extraction (e.g. precision="bf16",
    compiled=True) for every run of a study, whatever the machine's default."""
    score_cfg = metrics.score_config(run=run_dir, **score_overrides)
    real = metrics.load_real(run_folder.load_run_config(run_dir), "train").images
    wanted = feature_extractor.variant_name(
        score_cfg, calibration_images=calibrate.calibration_batch(real))
    paths = run_dir / "scores.json", run_dir / "audit.json"
    if all(p.is_file() for p in paths):
        scores, audited = (storage.read_json(p) for p in paths)
        if scores.get("extraction") == wanted and audited.get("extraction") == wanted:
            return scores, audited
    return metrics.score_run(run_dir, score_cfg), audit.audit_run(run_dir, score_cfg)


def result_fields(run_dir: Path, scores: dict[str, Any], audited: dict[str, Any]) -> dict[str, Any]:
    """The fields every study's result row takes from a scored and audited run: its training
    segments, FID/KID per snapshot and floor, copy rates, C_T, and how the scores were made."""
    memo = audited["memorization"]
    return {
        "segments": run_folder.load_run_config(run_dir).get("segments", []),
        "scores": [{k: r.get(k) for k in ("metric", "kind", "iteration", "value", "std",
                                          "n_fake", "n_real", "compared", "same_n")}
                   for r in scores["scores"] if r["metric"] in ("fid", "kid")],
        "copy_rate": {space: memo[space]["copy_rate"]
                      for space in ("feature (cosine)", "pixel (RMS)")},
        "C_T": memo["C_T"],
        "extractor": scores["extractor"], "extraction": scores.get("extraction"),
        "weights_sha256": scores["weights"]["sha256"], "sampling": scores["sampling"],
        "data": scores["data"]["description"],
        "data_fingerprint": scores["data"].get("fingerprint"),
    }
