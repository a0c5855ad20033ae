"""Training on a cluster (:mod:`dropoutnet.training.cluster`): a local cluster of 2 workers trains
through the same train task as one process, like it; a platform's cluster (TF_CONFIG on 2
``dropoutnet run`` processes) trains the next bizdate warm-started from it, and its towers
export like a single-process model's; a failed worker fails the task with its log and
leaves no process behind; the config's and TF_CONFIG's errors.  Real Postgres, real TensorFlow, tiny
data (each cluster training costs about 30-40 s here, most of it TensorFlow's start-up)."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import subprocess
import sys
import time

import numpy as np
import pytest
from helpers import free_port as helpers_free_port
from helpers import make_config, pipeline_env, small_features, write_config

from dropoutnet import pipeline, registry
from dropoutnet.config import ConfigError, load_config
from dropoutnet.core import db, processes
from dropoutnet.data import partitions
from dropoutnet.training import cluster

END = dt.date(2026, 11, 20)
DAY1, DAY2 = END - dt.timedelta(days=1), END
SETTINGS = dict(features=small_features(), cold_start_recall={"train_days": 3},
                training={"epochs": 1, "batch_size": 128})
CLUSTER = {"worker": {"count": 2}}


@pytest.fixture(scope="module")
def env(database_url, tmp_path_factory):
    """Tiny data with the samples of both days built; a single-process config (the
    default one) and a 2-worker cluster config (``cluster_config``) of the same model."""
    home = tmp_path_factory.mktemp("cluster")
    with pipeline_env(database_url, home, "clus", END,
                      dict(n_users=150, n_items=80, n_authors=12, days=5,
                           new_items_per_day=15, seed=11), **SETTINGS) as e:
        e["cluster_config"] = str(write_config(
            home / "cluster.yaml", storage={"schema": e["schema"]},
            features=SETTINGS["features"], cold_start_recall=SETTINGS["cold_start_recall"],
            training={**SETTINGS["training"], "cluster": CLUSTER}))
        for day in (DAY1, DAY2):
            pipeline.run(day.isoformat(), tasks=("samples",))
        yield e


def _gone(pids: list[int], wait: float = 10.0) -> bool:
    deadline = time.monotonic() + wait
    while any(processes.alive(p) for p in pids):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def _platform_cluster(env, day: dt.date) -> dict:
    """``dropoutnet run --tasks train`` on 2 processes with a platform's ``TF_CONFIG`` (what
    a TFJob's pods run); the chief's result.  The non-chief takes no run lock and records
    nothing."""
    ports = [helpers_free_port() for _ in range(2)]
    procs = []
    for i in range(2):
        spec = {"cluster": {"worker": [f"localhost:{p}" for p in ports]},
                "task": {"type": "worker", "index": i}}
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "dropoutnet.cli", "run", "--bizdate", day.isoformat(),
             "--tasks", "train"], env={**os.environ, "TF_CONFIG": json.dumps(spec),
                                       "TF_CPP_MIN_LOG_LEVEL": "2"},
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    try:
        outs = [p.communicate(timeout=600) for p in procs]
    finally:
        for p in procs:
            p.kill()
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err[-3000:]
    results = [json.loads([ln for ln in out.splitlines() if ln.startswith("train: ")][-1]
                          .split(": ", 1)[1]) for out, _ in outs]
    assert results[1]["chief"] is False and results[1]["cluster"]["task"]["index"] == 1
    assert "run_id" not in results[1] and results[1]["steps"] == results[0]["steps"]
    return results[0]


def _scores(cfg, checkpoints, day):
    """The model's probabilities on the day's training samples, with their labels."""
    from dropoutnet.model.dropoutnet import load_trained_model
    from dropoutnet.training.fit import predict_scores

    rows = _samples(cfg, day)
    model = load_trained_model(checkpoints)
    return predict_scores(model, rows["features"]), rows["labels"]


def _samples(cfg, day):
    """The day's training samples as the towers take them (raw feature values)."""
    with db.transaction() as cur:
        return partitions.load_partition(cur, cfg, "samples", day)


def _auc(scores: np.ndarray, labels: np.ndarray) -> float:
    order = np.argsort(scores)
    ranks = np.empty(len(scores))
    ranks[order] = np.arange(1, len(scores) + 1)
    pos = labels > 0.5
    return float((ranks[pos].sum() - pos.sum() * (pos.sum() + 1) / 2)
                 / (pos.sum() * (~pos).sum()))


def test_local_cluster_trains_warm_starts_and_exports_like_one_process(env, caplog):
    cfg_single = load_config(env["config"])
    cfg_cluster = load_config(env["cluster_config"])
    single = pipeline.train(DAY1.isoformat())
    with caplog.at_level("INFO", logger="dropoutnet.training.cluster"):
        first = pipeline.train(DAY1.isoformat(), env["cluster_config"])
    # the same task's answer, plus the cluster's figures
    assert set(single) < set(first) and first["warm_started"] is False
    info = first["cluster"]
    assert info["strategy"] == "MultiWorkerMirroredStrategy" and info["workers"] == 2
    assert info["launched"] == "local" and info["global_batch_size"] == 128
    trained = [w["rows_trained"] for w in info["per_worker"]]
    assert sum(trained) == first["rows"] - info["rows_dropped_per_epoch"]
    assert abs(trained[0] - trained[1]) <= first["steps"]  # one global batch split in two
    assert first["rows"] == single["rows"] and first["steps"] == single["steps"]
    # the workers' own log lines went through this process's log, prefixed
    assert "[worker 0]" in caplog.text and "[worker 1]" in caplog.text
    assert _gone([w["pid"] for w in info["per_worker"]])
    # the run is the bizdate's current one, recorded and reported like a single-process run
    run = registry.current_run(cfg_cluster, DAY1)
    assert run == first["run_id"]
    paths = registry.run_paths(cfg_cluster, DAY1, run)
    report = json.loads((paths.root / "train_report.json").read_text())
    assert report["cluster"]["workers"] == 2 and report["rows"] == first["rows"]

    # comparable quality to one process on the same samples: same data, same seed, but the
    # in-batch terms see half a batch per worker, so close, not equal
    p_single, labels = _scores(cfg_single, registry.run_paths(
        cfg_single, DAY1, single["run_id"]).checkpoints, DAY1)
    p_cluster, labels2 = _scores(cfg_cluster, paths.checkpoints, DAY1)
    assert np.array_equal(labels, labels2) and p_single.shape == p_cluster.shape
    auc_single, auc_cluster = _auc(p_single, labels), _auc(p_cluster, labels)
    correlation = float(np.corrcoef(p_single, p_cluster)[0, 1])
    print(f"AUC single {auc_single:.4f} cluster {auc_cluster:.4f}, "
          f"score correlation {correlation:.3f}")
    assert abs(auc_single - auc_cluster) <= 0.05, (auc_single, auc_cluster)
    assert correlation >= 0.8, correlation

    # the next bizdate, on a cluster a platform launched (TF_CONFIG on each member, the
    # plain train task, no cluster section): it warm-starts from the local cluster's run
    second = _platform_cluster(env, DAY2)
    assert second["warm_started"] is True and second["warm_start_run"] == first["run_id"]
    assert second["restored_variables"] > 0 and second["not_restored_variables"] == 0
    assert second["cluster"]["workers"] == 2 and second["cluster"]["task"]["chief"] is True
    assert registry.current_run(cfg_cluster, DAY2) == second["run_id"]

    # and its towers export as a single-process model's do
    from dropoutnet.training.saved_models import load_tower

    exported = pipeline.export(DAY2.isoformat(), env["cluster_config"])
    rows = _samples(cfg_cluster, DAY2)
    user = load_tower(exported["user"])(rows["features"])
    item = load_tower(exported["item"])(rows["features"])
    assert user.shape == item.shape == (len(rows["labels"]), cfg_cluster.vector_dim)
    assert np.isfinite(user).all() and np.isfinite(item).all()


def test_failed_worker_fails_the_task_with_its_log_and_stops_the_others(env, monkeypatch,
                                                                           caplog):
    cfg = load_config(env["cluster_config"])
    before = registry.current_run(cfg, DAY1)
    monkeypatch.setenv("DROPOUTNET_FAILPOINT", "train.cluster_worker1")
    with caplog.at_level("INFO", logger="dropoutnet.training.cluster"):
        with pytest.raises(cluster.ClusterError) as err:
            pipeline.train(DAY1.isoformat(), env["cluster_config"])
    message = str(err.value)
    assert "cluster worker 1 of 2 failed (killed by SIGKILL)" in message
    assert "the other workers were stopped" in message
    assert "failpoint train.cluster_worker1" in message  # worker 1's own last log line
    pids = json.loads(re.search(r"cluster worker pids: (\[[^]]*\])", caplog.text).group(1))
    assert len(pids) == 2 and _gone(pids, wait=2.0), "a cluster worker outlived the task"
    # the bizdate's current run is unchanged, and the failed run is recorded as failed
    assert registry.current_run(cfg, DAY1) == before
    with env["conn"].cursor() as cur:
        runs = registry.runs(cur, cfg, DAY1)
    assert runs and runs[0]["status"] == "failed", runs


def test_cluster_config_errors_are_one_precise_line(tmp_path):
    with pytest.raises(ConfigError) as err:  # EasyRec's recipe's cluster, verbatim
        load_config(write_config(tmp_path / "seed.yaml", training={
            "cluster": {"ps": {"count": 1}, "worker": {"count": 9}}}))
    lines = str(err.value).splitlines()
    assert len(lines) == 2 and lines[1].startswith("  - training.cluster.ps: ps.count is 1")
    assert "Keras 3's model.fit cannot drive tf.distribute.ParameterServerStrategy" in lines[1]
    assert "cluster: {worker: {count: 10}}" in lines[1]
    for bad, expected in [
        ({"worker": {"count": 0}}, "training.cluster.worker: worker.count is 0"),
        ({"ps": {"count": 0}}, "training.cluster.worker: missing required key"),
        ({"worker": {"count": 2}, "chief": {"count": 1}},
         "training.cluster.chief: unknown key"),
    ]:
        with pytest.raises(ConfigError) as err:
            load_config(write_config(tmp_path / "bad.yaml", training={"cluster": bad}))
        assert expected in str(err.value), str(err.value)
    with pytest.raises(ConfigError, match=r"training.batch_size \(4\) is the global batch, "
                                          r"split among the cluster's 3 workers"):
        load_config(write_config(tmp_path / "batch.yaml", training={
            "batch_size": 4, "cluster": {"worker": {"count": 3}}}))
    # ps: 0 (the recipe's shape without parameter servers) is accepted
    cfg = make_config(training={"cluster": {"ps": {"count": 0}, "worker": {"count": 3}}})
    assert cfg.training.cluster.workers == 3


def test_tf_config_of_the_platform():
    assert cluster.from_environment({}) is None
    spec = {"cluster": {"worker": ["a:1", "b:2", "c:3"]}, "task": {"type": "worker",
                                                                  "index": 0}}
    member = cluster.from_environment({"TF_CONFIG": json.dumps(spec)})
    assert member == cluster.Member("worker", 0, 3, chief=True)
    spec["task"]["index"] = 2
    assert cluster.from_environment({"TF_CONFIG": json.dumps(spec)}).chief is False
    with_chief = {"cluster": {"chief": ["a:1"], "worker": ["b:2"]},
                  "task": {"type": "worker", "index": 0}}
    member = cluster.from_environment({"TF_CONFIG": json.dumps(with_chief)})
    assert member.workers == 2 and member.chief is False
    for bad, expected in [
        ("not json", "TF_CONFIG must be JSON like"),
        (json.dumps({"cluster": {"ps": ["p:1"], "worker": ["w:1"]},
                     "task": {"type": "worker", "index": 0}}),
         "TF_CONFIG names 1 ps task(s): parameter-server training is not available"),
        (json.dumps({"cluster": {"worker": ["w:1"], "evaluator": ["e:1"]},
                     "task": {"type": "evaluator", "index": 0}}),
         "task type 'evaluator'"),
        (json.dumps({"cluster": {"worker": ["w:1"]}, "task": {"type": "worker",
                                                             "index": 1}}),
         "task worker 1 is not in its cluster"),
    ]:
        with pytest.raises(ConfigError) as err:
            cluster.from_environment({"TF_CONFIG": bad})
        assert expected in str(err.value), str(err.value)


def test_global_batches_are_shared_without_empty_shares():
    from dropoutnet.training.fit import global_batches, shard_rows

    assert global_batches(10, 4) == [4, 4, 2]
    assert global_batches(9, 4, shards=2) == [4, 4]  # 1 row cannot feed 2 workers
    assert global_batches(11, 4, shards=3) == [4, 4, 3]
    for batch, shards in [(128, 2), (7, 3), (2, 2)]:
        parts = [shard_rows(batch, shards, i) for i in range(shards)]
        rows = [r for p in parts for r in range(batch)[p]]
        assert rows == list(range(batch))  # disjoint, complete, in order
        assert max(len(range(batch)[p]) for p in parts) - min(
            len(range(batch)[p]) for p in parts) <= 1


def test_a_worker_dies_with_a_killed_launcher():
    """SIGKILL of the task process runs no ``finally``: the kernel kills its workers
    (PR_SET_PDEATHSIG, set as the launcher starts each one)."""
    script = ("import subprocess, sys, time\n"
              "from dropoutnet.training.cluster import _die_with_parent\n"
              "p = subprocess.Popen(['sleep', '120'], start_new_session=True, "
              "preexec_fn=_die_with_parent)\n"
              "print(p.pid, flush=True)\n"
              "time.sleep(120)\n")
    launcher = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE,
                                text=True)
    try:
        child = int(launcher.stdout.readline())
        assert processes.alive(child)
        launcher.kill()
        launcher.wait()
        assert _gone([child], wait=5.0), "the worker outlived its killed launcher"
    finally:
        launcher.kill()
