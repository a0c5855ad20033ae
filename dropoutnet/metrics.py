"""Ranking and classification metrics, in numpy (no extra dependency)."""

from __future__ import annotations

from typing import Iterable, Sequence

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


def ranking_metrics(rankings: dict[str, Sequence[str]], relevant: dict[str, set[str]],
                    ks: Sequence[int]) -> dict[str, float]:
    """Mean recall@k and NDCG@k over the users of ``relevant`` (each ranked in ``rankings``)."""
    out: dict[str, float] = {}
    users = [u for u in relevant if relevant[u]]
    for k in ks:
        if not users:
            out[f"recall@{k}"] = out[f"ndcg@{k}"] = float("nan")
            continue
        out[f"recall@{k}"] = float(np.mean([recall_at_k(rankings.get(u, []), relevant[u], k)
                                            for u in users]))
        out[f"ndcg@{k}"] = float(np.mean([ndcg_at_k(rankings.get(u, []), relevant[u], k)
                                          for u in users]))
    return out
