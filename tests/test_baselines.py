"""The content baselines: the content encoder, content → popularity and ridge → factors on
small planted data (they must beat random), and their training set read from the real
(embedded) Postgres on the tiny hand-checked dataset."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from dropoutnet import baselines, db, feature_queries, metrics, sql
from dropoutnet.steps import evaluate, samples
from dropoutnet.config import FeatureSpec
from dropoutnet.content import ContentEncoder

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
    model = baselines.popularity_regression(encoder.transform(train), rng.poisson(expected))
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
    naive = baselines.popularity_regression(content, clicks).predict(candidates)[:, 0]
    controlled = baselines.popularity_regression(content, clicks, days).predict(candidates)[:, 0]
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
    factors = baselines.als_factors([u for u, _ in pairs], [i for _, i in pairs], rank=8)
    train_ids = [f"t{i}" for i in range(n_train)]
    train_cols = {"i_topic": [f"g{g}" for g in train_genre]}
    encoder = ContentEncoder([TOPIC]).fit(train_cols)
    model = baselines.factor_regression(encoder.transform(train_cols),
                                        factors.item_factors(train_ids))
    directions = baselines.factor_directions(
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
    factors = baselines.als_factors(["u1", "u1", "u2"], ["a", "b", "b"], rank=2)
    out = factors.item_factors(["b", "zz", "a"])
    assert out.shape == (3, 2) and np.all(out[1] == 0)
    np.testing.assert_array_equal(out[0], factors.item_vectors[factors.items["b"]])


# --- the training set of the content baselines, from Postgres -----------------------------


BIZDATE = dt.date(2026, 11, 10)


@pytest.fixture
def tiny_samples(tiny):
    """The tiny dataset with its samples of BIZDATE built."""
    url, cfg = tiny
    samples.build_samples(cfg, BIZDATE, url)
    return url, cfg


def test_training_items_and_positive_pairs_on_the_tiny_dataset(tiny_samples):
    url, cfg = tiny_samples
    feats = cfg.features_of(group="item_content")
    with db.transaction(url) as cur:
        items = db.fetch_columns(cur, sql.render(
            "eval/training_items.sql", schema=cfg.storage.schema_, label=cfg.label_name,
            features=feats, items=cfg.raw.table("items")),
            {"bizdate": BIZDATE, "window_start": dt.date(2026, 11, 8)})
        pairs = db.fetch_columns(cur, sql.render(
            "eval/positive_pairs.sql", schema=cfg.storage.schema_, label=cfg.label_name),
            {"bizdate": BIZDATE})
        models = evaluate._content_models(cur, cfg, BIZDATE)
    # the training samples (see test_samples): (11-08, u1, i1, 0), (11-08, u1, i2, 1),
    # (11-09, u1, i1, 1); i3 is new on the bizdate, never a training item
    assert items["item_id"] == ["i1", "i2"]
    assert items["positives"] == [1, 1]
    # both were created before the window (11-08 .. 11-10): exposed all of its 3 days
    assert items["exposure_days"] == [3.0, 3.0]
    assert items["i_author"] == ["a1", "a2"] and items["i_tags"] == ["x|y", "y"]
    assert items["i_duration"] == [30.0, 60.0] and items["i_title_emb"][0].to_numpy().shape == (16,)
    assert list(zip(pairs["user_id"], pairs["item_id"])) == [("u1", "i1"), ("u1", "i2")]

    assert models.encoder.n_columns == models.encoder.transform(items).shape[1]
    assert set(models.factors.users) == {"u1"} and set(models.factors.items) == {"i1", "i2"}
    assert models.to_factors is not None
    # u1 clicked i3 on the bizdate: the only cold candidate is ranked first by both
    with db.transaction(url) as cur:
        candidates = feature_queries.read_features(cur, cfg, "item", BIZDATE, {
            "created_from": dt.datetime(2026, 11, 10, tzinfo=dt.timezone.utc),
            "created_to": dt.datetime(2026, 11, 11, tzinfo=dt.timezone.utc)})
    assert candidates["item_id"] == ["i3"]
    figures = evaluate._content_baselines(models, candidates, ["u1", "u2"],
                                          {"u1": {"i3"}, "u2": {"i3"}}, [1])
    assert figures["content_popularity"]["recall@1"] == 1.0
    # u2 is a cold user (no positive in the window): no factors, so no ranking
    assert figures["ridge_to_factors"]["recall@1"] == 0.5
