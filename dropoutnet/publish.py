"""Make a bizdate's model version the active one, atomically.

The version must be whole: its exported models on disk and both embedding partitions in the
database.  Publishing is one transaction on the ``active_version`` row, so recall switches
from one complete version to the next and never mixes two.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from . import artifacts, db, sql
from .config import PipelineConfig
from .evaluate import ensure_tables
from .samples import MissingDataError

log = logging.getLogger(__name__)


def publish(cfg: PipelineConfig, bizdate: dt.date, url: str | None = None) -> dict[str, Any]:
    version = artifacts.model_version(bizdate)
    paths = artifacts.paths(cfg.model_name, bizdate)
    for p in (paths.final, paths.user, paths.item):
        if not (p / "saved_model.pb").exists():
            raise MissingDataError(f"version {version} is incomplete: {p} has no saved_model.pb;"
                                   " run the train and export tasks for that bizdate")
    schema = cfg.storage.schema_
    ensure_tables(url, cfg)
    with db.transaction(url) as cur:
        sql.execute(cur, "version_ready.sql", params={
            "user_partition": sql.qualified(schema, db.partition_name("user_embeddings", version)),
            "item_partition": sql.qualified(schema, db.partition_name("item_embeddings", version)),
        })
        users_ready, items_ready = cur.fetchone()
        if not (users_ready and items_ready):
            raise MissingDataError(
                f"version {version} is incomplete (user embeddings: {users_ready}, item "
                f"embeddings: {items_ready}); run the embedding tasks for that bizdate first")
        sql.execute(cur, "publish.sql", params={
            "model_name": cfg.model_name, "model_version": version, "bizdate": bizdate,
            "export_path": str(paths.export)}, schema=schema)
    log.info("published %s version %s", cfg.model_name, version)
    return {"model_name": cfg.model_name, "model_version": version, "active": True}
