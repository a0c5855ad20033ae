"""Public datasets mapped into the daily pipeline's raw tables.

    dropoutnet datasets load movielens-100k --path DIR [--schema S] [--json]

Each dataset module reads and validates its files (a missing file or a malformed row is a
:class:`DatasetError`, a ``ValueError``, naming the file, the line and what was expected) and
replaces its raw tables in one transaction. The files themselves are never part of the
repository: their terms forbid redistribution. See :mod:`dropoutnet.data.movielens`.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from dropoutnet.data import movielens
from dropoutnet.data.movielens import DatasetError

DATASETS = (movielens.NAME,)

__all__ = ["DATASETS", "DatasetError", "add_arguments", "cmd_datasets", "load_from_args"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``datasets`` subcommand's own subcommands (``load``)."""
    sub = parser.add_subparsers(dest="datasets_command", required=True)
    p = sub.add_parser("load", help="replace a dataset's raw tables with the files in --path")
    p.add_argument("dataset", choices=DATASETS, help="which dataset")
    p.add_argument("--path", required=True, metavar="DIR",
                   help="the folder with the dataset's files (e.g. ../shared/datasets/ml-100k)")
    p.add_argument("--schema", default=None,
                   help="schema for the tables (created if missing; default: the first schema "
                        "of the search path)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")


def load_from_args(args: argparse.Namespace, url: str) -> dict[str, Any]:
    """Load the dataset the parsed options name into the database at ``url``; the summary."""
    if args.dataset == movielens.NAME:
        return movielens.load(url, args.path, schema=args.schema)
    raise DatasetError(f"unknown dataset {args.dataset!r}; one of {', '.join(DATASETS)}")


def cmd_datasets(args: argparse.Namespace) -> int:
    """``dropoutnet datasets load ...`` against the application database."""
    from dropoutnet.core import locations

    summary = load_from_args(args, locations.database_url())
    if getattr(args, "json", False):
        print(json.dumps(summary, default=str))
    else:
        where = f" into schema {summary['schema']}" if summary.get("schema") else ""
        print(f"loaded {summary['dataset']}{where}: {summary['ratings']} ratings "
              f"({summary['clicks']} clicks) from {summary['first_day']} to "
              f"{summary['last_day']}; " + ", ".join(f"{t} {n}" for t, n in
                                                      summary["rows"].items()))
    return 0
