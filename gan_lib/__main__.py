"""Command line, thin over the library: ``python -m gan_lib {data,train,score,audit,quiz,...}``.

Examples:
    python -m gan_lib data --source phantom --size 64
    python -m gan_lib data phantom phantom-demo
    python -m gan_lib train --profile quick --run quick --set iterations=300
    python -m gan_lib score quick --n-fake 1024 --metrics fid,kid
    python -m gan_lib audit quick
    python -m gan_lib quiz quick --n 40 --seed 0
    python -m gan_lib quiz-score reports/quiz/answers/*.csv
    python -m gan_lib utility c1                  # TSTR of a conditional run
    python -m gan_lib report --profile quick
    torchrun --nproc_per_node=2 -m gan_lib train --profile quick --run quick2   # DDP
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import config
from .scale import is_main, launched, requested
from .storage import NoSpaceLeft
from .typed_settings import parse_set


def _data(args: argparse.Namespace) -> None:
    from . import data

    if args.action == "phantom":
        if not args.dir:
            raise SystemExit("usage: python -m gan_lib data phantom DIR [--n-train N --n-test N]")
        root = data.make_phantom(Path(args.dir), n_train=args.n_train, n_test=args.n_test,
                                 seed=args.seed)
        print(f"wrote synthetic phantom data (Kermany layout) to {root}")
        return
    ds = data.load_dataset(args.source, split=args.split, image_size=args.size,
                           resize=args.resize)
    print(data.summarize(ds))
    aspect = data.aspect_table(data.file_sizes(ds.source))  # every split, headers only
    if len(aspect):
        print("\noriginal files (width / height: aspect ratio):")
        print(aspect.to_string(index=False))


def _train(args: argparse.Namespace) -> None:
    from .gan import train

    overrides = parse_set(args.set or [], config.TrainConfig)
    if args.run:
        overrides["name"] = args.run
    if args.source:
        overrides["source"] = args.source
    if args.resize:
        overrides["resize"] = args.resize
    cfg = config.make_train_config(args.profile, **overrides)
    run_dir = train.train(cfg, resume=args.resume, overwrite=args.overwrite)
    if is_main():
        print(f"run folder: {run_dir}")


def _score(args: argparse.Namespace) -> None:
    from .gan import run_path
    from .metrics import score_config, score_run, score_tables

    overrides = parse_set(args.set or [], config.ScoreConfig)
    if args.weights:
        overrides["weights"] = args.weights
    run_dir = run_path(args.run)
    score_cfg = score_config(args.profile, n_fake=args.n_fake, metrics=args.metrics,
                             run=run_dir, **overrides)
    scores = score_run(run_dir, score_cfg)
    if is_main():
        print(score_tables.format_scores(scores))


def _audit(args: argparse.Namespace) -> None:
    from .gan import run_path
    from .metrics import score_config, score_tables
    from .studies import audit_run

    run_dir = run_path(args.run)
    result = audit_run(run_dir, score_config(args.profile, run=run_dir))
    if not is_main():
        return
    print(score_tables.audit_table(result).to_string(index=False))
    print(score_tables.audit_caption(result, "audit"), "\n")
    print(score_tables.memorization_table(result).to_string(index=False))
    print(score_tables.audit_caption(result, "memorization"))
    print(f"{run_dir / 'audit.json'} ({result['seconds']:.1f} s)")


def _quiz(args: argparse.Namespace) -> None:
    from .studies import build_quiz, read_key

    page = build_quiz(args.run, args.out, n=args.n, seed=args.seed)
    key = read_key(page.parent / "key.json")
    print(f"quiz {key['quiz_id']}: {page} ({page.stat().st_size / 1e6:.1f} MB, {key['n']} "
          f"images, no answer key in it); key: {page.parent / 'key.json'}")
    print(f"collect the readers' CSVs in {page.parent / 'answers'}/, then: "
          f"python -m gan_lib quiz-score {page.parent / 'answers'}/*.csv")


def _quiz_score(args: argparse.Namespace) -> None:
    from .report import score_answers

    result = score_answers(args.answers, args.key, args.reports_dir)
    print(result["table"].to_string(index=False))
    print(result["caption"])
    print("wrote " + ", ".join(str(p) for p in result["files"]))


def _utility(args: argparse.Namespace) -> None:
    from .gan import run_path
    from .studies import utility, utility_tables

    run_dir = run_path(args.run)
    seeds = tuple(int(s) for s in args.seeds.split(","))
    result = utility.utility_run(run_dir, seeds=seeds)
    print(utility_tables.results_table(result).to_string(index=False))
    print(utility_tables.caption(result, result["data"]["description"]))
    print(f"{run_dir / 'utility.json'} ({result['seconds_with_generation']:.0f} s)")


def _report(args: argparse.Namespace) -> None:
    import logging

    from .report import build_report

    # papermill streams each notebook's output through its logger: show it, unadorned.
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    out = build_report(profile=args.profile, run=args.run, source=args.source,
                       retrain=args.retrain, conditional=args.conditional or None,
                       fid_protocols=args.fid_protocols, resize=args.resize)
    print(f"report: {out}")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m gan_lib", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)

    d = sub.add_parser("data", help="summarise a data source, or write the synthetic phantom set")
    d.add_argument("action", nargs="?", choices=["summary", "phantom"], default="summary")
    d.add_argument("dir", nargs="?", help="output folder for `data phantom DIR`")
    d.add_argument("--source", default="auto", help="auto | phantom | pneumoniamnist | PATH")
    d.add_argument("--split", default="train", choices=["train", "val", "test"])
    d.add_argument("--size", type=int, default=64, help="image side in pixels (32, 64, 128)")
    d.add_argument("--resize", default="crop", choices=config.RESIZE_POLICIES,
                   help="how a non-square image becomes square (default crop)")
    d.add_argument("--n-train", type=int, default=5216)
    d.add_argument("--n-test", type=int, default=624)
    d.add_argument("--seed", type=int, default=0)
    d.set_defaults(func=_data)

    t = sub.add_parser("train", help="train the DCGAN into runs/NAME")
    t.add_argument("--profile", default="quick", choices=list(config.PROFILES))
    t.add_argument("--run", help="run name (folder runs/NAME); default: the profile's name")
    t.add_argument("--source", help="data source (default: the profile's, i.e. auto)")
    t.add_argument("--resize", choices=config.RESIZE_POLICIES,
                   help="how a non-square radiograph becomes square: crop (the default: the "
                        "centre square), squash (all of it, narrowed) or pad (letterboxed)")
    t.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="override any TrainConfig field, e.g. --set iterations=300")
    t.add_argument("--resume", action="store_true", help="continue from runs/NAME/checkpoint.pt")
    t.add_argument("--overwrite", action="store_true", help="replace an existing run folder")
    t.set_defaults(func=_train)

    s = sub.add_parser("score", help="IS / FID / KID of every snapshot of a run")
    s.add_argument("run", help="run name under runs/, or a run folder")
    s.add_argument("--profile", choices=list(config.PROFILES),
                   help="sample sizes preset (n_fake, n_real, KID subsets); default: the "
                        "profile the run was trained with")
    s.add_argument("--n-fake", type=int, help="generated images per snapshot for FID/KID")
    s.add_argument("--metrics", help="comma-separated subset of is,fid,kid")
    s.add_argument("--weights", help="Inception weights file (else resolved automatically)")
    s.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="override any ScoreConfig field, e.g. --set batch_size=32")
    s.set_defaults(func=_score)

    a = sub.add_parser("audit", help="fidelity/diversity, copying and FID vs n of a run "
                                      "(after score: reuses its cached features)")
    a.add_argument("run", help="run name under runs/, or a run folder")
    a.add_argument("--profile", choices=list(config.PROFILES),
                   help="sample sizes preset; default: the profile the run was trained with")
    a.set_defaults(func=_audit)

    q = sub.add_parser("quiz", help="a self-contained real-or-fake quiz page on a run's final "
                                     "snapshot: reports/quiz/index.html and key.json")
    q.add_argument("run", help="run name under runs/, or a run folder")
    q.add_argument("--n", type=int, default=40, help="images, half real (test split), half fake")
    q.add_argument("--seed", type=int, default=0, help="draws the real images, latents, order")
    q.add_argument("--out", help="folder for index.html and key.json (default reports/quiz)")
    q.set_defaults(func=_quiz)

    qs = sub.add_parser("quiz-score", help="score the readers' answer CSVs against the quiz key")
    qs.add_argument("answers", nargs="+", help="answer CSVs, e.g. reports/quiz/answers/*.csv")
    qs.add_argument("--key", help="the quiz's key.json (default: beside answers/, else "
                                  "reports/quiz/key.json)")
    qs.add_argument("--reports-dir", help="where tables/ and figures/ go (default reports/)")
    qs.set_defaults(func=_quiz_score)

    u = sub.add_parser("utility", help="train on synthetic, test on real (a conditional run): "
                                       "runs/NAME/utility.json")
    u.add_argument("run", help="run name or folder (trained with --set conditional=true)")
    u.add_argument("--seeds", default="0,1,2", help="classifier seeds, comma-separated")
    u.set_defaults(func=_utility)

    r = sub.add_parser("report", help="run notebooks 01-09 with papermill and rebuild reports/")
    r.add_argument("--profile", choices=list(config.PROFILES),
                   help="default: an existing run's own profile, else paper where CUDA is "
                        "present, else quick")
    r.add_argument("--run", help="run name (default: the profile's name)")
    r.add_argument("--source", help="data source (default: auto)")
    r.add_argument("--resize", choices=config.RESIZE_POLICIES,
                   help="how a non-square radiograph becomes square: crop, squash or pad "
                        "(default: an existing run's own, else crop)")
    r.add_argument("--retrain", action="store_true",
                   help="replace an existing run folder with a fresh run (default: reuse a "
                        "finished run, resume an unfinished one)")
    r.add_argument("--conditional", action="store_true",
                   help="a class-conditional run (default name PROFILE-conditional): per-class "
                        "samples and scores, and the usefulness study (notebook 07)")
    r.add_argument("--no-fid-protocols", dest="fid_protocols", action="store_false",
                   help="leave out the section 'Why FIDs disagree' (notebook 08: the final "
                        "snapshot under each FID protocol; on by default)")
    r.set_defaults(func=_report)
    return p


# Commands that may run as several processes under torchrun (see gan_lib/scale/distributed.py).
DISTRIBUTED = ("train", "score", "audit")


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    if requested() and args.command not in DISTRIBUTED:
        raise SystemExit(f"error: 'python -m gan_lib {args.command}' runs as one process; under "
                         f"torchrun only {', '.join(DISTRIBUTED)} do (drop torchrun for this "
                         "command)")
    try:
        with launched():
            args.func(args)
    except (ValueError, TypeError, FileNotFoundError, FileExistsError, PermissionError,
            FloatingPointError, NoSpaceLeft) as err:
        # Errors of input (and a full disk) are the user's to fix: the message, no traceback.
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
