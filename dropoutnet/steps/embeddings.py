"""The embedding steps: a bizdate's user and item vectors, into the embedding store.

Features are read as of the start of the bizdate (``data/user_features.sql`` /
``data/item_features.sql``): the users active within ``retrieval.active_user_days``, the items
created within ``retrieval.candidate_window_days``.  They stream in chunks through the
exported tower of the bizdate's current training run, and
:func:`dropoutnet.recall.vectors.write_candidate_chunks` COPYs them, chunk by chunk, into the
version's candidate, which publish attaches.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from dropoutnet import registry
from dropoutnet.config import PipelineConfig
from dropoutnet.core import db
from dropoutnet.core.prefetch import prefetched
from dropoutnet.core.progress import Progress
from dropoutnet.data import feature_queries, inputs
from dropoutnet.recall import vectors
from dropoutnet.registry import artifacts

# users or items embedded at a time, and chunks read and embedded ahead of the one sent
CHUNK_ROWS = 8192
PREFETCH_CHUNKS = 2

log = logging.getLogger(__name__)


def _predict(tower, path: Path, cfg: PipelineConfig, side: str,
             columns: dict[str, list]) -> np.ndarray:
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
    n = len(columns[prefs[0]])
    cold = np.logical_and.reduce([np.fromiter((v is None for v in columns[p]), bool, n)
                                  for p in prefs])
    return int(np.count_nonzero(cold))


def write_embeddings(cfg: PipelineConfig, bizdate: dt.date, side: str,
                     url: str | None = None, chunk_rows: int = CHUNK_ROWS,
                     prefetch: int = PREFETCH_CHUNKS) -> dict[str, Any]:
    """Embed one side (``user`` or ``item``) with the bizdate's current run.

    The features stream from a server-side cursor ``chunk_rows`` at a time, each chunk goes
    through the tower and into one binary COPY as it comes: memory is a few chunks',
    whatever the number of users or items.  With ``prefetch`` (chunks ahead, 0: one after
    the other) the three run at once (:mod:`dropoutnet.core.prefetch`): a thread reads the
    next chunks while another embeds the one before and COPY sends the one before that.
    The result's ``seconds`` say how long the tower's thread waited for the reading, how
    long the tower took, and the whole.
    """
    from dropoutnet.training.saved_models import load_tower  # TensorFlow only when a task needs it

    version = artifacts.model_version(bizdate)
    run = registry.current_run(cfg, bizdate)
    path = getattr(registry.run_paths(cfg, bizdate, run), side)
    r = cfg.retrieval
    if side == "user":
        window = {"active_from": bizdate - dt.timedelta(days=r.active_user_days - 1),
                  "active_to": bizdate + dt.timedelta(days=1)}
        names = ["user_id"]
    else:
        window = {"created_from": bizdate - dt.timedelta(days=r.candidate_window_days - 1),
                  "created_to": bizdate + dt.timedelta(days=1)}
        names = ["item_id", "created_at", "attributes"]
    vectors.ensure_tables(url, cfg)
    registry.ensure_tables(url, cfg)
    tower = load_tower(path)
    counts = {"rows": 0, "cold": 0, "new": 0}
    phases = {"read": 0.0, "embed": 0.0}
    started = time.monotonic()
    progress = Progress(f"{side} embeddings", log)

    def chunks():
        query, params = feature_queries.features_query(cfg, side, bizdate, window)
        reads = prefetched(db.stream_columns(url, query, params, chunk_rows), prefetch)
        mark = time.monotonic()
        try:
            for columns in reads:
                now = time.monotonic()
                phases["read"] += now - mark
                out = _predict(tower, path, cfg, side, columns)
                mark = time.monotonic()
                phases["embed"] += mark - now
                counts["rows"] += len(out)
                if side == "user":
                    counts["cold"] += _cold_count(cfg, "user", columns)
                else:
                    counts["new"] += sum(1 for c in columns["created_at"]
                                         if c is not None and c.date() == bizdate)
                progress.update(counts["rows"])
                yield [columns[n] for n in names], out
        finally:  # on an error too: the reader stops and its cursor closes now
            reads.close()

    with db.transaction(url) as cur:
        vectors.write_candidate_chunks(cur, cfg, side, version, run, names,
                                       prefetched(chunks(), prefetch))
    progress.close()
    seconds = time.monotonic() - started
    result: dict[str, Any] = {"model_version": version, "run_id": run}
    if side == "user":
        result.update(users=counts["rows"], cold_users=counts["cold"])
    else:
        result.update(items=counts["rows"], new_items=counts["new"])
    result["per_second"] = round(counts["rows"] / seconds, 1) if seconds > 0 else None
    result["seconds"] = {"read": round(phases["read"], 2), "embed": round(phases["embed"], 2),
                         "total": round(seconds, 2)}
    log.info("%s embeddings of version %s: %s", side, version, result)
    return result
