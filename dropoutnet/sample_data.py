"""The sample partitions the samples step writes, as the other steps read them.

``samples`` (training), ``eval_samples`` (held out, by split) and ``feature_boundaries``
(quantile edges of the binned numeric features), one list partition per bizdate (``dt``).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np

from . import db, feature_queries, inputs, sql
from .config import PipelineConfig
from .errors import MissingDataError


def ensure_tables(url: str | None, cfg: PipelineConfig) -> None:
    db.ensure_ddl(url, "ddl/sample_tables.sql", **feature_queries.template_context(cfg))


def load_boundaries(cur, cfg: PipelineConfig, bizdate: dt.date) -> dict[str, list[float]]:
    sql.execute(cur, "read_boundaries.sql", params={"bizdate": bizdate},
                schema=cfg.storage.schema_)
    found = {name: [float(x) for x in edges] for name, edges in cur.fetchall()}
    missing = [f.name for f in cfg.binned_features if f.name not in found]
    if missing:
        raise MissingDataError(
            f"feature_boundaries has no partition for bizdate {bizdate} (or lacks {missing}); "
            "run the samples task for that bizdate first")
    return found


def load_partition(cur, cfg: PipelineConfig, table: str, bizdate: dt.date,
                   shuffled: bool = False) -> dict[str, Any]:
    """Read one sample partition: model inputs, labels, user and item ids, sample dates (and
    the eval split); a clear error when the samples task has not built it.  ``shuffled``:
    in the order training streams it (:class:`dropoutnet.sample_input.PartitionSource`)."""
    if not partition_exists(cur, cfg, table, bizdate):
        raise MissingDataError(
            f"{table} has no partition for bizdate {bizdate}: run the samples task for that "
            f"bizdate first (`dropoutnet run --bizdate {bizdate} --tasks samples`)")
    columns = db.fetch_columns(cur, read_query(cur, cfg, table, bizdate, shuffled),
                               {"bizdate": bizdate})
    data = {
        "features": inputs.to_inputs(cfg.features, columns),
        "labels": np.asarray(columns[cfg.label_name], dtype=np.float32),
        "user_ids": np.asarray(columns["user_id"], dtype=object),
        "item_ids": np.asarray(columns["item_id"], dtype=object),
        "sample_dates": np.asarray(columns["sample_date"], dtype=object),
    }
    if "split" in columns:
        data["splits"] = np.asarray(columns["split"], dtype=object)
    return data


def read_query(cur, cfg: PipelineConfig, table: str, bizdate: dt.date,
               shuffled: bool = False) -> str:
    """The query reading one sample partition (``read_partition.sql``); ``shuffled``: in
    training's fixed pseudo-random order, by the partition's ``shuffle_key`` when it has one
    (the samples step writes it: no sort), else by the same hash (a sort)."""
    keyed = False
    if shuffled and table == "samples":
        sql.execute(cur, "read_order_keyed.sql", params={"bizdate": bizdate},
                    schema=cfg.storage.schema_)
        row = cur.fetchone()
        keyed = bool(row and row[0])
    return sql.render("read_partition.sql", schema=cfg.storage.schema_, table=table,
                      label=cfg.label_name, features=cfg.features, shuffled=shuffled,
                      keyed=keyed)


def partition_exists(cur, cfg: PipelineConfig, table: str, bizdate: dt.date) -> bool:
    return db.table_exists(cur, cfg.storage.schema_, db.partition_name(table, bizdate))
