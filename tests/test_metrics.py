"""Ranking metrics with bootstrap intervals over users, and the strongest baseline per K."""

from __future__ import annotations

import math

import numpy as np
import pytest

from dropoutnet.evaluation import metrics


def test_bootstrap_interval_contains_the_mean_and_narrows_with_more_users():
    rng = np.random.default_rng(0)
    widths = []
    for n in (40, 400, 4000):
        per_user = rng.random(n) < 0.3  # a recall of 0 or 1 per user, mean ~0.3
        lo, hi = metrics.bootstrap_ci(per_user)
        assert lo <= per_user.mean() <= hi
        widths.append(hi - lo)
    assert widths[0] > 2 * widths[1] > 4 * widths[2]  # ~1/sqrt(n)
    # ~95 %: for a 0/1 mean of 4000 users the half-width is about 1.96 * sqrt(p(1-p)/n)
    assert widths[2] / 2 == pytest.approx(1.96 * math.sqrt(0.3 * 0.7 / 4000), rel=0.15)


def test_bootstrap_interval_is_reproducible_and_degenerate_for_constant_users():
    per_user = np.linspace(0, 1, 50)
    assert metrics.bootstrap_ci(per_user) == metrics.bootstrap_ci(per_user)
    assert metrics.bootstrap_ci(per_user, seed=1) != metrics.bootstrap_ci(per_user, seed=2)
    assert metrics.bootstrap_ci(np.ones(10)) == (1.0, 1.0)
    lo90, hi90 = metrics.bootstrap_ci(per_user, level=0.9)
    lo95, hi95 = metrics.bootstrap_ci(per_user, level=0.95)
    assert lo95 <= lo90 < hi90 <= hi95
    with pytest.raises(ValueError, match="at least one user"):
        metrics.bootstrap_ci([])


def test_ranking_metrics_carry_the_interval_only_when_asked():
    rankings = {"a": ["i1", "i2"], "b": ["i3", "i1"], "c": ["i2", "i3"]}
    relevant = {"a": {"i1"}, "b": {"i1"}, "c": {"i1"}, "d": set()}
    plain = metrics.ranking_metrics(rankings, relevant, [1, 2])
    assert set(plain) == {"recall@1", "recall@2", "ndcg@1", "ndcg@2"}
    with_ci = metrics.ranking_metrics(rankings, relevant, [1, 2], ci=True)
    assert {k: with_ci[k] for k in plain} == plain
    # per user recall@1: 1, 0, 0; recall@2: 1, 1, 0 ("d" has nothing relevant: not counted)
    assert with_ci["recall@1"] == pytest.approx(1 / 3)
    assert with_ci["recall@1_ci"] == list(metrics.bootstrap_ci([1.0, 0.0, 0.0]))
    assert with_ci["recall@2_ci"] == list(metrics.bootstrap_ci([1.0, 1.0, 0.0]))
    nobody = metrics.ranking_metrics(rankings, {"a": set()}, [1], ci=True)
    assert math.isnan(nobody["recall@1"]) and nobody["recall@1_ci"] is None


def test_strongest_baseline_per_k():
    baselines = {
        "random": {"recall@5": 0.10, "recall@10": 0.20},
        "popularity": {"recall@5": 0.30, "recall@10": 0.25, "recall@10_ci": [0.1, 0.4]},
        "content_knn": {"recall@5": 0.30, "recall@10": 0.40},
        "broken": {"recall@5": float("nan"), "recall@10": None},
        "oracle": {"recall@5": 0.90, "recall@10": 0.95},
    }
    assert metrics.strongest_baseline(baselines, [5, 10]) == {
        "recall@5": "popularity",  # a tie goes to the baseline listed first
        "recall@10": "content_knn",
    }
    assert metrics.strongest_baseline(baselines, [5], exclude=()) == {"recall@5": "oracle"}
    assert metrics.strongest_baseline({"broken": baselines["broken"]}, [5]) == {"recall@5": None}
