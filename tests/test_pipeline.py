"""The daily task chain without Airflow, on tiny generated data: two bizdates, warm start,
retrieval, reruns and the CLI's errors.  Real Postgres, real TensorFlow."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from helpers import pipeline_env, write_config

from dropoutnet import cli, pipeline
from dropoutnet.core.errors import MissingDataError

END = dt.date(2026, 11, 20)
DAY1, DAY2 = END - dt.timedelta(days=1), END


@pytest.fixture(scope="module")
def env(database_url, tmp_path_factory):
    """Tiny data in its own schemas; DROPOUTNET_* pointing the pipeline at them."""
    with pipeline_env(database_url, tmp_path_factory.mktemp("pipeline"), "pipe", END,
                      dict(n_users=300, n_items=150, n_authors=20, days=8,
                           new_items_per_day=25, seed=3),
                      cold_start_recall={"train_days": 5},
                      training={"epochs": 1, "batch_size": 256},
                      retrieval={"candidate_window_days": 5},
                      evaluation={"k": [5, 10], "warm_holdout_share": 0.3,
                                  "gate": {"metric": "recall@10", "tolerance": 1.0}}) as e:
        yield e

def query(env, sql):
    with env["conn"].cursor() as cur:
        cur.execute(sql)
        return cur.fetchall()


def run_cli(*args):
    proc = subprocess.run([sys.executable, "-m", "dropoutnet.cli", *args],
                          capture_output=True, text=True, timeout=120)
    return proc.returncode, proc.stdout, proc.stderr


def test_recall_before_any_version_says_how_to_make_one(env):
    code, out, err = run_cli("recall", "--user-id", "u000001")
    assert code == 1 and "has no active version yet" in err and "dropoutnet run" in err
    assert "Traceback" not in err


def test_two_bizdates_warm_start_and_recall(env, caplog):
    first = pipeline.run(DAY1.isoformat())
    assert first["train"]["warm_started"] is False
    assert first["samples"]["train"]["samples"] > 0
    assert first["samples"]["eval"]["cold_items"]["samples"] > 0
    with caplog.at_level("INFO"):
        second = pipeline.run(DAY2.isoformat())
    assert second["train"]["warm_started"] is True
    assert "warm start" in caplog.text.lower()

    s = env["schema"]
    assert query(env, f"select model_version from {s}.active_version") == [("20261120",)]
    versions = query(env, f"select model_version, count(*) from {s}.item_embeddings "
                          "group by 1 order by 1")
    assert [v for v, _ in versions] == ["20261119", "20261120"]
    # the item partition of each version carries its own HNSW index
    indexes = query(env, f"select indexdef from pg_indexes where schemaname = '{s}' "
                         "and tablename = 'item_embeddings_p20261120'")
    assert any("hnsw" in d and "vector_ip_ops" in d for (d,) in indexes)

    metrics = second["evaluate"]
    assert metrics["bizdate"] == "2026-11-20" and metrics["model_version"] == "20261120"
    assert set(metrics["splits"]) == {"cold_items", "warm_items", "cold_users", "cold_both"}
    for split, figures in metrics["splits"].items():
        if split == "cold_both" and not figures["users"]:
            continue  # the tiny data may have no new user clicking a new item
        for key in ("auc", "recall@5", "recall@10", "ndcg@10", "samples", "users", "candidates"):
            assert key in figures, (split, key)
        assert figures["users"] > 0 and figures["candidates"] > 0, split
        assert 0.0 <= figures["recall@10"] <= 1.0 and 0.0 <= figures["auc"] <= 1.0
        assert {"random", "popularity", "content_popularity", "content_knn",
                "ridge_to_factors"} <= set(figures["baselines"])
        # a bootstrap interval over the split's users beside every recall of the model and of
        # the baselines (random's recall is an exact expectation: none there)
        for name, f in [("model", figures), *figures["baselines"].items()]:
            for k in (5, 10):
                if name in ("random", "oracle"):
                    assert f"recall@{k}_ci" not in f, (split, name)
                    continue
                lo, hi = f[f"recall@{k}_ci"]
                assert 0.0 <= lo <= f[f"recall@{k}"] <= hi <= 1.0, (split, name, k)
        # the strongest baseline per K: the best recall among the baselines but the oracle
        strongest = figures["strongest_baseline"]
        assert set(strongest) == {"recall@5", "recall@10"}, split
        for key, name in strongest.items():
            assert name not in (None, "oracle"), (split, key)
            assert figures["baselines"][name][key] == max(
                f[key] for b, f in figures["baselines"].items() if b != "oracle")
    # a cold user has no ALS factors: ridge -> factors ranks nothing for them
    assert metrics["splits"]["cold_users"]["baselines"]["ridge_to_factors"]["recall@10"] == 0.0
    # each split ranks its own candidates: new items for cold items, older ones otherwise
    assert metrics["splits"]["cold_items"]["candidates"] == query(
        env, "select count(*) from pipe_raw.sv_items where (create_time at time zone 'utc')::date = '2026-11-20'")[0][0]

    # deploy put both towers of the live version in TF Serving's layout
    for model in ("sv_dropoutnet_item", "sv_dropoutnet_user"):
        assert second["deploy"]["deployed"][model] == str(env["home"] / "serving" / model / "20261120")
        assert (env["home"] / "serving" / model / "20261120" / "saved_model.pb").exists()
        assert (env["home"] / "serving" / model / "20261119" / "saved_model.pb").exists()

    user = query(env, f"select user_id from {s}.user_embeddings "
                      "where model_version = '20261120' order by user_id limit 1")[0][0]
    code, out, err = run_cli("recall", "--user-id", user, "--top-n", "7", "--json")
    assert code == 0, err
    answer = json.loads(out)
    assert answer["user_id"] == user and answer["model_version"] == "20261120"
    assert len(answer["items"]) == 7
    scores = [i["score"] for i in answer["items"]]
    assert scores == sorted(scores, reverse=True)

    code, out, _ = run_cli("metrics", "--bizdate", DAY2.isoformat(), "--json")
    assert code == 0 and json.loads(out)["splits"] == metrics["splits"]
    code, out, _ = run_cli("metrics", "--bizdate", DAY2.isoformat())
    assert code == 0 and "cold users (no event before the bizdate)" in out
    lo, hi = metrics["splits"]["cold_items"]["recall@10_ci"]
    assert f"[{lo:.3f}, {hi:.3f}]" in out and "recall@10 [95% CI]" in out
    cold_strongest = metrics["splits"]["cold_items"]["strongest_baseline"]
    assert (f"strongest baseline: recall@5 {cold_strongest['recall@5']}, "
            f"recall@10 {cold_strongest['recall@10']}") in out


def test_embeddings_streamed_in_small_chunks_equal_the_published_ones(env):
    """The embedding step streams features and COPYs chunk by chunk: embedding a published
    bizdate's users 7 at a time, with the same run, gives exactly its stored vectors."""
    from dropoutnet.config import load_config
    from dropoutnet.steps.embeddings import write_embeddings

    s = env["schema"]
    published = query(env, f"select user_id, embedding::text from {s}.user_embeddings "
                           "where model_version = '20261119' order by 1")
    try:
        result = write_embeddings(load_config(env["config"]), DAY1, "user", env["url"],
                                  chunk_rows=7)
        assert result["users"] == len(published) > 3 * 7
        chunked = query(env, f"select user_id, embedding::text from "
                             f"{s}.user_embeddings_p20261119_candidate order by 1")
        assert [u for u, _ in chunked] == [u for u, _ in published]
        # the same tower; another batch size changes only the float summation order
        np.testing.assert_allclose([json.loads(v) for _, v in chunked],
                                   [json.loads(v) for _, v in published], rtol=1e-5, atol=1e-6)
    finally:
        query_ddl = f"drop table if exists {s}.user_embeddings_p20261119_candidate"
        with env["conn"].cursor() as cur:
            cur.execute(query_ddl)


def test_rerun_replaces_exactly_the_bizdate(env):
    s = env["schema"]
    snapshot = f"""select 'samples', dt::text, count(*) from {s}.samples group by 2
                   union all select 'users', model_version, count(*) from {s}.user_embeddings group by 2
                   union all select 'items', model_version, count(*) from {s}.item_embeddings group by 2
                   order by 1, 2"""
    before = query(env, snapshot)
    day1_metrics = query(env, f"select metrics from {s}.metrics where dt = '{DAY1}'")
    pipeline.run(DAY2.isoformat(), tasks=("samples", "user_embeddings", "item_embeddings",
                                          "evaluate", "publish"))
    assert query(env, snapshot) == before
    assert query(env, f"select metrics from {s}.metrics where dt = '{DAY1}'") == day1_metrics
    assert query(env, f"select count(*) from {s}.metrics") == [(2,)]


def test_rerun_of_the_live_bizdate_changes_nothing_live_until_published(env):
    s = env["schema"]
    vectors = {side: f"""select {side}_id, embedding::text from {s}.{side}_embeddings
                         where model_version = '20261120' order by 1""" for side in ("user", "item")}
    live = {side: query(env, q) for side, q in vectors.items()}
    user = live["user"][0][0]
    def recall_of(user: str) -> dict:  # what the user is served (each answer has its own id)
        answer = json.loads(run_cli("recall", "--user-id", user, "--json")[1])
        answer.pop("request_id")
        return answer

    recall_before = recall_of(user)
    published = Path(query(env, f"select export_path from {s}.model_versions "
                                "where model_version = '20261120'")[0][0])
    weights = published / "item" / "variables" / "variables.data-00000-of-00001"
    tower_before = weights.read_bytes()

    # retrain the live bizdate with another config: a different model
    other = write_config(env["home"] / "other.yaml", storage={"schema": s},
                         cold_start_recall={"train_days": 5},
                         training={"epochs": 2, "batch_size": 128, "seed": 7},
                         retrieval={"candidate_window_days": 5},
                         evaluation={"k": [5, 10], "warm_holdout_share": 0.3,
                                     "gate": {"metric": "recall@10", "tolerance": 1.0}})
    result = pipeline.run(DAY2.isoformat(), config_path=str(other),
                          tasks=("train", "export", "user_embeddings", "item_embeddings",
                                 "evaluate"))
    # readers of the live version see exactly what they saw, towers included
    assert {side: query(env, q) for side, q in vectors.items()} == live
    assert recall_of(user) == recall_before
    assert weights.read_bytes() == tower_before
    candidate = query(env, f"""select item_id, embedding::text
                               from {s}.item_embeddings_p20261120_candidate order by 1""")
    assert [i for i, _ in candidate] == [i for i, _ in live["item"]] and candidate != live["item"]
    # the gate compared the new run with the published one, on the same users and items
    gate = result["evaluate"]["gate"]
    assert gate["active_version"] == "20261120" and gate["active"] is not None

    pipeline.publish(DAY2.isoformat(), config_path=str(other), force_publish=True)
    assert query(env, vectors["item"]) == candidate
    assert query(env, f"select to_regclass('{s}.item_embeddings_p20261120_candidate')") == [(None,)]
    # the new run's towers are published under a new name; the old copy is never written over
    now = Path(query(env, f"select export_path from {s}.model_versions "
                          "where model_version = '20261120'")[0][0])
    assert now != published and result["train"]["run_id"] in str(now)
    assert weights.read_bytes() == tower_before
    assert (now / "item" / "variables" / "variables.data-00000-of-00001").read_bytes() \
        != tower_before


def test_warm_start_across_a_changed_feature_set(env):
    """A feature added and a vocabulary grown overnight: the run restores what still fits."""
    from helpers import demo_config_data

    features = demo_config_data()["features"]
    for f in features:
        if f["name"] == "u_city":
            f["buckets"] = 77  # the city vocabulary grew: a new embedding shape
    features.append({"name": "i_width", "group": "item_content", "kind": "numeric",
                     "source": "items.width"})
    changed = write_config(env["home"] / "changed.yaml", storage={"schema": env["schema"]},
                           features=features, cold_start_recall={"train_days": 5},
                           training={"epochs": 1, "batch_size": 256},
                           retrieval={"candidate_window_days": 5},
                           evaluation={"k": [5, 10], "gate": {"metric": "recall@10", "tolerance": 1.0}})
    result = pipeline.run(DAY2.isoformat(), config_path=str(changed),
                          tasks=("samples", "train", "export", "item_embeddings"))
    # the user embeddings of the published run do not pair with the new item embeddings
    with pytest.raises(MissingDataError, match="rerun the user_embeddings task"):
        pipeline.evaluate(DAY2.isoformat(), config_path=str(changed))
    with pytest.raises(MissingDataError, match="rerun the user_embeddings task"):
        pipeline.publish(DAY2.isoformat(), config_path=str(changed), force_publish=True)
    result.update(pipeline.run(DAY2.isoformat(), config_path=str(changed),
                               tasks=("user_embeddings", "evaluate")))
    train = result["train"]
    assert train["warm_started"] is True and train["restored_variables"] > 0
    skipped = train["warm_start"]["not_restored"]
    assert any("u_city" in k and "shape" in why for k, why in skipped.items())
    assert any("i_width" in k and why == "not in checkpoint" for k, why in skipped.items())
    assert not any("u_gender" in k for k in skipped)  # unchanged features carry over
    assert result["evaluate"]["splits"]["cold_items"]["candidates"] > 0


def test_recall_for_an_unknown_user_is_a_clear_error(env):
    code, out, err = run_cli("recall", "--user-id", "no-such-user")
    assert code == 1
    assert "user 'no-such-user' has no embedding in the active version 20261120" in err
    assert "Traceback" not in err


@pytest.mark.parametrize("bizdate, message", [
    ("2026-02-30", "bizdate '2026-02-30' is not a real date"),
    ("yesterday", "bizdate 'yesterday' is not a real date"),
    ("2999-01-01", "bizdate 2999-01-01 is after today"),
])
def test_bad_bizdate_writes_nothing(env, bizdate, message):
    s = env["schema"]
    before = query(env, f"select dt::text, count(*) from {s}.samples group by 1 order by 1")
    code = cli.main(["run", "--bizdate", bizdate])
    assert code == 1
    code, _, err = run_cli("run", "--bizdate", bizdate)
    assert code == 1 and message in err and "Traceback" not in err
    assert query(env, f"select dt::text, count(*) from {s}.samples group by 1 order by 1") == before


def test_metrics_of_a_bizdate_never_run(env):
    code, _, err = run_cli("metrics", "--bizdate", "2026-11-01")
    assert code == 1 and "no metrics for bizdate 2026-11-01" in err


def test_quality_gate_keeps_the_active_version_unless_forced(env):
    from dropoutnet.core.errors import QualityGateError

    s = env["schema"]
    conn = env["conn"]
    day1_run = query(env, f"select run_id from {s}.model_versions "
                          "where model_version = '20261119'")[0][0]
    with conn.cursor() as cur:
        # DAY1 active, and DAY2's stored evaluation says it is much worse on the same items
        cur.execute(f"update {s}.active_version set model_version = '20261119'")
        cur.execute(f"""update {s}.metrics set metrics = jsonb_set(metrics, '{{gate}}',
                        '{{"metric": "recall@10", "tolerance": 0.05, "active_version": "20261119",
                           "active_run": "{day1_run}", "new": 0.1, "active": 0.5}}')
                        where dt = '{DAY2}'""")
    # the other tests' config lets any version through (tiny data: the gate would be a coin
    # flip between two trainings); this one holds the default tolerance
    gated = write_config(env["home"] / "gated.yaml", storage={"schema": s},
                         cold_start_recall={"train_days": 5},
                         retrieval={"candidate_window_days": 5},
                         evaluation={"k": [5, 10], "warm_holdout_share": 0.3,
                                     "gate": {"metric": "recall@10", "tolerance": 0.05}})
    with pytest.raises(QualityGateError) as err:
        pipeline.publish(DAY2.isoformat(), config_path=str(gated))
    message = str(err.value)
    assert "recall@10 0.1000" in message and "20261119's 0.5000" in message
    assert "force_publish" in message
    assert query(env, f"select model_version from {s}.active_version") == [("20261119",)]
    assert query(env, f"select decision from {s}.runs where bizdate = '{DAY2}' "
                      "order by started_at desc limit 1") == [("rejected",)]

    code, _, stderr = run_cli("--config", str(gated), "run", "--bizdate", DAY2.isoformat(),
                              "--tasks", "publish")
    assert code == 1 and "quality gate" in stderr and "Traceback" not in stderr
    # a version that failed the gate is never deployed
    with pytest.raises(MissingDataError, match="is not the active version"):
        pipeline.deploy(DAY2.isoformat())
    assert query(env, f"select model_version from {s}.active_version") == [("20261119",)]

    result = pipeline.publish(DAY2.isoformat(), config_path=str(gated), force_publish=True)
    assert result["gate"] == "failed, forced"
    assert query(env, f"select model_version from {s}.active_version") == [("20261120",)]


def test_a_model_of_another_vector_size_is_refused_before_writing(env):
    """The embedding tables hold one vector size; a config whose model makes another (a
    larger embedding_dim, or the item prior's extra dimension) gets the fix, and the stored
    versions stay as they are; evaluate refuses a config of the other vector type."""
    s = env["schema"]
    before = query(env, f"select model_version, count(*) from {s}.user_embeddings group by 1")
    other = env["config"].replace(".yaml", "-other.yaml")
    data = yaml.safe_load(open(env["config"]).read())
    data["model"]["embedding_dim"] += 4
    with open(other, "w") as f:
        yaml.safe_dump(data, f)
    stored = pipeline.load(env["config"]).model.vector_dim
    made = pipeline.load(other).model.vector_dim
    with pytest.raises(MissingDataError, match=rf"the embedding tables of schema '{s}' hold "
                       rf"vector\({stored}\) but this config's model makes vector\({made}\) "
                       r"\(model.embedding_dim \d+.*\): set storage.schema to a new schema"):
        pipeline.user_embeddings(DAY2.isoformat(), other)
    # evaluate's queries cast to the config's vector type: the other type is refused before
    # anything is computed or stored
    data["model"]["embedding_dim"] -= 4
    data["storage"]["vector_type"] = "halfvec"
    with open(other, "w") as f:
        yaml.safe_dump(data, f)
    stored_metrics = f"select dt, computed_at, metrics::text from {s}.metrics order by 1"
    metrics = query(env, stored_metrics)
    with pytest.raises(MissingDataError, match=rf"hold vector\({stored}\) but this config's "
                       r"storage.vector_type is 'halfvec'"):
        pipeline.evaluate(DAY2.isoformat(), other)
    assert metrics and query(env, stored_metrics) == metrics
    assert query(env, f"select model_version, count(*) from {s}.user_embeddings group by 1") \
        == before
