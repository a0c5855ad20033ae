"""Evaluate a bizdate's model version on the cold items of that bizdate.

* AUC of the final model on the eval partition (the bizdate's exposures of items created on
  the bizdate, which training never saw; their preference input is cold).
* recall@K and NDCG@K of *real* retrieval: for every eval user with a click on a new item,
  the HNSW top-K over the version's item embeddings, filtered to items created on the
  bizdate, against the items the user clicked.
* Baselines on the same users and candidates: popularity (the new item's author's clicks in
  the training window) and random (its exact expectation, K / candidates).

The metrics are stored per bizdate (a rerun replaces them).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from typing import Any

import numpy as np
from psycopg2.extras import Json

from . import artifacts, db, metrics, retrieval, samples, sql
from .config import PipelineConfig

log = logging.getLogger(__name__)


def ensure_tables(url: str | None, cfg: PipelineConfig) -> None:
    db.ensure_ddl(url, "ddl/model_tables.sql", schema=cfg.storage.schema_)


def _auc(cfg: PipelineConfig, bizdate: dt.date, data: dict[str, Any]) -> float | None:
    from .export import load_serving  # TensorFlow only when needed

    if len(data["labels"]) == 0:
        return None
    final = load_serving(artifacts.paths(cfg.model_name, bizdate).final)
    probability = final(data["features"])["probability"].reshape(-1)
    return metrics.auc(probability, data["labels"])


def evaluate(cfg: PipelineConfig, bizdate: dt.date, url: str | None = None,
             extra: dict[str, Any] | None = None) -> dict[str, Any]:
    version = artifacts.model_version(bizdate)
    ks = cfg.evaluation.k
    day_start = dt.datetime.combine(bizdate, dt.time(), tzinfo=dt.timezone.utc)
    day_end = day_start + dt.timedelta(days=1)
    schema = cfg.storage.schema_
    ensure_tables(url, cfg)
    with db.transaction(url) as cur:
        if not samples.partition_exists(cur, cfg, "eval_samples", bizdate):
            raise samples.MissingDataError(
                f"eval_samples has no partition for bizdate {bizdate}: run the samples task "
                "for that bizdate first")
        data = samples.load_partition(cur, cfg, "eval_samples", bizdate)
        relevant: dict[str, set[str]] = {}
        for user, item, label in zip(data["user_ids"], data["item_ids"], data["labels"]):
            if label > 0:
                relevant.setdefault(user, set()).add(item)

        rankings: dict[str, list[str]] = {}
        missing_users = 0
        for user in relevant:
            vector = retrieval.user_vector(cur, cfg, version, user)
            if vector is None:
                missing_users += 1
                continue
            rankings[user] = [i for i, _ in retrieval.top_items(
                cur, cfg, version, vector, max(ks), created_from=day_start, created_to=day_end)]

        sql.execute(cur, "popularity_baseline.sql", params={
            "bizdate": bizdate, "created_from": day_start, "created_to": day_end,
        }, schema=schema, raw=cfg.raw, label=cfg.label_name)
        popular = [row[0] for row in cur.fetchall()]
        n_candidates = len(popular)
        sql.execute(cur, "train_sample_counts.sql", params={"bizdate": bizdate},
                    schema=schema, label=cfg.label_name)
        train_samples, train_positives = cur.fetchone()

    model_auc = _auc(cfg, bizdate, data)
    result: dict[str, Any] = {
        "bizdate": bizdate.isoformat(),
        "model_version": version,
        "auc": model_auc,
        **metrics.ranking_metrics(rankings, relevant, ks),
        "train_samples": int(train_samples),
        "train_positives": int(train_positives),
        "eval_samples": int(len(data["labels"])),
        "eval_positives": int(np.sum(data["labels"] > 0)),
        "eval_users": len(relevant),
        "eval_users_without_embedding": missing_users,
        "new_items": n_candidates,
        "baselines": {
            "popularity": metrics.ranking_metrics({u: popular for u in relevant}, relevant, ks),
            "random": {f"recall@{k}": (min(k, n_candidates) / n_candidates
                                       if n_candidates else float("nan")) for k in ks},
        },
    }
    if extra:
        result.update(extra)
    result = json.loads(json.dumps(result, default=float).replace("NaN", "null"))
    with db.transaction(url) as cur:
        sql.execute(cur, "save_metrics.sql", params={
            "bizdate": bizdate, "model_version": version, "metrics": Json(result)},
            schema=schema)
    log.info("metrics of %s: auc %s, %s", bizdate, model_auc,
             {k: v for k, v in result.items() if k.startswith("recall@")})
    return result


def read_metrics(cfg: PipelineConfig, bizdate: dt.date, url: str | None = None) -> dict[str, Any]:
    with db.transaction(url) as cur:
        if not db.table_exists(cur, cfg.storage.schema_, "metrics"):
            raise samples.MissingDataError(
                "no metrics are stored yet: run the daily DAG for a bizdate first")
        sql.execute(cur, "read_metrics.sql", params={"bizdate": bizdate},
                    schema=cfg.storage.schema_)
        row = cur.fetchone()
    if row is None:
        raise samples.MissingDataError(
            f"no metrics for bizdate {bizdate}: run the daily DAG (or `dropoutnet run "
            f"--bizdate {bizdate}`) for that bizdate")
    return row[0]
