"""Crash safety: every task killed with SIGKILL at its dangerous moments, then rerun, ends in
the state of a run that never failed, and readers never saw anything in between.

A failpoint (:mod:`dropoutnet.core.failpoints`) kills the ``dropoutnet run`` subprocess exactly
there: mid-write (rows copied, transaction open), between writing a model and switching to it,
after the towers' copy and before the publish transaction, inside the publish transaction,
inside deploy's copy.  Real Postgres, real TensorFlow, real files."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import pipeline_env, small_features

from dropoutnet import pipeline
from dropoutnet.core.failpoints import ENV
from dropoutnet.registry import artifacts

END = dt.date(2026, 11, 20)
DAY1, DAY2 = END - dt.timedelta(days=1), END
MODEL = "sv_dropoutnet"
REST = ("user_embeddings", "item_embeddings", "evaluate", "publish", "deploy")


@pytest.fixture(scope="module")
def env(database_url, tmp_path_factory):
    with pipeline_env(database_url, tmp_path_factory.mktemp("crash"), "crash", END,
                      dict(n_users=200, n_items=100, n_authors=15, days=5,
                           new_items_per_day=20, seed=8),
                      features=small_features(), cold_start_recall={"train_days": 3},
                      training={"epochs": 1, "batch_size": 256},
                      retrieval={"candidate_window_days": 4},
                      evaluation={"k": [5, 10], "warm_holdout_share": 0.3,
                                  "gate": {"metric": "recall@10", "tolerance": 1.0}}) as e:
        pipeline.run(DAY1.isoformat(), tasks=pipeline.TASKS[:-1])
        pipeline.run(DAY2.isoformat(), tasks=pipeline.TASKS[:-1])
        e["clean"] = state(e)
        yield e

def query(env, sql):
    with env["conn"].cursor() as cur:
        cur.execute(sql)
        return cur.fetchall()


def state(env) -> dict:
    """What users and the next run see, without the run ids (a rerun is a new run)."""
    s = env["schema"]
    (active,), = query(env, f"select model_version from {s}.active_version")
    run, export_path = query(env, f"select run_id, export_path from {s}.model_versions "
                                  f"where model_version = '{active}'")[0]
    day = dt.datetime.strptime(active, "%Y%m%d").date()
    parts = dict(query(env, f"select part, run_id from {s}.version_parts "
                            f"where model_version = '{active}'"))
    serving = env["home"] / "serving"
    return {
        "active": active,
        "versions": query(env, f"select model_version, bizdate from {s}.model_versions "
                               "order by 1"),
        "tables": [t for (t,) in query(env, f"select tablename from pg_tables where "
                                            f"schemaname = '{s}' order by 1")],
        "users": query(env, f"select model_version, count(*), md5(string_agg(user_id, ',' "
                            f"order by user_id)) from {s}.user_embeddings group by 1 order by 1"),
        "items": query(env, f"select model_version, count(*), md5(string_agg(item_id, ',' "
                            f"order by item_id)) from {s}.item_embeddings group by 1 order by 1"),
        "lock_free": query(env, f"select count(*) from {s}.run_lock") == [(0,)],
        "runs_running": query(env, f"select count(*) from {s}.runs where status = 'running'"),
        # one run made everything live: its checkpoint is current, its towers are published
        "one_run": (artifacts.current_run(MODEL, day) == run and set(parts.values()) == {run}
                    and run in export_path),
        "towers": all((Path(export_path) / t / "saved_model.pb").exists()
                      for t in ("final", "user", "item")),
        "served": sorted(p.name for p in (serving / f"{MODEL}_item").iterdir()
                         if p.is_dir() and not p.name.startswith(".")),
    }


def killed(*args: str, at: str) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "dropoutnet.cli", "run", *args],
                          env={**os.environ, ENV: at},
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == -signal.SIGKILL, proc.stdout[-2000:] + proc.stderr[-2000:]
    return proc


def recall_of(env, user: str) -> dict:
    from dropoutnet.recall.retrieval import recall

    return recall(pipeline.load(None), user, 10)


def a_user(env) -> str:
    s = env["schema"]
    return query(env, f"select user_id from {s}.user_embeddings where model_version = "
                      f"'{env['clean']['active']}' order by 1 limit 1")[0][0]


@pytest.mark.parametrize("failpoint, killed_tasks, before, rerun", [
    # the new checkpoint is complete but not current yet: the old run stays current
    ("train.before_current", ("train",), (), ("train", "export", *REST)),
    # rows copied, transaction open: nothing of it is visible, no stage table is left
    ("user_embeddings.before_commit", ("user_embeddings",), (), REST),
    # towers copied under the run's new name, transaction not started
    ("publish.before_transaction", ("publish",), REST[:3], ("publish", "deploy")),
    # partitions swapped and the pointer moved, not committed: all of it rolls back
    ("publish.before_commit", ("publish",), REST[:3], ("publish", "deploy")),
    # deploy's copy into the serving root written, not renamed into place
    (f"copy_dir.{DAY2:%Y%m%d}", ("deploy",), (), ("deploy",)),
])
def test_a_task_killed_midway_and_rerun_ends_as_if_it_never_failed(env, failpoint, killed_tasks,
                                                                  before, rerun):
    user = a_user(env)
    seen = recall_of(env, user)
    if before:
        pipeline.run(DAY2.isoformat(), tasks=before, force_publish=True)
    killed("--bizdate", DAY2.isoformat(), "--tasks", ",".join(killed_tasks), "--force-publish",
           at=failpoint)
    # readers saw nothing of the killed task: the same version, the same answer
    assert recall_of(env, user) == seen
    assert not [t for t in state(env)["tables"] if t.endswith("_stage")]

    # the rerun takes over the dead process's run lock and finishes the job
    pipeline.run(DAY2.isoformat(), tasks=rerun, force_publish=True)
    assert state(env) == env["clean"]
    s = env["schema"]
    if failpoint == "train.before_current":
        assert query(env, f"select status from {s}.runs where bizdate = '{DAY2}' "
                          "order by started_at desc limit 2")[1] == ("failed",)
    answer = recall_of(env, user)
    assert answer["model_version"] == seen["model_version"] and len(answer["items"]) == 10


def test_the_clean_state_is_whole(env):
    clean = env["clean"]
    assert clean["active"] == f"{DAY2:%Y%m%d}" and clean["lock_free"] and clean["one_run"]
    assert clean["towers"] and clean["runs_running"] == [(0,)]
    assert clean["served"] == [f"{DAY1:%Y%m%d}", f"{DAY2:%Y%m%d}"]
    assert json.dumps(clean, default=str)
