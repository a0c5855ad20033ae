"""The TensorFlow side: encoders, towers, losses, training with warm start, export.

Tiny random data with a planted signal (users click items of their own gender's category),
a tiny model, few steps: the whole file runs in well under a minute on 2 cores.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import tempfile
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("KERAS_HOME", os.path.join(tempfile.gettempdir(), "dropoutnet-keras"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402
from helpers import item_examples  # noqa: E402

from dropoutnet.config import ModelConfig, PipelineConfig, load_config  # noqa: E402
from dropoutnet.model import item_log_frequency, pairwise_loss, pointwise_loss  # noqa: E402
from dropoutnet.model.dropoutnet import build_model, load_trained_model
from dropoutnet.model.features import (  # noqa: E402
    RaggedIds,
    prepare_features,
    to_numpy_batch,
    to_tensor,
    to_tensors,
)
from dropoutnet.model.popularity import fit_popularity  # noqa: E402
from dropoutnet.model.towers import design_matrix  # noqa: E402
from dropoutnet.training.fit import predict_scores, train_model
from dropoutnet.training.saved_models import export_models, load_serving, load_tower  # noqa: E402

REPO = Path(__file__).resolve().parent.parent

FEATURES = [
    {"name": "u_gender", "group": "user_content", "kind": "categorical", "source": "users.gender"},
    {"name": "u_age", "group": "user_content", "kind": "numeric", "source": "users.age"},
    {"name": "u_clicks_7d", "group": "user_preference", "kind": "numeric",
     "preference": {"agg": "count", "events": ["click"], "window_days": 7}},
    {"name": "u_cates_14d", "group": "user_preference", "kind": "tags",
     "preference": {"agg": "collect", "events": ["click"], "window_days": 14,
                    "collect": "items.category_level1"}},
    {"name": "i_cate1", "group": "item_content", "kind": "categorical",
     "source": "items.category_level1"},
    {"name": "i_tags", "group": "item_content", "kind": "tags", "source": "items.tags"},
    {"name": "i_duration", "group": "item_content", "kind": "numeric", "source": "items.duration"},
    {"name": "i_title_emb", "group": "item_content", "kind": "vector", "dim": 4,
     "source": "item_text.title_embedding"},
    {"name": "i_ctr_7d", "group": "item_preference", "kind": "numeric",
     "preference": {"agg": "rate", "events": ["click"], "denominator_events": ["impression"],
                    "window_days": 7}},
    {"name": "i_age_bands_7d", "group": "item_preference", "kind": "tags",
     "preference": {"agg": "collect", "events": ["click"], "window_days": 7,
                    "collect": "users.age_band"}},
]
NEW_FEATURE = {"name": "i_topic", "group": "item_content", "kind": "categorical",
               "source": "items.topic"}


def make_config(features: list[dict] = FEATURES, model: dict | None = None,
                **training) -> PipelineConfig:
    base = load_config(REPO / "config" / "pipeline.yaml").model_dump(by_alias=True)
    base["features"] = features
    base["model"] = {"embedding_dim": 8, "feature_embedding_dim": 4, "hash_buckets": 64,
                     "num_bins": 4, "content_mlp": [16], "preference_mlp": [8],
                     "tower_mlp": [16], "user_dropout_rate": 0.3, "item_dropout_rate": 0.5,
                     "normalization": "l2", "item_prior": False, "linear_shortcut": False,
                     "losses": {"pointwise_weight": 1.0, "softmax_weight": 0.5,
                                "softmax_scale": 5.0, "align_weight": 0.0}, **(model or {})}
    base["training"] = {"batch_size": 32, "epochs": 10, "learning_rate": 0.01, "seed": 7,
                        **training}
    return PipelineConfig.model_validate(base)


def make_data(n: int = 384, seed: int = 0) -> tuple[dict, np.ndarray, np.ndarray, dict]:
    rng = np.random.default_rng(seed)
    gender = rng.choice(["f", "m"], n)
    item_no = rng.integers(0, 40, n)
    cate = np.where(item_no % 2 == 0, "f", "m")
    clicks = rng.poisson(3, n).astype(np.float32)
    clicks[rng.random(n) < 0.2] = np.nan
    ctr = rng.random(n).astype(np.float32)
    cold_item = rng.random(n) < 0.25
    ctr[cold_item] = np.nan
    bands = np.array(["18-24|25-34", "35-44", ""], dtype=object)[rng.integers(0, 3, n)]
    bands[cold_item] = ""
    features = {
        "u_gender": np.where(rng.random(n) < 0.05, "", gender).astype(object),
        "u_age": rng.normal(30, 8, n).astype(np.float32),
        "u_clicks_7d": clicks,
        "u_cates_14d": np.array(["f|m", "f", "m", ""], dtype=object)[rng.integers(0, 4, n)],
        "i_cate1": cate.astype(object),
        "i_tags": np.array(["a|b", "c", "", "b|c|d"], dtype=object)[item_no % 4],
        "i_duration": (item_no * 3.0).astype(np.float32),
        "i_title_emb": rng.normal(size=(n, 4)).astype(np.float32) * (item_no % 5 != 0)[:, None],
        "i_ctr_7d": ctr,
        "i_age_bands_7d": bands,
        "i_topic": np.array(["x", "y", "z"], dtype=object)[item_no % 3],
    }
    p = np.where(gender == cate, 0.8, 0.1)
    labels = (rng.random(n) < p).astype(np.float32)
    item_ids = np.array([f"item{i}" for i in item_no], dtype=object)
    boundaries = {"u_age": [22.0, 30.0, 38.0], "u_clicks_7d": [1.0, 2.0, 2.0, 4.0],
                  "i_duration": [30.0, 60.0, 90.0], "i_ctr_7d": [0.25, 0.5, 0.75]}
    return features, labels, item_ids, boundaries


@pytest.fixture(scope="module")
def data():
    return make_data()


@pytest.fixture(scope="module")
def day1(tmp_path_factory, data):
    """Yesterday's model, trained from scratch."""
    features, labels, item_ids, boundaries = data
    ckpt = tmp_path_factory.mktemp("day1") / "checkpoints"
    stats = train_model(make_config(), features, labels, boundaries, ckpt, None, item_ids)
    return ckpt, stats


# --- losses ---------------------------------------------------------------------------------


def test_compute_losses_sums_the_weighted_terms(data):
    features, labels, item_ids, boundaries = data
    base = make_config().model.model_dump()
    base["losses"] = {"pointwise_weight": 1.0, "pairwise_weight": 0.5, "softmax_weight": 0.25,
                      "softmax_negatives": 8, "softmax_margin": 0.1, "softmax_scale": 5.0,
                      "softmax_sv_coefficient": 1.2, "softmax_logq": True, "align_weight": 0.5}
    model_config = ModelConfig.model_validate(base)
    model = build_model(make_config().features, model_config, boundaries, seed=3)
    n = 64
    x = to_tensors(model.feature_specs, {k: v[:n] for k, v in features.items()})
    x["item_id"] = tf.constant(item_ids[:n].astype(str))
    x["item_logq"] = tf.constant(item_log_frequency(item_ids)[:n])
    parts = model.compute_losses(x, tf.constant(labels[:n]), training=False)
    terms = [float(parts[k]) for k in ("pointwise_loss", "pairwise_loss", "softmax_loss",
                                        "align_loss")]
    assert all(t > 0 for t in terms)
    assert float(parts["loss"]) == pytest.approx(
        terms[0] + 0.5 * terms[1] + 0.25 * terms[2] + 0.5 * terms[3], rel=1e-5)
    # the pairwise term is RankNet on the ranking score scale * cosine (+ prior), the
    # pointwise term cross-entropy on the logit (that score + bias)
    out = parts["outputs"]
    ranking = model.scale * out["similarity"] + out["prior"]
    assert terms[1] == pytest.approx(float(pairwise_loss(labels[:n], ranking)), rel=1e-5)
    assert terms[0] == pytest.approx(float(pointwise_loss(labels[:n], ranking + model.bias)),
                                     rel=1e-5)
    # a weight of 0 turns a term off
    base["losses"] = {"pointwise_weight": 1.0, "pairwise_weight": 0.0, "softmax_weight": 0.0,
                      "align_weight": 0.0}
    model.loss_config = ModelConfig.model_validate(base).losses
    parts = model.compute_losses(x, tf.constant(labels[:n]), training=False)
    assert float(parts["softmax_loss"]) == float(parts["pairwise_loss"]) == 0.0
    assert float(parts["align_loss"]) == 0.0
    assert float(parts["loss"]) == pytest.approx(terms[0], rel=1e-5)


def test_train_with_every_loss_and_logq(data, tmp_path):
    features, labels, item_ids, boundaries = data
    cfg = make_config(epochs=1)
    losses = {"pointwise_weight": 1.0, "pairwise_weight": 0.5, "softmax_weight": 0.5,
              "softmax_negatives": 16, "softmax_margin": 0.1, "softmax_scale": 5.0,
              "softmax_sv_coefficient": 1.2, "softmax_logq": True}
    data_ = cfg.model_dump(by_alias=True)
    data_["model"]["losses"] = losses
    cfg = PipelineConfig.model_validate(data_)
    n = 128  # 4 steps: this checks the graph-mode path, not learning
    features = {k: v[:n] for k, v in features.items()}
    stats = train_model(cfg, features, labels[:n], boundaries, tmp_path / "ckpt", None,
                        item_ids[:n])
    assert stats["steps"] == 4
    assert all(np.isfinite(stats[k]) and stats[k] > 0
               for k in ("loss", "pointwise_loss", "pairwise_loss", "softmax_loss"))
    with pytest.raises(ValueError, match="softmax_logq needs item_ids"):
        train_model(cfg, features, labels[:n], boundaries, tmp_path / "ckpt2", None, None)


# --- cold encoding --------------------------------------------------------------------------


@pytest.mark.parametrize("model_settings", [{}, {"linear_shortcut": True, "item_prior": True}])
def test_cold_item_equals_dropped_row(data, model_settings):
    features, _, _, boundaries = data
    cfg = make_config(model=model_settings)
    model = build_model(cfg.features, cfg.model, boundaries, seed=3)
    if model_settings:  # the wide path exists and reads the encoded inputs
        assert model.item_tower.shortcut.kernel.shape[1] == cfg.model.embedding_dim
    item_specs = model.item_specs
    n = 50
    warm = {f.name: features[f.name][:n] for f in item_specs}
    cold = dict(warm)
    cold["i_ctr_7d"] = np.full(n, np.nan, np.float32)           # all preference missing
    cold["i_age_bands_7d"] = np.full(n, "", dtype=object)
    other = dict(warm)                                           # different behaviour
    other["i_ctr_7d"] = np.linspace(0, 1, n).astype(np.float32)
    other["i_age_bands_7d"] = np.full(n, "18-24|45+", dtype=object)

    def embed(batch, keep=None, training=False):
        x = to_tensors(item_specs, batch)
        return model.item_embedding(x, training=training, keep=keep).numpy()

    # (a) a cold item at serving == the same item with its preference row dropped in training
    dropped = embed(warm, keep=tf.zeros([n]), training=True)
    np.testing.assert_array_equal(embed(cold), dropped)
    # the cold row is exactly the same as a dropped row whatever its preference input says
    mask = model.item_tower.preference_mask(to_tensors(item_specs, cold)).numpy()
    assert np.all(mask == 0)
    # (b) with the row marked cold, the preference input changes nothing
    np.testing.assert_array_equal(embed(other, keep=tf.zeros([n])), dropped)
    # ...while a kept row with behaviour is encoded differently
    present = ~np.isnan(warm["i_ctr_7d"]) | (warm["i_age_bands_7d"] != "")
    assert present.any()
    assert not np.allclose(embed(warm)[present], dropped[present])
    # training-mode dropout draws rows that are either kept or exactly cold-encoded
    drawn = embed(warm, training=True)
    is_cold = np.all(np.isclose(drawn, dropped, atol=0), axis=1)
    is_kept = np.all(np.isclose(drawn, embed(warm), atol=1e-6), axis=1)
    assert np.all(is_cold | is_kept)
    assert is_cold[present].any() and is_kept[present].any()


def test_missing_values_and_empty_tags_are_handled(data):
    features, _, _, boundaries = data
    cfg = make_config()
    model = build_model(cfg.features, cfg.model, boundaries, seed=3)
    tags = model.item_tower.encoders["i_tags"]
    out = tags(tf.constant(["", "a|b", "| a |", "a"])).numpy()
    np.testing.assert_array_equal(out[0], 0.0)  # no tag -> zero vector
    np.testing.assert_allclose(out[2], out[3], rtol=1e-6)  # blanks and spaces ignored
    numeric = model.user_tower.encoders["u_clicks_7d"]
    ids = numeric.bucket(tf.constant([np.nan, -1.0, 1.0, 3.0, 100.0], tf.float32)).numpy()
    assert list(ids) == [numeric.missing_row, 0, 1, 2, 3]  # duplicate edge 2.0 collapsed
    assert numeric.missing_row == 4  # max(num_bins 4, 3 edges + 1) rows + the NaN row


def test_prepared_features_encode_like_the_raw_strings(data):
    """Training hashes the strings once (prepare_features): every tower output and the
    closed-form design are the same from the prepared form as from the raw strings that the
    exported towers take, and a prepared tags column cut and joined like a chunk's columns
    holds the same rows."""
    features, _, _, boundaries = data
    cfg = make_config(model={"popularity_prior": 1.0, "item_prior": True})
    model = build_model(cfg.features, cfg.model, boundaries, seed=3)
    popularity = model.item_tower.popularity  # the design's weights, not zeros
    popularity.assign(np.random.default_rng(0).normal(size=popularity.shape).astype(np.float32))
    raw = dict(features, i_tags=features["i_tags"].copy())
    raw["i_tags"][:4] = ["a||b", " ", "| c |", ""]  # blank tags count for nothing
    batch = to_numpy_batch(cfg.features, raw)
    prepared = prepare_features(cfg.features, cfg.model, batch)
    tags = prepared["i_tags"]
    assert prepared["u_gender"].dtype == np.int64 and isinstance(tags, RaggedIds)
    assert tags[:4].to_tensor().row_lengths().numpy().tolist() == [2, 0, 1, 0]
    again = prepare_features(cfg.features, cfg.model, prepared)  # prepared stays as it is
    assert again["i_tags"] is tags and again["u_gender"] is prepared["u_gender"]
    for tower in (model.user_tower, model.item_tower):
        want = tower({k: tf.constant(v) for k, v in batch.items()})
        got = tower({k: to_tensor(v) for k, v in prepared.items()})
        for key in want:
            np.testing.assert_array_equal(got[key].numpy(), want[key].numpy(), err_msg=key)
    np.testing.assert_array_equal(design_matrix(model.item_tower, prepared).toarray(),
                                  design_matrix(model.item_tower, batch).toarray())
    rows = tags.to_tensor().to_list()
    pick = np.array([7, 0, 3, 3, 1])
    assert tags[pick].to_tensor().to_list() == [rows[i] for i in pick]
    assert tags[10:20].to_tensor().to_list() == rows[10:20]
    joined = RaggedIds.concat([tags[:5], tags[5:5], tags[5:]])
    np.testing.assert_array_equal(joined.splits, tags.splits)
    np.testing.assert_array_equal(joined.values, tags.values)


# --- training, warm start, export -------------------------------------------------------------


def test_training_decreases_loss(day1):
    ckpt, stats = day1
    json.dumps(stats)  # JSON-able
    hist = stats["history"]["loss"]
    assert len(hist) == 10 and hist[-1] < 0.9 * hist[0]
    assert stats["warm_started"] is False and stats["restored_variables"] == 0
    assert stats["steps"] == 10 * 12 == stats["optimizer_iterations"]
    assert {"pointwise_loss", "softmax_loss", "train_auc"} <= set(stats)
    assert stats["train_auc"] > 0.7  # the planted signal is learnt
    assert (ckpt / "model_meta.json").is_file()
    assert not [p for p in ckpt.parent.iterdir() if p.name.startswith(".")]  # no temp folders


def test_export_towers_reproduce_final_scores(day1, data, tmp_path):
    ckpt, _ = day1
    features, labels, _, _ = data
    result = export_models(make_config(), ckpt, tmp_path / "export")
    assert result["embedding_dim"] == 8
    for name in ("final", "user", "item"):
        assert (tmp_path / "export" / name / "saved_model.pb").is_file()

    user = load_tower(tmp_path / "export" / "user", batch_size=100)
    item = load_tower(tmp_path / "export" / "item", batch_size=100)
    final = load_serving(tmp_path / "export" / "final", batch_size=100)
    ue, ie, out = user(features), item(features), final(features)
    assert ue.shape == (len(labels), 8) and ue.dtype == np.float32
    # l2 towers: unit item vectors; the user vector carries the learned scale
    model = load_trained_model(ckpt)
    np.testing.assert_allclose(np.linalg.norm(ie, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(ue, axis=1), float(model.scale), rtol=1e-5)
    np.testing.assert_allclose(np.sum(ue * ie, axis=1) + float(model.bias), out["logit"],
                               atol=1e-4)
    np.testing.assert_allclose(np.sum(ue * ie, axis=1), out["score"], atol=1e-5)
    np.testing.assert_allclose(ue, out["user_embedding"], atol=1e-6)
    # the exported final model agrees with the trained model in memory
    np.testing.assert_allclose(predict_scores(model, features), out["probability"], atol=1e-5)

    # a fresh load, through the signature, with the raw dtypes
    sig = tf.saved_model.load(str(tmp_path / "export" / "item")).signatures["serving_default"]
    inputs = sig.structured_input_signature[1]
    assert inputs["i_cate1"].dtype == tf.string and inputs["i_duration"].dtype == tf.float32
    assert inputs["i_title_emb"].shape.as_list() == [None, 4]
    got = sig(i_cate1=tf.constant(["f", ""]), i_tags=tf.constant(["a|b", ""]),
              i_duration=tf.constant([3.0, np.nan]), i_title_emb=tf.zeros([2, 4]),
              i_ctr_7d=tf.constant([np.nan, np.nan]), i_age_bands_7d=tf.constant(["", ""]))
    assert got["embedding"].shape == (2, 8)
    assert np.all(np.isfinite(got["embedding"].numpy()))


def _values(ckpt_dir: Path) -> dict[str, np.ndarray]:
    reader = tf.train.load_checkpoint(tf.train.latest_checkpoint(str(ckpt_dir)))
    return {k: reader.get_tensor(k) for k in reader.get_variable_to_shape_map()
            if k.startswith(("dropoutnet", "optimizer"))}


def test_warm_start_restores_yesterday(day1, data, tmp_path, caplog):
    ckpt1, _ = day1
    features, labels, item_ids, boundaries = data
    caplog.set_level(logging.INFO, logger="dropoutnet.training.fit")
    stats = train_model(make_config(), features, labels, boundaries, tmp_path / "day2",
                        ckpt1, item_ids, epochs=0)
    assert stats["warm_started"] is True and stats["not_restored_variables"] == 0
    assert f"warm start from {ckpt1}" in caplog.text
    before, after = _values(ckpt1), _values(tmp_path / "day2")
    assert before.keys() == after.keys() and len(before) > 40
    for key in before:
        np.testing.assert_array_equal(before[key], after[key], err_msg=key)


def test_warm_start_with_added_feature(day1, data, tmp_path, caplog):
    ckpt1, _ = day1
    features, labels, item_ids, boundaries = data
    caplog.set_level(logging.INFO, logger="dropoutnet.training.fit")
    cfg = make_config(FEATURES + [NEW_FEATURE], epochs=1)
    stats = train_model(cfg, features, labels, boundaries, tmp_path / "day2", ckpt1, item_ids)
    assert stats["warm_started"] is True
    not_restored = stats["warm_start"]["not_restored"]
    assert "dropoutnet-item_tower-i_topic-embedding-embeddings" in not_restored
    assert "shape" in not_restored["dropoutnet-item_tower-content_mlp-dense_0-kernel"]
    assert "dropoutnet-user_tower-u_gender-embedding-embeddings" not in not_restored
    assert stats["restored_variables"] > 30
    assert "i_topic" in caplog.text and "did not restore" in caplog.text


def test_missing_warm_start_dir_is_a_cold_start(data, tmp_path, caplog):
    features, labels, _, boundaries = data
    caplog.set_level(logging.INFO, logger="dropoutnet.training.fit")
    missing = tmp_path / "no-such-day"
    stats = train_model(make_config(), features, labels, boundaries, tmp_path / "day2",
                        missing, epochs=0)
    assert stats["warm_started"] is False
    assert f"no checkpoint at {missing}: cold start (training from scratch)" in caplog.text


# --- item prior, normalisation, the paper's objective ------------------------------------------


def sample_dates(item_ids: np.ndarray) -> np.ndarray:
    """A sample day per row: item ``itemK`` first appears on day ``K % 5`` of five."""
    first = np.array([int(i[4:]) % 5 for i in item_ids])
    return np.array([dt.date(2026, 1, 1) + dt.timedelta(days=int(d)) for d in first])


@pytest.fixture(scope="module")
def prior_model(tmp_path_factory, data):
    """A model with an item prior and a popularity prior, trained and exported."""
    features, labels, item_ids, boundaries = data
    cfg = make_config(model={"item_prior": True, "popularity_prior": 2.0})
    root = tmp_path_factory.mktemp("prior")
    train_model(cfg, features, labels, boundaries, root / "checkpoints", None, item_ids,
                sample_dates=sample_dates(item_ids))
    export_models(cfg, root / "checkpoints", root / "export")
    return cfg, root


def test_prior_export_inner_product_is_the_models_score(prior_model, data):
    cfg, root = prior_model
    features = data[0]
    user, item = load_tower(root / "export" / "user"), load_tower(root / "export" / "item")
    out = load_serving(root / "export" / "final")(features)
    ue, ie = user(features), item(features)
    assert ue.shape[1] == ie.shape[1] == cfg.model.vector_dim == 9
    np.testing.assert_array_equal(ue[:, -1], 1.0)  # the user side of the prior: a constant
    # one inner product: the exported vectors give the model's score, its logit plus the
    # popularity prior (kept out of the click model)
    np.testing.assert_allclose(np.sum(ue * ie, axis=1), out["score"], atol=1e-4)
    np.testing.assert_allclose(out["score"], out["logit"] + out["popularity"], atol=1e-4)
    model = load_trained_model(root / "checkpoints")
    np.testing.assert_allclose(ie[:, -1], out["prior"] + float(model.bias) + out["popularity"],
                               atol=1e-5)
    # both priors move with content: items of different content get different ones
    assert np.std(out["prior"]) > 1e-3 and np.std(out["popularity"]) > 1e-3
    # the popularity prior is the weight times the fitted ridge, restored from the checkpoint
    expected = model.item_tower.expected_popularity(to_tensors(model.item_specs, features))
    np.testing.assert_allclose(out["popularity"], 2.0 * expected.numpy(), atol=1e-5)


def test_cold_items_prior_comes_from_content_alone(prior_model, data):
    cfg, root = prior_model
    features = data[0]
    model = load_trained_model(root / "checkpoints")
    item_specs = model.item_specs
    n = 40
    cold = {f.name: features[f.name][:n] for f in item_specs}
    cold["i_ctr_7d"] = np.full(n, np.nan, np.float32)
    cold["i_age_bands_7d"] = np.full(n, "", dtype=object)
    warm = dict(cold, i_ctr_7d=np.linspace(0, 1, n).astype(np.float32),
                i_age_bands_7d=np.full(n, "18-24|45+", dtype=object))

    def prior(batch, keep=None, training=False):
        return model.item_tower(to_tensors(item_specs, batch), training=training,
                                keep=keep)["prior"].numpy()

    # a cold item's prior: whatever its (absent) behaviour would say, the same as a
    # dropped row in training, and it moves with the content
    np.testing.assert_array_equal(prior(cold), prior(warm, keep=tf.zeros([n]), training=True))
    assert not np.allclose(prior(warm), prior(cold))
    other = dict(cold, i_cate1=np.where(cold["i_cate1"] == "f", "m", "f").astype(object))
    assert not np.allclose(prior(other), prior(cold))
    # the popularity prior reads content only: behaviour does not move it
    popularity = model.item_tower(to_tensors(item_specs, cold))["popularity"].numpy()
    np.testing.assert_array_equal(
        popularity, model.item_tower(to_tensors(item_specs, warm))["popularity"].numpy())
    # the served item vector carries both: a cold item's last entry = prior + bias + popularity
    served = load_tower(root / "export" / "item")(cold)
    np.testing.assert_allclose(served[:, -1], prior(cold) + float(model.bias) + popularity,
                               atol=1e-5)


def test_item_examples_count_each_items_positives_and_exposure():
    ids = np.array(["b", "a", "b", "a", "c"], dtype=object)
    labels = np.array([1, 0, 1, 1, 0], np.float32)
    days = np.array([dt.date(2026, 1, 3), dt.date(2026, 1, 2), dt.date(2026, 1, 1),
                     dt.date(2026, 1, 2), dt.date(2026, 1, 5)])
    rows, positives, exposure = item_examples(ids, labels, days)
    # a, b, c: each item's first row (by day, then row order), positives, days to the last day
    assert rows.tolist() == [1, 2, 4]
    assert positives.tolist() == [1, 2, 0]
    assert exposure.tolist() == [4, 5, 1]


def test_popularity_prior_learns_reach_from_content_at_equal_exposure(data):
    """Items of category "hit" get twice the positives of "flop" items at the same exposure,
    but most flops were there four times longer, so raw counts tie the two categories: only
    a fit at equal exposure puts hits first."""
    features, _, _, boundaries = data
    rows, item_ids, labels, days = {k: [] for k in features}, [], [], []
    for k in range(40):
        hit = k % 2 == 0
        long = (k // 2 % 4 == 0) if hit else (k // 2 % 4 != 0)
        exposure = 8 if long else 2
        clicks = (2 if hit else 1) * exposure
        for d in range(exposure):
            for c in range(4):
                item_ids.append(f"item{k}")
                labels.append(1.0 if c < clicks / exposure else 0.0)
                days.append(dt.date(2026, 1, 1) + dt.timedelta(days=8 - exposure + d))
                for name in features:
                    rows[name].append(features[name][0])
                rows["i_cate1"][-1] = "hit" if hit else "flop"
    x = {k: np.asarray(v, dtype=np.asarray(features[k]).dtype) for k, v in rows.items()}
    first, positives, exposure = item_examples(np.array(item_ids), np.array(labels),
                                               np.array(days))

    def reach(popularity_features=None):
        """The fitted prior of a hit and a flop (otherwise equal)."""
        cfg = make_config(model={"item_prior": True, "popularity_prior": 1.0,
                                 "popularity_features": popularity_features})
        model = build_model(cfg.features, cfg.model, boundaries, 7)
        stats = fit_popularity(model.item_tower, {k: v[first] for k, v in x.items()},
                               positives, exposure)
        assert stats["items"] == 40 and stats["positive_items"] == 40
        hits = {"i_cate1": np.array(["hit", "flop"], dtype=object)}
        return model, model.item_tower.expected_popularity(to_tensors(model.item_specs, {
            **{k: x[k][:2] for k in x}, **hits})).numpy()

    model, both = reach()
    assert both[0] > both[1] + 0.3
    # model.popularity_features: the ridge reads those features only, so its width is theirs
    model, chosen = reach(["i_cate1", "i_tags"])
    tower = model.item_tower
    assert [f.name for f in tower.popularity_specs] == ["i_cate1", "i_tags"]
    assert tower.popularity.shape[0] == 1 + sum(
        tower.encoders[n].design_width for n in ("i_cate1", "i_tags"))
    assert chosen[0] > chosen[1] + 0.3
    model, without = reach(["i_tags", "i_duration"])  # the category is not read: no difference
    assert abs(without[0] - without[1]) < 1e-6


@pytest.mark.parametrize("normalization", ["none", "cosine"])
def test_normalization_setting(data, normalization):
    features, labels, item_ids, boundaries = data
    cfg = make_config(model={"normalization": normalization})
    model = build_model(cfg.features, cfg.model, boundaries, seed=3)
    out = {k: v.numpy() for k, v in model(to_tensors(model.feature_specs, features)).items()}
    norms = np.linalg.norm(out["user_embedding"], axis=1)
    np.testing.assert_allclose(np.sum(out["user_embedding"] * out["item_embedding"], axis=1),
                               out["score"], atol=1e-5)
    if normalization == "cosine":  # unit vectors: the score is the cosine
        np.testing.assert_allclose(norms, 1.0, atol=1e-5)
        np.testing.assert_allclose(out["score"], out["similarity"], atol=1e-6)
    else:  # the raw linear towers of the paper
        assert np.std(norms) > 1e-3


def _distill_data(n: int = 256, seed: int = 0, with_ids: bool = False):
    """Users and items with 4-dim preference factors and a content signal of the item's
    (and, ``with_ids``, each row's item id)."""
    rng = np.random.default_rng(seed)
    users, items = rng.normal(size=(20, 4)), rng.normal(size=(30, 4))
    u, i = rng.integers(0, 20, n), rng.integers(0, 30, n)
    item_factors = items[i].astype(np.float32)
    item_factors[i % 5 == 0] = 0.0  # items without factors: no target
    features = {
        "u_group": np.array([f"g{k % 3}" for k in u], dtype=object),
        "u_factors": users[u].astype(np.float32),
        "i_content": (items[i] + rng.normal(scale=0.3, size=(n, 4))).astype(np.float32),
        "i_factors": item_factors,
    }
    labels = (np.sum(users[u] * items[i], axis=1) > 0).astype(np.float32)
    if with_ids:
        return features, labels, np.array([f"item{k}" for k in i], dtype=object)
    return features, labels


DISTILL_FEATURES = [
    {"name": "u_group", "group": "user_content", "kind": "categorical", "source": "users.g"},
    {"name": "u_factors", "group": "user_preference", "kind": "vector", "dim": 4,
     "precomputed": True, "source": "users.factors"},
    {"name": "i_content", "group": "item_content", "kind": "vector", "dim": 4,
     "source": "items.content"},
    {"name": "i_factors", "group": "item_preference", "kind": "vector", "dim": 4,
     "precomputed": True, "source": "items.factors"},
]


def test_distill_loss_regresses_the_score_onto_the_factors(tmp_path):
    features, labels = _distill_data()
    losses = {"pointwise_weight": 0.0, "softmax_weight": 0.0, "align_weight": 0.0,
              "distill_weight": 1.0, "distill_features": ["u_factors", "i_factors"]}
    cfg = make_config(DISTILL_FEATURES, model={"item_prior": True, "losses": losses},
                      epochs=30)
    model = build_model(cfg.features, cfg.model, {}, seed=3)
    x = to_tensors(model.feature_specs, features)
    parts = model.compute_losses(x, tf.constant(labels), training=False)
    out = parts["outputs"]
    target = np.sum(features["u_factors"] * features["i_factors"], axis=1)
    known = np.any(features["i_factors"] != 0, axis=1)
    pred = (float(model.distill_scale) * (model.scale * out["similarity"] + out["prior"])
            + float(model.distill_bias)).numpy()
    assert float(parts["distill_loss"]) == pytest.approx(
        np.mean((pred - target)[known] ** 2), rel=1e-4)
    assert float(parts["loss"]) == pytest.approx(float(parts["distill_loss"]), rel=1e-6)
    # trained on it alone, the score learns the factors' inner product
    stats = train_model(cfg, features, labels, {}, tmp_path / "ckpt", None)
    hist = stats["history"]["distill_loss"]
    assert hist[-1] < 0.5 * hist[0]


def test_factor_prior_adds_the_content_to_factors_ridge_to_the_one_inner_product(tmp_path):
    features, labels, item_ids = _distill_data(n=512, with_ids=True)
    cfg = make_config(DISTILL_FEATURES, epochs=2, model={
        "item_prior": True, "factor_prior": 1.5,
        "losses": {"distill_features": ["u_factors", "i_factors"]}})
    assert cfg.vector_dim == cfg.model.vector_dim + 4 == 13  # 8, the prior, 4 factors
    stats = train_model(cfg, features, labels, {}, tmp_path / "ckpt", None, item_ids)
    fit = stats["factor_prior"]
    assert fit["items"] == 30 and fit["items_with_factors"] == 24 and fit["scale"] > 0
    # c = weight / the spread of <U, d> over random user x item pairs
    assert fit["scale"] * fit["score_std"] == pytest.approx(1.5, rel=1e-3)
    # the content is the factors plus noise: the ridge's directions point close to them
    assert fit["cosine"] > 0.9
    export_models(cfg, tmp_path / "ckpt", tmp_path / "export")
    user, item = load_tower(tmp_path / "export" / "user"), load_tower(tmp_path / "export" / "item")
    out = load_serving(tmp_path / "export" / "final")(features)
    ue, ie = user(features), item(features)
    assert ue.shape[1] == ie.shape[1] == 13
    # one inner product: the model's logit plus the factor term
    np.testing.assert_allclose(np.sum(ue * ie, axis=1), out["score"], atol=1e-4)
    np.testing.assert_allclose(out["score"], out["logit"] + out["factor"], atol=1e-4)
    scale = fit["scale"]
    np.testing.assert_allclose(ue[:, -4:], scale * features["u_factors"], rtol=1e-4, atol=1e-6)
    # an item with factors: their direction; a new item (no factors): the ridge's, from content
    own = features["i_factors"]
    known = np.abs(own).sum(axis=1) > 0
    unit = own[known] / np.linalg.norm(own[known], axis=1, keepdims=True)
    np.testing.assert_allclose(ie[known, -4:], unit, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(ie[~known, -4:], axis=1), 1.0, atol=1e-5)
    cold = dict(features, i_factors=np.zeros_like(own))
    predicted = item(cold)[:, -4:]
    model = load_trained_model(tmp_path / "ckpt")
    expected = model.item_tower.factors(to_tensors(model.item_specs, cold)).numpy()
    np.testing.assert_allclose(predicted, expected, atol=1e-5)
    assert np.mean(np.sum(predicted[known] * unit, axis=1)) > 0.9
    # a user without factors (a cold user): the term is 0, the score is the model's logit
    no_factors = dict(features, u_factors=np.zeros_like(features["u_factors"]))
    out0 = load_serving(tmp_path / "export" / "final")(no_factors)
    np.testing.assert_array_equal(out0["factor"], 0.0)
    np.testing.assert_allclose(out0["score"], out0["logit"], atol=1e-4)


def test_factor_prior_feature_gives_new_items_its_direction(tmp_path):
    """With model.factor_prior_feature, an item without factors takes the given guess's
    direction (no ridge); an item with factors keeps theirs; the scale is fitted on it."""
    features, labels, item_ids = _distill_data(n=512, with_ids=True)
    guess = dict(DISTILL_FEATURES[2], name="i_guess", source="items.guess")
    cfg = make_config(DISTILL_FEATURES + [guess], epochs=1, model={
        "item_prior": True, "factor_prior": 1.0, "factor_prior_feature": "i_guess",
        "losses": {"distill_features": ["u_factors", "i_factors"]}})
    rng = np.random.default_rng(1)
    features["i_guess"] = rng.normal(size=features["i_content"].shape).astype(np.float32)
    stats = train_model(cfg, features, labels, {}, tmp_path / "ckpt", None, item_ids)
    assert stats["factor_prior"]["scale"] * stats["factor_prior"]["score_std"] == \
        pytest.approx(1.0, rel=1e-3)
    model = load_trained_model(tmp_path / "ckpt")
    assert model.item_tower.factor_map is None
    d = model.item_tower.factors(to_tensors(model.item_specs, features)).numpy()
    own, g = features["i_factors"], features["i_guess"]
    known = np.abs(own).sum(axis=1) > 0
    np.testing.assert_allclose(d[known], own[known] / np.linalg.norm(own[known], axis=1,
                                                                      keepdims=True), atol=1e-5)
    np.testing.assert_allclose(d[~known], g[~known] / np.linalg.norm(g[~known], axis=1,
                                                                      keepdims=True), atol=1e-5)


def test_align_loss_is_the_cold_to_warm_distance_of_items_with_behaviour(data, tmp_path):
    features, labels, item_ids, boundaries = data
    cfg = make_config(model={"item_prior": True, "losses": {
        "pointwise_weight": 1.0, "softmax_weight": 0.0, "align_weight": 2.0}}, epochs=2)
    model = build_model(cfg.features, cfg.model, boundaries, seed=3)
    n = 64
    x = to_tensors(model.feature_specs, {k: v[:n] for k, v in features.items()})
    parts = model.compute_losses(x, tf.constant(labels[:n]), training=False)
    cold = model.item_embedding(x, keep=tf.zeros([n])).numpy()
    warm = model.item_embedding(x, keep=tf.ones([n])).numpy()
    present = model.item_tower.preference_present(x).numpy() > 0
    assert 0 < present.sum() < n  # some items have behaviour, some are cold
    expected = np.mean(np.sum((cold - warm) ** 2, axis=1)[present])
    assert float(parts["align_loss"]) == pytest.approx(expected, rel=1e-4)
    assert float(parts["loss"]) == pytest.approx(
        float(parts["pointwise_loss"]) + 2.0 * expected, rel=1e-4)
    # the three encodings share one pass over the features: its outputs are the model's own
    direct = model(x, training=False)
    for key in ("user_embedding", "item_embedding", "logit"):
        np.testing.assert_allclose(parts["outputs"][key].numpy(), direct[key].numpy(),
                                   rtol=1e-6, atol=1e-7)
    stats = train_model(cfg, features, labels, boundaries, tmp_path / "ckpt", None, item_ids)
    assert np.isfinite(stats["align_loss"]) and stats["align_loss"] > 0
