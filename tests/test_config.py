"""Config validation: every mistake is named with its key and the allowed values."""

from __future__ import annotations

import pytest
from helpers import DEMO_CONFIG, demo_config_data, merge, write_config

from dropoutnet.config import ConfigError, load_config


def test_demo_config_is_valid():
    cfg = load_config(DEMO_CONFIG)
    assert cfg.cold_start_recall.model_type == "dropoutnet"
    assert cfg.cold_start_recall.label.type == "CLASSIFICATION"
    assert cfg.cold_start_recall.train_days == 14
    assert {f.group for f in cfg.features} == {
        "user_content", "user_preference", "item_content", "item_preference"}


def _load_with(tmp_path, mutate):
    data = demo_config_data()
    mutate(data)
    path = tmp_path / "pipeline.yaml"
    import yaml

    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError) as err:
        load_config(path)
    return str(err.value)


def test_unknown_group_names_the_key_and_the_allowed_values(tmp_path):
    msg = _load_with(tmp_path, lambda d: d["features"][0].update(group="user_contnet"))
    assert "features.0.group" in msg
    assert "unknown group 'user_contnet'" in msg
    assert "user_content, user_preference, item_content, item_preference" in msg


def test_unknown_kind(tmp_path):
    msg = _load_with(tmp_path, lambda d: d["features"][1].update(kind="text"))
    assert "features.1.kind" in msg and "unknown kind 'text'" in msg
    assert "categorical, numeric, tags, vector" in msg


def test_missing_raw_table(tmp_path):
    msg = _load_with(tmp_path, lambda d: d["raw"].pop("authors"))
    assert "raw.authors: missing required key" in msg


def test_missing_role_column(tmp_path):
    msg = _load_with(tmp_path, lambda d: d["raw"]["events"]["columns"].pop("event_time"))
    assert "raw.events.columns is missing ['event_time']" in msg


def test_unknown_key_is_rejected(tmp_path):
    msg = _load_with(tmp_path, lambda d: d["model"].update(embeding_dim=8))
    assert "model.embeding_dim: unknown key" in msg


def test_model_type_must_be_dropoutnet(tmp_path):
    msg = _load_with(tmp_path, lambda d: d["cold_start_recall"].update(model_type="dssm"))
    assert "cold_start_recall.model_type" in msg and "'dssm'" in msg


def test_feature_source_table_must_be_a_raw_table(tmp_path):
    msg = _load_with(tmp_path, lambda d: d["features"][0].update(source="people.gender"))
    assert "source 'people.gender'" in msg and "events, items, authors, item_text, users" in msg


def test_preference_feature_needs_a_preference_block(tmp_path):
    def mutate(d):
        d["features"].append({"name": "x", "group": "item_preference", "kind": "numeric",
                              "source": "items.duration"})
    assert "needs a preference" in _load_with(tmp_path, mutate)


def test_all_loss_weights_zero_is_rejected(tmp_path):
    msg = _load_with(tmp_path, lambda d: d["model"]["losses"].update(
        pointwise_weight=0, pairwise_weight=0, softmax_weight=0))
    assert "model.losses: every loss weight is 0" in msg
    assert "distill_weight" in msg


def test_item_prior_with_cosine_normalization_is_rejected(tmp_path):
    msg = _load_with(tmp_path, lambda d: d["model"].update(item_prior=True,
                                                           normalization="cosine"))
    assert "model: item_prior: true cannot be held with normalization: cosine" in msg
    assert "set model.normalization to l2 or none" in msg
    msg = _load_with(tmp_path, lambda d: d["model"].update(normalization="unit"))
    assert "model.normalization" in msg and "'l2', 'none' or 'cosine'" in msg


def test_popularity_prior_without_an_item_prior_is_rejected(tmp_path):
    msg = _load_with(tmp_path, lambda d: d["model"].update(item_prior=False,
                                                           popularity_prior=1.0))
    assert "popularity_prior needs item_prior: true" in msg
    assert "model.item_prior: true, or model.popularity_prior: 0" in msg
    msg = _load_with(tmp_path, lambda d: d["model"].update(popularity_prior=-1))
    assert "model.popularity_prior" in msg


def _with_factors(d, user_dim=8, item_dim=8):
    d["features"] += [
        {"name": "u_factors", "group": "user_preference", "kind": "vector", "dim": user_dim,
         "precomputed": True, "source": "users.factors"},
        {"name": "i_factors", "group": "item_preference", "kind": "vector", "dim": item_dim,
         "precomputed": True, "source": "items.factors"}]


def test_factor_prior_needs_preference_vectors_and_room_for_them(tmp_path):
    msg = _load_with(tmp_path, lambda d: d["model"].update(factor_prior=1.0))
    assert "factor_prior needs the preference vectors it maps content to" in msg
    assert "set model.losses.distill_features: [user factors, item factors]" in msg
    msg = _load_with(tmp_path, lambda d: d["model"].update(
        factor_prior=1.0, item_prior=False, normalization="cosine",
        losses={"distill_features": ["u_factors", "i_factors"]}))
    assert "factor_prior cannot be held with normalization: cosine" in msg
    msg = _load_with(tmp_path, lambda d: d["model"].update(factor_prior=-0.5))
    assert "model.factor_prior" in msg


def test_factor_prior_feature_must_be_an_item_content_guess_of_the_factors(tmp_path):
    msg = _load_with(tmp_path, lambda d: d["model"].update(factor_prior_feature="i_title_emb"))
    assert "factor_prior_feature is the factor prior's guess for new items" in msg
    assert "set model.factor_prior above 0" in msg

    def wrong(d):
        _with_factors(d)  # 8-dim factors; i_title_emb is a 16-dim item content vector
        d["model"].update(factor_prior=1.0, factor_prior_feature="i_title_emb",
                          losses={"distill_features": ["u_factors", "i_factors"]})
    msg = _load_with(tmp_path, wrong)
    assert "model.factor_prior_feature 'i_title_emb' must be an item_content feature" in msg
    assert "kind: vector and dim 8 (a guess of 'i_factors')" in msg


def test_popularity_features_must_be_item_content_features_of_the_prior(tmp_path):
    msg = _load_with(tmp_path, lambda d: d["model"].update(popularity_features=["i_cate1"]))
    assert "popularity_features are the popularity prior's inputs" in msg
    assert "set model.popularity_prior above 0" in msg
    for names, named in ((["i_cate1", "u_gender"], "'u_gender'"), (["nope"], "'nope'"),
                         (["i_age_days"], "'i_age_days'")):
        def wrong(d):
            d["features"].append({"name": "i_age_days", "group": "item_content",
                                  "kind": "numeric", "source": "items.create_time",
                                  "age": True})
            d["model"].update(popularity_prior=1.0, popularity_features=names)
        msg = _load_with(tmp_path, wrong)
        assert f"model.popularity_features names {named}, which is not an item_content " \
               "feature" in msg
    msg = _load_with(tmp_path, lambda d: d["model"].update(
        popularity_prior=1.0, popularity_features=["i_cate1", "i_cate1"]))
    assert "model.popularity_features names a feature twice" in msg
    msg = _load_with(tmp_path, lambda d: d["model"].update(
        popularity_prior=1.0, popularity_features=[]))
    assert "model.popularity_features" in msg


def test_distill_features_must_be_factors_of_the_same_dimension(tmp_path):
    def wrong_dim(d):
        _with_factors(d, item_dim=6)
        d["model"]["losses"].update(distill_weight=1.0,
                                    distill_features=["u_factors", "i_factors"])
    msg = _load_with(tmp_path, wrong_dim)
    assert "model.losses.distill_features: 'u_factors' has dim 8 but 'i_factors' has dim 6" \
        in msg

    def not_a_factor(d):
        _with_factors(d)
        d["model"]["losses"].update(distill_weight=1.0, distill_features=["u_factors", "i_ctr_7d"])
    msg = _load_with(tmp_path, not_a_factor)
    assert "distill_features names 'i_ctr_7d' as the item vector" in msg
    assert "kind: vector and precomputed: true" in msg

    msg = _load_with(tmp_path, lambda d: d["model"]["losses"].update(distill_weight=1.0))
    assert "model.losses: distill_weight > 0 needs distill_features" in msg


def test_age_feature_is_numeric_content(tmp_path):
    msg = _load_with(tmp_path, lambda d: d["features"].append(
        {"name": "i_age", "group": "item_content", "kind": "categorical",
         "source": "items.create_time", "age": True}))
    assert "age: true is for numeric content features" in msg


def test_warm_holdout_share_out_of_range_is_rejected(tmp_path):
    msg = _load_with(tmp_path, lambda d: d.setdefault("evaluation", {}).update(
        warm_holdout_share=0.9))
    assert "evaluation.warm_holdout_share" in msg and "0.5" in msg


def _load_ok(tmp_path, mutate):
    data = demo_config_data()
    mutate(data)
    path = tmp_path / "ok.yaml"
    import yaml

    path.write_text(yaml.safe_dump(data))
    return load_config(path)


def test_sampled_negatives_are_off_by_default_and_validated(tmp_path):
    assert load_config(DEMO_CONFIG).samples.sampled_negatives is None
    on = _load_ok(tmp_path, lambda d: d.update(samples={"sampled_negatives": {"per_user_day": 5}}))
    assert (on.samples.sampled_negatives.per_user_day, on.samples.sampled_negatives.seed) == (5, 0)
    for bad in (0, -3, 1001, 2.5, "10", True, None):
        msg = _load_with(tmp_path, lambda d, bad=bad: d.update(
            samples={"sampled_negatives": {"per_user_day": bad}}))
        assert "samples.sampled_negatives.per_user_day: per_user_day must be an integer from " \
               "1 to 1000" in msg, (bad, msg)
        assert f"got {bad!r}" in msg and "remove samples.sampled_negatives" in msg
    msg = _load_with(tmp_path, lambda d: d.update(samples={"sampled_negatives": {}}))
    assert "samples.sampled_negatives.per_user_day: missing required key" in msg
    msg = _load_with(tmp_path, lambda d: d.update(
        samples={"sampled_negatives": {"per_user_day": 5, "ratio": 2}}))
    assert "samples.sampled_negatives.ratio: unknown key" in msg
    msg = _load_with(tmp_path, lambda d: d.update(samples={"negatives": 5}))
    assert "samples.negatives: unknown key" in msg


def test_softmax_negatives_must_be_below_the_batch_size(tmp_path):
    def mutate(n, batch):
        def f(d):
            d["model"]["losses"]["softmax_negatives"] = n
            d["training"]["batch_size"] = batch
        return f

    msg = _load_with(tmp_path, mutate(512, 256))
    assert "softmax_negatives (512) must be less than training.batch_size (256)" in msg
    msg = _load_with(tmp_path, mutate(256, 256))
    assert "softmax_negatives (256) must be less than training.batch_size (256)" in msg
    assert _load_ok(tmp_path, mutate(255, 256)).model.losses.num_negatives == 255
    assert _load_ok(tmp_path, mutate("all", 256)).model.losses.num_negatives is None
    msg = _load_with(tmp_path, mutate(0, 256))
    assert "model.losses.softmax_negatives" in msg


def test_softmax_temperature_is_read_as_the_scale(tmp_path):
    def temperature(d):
        d["model"]["losses"].pop("softmax_scale", None)
        d["model"]["losses"]["softmax_temperature"] = 0.25
    assert _load_ok(tmp_path, temperature).model.losses.softmax_scale == pytest.approx(4.0)
    msg = _load_with(tmp_path, lambda d: d["model"]["losses"].update(
        softmax_temperature=0.25, softmax_scale=4.0))
    assert "set softmax_scale only" in msg


ITEM_ID_FEATURE = {"name": "i_id", "group": "item_content", "kind": "categorical",
                   "source": "items.item_id"}


def test_id_feature_in_a_content_group_is_rejected(tmp_path):
    msg = _load_with(tmp_path, lambda d: d["features"].append(dict(ITEM_ID_FEATURE)))
    assert "'i_id'" in msg and "reads 'items.item_id', the item's own id" in msg
    assert "leaks for cold items" in msg and "allow_id: true" in msg
    # the user's own id, and the item's id read from the text-embedding table
    msg = _load_with(tmp_path, lambda d: d["features"].append(
        {"name": "u_id", "group": "user_content", "kind": "categorical",
         "source": "users.user_id"}))
    assert "reads 'users.user_id', the user's own id" in msg
    msg = _load_with(tmp_path, lambda d: d["features"].append(
        {**ITEM_ID_FEATURE, "source": "item_text.item_id"}))
    assert "the item's own id" in msg

    # the id column is the one the raw config maps, whatever its name
    def renamed(d):
        d["raw"]["items"]["columns"]["item_id"] = "video_id"
        d["features"].append({**ITEM_ID_FEATURE, "source": "items.video_id"})
    assert "reads 'items.video_id', the item's own id" in _load_with(tmp_path, renamed)


def test_id_feature_allowed_with_a_warning(tmp_path, caplog):
    caplog.set_level("WARNING", logger="dropoutnet.config")
    cfg = _load_ok(tmp_path, lambda d: d["features"].append({**ITEM_ID_FEATURE,
                                                               "allow_id": True}))
    assert cfg.features[-1].allow_id is True
    assert "'i_id' (item_content) reads 'items.item_id', the item's own id" in caplog.text


def test_author_id_is_not_an_item_id_feature(tmp_path, caplog):
    caplog.set_level("WARNING", logger="dropoutnet.config")
    cfg = load_config(DEMO_CONFIG)
    assert any(f.source == "items.author_id" and f.group == "item_content"
               for f in cfg.features)
    assert "own id" not in caplog.text


def test_not_yaml_and_missing_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("cold_start_recall: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")


def test_write_config_roundtrip(tmp_path):
    cfg = load_config(write_config(tmp_path / "c.yaml", storage={"schema": "x1"}))
    assert cfg.storage.schema_ == "x1"
    assert merge({"a": {"b": 1}}, {"a": {"c": 2}}) == {"a": {"b": 1, "c": 2}}


def test_recall_limits_and_filter_columns_are_validated(tmp_path):
    def retrieval(**values):
        return lambda d: d["retrieval"].update(values)

    msg = _load_with(tmp_path, retrieval(filter_columns=["category_level1", "cat-2"]))
    assert "retrieval.filter_columns: filter column 'cat-2' is not a plain SQL identifier" in msg
    assert "raw items table" in msg
    msg = _load_with(tmp_path, retrieval(filter_columns=["topic", "topic"]))
    assert "filter columns must be unique; repeated: ['topic']" in msg
    msg = _load_with(tmp_path, retrieval(max_top_n=2000))
    assert "retrieval: retrieval.max_top_n (2000) is above retrieval.max_ef_search (1000)" in msg
    msg = _load_with(tmp_path, retrieval(top_n=50, max_top_n=20))
    assert "retrieval.top_n (50) is above retrieval.max_top_n (20)" in msg
    msg = _load_with(tmp_path, retrieval(max_ef_search=1001))
    assert "retrieval.max_ef_search" in msg and "1000" in msg
    msg = _load_with(tmp_path, retrieval(max_ef_search=200, max_top_n=100,
                                         hnsw={"ef_search": 300}))
    assert "retrieval.hnsw.ef_search (300) is above retrieval.max_ef_search (200)" in msg
    msg = _load_with(tmp_path, retrieval(api={"port": 8502, "tokens": "x"}))
    assert "retrieval.api.tokens: unknown key" in msg
    cfg = load_config(DEMO_CONFIG)
    assert cfg.retrieval.filter_columns == ["category_level1", "primary_type"]
    assert (cfg.retrieval.max_top_n, cfg.retrieval.max_ef_search) == (500, 1000)


def test_index_build_and_storage_settings_are_validated(tmp_path):
    def hnsw(**values):
        return lambda d: d["retrieval"].update(hnsw={**d["retrieval"]["hnsw"], **values})

    key = "retrieval.hnsw.maintenance_work_mem: "
    for bad in ("1gb", "1.5GB", "lots", True, [1]):
        msg = _load_with(tmp_path, hnsw(maintenance_work_mem=bad))
        assert (key + "must be a PostgreSQL size, a whole number and one of kB, MB, GB, TB "
                "(e.g. '1GB' or '512MB'; the units are case-sensitive, as PostgreSQL reads "
                f"them), or a whole number of megabytes (e.g. 1024); got {bad!r}") in msg, msg
    for bad in (0, "512kB", "3TB"):
        msg = _load_with(tmp_path, hnsw(maintenance_work_mem=bad))
        assert (key + "must be from 1MB to 2147483647kB (PostgreSQL's range for "
                f"maintenance_work_mem); got {bad!r}") in msg, msg
    msg = _load_with(tmp_path, hnsw(m=32, ef_construction=40))
    assert ("retrieval.hnsw: retrieval.hnsw.ef_construction (40) must be at least 2 * m "
            "(2 * 32 = 64), as pgvector requires; raise ef_construction or lower m") in msg
    msg = _load_with(tmp_path, hnsw(m=101))
    assert "retrieval.hnsw.m: Input should be less than or equal to 100" in msg
    msg = _load_with(tmp_path, lambda d: d["storage"].update(vector_type="float16"))
    assert "storage.vector_type: Input should be 'vector' or 'halfvec'; got 'float16'" in msg

    cfg = load_config(DEMO_CONFIG)
    assert cfg.storage.vector_type == "vector"
    assert cfg.retrieval.hnsw.maintenance_work_mem == "1GB"
    for given, size, kb in ((2048, "2048MB", 2048 * 1024), (" 2 GB", "2GB", 2 * 1024 ** 2),
                            ("1MB", "1MB", 1024)):
        path = write_config(tmp_path / "ok.yaml", storage={"vector_type": "halfvec"},
                            retrieval={"hnsw": {"m": 24, "ef_construction": 128,
                                                "maintenance_work_mem": given}})
        cfg = load_config(path)
        assert cfg.storage.vector_type == "halfvec"
        assert (cfg.retrieval.hnsw.maintenance_work_mem,
                cfg.retrieval.hnsw.maintenance_work_mem_kb) == (size, kb)


@pytest.mark.parametrize("url", ["model-service:8501", "ftp://model-service", "http://"])
def test_stream_service_url_must_be_http_with_a_host(tmp_path, url):
    msg = _load_with(tmp_path, lambda d: d.setdefault("stream", {}).update(service_url=url))
    assert "stream.service_url" in msg
    assert f"{url!r} is not an http(s) URL with a host" in msg
    assert "http://model-service:8501" in msg
