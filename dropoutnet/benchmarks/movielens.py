"""Our model on MovieLens 100K's time-based item-cold split, beside the split's baselines.

    dropoutnet benchmark movielens --path ../shared/datasets/ml-100k [--seeds 3] [--json]
    dropoutnet benchmark movielens --path DIR --tune 30 [--tune-seed 0]

The split (:func:`split_time_cold`, below): the last 15 % of movies by
publish time (first rating) are cold; training uses the ratings before the first cold movie;
the test is every rating >= 4 of a cold movie by a user seen in training; candidates are the
cold movies.  We run the *daily pipeline's own steps* on it: load the raw tables, build the
samples of the bizdate before the cutoff day over the whole history, train, then embed the
test users and the cold movies as of the cutoff day (the movies have no behaviour then: they
are encoded cold) and rank by inner product.  Difference from the split's definition: samples
are whole days, so the ratings of the cutoff day before the cutoff time are left out of
training.

**Model selection never sees the test.**  ``--tune N`` runs N Optuna trials
(:mod:`dropoutnet.training.tuning`) on *validation* folds carved from the training ratings alone
(:func:`validation_folds`: held-out arrivals): the ratings after the test cutoff are not even
loaded.
The model's test figures are the mean over ``--seeds`` training seeds (per-user recall
averaged over the seeds, with its bootstrap interval over users, and each seed's figure).

The time-based item-cold split (the benchmark)
----------------------------------------------
:func:`split_time_cold` reads the files directly (no database): movies ordered by publish time
(first rating; ties by id), the last 15 % are cold (252 of 1,682); train = every rating before
the first cold movie's publish time; test = ratings >= 4 on cold movies by users seen in
training, i.e. with at least one training rating >= 4 (98 users; 99 have any training rating,
one of them only ratings below 4); candidates = the 252 cold movies. Recall@K is the DropoutNet
paper's: per test user, the share of their test movies in the top K of the candidates,
averaged over users; :func:`bootstrap_ci` resamples the test users. Rankings break score ties
by publish time (then id); the expected recall under random tie-breaking is given beside it,
because genre-only scores tie a lot. :func:`baseline_scores` gives the baselines: genre
popularity, genre kNN, content → popularity, ridge → factors and random;
:func:`benchmark_baselines` names the strongest per K.  Reproduce every figure with::

    python -m dropoutnet.benchmarks.movielens ../shared/datasets/ml-100k
"""

from __future__ import annotations

import datetime as dt
import logging
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from dropoutnet.config import FeatureSpec, PipelineConfig, load_config
from dropoutnet.core import db
from dropoutnet.core.locations import REPOSITORY
from dropoutnet.data import inputs, movielens, partitions
from dropoutnet.data.movielens import (
    CLICK_MIN_RATING,
    GENRES,
    MovieLens,
    item_year,
    read,
    release_age,
)
from dropoutnet.evaluation.metrics import bootstrap_ci, score_metrics, strongest_baseline
from dropoutnet.model.closed_form import (
    als_factors,
    factor_directions,
    factor_regression,
    popularity_regression,
)
from dropoutnet.model.content import ContentEncoder
from dropoutnet.training import tuning

log = logging.getLogger(__name__)

CONFIG = REPOSITORY / "config" / "movielens-100k.yaml"
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
            settings: Mapping[str, Any] | None = None,
            split: dict[str, Any] | None = None) -> Prepared:
    """Load ``ml`` into the raw tables, split it (the time-cold split, or ``split`` already
    made of ``ml``), build the samples and read the features.

    The test users are read as of the cutoff day; each candidate as of its publish day or the
    cutoff day, whichever is first: with no behaviour, as a new movie is on the day it appears.
    Training never sees a candidate (:func:`without_items`).
    """
    from dropoutnet.data.feature_queries import read_features
    from dropoutnet.steps.samples import build_samples

    split = split_time_cold(ml, cold_share) if split is None else split
    cutoff = dt.datetime.fromtimestamp(split["cutoff_time"], dt.timezone.utc)
    bizdate = cutoff.date() - dt.timedelta(days=1)
    first = dt.datetime.fromtimestamp(int(split["train"]["time"].min()), dt.timezone.utc).date()
    with db.transaction(url) as cur:
        cur.execute(f'drop schema if exists "{OUT_SCHEMA}" cascade; '
                    f'create schema if not exists "{RAW_SCHEMA}"')
    movielens.load(url, ml, schema=RAW_SCHEMA)
    cfg = benchmark_config(RAW_SCHEMA, OUT_SCHEMA, (bizdate - first).days + 1, settings)
    build_samples(cfg, bizdate, url)
    as_of = cutoff.date()
    publish = dict(zip(split["items"].tolist(), split["publish_time"].tolist()))
    by_day: dict[dt.date, list[int]] = {}
    for c in split["candidates"].tolist():
        created = dt.datetime.fromtimestamp(publish[c], dt.timezone.utc)
        by_day.setdefault(min(created.date(), as_of), []).append(publish[c])
    with db.transaction(url) as cur:
        train = without_items(partitions.load_partition(cur, cfg, "samples", bizdate),
                              split["candidates"])
        boundaries = partitions.load_boundaries(cur, cfg, bizdate)
        users = read_features(cur, cfg, "user", as_of, {
            "active_from": first, "active_to": as_of + dt.timedelta(days=1)})
        items: dict[str, list] = {}
        for day, times in by_day.items():
            part = read_features(cur, cfg, "item", day, {
                "created_from": dt.datetime.fromtimestamp(min(times), dt.timezone.utc),
                "created_to": dt.datetime.fromtimestamp(max(times) + 1, dt.timezone.utc)})
            for k, v in part.items():
                items.setdefault(k, []).extend(v)
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


def without_items(train: dict[str, Any], items: Sequence[Any]) -> dict[str, Any]:
    """The samples partition ``train`` without the rows of ``items``.

    The test's cold movies do not exist before the cutoff, so its samples never hold them.  A
    validation fold's held-out movies do exist (they keep their publish times, so their
    content is the same as it will be when they are ranked) and the samples step draws them as
    sampled negatives, about 1,000 rows with no positive per fold: training learned that their
    content (recent releases, mostly) is never liked, and the folds scored the content →
    reach ridge alone at 0.298 / 0.625 (recall at the test's @20 / @50 shares) where, without
    those rows, it scores 0.391 / 0.630.  Dropping them gives every split the test's setting.
    The partition's feature boundaries keep them (about 1 % of a fold's rows)."""
    keep = ~np.isin(np.asarray(train["item_ids"]).astype(str), [str(i) for i in items])
    if keep.all():
        return train
    out = {k: (v[keep] if isinstance(v, np.ndarray) else v) for k, v in train.items()}
    out["features"] = {k: np.asarray(v)[keep] for k, v in train["features"].items()}
    return out


def validation(url: str, ml: movielens.MovieLens, cold_share: float = 0.15,
               settings: Mapping[str, Any] | None = None) -> Prepared:
    """The time validation split: the same protocol on the ratings before the test cutoff
    only (one split; on MovieLens 100K it holds 28 users: see :func:`validation_folds`)."""
    test = split_time_cold(ml, cold_share)
    return prepare(url, movielens.ratings_before(ml, test["cutoff_time"]), cold_share, settings)


def validation_folds(url: str, ml: movielens.MovieLens, folds: int = 3,
                     cold_share: float = 0.15,
                     settings: Mapping[str, Any] | None = None) -> list[Prepared]:
    """Validation by held-out arrivals, from the ratings before the test cutoff only.

    The time validation split (:func:`validation`) is the test's protocol one step earlier,
    but its cutoff falls in the catalogue's first weeks: 28 users, and settings that score
    0.38-0.54 there score 0.10-0.21 on the test.  Here the *arrivals* (the movies published in
    the last ``cold_share`` of the training history, as the test's are in the whole history)
    are cut into ``folds`` interleaved folds by publish order; fold ``f``'s movies lose every
    rating (:func:`~dropoutnet.data.movielens.without_ratings_of`), are left out of its
    training samples (:func:`without_items`) and are ranked, cold, for the users with a
    training click who rated one of them >= 4.  Training covers the whole
    history up to the test cutoff, so each fold has the test's setting: new movies arriving
    into a catalogue, a few hundred users.
    """
    if folds < 1:
        raise ValueError(f"folds must be at least 1, got {folds}")
    known = movielens.ratings_before(ml, split_time_cold(ml, cold_share)["cutoff_time"])
    arrivals = split_time_cold(known, cold_share)["candidates"]
    end = int(known.r_time.max()) + 1
    out = []
    for f in range(min(folds, len(arrivals))):
        held = arrivals[f::folds]
        fold = movielens.without_ratings_of(known, held)
        split = split_held_out(fold, known, held, end)
        if len(split["test_users"]):  # a fold whose movies nobody liked has nothing to rank
            out.append(prepare(url, fold, cold_share, settings, split=split))
    if not out:
        raise ValueError(f"no validation fold: none of the {len(arrivals)} movies published in "
                         f"the last {cold_share:.0%} of the training history has a rating >= "
                         f"{CLICK_MIN_RATING} by a user with a training click; use more data or "
                         "a larger cold share")
    return out


def model_scores(p: Prepared, settings: Mapping[str, Any] | None = None,
                 seed: int | None = None) -> tuple[np.ndarray, dict[str, Any]]:
    """Train the model on ``p`` (with ``settings`` merged into its config) and return the
    ``[test users, candidates]`` scores and the training stats."""
    from dropoutnet.model.dropoutnet import load_trained_model
    from dropoutnet.training.fit import train_model

    data = tuning.apply(p.cfg.model_dump(by_alias=True, exclude_none=True), settings or {})
    if seed is not None:
        data["training"]["seed"] = seed
    cfg = PipelineConfig.model_validate(data)
    work = Path(tempfile.mkdtemp(prefix="dropoutnet-ml-"))
    try:
        stats = train_model(cfg, p.train["features"], p.train["labels"], p.boundaries,
                            work / "checkpoints", None, item_ids=p.train["item_ids"],
                            sample_dates=p.train["sample_dates"])
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
        runs = np.stack([recall_at_k(s, split["relevant"], k) for s in per_seed])
        means = runs.mean(axis=1)
        out[f"recall@{k}"] = round(float(means.mean()), 4)
        out[f"recall@{k}_ci"] = [round(x, 4) for x in bootstrap_ci(runs.mean(axis=0), seed=seed)]
        out[f"recall@{k}_std"] = round(float(means.std()), 4)
        out[f"recall@{k}_per_seed"] = [round(float(m), 4) for m in means]
    return out


def same_share_k(k: int, candidates: int, test_candidates: int) -> int:
    """The cutoff that takes the same share of ``candidates`` as ``k`` takes of
    ``test_candidates`` (at least 1).

    A validation fold ranks its own held-out movies, a third of the arrivals (about 70 on
    MovieLens 100K), while the test ranks every cold movie (252): recall@20 of a fold is the
    top 28 % of its candidates, the test's the top 8 %, and a setting that orders the top
    quarter well can still miss the few films the test's top 20 is made of.  Scoring each fold
    at the test's share keeps validation on the test's question."""
    return max(1, round(k * candidates / max(test_candidates, 1)))


def tune(path: str | Path, url: str, trials: int, seed: int = 0, k: int = 20,
         folds: int = 3, cold_share: float = 0.15, seeds: int = 1,
         echo=print) -> dict[str, Any]:
    """An Optuna study of the model's settings on the held-out-arrivals folds
    (:func:`validation_folds`): recall averaged over the folds' users, each fold cut at
    :func:`same_share_k` of the test's ``k``; each trial's figure is the mean over ``seeds``
    training seeds (:func:`tuning.run_study`)."""
    ml = movielens.read(path)
    parts = validation_folds(url, ml, folds, cold_share)
    # how many movies the test ranks: a property of the protocol, not of the test's labels
    test_candidates = len(split_time_cold(ml, cold_share)["candidates"])
    cutoffs = [same_share_k(k, len(p.split["candidates"]), test_candidates) for p in parts]
    for f, (p, cut) in enumerate(zip(parts, cutoffs)):
        echo(f"validation fold {f}: {len(p.split['candidates'])} held-out movies, "
             f"{len(p.split['test_users'])} users, {len(p.train['labels'])} training samples, "
             f"scored at recall@{cut} (the test's recall@{k} ranks {test_candidates})")
    base = parts[0].cfg.model_dump(by_alias=True, exclude_none=True)

    def objective(settings: dict[str, Any]) -> float:
        per_user = [recall_at_k(model_scores(p, settings)[0], p.split["relevant"], cut)
                    for p, cut in zip(parts, cutoffs)]
        return float(np.concatenate(per_user).mean())

    result = tuning.run_study(objective, base, trials, seed, metric=f"recall@{k}", echo=echo,
                              seeds=seeds)
    _drop_schemas(url)
    return result


def run(path: str | Path, url: str, ks: Sequence[int] = (20, 50, 100), seeds: int = 3,
        settings: Mapping[str, Any] | None = None, seed: int = 0,
        cold_share: float = 0.15) -> dict[str, Any]:
    """Train on the split's history with the pipeline and score the cold movies (``seeds``
    training seeds); with the baselines."""
    started = time.monotonic()
    log.info("MovieLens 100K: building the split's samples with the pipeline's samples step")
    p = prepare(url, movielens.read(path), cold_share, settings)
    per_seed, stats = [], {}
    for i in range(seeds):
        log.info("training seed %d of %d (%.0f s so far)", i + 1, seeds,
                 time.monotonic() - started)
        scores, stats = model_scores(p, seed=p.cfg.training.seed + i)
        per_seed.append(scores)
    log.info("scoring the baselines (%.0f s so far)", time.monotonic() - started)
    result = benchmark_baselines(path, ks, seed=seed, cold_share=cold_share)
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


# --- the time-based item-cold split and its baselines -------------------------------------


def split_time_cold(path: str | Path | MovieLens, cold_share: float = 0.15,
                    seen: str = "click") -> dict[str, Any]:
    """The time-based item-cold split of MovieLens 100K, in numpy (no database).

    Movies are ordered by publish time (first rating; ties by id); the last ``cold_share`` of
    them (``floor``; 252 of 1,682) are cold. ``train`` holds every rating before the first
    cold movie's publish time; ``test`` the ratings >= 4 on cold movies by the users seen in
    training: with a training rating >= 4 (``seen="click"``, 98 users) or any training rating
    (``seen="rating"``, 99). Candidates are the cold movies, in publish order.

    Returns a dict:

    * ``candidates``: cold movie ids (int64), by publish time; ``cutoff_time``: unix seconds of
      the first one's publish time;
    * ``train``: ``{"user", "item", "rating", "time"}`` arrays of the training ratings;
    * ``test``: the same for the test ratings; ``test_users``: sorted ids;
      ``relevant``: one set of candidate positions per test user (rows of a score matrix);
    * ``items``, ``item_genres`` (flags, aligned with ``items``), ``publish_time``;
      ``candidate_genres`` (aligned with ``candidates``);
    * ``dataset``: the parsed :class:`MovieLens` (users' demographics, titles, ...).
    """
    ml = path if isinstance(path, MovieLens) else read(path)
    if not 0 < cold_share < 1:
        raise ValueError(f"cold_share must be between 0 and 1, got {cold_share!r}")
    if seen not in ("click", "rating"):
        raise ValueError(f"seen must be 'click' or 'rating', got {seen!r}")
    publish = ml.item_publish_time
    rated = publish >= 0
    ids, times = ml.item_ids[rated], publish[rated]
    order = np.lexsort((ids, times))
    n_cold = int(np.floor(cold_share * len(ids) + 1e-9))
    if n_cold < 1 or n_cold >= len(ids):
        raise ValueError(f"{len(ids)} rated movies and cold_share {cold_share}: "
                         f"{n_cold} cold movies; need at least one cold and one warm")
    cold = ids[order[-n_cold:]]
    cutoff = int(times[order[-n_cold]])
    train = _ratings(ml, ml.r_time < cutoff)
    seen_mask = train["rating"] >= CLICK_MIN_RATING if seen == "click" else np.ones(
        len(train["user"]), dtype=bool)
    return _split(ml, publish, train, ml, cold, cutoff, np.unique(train["user"][seen_mask]))


def split_held_out(fold: MovieLens, known: MovieLens, held: np.ndarray,
                   cutoff_time: int) -> dict[str, Any]:
    """A held-out-arrivals split in :func:`split_time_cold`'s form: ``fold`` is ``known``
    without the ratings of ``held``; the test is ``known``'s ratings >= 4 of ``held`` by the
    users with a training click; ``cutoff_time`` is the end of the training history."""
    train = _ratings(fold)
    seen = np.unique(train["user"][train["rating"] >= CLICK_MIN_RATING])
    return _split(fold, fold.item_publish_time, train, known, held, cutoff_time, seen)


def _ratings(ml: MovieLens, rows: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """``{"user", "item", "rating", "time"}`` of ``ml``'s ratings (at ``rows``, a mask)."""
    r = {"user": ml.r_user, "item": ml.r_item, "rating": ml.r_rating, "time": ml.r_time}
    return r if rows is None else {k: v[rows] for k, v in r.items()}


def _split(dataset: MovieLens, publish: np.ndarray, train: dict[str, np.ndarray],
           known: MovieLens, cold: np.ndarray, cutoff: int,
           seen_users: np.ndarray) -> dict[str, Any]:
    """A split's dict (see :func:`split_time_cold`): the test is ``known``'s ratings >= 4 of
    the ``cold`` movies by the ``seen_users``; ``dataset`` is what training loads."""
    test = _ratings(known, np.isin(known.r_item, cold) & (known.r_rating >= CLICK_MIN_RATING)
                    & np.isin(known.r_user, seen_users))
    test_users = np.unique(test["user"])
    cpos = {int(c): k for k, c in enumerate(cold)}
    relevant = [set() for _ in test_users]
    upos = {int(u): k for k, u in enumerate(test_users)}
    for u, i in zip(test["user"], test["item"]):
        relevant[upos[int(u)]].add(cpos[int(i)])
    ipos = {int(i): k for k, i in enumerate(dataset.item_ids)}
    return {
        "candidates": cold,
        "cutoff_time": cutoff,
        "train": train,
        "test": test,
        "test_users": test_users,
        "relevant": relevant,
        "items": dataset.item_ids,
        "item_genres": dataset.genres,
        "publish_time": publish,
        "candidate_genres": dataset.genres[[ipos[int(c)] for c in cold]],
        "dataset": dataset,
    }


BASELINES = ("genre_popularity", "genre_knn", "content_popularity", "ridge_to_factors", "random")

# A movie's content for the content regressions, as the loader computes it (``ml_items``):
# every genre, the decade, the year and the release age when it appears
CONTENT = (
    FeatureSpec(name="genres", group="item_content", kind="tags", source="items.tags"),
    FeatureSpec(name="decade", group="item_content", kind="categorical", source="items.decade"),
    FeatureSpec(name="year", group="item_content", kind="numeric", source="items.year"),
    FeatureSpec(name="release_age_days", group="item_content", kind="numeric",
                source="items.release_age_days"),
)


def movie_content(ml: MovieLens, rows: np.ndarray) -> dict[str, list]:
    """The :data:`CONTENT` columns of the movies at positions ``rows`` (of ``ml.item_ids``)."""
    publish = ml.item_publish_time
    years = [item_year(ml.titles[r], ml.release_dates[r]) for r in rows]
    return {
        "genres": ["|".join(GENRES[g] for g in np.flatnonzero(ml.genres[r])) for r in rows],
        "decade": [None if y is None else f"{y // 10 * 10}s" for y in years],
        "year": years,
        "release_age_days": [release_age(ml.release_dates[r], int(publish[r])) for r in rows],
    }


def _content_scores(split: dict[str, Any], method: str) -> np.ndarray:
    """``content_popularity`` or ``ridge_to_factors`` (see :func:`baseline_scores`)."""
    ml, train = split["dataset"], split["train"]
    ipos = {int(i): k for k, i in enumerate(split["items"])}
    train_rows = np.array([ipos[int(i)] for i in train["item"]], dtype=np.int64)
    fit = np.unique(train_rows)  # the movies with a training rating
    fit_columns = movie_content(ml, fit)
    encoder = ContentEncoder(CONTENT).fit(fit_columns)
    fit_content = encoder.transform(fit_columns)
    candidates = encoder.transform(movie_content(
        ml, np.array([ipos[int(c)] for c in split["candidates"]], dtype=np.int64)))
    clicked = train["rating"] >= CLICK_MIN_RATING
    users = split["test_users"]
    if method == "content_popularity":
        clicks = np.bincount(train_rows[clicked], minlength=len(ipos))[fit]
        # exposure: the days from a movie's publish time to the end of training
        exposure = (split["cutoff_time"] - split["publish_time"][fit]) / 86400.0
        expected = popularity_regression(fit_content, clicks, exposure).predict(candidates)[:, 0]
        return np.tile(expected, (len(users), 1))
    factors = als_factors(train["user"][clicked].tolist(), train["item"][clicked].tolist())
    directions = factor_directions(factor_regression(
        fit_content, factors.item_factors(split["items"][fit].tolist())), candidates)
    user_vectors = np.zeros((len(users), directions.shape[1]))
    for k, u in enumerate(users.tolist()):
        if u in factors.users:  # every test user has a training click (the split's rule)
            user_vectors[k] = factors.user_vectors[factors.users[u]]
    return user_vectors @ directions.T


def baseline_scores(split: dict[str, Any], method: str, *, profile: str = "click",
                    seed: int = 0) -> np.ndarray:
    """A ``(test users, candidates)`` score matrix of one baseline (higher ranks first).

    * ``genre_popularity``: a candidate's score is the sum over its genres of the genre's
      training popularity (the number of training ratings of movies with that genre); the same
      ranking for every user.
    * ``genre_knn``: content kNN on genres: a user is the mean genre vector of their training
      movies (those rated >= 4 with ``profile="click"``, all rated with ``profile="rating"``),
      scored against each candidate's genre vector by cosine.
    * ``content_popularity``: a ridge from a movie's content (:data:`CONTENT`) to log1p of
      its training clicks (ratings >= 4), fit on the movies with a training rating, at equal
      exposure (the days from a movie's publish time to the cutoff: see
      :func:`dropoutnet.model.closed_form.popularity_regression`); the same ranking for every user.
    * ``ridge_to_factors``: implicit-ALS factors of the training clicks, a ridge from the
      same content to the movies' factors, each predicted vector L2-normalised, scored by the
      user's factors · the prediction.
    * ``random``: uniform random scores (``seed``).
    """
    if method in ("content_popularity", "ridge_to_factors"):
        return _content_scores(split, method)
    users, cand = split["test_users"], split["candidate_genres"].astype(np.float64)
    train = split["train"]
    ipos = {int(i): k for k, i in enumerate(split["items"])}
    genres = split["item_genres"].astype(np.float64)
    if method == "genre_popularity":
        rows = np.array([ipos[int(i)] for i in train["item"]], dtype=np.int64)
        popularity = genres[rows].sum(axis=0)
        return np.tile(cand @ popularity, (len(users), 1))
    if method == "genre_knn":
        if profile not in ("click", "rating"):
            raise ValueError(f"profile must be 'click' or 'rating', got {profile!r}")
        keep = train["rating"] >= CLICK_MIN_RATING if profile == "click" else np.ones(
            len(train["user"]), dtype=bool)
        upos = {int(u): k for k, u in enumerate(users)}
        prof = np.zeros((len(users), genres.shape[1]))
        n = np.zeros(len(users))
        for u, i in zip(train["user"][keep], train["item"][keep]):
            k = upos.get(int(u))
            if k is not None:
                prof[k] += genres[ipos[int(i)]]
                n[k] += 1
        prof /= np.maximum(n, 1)[:, None]
        pn = prof / np.maximum(np.linalg.norm(prof, axis=1, keepdims=True), 1e-12)
        cn = cand / np.maximum(np.linalg.norm(cand, axis=1, keepdims=True), 1e-12)
        return pn @ cn.T
    if method == "random":
        return np.random.default_rng(seed).random((len(users), len(cand)))
    raise ValueError(f"unknown baseline {method!r}; one of {', '.join(BASELINES)}")


def recall_at_k(scores: np.ndarray, relevant: Sequence[set[int]], k: int,
                ties: str = "order") -> np.ndarray:
    """Per-user recall@k: the share of a user's relevant candidates in their top k.

    ``scores`` is ``(users, candidates)`` with candidates in publish order; ties (after
    rounding to 9 decimals) are broken by that order with ``ties="order"``
    (:func:`dropoutnet.evaluation.metrics.score_metrics`), or averaged over every tie order with
    ``ties="expected"`` (the expectation under random tie-breaking).
    """
    if ties not in ("order", "expected"):
        raise ValueError(f"ties must be 'order' or 'expected', got {ties!r}")
    for u, rel in enumerate(relevant):
        if not rel:
            raise ValueError(f"user row {u} has no relevant candidate")
    if ties == "order":
        return score_metrics(scores, relevant, [k], per_user=True)["per_user"][f"recall@{k}"]
    s = np.round(np.asarray(scores, dtype=np.float64), 9)
    out = np.zeros(len(relevant))
    for u, rel in enumerate(relevant):
        is_rel = np.zeros(s.shape[1], dtype=bool)
        is_rel[list(rel)] = True
        kk = min(k, s.shape[1])
        threshold = np.sort(s[u])[::-1][kk - 1]
        above = s[u] > threshold
        tied = s[u] == threshold
        hits = is_rel[above].sum() + is_rel[tied].sum() * (kk - above.sum()) / tied.sum()
        out[u] = hits / len(rel)
    return out


def evaluate_scores(split: dict[str, Any], scores: np.ndarray, ks: Sequence[int] = (20, 50, 100),
                    n_resamples: int = 1000, level: float = 0.95, seed: int = 0) -> dict[str, Any]:
    """recall@k (ties by publish order) with its bootstrap interval, and the tie-averaged recall."""
    out: dict[str, Any] = {}
    for k in ks:
        per_user = recall_at_k(scores, split["relevant"], k)
        lo, hi = bootstrap_ci(per_user, n_resamples, level, seed)
        out[f"recall@{k}"] = round(float(per_user.mean()), 4)
        out[f"recall@{k}_ci"] = [round(lo, 4), round(hi, 4)]
        out[f"recall@{k}_expected_ties"] = round(float(
            recall_at_k(scores, split["relevant"], k, ties="expected").mean()), 4)
    return out


def benchmark_baselines(path: str | Path, ks: Sequence[int] = (20, 50, 100),
                        n_resamples: int = 1000, seed: int = 0,
                        cold_share: float = 0.15) -> dict[str, Any]:
    """Every baseline's figures on the time-based item-cold split (see the module doc)."""
    split = split_time_cold(path, cold_share)
    result: dict[str, Any] = {
        "cold_items": int(len(split["candidates"])),
        "test_users": int(len(split["test_users"])),
        "test_pairs": int(len(split["test"]["user"])),
        "train_ratings": int(len(split["train"]["user"])),
        "cutoff": dt.datetime.fromtimestamp(split["cutoff_time"], dt.timezone.utc).isoformat(),
        "baselines": {},
    }
    runs = {
        "genre_popularity": baseline_scores(split, "genre_popularity"),
        "genre_knn": baseline_scores(split, "genre_knn"),
        "genre_knn_all_ratings": baseline_scores(split, "genre_knn", profile="rating"),
        "content_popularity": baseline_scores(split, "content_popularity"),
        "ridge_to_factors": baseline_scores(split, "ridge_to_factors"),
        "random": baseline_scores(split, "random", seed=seed),
    }
    for name, scores in runs.items():
        result["baselines"][name] = evaluate_scores(split, scores, ks, n_resamples, seed=seed)
    result["strongest_baseline"] = strongest_baseline(result["baselines"], ks)
    return result


if __name__ == "__main__":  # python -m dropoutnet.benchmarks.movielens DIR (baselines only)
    import json
    import sys

    print(json.dumps(benchmark_baselines(sys.argv[1] if len(sys.argv) > 1
                                         else "../shared/datasets/ml-100k"), indent=1))
