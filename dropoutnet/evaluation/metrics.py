"""Ranking and classification metrics, in numpy (no extra dependency).

Every recall figure is a mean over users, so its uncertainty is the users': the
:func:`bootstrap_ci` of the per-user values (percentile, 1000 resamples, fixed seed) goes
next to it as ``recall@K_ci``.  With the same seed and the same users, every method of one
report is resampled on the same draws, so their intervals are paired.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping, Sequence

import numpy as np


def auc(scores: Sequence[float], labels: Sequence[float]) -> float | None:
    """ROC AUC by the rank-sum formula, ties averaged; None when one class is absent."""
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels) > 0
    n_pos = int(labels.sum())
    n_neg = len(labels) - n_pos
    if n_pos == 0 or n_neg == 0:
        return None
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores), dtype=np.float64)
    sorted_scores = scores[order]
    # average ranks over ties
    _, first, counts = np.unique(sorted_scores, return_index=True, return_counts=True)
    avg = first + (counts + 1) / 2.0
    ranks[order] = np.repeat(avg, counts)
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def recall_at_k(ranked: Sequence[str], relevant: Iterable[str], k: int) -> float:
    """|top-k ∩ relevant| / |relevant| (the DropoutNet paper's definition)."""
    relevant = set(relevant)
    if not relevant:
        raise ValueError("recall@k needs at least one relevant item")
    return len(set(ranked[:k]) & relevant) / len(relevant)


def ndcg_at_k(ranked: Sequence[str], relevant: Iterable[str], k: int) -> float:
    """Binary-relevance NDCG@k: DCG of the ranking over the DCG of an ideal one."""
    relevant = set(relevant)
    if not relevant:
        raise ValueError("ndcg@k needs at least one relevant item")
    dcg = sum(1.0 / np.log2(i + 2) for i, item in enumerate(ranked[:k]) if item in relevant)
    ideal = sum(1.0 / np.log2(i + 2) for i in range(min(k, len(relevant))))
    return float(dcg / ideal)


def bootstrap_ci(per_user: Sequence[float], n_resamples: int = 1000, level: float = 0.95,
                 seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``per_user`` over resampled users."""
    per_user = np.asarray(per_user, dtype=np.float64)
    if per_user.size == 0:
        raise ValueError("a bootstrap interval needs at least one user")
    rng = np.random.default_rng(seed)
    means = per_user[rng.integers(0, len(per_user), (n_resamples, len(per_user)))].mean(axis=1)
    alpha = (1 - level) / 2
    lo, hi = np.quantile(means, [alpha, 1 - alpha])
    return float(lo), float(hi)


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Per row of ``scores`` (``[users, items]``), the column indices of its ``k`` highest
    scores, best first; scores equal after rounding to 9 decimals keep column order (so a
    benchmark's candidate order breaks ties, not float noise)."""
    s = np.round(np.asarray(scores, dtype=np.float64), 9)
    return np.argsort(-s, axis=1, kind="stable")[:, :min(k, s.shape[1])]


def ranking_metrics(rankings: Mapping[Any, Sequence[Any]], relevant: Mapping[Any, set],
                    ks: Sequence[int], ci: bool = False,
                    per_user: bool = False) -> dict[str, Any]:
    """Mean recall@k and NDCG@k over the users of ``relevant`` (each ranked in ``rankings``;
    a user without a ranking scores 0): the one implementation of the pipeline's evaluation
    and of both benchmarks.  With ``ci``, also ``recall@k_ci``: the bootstrap interval over
    those users (None when there is none); with ``per_user``, ``per_user["recall@k"]``: each
    user's recall, in the order of ``relevant``."""
    out: dict[str, Any] = {"per_user": {}} if per_user else {}
    users = [u for u in relevant if relevant[u]]
    for k in ks:
        if not users:
            out[f"recall@{k}"] = out[f"ndcg@{k}"] = float("nan")
            if ci:
                out[f"recall@{k}_ci"] = None
            continue
        recalls = [recall_at_k(rankings.get(u, []), relevant[u], k) for u in users]
        out[f"recall@{k}"] = float(np.mean(recalls))
        if ci:
            out[f"recall@{k}_ci"] = list(bootstrap_ci(recalls))
        if per_user:
            out["per_user"][f"recall@{k}"] = np.asarray(recalls)
        out[f"ndcg@{k}"] = float(np.mean([ndcg_at_k(rankings.get(u, []), relevant[u], k)
                                          for u in users]))
    return out


def score_metrics(scores: np.ndarray, relevant: Sequence[set[int]], ks: Sequence[int],
                  ci: bool = False, per_user: bool = False) -> dict[str, Any]:
    """:func:`ranking_metrics` of a score matrix (``[users, items]``; ``relevant``: each
    row's relevant column indices), ranked by :func:`top_k`."""
    top = top_k(scores, max(ks))
    rankings = {u: top[u].tolist() for u in range(len(relevant))}
    return ranking_metrics(rankings, dict(enumerate(relevant)), ks, ci=ci, per_user=per_user)


def strongest_baseline(baselines: Mapping[str, Mapping[str, Any]], ks: Sequence[int],
                       exclude: Iterable[str] = ("oracle",)) -> dict[str, str | None]:
    """Per ``recall@K``, the name of the baseline with the highest recall (``exclude``: not
    baselines but ceilings, like the synthetic data's oracle).

    A tie goes to the baseline listed first, so list the simpler ones first; None when no
    baseline has a figure at that K.
    """
    skip = set(exclude)
    out: dict[str, str | None] = {}
    for k in ks:
        key = f"recall@{k}"
        best, best_value = None, -np.inf
        for name, figures in baselines.items():
            value = figures.get(key)
            if name in skip or value is None or not np.isfinite(value):
                continue
            if value > best_value:
                best, best_value = name, value
        out[key] = best
    return out
