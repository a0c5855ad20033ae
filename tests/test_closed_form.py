"""The closed-form fits on small planted data: ridge and implicit ALS recover what was planted,
and the content design matrix, content → popularity and ridge → factors beat random."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from dropoutnet.config import FeatureSpec
from dropoutnet.evaluation import baselines, metrics
from dropoutnet.model import closed_form
from dropoutnet.model.closed_form import Ridge, implicit_als, ridge_predict, unit_rows
from dropoutnet.model.content import ContentEncoder


def test_ridge_recovers_a_planted_linear_map():
    rng = np.random.default_rng(0)
    x = sp.random(400, 30, density=0.2, random_state=1, format="csr")
    w = rng.normal(size=(30, 3))
    y = x @ w + 0.5  # three outputs with a common intercept
    model = Ridge.fit(x, y, reg=1e-6, steps=200)
    np.testing.assert_allclose(model.weights[:-1], w, atol=1e-3)
    np.testing.assert_allclose(model.weights[-1], 0.5, atol=1e-3)
    fresh = sp.random(20, 30, density=0.2, random_state=2, format="csr")
    np.testing.assert_allclose(model.predict(fresh), fresh @ w + 0.5, atol=1e-3)
    # a one-dimensional target is one output column; dense inputs work the same way
    single = Ridge.fit(x.toarray(), y[:, 0], reg=1e-6, steps=200)
    assert single.weights.shape == (31, 1)
    np.testing.assert_allclose(single.weights[:-1, 0], w[:, 0], atol=1e-3)
    with pytest.raises(ValueError, match="fit on 30"):
        model.predict(sp.csr_matrix((2, 29)))


def test_ridge_shrinks_with_regularisation_and_predicts_by_rows():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(50, 4))
    y = x @ np.array([1.0, -2.0, 0.5, 3.0])
    small = np.abs(Ridge.fit(x, y, reg=0.01).weights).sum()
    large = np.abs(Ridge.fit(x, y, reg=1000.0).weights).sum()
    assert large < 0.5 * small
    fit_rows, predict_rows = np.arange(0, 40), np.arange(40, 50)
    np.testing.assert_allclose(ridge_predict(x, y, fit_rows, predict_rows, reg=0.01),
                               Ridge.fit(x[:40], y[:40], 0.01).predict(x[40:]))


def test_als_recovers_the_top_items_of_a_low_rank_implicit_matrix():
    """Users of three taste groups each interact with most items of their group's block; a
    fifth of the pairs is held out, and ALS must rank those above the other blocks' items."""
    rng = np.random.default_rng(3)
    n_users, n_items, groups = 90, 60, 3
    user_group, item_group = np.arange(n_users) % groups, np.arange(n_items) % groups
    liked = user_group[:, None] == item_group[None, :]
    observed = liked & (rng.random(liked.shape) < 0.6)
    held = observed & (rng.random(liked.shape) < 0.2)
    train = np.argwhere(observed & ~held)
    u, v = implicit_als(train, n_users, n_items, rank=8, iterations=10, seed=0)
    scores = u @ v.T
    scores[observed & ~held] = -np.inf  # rank only what the user has not interacted with
    top = np.argsort(-scores, axis=1)[:, :5]
    in_block = np.take_along_axis(liked, top, axis=1)
    assert in_block.mean() > 0.95
    # a held-out pair outscores an item of another block (a per-user AUC) nearly always
    users = np.flatnonzero(held.any(axis=1))
    auc = [np.mean(scores[i][held[i]][:, None] > scores[i][~liked[i]][None, :]) for i in users]
    assert np.mean(auc) > 0.95


def test_als_leaves_entities_without_pairs_at_zero():
    u, v = implicit_als(np.array([[0, 0], [0, 1], [1, 1]]), 3, 4, rank=2, iterations=3)
    assert u.shape == (3, 2) and v.shape == (4, 2)
    assert np.all(u[2] == 0) and np.all(v[2:] == 0)
    assert np.all(np.abs(u[:2]).sum(axis=1) > 0) and np.all(np.abs(v[:2]).sum(axis=1) > 0)


def test_unit_rows():
    out = unit_rows(np.array([[3.0, 4.0], [0.0, 0.0], [0.0, -2.0]]))
    np.testing.assert_allclose(out, [[0.6, 0.8], [0.0, 0.0], [0.0, -1.0]])


TOPIC = FeatureSpec(name="i_topic", group="item_content", kind="categorical", source="items.topic")
TAGS = FeatureSpec(name="i_tags", group="item_content", kind="tags", source="items.tags")
SCORE = FeatureSpec(name="i_score", group="item_content", kind="numeric", source="items.score")
VEC = FeatureSpec(name="i_vec", group="item_content", kind="vector", dim=2,
                  source="item_text.vec")


def test_content_encoder_on_a_hand_example():
    fit = {"i_topic": ["fun", "sport", None, "fun"], "i_tags": ["x|y", "y", "", None],
           "i_score": [1.0, 2.0, 3.0, None], "i_vec": [[1, 0], None, [0, 2], [1, 1]]}
    encoder = ContentEncoder([TOPIC, TAGS, SCORE, VEC], num_bins=2).fit(fit)
    # topic: fun, sport | tags: x, y | score: bins (< 2, >= 2) and missing | vec: 2 values
    assert encoder.n_columns == 2 + 2 + 3 + 2
    new = {"i_topic": ["sport", "news"], "i_tags": ["y|z", "x"], "i_score": [5.0, float("nan")],
           "i_vec": [[0.5, 0.5], None]}
    np.testing.assert_array_equal(encoder.transform(new).toarray(), [
        [0, 1, 0, 1, 0, 1, 0, 0.5, 0.5],  # an unseen tag (z) sets no column
        [0, 0, 1, 0, 0, 0, 1, 0, 0],      # an unseen topic none; a missing score its column
    ])
    assert encoder.transform(fit).shape == (4, encoder.n_columns)


def _planted_popularity(rng, n: int, exposure: np.ndarray | None = None):
    """Items with a topic and a score; expected clicks exp(topic effect + score effect)."""
    topics = rng.choice(["a", "b", "c", "d", "e"], n)
    score = rng.normal(size=n)
    effect = {"a": 2.0, "b": 1.0, "c": 0.0, "d": -1.0, "e": -2.0}
    rate = np.exp(np.array([effect[t] for t in topics]) + 0.8 * score)
    columns = {"i_topic": list(topics), "i_score": list(score)}
    return columns, rate * (1.0 if exposure is None else exposure)


def test_content_popularity_beats_random_on_planted_data():
    rng = np.random.default_rng(0)
    train, expected = _planted_popularity(rng, 400)
    encoder = ContentEncoder([TOPIC, SCORE]).fit(train)
    model = closed_form.popularity_regression(encoder.transform(train), rng.poisson(expected))
    candidates, rate = _planted_popularity(rng, 50)
    scores = model.predict(encoder.transform(candidates))[:, 0]
    assert np.corrcoef(scores, np.log(rate))[0, 1] > 0.8
    # 200 users each click 3 candidates drawn by their popularity; the same ranking for all
    ids = [f"i{k}" for k in range(50)]
    ranked = baselines.rank(ids, scores, 10)
    relevant = {f"u{u}": {ids[i] for i in rng.choice(50, 3, replace=False, p=rate / rate.sum())}
                for u in range(200)}
    recall = metrics.ranking_metrics({u: ranked for u in relevant}, relevant, [10], ci=True)
    lo, _ = recall["recall@10_ci"]
    assert lo > 2 * 10 / 50  # random's expected recall@10 is 0.2


def test_content_popularity_compares_items_at_equal_exposure():
    """New-format items arrived mostly late (little exposure) but are clicked twice as often
    per day: counts alone say they are less popular, the exposure-controlled fit says more."""
    rng = np.random.default_rng(1)
    n = 600
    new_format = rng.random(n) < 0.5
    days = np.where(new_format, rng.integers(1, 9, n), rng.integers(5, 15, n)).astype(float)
    clicks = rng.poisson(np.where(new_format, 2.0, 1.0) * days)
    columns = {"i_topic": ["new" if f else "old" for f in new_format]}
    encoder = ContentEncoder([TOPIC]).fit(columns)
    content = encoder.transform(columns)
    candidates = encoder.transform({"i_topic": ["new", "old"]})
    naive = closed_form.popularity_regression(content, clicks).predict(candidates)[:, 0]
    controlled = closed_form.popularity_regression(content, clicks, days).predict(candidates)[:, 0]
    assert naive[0] < naive[1]            # fooled by the exposure
    assert controlled[0] > controlled[1]  # the content's own effect


def test_ridge_to_factors_beats_random_on_planted_data():
    """Three taste groups; an item's genre (its content) says which group clicks it.  Cold
    candidates have no clicks: only the ridge from genre to ALS factors can rank them."""
    rng = np.random.default_rng(2)
    groups, n_users, n_train, n_cand = 3, 120, 150, 60
    user_group = np.arange(n_users) % groups
    train_genre, cand_genre = rng.integers(0, groups, n_train), rng.integers(0, groups, n_cand)
    pairs = [(f"u{u}", f"t{i}") for u in range(n_users) for i in range(n_train)
             if train_genre[i] == user_group[u] and rng.random() < 0.2]
    factors = closed_form.als_factors([u for u, _ in pairs], [i for _, i in pairs], rank=8)
    train_ids = [f"t{i}" for i in range(n_train)]
    train_cols = {"i_topic": [f"g{g}" for g in train_genre]}
    encoder = ContentEncoder([TOPIC]).fit(train_cols)
    model = closed_form.factor_regression(encoder.transform(train_cols),
                                        factors.item_factors(train_ids))
    directions = closed_form.factor_directions(
        model, encoder.transform({"i_topic": [f"g{g}" for g in cand_genre]}))
    np.testing.assert_allclose(np.linalg.norm(directions, axis=1), 1.0)
    cand_ids = [f"c{i}" for i in range(n_cand)]
    users = {f"u{u}": factors.user_vectors[factors.users[f"u{u}"]] for u in range(n_users)}
    rankings = baselines.dot_rankings(users, cand_ids, directions, 10)
    relevant = {f"u{u}": {f"c{i}" for i in range(n_cand)
                          if cand_genre[i] == user_group[u] and rng.random() < 0.3}
                for u in range(n_users)}
    recall = metrics.ranking_metrics(rankings, relevant, [10], ci=True)
    lo, _ = recall["recall@10_ci"]
    # random: 10 / 60; every candidate of the user's genre first: about 10 / 20
    assert lo > 2 * 10 / n_cand


def test_factors_of_unknown_items_are_zero():
    factors = closed_form.als_factors(["u1", "u1", "u2"], ["a", "b", "b"], rank=2)
    out = factors.item_factors(["b", "zz", "a"])
    assert out.shape == (3, 2) and np.all(out[1] == 0)
    np.testing.assert_array_equal(out[0], factors.item_vectors[factors.items["b"]])


# --- the training set of the content baselines, from Postgres -----------------------------


