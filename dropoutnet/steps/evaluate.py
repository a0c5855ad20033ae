"""Evaluate a bizdate's model version on the bizdate's held-out exposures, split three ways.

The eval partition (``data/samples.sql``) holds the bizdate's exposures that training never saw:

* ``cold_items``: exposures of items created on the bizdate (their preference input is cold)
  by returning users;
* ``cold_both``: exposures of items created on the bizdate by users with no event before it
  (both towers see content only);
* ``cold_users``: exposures of older items by users with no event before the bizdate;
* ``warm_items``: exposures of older items by a hashed share of the returning users.

Per split: AUC of the final model on the split's samples, and recall@K / NDCG@K of *real*
retrieval (the HNSW top-K over the version's item embeddings) for every user of the split
with a click, against the candidates of its own split: the items created on the bizdate for
cold items, the older items of the candidate pool for the other two.  Baselines on the same
users and candidates (see :mod:`dropoutnet.evaluation.baselines`): random, popularity of the item's
categorical content values, content → popularity (a regression of an item's training
positives on its content, at equal exposure), content kNN, ridge → factors (implicit-ALS
factors of the training positives, a ridge from content to item factors), and, where the
config names planted preferences (synthetic data), the oracle, a ceiling rather than a
baseline.  Every recall@K of the model and of the baselines but random (an exact
expectation) and the oracle carries its bootstrap interval over the split's users
(``recall@K_ci``); ``strongest_baseline`` names, per K, the baseline with the highest recall.

The quality gate's figures: the gate metric on cold items of this version and of the active
version, both by exact retrieval with their own towers on the same users and new items, and
their difference with its bootstrap interval paired over those users.

The metrics are stored per bizdate (a rerun replaces them).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
from psycopg2.extras import Json

from dropoutnet import registry
from dropoutnet.config import PipelineConfig
from dropoutnet.core import db, sql
from dropoutnet.data import inputs, partitions
from dropoutnet.data.feature_queries import read_features
from dropoutnet.data.inputs import as_vector
from dropoutnet.evaluation import baselines, metrics
from dropoutnet.model import closed_form
from dropoutnet.model.closed_form import Ridge
from dropoutnet.model.content import ContentEncoder
from dropoutnet.recall.vectors import check_tables, version_tables
from dropoutnet.registry import artifacts

log = logging.getLogger(__name__)


SPLITS = ("cold_items", "warm_items", "cold_users", "cold_both")
NEW_ITEM_SPLITS = ("cold_items", "cold_both")  # ranked among the bizdate's new items


def _auc(final, features: dict[str, np.ndarray], labels: np.ndarray) -> float | None:
    if len(labels) == 0:
        return None
    probability = final(features)["probability"].reshape(-1)
    return metrics.auc(probability, labels)


def _as_vectors(values: list) -> dict[str, np.ndarray]:
    return {u: as_vector(v) for u, v in values}


def _value_counts(cur, cfg: PipelineConfig, bizdate: dt.date) -> dict[str, dict[str, int]]:
    """Positives per value of each categorical item-content feature in the bizdate's
    training samples: the popularity baseline's counts (one query for every split)."""
    feats = [f for f in cfg.features_of(group="item_content") if f.kind == "categorical"]
    counts: dict[str, dict[str, int]] = {f.name: {} for f in feats}
    if not feats:
        return counts
    sql.execute(cur, "evaluation/positive_value_counts.sql",
                params={"bizdate": bizdate, **{f"name_{f.name}": f.name for f in feats}},
                schema=cfg.storage.schema_, label=cfg.label_name, features=feats)
    for feature, value, n in cur.fetchall():
        counts.setdefault(feature, {})[value] = int(n)
    return counts


@dataclass(frozen=True)
class ContentModels:
    """The content regressions of one bizdate, fitted once for every split: the encoder of
    the items' content, content → popularity, and ALS factors with the ridge from content to
    item factors (None without a positive pair)."""

    encoder: ContentEncoder
    popularity: Ridge
    factors: closed_form.Factors | None
    to_factors: Ridge | None


def _content_models(cur, cfg: PipelineConfig, bizdate: dt.date) -> ContentModels | None:
    """Fit the content baselines on the items and positives of the bizdate's training
    samples; None when the config has no item content or training has no item."""
    feats = cfg.features_of(group="item_content")
    if not feats:
        return None
    query = sql.render("evaluation/training_items.sql", schema=cfg.storage.schema_,
                       label=cfg.label_name, features=feats, items=cfg.raw.table("items"))
    window_start = bizdate - dt.timedelta(days=cfg.cold_start_recall.train_days - 1)
    trained = db.fetch_columns(cur, query, {"bizdate": bizdate, "window_start": window_start})
    if not trained["item_id"]:
        return None
    encoder = ContentEncoder(feats).fit(trained)
    content = encoder.transform(trained)
    popularity = closed_form.popularity_regression(  # an unknown exposure (None) has its own bin
        content, np.asarray(trained["positives"]),
        np.array(trained["exposure_days"], dtype=np.float64))
    query = sql.render("evaluation/positive_pairs.sql", schema=cfg.storage.schema_,
                       label=cfg.label_name)
    pairs = db.fetch_columns(cur, query, {"bizdate": bizdate})
    if not pairs["item_id"]:
        return ContentModels(encoder, popularity, None, None)
    factors = closed_form.als_factors(pairs["user_id"], pairs["item_id"])
    to_factors = closed_form.factor_regression(content, factors.item_factors(trained["item_id"]))
    return ContentModels(encoder, popularity, factors, to_factors)


def _content_baselines(models: ContentModels, items: dict[str, list], users: list[str],
                       relevant: dict[str, set[str]], ks: list[int]) -> dict[str, Any]:
    """content_popularity and ridge_to_factors on a split's users and candidates."""
    top = max(ks)
    content = models.encoder.transform(items)
    ranked = baselines.rank(items["item_id"], models.popularity.predict(content)[:, 0], top)
    out = {"content_popularity": metrics.ranking_metrics(
        {u: ranked for u in users}, relevant, ks, ci=True)}
    if models.to_factors is not None:
        directions = closed_form.factor_directions(models.to_factors, content)
        f = models.factors
        # a user without factors (no positive in the training window: every cold user) gets
        # no ranking from it, so recall 0, as content kNN does for a user without a profile
        user_vectors = {u: f.user_vectors[f.users[u]] for u in users if u in f.users}
        out["ridge_to_factors"] = metrics.ranking_metrics(
            baselines.dot_rankings(user_vectors, items["item_id"], directions, top),
            relevant, ks, ci=True)
    return out


def _popularity(counts: dict[str, dict[str, int]], items: dict[str, list], k: int) -> list[str]:
    if not counts:
        return []
    values = {name: ["" if v is None else str(v) for v in items[name]] for name in counts}
    return baselines.rank(items["item_id"], baselines.popularity_scores(values, counts), k)


def _content_knn(cur, cfg: PipelineConfig, bizdate: dt.date, items: dict[str, list],
                 users: list[str], k: int) -> dict[str, list[str]] | None:
    vectors = [f for f in cfg.features_of(group="item_content") if f.kind == "vector"]
    if not vectors:
        return None
    feature = vectors[0]
    sql.execute(cur, "evaluation/user_profiles.sql", params={"bizdate": bizdate, "user_ids": users},
                schema=cfg.storage.schema_, label=cfg.label_name, feature=feature.name)
    profiles = _as_vectors(cur.fetchall())
    item_vectors = inputs.to_array(feature, items[feature.name])
    rankings = baselines.cosine_rankings(profiles, items["item_id"], item_vectors, k)
    # a user without clicks in the window has no profile: fall back to no ranking (recall 0)
    return rankings


def _oracle(cur, cfg: PipelineConfig, items: dict[str, list], users: list[str],
            k: int) -> dict[str, list[str]] | None:
    oracle = cfg.evaluation.oracle
    if oracle is None:
        return None
    found = {}
    for side, ids in (("users", users), ("items", items["item_id"])):
        t = getattr(oracle, side)
        sql.execute(cur, "evaluation/oracle_vectors.sql", params={"ids": list(ids)},
                    table=t.table, id=t.id, vector=t.vector, bias=t.bias)
        found[side] = {i: (as_vector(v), float(b)) for i, v, b in cur.fetchall()}
    known = [i for i in items["item_id"] if i in found["items"]]
    if not known:
        return None
    item_vectors = np.stack([found["items"][i][0] for i in known])
    bias = np.array([found["items"][i][1] for i in known])
    return baselines.dot_rankings({u: v for u, (v, _) in found["users"].items()}, known,
                                  item_vectors, k, bias)


def _has_towers(paths: artifacts.ModelPaths) -> bool:
    return all((p / "saved_model.pb").exists() for p in (paths.user, paths.item))


def _active_towers(cfg: PipelineConfig, active: registry.ActiveVersion
                   ) -> artifacts.ModelPaths | None:
    """The live version's towers: the copy publish made of its run's export, which no later
    run of the bizdate writes over (None when they are missing)."""
    if active.export_path is not None:
        published = artifacts.ModelPaths(active.export_path.parent)
        return published if _has_towers(published) else None
    legacy = artifacts.published_paths(cfg.model_name, active.model_version)
    return legacy if _has_towers(legacy) else None  # published before runs were recorded


def _exact_rankings(cfg: PipelineConfig, paths: artifacts.ModelPaths,
                    user_cols: dict[str, list], items: dict[str, list], users: set[str],
                    k: int) -> dict[str, list[str]]:
    """Exact top-k of the new items for ``users`` with the towers under ``paths``.

    Both the new and the active version are scored this way on the same users and items, so
    the quality gate compares like with like.
    """
    from dropoutnet.training.saved_models import load_tower

    rows = [i for i, u in enumerate(user_cols["user_id"]) if u in users]
    sub = {name: [values[i] for i in rows] for name, values in user_cols.items()}
    user_vectors = load_tower(paths.user)(inputs.to_inputs(cfg.features_of(side="user"), sub))
    item_vectors = load_tower(paths.item)(inputs.to_inputs(cfg.features_of(side="item"), items))
    return baselines.dot_rankings(dict(zip(sub["user_id"], user_vectors)), items["item_id"],
                                  item_vectors, k)


def _candidate_range(cfg: PipelineConfig, bizdate: dt.date,
                     split: str) -> tuple[dt.datetime, dt.datetime]:
    """A split's candidates by creation time: the bizdate's new items for cold items (and for
    cold users' exposures of new items), the older items of the embedded candidate pool
    (``retrieval.candidate_window_days``) otherwise."""
    day_start = dt.datetime.combine(bizdate, dt.time(), tzinfo=dt.timezone.utc)
    if split in NEW_ITEM_SPLITS:
        return day_start, day_start + dt.timedelta(days=1)
    return day_start - dt.timedelta(days=cfg.retrieval.candidate_window_days - 1), day_start


def _evaluate_split(cur, cfg: PipelineConfig, bizdate: dt.date, version: str, split: str,
                    data: dict[str, Any], final, tables: dict[str, str],
                    counts: dict[str, dict[str, int]], content_models: ContentModels | None
                    ) -> tuple[dict[str, Any], dict[str, Any]]:
    """One split's figures; also the (users, items, relevant) the quality gate needs."""
    ks = cfg.evaluation.k
    top = max(ks)
    rows = data["splits"] == split
    created_from, created_to = _candidate_range(cfg, bizdate, split)
    items = read_features(cur, cfg, "item", bizdate, {
        "created_from": created_from, "created_to": created_to})
    candidates = set(items["item_id"])
    relevant: dict[str, set[str]] = {}
    for user, item, label in zip(data["user_ids"][rows], data["item_ids"][rows],
                                 data["labels"][rows]):
        if label > 0 and item in candidates:
            relevant.setdefault(user, set()).add(item)
    users = sorted(relevant)

    # the model: real HNSW retrieval over the version's items of the split's candidates, all
    # the split's users in one statement
    sql.execute(cur, "recall/retrieval_settings.sql", params={
        "ef_search": max(cfg.retrieval.hnsw.ef_search, top), "iterative_scan": "strict_order",
        "max_scan_tuples": cfg.retrieval.hnsw.max_scan_tuples})
    sql.execute(cur, "evaluation/top_items_of_users.sql", params={
        "model_version": version, "user_ids": users, "top_n": top,
        "created_from": created_from, "created_to": created_to},
        schema=cfg.storage.schema_, user_table=tables["user"], item_table=tables["item"])
    rankings: dict[str, list[str]] = {}
    for user, item in cur.fetchall():
        rankings.setdefault(user, []).append(item)
    missing_users = len(users) - len(rankings)

    n = len(candidates)
    figures: dict[str, Any] = {
        "auc": _auc(final, {k: v[rows] for k, v in data["features"].items()},
                    data["labels"][rows]),
        **metrics.ranking_metrics(rankings, relevant, ks, ci=True),
        "samples": int(rows.sum()),
        "positives": int(np.sum(data["labels"][rows] > 0)),
        "users": len(users),
        "users_without_embedding": missing_users,
        "candidates": n,
        "baselines": {
            "random": {f"recall@{k}": (min(k, n) / n if n else None) for k in ks},
        },
    }
    # listed simplest first: a tie for the strongest baseline goes to the simpler one
    popular = _popularity(counts, items, top)
    figures["baselines"]["popularity"] = metrics.ranking_metrics(
        {u: popular for u in users}, relevant, ks, ci=True)
    content = (_content_baselines(content_models, items, users, relevant, ks)
               if content_models is not None and n else {})
    if "content_popularity" in content:
        figures["baselines"]["content_popularity"] = content["content_popularity"]
    knn = _content_knn(cur, cfg, bizdate, items, users, top)
    if knn is not None:
        figures["baselines"]["content_knn"] = metrics.ranking_metrics(knn, relevant, ks, ci=True)
    if "ridge_to_factors" in content:
        figures["baselines"]["ridge_to_factors"] = content["ridge_to_factors"]
    figures["strongest_baseline"] = metrics.strongest_baseline(figures["baselines"], ks)
    oracle = _oracle(cur, cfg, items, users, top)
    if oracle is not None:  # a ceiling, not a competitor: no interval, never the strongest
        figures["baselines"]["oracle"] = metrics.ranking_metrics(oracle, relevant, ks)
    return figures, {"items": items, "users": set(users), "relevant": relevant}


def evaluate(cfg: PipelineConfig, bizdate: dt.date, url: str | None = None,
             extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Score the bizdate's current run on its held-out exposures, per split and against the
    baselines, add the quality gate's figures, and store the metrics (with ``extra``'s keys
    added) as the version's ``metrics`` part.  Returns the stored metrics."""
    from dropoutnet.training.saved_models import load_serving  # TensorFlow only when needed

    version = artifacts.model_version(bizdate)
    schema = cfg.storage.schema_
    registry.ensure_tables(url, cfg)
    with db.transaction(url) as cur:  # its queries cast to cfg's vector type
        check_tables(cur, cfg, size=False)
    run = registry.current_run(cfg, bizdate)
    paths = registry.run_paths(cfg, bizdate, run)
    final = load_serving(paths.final)
    splits: dict[str, Any] = {}
    with db.transaction(url) as cur:
        data = partitions.load_partition(cur, cfg, "eval_samples", bizdate)
        tables = version_tables(cur, cfg, version)
        counts = _value_counts(cur, cfg, bizdate)
        content_models = _content_models(cur, cfg, bizdate)
        for split in SPLITS:
            splits[split], held = _evaluate_split(cur, cfg, bizdate, version, split, data, final,
                                                  tables, counts, content_models)
            if split == "cold_items":
                cold = held
        active = registry.active(cur, cfg)
        user_cols = read_features(cur, cfg, "user", bizdate, {
            "active_from": bizdate, "active_to": bizdate + dt.timedelta(days=1)})
        sql.execute(cur, "data/train_sample_counts.sql", params={"bizdate": bizdate},
                    schema=schema, label=cfg.label_name)
        train_samples, train_positives = cur.fetchone()

    result: dict[str, Any] = {
        "bizdate": bizdate.isoformat(),
        "model_version": version,
        "run_id": run,
        "train_samples": int(train_samples),
        "train_positives": int(train_positives),
        "splits": splits,
        "gate": _gate_figures(cfg, bizdate, paths, active, user_cols, cold["items"],
                              cold["users"], cold["relevant"]),
    }
    if extra:
        result.update(extra)
    result = json.loads(json.dumps(result, default=float).replace("NaN", "null"))
    with db.transaction(url) as cur:
        sql.execute(cur, "registry/save_metrics.sql", params={
            "bizdate": bizdate, "model_version": version, "metrics": Json(result)},
            schema=schema)
        registry.record_part(cur, cfg, version, "metrics", run)
    log.info("metrics of %s: %s", bizdate, {
        split: {k: v for k, v in f.items()
                if k == "auc" or (k.startswith("recall@") and not k.endswith("_ci"))}
        for split, f in result["splits"].items()})
    return result


def _gate_figures(cfg: PipelineConfig, bizdate: dt.date, paths: artifacts.ModelPaths,
                  active: registry.ActiveVersion | None, user_cols: dict[str, list],
                  items: dict[str, list], users: set[str],
                  relevant: dict[str, set[str]]) -> dict[str, Any]:
    """The gate metric of the new and of the active version on the same users and items.

    Like with like: the bizdate's held-out exposures are unseen by both models when the
    active version is of this bizdate or an earlier one.  An active version of a later
    bizdate trained on them, so it is not scored (``not_comparable``): publish keeps such a
    backfilled version as superseded unless asked to make it live.
    """
    gate = cfg.evaluation.gate
    name, k = gate.metric.split("@")
    k = int(k)
    figures: dict[str, Any] = {
        "metric": gate.metric, "tolerance": gate.tolerance, "new": None, "active": None,
        "active_version": active.model_version if active else None,
        "active_run": active.run_id if active else None}
    new = _exact_rankings(cfg, paths, user_cols, items, users, k)
    scored = metrics.ranking_metrics(new, relevant, [k], per_user=True)
    figures["new"] = scored[gate.metric]
    if active is None:
        return figures
    if active.bizdate is not None and active.bizdate > bizdate:
        figures["not_comparable"] = (f"the active version {active.model_version} is of a later "
                                     f"bizdate: it trained on {bizdate}'s exposures")
        return figures
    towers = _active_towers(cfg, active)
    if towers is None:
        figures["active_error"] = (f"the active version {active.model_version}'s published "
                                   f"towers are missing ({active.export_path})")
        log.warning("the quality gate cannot score %s", figures["active_error"])
        return figures
    try:
        old = _exact_rankings(cfg, towers, user_cols, items, users, k)
    except (KeyError, OSError, ValueError) as err:
        # the active towers read a feature the config dropped, or cannot be loaded
        figures["active_error"] = f"{type(err).__name__}: {err}"
        log.warning("the quality gate cannot score the active version %s: %s",
                    active.model_version, err)
    else:
        before = metrics.ranking_metrics(old, relevant, [k], per_user=True)
        figures["active"] = before[gate.metric]
        # paired over the same users: the interval of the difference, not of each figure
        if gate.metric in scored["per_user"]:  # none without a user who clicked
            difference = scored["per_user"][gate.metric] - before["per_user"][gate.metric]
            figures["difference"] = float(difference.mean())
            figures["difference_ci"] = list(metrics.bootstrap_ci(difference))
    return figures
