"""The model registry's rules: backfills never put an old model live, rollback, one run per
model at a time, every part of a version from one run, a gate that fails closed, warm start
within a gap.  Real Postgres, real TensorFlow, tiny generated data."""

from __future__ import annotations

import datetime as dt
import json
import socket
import subprocess
import sys
import threading
import time

import pytest
from helpers import make_config, pipeline_env, small_features, write_config

from dropoutnet import pipeline, registry
from dropoutnet.core.errors import MissingDataError, QualityGateError, RunLockError
from dropoutnet.registry import ActiveVersion, artifacts
from dropoutnet.steps.publish import check_gate

END = dt.date(2026, 11, 20)
DAY1, DAY2 = END - dt.timedelta(days=1), END
V1, V2 = "20261119", "20261120"


@pytest.fixture(scope="module")
def env(database_url, tmp_path_factory):
    with pipeline_env(database_url, tmp_path_factory.mktemp("registry"), "reg", END,
                      dict(n_users=200, n_items=100, n_authors=15, days=6,
                           new_items_per_day=20, seed=5),
                      features=small_features(), cold_start_recall={"train_days": 3},
                      training={"epochs": 1, "batch_size": 256},
                      retrieval={"candidate_window_days": 4},
                      evaluation={"k": [5, 10], "warm_holdout_share": 0.3,
                                  "gate": {"metric": "recall@10", "tolerance": 1.0}}) as e:
        e["cfg"] = pipeline.load(e["config"])
        yield e

def query(env, sql):
    with env["conn"].cursor() as cur:
        cur.execute(sql)
        return cur.fetchall()


def active(env):
    return query(env, f"select model_version from {env['schema']}.active_version")


def run_cli(*args):
    proc = subprocess.run([sys.executable, "-m", "dropoutnet.cli", *args],
                          capture_output=True, text=True, timeout=300)
    return proc.returncode, proc.stdout, proc.stderr


def test_a_backfilled_older_bizdate_is_kept_superseded_and_can_be_rolled_back_to(env, caplog):
    s = env["schema"]
    live = pipeline.run(DAY2.isoformat())
    assert live["publish"]["decision"] == "published" and active(env) == [(V2,)]

    # a backfill of the day before trains, evaluates and keeps its version, not live
    backfill = pipeline.run(DAY1.isoformat())
    assert backfill["publish"]["decision"] == "superseded"
    assert backfill["publish"]["superseded_by"] == V2 and backfill["publish"]["active"] is False
    assert "not_comparable" in backfill["evaluate"]["gate"]  # V2 trained on DAY1's exposures
    assert backfill["deploy"]["deployed"] == {}
    assert active(env) == [(V2,)]
    assert not (env["home"] / "serving" / "sv_dropoutnet_item" / V1).exists()
    assert query(env, f"select decision from {s}.runs where bizdate = '{DAY1}'") == [
        ("superseded",)]
    code, out, _ = run_cli("versions")
    assert code == 0 and f"* {V2}" in out and f"  {V1}" in out
    user = query(env, f"select user_id from {s}.user_embeddings where model_version = '{V2}' "
                      "order by 1 limit 1")[0][0]
    code, out, _ = run_cli("recall", "--user-id", user, "--json")
    assert code == 0 and json.loads(out)["model_version"] == V2

    # a rollback to a version that was never published changes nothing
    code, _, err = run_cli("rollback", "--to", "20261101")
    assert code == 1 and "version '20261101' was never published" in err
    assert f"{V2}, {V1}" in err and "Traceback" not in err
    assert active(env) == [(V2,)]

    # rollback to the superseded version: live, and deployed for the model service
    code, out, err = run_cli("rollback", "--to", V1)
    assert code == 0, err
    assert active(env) == [(V1,)]
    assert (env["home"] / "serving" / "sv_dropoutnet_item" / V1 / "saved_model.pb").exists()
    code, out, _ = run_cli("recall", "--user-id", user, "--json")
    assert code == 0 and json.loads(out)["model_version"] == V1

    # V2's gate figures were measured when nothing was live: not against V1, so refused
    with pytest.raises(QualityGateError, match="rerun the evaluate task"):
        pipeline.publish(DAY2.isoformat())
    assert active(env) == [(V1,)]
    again = pipeline.run(DAY2.isoformat(), tasks=("evaluate", "publish"), force_publish=True)
    assert again["evaluate"]["gate"]["active_version"] == V1
    assert again["evaluate"]["gate"]["active"] is not None  # V1 never trained on DAY2
    assert active(env) == [(V2,)]

    # make_live: a deliberate rollback through the pipeline, no gate
    result = pipeline.publish(DAY1.isoformat(), make_live=True)
    assert result["decision"] == "published" and result["replaces"] == V2
    assert active(env) == [(V1,)]
    caplog.clear()
    with caplog.at_level("INFO", logger="dropoutnet.recall.vectors"):
        pipeline.rollback(V2, actor="alice", source="airflow ui", reason="V1 was a test")
    assert active(env) == [(V2,)]
    # the version going live is read into shared buffers (pg_prewarm: the embedded server's;
    # another server without it is told how to add it)
    warmed = [r.getMessage() for r in caplog.records if "pg_prewarm" in r.getMessage()
              or r.getMessage().startswith(f"warmed version {V2}")]
    assert len(warmed) == 1 and ("pg_prewarm is not installed" in warmed[0] or int(
        warmed[0].split(": ", 1)[1].split()[0]) > 0), warmed

    # every change of the active version left one row: what, by whom, how and why
    with env["conn"].cursor() as cur:
        history = registry.activations(cur, env["cfg"])
    assert [(h["action"], h["from_version"], h["to_version"], h["source"]) for h in history] == [
        ("rollback", V1, V2, "airflow ui"), ("make_live", V2, V1, "cli"),
        ("publish", V1, V2, "cli"), ("rollback", V2, V1, "cli"), ("publish", None, V2, "cli")]
    assert history[0]["actor"] == "alice" and history[0]["reason"] == "V1 was a test"
    assert history[2]["gate"]["gate"] == "failed, forced" or history[2]["gate"]["forced"]
    assert history[4]["gate"] == {"gate": "first version", "forced": False}
    assert history[4]["pipeline_run"].startswith("cli:") and "@" in history[4]["actor"]
    code, out, _ = run_cli("versions", "--history")
    assert code == 0 and f"rollback   {V1} -> {V2}  by alice (airflow ui)" in out
    assert "reason: V1 was a test" in out and len(out.splitlines()) == 5
    # a hand-written change is recorded too, by its database role; no row can be rewritten
    s = env["schema"]
    with env["conn"].cursor() as cur:
        cur.execute(f"update {s}.active_version set model_version = '{V1}'")
        cur.execute(f"update {s}.active_version set model_version = '{V2}'")
        for statement in (f"update {s}.activations set actor = 'mallory'",
                          f"delete from {s}.activations", f"truncate {s}.activations"):
            with pytest.raises(Exception, match="append-only"):
                cur.execute(statement)
        history = registry.activations(cur, env["cfg"], limit=2)
    assert [(h["action"], h["source"], h["to_version"]) for h in history] == [
        ("sql", "sql", V2), ("sql", "sql", V1)]
    assert len(query(env, f"select 1 from {s}.activations")) == 7


def test_rollback_to_a_version_without_its_embeddings_changes_nothing(env):
    s = env["schema"]
    # what retention does to an old version: its partitions are dropped
    with env["conn"].cursor() as cur:
        cur.execute(f"drop table {s}.user_embeddings_p{V1}")
    code, _, err = run_cli("rollback", "--to", V1)
    assert code == 1 and f"version {V1} has no user embeddings any more" in err
    assert "Traceback" not in err
    assert active(env) == [(V2,)]


def test_every_part_of_a_version_comes_from_one_run(env):
    s = env["schema"]
    published = query(env, f"select run_id, export_path from {s}.model_versions "
                           f"where model_version = '{V2}'")[0]
    weights = (artifacts.Path(published[1]) / "item" / "variables" /
               "variables.data-00000-of-00001")
    before = weights.read_bytes()

    # a new training run of the live bizdate, without new embeddings: not publishable
    retrain = pipeline.run(DAY2.isoformat(), tasks=("train", "export"))
    new_run = retrain["train"]["run_id"]
    assert new_run != published[0]
    assert retrain["train"]["warm_start_from"] == DAY1.isoformat()  # never DAY2 itself
    with pytest.raises(MissingDataError, match=rf"user embeddings come from run "
                       rf"{published[0]}, but its current model is run {new_run}: rerun the "
                       r"user_embeddings task"):
        pipeline.publish(DAY2.isoformat(), force_publish=True)
    assert active(env) == [(V2,)]

    pipeline.run(DAY2.isoformat(), tasks=("user_embeddings", "item_embeddings"))
    with pytest.raises(MissingDataError, match="metrics come from run .* rerun the evaluate"):
        pipeline.publish(DAY2.isoformat(), force_publish=True)
    pipeline.run(DAY2.isoformat(), tasks=("evaluate", "publish"), force_publish=True)
    run_id, export_path = query(env, f"select run_id, export_path from {s}.model_versions "
                                     f"where model_version = '{V2}'")[0]
    assert run_id == new_run and export_path != published[1] and new_run in export_path
    assert weights.read_bytes() == before  # the towers published before: never written over
    assert query(env, f"select warm_start_from, status from {s}.runs where run_id = "
                      f"'{new_run}'") == [(DAY1, "succeeded")]


def test_a_failed_training_run_leaves_the_current_run_current(env, monkeypatch):
    import dropoutnet.training.fit

    s = env["schema"]
    current = artifacts.current_run("sv_dropoutnet", DAY2)

    def crash(*args, **kwargs):
        raise RuntimeError("worker lost")

    monkeypatch.setattr(dropoutnet.training.fit, "train_samples", crash)
    with pytest.raises(RuntimeError, match="worker lost"):
        pipeline.train(DAY2.isoformat())
    assert artifacts.current_run("sv_dropoutnet", DAY2) == current
    assert query(env, f"select status from {s}.runs where bizdate = '{DAY2}' "
                      "order by started_at desc limit 1") == [("failed",)]
    assert query(env, f"select count(*) from {s}.run_lock") == [(0,)]


def test_one_run_per_model_at_a_time(env):
    s, cfg = env["schema"], env["cfg"]
    samples_before = query(env, f"select count(*) from {s}.samples")
    registry.acquire(cfg, "scheduled__2026-11-21T00:00:00+00:00", DAY2)
    try:
        with pytest.raises(RunLockError, match=r"being run by scheduled__2026-11-21T00:00:00"
                                               r"\+00:00 \(bizdate 2026-11-20"):
            pipeline.run(DAY1.isoformat(), tasks=("samples",))
        code, _, err = run_cli("run", "--bizdate", DAY1.isoformat(), "--tasks", "samples")
        assert code == 1 and "being run by scheduled__" in err and "Traceback" not in err
        # a task of another Airflow run is refused too; the holder's own tasks go on
        with pytest.raises(RunLockError):
            pipeline.samples(DAY1.isoformat(), pipeline_run="manual__other")
        assert query(env, f"select count(*) from {s}.samples") == samples_before
    finally:
        assert registry.release(cfg, "scheduled__2026-11-21T00:00:00+00:00")

    # a second run waits for the first to finish
    registry.acquire(cfg, "backfill__a", DAY1)
    threading.Timer(2.0, registry.release, (cfg, "backfill__a")).start()
    started = time.monotonic()
    pipeline.run(DAY1.isoformat(), tasks=("samples",), wait_seconds=60)
    assert time.monotonic() - started >= 1.5

    # a `dropoutnet run` whose process died, or a holder idle for lock_stale_minutes, is
    # taken over
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    registry.acquire(cfg, f"cli:{socket.gethostname()}:{dead.pid}:abcdef", DAY1)
    pipeline.run(DAY1.isoformat(), tasks=("samples",))
    registry.acquire(cfg, "scheduled__lost", DAY1)
    with env["conn"].cursor() as cur:
        cur.execute(f"update {s}.run_lock set heartbeat_at = now() - interval '2 hours'")
    pipeline.run(DAY1.isoformat(), tasks=("samples",))
    assert query(env, f"select count(*) from {s}.run_lock") == [(0,)]


def test_warm_start_takes_the_newest_earlier_checkpoint_within_the_gap(tmp_path, monkeypatch):
    monkeypatch.setenv("DROPOUTNET_MODELS_ROOT", str(tmp_path))
    day = dt.date(2026, 11, 20)

    def checkpoint(bizdate: dt.date, run: str | None) -> None:
        if run is None:  # the layout before runs
            folder = artifacts.bizdate_root("m", bizdate) / "checkpoints"
        else:
            folder = artifacts.run_paths("m", bizdate, run).checkpoints
        folder.mkdir(parents=True)
        (folder / "checkpoint").write_text("model_checkpoint_path: \"ckpt-1\"\n")
        if run is not None:
            artifacts.set_current_run("m", bizdate, run)

    cfg = make_config(cold_start_recall={"model_name": "m"})
    assert registry.warm_start_source(cfg, day) is None
    checkpoint(day + dt.timedelta(days=1), "later")        # a later bizdate: never
    checkpoint(day, "same")                                # the bizdate itself: never
    checkpoint(day - dt.timedelta(days=8), "too-old")      # beyond the 7-day gap
    assert registry.warm_start_source(cfg, day) is None
    checkpoint(day - dt.timedelta(days=3), None)
    found = registry.warm_start_source(cfg, day)
    assert found.bizdate == day - dt.timedelta(days=3) and found.run_id is None
    # a run folder whose training never completed (no CURRENT) is not a checkpoint
    (artifacts.run_paths("m", day - dt.timedelta(days=1), "killed").checkpoints).mkdir(
        parents=True)
    checkpoint(day - dt.timedelta(days=2), "r2")
    found = registry.warm_start_source(cfg, day)
    assert (found.bizdate, found.run_id) == (day - dt.timedelta(days=2), "r2")
    narrow = make_config(cold_start_recall={"model_name": "m"},
                         training={"warm_start_max_gap_days": 1})
    assert registry.warm_start_source(narrow, day) is None


def _active(bizdate="2026-11-19", run="r1", towers="/models/x") -> ActiveVersion:
    day = dt.date.fromisoformat(bizdate)
    return ActiveVersion(artifacts.model_version(day), day, run, artifacts.Path(towers),
                         dt.datetime.now(dt.timezone.utc))


@pytest.mark.parametrize("gate, reason", [
    ({"new": None, "active": 0.5}, "has no cold-item recall@50"),
    ({"new": float("nan"), "active": 0.5}, "has no cold-item recall@50"),
    ({"new": 0.5, "active": None, "active_error": "towers missing"},
     "could not be scored: towers missing"),
    ({"new": 0.5, "active": None}, "could not be scored: no figure"),
    ({"new": 0.5, "active": 0.5, "active_run": "r0"}, "rerun the evaluate task"),
    ({"new": 0.5, "active": 0.5, "active_version": "20261118"}, "rerun the evaluate task"),
])
def test_the_gate_fails_closed(gate, reason):
    cfg = make_config()
    figures = {"active_version": "20261119", "active_run": "r1", **gate}
    with pytest.raises(QualityGateError, match=reason):
        check_gate(cfg, "20261120", figures, _active(), force=False)
    forced = check_gate(cfg, "20261120", figures, _active(), force=True)
    assert forced["forced"] is True and forced["gate"] == "no figure, forced"


def test_the_gate_compares_with_the_active_version():
    cfg = make_config()  # recall@50, tolerance 0.05
    figures = {"active_version": "20261119", "active_run": "r1", "new": 0.48, "active": 0.5}
    assert check_gate(cfg, "20261120", figures, _active(), False)["gate"] == "passed"
    figures["new"] = 0.40
    with pytest.raises(QualityGateError, match=r"recall@50 0.4000, below the active version "
                                               r"20261119's 0.5000"):
        check_gate(cfg, "20261120", figures, _active(), False)
    assert check_gate(cfg, "20261120", figures, _active(), True)["gate"] == "failed, forced"
    assert check_gate(cfg, "20261120", None, None, False)["gate"] == "first version"


def test_retention_keeps_the_live_version_and_the_one_before_it(env):
    import os

    s = env["schema"]
    day0 = DAY1 - dt.timedelta(days=1)
    v0 = artifacts.model_version(day0)
    backfill = pipeline.run(day0.isoformat(), tasks=pipeline.TASKS[:-1])  # no retention yet
    assert backfill["publish"]["decision"] == "superseded"
    towers0 = artifacts.Path(query(env, f"select export_path from {s}.model_versions "
                                        f"where model_version = '{v0}'")[0][0]).parent
    models = env["home"] / "models" / "sv_dropoutnet"
    old_leftover = models / str(DAY2) / ".CURRENT.tmp-0badf00d"
    old_leftover.write_text("interrupted\n")
    os.utime(old_leftover, (time.time() - 7 * 3600,) * 2)
    young_leftover = models / "published" / ".20261120.tmp-0c0ffee0"
    young_leftover.mkdir()

    tight = write_config(env["home"] / "tight.yaml", storage={"schema": s},
                         cold_start_recall={"train_days": 3},
                         retention={"keep_versions": 1, "keep_days": 1})
    result = pipeline.retention(DAY2.isoformat(), str(tight))
    # V2 is live and V1 was live before it: both stay; V0 is the one past keep_versions
    assert result["retired_versions"] == [v0]
    assert active(env) == [(V2,)]
    for parent in ("user_embeddings", "item_embeddings"):
        assert query(env, f"select to_regclass('{s}.{parent}_p{v0}')") == [(None,)]
        assert query(env, f"select to_regclass('{s}.{parent}_p{V2}')") != [(None,)]
    assert query(env, f"select to_regclass('{s}.item_embeddings_p{V1}')") != [(None,)]
    assert not towers0.exists()
    assert query(env, f"select model_version from {s}.model_versions "
                      "where retired_at is not null") == [(v0,)]
    # samples and checkpoints of bizdates before the newest keep_days: gone
    assert query(env, f"select distinct dt from {s}.samples") == [(DAY2,)]
    assert not (models / str(DAY1)).exists() and not (models / str(day0)).exists()
    assert (models / str(DAY2) / "CURRENT").exists()
    # only the current run of a kept bizdate stays ... of DAY2 (the run's own bizdate) all stay
    assert len(list((models / str(DAY2) / "runs").iterdir())) > 1
    # leftovers: the old one is removed, the young one may belong to a copy in progress
    assert not old_leftover.exists() and young_leftover.exists()

    code, _, err = run_cli("rollback", "--to", v0)
    assert code == 1 and f"version {v0} has no user embeddings any more" in err
    code, out, _ = run_cli("versions", "--json")
    assert code == 0 and [v["retired_at"] is not None for v in json.loads(out)] == [
        False, False, True]
    code, out, _ = run_cli("versions")
    assert code == 0 and [line.split()[-2] == "retired" for line in out.splitlines()] == [
        False, False, True]


def test_a_retention_of_zero_is_refused(env):
    bad = write_config(env["home"] / "zero.yaml", storage={"schema": env["schema"]},
                       retention={"keep_versions": 0})
    code, _, err = run_cli("--config", str(bad), "run", "--bizdate", DAY2.isoformat(),
                           "--tasks", "retention")
    assert code == 1 and "retention.keep_versions: Input should be greater than or equal to 1" \
        in err
    assert active(env) == [(V2,)]
