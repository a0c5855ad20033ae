"""The embedding steps: a bizdate's user and item vectors, into the embedding store.

Features are read as of the start of the bizdate (``user_features.sql`` /
``item_features.sql``): the users active within ``retrieval.active_user_days``, the items
created within ``retrieval.candidate_window_days``.  They go through the exported tower of
the bizdate's current training run, and :func:`dropoutnet.vectors.write_candidate` keeps
them as the version's candidate, which publish attaches.
"""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path
from typing import Any

import numpy as np

from .. import artifacts, db, feature_queries, inputs, registry, vectors
from ..config import PipelineConfig

log = logging.getLogger(__name__)


def _predict(path: Path, cfg: PipelineConfig, side: str, columns: dict[str, list]) -> np.ndarray:
    from ..saved_models import load_tower  # TensorFlow only when a task needs it

    tower = load_tower(path)
    out = np.asarray(tower(inputs.to_inputs(cfg.features_of(side=side), columns)),
                     dtype=np.float32)
    if out.shape != (len(columns[f"{side}_id"]), cfg.vector_dim):
        raise RuntimeError(f"the {side} model at {path} returned shape {out.shape}; "
                           f"expected (n, {cfg.vector_dim}) — re-export the model")
    return out


def _cold_count(cfg: PipelineConfig, side: str, columns: dict[str, list]) -> int:
    prefs = [f.name for f in cfg.features_of(side=side) if f.group.endswith("_preference")]
    if not prefs:
        return 0
    return sum(1 for row in zip(*(columns[p] for p in prefs)) if all(v is None for v in row))


def write_embeddings(cfg: PipelineConfig, bizdate: dt.date, side: str,
                     url: str | None = None) -> dict[str, Any]:
    """Embed one side (``user`` or ``item``) with the bizdate's current run."""
    version = artifacts.model_version(bizdate)
    run = registry.current_run(cfg, bizdate)
    tower = getattr(registry.run_paths(cfg, bizdate, run), side)
    r = cfg.retrieval
    if side == "user":
        window = {"active_from": bizdate - dt.timedelta(days=r.active_user_days - 1),
                  "active_to": bizdate + dt.timedelta(days=1)}
    else:
        window = {"created_from": bizdate - dt.timedelta(days=r.candidate_window_days - 1),
                  "created_to": bizdate + dt.timedelta(days=1)}
    vectors.ensure_tables(url, cfg)
    registry.ensure_tables(url, cfg)
    with db.transaction(url) as cur:
        columns = feature_queries.read_features(cur, cfg, side, bizdate, window)
        ids = columns[f"{side}_id"]
        out = _predict(tower, cfg, side, columns) if ids else np.zeros((0, 1))
        if side == "user":
            rows = [(u,) for u in ids]
            names = ["user_id"]
        else:
            rows = list(zip(ids, columns["created_at"], columns["attributes"]))
            names = ["item_id", "created_at", "attributes"]
        vectors.write_candidate(cur, cfg, side, version, run, names, rows, out)
    result: dict[str, Any] = {"model_version": version, "run_id": run}
    if side == "user":
        result.update(users=len(ids), cold_users=_cold_count(cfg, "user", columns))
    else:
        result.update(items=len(ids), new_items=sum(
            1 for c in columns["created_at"] if c is not None and c.date() == bizdate))
    log.info("%s embeddings of version %s: %s", side, version, result)
    return result
