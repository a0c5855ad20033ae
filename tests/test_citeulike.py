"""The CiteULike benchmark on a tiny synthetic dataset in the real file formats, and the
precomputed preference features it relies on (config, presence mask, cold encoding, SQL)."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("KERAS_HOME", os.path.join(tempfile.gettempdir(), "dropoutnet-keras"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from dropoutnet.benchmarks import citeulike as cu  # noqa: E402
from dropoutnet.config import FeatureSpec, PipelineConfig  # noqa: E402
from dropoutnet.evaluation import metrics  # noqa: E402

N_USERS, N_ITEMS, N_TAGS = 12, 30, 15
COLD = list(range(20, 30))  # 0-based cold items


def write_dataset(root: Path, seed: int = 0) -> tuple[Path, Path]:
    """CiteULike-a-like files: two user groups liking two item groups, tags by group."""
    rng = np.random.default_rng(seed)
    data, split = root / "citeulike-a", root / "split"
    (split / "cold").mkdir(parents=True)
    data.mkdir()
    group = np.arange(N_ITEMS) % 2
    tags = [sorted(set(rng.choice(np.arange(g, N_TAGS, 2), 3).tolist())) for g in group]
    cites = [sorted(set(rng.choice(np.flatnonzero(group == g), 2).tolist()) - {i})
             for i, g in enumerate(group)]
    users = [sorted(set(rng.choice(np.flatnonzero(group == u % 2), 8, replace=False).tolist()))
             for u in range(N_USERS)]

    def counted(rows):
        return "\n".join(" ".join(map(str, [len(r), *r])) for r in rows) + "\n"

    (data / "item-tag.dat").write_text(counted(tags))
    (data / "citations.dat").write_text(counted(cites))
    (data / "users.dat").write_text(counted(users))
    train = [(u, i) for u, items in enumerate(users) for i in items if i not in COLD]
    test = [(u, i) for u, items in enumerate(users) for i in items if i in COLD]
    (split / "cold" / "train.csv").write_text("".join(f"{u + 1},{i + 1},1\n" for u, i in train))
    (split / "cold" / "test.csv").write_text("".join(f"{u + 1},{i + 1},1\n" for u, i in test))
    (split / "cold" / "test_item_ids.csv").write_text("".join(f"{i + 1}\n" for i in COLD))
    return data, split


@pytest.fixture
def dataset(tmp_path):
    return write_dataset(tmp_path)


def test_loader_parses_the_files(dataset):
    d = cu.load(*dataset)
    assert (d.n_users, d.n_items) == (N_USERS, N_ITEMS)
    assert d.tags.shape == (N_ITEMS, N_TAGS) or d.tags.shape[0] == N_ITEMS
    assert d.citations.shape == (N_ITEMS, N_ITEMS)
    assert (d.citations != d.citations.T).nnz == 0  # links are symmetric
    assert sorted(d.test_items.tolist()) == COLD
    assert d.train.min() >= 0 and not np.isin(d.train[:, 1], COLD).any()
    assert np.isin(d.test[:, 1], COLD).all()
    users = (dataset[0] / "users.dat").read_text().splitlines()
    first = [int(x) for x in users[0].split()[1:]]
    assert sorted(d.train[d.train[:, 0] == 0, 1].tolist() + d.test[d.test[:, 0] == 0, 1].tolist()
                  ) == first  # 1-based split ids map back to 0-based users.dat ids


def test_missing_file_is_named(dataset):
    (dataset[0] / "citations.dat").unlink()
    with pytest.raises(cu.CiteULikeDataError, match="citations.dat: file not found"):
        cu.load(*dataset)


@pytest.mark.parametrize("file,line,expected", [
    ("users.dat", "3 1 2", "count item item"),
    ("item-tag.dat", "2 x 4", "count tag tag"),
])
def test_malformed_dat_row_names_file_line_and_expectation(dataset, file, line, expected):
    path = dataset[0] / file
    lines = path.read_text().splitlines()
    lines[2] = line
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(cu.CiteULikeDataError) as err:
        cu.load(*dataset)
    msg = str(err.value)
    assert file in msg and "line 3" in msg and "expected" in msg and expected in msg


def test_malformed_split_row_names_file_line_and_expectation(dataset):
    path = dataset[1] / "cold" / "train.csv"
    lines = path.read_text().splitlines()
    lines[1] = "one,2,1"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(cu.CiteULikeDataError, match=r"train.csv, line 2: expected 'uid,iid,1'"):
        cu.load(*dataset)
    lines[1] = f"1,{N_ITEMS + 1},1"  # out of range
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(cu.CiteULikeDataError, match=r"train.csv, line 2: expected 1 <= uid"):
        cu.load(*dataset)


def test_recall_and_ndcg_on_a_hand_example():
    # user 0: relevant {0, 2}; ranking by score: 2, 1, 0, 3 -> recall@1 = 1/2, recall@3 = 1
    # user 1: relevant {3};    ranking: 0, 1, 2, 3          -> recall@1 = 0,   recall@3 = 0
    # user 2: nothing relevant -> not counted
    scores = np.array([[0.2, 0.5, 0.9, 0.1], [4.0, 3.0, 2.0, 1.0], [1, 2, 3, 4]])
    relevant = np.array([[1, 0, 1, 0], [0, 0, 0, 1], [0, 0, 0, 0]], bool)
    m = cu.ranking_metrics(scores, relevant, ks=(1, 3, 4))
    assert m["recall@1"] == pytest.approx((0.5 + 0) / 2)
    assert m["recall@3"] == pytest.approx((1.0 + 0) / 2)
    assert m["recall@4"] == pytest.approx((1.0 + 1.0) / 2)
    ndcg3_u0 = (1 + 1 / np.log2(4)) / (1 + 1 / np.log2(3))
    assert m["ndcg@3"] == pytest.approx(ndcg3_u0 / 2)
    # the same figures as the pipeline's per-user definitions
    ranked = [["2", "1", "0", "3"], ["0", "1", "2", "3"]]
    rel = [{"0", "2"}, {"3"}]
    for k in (1, 3, 4):
        assert m[f"recall@{k}"] == pytest.approx(np.mean(
            [metrics.recall_at_k(r, s, k) for r, s in zip(ranked, rel)]))
        assert m[f"ndcg@{k}"] == pytest.approx(np.mean(
            [metrics.ndcg_at_k(r, s, k) for r, s in zip(ranked, rel)]))


def test_als_gives_cold_items_zero_factors(dataset):
    d = cu.load(*dataset)
    u, v = cu.implicit_als(d.train, d.n_users, d.n_items, rank=4, iterations=3)
    assert u.shape == (N_USERS, 4) and v.shape == (N_ITEMS, 4)
    assert np.all(v[COLD] == 0) and np.all(np.abs(v[:20]).sum(axis=1) > 0)


def test_benchmark_end_to_end_on_tiny_data(dataset):
    settings = cu.BenchmarkSettings(
        content_dim=6, rank=4, als_iterations=2, training={"epochs": 1, "batch_size": 16},
        model={"embedding_dim": 4, "content_mlp": [8], "preference_mlp": [8], "tower_mlp": [8],
               "item_prior": True, "popularity_prior": 1.0,  # fitted at equal exposure
               "losses": {"distill_weight": 1.0, "distill_features": ["u_factors", "i_factors"]}})
    result = cu.run_benchmark(*dataset, settings, seeds=2)
    assert {"dataset", "content", "model", "baselines", "n_users", "n_items",
            "seconds"} <= set(result)
    assert result["content"] == "tags+citations" and result["n_items"] == len(COLD)
    assert result["n_users"] == N_USERS
    for block in (result, result["citations_only"]):
        assert set(block["baselines"]) == {"random", "content_popularity", "content_knn",
                                           "ridge_to_als", "ridge_to_als_normalised"}
        model = block["model"]  # the mean of 2 seeds, with their spread
        assert model["seeds"] == 2
        for k in cu.KS:
            assert len(model[f"recall@{k}_per_seed"]) == 2
            assert model[f"recall@{k}"] == pytest.approx(np.mean(model[f"recall@{k}_per_seed"]),
                                                         abs=1e-4)
            assert model[f"recall@{k}_std"] >= 0
        for figures in [model, *block["baselines"].values()]:
            assert {f"{m}@{k}{ci}" for k in cu.KS for m, ci in (
                ("recall", ""), ("recall", "_ci"), ("ndcg", ""))} <= set(figures)
            for k in cu.KS:  # each recall inside its bootstrap interval over the test users
                lo, hi = figures[f"recall@{k}_ci"]  # rounded to 4 decimals
                assert 0.0 <= lo <= hi <= 1.0
                assert lo - 1e-4 <= figures[f"recall@{k}"] <= hi + 1e-4
                assert 0.0 <= figures[f"ndcg@{k}"] <= 1.0
        # every cold item is ranked: recall@100 covers all 10 candidates
        assert block["model"]["recall@100"] == pytest.approx(1.0)
        strongest = block["strongest_baseline"]
        assert set(strongest) == {f"recall@{k}" for k in cu.KS}
        for key, name in strongest.items():
            assert block["baselines"][name][key] == max(b[key] for b in block["baselines"].values())
    json.dumps(result)
    report = cu.format_report(result)
    assert "strongest baseline: recall@20 " in report and "ridge_to_als_normalised" in report
    assert "recall@20 [95% CI]" in report


def test_validation_split_is_carved_from_the_training_pairs(dataset):
    d = cu.load(*dataset)
    train, test, held = cu.validation_split(d, share=0.25, seed=3)
    assert len(train) + len(test) == len(d.train)
    assert not np.isin(held, d.test_items).any()          # never a test item
    assert not np.isin(train[:, 1], held).any()            # pseudo-cold: no training pair
    assert set(test[:, 1]) <= set(held)
    np.testing.assert_array_equal(cu.validation_split(d, 0.25, seed=3)[2], held)  # seeded
    with pytest.raises(ValueError, match="share must be between 0 and 1"):
        cu.validation_split(d, share=0.0)


def test_tune_on_the_validation_split_prints_each_trial(dataset):
    settings = cu.BenchmarkSettings(
        content_dim=6, rank=4, als_iterations=2, training={"epochs": 1, "batch_size": 16},
        model={"embedding_dim": 4, "content_mlp": [8], "preference_mlp": [8], "tower_mlp": [8],
               "losses": {"distill_features": ["u_factors", "i_factors"]}})
    lines = []
    result = cu.tune(*dataset, trials=2, settings=settings, seed=1, k=3, share=0.25,
                     echo=lines.append)
    assert lines[0].startswith("validation split: ") and len(lines) == 3
    assert lines[1].startswith("trial 1/2: recall@3 ") and lines[2].startswith("trial 2/2: ")
    assert [t["trial"] for t in result["trials"]] == [0, 1]
    # trial 0 is the settings it started from; the search covers the distillation weight
    assert result["trials"][0]["params"]["distill_weight"] == 0.0
    assert result["base_value"] == result["trials"][0]["value"]
    best = result["best"]
    assert best["value"] == max(t["value"] for t in result["trials"])
    assert set(best["settings"]) == {"model", "training"}
    assert "distill_weight" in best["settings"]["model"]["losses"]


def test_cli_benchmark(dataset, capsys):
    from dropoutnet.cli import main

    assert main(["benchmark", "citeulike", "--path", str(dataset[0]), "--split",
                 str(dataset[1]), "--epochs", "1", "--content", "citations", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["content"] == "citations" and "citations_only" not in out
    assert main(["benchmark", "citeulike", "--path", str(dataset[0] / "nope"), "--split",
                 str(dataset[1])]) == 1
    assert "no such folder" in capsys.readouterr().err
    assert main(["benchmark", "citeulike", "--path", str(dataset[0]), "--split",
                 str(dataset[1]), "--tune", "0"]) == 1
    assert "--tune must be at least 1 (the number of trials), got 0" in capsys.readouterr().err


# --- precomputed preference features --------------------------------------------------------


def test_precomputed_preference_config():
    ok = FeatureSpec(name="i_cf", group="item_preference", kind="vector", dim=4,
                     source="items.cf_factors", precomputed=True)
    assert ok.source_column == "cf_factors"
    with pytest.raises(ValueError, match="needs a preference"):  # unchanged without the flag
        FeatureSpec(name="i_cf", group="item_preference", kind="vector", dim=4,
                    source="items.cf_factors")
    with pytest.raises(ValueError, match="needs source: table.column"):
        FeatureSpec(name="i_cf", group="item_preference", kind="vector", dim=4, precomputed=True)
    with pytest.raises(ValueError, match="only for preference groups"):
        FeatureSpec(name="i_cf", group="item_content", kind="vector", dim=4,
                    source="items.cf_factors", precomputed=True)
    with pytest.raises(ValueError, match="kind 'vector' or 'numeric'"):
        FeatureSpec(name="i_cf", group="item_preference", kind="tags",
                    source="items.cf_factors", precomputed=True)


def test_precomputed_preference_is_read_like_a_content_column():
    """The daily pipeline's SQL reads a precomputed preference column from its source table."""
    import datetime as dt

    from helpers import demo_config_data

    from dropoutnet.data import feature_queries

    data = demo_config_data()
    data["features"].append({"name": "i_cf", "group": "item_preference", "kind": "vector",
                             "dim": 4, "source": "item_text.cf_factors", "precomputed": True})
    cfg = PipelineConfig.model_validate(data)
    ctx = feature_queries.template_context(cfg, sides=("item",))
    assert "i_cf" in [f.name for f in ctx["content"]["item"]]
    text, _ = feature_queries.features_query(cfg, "item", dt.date(2026, 11, 20), {})
    assert 't."cf_factors" as "i_cf"' in text


def test_zero_or_missing_precomputed_vector_is_cold():
    import tensorflow as tf

    from dropoutnet.config import ModelConfig
    from dropoutnet.model.dropoutnet import build_model

    specs = cu._feature_specs(content_dim=3, rank=4)
    model = build_model(specs, ModelConfig(embedding_dim=4, content_mlp=[8], preference_mlp=[8],
                                           tower_mlp=[8]), {}, seed=1)
    rng = np.random.default_rng(0)
    factors = np.stack([rng.normal(size=4), np.zeros(4), np.full(4, np.nan),
                        [0.0, 0.0, 0.3, 0.0]]).astype(np.float32)
    x = {"i_content": tf.constant(rng.normal(size=(4, 3)), tf.float32),
         "i_factors": tf.constant(factors)}
    present = model.item_tower.preference_present(x).numpy()
    np.testing.assert_array_equal(present, [1.0, 0.0, 0.0, 1.0])
    # a cold row (zeros / NaN) is encoded exactly like a warm row whose preference is dropped
    warm_dropped = model.item_embedding({**x, "i_factors": tf.constant(factors[[0, 0, 0, 0]])},
                                        keep=tf.zeros([4])).numpy()
    cold = model.item_embedding(x).numpy()
    np.testing.assert_allclose(cold[1:3], warm_dropped[1:3], atol=1e-6)
    assert np.all(np.isfinite(cold))
    assert not np.allclose(cold[0], warm_dropped[0])
