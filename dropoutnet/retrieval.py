"""Top-N items for a user: pgvector HNSW over the active model version's item embeddings."""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np

from . import db, registry, sql
from .config import PipelineConfig
from .inputs import as_vector


class RecallError(LookupError):
    """A recall that cannot be answered; the message says why and what to do."""


def user_vector(cur, cfg: PipelineConfig, version: str, user_id: str,
                table: str = "user_embeddings") -> np.ndarray | None:
    sql.execute(cur, "user_vector.sql", params={"model_version": version, "user_id": user_id},
                schema=cfg.storage.schema_, table=table)
    row = cur.fetchone()
    return None if row is None else as_vector(row[0])


def top_items(cur, cfg: PipelineConfig, version: str, vector: np.ndarray, top_n: int,
              created_from: dt.datetime | dt.date | None = None,
              created_to: dt.datetime | dt.date | None = None,
              table: str = "item_embeddings") -> list[tuple[str, float]]:
    """The ``top_n`` items of ``version`` by inner product with ``vector`` (HNSW scan).

    ``table`` is the live parent, or a version's unpublished candidate (``db.version_table``).
    """
    ranged = created_from is not None
    sql.execute(cur, "retrieval_settings.sql", params={
        "ef_search": max(cfg.retrieval.hnsw.ef_search, top_n),
        "iterative_scan": "strict_order" if ranged else "off",
    })
    sql.execute(cur, "retrieve.sql", params={
        "user_vector": vector, "model_version": version, "top_n": top_n,
        "created_from": created_from, "created_to": created_to,
    }, schema=cfg.storage.schema_, table=table, created_range=ranged)
    return [(item, float(score)) for item, score in cur.fetchall()]


def recall(cfg: PipelineConfig, user_id: str, top_n: int | None = None,
           url: str | None = None, created_within_hours: float | None = None
           ) -> dict[str, Any]:
    """The user's top-N items of the active version: ``{user_id, model_version, items}``;
    with ``created_within_hours``, only items created that recently (the newest items, as a
    cold-start channel serves them; the stream worker adds them within a second)."""
    top_n = top_n or cfg.retrieval.top_n
    if top_n < 1:
        raise RecallError(f"--top-n must be at least 1, got {top_n}")
    created_from = created_to = None
    if created_within_hours is not None:
        if not created_within_hours > 0:
            raise RecallError(f"--created-within must be a number of hours above 0, got "
                              f"{created_within_hours}")
        created_to = dt.datetime.now(dt.timezone.utc) + dt.timedelta(minutes=5)
        created_from = created_to - dt.timedelta(hours=created_within_hours, minutes=5)
    with db.transaction(url) as cur:
        version = registry.active_version(cur, cfg)
        if version is None:
            raise RecallError(
                f"model {cfg.model_name!r} has no active version yet: run the daily DAG "
                "(make demo, or `dropoutnet run --bizdate YYYY-MM-DD`) to train and publish one")
        vector = user_vector(cur, cfg, version, user_id)
        if vector is None:
            raise RecallError(
                f"user {user_id!r} has no embedding in the active version {version}: only "
                f"users active within {cfg.retrieval.active_user_days} days of the bizdate "
                "are embedded; check the user id, or rerun the bizdate after the user's events "
                "are loaded")
        items = top_items(cur, cfg, version, vector, top_n, created_from, created_to)
    return {"user_id": user_id, "model_version": version,
            "items": [{"item_id": i, "score": round(s, 6)} for i, s in items]}
