"""Offline quality benchmarks on public datasets (run on demand, not in the daily pipeline).

* :mod:`dropoutnet.benchmarks.citeulike`: the DropoutNet paper's protocol on the CiteULike-a
  cold-item split (``dropoutnet benchmark citeulike --path DIR --split DIR``).

This package's ``__init__`` imports nothing heavy: the ``dropoutnet`` command builds its parser
from :func:`add_arguments` on every call.
"""

from __future__ import annotations

import argparse
import json
import sys

__all__ = ["add_arguments"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``benchmark`` subcommands."""
    sub = parser.add_subparsers(dest="benchmark", required=True)
    p = sub.add_parser("citeulike", help="the DropoutNet paper's protocol on the CiteULike-a "
                                         "cold-item split, with baselines")
    p.add_argument("--path", required=True,
                   help="CiteULike-a folder (users.dat, item-tag.dat, citations.dat)")
    p.add_argument("--split", required=True,
                   help="the DropoutNet split folder (cold/train.csv, cold/test.csv, "
                        "cold/test_item_ids.csv)")
    p.add_argument("--content", choices=["both", "tags+citations", "citations"],
                   default="both", help="item content variant(s) to run (default: both)")
    p.add_argument("--epochs", type=int, default=None, help="training epochs of the model")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--seeds", type=int, default=1,
                   help="training seeds of the model: its figures (the test's, or each "
                        "--tune trial's) are their mean")
    _tuning_arguments(p, "a share of the training items held out as pseudo-cold")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=_cmd_citeulike)

    p = sub.add_parser("movielens", help="MovieLens 100K's time-based item-cold split through "
                                         "the pipeline's steps, with baselines")
    p.add_argument("--path", required=True, help="MovieLens 100K folder (u.data, u.item, u.user)")
    p.add_argument("--seeds", type=int, default=3,
                   help="training seeds of the model: its figures (the test's, or each "
                        "--tune trial's) are their mean")
    _tuning_arguments(p, "held-out arrivals of the training ratings alone, in 3 folds")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=_cmd_movielens)


def _tuning_arguments(p: argparse.ArgumentParser, validation: str) -> None:
    p.add_argument("--tune", type=int, metavar="TRIALS", default=None,
                   help=f"instead of the test: choose settings in TRIALS Optuna trials on a "
                        f"validation split ({validation}) and print every trial")
    p.add_argument("--tune-seed", type=int, default=0, help="the study's sampler seed")
    p.add_argument("--settings", help="a JSON file of model/training settings to use (e.g. "
                                      "the 'settings' that --tune chose)")


def _settings(args: argparse.Namespace) -> dict:
    if not args.settings:
        return {}
    from pathlib import Path

    path = Path(args.settings)
    if not path.is_file():
        raise ValueError(f"--settings {path}: no such file")
    data = json.loads(path.read_text())
    data = data.get("best", {}).get("settings", data)  # a --tune --json result, or settings
    unknown = sorted(set(data) - {"model", "training"})
    if unknown:
        raise ValueError(f"--settings {path}: unknown section(s) {unknown}; expected model, "
                         "training")
    return data


def _check_budget(args: argparse.Namespace) -> None:
    if args.tune is not None and args.tune < 1:
        raise ValueError(f"--tune must be at least 1 (the number of trials), got {args.tune}")
    if args.seeds < 1:
        raise ValueError(f"--seeds must be at least 1, got {args.seeds}")


def _cmd_citeulike(args: argparse.Namespace) -> int:
    from dropoutnet.benchmarks.citeulike import (
        CONTENTS,
        BenchmarkSettings,
        format_report,
        run_benchmark,
        tune,
    )
    from dropoutnet.training import tuning

    _check_budget(args)
    settings = BenchmarkSettings()
    extra = _settings(args)
    settings.model = tuning.apply(settings.model, extra.get("model", {}))
    settings.training = tuning.apply(settings.training, extra.get("training", {}))
    if args.epochs is not None:
        if args.epochs < 1:
            raise ValueError(f"--epochs must be at least 1, got {args.epochs}")
        settings.training["epochs"] = args.epochs
    if args.seed is not None:
        settings.seed = args.seed
    if args.tune is not None:
        result = tune(args.path, args.split, args.tune, settings, seed=args.tune_seed,
                      content="tags+citations" if args.content == "both" else args.content,
                      seeds=args.seeds,
                      echo=lambda line: print(line, file=sys.stderr, flush=True))
        print(json.dumps(result) if args.json else json.dumps(result["best"], indent=1))
        return 0
    settings.contents = tuple(CONTENTS) if args.content == "both" else (args.content,)
    result = run_benchmark(args.path, args.split, settings, seeds=args.seeds)
    print(json.dumps(result) if args.json else format_report(result))
    return 0


def _cmd_movielens(args: argparse.Namespace) -> int:
    from dropoutnet.benchmarks.movielens import run, tune
    from dropoutnet.core import locations

    _check_budget(args)
    url = locations.database_url()
    if args.tune is not None:
        result = tune(args.path, url, args.tune, seed=args.tune_seed, seeds=args.seeds,
                      echo=lambda line: print(line, file=sys.stderr, flush=True))
        print(json.dumps(result) if args.json else json.dumps(result["best"], indent=1))
        return 0
    result = run(args.path, url, seeds=args.seeds, settings=_settings(args))
    print(json.dumps(result) if args.json else json.dumps(result, indent=1))
    return 0
