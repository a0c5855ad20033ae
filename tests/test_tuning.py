"""Model selection: the study runner, the pipeline's validation split and `dropoutnet tune`,
on tiny generated data in the real (embedded) Postgres with real TensorFlow training."""

from __future__ import annotations

import datetime as dt
import json

import psycopg2
import pytest
import yaml
from helpers import make_config, small_features, write_config

from dropoutnet import cli
from dropoutnet.config import load_config
from dropoutnet.data import synthetic
from dropoutnet.steps import samples
from dropoutnet.training import tuning

END = dt.date(2026, 11, 20)


# --- the study runner ---------------------------------------------------------------------


def _base(**training):
    cfg = make_config(training={"epochs": 2, **training})
    return cfg.model_dump(by_alias=True)


def test_study_starts_from_the_base_settings_and_prints_every_trial():
    lines: list[str] = []

    def objective(settings):  # a smooth figure peaking at learning rate 3e-3
        return 1.0 - abs(settings["training"]["learning_rate"] - 3e-3) * 100

    result = tuning.run_study(objective, _base(learning_rate=1e-3), trials=6, seed=5,
                              metric="recall@50", echo=lines.append)
    assert len(lines) == 6 and lines[0].startswith("trial 1/6: recall@50 0.8000")
    assert result["trials"][0]["params"]["learning_rate"] == pytest.approx(1e-3)
    assert result["trials"][0]["params"]["epochs"] == 2
    assert result["base_value"] == pytest.approx(0.8)
    best = result["best"]
    assert best["value"] == max(t["value"] for t in result["trials"])
    assert best["settings"]["training"]["learning_rate"] == pytest.approx(
        result["trials"][best["trial"]]["params"]["learning_rate"])
    # the same seed draws the same trials
    again = tuning.run_study(objective, _base(learning_rate=1e-3), trials=6, seed=5,
                             echo=lambda _: None)
    assert [t["params"] for t in again["trials"]] == [t["params"] for t in result["trials"]]


def test_the_first_trial_keeps_the_base_priors_weights():
    seen = []

    def objective(settings):
        seen.append(settings["model"]["popularity_prior"])
        return 0.5

    base = _base()
    base["model"].update(item_prior=True, popularity_prior=8.0)
    tuning.run_study(objective, base, trials=1, seed=0, echo=lambda _: None)
    assert seen == [8.0]
    base["model"]["popularity_prior"] = 3.0  # off the searched grid: its nearest choice
    tuning.run_study(objective, base, trials=1, seed=0, echo=lambda _: None)
    assert seen[-1] == 4.0


def test_a_failing_trial_is_recorded_and_the_study_goes_on():
    calls = []

    def objective(settings):
        calls.append(settings)
        if len(calls) == 2:
            raise RuntimeError("out of memory")
        return 0.5

    lines: list[str] = []
    result = tuning.run_study(objective, _base(), trials=3, seed=0, echo=lines.append)
    assert "failed (out of memory)" in lines[1]
    assert [t["value"] for t in result["trials"]] == [0.5, None, 0.5]


def test_each_trial_is_the_mean_of_its_training_seeds():
    seen = []

    def objective(settings):  # the figure moves with the seed as much as with the settings
        seen.append(settings["training"]["seed"])
        return settings["training"]["seed"] / 100

    lines: list[str] = []
    result = tuning.run_study(objective, _base(seed=7), trials=2, seed=0, metric="recall@20",
                              echo=lines.append, seeds=3)
    assert seen == [7, 8, 9, 7, 8, 9]  # the same seeds for every trial: a paired comparison
    for record in result["trials"]:
        assert record["per_seed"] == [0.07, 0.08, 0.09]
        assert record["value"] == pytest.approx(0.08)
    assert lines[0].startswith("trial 1/2: recall@20 0.0800 (seeds 0.0700 / 0.0800 / 0.0900)")
    # the chosen settings name no seed: the config's own stays
    assert "seed" not in result["best"]["settings"]["training"]
    one = tuning.run_study(objective, _base(seed=7), trials=1, seed=0, echo=lambda _: None)
    assert seen[-1] == 7 and "per_seed" not in one["trials"][0]


@pytest.mark.parametrize("seeds", [0, -1, True, 1.5])
def test_fewer_than_one_training_per_trial_is_refused(seeds):
    with pytest.raises(tuning.TuningError, match="the training seeds per trial must be at "
                                                 "least 1, got .*: pass --seeds N"):
        tuning.run_study(lambda s: 0.0, _base(), trials=2, seed=0, seeds=seeds)


@pytest.mark.parametrize("budget", [0, -3, True, 2.5])
def test_a_budget_below_one_trial_is_refused(budget):
    with pytest.raises(tuning.TuningError, match="the trial budget must be at least 1, got"):
        tuning.run_study(lambda s: 0.0, _base(), trials=budget, seed=0)


# --- the pipeline's validation split and `dropoutnet tune` --------------------------------------


@pytest.fixture(scope="module")
def env(database_url, tmp_path_factory):
    home = tmp_path_factory.mktemp("tuning")
    raw_schema, out_schema = "tune_raw", "tune_dn"
    conn = psycopg2.connect(database_url)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f"drop schema if exists {raw_schema} cascade; create schema {raw_schema}")
        cur.execute(f"drop schema if exists {out_schema} cascade; "
                    f"drop schema if exists {out_schema}_1d cascade")
    url = f"{database_url}&options=-csearch_path%3D{raw_schema},public"
    synthetic.generate(url, n_users=200, n_items=100, n_authors=15, days=6, end_date=END,
                     new_items_per_day=20, seed=4, schema=raw_schema)
    overrides = dict(storage={"schema": out_schema}, features=small_features(),
                     cold_start_recall={"train_days": 4},
                     training={"epochs": 1, "batch_size": 128},
                     model={"embedding_dim": 8, "content_mlp": [16], "preference_mlp": [8],
                            "tower_mlp": [16]},
                     evaluation={"k": [5, 10], "gate": {"metric": "recall@10", "tolerance": 1.0}})
    config = write_config(home / "pipeline.yaml", **overrides)
    cfg = load_config(config)
    samples.build_samples(cfg, END, url)
    mp = pytest.MonkeyPatch()
    mp.setenv("DROPOUTNET_DATABASE_URL", url)
    mp.setenv("DROPOUTNET_HOME", str(home))
    yield {"url": url, "config": config, "cfg": cfg, "home": home, "overrides": overrides}
    mp.undo()
    with conn.cursor() as cur:
        cur.execute(f"drop schema {raw_schema} cascade; drop schema if exists {out_schema} "
                    f"cascade; drop schema if exists {out_schema}_1d cascade")
    conn.close()


def test_validation_split_holds_out_yesterdays_new_items_whole(env):
    cfg, url = env["cfg"], env["url"]
    split = tuning.pipeline_validation(cfg, END, days=1, url=url)
    with psycopg2.connect(url) as conn, conn.cursor() as cur:
        cur.execute("select item_id from sv_items where create_time::date = %s",
                    (END - dt.timedelta(days=1),))
        yesterdays = {r[0] for r in cur.fetchall()}
    assert yesterdays and split.held_items > 0
    # no training row of a held-out item; the validation items are those items, cold
    assert not yesterdays & set(split.train["item_ids"])
    assert len(split.items["i_impressions_7d"]) == split.relevant.shape[1]
    assert all(v != v for v in split.items["i_impressions_7d"])  # NaN: no behaviour yet
    assert split.relevant.any(axis=1).all() and split.describe()["validation_users"] > 0
    with psycopg2.connect(url) as conn, conn.cursor() as cur:
        cur.execute(f'select count(*) from "{cfg.storage.schema_}".samples')
        total = cur.fetchone()[0]
    assert len(split.train["labels"]) + split.held_rows == total


def test_tune_command_writes_the_chosen_config(env, capsys):
    out = env["home"] / "tuned.yaml"
    code = cli.main(["--config", str(env["config"]), "tune", "--bizdate", END.isoformat(),
                     "--trials", "2", "--seed", "3", "--out", str(out)])
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert "validation split of 2026-11-20" in printed
    assert "trial 1/2: recall@10 " in printed and "trial 2/2: recall@10 " in printed
    assert f"wrote the config with the chosen settings to {out}" in printed
    trials = json.loads(out.with_suffix(".json").read_text())
    best = trials["best"]
    tuned = load_config(out)  # a valid pipeline config, the rest of it unchanged
    assert tuned.cold_start_recall == env["cfg"].cold_start_recall
    assert tuned.raw == env["cfg"].raw and tuned.features == env["cfg"].features
    for key, value in best["settings"]["training"].items():
        assert getattr(tuned.training, key) == value
    assert tuned.model.item_prior == best["settings"]["model"]["item_prior"]
    assert out.read_text().startswith("# ") and "recall@10" in out.read_text().splitlines()[1]
    assert yaml.safe_load(out.read_text())["model"]["embedding_dim"] == 8


def test_tune_bad_inputs_are_one_line_errors(env, capsys):
    base = ["--config", str(env["config"]), "tune", "--out", str(env["home"] / "x.yaml")]
    assert cli.main(base + ["--bizdate", END.isoformat(), "--trials", "0"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: the trial budget must be at least 1, got 0: pass --trials N")
    assert cli.main(base + ["--bizdate", END.isoformat(), "--trials", "2", "--seeds", "0"]) == 1
    assert capsys.readouterr().err.startswith(
        "error: the training seeds per trial must be at least 1, got 0: pass --seeds N")
    assert cli.main(base + ["--bizdate", "2026-11-12", "--trials", "1"]) == 1
    assert "samples has no partition for bizdate 2026-11-12: run the samples task" in \
        capsys.readouterr().err
    assert cli.main(base + ["--bizdate", END.isoformat(), "--trials", "1",
                            "--metric", "auc"]) == 1
    assert "--metric must be recall@K" in capsys.readouterr().err
    assert not (env["home"] / "x.yaml").exists()


def test_no_validation_split_is_named(env):
    # a one-day training window holds no exposure of the day before: nothing to validate on
    data = env["cfg"].model_dump(by_alias=True)
    data["storage"]["schema"] = env["cfg"].storage.schema_ + "_1d"
    data["cold_start_recall"]["train_days"] = 1
    cfg = type(env["cfg"]).model_validate(data)
    samples.build_samples(cfg, END, env["url"])
    with pytest.raises(tuning.TuningError, match="no validation split: no item created between "
                                                 "2026-11-19 and 2026-11-19 has a clicked sample"):
        tuning.pipeline_validation(cfg, END, days=1, url=env["url"])
