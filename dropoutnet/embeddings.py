"""Batch user and item embeddings of a bizdate's model version, into pgvector tables.

Features are read as of the start of the bizdate (``user_features.sql`` /
``item_features.sql``), pushed through the exported user or item SavedModel, and COPYed into a
staging table that becomes the version's *candidate* partition (``db.keep_candidate``), not
yet attached: evaluate reads the candidates, and publish attaches the user and the item
candidate in one transaction.  So a rerun of the live version's bizdate changes nothing a
reader sees until it is published, and a reader never sees the user vectors of one run with
the item vectors of another.  The item candidate gets its inner-product HNSW index before
it is kept, so a reader never queries an unindexed or half-loaded version.
"""

from __future__ import annotations

import datetime as dt
import io
import logging
from typing import Any

import numpy as np

from . import artifacts, db, feature_queries, inputs, registry, sql
from .failpoints import failpoint
from .config import PipelineConfig
from .errors import MissingDataError

log = logging.getLogger(__name__)


def ensure_tables(url: str | None, cfg: PipelineConfig) -> None:
    """Create the embedding tables if absent; refuse tables of another vector size.

    A vector's size is fixed per table (the HNSW index needs it), and every version lives in
    the same two tables: a model of another size (``embedding_dim``, ``item_prior``) needs
    tables of its own.
    """
    schema, dim = cfg.storage.schema_, cfg.model.vector_dim
    db.ensure_ddl(url, "ddl/embedding_tables.sql", schema=schema, dim=dim)
    with db.transaction(url) as cur:
        sql.execute(cur, "table_columns.sql", params={"schema": schema,
                                                      "table": "item_embeddings"})
        stored = dict(cur.fetchall())["embedding"]
    if stored != f"vector({dim})":
        raise MissingDataError(
            f"the embedding tables of schema {schema!r} hold {stored} but this config's model "
            f"makes vector({dim}) (model.embedding_dim {cfg.model.embedding_dim}"
            f"{' + 1 for model.item_prior' if cfg.model.item_prior else ''}): set "
            f"storage.schema to a new schema for this model, or drop {schema}.user_embeddings "
            f"and {schema}.item_embeddings (every stored version is lost) and rerun")


def read_features(cur, cfg: PipelineConfig, side: str, bizdate: dt.date,
                  extra: dict[str, Any]) -> dict[str, list]:
    """One tower's raw features as of the start of ``bizdate`` (``user_features.sql`` or
    ``item_features.sql``; ``extra`` binds the user activity or item creation range)."""
    params = feature_queries.feature_params(cfg, bizdate, bizdate)
    params.update(extra, bizdate=bizdate)
    text = sql.render(f"{side}_features.sql", **feature_queries.template_context(cfg, [side]))
    return db.fetch_columns(cur, text, params)


def _copy_rows(cur, schema: str, stage: str, columns: list[str], rows: list[tuple],
               vectors: np.ndarray) -> None:
    buf = io.StringIO()
    for scalars, vec in zip(rows, vectors):
        fields = ["\\N" if v is None else str(v) for v in scalars]
        fields.append("[" + ",".join(f"{x:.7g}" for x in vec) + "]")
        buf.write("\t".join(fields) + "\n")
    buf.seek(0)
    cur.copy_expert(sql.render("copy_embeddings.sql", schema=schema, stage=stage,
                               columns=columns), buf)


def _predict(path, cfg: PipelineConfig, side: str, columns: dict[str, list]) -> np.ndarray:
    from .export import load_tower  # TensorFlow only when a task needs it

    specs = cfg.features_of(side=side)
    tower = load_tower(path)
    vectors = np.asarray(tower(inputs.to_inputs(specs, columns)), dtype=np.float32)
    if vectors.shape != (len(columns[f"{side}_id"]), cfg.model.vector_dim):
        raise RuntimeError(f"the {side} model at {path} returned shape {vectors.shape}; "
                           f"expected (n, {cfg.model.vector_dim}) — re-export the model")
    return vectors


def write_user_embeddings(cfg: PipelineConfig, bizdate: dt.date, url: str | None = None) -> dict[str, Any]:
    """Embed every active user with the bizdate's user model."""
    version = artifacts.model_version(bizdate)
    run = registry.current_run(cfg, bizdate)
    model_path = registry.run_paths(cfg, bizdate, run).user
    r = cfg.retrieval
    ensure_tables(url, cfg)
    registry.ensure_tables(url, cfg)
    with db.transaction(url) as cur:
        columns = read_features(cur, cfg, "user", bizdate, {
            "active_from": bizdate - dt.timedelta(days=r.active_user_days - 1),
            "active_to": bizdate + dt.timedelta(days=1),
        })
        n = len(columns["user_id"])
        vectors = _predict(model_path, cfg, "user", columns) if n else np.zeros((0, 1))
        schema = cfg.storage.schema_
        stage = db.create_stage(cur, schema, "user_embeddings", version)
        _copy_rows(cur, schema, stage, ["model_version", "user_id", "embedding"],
                   [(version, u) for u in columns["user_id"]], vectors)
        failpoint("user_embeddings.before_commit")
        db.keep_candidate(cur, schema, "user_embeddings", version, stage)
        registry.record_part(cur, cfg, version, "user_embeddings", run)
    cold = _cold_count(cfg, "user", columns)
    log.info("user embeddings of version %s: %d users (%d cold)", version, n, cold)
    return {"model_version": version, "run_id": run, "users": n, "cold_users": cold}


def write_item_embeddings(cfg: PipelineConfig, bizdate: dt.date, url: str | None = None) -> dict[str, Any]:
    """Embed the candidate pool with the bizdate's item model and index it (HNSW, inner product)."""
    version = artifacts.model_version(bizdate)
    run = registry.current_run(cfg, bizdate)
    model_path = registry.run_paths(cfg, bizdate, run).item
    r = cfg.retrieval
    ensure_tables(url, cfg)
    registry.ensure_tables(url, cfg)
    with db.transaction(url) as cur:
        columns = read_features(cur, cfg, "item", bizdate, {
            "created_from": bizdate - dt.timedelta(days=r.candidate_window_days - 1),
            "created_to": bizdate + dt.timedelta(days=1),
        })
        n = len(columns["item_id"])
        vectors = _predict(model_path, cfg, "item", columns) if n else np.zeros((0, 1))
        schema = cfg.storage.schema_
        stage = db.create_stage(cur, schema, "item_embeddings", version)
        _copy_rows(cur, schema, stage, ["model_version", "item_id", "created_at", "embedding"],
                   [(version, i, c.isoformat() if c else None)
                    for i, c in zip(columns["item_id"], columns["created_at"])], vectors)
        sql.execute(cur, "hnsw_index.sql", schema=schema, stage=stage, m=r.hnsw.m,
                    ef_construction=r.hnsw.ef_construction)
        db.keep_candidate(cur, schema, "item_embeddings", version, stage)
        registry.record_part(cur, cfg, version, "item_embeddings", run)
    new = sum(1 for c in columns["created_at"] if c is not None and c.date() == bizdate)
    log.info("item embeddings of version %s: %d candidates (%d new on %s)", version, n, new,
             bizdate)
    return {"model_version": version, "run_id": run, "items": n, "new_items": new}


def version_tables(cur, cfg: PipelineConfig, version: str) -> dict[str, str]:
    """The tables holding ``version``'s user and item embeddings, as one consistent pair.

    Both are unpublished candidates (the embedding tasks ran since the last publish) or both
    are attached partitions (published).  One of each would pair the user vectors of one run
    with the item vectors of another, so it is refused with the task to rerun.
    """
    schema = cfg.storage.schema_
    tables, candidates = {}, {}
    for side in ("user", "item"):
        parent = f"{side}_embeddings"
        table = db.version_table(cur, schema, parent, version)
        if table is None:
            raise MissingDataError(f"version {version} has no {side} embeddings: run the "
                                   f"{side}_embeddings task for that bizdate first")
        tables[side] = table
        candidates[side] = table == db.candidate_name(parent, version)
    if candidates["user"] != candidates["item"]:
        stale = "user" if candidates["item"] else "item"
        raise MissingDataError(
            f"version {version}'s {stale} embeddings are from the published run but its "
            f"{'item' if stale == 'user' else 'user'} embeddings were rerun: rerun the "
            f"{stale}_embeddings task for that bizdate too, so both come from the same model")
    return tables


def _cold_count(cfg: PipelineConfig, side: str, columns: dict[str, list]) -> int:
    prefs = [f.name for f in cfg.features_of(side=side) if f.group.endswith("_preference")]
    if not prefs:
        return 0
    return sum(1 for row in zip(*(columns[p] for p in prefs)) if all(v is None for v in row))
