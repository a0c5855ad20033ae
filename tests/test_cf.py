"""The shared collaborative-filtering numerics: implicit ALS and the conjugate-gradient ridge."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from dropoutnet.cf import Ridge, implicit_als, ridge_predict, unit_rows


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
