"""Baseline rankers for the cold-item evaluation, in numpy.

Every baseline ranks the same candidates (the bizdate's new items) for the same users as the
model, so their figures can be read side by side:

* random: the exact expectation of recall@K, ``min(K, n) / n``;
* popularity: a new item has no clicks of its own, so it scores the share of the training
  positives that its categorical content values (author, categories, ...) hold;
* content kNN: cosine between the user's mean clicked content vector and the item's;
* content → popularity (:func:`~dropoutnet.model.closed_form.popularity_regression`): a ridge from
  an item's content to log1p of its training positives, at equal exposure, the same ranking for
  every user -- what a new item's clicks would be expected to be from its content alone;
* ridge → factors (:func:`~dropoutnet.model.closed_form.factor_regression`): implicit-ALS factors of
  the training positives (:func:`~dropoutnet.model.closed_form.als_factors`), a ridge from the
  items' content to their factors, each predicted vector L2-normalised (only its direction ranks),
  ranked by the user's factors · the prediction (Gantner et al. 2010's attribute-to-factor mapping);
* oracle (synthetic data): the planted preference score the clicks were drawn from.

The two regressions are closed-form fits that the model's priors use too, so they live with
the model (:mod:`dropoutnet.model.closed_form`); this module ranks with them.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np


def rank(item_ids: Sequence[str], scores: np.ndarray, k: int) -> list[str]:
    """The ``k`` best items by score (ties by item order), best first."""
    scores = np.asarray(scores, dtype=np.float64)
    order = np.lexsort((np.arange(len(scores)), -scores))[:k]
    return [item_ids[i] for i in order]


def popularity_scores(item_values: Mapping[str, Sequence[str]],
                      positive_counts: Mapping[str, Mapping[str, int]]) -> np.ndarray:
    """Sum over categorical features of the share of training positives holding the item's value."""
    total = None
    for feature, values in item_values.items():
        counts = positive_counts.get(feature, {})
        n = sum(counts.values()) or 1
        part = np.array([counts.get(v, 0) / n for v in values], dtype=np.float64)
        total = part if total is None else total + part
    return total if total is not None else np.zeros(0)


def cosine_rankings(user_vectors: Mapping[str, np.ndarray], item_ids: Sequence[str],
                    item_vectors: np.ndarray, k: int) -> dict[str, list[str]]:
    """Per user, the top-``k`` items by cosine similarity of their vectors."""
    items = np.asarray(item_vectors, dtype=np.float64)
    items = items / np.maximum(np.linalg.norm(items, axis=1, keepdims=True), 1e-12)
    out = {}
    for user, vec in user_vectors.items():
        vec = np.asarray(vec, dtype=np.float64)
        vec = vec / max(np.linalg.norm(vec), 1e-12)
        out[user] = rank(item_ids, items @ vec, k)
    return out


def dot_rankings(user_vectors: Mapping[str, np.ndarray], item_ids: Sequence[str],
                 item_vectors: np.ndarray, k: int,
                 item_bias: np.ndarray | None = None) -> dict[str, list[str]]:
    """Per user, the top-``k`` items by inner product (plus an item bias): exact retrieval."""
    items = np.asarray(item_vectors, dtype=np.float64)
    bias = np.zeros(len(item_ids)) if item_bias is None else np.asarray(item_bias, np.float64)
    return {u: rank(item_ids, items @ np.asarray(v, np.float64) + bias, k)
            for u, v in user_vectors.items()}
