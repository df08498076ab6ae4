"""Does small-data training help? DiffAugment and an EMA generator, measured on this data.

Trains the same run four ways (baseline, DiffAugment, EMA, both), each on the full training
split and on a subset, with one seed, profile, precision and data; then scores every snapshot
with Table 1's rules (FID/KID against the reference set, floors at the same n pair) and audits
the final snapshot (copy rate, C_T). Prints two Markdown tables (every run; each option against
the baseline on the same images) and how the numbers were made; ``--json`` writes all of it.

    .venv/bin/python benchmarks/small_data.py --json    # benchmarks/results/small_data.json
    .venv/bin/python benchmarks/small_data.py --profile smoke --sizes 64 \\
        --settings baseline,diffaug --json /tmp/small_data_smoke.json    # a tiny check

Baseline and DiffAugment are not trained: they are the raw snapshots (snapshots/raw/) of the EMA
and "both" runs, since training does not depend on the EMA. Cost on the 2-core CPU at the quick
profile, one thread per process: ~30 min of training per EMA run and ~10 min of scoring per run,
about 2 h per size. Runs already finished are reused (their folders under runs/ are named
sd-<setting>-<size>, with the profile after "sd-" for other profiles), so it can be stopped and
restarted, and ``--runs-only --sizes all`` and ``--runs-only --sizes 1000`` prepare the runs in
two processes before the timed, tabulated call (benchmarks/README.md).
"""

from __future__ import annotations

import argparse
import datetime as dt
import platform
import shutil
import statistics
import time
from pathlib import Path
from typing import Any

import torch

from gan_lib import config, io, metrics
from gan_lib import device as device_lib
from gan_lib.gan import checkpoint, runinfo, train
from gan_lib.gan.augment import Augment
from gan_lib.studies import audit

DEFAULT_JSON = Path(__file__).resolve().parent / "results" / "small_data.json"
SETTINGS = {
    "baseline": {},
    "diffaug": {"augment": "translation,cutout"},
    "ema": {"ema_decay": 0.999},
    "both": {"augment": "translation,cutout", "ema_decay": 0.999},
}


# Training does not depend on the EMA, so an EMA run's raw snapshots (snapshots/raw/) are the
# run without it (tests/test_train.py::test_an_ema_run_keeps_the_raw_snapshots_of_the_same_run_
# without_ema): baseline and DiffAugment come from the EMA runs instead of a second training.
RAW_OF = {"baseline": "ema", "diffaug": "both"}


def run_name(profile: str, setting: str, size: int | None) -> str:
    tail = f"{setting}-{size or 'all'}"
    return f"sd-{tail}" if profile == "quick" else f"sd-{profile}-{tail}"


def last_snapshot(run_dir: Path, iterations: int, raw: bool = False) -> Path:
    return run_dir / "snapshots" / (runinfo.RAW_SNAPSHOTS if raw else "") / \
        f"G_iter_{iterations:06d}.pt"


def finished(run_dir: Path, iterations: int, raw: bool = False) -> bool:
    return last_snapshot(run_dir, iterations, raw).is_file()


def raw_run(ema_dir: Path, run_dir: Path) -> None:
    """Make ``run_dir`` the run without EMA from the EMA run ``ema_dir``: its config with
    ema_decay 0, its log, and its raw snapshots (written whole: a folder, then one rename)."""
    record = io.read_json(ema_dir / "config.json")
    record["config"] |= {"name": run_dir.name, "ema_decay": 0.0}
    record["raw_snapshots_of"] = (f"{ema_dir.name}: G's own weights beside its EMA; training "
                                  "does not depend on the EMA, so these are this run's")
    tmp = run_dir.with_name(run_dir.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "snapshots").mkdir(parents=True)
    io.write_json(tmp / "config.json", record)
    shutil.copy2(ema_dir / "losses.jsonl", tmp / "losses.jsonl")
    for _, path in runinfo.list_snapshots(ema_dir, raw=True):
        shutil.copy2(path, tmp / "snapshots" / path.name)
    tmp.rename(run_dir)


def raw_check(run_dir: Path, ema_dir: Path, iterations: int) -> dict[str, Any] | None:
    """For a run trained on its own: are its final weights those of the EMA run's raw snapshot
    (the tensors; metadata such as the run name aside)? None when there is no such snapshot."""
    if not finished(ema_dir, iterations, raw=True):
        return None
    a = io.load_torch(last_snapshot(run_dir, iterations))["state_dict"]
    b = io.load_torch(last_snapshot(ema_dir, iterations, raw=True))["state_dict"]
    return {"run": ema_dir.name, "final_snapshot_weights_equal":
            a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)}


def one_run(profile: str, setting: str, size: int | None, precision: str,
            source: str) -> dict[str, Any]:
    """Train (or reuse, or take from its EMA run) one run, score and audit it; its result row."""
    name = run_name(profile, setting, size)
    cfg = config.make_train_config(profile, name=name, source=source, precision=precision,
                                   subset=size, **SETTINGS[setting])
    run_dir = config.RUNS_DIR / name
    partner = setting in RAW_OF and config.RUNS_DIR / run_name(profile, RAW_OF[setting], size)
    if not finished(run_dir, cfg.iterations):
        if partner and not run_dir.exists() and finished(partner, cfg.iterations, raw=True):
            raw_run(partner, run_dir)
        else:
            train.train(cfg, resume=run_dir.is_dir() and any(run_dir.iterdir()))
    source_of = io.read_json(run_dir / "config.json").get("raw_snapshots_of")
    check = raw_check(run_dir, partner, cfg.iterations) if partner and not source_of else None
    # a run scored and audited after its last snapshot (python -m gan_lib score/audit, or an
    # earlier call) is read back: the same functions wrote those files; delete them to rescore
    made = last_snapshot(run_dir, cfg.iterations).stat().st_mtime
    done = all((run_dir / f).is_file() and (run_dir / f).stat().st_mtime > made
               for f in ("scores.json", "audit.json"))
    scores = io.read_json(run_dir / "scores.json") if done else metrics.score_run(run_dir)
    audited = io.read_json(run_dir / "audit.json") if done else audit.audit_run(run_dir)
    return result_row(setting, size, run_dir, cfg.to_dict(), scores, audited,
                      trained=f"raw snapshots of {source_of}" if source_of else "trained on its own",
                      raw_snapshots_of_ema_run_checked=check)


REPEATED = "baseline, repeated"  # the baseline's settings, trained again: run-to-run variation


def repeat_run(name: str, profile: str, size: int | None, precision: str,
               source: str) -> dict[str, Any]:
    """The row of ``name``, a finished, scored and audited run with the baseline's settings.

    Two runs of equal settings and seed differ only where their arithmetic does (e.g. the thread
    count changes the order of float sums); GAN training amplifies that, so the FID difference
    of the two is what one seed per setting cannot tell apart from an effect.
    """
    run_dir = config.RUNS_DIR / name
    base = config.make_train_config(profile, name=run_name(profile, "baseline", size),
                                    source=source, precision=precision, subset=size).to_dict()
    record = io.read_json(run_dir / "config.json")
    saved = checkpoint.saved_config(record)  # settings added since, at the values it ran with
    differ = checkpoint.differing(saved, base, ignore={"name"})
    if differ:
        raise SystemExit(f"--repeat {name}: expected the baseline's settings; differs in {differ}")
    if not all((run_dir / f).is_file() for f in ("scores.json", "audit.json")):
        raise SystemExit(f"--repeat {name}: score and audit it first (python -m gan_lib score "
                         f"{name}; python -m gan_lib audit {name})")
    check = raw_check(run_dir, config.RUNS_DIR / run_name(profile, RAW_OF["baseline"], size),
                      base["iterations"])
    return result_row(REPEATED, size, run_dir, saved,
                      io.read_json(run_dir / "scores.json"), io.read_json(run_dir / "audit.json"),
                      trained="trained on its own; segments: " + "; ".join(
                          f"from iteration {g['from_iteration']}: {g['device_name']}, "
                          f"commit {g.get('git_commit', '?')[:7]}"
                          for g in record.get("segments", [])),
                      raw_snapshots_of_ema_run_checked=check)


def result_row(setting: str, size: int | None, run_dir: Path, cfg: dict[str, Any],
               scores: dict[str, Any], audited: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """One run's entry of the result: its FID/KID rows, copy rates, C_T, provenance."""
    memo = audited["memorization"]
    return {
        "setting": setting, "subset": size, "run": run_dir.name, "config": cfg, **extra,
        "scores": [{k: r.get(k) for k in ("metric", "kind", "iteration", "value", "std",
                                          "n_fake", "n_real", "compared", "same_n")}
                   for r in scores["scores"] if r["metric"] in ("fid", "kid")],
        "copy_rate": {space: memo[space]["copy_rate"]
                      for space in ("feature (cosine)", "pixel (RMS)")},
        "C_T": memo["C_T"],
        "extractor": scores["extractor"], "weights_sha256": scores["weights"]["sha256"],
        "sampling": scores["sampling"], "data": scores["data"]["description"],
    }


def step_cost(profile: str, settings: list[str], precision: str, rounds: int = 3,
              steps: int = 8) -> dict[str, dict[str, Any]]:
    """Images/s of one training step under each setting, timed side by side in this process.

    The long runs share the machine with other work, so their wall time says little about what
    augmentation and EMA cost. Here each setting's networks take ``steps`` steps on one fixed
    batch, in interleaved rounds after a warm-up step; the median over rounds is reported with
    its ratio to the baseline's.
    """
    cfg0 = config.make_train_config(profile, precision=precision)
    device = torch.device("cpu")
    real = torch.rand(cfg0.batch_size, 1, cfg0.image_size, cfg0.image_size) * 2 - 1
    autocast = device_lib.autocast_context(precision, device)
    setups = {}
    for s in settings:
        cfg = config.make_train_config(profile, precision=precision, **SETTINGS[s])
        setups[s] = (train.build_nets(cfg, device), Augment(cfg.augment, cfg.seed))
    z = torch.randn(cfg0.batch_size, cfg0.z_dim, generator=torch.Generator().manual_seed(0))
    seconds: dict[str, list[float]] = {s: [] for s in settings}
    for r in range(rounds + 1):  # round 0 warms up
        for s, (nets, aug) in setups.items():
            t0 = time.perf_counter()
            for k in range(steps):
                train.train_step(nets, real, z, autocast, aug, k).tolist()  # .tolist(): sync
            if r:
                seconds[s].append(time.perf_counter() - t0)
    out = {s: {"images_per_second": round(cfg0.batch_size * steps / statistics.median(t), 1),
               "rounds_seconds": [round(x, 3) for x in t]} for s, t in seconds.items()}
    base = out.get("baseline", {}).get("images_per_second")
    for v in out.values():
        v["vs_baseline"] = round(v["images_per_second"] / base, 3) if base else None
    return out


def fid_by_iteration(row: dict[str, Any]) -> dict[int, float]:
    """A run's FID per snapshot iteration."""
    return {r["iteration"]: r["value"] for r in row["scores"]
            if r["metric"] == "fid" and r["kind"] == "generated"}


def final_fid(row: dict[str, Any]) -> float:
    fid = fid_by_iteration(row)
    return fid[max(fid)]


def floor(row: dict[str, Any], metric: str = "fid") -> dict[str, Any]:
    """The matched-n floor: held-out training images against the same reference."""
    return next(r for r in row["scores"] if r["metric"] == metric and r["kind"] == "floor"
                and r["same_n"])


def compare(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each run against the baseline trained on the same images: FID change per snapshot.

    A negative change is better than the baseline. ``better_at_every_snapshot`` asks more of an
    option than its final FID does: with one seed per setting, an option that wins at one
    snapshot and loses at another has not shown an effect. Where the baseline was repeated
    (:data:`REPEATED`), ``beyond_run_to_run`` says whether the final change is larger than the
    two baselines' difference (None: not measured for that subset).
    """
    out = []
    noise = {r["subset"]: abs(final_fid(r) - final_fid(b))
             for r in rows if r["setting"] == REPEATED
             for b in rows if b["setting"] == "baseline" and b["subset"] == r["subset"]}
    for row in rows:
        base = next((b for b in rows if b["setting"] == "baseline"
                     and b["subset"] == row["subset"]), None)
        if base is None:
            continue
        fid, ref = fid_by_iteration(row), fid_by_iteration(base)
        final = max(fid)
        change = {it: round(fid[it] - ref[it], 1) for it in sorted(fid)}
        out.append({
            "setting": row["setting"], "subset": row["subset"], "final_iteration": final,
            "fid_final": round(fid[final], 1), "baseline_fid_final": round(ref[final], 1),
            "fid_change_final": change[final],
            "fid_change_final_percent": round(100 * (fid[final] - ref[final]) / ref[final], 1),
            "fid_change_by_iteration": {str(it): v for it, v in change.items()},
            "better_at_every_snapshot": all(v < 0 for v in change.values()),
            "run_to_run_final": round(noise[row["subset"]], 1) if row["subset"] in noise
            else None,
            "beyond_run_to_run": abs(fid[final] - ref[final]) > noise[row["subset"]]
            if row["subset"] in noise and row["setting"] != REPEATED else None,
            "copy_rate_feature": row["copy_rate"]["feature (cosine)"],
            "baseline_copy_rate_feature": base["copy_rate"]["feature (cosine)"],
            "C_T": row["C_T"]["C_T"], "baseline_C_T": base["C_T"]["C_T"],
        })
    return out


def table(rows: list[dict[str, Any]], cost: dict[str, dict[str, Any]]) -> str:
    """FID per snapshot, KID at the end, the floor, copy rates, C_T and img/s: one row per run."""
    iterations = sorted({it for row in rows for it in fid_by_iteration(row)})
    last = iterations[-1]
    head = ["setting", "subset", *(f"FID it {it}" for it in iterations), f"KID it {last}",
            "FID floor", "copy rate feat.", "copy rate px", "C_T", "step img/s", "vs baseline"]
    out = ["| " + " | ".join(head) + " |", "| --- | --- |" + " ---: |" * (len(head) - 2)]
    for row in rows:
        fid = fid_by_iteration(row)
        kid = next(r for r in row["scores"] if r["metric"] == "kid" and r["kind"] == "generated"
                   and r["iteration"] == last)
        step = cost.get(row["setting"], {})
        cells = [row["setting"], str(row["subset"] or "all"),
                 *(f"{fid[it]:.1f}" for it in iterations),
                 f"{kid['value']:.4f} ± {kid['std']:.4f}", f"{floor(row)['value']:.2f}",
                 f"{row['copy_rate']['feature (cosine)']:.4f}",
                 f"{row['copy_rate']['pixel (RMS)']:.4f}", f"{row['C_T']['C_T']:.2f}",
                 f"{step['images_per_second']:.1f}" if step else "not timed",
                 f"{step['vs_baseline']:.3f}x" if step.get("vs_baseline") else "not timed"]
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out)


def comparison_table(comparisons: list[dict[str, Any]]) -> str:
    """Each option against its baseline: final FID, its change, and whether it won throughout."""
    head = ["setting", "subset", "FID at the end", "baseline's", "change", "change %",
            "lower at every snapshot", "beyond run-to-run", "copy rate feat.",
            "baseline's copy rate", "C_T", "baseline's C_T"]
    out = ["| " + " | ".join(head) + " |", "| --- | --- |" + " ---: |" * (len(head) - 2)]
    for c in comparisons:
        if c["setting"] == "baseline":
            continue
        cells = [c["setting"], str(c["subset"] or "all"), f"{c['fid_final']:.1f}",
                 f"{c['baseline_fid_final']:.1f}", f"{c['fid_change_final']:+.1f}",
                 f"{c['fid_change_final_percent']:+.1f}%",
                 "yes" if c["better_at_every_snapshot"] else "no",
                 {True: "yes", False: "no", None: "not measured"}[c["beyond_run_to_run"]]
                 if c["setting"] != REPEATED else "(is the run-to-run)",
                 f"{c['copy_rate_feature']:.4f}", f"{c['baseline_copy_rate_feature']:.4f}",
                 f"{c['C_T']:.2f}", f"{c['baseline_C_T']:.2f}"]
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out)


def provenance(rows: list[dict[str, Any]], precision: str, profile: str) -> str:
    """How the numbers were made, in words, for under the tables."""
    row = rows[0]
    cfg, fl = row["config"], floor(row)
    return (f"Data: {row['data']}. Profile {profile} ({cfg['iterations']} iterations, batch "
            f"{cfg['batch_size']}, {cfg['image_size']} px), {precision}, seed {cfg['seed']}, one "
            f"run per row. FID/KID: {row['extractor']}, weights SHA-256 "
            f"{row['weights_sha256'][:12]}, fp32, {fl['n_fake']} generated images against "
            f"{fl['n_real']} real training images (the full training split's reference, also "
            f"for the subset runs); floor: {fl['compared']} at the same n pair. Sampling: "
            f"{row['sampling']}. Copy rate and C_T: the final snapshot's audit against the "
            "images the run trained on. Step img/s: one training step on a fixed batch, each "
            "setting timed in interleaved rounds in one process (median). " + " ".join(
                f"{r['setting']} ({r['subset'] or 'all'}): {r['trained']}." for r in rows))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--profile", default="quick", choices=tuple(config.PROFILES))
    p.add_argument("--settings", default=",".join(SETTINGS), help=f"of {list(SETTINGS)}")
    p.add_argument("--sizes", default="all,1000", help="'all' or a subset size, comma-separated")
    p.add_argument("--precision", default="bf16", choices=config.PRECISIONS)
    p.add_argument("--source", default="phantom")
    p.add_argument("--repeat", metavar="RUN",
                   help="a finished, scored and audited run with the baseline's settings on the "
                        "full split (e.g. trained with another thread count): its FID difference "
                        "to the baseline is the run-to-run variation the options must exceed")
    p.add_argument("--runs-only", action="store_true",
                   help="train (or derive), score and audit the runs, nothing else: to prepare "
                        "them in parallel processes before the timed, tabulated call")
    p.add_argument("--json", type=Path, nargs="?", const=DEFAULT_JSON,
                   help=f"write all results with provenance here (alone: {DEFAULT_JSON.name})")
    args = p.parse_args()
    settings = [s.strip() for s in args.settings.split(",") if s.strip()]
    unknown = sorted(set(settings) - set(SETTINGS))
    if unknown:
        raise SystemExit(f"--settings: unknown {unknown}; expected some of {list(SETTINGS)}")
    sizes = [None if s.strip() == "all" else int(s) for s in args.sizes.split(",")]
    t0 = time.perf_counter()
    # timed first, on a machine at rest (the runs' own wall times share it with other work)
    cost = None if args.runs_only else step_cost(args.profile, settings, args.precision)
    # the EMA runs first: baseline and DiffAugment are then their raw snapshots, not retrained
    first = sorted(settings, key=lambda s: s in RAW_OF)
    done = {(size, setting): one_run(args.profile, setting, size, args.precision, args.source)
            for size in sizes for setting in first}
    if args.runs_only:
        return
    rows = [done[size, setting] for size in sizes for setting in settings]
    if args.repeat:
        rows.append(repeat_run(args.repeat, args.profile, None, args.precision, args.source))
    comparisons = compare(rows)
    print(table(rows, cost), "", comparison_table(comparisons), "",
          provenance(rows, args.precision, args.profile), sep="\n")
    if args.json:
        result = {
            "benchmark": "small_data", "created": dt.datetime.now(dt.timezone.utc).isoformat(
                timespec="seconds"),
            "command": vars(args) | {"json": str(args.json)},
            "versions": {"python": platform.python_version(), "torch": torch.__version__},
            "threads": torch.get_num_threads(), "git_commit": runinfo.git_commit(),
            "rows": rows, "comparisons": comparisons, "step_cost": cost,
            "seconds": round(time.perf_counter() - t0, 1),
        }
        io.write_json(args.json, result)
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
