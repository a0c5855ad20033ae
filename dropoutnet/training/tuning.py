"""Model selection on a validation split carved from the training data, with Optuna.

Settings are never chosen on the figures they will be judged by.  A study trains one model per
trial on the *training* data minus a validation split, scores the split, and keeps the best
settings; test figures come afterwards, from a final run with the chosen settings.

* :func:`suggest` is the search space: the training recipe (learning rate, epochs, weight
  decay, losses and their weights, the softmax's scale and logQ correction, the dropout
  rates, the item prior and its popularity prior, the factor prior (with preference vectors),
  the linear shortcut, the towers' normalisation), not the sizes of the towers, which scale with the data.
* :func:`run_study` runs an objective ``settings -> validation figure`` for a trial budget with
  a seeded TPE sampler; the first trial is always the base settings, so a study can only
  report an improvement it measured.  Each trial is printed as it ends.
* :func:`pipeline_validation` carves the pipeline's split: in the bizdate's training
  partition, the items created in the ``days`` days before the bizdate are held out whole, as
  pseudo-cold items; their samples of their creation day (when they had no behaviour yet) are
  the validation exposures, ranked among those items.  :func:`pipeline_objective` trains on
  the rest and returns recall@K of that ranking.

``dropoutnet tune`` (see :mod:`dropoutnet.cli`) runs it for a pipeline config and writes the
config with the chosen settings; the benchmarks use their own validation splits with the same
:func:`suggest` and :func:`run_study`.
"""

from __future__ import annotations

import copy
import datetime as dt
import logging
import shutil
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dropoutnet.config import PipelineConfig
from dropoutnet.core import db, sql
from dropoutnet.data import partitions

log = logging.getLogger(__name__)

__all__ = ["TuningError", "ValidationSplit", "apply", "check_budget", "pipeline_objective",
           "pipeline_validation", "recall_of_scores", "run_study", "suggest", "trial_seeds"]


class TuningError(ValueError):
    """A study that cannot run: no budget, or no validation split; the message says why."""


# --- the search space -------------------------------------------------------------------------

# the closed-form priors' weights searched (see dropoutnet.model.popularity and .factors)
POPULARITY_PRIORS = (0.0, 1.0, 4.0, 8.0)
FACTOR_PRIORS = (0.0, 0.5, 1.0, 2.0)


def suggest(trial, distill: bool = False) -> dict[str, Any]:
    """One trial's settings, as overrides of the config's ``model`` and ``training`` sections.

    ``distill``: the config names preference vectors to distil (``distill_features``), so the
    paper's objective's weight is searched too.
    """
    normalization = trial.suggest_categorical("normalization", ["l2", "none"])
    item_prior = trial.suggest_categorical("item_prior", [True, False])
    settings = {
        "model": {
            "normalization": normalization,
            "item_prior": item_prior,
            # the content → reach ridge rides in the prior's dimension: only with a prior
            "popularity_prior": (trial.suggest_categorical("popularity_prior", POPULARITY_PRIORS)
                                 if item_prior else 0.0),
            "linear_shortcut": trial.suggest_categorical("linear_shortcut", [True, False]),
            "item_dropout_rate": trial.suggest_float("item_dropout_rate", 0.1, 0.9),
            "user_dropout_rate": trial.suggest_float("user_dropout_rate", 0.0, 0.6),
            "losses": {
                "pointwise_weight": trial.suggest_float("pointwise_weight", 0.0, 2.0),
                "pairwise_weight": trial.suggest_categorical("pairwise_weight", [0.0, 0.5, 1.0]),
                "softmax_weight": trial.suggest_float("softmax_weight", 0.0, 2.0),
                "softmax_scale": trial.suggest_float("softmax_scale", 1.0, 30.0, log=True),
                "softmax_logq": trial.suggest_categorical("softmax_logq", [True, False]),
                "align_weight": trial.suggest_float("align_weight", 0.0, 2.0),
            },
        },
        "training": {
            "learning_rate": trial.suggest_float("learning_rate", 3e-4, 1e-2, log=True),
            "epochs": trial.suggest_int("epochs", 1, 8),
            "weight_decay": trial.suggest_categorical("weight_decay", [0.0, 0.001, 0.01, 0.1]),
        },
    }
    if distill:
        settings["model"]["losses"]["distill_weight"] = trial.suggest_float(
            "distill_weight", 0.0, 2.0)
        settings["model"]["factor_prior"] = trial.suggest_categorical(
            "factor_prior", FACTOR_PRIORS)
    return settings


def _distills(settings: Mapping[str, Any]) -> bool:
    return bool(settings["model"]["losses"].get("distill_features"))


def _flat(settings: Mapping[str, Any]) -> dict[str, Any]:
    """The base settings as the search space's flat parameters (to enqueue as trial 0)."""
    model, training = settings["model"], settings["training"]
    losses = model["losses"]
    extra = ({"distill_weight": float(losses["distill_weight"]),
              "factor_prior": float(model["factor_prior"])} if _distills(settings) else {})
    return extra | {
        "normalization": model["normalization"] if model["normalization"] != "cosine" else "l2",
        "item_prior": bool(model["item_prior"]),
        "popularity_prior": float(model["popularity_prior"]),
        "linear_shortcut": bool(model["linear_shortcut"]),
        "item_dropout_rate": float(model["item_dropout_rate"]),
        "user_dropout_rate": float(model["user_dropout_rate"]),
        "pointwise_weight": float(losses["pointwise_weight"]),
        "pairwise_weight": float(losses["pairwise_weight"]),
        "softmax_weight": float(losses["softmax_weight"]),
        "softmax_scale": float(losses["softmax_scale"]),
        "softmax_logq": bool(losses["softmax_logq"]),
        "align_weight": float(losses["align_weight"]),
        "learning_rate": float(training["learning_rate"]),
        "epochs": int(training["epochs"]),
        "weight_decay": float(training["weight_decay"]),
    }


def trial_seeds(base: Mapping[str, Any], seeds: int) -> list[dict[str, Any]]:
    """The ``training.seed`` overrides of a trial's ``seeds`` trainings: the base's seed,
    then the next ones."""
    first = int(base["training"]["seed"])
    return [{"training": {"seed": first + i}} for i in range(seeds)]


def apply(base: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``overrides`` merged in, nested dicts key by key (neither is changed)."""
    out = copy.deepcopy(dict(base))
    for key, value in overrides.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = apply(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _clip_to_space(flat: dict[str, Any]) -> dict[str, Any]:
    """Base values outside the search space's ranges, moved to the nearest value inside."""
    ranges = {"item_dropout_rate": (0.1, 0.9), "user_dropout_rate": (0.0, 0.6),
              "pointwise_weight": (0.0, 2.0), "softmax_weight": (0.0, 2.0),
              "distill_weight": (0.0, 2.0), "align_weight": (0.0, 2.0),
              "softmax_scale": (1.0, 30.0), "learning_rate": (3e-4, 1e-2), "epochs": (1, 8)}
    out = dict(flat)
    for key, (low, high) in ranges.items():
        if key in out:
            out[key] = type(out[key])(min(max(out[key], low), high))
    for key, choices in (("pairwise_weight", (0.0, 0.5, 1.0)),
                         ("weight_decay", (0.0, 0.001, 0.01, 0.1)),
                         ("popularity_prior", POPULARITY_PRIORS),
                         ("factor_prior", FACTOR_PRIORS)):
        if key in out and out[key] not in choices:
            out[key] = min(choices, key=lambda v: abs(v - out[key]))
    return out


def check_budget(trials: int, seeds: int = 1) -> None:
    """Refuse a study of fewer than one trial, or of fewer than one training per trial."""
    if isinstance(trials, bool) or not isinstance(trials, int) or trials < 1:
        raise TuningError(f"the trial budget must be at least 1, got {trials!r}: pass "
                          "--trials N (the number of settings to train and compare)")
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
        raise TuningError(f"the training seeds per trial must be at least 1, got {seeds!r}: "
                          "pass --seeds N (each trial's figure is the mean of N trainings)")


def run_study(objective: Callable[[dict[str, Any]], float], base: Mapping[str, Any],
              trials: int, seed: int, metric: str = "recall",
              echo: Callable[[str], None] = print, seeds: int = 1) -> dict[str, Any]:
    """Run ``trials`` trials of ``objective(settings) -> figure`` (higher is better).

    ``base`` holds the current ``model`` and ``training`` sections; trial 0 evaluates them
    (clipped into the search space), the others are drawn by a TPE sampler seeded with
    ``seed``.  A trial whose settings are invalid or whose training fails is recorded as
    failed and the study goes on.  Returns ``{"best": {"value", "trial", "settings"},
    "trials": [...]}``, ``settings`` being overrides for :func:`apply`.

    ``seeds``: each trial trains that many times, with ``training.seed`` the base's seed, +1,
    ... (:func:`trial_seeds`), and its figure is their mean (each seed's in the trial's
    record).  On a small validation split one training seed moves the figure by about as much
    as the settings do (±0.03 of recall on MovieLens' folds), so the best of many one-seed
    trials is partly the luckiest seed: averaging shrinks that noise by √seeds, at
    ``seeds``× the cost.
    """
    check_budget(trials, seeds)
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize",
                                sampler=optuna.samplers.TPESampler(seed=seed))
    study.enqueue_trial(_clip_to_space(_flat(base)))
    records: list[dict[str, Any]] = []

    distill = _distills(base)
    seed_overrides = trial_seeds(base, seeds)  # the same seeds for every trial

    def wrapped(trial) -> float:
        settings = suggest(trial, distill)
        started = time.monotonic()
        per_seed: list[float] = []
        try:
            for overrides in seed_overrides:
                per_seed.append(float(objective(apply(settings, overrides))))
            value = float(np.mean(per_seed))
        except Exception as exc:  # a failing trial is a data point, not the end of the study
            records.append({"trial": trial.number, "value": None, "error": str(exc),
                            "params": dict(trial.params),
                            "seconds": round(time.monotonic() - started, 1)})
            echo(f"trial {trial.number + 1}/{trials}: failed ({exc}) {trial.params}")
            raise optuna.TrialPruned() from None
        records.append({"trial": trial.number, "value": value, "params": dict(trial.params),
                        "seconds": round(time.monotonic() - started, 1)}
                       | ({"per_seed": per_seed} if seeds > 1 else {}))
        best = max(r["value"] for r in records if r["value"] is not None)
        spread = (f" (seeds {' / '.join(f'{v:.4f}' for v in per_seed)})"
                  if seeds > 1 else "")
        echo(f"trial {trial.number + 1}/{trials}: {metric} {value:.4f}{spread} (best "
             f"{best:.4f}) in {records[-1]['seconds']:.0f}s {trial.params}")
        return value

    study.optimize(wrapped, n_trials=trials)
    done = [r for r in records if r["value"] is not None]
    if not done:
        raise TuningError(f"every one of the {trials} trials failed; the first error: "
                          f"{records[0]['error']}")
    best = max(done, key=lambda r: (r["value"], -r["trial"]))
    fixed = optuna.trial.FixedTrial(best["params"])
    return {"metric": metric, "best": {"value": best["value"], "trial": best["trial"],
                                       "settings": suggest(fixed, distill)},
            "base_value": records[0]["value"], "trials": records}


# --- the pipeline's validation split ------------------------------------------------------------


def recall_of_scores(scores: np.ndarray, relevant: np.ndarray, k: int) -> float:
    """Mean recall@k over the rows of ``relevant`` (bool ``[users, items]``) with any item."""
    keep = relevant.any(axis=1)
    scores, relevant = scores[keep], relevant[keep]
    if not len(scores):
        return float("nan")
    top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    hits = np.take_along_axis(relevant, top, axis=1).sum(axis=1)
    return float(np.mean(hits / relevant.sum(axis=1)))


@dataclass
class ValidationSplit:
    """The training partition divided into training rows and pseudo-cold validation rows."""

    train: dict[str, Any]          # features, labels, item_ids (the rows to train on)
    users: dict[str, np.ndarray]   # one row of user features per validation user
    items: dict[str, np.ndarray]   # one row of (cold) item features per pseudo-cold item
    relevant: np.ndarray           # bool [users, items]: clicked on the creation day
    held_items: int
    held_rows: int

    def describe(self) -> dict[str, int]:
        """The split's sizes, for the study's log and report: rows trained on, validation
        users (with a click) and items, and the held-out items and their rows."""
        return {"train_rows": int(len(self.train["labels"])),
                "validation_users": int(self.relevant.any(axis=1).sum()),
                "validation_items": int(self.relevant.shape[1]),
                "held_out_items": self.held_items, "held_out_rows": self.held_rows}


def _take(features: Mapping[str, np.ndarray], rows: np.ndarray) -> dict[str, np.ndarray]:
    return {k: v[rows] for k, v in features.items()}


def pipeline_validation(cfg: PipelineConfig, bizdate: dt.date, days: int = 1,
                        url: str | None = None) -> ValidationSplit:
    """The bizdate's training partition with its last ``days`` days' new items held out.

    Items created in ``[bizdate - days, bizdate)`` lose every training row (they are cold to
    the model); their rows of their creation day, when they had no behaviour, are the
    validation exposures.  Raises :class:`TuningError` when there is no such item with a click.
    """
    if days < 1:
        raise TuningError(f"--validation-days must be at least 1, got {days}")
    first = bizdate - dt.timedelta(days=days)
    with db.transaction(url) as cur:
        data = partitions.load_partition(cur, cfg, "samples", bizdate)
        sql.execute(cur, "training/tuning_new_items.sql", params={"created_from": first,
                                                         "created_to": bizdate},
                    raw=cfg.raw)
        created = {item: day for item, day in cur.fetchall()}
    item_ids = data["item_ids"]
    held = np.array([i in created for i in item_ids], dtype=bool)
    creation_day = np.array([created.get(i) == d for i, d in zip(item_ids, data["sample_dates"])])
    val = held & creation_day
    positives = val & (data["labels"] > 0)
    if not positives.any():
        raise TuningError(
            f"no validation split: no item created between {first} and {bizdate - dt.timedelta(days=1)} "
            f"has a clicked sample on its creation day in the training partition of {bizdate}; "
            "raise --validation-days or tune a later bizdate")
    users = sorted(set(data["user_ids"][positives]))
    items = sorted(set(item_ids[val]))
    upos = {u: k for k, u in enumerate(users)}
    ipos = {i: k for k, i in enumerate(items)}
    relevant = np.zeros((len(users), len(items)), dtype=bool)
    for u, i in zip(data["user_ids"][positives], item_ids[positives]):
        relevant[upos[u], ipos[i]] = True
    # one row per user (its features as of the validation day) and per item (cold, as of its
    # creation day): the first validation row of each
    val_rows = np.flatnonzero(val)
    user_row = {}
    for r in val_rows:
        user_row.setdefault(data["user_ids"][r], r)
    item_row = {}
    for r in val_rows:
        item_row.setdefault(item_ids[r], r)
    keep = ~held
    return ValidationSplit(
        train={"features": _take(data["features"], keep), "labels": data["labels"][keep],
               "item_ids": item_ids[keep], "sample_dates": data["sample_dates"][keep]},
        users=_take(data["features"], np.array([user_row[u] for u in users])),
        items=_take(data["features"], np.array([item_row[i] for i in items])),
        relevant=relevant, held_items=int(len(set(item_ids[held]))),
        held_rows=int(held.sum()))


def pipeline_objective(cfg: PipelineConfig, split: ValidationSplit, boundaries: dict,
                       k: int) -> Callable[[dict[str, Any]], float]:
    """``settings -> recall@k`` of the pseudo-cold items, training from scratch each time."""
    from dropoutnet.model.dropoutnet import load_trained_model
    from dropoutnet.training.fit import train_model

    base = cfg.model_dump(by_alias=True, exclude_none=True)

    def objective(settings: dict[str, Any]) -> float:
        trial_cfg = PipelineConfig.model_validate(apply(base, settings))
        work = Path(tempfile.mkdtemp(prefix="dropoutnet-tune-"))
        try:
            train_model(trial_cfg, split.train["features"], split.train["labels"], boundaries,
                        work / "checkpoints", None, item_ids=split.train["item_ids"],
                        sample_dates=split.train["sample_dates"])
            model = load_trained_model(work / "checkpoints")
            scores = embed_and_score(model, split.users, split.items)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        return recall_of_scores(scores, split.relevant, k)

    return objective


def embed_and_score(model, users: Mapping[str, np.ndarray],
                    items: Mapping[str, np.ndarray]) -> np.ndarray:
    """``[users, items]`` inner products of a trained model's exported vectors."""
    from dropoutnet.model.features import to_tensors

    u = model.user_embedding(to_tensors(model.user_specs, users), training=False).numpy()
    v = model.item_embedding(to_tensors(model.item_specs, items), training=False).numpy()
    return u @ v.T


def tune_pipeline(cfg: PipelineConfig, bizdate: dt.date, trials: int, seed: int = 0,
                  days: int = 1, metric: str | None = None, url: str | None = None,
                  echo: Callable[[str], None] = print, seeds: int = 1) -> dict[str, Any]:
    """Tune the config's model and training settings on the bizdate's validation split
    (``seeds`` trainings per trial: :func:`run_study`)."""
    check_budget(trials, seeds)
    metric = metric or cfg.evaluation.gate.metric.replace("ndcg", "recall")
    name, _, k = metric.partition("@")
    if name != "recall" or not k.isdigit() or int(k) < 1:
        raise TuningError(f"--metric must be recall@K with K a positive integer, got {metric!r}")
    split = pipeline_validation(cfg, bizdate, days, url)
    with db.transaction(url) as cur:
        boundaries = partitions.load_boundaries(cur, cfg, bizdate)
    echo(f"validation split of {bizdate}: {split.describe()}")
    base = cfg.model_dump(by_alias=True, exclude_none=True)
    result = run_study(pipeline_objective(cfg, split, boundaries, int(k)), base, trials, seed,
                       metric=metric, echo=echo, seeds=seeds)
    result["validation"] = split.describe()
    result["bizdate"] = bizdate.isoformat()
    result["config"] = apply(base, result["best"]["settings"])
    return result
