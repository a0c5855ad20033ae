"""Offline quality benchmarks on public datasets (run on demand, not in the daily pipeline).

* :mod:`dropoutnet.benchmarks.citeulike`: the DropoutNet paper's protocol on the CiteULike-a
  cold-item split (``dropoutnet benchmark citeulike --path DIR --split DIR``).

This package's ``__init__`` imports nothing heavy: the ``dropoutnet`` command builds its parser
from :func:`add_arguments` on every call.
"""

from __future__ import annotations

import argparse
import json

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
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=_cmd_citeulike)


def _cmd_citeulike(args: argparse.Namespace) -> int:
    from .citeulike import CONTENTS, BenchmarkSettings, format_report, run_benchmark

    settings = BenchmarkSettings()
    if args.epochs is not None:
        if args.epochs < 1:
            raise ValueError(f"--epochs must be at least 1, got {args.epochs}")
        settings.epochs = args.epochs
    if args.seed is not None:
        settings.seed = args.seed
    settings.contents = tuple(CONTENTS) if args.content == "both" else (args.content,)
    result = run_benchmark(args.path, args.split, settings)
    print(json.dumps(result) if args.json else format_report(result))
    return 0
