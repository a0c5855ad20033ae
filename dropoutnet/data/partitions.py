"""The sample partitions the samples step writes, as the other steps read them.

``samples`` (training), ``eval_samples`` (held out, by split) and ``feature_boundaries``
(quantile edges of the binned numeric features), one list partition per bizdate (``dt``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import numpy as np

from dropoutnet.config import PipelineConfig
from dropoutnet.core import db, sql
from dropoutnet.core.errors import MissingDataError
from dropoutnet.data import inputs


def load_boundaries(cur, cfg: PipelineConfig, bizdate: dt.date) -> dict[str, list[float]]:
    """The bizdate's bin edges of every binned numeric feature (name -> quantile edges), as
    the samples task computed them, for building the model that bins its inputs with them;
    :class:`MissingDataError` when that partition is absent or lacks a feature."""
    sql.execute(cur, "data/read_boundaries.sql", params={"bizdate": bizdate},
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
    in the order training streams it (:class:`dropoutnet.training.source.PartitionSource`)."""
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
    """The query reading one sample partition (``data/read_partition.sql``); ``shuffled``: in
    training's fixed pseudo-random order, by the partition's ``shuffle_key`` when it has one
    (the samples step writes it: no sort), else by the same hash (a sort)."""
    keyed = shuffled and last_read_key(cur, cfg, table, bizdate) is not None
    return sql.render("data/read_partition.sql", schema=cfg.storage.schema_, table=table,
                      label=cfg.label_name, features=cfg.features, shuffled=shuffled,
                      keyed=keyed)


def last_read_key(cur, cfg: PipelineConfig, table: str, bizdate: dt.date) -> int | None:
    """The last ``shuffle_key`` of a training partition, whose keys number its rows 1..n in
    training's read order; ``None`` when it has none (another table, a partition written
    before the key existed, or an empty one)."""
    if table != "samples":
        return None
    sql.execute(cur, "data/read_partition_last_key.sql", params={"bizdate": bizdate},
                schema=cfg.storage.schema_, table=table)
    row = cur.fetchone()
    return None if row is None or row[0] is None else int(row[0])


def read_chunks(url: str | None, cfg: PipelineConfig, table: str, bizdate: dt.date,
                chunk_rows: int) -> Iterator[dict[str, list]]:
    """A keyed training partition (:func:`last_read_key`) in the order of
    ``read_query(shuffled=True)``, column-wise, ``chunk_rows`` rows at a time, in one
    snapshot: each column of a chunk comes as one array (``data/read_partition_chunk.sql``), which
    psycopg parses in C, instead of a Python tuple per row."""
    query = sql.render("data/read_partition_chunk.sql", schema=cfg.storage.schema_, table=table,
                       label=cfg.label_name, features=cfg.features)
    with db.binary_transaction(url) as conn, conn.cursor(binary=True) as cur:
        last = last_read_key(cur, cfg, table, bizdate)
        if last is None:
            raise MissingDataError(f"{table} for bizdate {bizdate} has no read-order key "
                                   "(shuffle_key) to cut chunks by: read it row by row")
        for first in range(1, last + 1, chunk_rows):
            cur.execute(query, {"bizdate": bizdate, "first_key": first,
                                "last_key": first + chunk_rows - 1})
            names = [d.name for d in cur.description]
            yield {n: values or [] for n, values in zip(names, cur.fetchone())}


def partition_exists(cur, cfg: PipelineConfig, table: str, bizdate: dt.date) -> bool:
    """Whether the samples task has built ``table``'s partition for the bizdate."""
    return db.table_exists(cur, cfg.storage.schema_, db.partition_name(table, bizdate))
