"""Our model on MovieLens 100K's time-based item-cold split, beside the split's baselines.

    dropoutnet benchmark movielens --path ../shared/datasets/ml-100k [--seeds 3] [--json]
    dropoutnet benchmark movielens --path DIR --tune 30 [--tune-seed 0]

The split (:func:`dropoutnet.datasets.movielens.split_time_cold`): the last 15 % of movies by
publish time (first rating) are cold; training uses the ratings before the first cold movie;
the test is every rating >= 4 of a cold movie by a user seen in training; candidates are the
cold movies.  We run the *daily pipeline's own steps* on it: load the raw tables, build the
samples of the bizdate before the cutoff day over the whole history, train, then embed the
test users and the cold movies as of the cutoff day (the movies have no behaviour then: they
are encoded cold) and rank by inner product.  Difference from the split's definition: samples
are whole days, so the ratings of the cutoff day before the cutoff time are left out of
training.

**Model selection never sees the test.**  ``--tune N`` runs N Optuna trials
(:mod:`dropoutnet.tuning`) on a *validation* split carved the same way from the training
ratings alone (:func:`validation`): the ratings after the test cutoff are not even loaded.
The model's test figures are the mean over ``--seeds`` training seeds (per-user recall
averaged over the seeds, with its bootstrap interval over users, and each seed's figure).
"""

from __future__ import annotations

import datetime as dt
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from .. import db, inputs, samples, tuning
from ..config import PipelineConfig, load_config
from ..datasets import movielens
from ..metrics import bootstrap_ci

CONFIG = Path(__file__).resolve().parent.parent.parent / "config" / "movielens-100k.yaml"
RAW_SCHEMA, OUT_SCHEMA = "bench_ml_raw", "bench_ml_dn"


def benchmark_config(raw_schema: str, out_schema: str, train_days: int,
                     settings: Mapping[str, Any] | None = None) -> PipelineConfig:
    """``config/movielens-100k.yaml`` on the benchmark's schemas, over the whole history, with
    ``settings`` (overrides of its sections, e.g. tuned ``model`` / ``training``) merged in."""
    data = load_config(CONFIG).model_dump(by_alias=True, exclude_none=True)
    for name in ("events", "items", "authors", "item_text", "users"):
        data["raw"][name]["schema"] = raw_schema
    data["storage"]["schema"] = out_schema
    data["cold_start_recall"]["train_days"] = train_days
    # the split's baselines read each user's whole training history; most MovieLens users
    # rate in a few early sessions, so a 60-day preference window would make them cold
    for feature in data["features"]:
        if feature.get("preference"):
            feature["preference"]["window_days"] = train_days
    return PipelineConfig.model_validate(tuning.apply(data, settings or {}))


@dataclass
class Prepared:
    """One split, loaded and featurised once; :func:`model_scores` trains on it any number of
    times."""

    cfg: PipelineConfig
    split: dict[str, Any]
    bizdate: dt.date
    train: dict[str, Any]            # the samples partition
    boundaries: dict[str, list[float]]
    users: dict[str, np.ndarray]     # model inputs of the test users, as of the cutoff day
    items: dict[str, np.ndarray]     # model inputs of the candidates (cold: no behaviour yet)


def prepare(url: str, ml: movielens.MovieLens, cold_share: float = 0.15,
            settings: Mapping[str, Any] | None = None) -> Prepared:
    """Load ``ml`` into the raw tables, split it, build the samples and read the features."""
    from ..embeddings import read_features

    split = movielens.split_time_cold(ml, cold_share)
    cutoff = dt.datetime.fromtimestamp(split["cutoff_time"], dt.timezone.utc)
    bizdate = cutoff.date() - dt.timedelta(days=1)
    first = dt.datetime.fromtimestamp(int(split["train"]["time"].min()), dt.timezone.utc).date()
    with db.transaction(url) as cur:
        cur.execute(f'drop schema if exists "{OUT_SCHEMA}" cascade; '
                    f'create schema if not exists "{RAW_SCHEMA}"')
    movielens.load(url, ml, schema=RAW_SCHEMA)
    cfg = benchmark_config(RAW_SCHEMA, OUT_SCHEMA, (bizdate - first).days + 1, settings)
    samples.build_samples(cfg, bizdate, url)
    as_of = cutoff.date()
    with db.transaction(url) as cur:
        train = samples.load_partition(cur, cfg, "samples", bizdate)
        boundaries = samples.load_boundaries(cur, cfg, bizdate)
        users = read_features(cur, cfg, "user", as_of, {
            "active_from": first, "active_to": as_of + dt.timedelta(days=1)})
        items = read_features(cur, cfg, "item", as_of, {
            "created_from": cutoff, "created_to": cutoff + dt.timedelta(days=3650)})
    upos = {u: k for k, u in enumerate(users["user_id"])}
    ipos = {i: k for k, i in enumerate(items["item_id"])}
    user_rows = [upos[str(u)] for u in split["test_users"]]
    item_rows = [ipos[str(i)] for i in split["candidates"]]
    return Prepared(
        cfg=cfg, split=split, bizdate=bizdate, train=train, boundaries=boundaries,
        users=inputs.to_inputs(cfg.features_of(side="user"),
                               {k: [v[r] for r in user_rows] for k, v in users.items()}),
        items=inputs.to_inputs(cfg.features_of(side="item"),
                               {k: [v[r] for r in item_rows] for k, v in items.items()}))


def validation(url: str, ml: movielens.MovieLens, cold_share: float = 0.15,
               settings: Mapping[str, Any] | None = None) -> Prepared:
    """The validation split: the same protocol on the ratings before the test cutoff only."""
    test = movielens.split_time_cold(ml, cold_share)
    return prepare(url, movielens.ratings_before(ml, test["cutoff_time"]), cold_share, settings)


def model_scores(p: Prepared, settings: Mapping[str, Any] | None = None,
                 seed: int | None = None) -> tuple[np.ndarray, dict[str, Any]]:
    """Train the model on ``p`` (with ``settings`` merged into its config) and return the
    ``[test users, candidates]`` scores and the training stats."""
    from ..train import load_trained_model, train_model

    data = tuning.apply(p.cfg.model_dump(by_alias=True, exclude_none=True), settings or {})
    if seed is not None:
        data["training"]["seed"] = seed
    cfg = PipelineConfig.model_validate(data)
    work = Path(tempfile.mkdtemp(prefix="dropoutnet-ml-"))
    try:
        stats = train_model(cfg, p.train["features"], p.train["labels"], p.boundaries,
                            work / "checkpoints", None, item_ids=p.train["item_ids"])
        model = load_trained_model(work / "checkpoints")
        return tuning.embed_and_score(model, p.users, p.items), stats
    finally:
        shutil.rmtree(work, ignore_errors=True)


def seeds_figures(split: dict[str, Any], per_seed: Sequence[np.ndarray],
                  ks: Sequence[int], seed: int = 0) -> dict[str, Any]:
    """The model's figures over several training seeds: mean recall@K, its bootstrap interval
    over users (of each user's recall averaged over the seeds), its standard deviation over
    the seeds and each seed's figure."""
    out: dict[str, Any] = {"seeds": len(per_seed)}
    for k in ks:
        runs = np.stack([movielens.recall_at_k(s, split["relevant"], k) for s in per_seed])
        means = runs.mean(axis=1)
        out[f"recall@{k}"] = round(float(means.mean()), 4)
        out[f"recall@{k}_ci"] = [round(x, 4) for x in bootstrap_ci(runs.mean(axis=0), seed=seed)]
        out[f"recall@{k}_std"] = round(float(means.std()), 4)
        out[f"recall@{k}_per_seed"] = [round(float(m), 4) for m in means]
    return out


def tune(path: str | Path, url: str, trials: int, seed: int = 0, k: int = 20,
         seeds_per_trial: int = 2, cold_share: float = 0.15, echo=print) -> dict[str, Any]:
    """An Optuna study of the model's settings on the validation split: recall@k, averaged
    over ``seeds_per_trial`` training seeds (one seed's figure swings too much to rank
    settings by)."""
    ml = movielens.read(path)
    p = validation(url, ml, cold_share)
    echo(f"validation split: {len(p.split['candidates'])} cold movies, "
         f"{len(p.split['test_users'])} users, {len(p.train['labels'])} training samples")
    base = p.cfg.model_dump(by_alias=True, exclude_none=True)

    def objective(settings: dict[str, Any]) -> float:
        figures = [movielens.recall_at_k(model_scores(p, settings, p.cfg.training.seed + i)[0],
                                         p.split["relevant"], k).mean()
                   for i in range(seeds_per_trial)]
        return float(np.mean(figures))

    result = tuning.run_study(objective, base, trials, seed, metric=f"recall@{k}", echo=echo)
    _drop_schemas(url)
    return result


def run(path: str | Path, url: str, ks: Sequence[int] = (20, 50, 100), seeds: int = 3,
        settings: Mapping[str, Any] | None = None, seed: int = 0,
        cold_share: float = 0.15) -> dict[str, Any]:
    """Train on the split's history with the pipeline and score the cold movies (``seeds``
    training seeds); with the baselines."""
    started = time.monotonic()
    p = prepare(url, movielens.read(path), cold_share, settings)
    per_seed, stats = [], {}
    for i in range(seeds):
        scores, stats = model_scores(p, seed=p.cfg.training.seed + i)
        per_seed.append(scores)
    result = movielens.benchmark_baselines(path, ks, seed=seed, cold_share=cold_share)
    result["model"] = seeds_figures(p.split, per_seed, ks, seed=seed)
    result["train"] = {k: stats.get(k) for k in ("rows", "positives", "steps", "loss")}
    result["train_bizdate"] = p.bizdate.isoformat()
    result["settings"] = {"model": p.cfg.model.model_dump(mode="json"),
                          "training": p.cfg.training.model_dump(mode="json")}
    result["seconds"] = round(time.monotonic() - started, 1)
    _drop_schemas(url)
    return result


def _drop_schemas(url: str) -> None:
    with db.transaction(url) as cur:
        cur.execute(f'drop schema if exists "{RAW_SCHEMA}" cascade; '
                    f'drop schema if exists "{OUT_SCHEMA}" cascade')
