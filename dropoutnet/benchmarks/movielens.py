"""Our model on MovieLens 100K's time-based item-cold split, beside the split's baselines.

The split (:func:`dropoutnet.datasets.movielens.split_time_cold`): the last 15 % of movies by
publish time (first rating) are cold; training uses the ratings before the first cold movie;
the test is every rating >= 4 of a cold movie by a user seen in training; candidates are the
cold movies.  We run the *daily pipeline's own steps* on it: load the raw tables, build the
samples of the bizdate before the cutoff day over the whole history, train, export, then embed
the test users and the cold movies as of the cutoff day (the movies have no behaviour then:
they are encoded cold) and rank by inner product.  Difference from the split's definition:
samples are whole days, so the ratings of the cutoff day before the cutoff time are left out
of training.
"""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path
from typing import Any, Sequence


from .. import db, inputs, samples
from ..config import PipelineConfig, load_config
from ..datasets import movielens

CONFIG = Path(__file__).resolve().parent.parent.parent / "config" / "movielens-100k.yaml"


def benchmark_config(raw_schema: str, out_schema: str, train_days: int,
                     epochs: int | None = None,
                     losses: dict[str, Any] | None = None) -> PipelineConfig:
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
    if epochs is not None:
        data["training"]["epochs"] = epochs
    if losses:
        data["model"]["losses"].update(losses)
    return PipelineConfig.model_validate(data)


def run(path: str | Path, url: str, workdir: Path, ks: Sequence[int] = (20, 50, 100),
        epochs: int | None = None, seed: int = 0,
        losses: dict[str, Any] | None = None, cold_share: float = 0.15) -> dict[str, Any]:
    """Train on the split's history with the pipeline and score the cold movies; with baselines."""
    from ..export import export_models, load_tower
    from ..train import train_model

    started = time.monotonic()
    split = movielens.split_time_cold(path, cold_share)
    cutoff = dt.datetime.fromtimestamp(split["cutoff_time"], dt.timezone.utc)
    bizdate = cutoff.date() - dt.timedelta(days=1)
    first = dt.datetime.fromtimestamp(int(split["train"]["time"].min()), dt.timezone.utc).date()
    raw_schema, out_schema = "bench_ml_raw", "bench_ml_dn"
    with db.transaction(url) as cur:
        cur.execute(f'create schema if not exists "{raw_schema}"')
    movielens.load(url, path, schema=raw_schema)
    cfg = benchmark_config(raw_schema, out_schema, (bizdate - first).days + 1, epochs, losses)

    samples.build_samples(cfg, bizdate, url)
    with db.transaction(url) as cur:
        data = samples.load_partition(cur, cfg, "samples", bizdate)
        boundaries = samples.load_boundaries(cur, cfg, bizdate)
    checkpoints, export_dir = workdir / "checkpoints", workdir / "export"
    stats = train_model(cfg, data["features"], data["labels"], boundaries, checkpoints, None,
                        item_ids=data["item_ids"])
    export_models(cfg, checkpoints, export_dir)

    from ..embeddings import read_features

    as_of = cutoff.date()
    with db.transaction(url) as cur:
        users = read_features(cur, cfg, "user", as_of, {
            "active_from": first, "active_to": as_of + dt.timedelta(days=1)})
        items = read_features(cur, cfg, "item", as_of, {
            "created_from": cutoff, "created_to": cutoff + dt.timedelta(days=3650)})
    upos = {u: k for k, u in enumerate(users["user_id"])}
    ipos = {i: k for k, i in enumerate(items["item_id"])}
    user_rows = [upos[str(u)] for u in split["test_users"]]
    item_rows = [ipos[str(i)] for i in split["candidates"]]
    user_vec = load_tower(export_dir / "user")(
        inputs.to_inputs(cfg.features_of(side="user"),
                         {k: [v[r] for r in user_rows] for k, v in users.items()}))
    item_vec = load_tower(export_dir / "item")(
        inputs.to_inputs(cfg.features_of(side="item"),
                         {k: [v[r] for r in item_rows] for k, v in items.items()}))
    scores = user_vec @ item_vec.T

    result = movielens.benchmark_baselines(path, ks, seed=seed, cold_share=cold_share)
    result["model"] = movielens.evaluate_scores(split, scores, ks, seed=seed)
    result["train"] = {k: stats.get(k) for k in ("rows", "positives", "steps", "loss")}
    result["train_bizdate"] = bizdate.isoformat()
    best = max(result["baselines"], key=lambda b: result["baselines"][b][f"recall@{min(ks)}"])
    result["ratio_to_best_baseline"] = {
        f"recall@{k}": round(result["model"][f"recall@{k}"]
                             / max(max(b[f"recall@{k}"] for b in result["baselines"].values()),
                                   1e-12), 4) for k in ks}
    result["best_baseline_at_smallest_k"] = best
    result["seconds"] = round(time.monotonic() - started, 1)
    with db.transaction(url) as cur:
        cur.execute(f'drop schema if exists "{raw_schema}" cascade; '
                    f'drop schema if exists "{out_schema}" cascade')
    return result
