"""The content baselines' training set, read from the real (embedded) Postgres on the tiny
hand-checked dataset (the regressions they rank with are tested in ``test_closed_form.py``)."""

from __future__ import annotations

import datetime as dt

import pytest

from dropoutnet.core import db, sql
from dropoutnet.data import feature_queries
from dropoutnet.steps import evaluate, samples

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
            "evaluation/training_items.sql", schema=cfg.storage.schema_, label=cfg.label_name,
            features=feats, items=cfg.raw.table("items")),
            {"bizdate": BIZDATE, "window_start": dt.date(2026, 11, 8)})
        pairs = db.fetch_columns(cur, sql.render(
            "evaluation/positive_pairs.sql", schema=cfg.storage.schema_, label=cfg.label_name),
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
