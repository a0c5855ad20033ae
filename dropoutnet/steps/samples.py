"""The samples step: the bizdate's training samples, cold-start eval samples and boundaries.

All three are rendered from ``sql_templates/`` and swapped in within one transaction: a
rerun of a bizdate replaces exactly that bizdate's partitions, and if anything fails nothing
already stored changes.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from typing import Any

from dropoutnet.config import PipelineConfig
from dropoutnet.core import db, sql
from dropoutnet.core.errors import MissingDataError
from dropoutnet.data import feature_queries

log = logging.getLogger(__name__)


def ensure_tables(url: str | None, cfg: PipelineConfig) -> None:
    """Create the sample, eval-sample and boundary tables for the config's features if they
    are missing (their columns follow the features, so the DDL is rendered from them)."""
    db.ensure_ddl(url, "data/ddl/sample_tables.sql", **feature_queries.template_context(cfg))


def check_raw_tables(cur, cfg: PipelineConfig) -> None:
    """Fail with a precise message when a configured raw table or column does not exist."""
    needed: dict[str, set[str]] = {}
    for name in ("events", "items", "authors", "item_text", "users"):
        table = cfg.raw.table(name)
        needed.setdefault(name, set()).update(table.columns.values())
    for f in cfg.features:
        if f.source_table:
            needed[f.source_table].add(f.source_column)
        if f.preference and f.preference.collect:
            t, _, c = f.preference.collect.partition(".")
            needed[t].add(c)
    needed["items"].update(cfg.retrieval.filter_columns)
    types: dict[str, dict[str, str]] = {}
    for name, columns in needed.items():
        table = cfg.raw.table(name)
        sql.execute(cur, "core/table_columns.sql",
                    params={"schema": table.schema_, "table": table.table})
        types[name] = dict(cur.fetchall())
        present = set(types[name])
        where = f"{table.schema_}.{table.table}" if table.schema_ else table.table
        if not present:
            raise MissingDataError(
                f"raw.{name}: table {where!r} does not exist (or has no columns) in the "
                f"database; create it or point raw.{name}.table at an existing table")
        missing = sorted(columns - present)
        if missing:
            raise MissingDataError(
                f"raw.{name}: table {where!r} has no column(s) {missing}; its columns are "
                f"{sorted(present)} — fix the column mapping, the feature sources or "
                f"retrieval.filter_columns")
    for column in cfg.retrieval.filter_columns:
        column_type = types["items"][column]
        if column_type.endswith("[]") or column_type.startswith(("vector", "json")):
            raise MissingDataError(
                f"retrieval.filter_columns: column {column!r} of raw.items is {column_type}, "
                f"but a filter compares one categorical value per item; choose a column of a "
                f"scalar type (text, integer, boolean, ...)")
    for i, f in enumerate(cfg.features):
        if f.kind != "vector":
            continue
        column_type = types[f.source_table][f.source_column]
        match = re.fullmatch(r"vector\((\d+)\)", column_type)
        if match and int(match.group(1)) != f.dim:
            raise MissingDataError(
                f"features.{i}.dim: feature {f.name!r} has dim {f.dim} but its source "
                f"{f.source} is {column_type}; set dim: {match.group(1)} or point source at "
                f"a column of {f.dim}-dimensional vectors")


def build_samples(cfg: PipelineConfig, bizdate: dt.date, url: str | None = None) -> dict[str, Any]:
    """Write the samples, eval_samples and feature_boundaries partitions of ``bizdate``.

    The eval partition holds the bizdate's exposures that training does not see, in three
    splits (``cold_items``, ``cold_both``, ``cold_users``, ``warm_items``; see
    ``data/samples.sql``).
    """
    schema = cfg.storage.schema_
    window_start = bizdate - dt.timedelta(days=cfg.cold_start_recall.train_days - 1)
    params = feature_queries.feature_params(cfg, window_start, bizdate)
    params.update({
        "bizdate": bizdate,
        "window_start": window_start,
        "window_end": bizdate + dt.timedelta(days=1),
        "exposure_events": list(cfg.raw.exposure_events),
        "warm_holdout_share": cfg.evaluation.warm_holdout_share,
    })
    ctx = feature_queries.template_context(cfg)
    negatives = cfg.samples.sampled_negatives  # samples.sql's optional sampled negatives
    ctx["sampled_negatives"] = negatives is not None
    if negatives is not None:
        params.update(neg_per_user_day=negatives.per_user_day, neg_seed=negatives.seed)
    with db.transaction(url) as cur:
        check_raw_tables(cur, cfg)
    ensure_tables(url, cfg)
    with db.transaction(url) as cur:
        cur.execute("set local work_mem = '256MB'")
        train_stage = db.create_stage(cur, schema, "samples", bizdate)
        eval_stage = db.create_stage(cur, schema, "eval_samples", bizdate)
        sql.execute(cur, "data/samples.sql", params=params, train_stage=train_stage,
                    eval_stage=eval_stage, selection=cfg.cold_start_recall.label.selection,
                    **ctx)
        counts: dict[str, Any] = {"eval": {}}
        for key, stage in (("train", train_stage), ("eval", eval_stage)):
            sql.execute(cur, "data/stage_stats.sql", schema=schema, stage=stage,
                        label=cfg.label_name, by_split=key == "eval")
            for split, n, positives in cur.fetchall():
                figures = {"samples": int(n), "positives": int(positives or 0)}
                if split is None:
                    counts[key] = figures
                else:
                    counts.setdefault(key, {})[split] = figures
        # training reads the rows by shuffle_key through this index, without a sort
        sql.execute(cur, "data/samples_read_order.sql", schema=schema, stage=train_stage)
        if counts["train"]["samples"] == 0:
            raise MissingDataError(
                f"no training samples for bizdate {bizdate}: the raw events table has no "
                f"{cfg.raw.exposure_events} events between {window_start} and {bizdate}; load "
                "that data (or pick a bizdate that has it) and rerun")
        db.swap_partition(cur, schema, "samples", bizdate, train_stage)
        db.swap_partition(cur, schema, "eval_samples", bizdate, eval_stage)

        stage = db.create_stage(cur, schema, "feature_boundaries", bizdate)
        binned = cfg.binned_features
        if binned:
            n_bins = cfg.model.num_bins
            bparams = {"bizdate": bizdate,
                       "quantiles": [i / n_bins for i in range(1, n_bins)]}
            bparams.update({f"name_{f.name}": f.name for f in binned})
            sql.execute(cur, "data/boundaries.sql", params=bparams, schema=schema, stage=stage,
                        binned=binned)
        db.swap_partition(cur, schema, "feature_boundaries", bizdate, stage)
    log.info("samples for %s: %s", bizdate, counts)
    return {"bizdate": bizdate.isoformat(), "window_start": window_start.isoformat(), **counts}
