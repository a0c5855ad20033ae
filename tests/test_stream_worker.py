"""The stream worker end to end: a published version, the model service over real HTTP, a real
replication slot; new items become recallable in the active version with the vectors the
daily path would give them."""

from __future__ import annotations

import contextlib
import datetime as dt
import threading
import time

import numpy as np
import pytest
from helpers import free_port, pipeline_env, small_features, wait_for

from dropoutnet import pipeline, registry
from dropoutnet.core import db
from dropoutnet.data import feature_queries, inputs
from dropoutnet.recall import retrieval
from dropoutnet.stream import source
from dropoutnet.stream.worker import Worker

END = dt.date(2026, 11, 20)
ITEM_MODEL = "sv_dropoutnet_item"


@pytest.fixture(scope="module")
def env(database_url, tmp_path_factory):
    port = free_port()
    with pipeline_env(database_url, tmp_path_factory.mktemp("stream"), "strm", END,
                      dict(n_users=150, n_items=80, n_authors=10, days=4,
                           new_items_per_day=15, seed=9),
                      features=small_features(), cold_start_recall={"train_days": 2},
                      training={"epochs": 1, "batch_size": 256},
                      retrieval={"candidate_window_days": 3},
                      stream={"service_url": f"http://127.0.0.1:{port}", "batch_wait_ms": 50,
                              "metrics_port": free_port(), "heartbeat_seconds": 0.5},
                      evaluation={"k": [5, 10], "gate": {"metric": "recall@10", "tolerance": 1.0}}) as e:
        pipeline.run(END.isoformat(), tasks=pipeline.TASKS[:-1])  # published and deployed
        e["cfg"] = pipeline.load(e["config"])
        e["port"] = port
        yield e
        source.drop(e["cfg"])


@contextlib.contextmanager
def serving(env, port: int, **config):
    """The item tower's model service (uvicorn in a thread) on ``port``."""
    import uvicorn

    from dropoutnet.serving.app import create_app
    from dropoutnet.serving.config import ServiceConfig

    config = ServiceConfig(name=ITEM_MODEL, model_path=env["home"] / "serving" / ITEM_MODEL,
                           port=port, poll_seconds=0.2, **config)
    server = uvicorn.Server(uvicorn.Config(create_app(config), host="127.0.0.1",
                                           port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    try:
        yield
    finally:
        server.should_exit = True
        thread.join(timeout=20)


@pytest.fixture(scope="module")
def service(env):
    with serving(env, env["port"]):
        yield


def query(env, text, params=None):
    with env["conn"].cursor() as cur:
        cur.execute(text, params)
        return cur.fetchall() if cur.description else None


def stored(env, version: str, item: str) -> np.ndarray | None:
    rows = query(env, f"select embedding::real[] from {env['schema']}.item_embeddings "
                      "where model_version = %s and item_id = %s", (version, item))
    return np.asarray(rows[0][0], dtype=np.float32) if rows else None


def daily_vector(env, version: str, item: str) -> np.ndarray:
    """What the daily path's tower gives the item's features (same query, same tower)."""
    from dropoutnet.training.saved_models import load_tower

    cfg = env["cfg"]
    with db.transaction() as cur:
        active = registry.active(cur, cfg)
        cols = feature_queries.read_features(cur, cfg, "item",
                                             dt.datetime.now(dt.timezone.utc).date(),
                                             {"item_ids": [item]})
    tower = load_tower(active.export_path / "item")
    return tower(inputs.to_inputs(cfg.features_of(side="item"), cols))[0]


def insert_new_item(env, item_id: str) -> None:
    """A copy of the first item under a new id, created now (no text embeddings yet)."""
    query(env, f"""insert into strm_raw.sv_items
                   select '{item_id}', author_id, primary_type, title, duration, source_type,
                          width, height, grade_score, topic, category_level1, category_level2,
                          tags, now()
                   from strm_raw.sv_items order by item_id limit 1""")


@contextlib.contextmanager
def running_worker(cfg):
    """The worker in a thread, stopped (after its next batch) when the block ends."""
    done = threading.Event()
    worker = Worker(cfg)
    thread = threading.Thread(target=worker.run, kwargs={"stop": done.is_set}, daemon=True)
    thread.start()
    try:
        yield worker
    finally:
        done.set()
        thread.join(timeout=30)
    assert not thread.is_alive()


def test_new_items_are_embedded_into_the_active_version_at_once(env, service):
    cfg, s = env["cfg"], env["schema"]
    version = f"{END:%Y%m%d}"
    source.ensure(cfg)  # the slot keeps every change from here on
    with running_worker(cfg) as worker:
        # a new item without its text embeddings yet: embedded from what it has
        started = time.monotonic()
        insert_new_item(env, "stream_1")
        wait_for(lambda: stored(env, version, "stream_1") is not None, what="the new item")
        latency = time.monotonic() - started
        first = stored(env, version, "stream_1")
        assert np.allclose(first, daily_vector(env, version, "stream_1"), atol=1e-4)
        assert latency < 30

        # its text embeddings arrive later: embedded again, with them
        query(env, """insert into strm_raw.sv_item_text_embedding
                      select 'stream_1', title_embedding, tag_embedding
                      from strm_raw.sv_item_text_embedding order by item_id limit 1""")
        (before, updated), = query(env, f"select features, updated_at from "
                                        f"{s}.stream_item_features where item_id = 'stream_1'")
        wait_for(lambda: not np.allclose(stored(env, version, "stream_1"), first),
                 what="the re-embedding")
        assert np.allclose(stored(env, version, "stream_1"),
                           daily_vector(env, version, "stream_1"), atol=1e-4)
        # the cold-start feature table: one row per item, the features it was embedded from
        (after, updated_again), = query(env, f"select features, updated_at from "
                                             f"{s}.stream_item_features "
                                             "where item_id = 'stream_1'")
        text = next(f.name for f in cfg.features_of(side="item") if f.kind == "vector")
        assert before[text] is None and len(after[text]) > 0 and updated_again > updated
        assert set(after) == {f.name for f in cfg.features_of(side="item")}

        # an item created before the window: its update is ignored
        old = query(env, "select item_id from strm_raw.sv_items "
                         "where create_time < now() - interval '2 days' "
                         "and item_id not in (select item_id from "
                         f"{s}.item_embeddings_p{version}) limit 1")[0][0]
        ignored = worker.stats.ignored
        query(env, "update strm_raw.sv_items set title = title || '!' where item_id = %s",
              (old,))
        wait_for(lambda: worker.stats.ignored > ignored, what="the old item's update")
        assert stored(env, version, old) is None
    # exactly one row per item, and recall of the active version finds the new item
    assert query(env, f"select count(*) from {s}.item_embeddings "
                      "where item_id = 'stream_1'") == [(1,)]
    with db.transaction() as cur:
        user = query(env, f"select user_id from {s}.user_embeddings limit 1")[0][0]
        vector = retrieval.user_vector(cur, cfg, version, user)
        now = dt.datetime.now(dt.timezone.utc)
        found = [i for i, _ in retrieval.top_items(
            cur, cfg, version, vector, 50, created_from=now - dt.timedelta(hours=1),
            created_to=now + dt.timedelta(hours=1))]
    assert found == ["stream_1"]
    # the filterable values (retrieval.filter_columns) are stored by the daily embeddings and
    # by the worker alike, so a recall's filter finds the new item too
    columns = cfg.retrieval.filter_columns
    raw = {r[0]: {c: v for c, v in zip(columns, r[1:]) if v is not None}
           for r in query(env, f"select item_id, {', '.join(columns)} from strm_raw.sv_items")}
    kept = dict(query(env, f"select item_id, attributes from {s}.item_embeddings "
                           "where model_version = %s", (version,)))
    assert len(kept) > 10 and all(kept[i] == raw[i] for i in kept), kept
    assert kept["stream_1"] == raw["stream_1"] and len(raw["stream_1"]) == len(columns)
    got = retrieval.recall(cfg, user, 5, created_within_hours=1,
                           filters={"category_level1": raw["stream_1"]["category_level1"]})
    assert [i["item_id"] for i in got["items"]] == ["stream_1"]


def test_a_change_it_cannot_process_is_a_dead_letter_and_the_stream_goes_on(env, service):
    import json
    import subprocess
    import sys

    cfg, s = env["cfg"], env["schema"]
    version = f"{END:%Y%m%d}"
    with running_worker(cfg) as worker:
        # no creation time: the worker cannot tell whether the item is new
        query(env, """insert into strm_raw.sv_items (item_id, author_id, title, create_time)
                      values ('no_time', 'a0', 'broken', null)""")
        insert_new_item(env, "stream_2")
        wait_for(lambda: stored(env, version, "stream_2") is not None, what="the good item")
    assert worker.stats.dead_letters == 1 and stored(env, version, "no_time") is None
    (item, reason, change), = query(env, f"select item_id, reason, change "
                                         f"from {s}.stream_dead_letters")
    assert item == "no_time" and "create_time is missing" in reason
    assert change["new"]["title"] == "broken" and change["table"] == "strm_raw.sv_items"
    proc = subprocess.run([sys.executable, "-m", "dropoutnet.cli", "stream", "--status"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    answer = json.loads(proc.stdout)
    assert answer["exists"] is True and answer["dead_letters"] == 1
    assert answer["lag_bytes"] >= 0


def test_a_batch_with_one_bad_row_writes_the_others_and_keeps_the_bad_one(env, service):
    cfg, s = env["cfg"], env["schema"]
    version = f"{END:%Y%m%d}"
    worker = Worker(cfg)
    with db.transaction() as cur:
        rows = feature_queries.read_features(cur, cfg, "item",
                                             dt.datetime.now(dt.timezone.utc).date(),
                                             {"item_ids": ["stream_1", "stream_2"]})
    vector = next(f.name for f in cfg.features_of(side="item") if f.kind == "vector")
    rows[vector][1] = [0.5, 0.5]  # a text embedding of the wrong size: the tower refuses it
    before = worker.stats.dead_letters
    assert worker._write(version, rows, lsn=(7 << 32) + 42) == ["stream_1"]
    assert worker.stats.dead_letters == before + 1
    (item, lsn, reason), = query(env, f"select item_id, lsn::text, reason from "
                                      f"{s}.stream_dead_letters where item_id = 'stream_2'")
    assert lsn == "7/2A" and "has dim" in reason


def test_a_batch_too_big_for_the_service_is_halved_and_every_item_written(env, service):
    """A service refusing the request's size (HTTP 413, max_body_bytes): the worker halves
    the batch until it fits, keeps that size for the next requests, and writes every item
    with the daily path's vector; a transaction of more items than a batch goes a chunk at
    a time."""
    cfg = env["cfg"]
    version = f"{END:%Y%m%d}"
    port = free_port()
    worker = Worker(cfg.model_copy(update={"stream": cfg.stream.model_copy(
        update={"service_url": f"http://127.0.0.1:{port}"})}))
    ids = [i for (i,) in query(env, "select item_id from strm_raw.sv_items "
                                    "order by item_id limit 40")]
    with db.transaction() as cur:
        rows = feature_queries.read_features(cur, cfg, "item",
                                             dt.datetime.now(dt.timezone.utc).date(),
                                             {"item_ids": ids})
    with serving(env, port, max_body_bytes=1024):
        assert sorted(worker._write(version, rows, lsn=1)) == sorted(ids)
        assert worker.request_rows is not None and worker.request_rows < len(ids)
    for item in ids[:2]:
        assert np.allclose(stored(env, version, item), daily_vector(env, version, item),
                           atol=1e-4)
    # one transaction touching more items than stream.batch_size (a catalogue imported at
    # once): read, embedded and committed a chunk at a time, 16, 16, then 8
    wide = cfg.stream.model_copy(update={"batch_size": 16, "window_hours": 24 * 3650})
    chunked = Worker(cfg.model_copy(update={"stream": wide}))
    assert sorted(chunked._embed(version, set(ids), lsn=1)) == sorted(ids)
    assert len(chunked.stats.last_embedded) == 8


def test_the_worker_reports_its_lag_and_throughput_and_a_stale_slot_is_named(env, service):
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    from dropoutnet.stream.worker import slot_warning, status

    cfg = env["cfg"]
    version = f"{END:%Y%m%d}"
    source.ensure(cfg)  # the slot keeps every change from here on
    with running_worker(cfg) as worker:
        insert_new_item(env, "stream_3")
        wait_for(lambda: stored(env, version, "stream_3") is not None, what="the new item")
        wait_for(lambda: worker.stats.lag_bytes is not None, what="a heartbeat")
        url = f"http://127.0.0.1:{cfg.stream.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=10) as r:
            text = r.read().decode()
        samples = {s.name: s.value for family in text_string_to_metric_families(text)
                   for s in family.samples if not s.labels}
        # scraped over HTTP: the worker's own counts, the lag, the latency histogram
        assert samples["dropoutnet_stream_embedded_total"] == worker.stats.embedded >= 1
        assert samples["dropoutnet_stream_dead_letters_total"] == worker.stats.dead_letters
        assert samples["dropoutnet_stream_commit_to_stored_seconds_count"] >= 1
        assert 0 < samples["dropoutnet_stream_commit_to_stored_seconds_sum"] < 30
        assert samples["dropoutnet_stream_lag_seconds"] >= 0
        assert samples["dropoutnet_stream_lag_bytes"] >= 0
        phases = {s.labels["phase"]: s.value
                  for family in text_string_to_metric_families(text)
                  for s in family.samples if s.name == "dropoutnet_stream_phase_seconds_total"}
        assert set(phases) == {"decode", "features", "service", "upsert"}
        assert all(v > 0 for v in phases.values())
        assert status(cfg)["worker_connected"] is True
    # stopped a moment ago: the heartbeat is recent, so the slot is not stale yet
    answer = status(cfg)
    assert answer["worker_connected"] is False and answer["stale"] is False
    assert answer["embedded_total"] == worker.stats.embedded
    assert answer["items_per_second"] >= 0
    assert answer["heartbeat_age_seconds"] < 60 and "warning" not in answer
    # no reader for longer than stream.stale_after_minutes: stale, with what to do
    strict = cfg.model_copy(update={"stream": cfg.stream.model_copy(
        update={"stale_after_minutes": 0.0001})})
    time.sleep(0.1)
    answer = status(strict)
    assert answer["stale"] is True
    assert answer["warning"].startswith(f"the stream slot {source.names(cfg)} is not read for ")
    assert "dropoutnet stream --drop" in answer["warning"]
    # what the daily run warns of before publishing: a stale slot, or none at all
    assert slot_warning(strict) == answer["warning"] and slot_warning(cfg) is None
    other = cfg.model_copy(update={"cold_start_recall": cfg.cold_start_recall.model_copy(
        update={"model_name": "no_worker_model"})})
    assert slot_warning(other).startswith("no stream worker slot dropoutnet_no_worker_model:")


def test_a_version_switch_carries_the_new_items_over_within_seconds(env, service, caplog):
    """A publish switches the active version while new items stream in: the items that
    arrived after the new version's pool snapshot are in its partition seconds after the
    switch, with its own tower; recall reads one version at a time."""
    cfg, s = env["cfg"], env["schema"]
    old, day = f"{END:%Y%m%d}", END - dt.timedelta(days=1)
    new = f"{day:%Y%m%d}"
    seen: list[tuple[float, str, bool]] = []  # (time, active version, has switch_1)
    watching = threading.Event()

    def watch():  # what recall would read, polled through the switch
        while not watching.is_set():
            with db.transaction() as cur:
                version = registry.active(cur, cfg).model_version
                cur.execute(f"select count(*) from {s}.item_embeddings "
                            "where model_version = %s and item_id = 'switch_1'", (version,))
                seen.append((time.monotonic(), version, cur.fetchone()[0] == 1))
            time.sleep(0.02)

    with running_worker(cfg) as worker:
        insert_new_item(env, "switch_1")
        wait_for(lambda: stored(env, old, "switch_1") is not None, what="the new item")
        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        # the daily run of another bizdate publishes (and deploys) a new active version
        pipeline.run(day.isoformat(), tasks=pipeline.TASKS[:-1], make_live=True)
        wait_for(lambda: stored(env, new, "switch_1") is not None, timeout=30,
                 what="the new item in the new version")
        insert_new_item(env, "switch_2")  # after the switch: straight into the new version
        wait_for(lambda: stored(env, new, "switch_2") is not None, what="a newer item")
        watching.set()
        watcher.join(timeout=10)
    assert worker.stats.switches >= 2  # the start, then the publish
    # a worker was reading the slot: the publish task had nothing to warn of
    assert "stream worker slot" not in caplog.text and "stream slot" not in caplog.text
    # embedded again with the new version's own tower, not copied from the old one
    assert np.allclose(stored(env, new, "switch_1"), daily_vector(env, new, "switch_1"),
                       atol=1e-4)
    assert not np.allclose(stored(env, new, "switch_1"), stored(env, old, "switch_1"))
    # every item the stream had put into the old version is in the new one too
    streamed = {r[0] for r in query(env, f"select item_id from {s}.item_embeddings "
                                         "where model_version = %s and item_id like %s",
                                    (old, "stream%"))}
    assert streamed and streamed <= {r[0] for r in query(
        env, f"select item_id from {s}.item_embeddings where model_version = %s", (new,))}
    # the new item was missing from what recall reads only between the switch and the
    # worker's catch-up: seconds (the heartbeat's period plus one embedding), never for good
    after = [(t, present) for t, v, present in seen if v == new]
    assert after and after[-1][1]
    missing = [t for t, present in after if not present]
    gap = (missing[-1] - after[0][0]) if missing else 0.0
    print(f"switch gap: {gap:.2f} s")
    assert gap < 10
    # a user's recall: the user's and the items' vectors of one version, the active one
    with db.transaction() as cur:
        user = query(env, f"select user_id from {s}.user_embeddings "
                          "where model_version = %s limit 1", (new,))[0][0]
        vector = retrieval.user_vector(cur, cfg, new, user)
        now = dt.datetime.now(dt.timezone.utc)
        found = dict(retrieval.top_items(cur, cfg, new, vector, 50,
                                         created_from=now - dt.timedelta(hours=1),
                                         created_to=now + dt.timedelta(hours=1)))
    assert {"switch_1", "switch_2"} <= set(found)
    assert found["switch_1"] == pytest.approx(
        float(np.dot(vector, stored(env, new, "switch_1"))), abs=1e-4)


@pytest.mark.parametrize("point", ["stream.before_commit", "stream.before_confirm"])
def test_a_worker_killed_mid_batch_replays_it_and_ends_as_if_nothing_failed(env, service,
                                                                          point):
    """SIGKILL inside the upsert's transaction, or after its commit but before the slot
    heard of it: the next worker reads the batch again and the state is exactly one row per
    item, with the active version's vector."""
    import os
    import subprocess
    import sys

    cfg, s = env["cfg"], env["schema"]
    with db.transaction() as cur:
        version = registry.active(cur, cfg).model_version
    item = f"killed_{point.split('.')[1]}"
    proc = subprocess.Popen([sys.executable, "-m", "dropoutnet.cli", "stream",
                             "--max-seconds", "120"],
                            env=dict(os.environ, DROPOUTNET_FAILPOINT=point),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: query(env, "select active from pg_replication_slots "
                                    "where slot_name = %s", (source.names(cfg),)) == [(True,)],
                 what="the worker on its slot")
        insert_new_item(env, item)
        assert proc.wait(timeout=60) == -9, proc.stderr.read()[-2000:]
    finally:
        proc.kill()
    rows = query(env, f"select count(*) from {s}.item_embeddings where item_id = %s", (item,))
    assert rows == [(1 if point == "stream.before_confirm" else 0,)]
    # the next worker reads the unconfirmed batch again
    with running_worker(cfg) as worker:
        wait_for(lambda: stored(env, version, item) is not None, what="the replayed item")
    assert worker.stats.changes >= 1
    assert query(env, f"select count(*) from {s}.item_embeddings where item_id = %s",
                 (item,)) == [(1,)]
    assert np.allclose(stored(env, version, item), daily_vector(env, version, item), atol=1e-4)


def test_while_the_model_service_is_down_the_worker_holds_its_position(env, service):
    """Nothing listens at the service's address: the batch is retried with backoff and the
    item waits in the slot; once a service answers there, it is embedded."""
    import uvicorn

    from dropoutnet.serving.app import create_app
    from dropoutnet.serving.config import ServiceConfig

    port = free_port()
    cfg = env["cfg"]
    down = cfg.model_copy(update={"stream": cfg.stream.model_copy(update={
        "service_url": f"http://127.0.0.1:{port}", "retry_max_seconds": 0.5})})
    with db.transaction() as cur:
        version = registry.active(cur, cfg).model_version
    with running_worker(down) as worker:
        insert_new_item(env, "while_down")
        wait_for(lambda: worker.stats.retries >= 3, what="retries against the absent service")
        assert stored(env, version, "while_down") is None
        server = uvicorn.Server(uvicorn.Config(
            create_app(ServiceConfig(name=ITEM_MODEL, port=port, poll_seconds=0.2,
                                     model_path=env["home"] / "serving" / ITEM_MODEL)),
            host="127.0.0.1", port=port, log_level="warning"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        try:
            wait_for(lambda: stored(env, version, "while_down") is not None,
                     what="the item once the service is back")
        finally:
            server.should_exit = True
            thread.join(timeout=20)
    assert np.allclose(stored(env, version, "while_down"),
                       daily_vector(env, version, "while_down"), atol=1e-4)


def test_a_worker_started_before_the_first_data_load_waits_for_its_tables(env, caplog):
    """A new deployment's worker starts before the raw tables exist: it serves its metrics
    (its container's health check), names the missing table, and waits (no exit into a
    restart loop) until stopped."""
    import urllib.request

    cfg = env["cfg"]
    early = cfg.model_copy(update={
        "raw": cfg.raw.model_copy(update={"items": cfg.raw.items.model_copy(
            update={"table": "sv_items_not_loaded"})}),
        "stream": cfg.stream.model_copy(update={"metrics_port": free_port(),
                                                "retry_max_seconds": 0.5})})
    with caplog.at_level("WARNING"), running_worker(early):
        wait_for(lambda: caplog.text.count("'sv_items_not_loaded' does not exist: waiting for "
                                           "it") >= 2, what="the worker trying again")
        with urllib.request.urlopen(f"http://127.0.0.1:{early.stream.metrics_port}/metrics",
                                    timeout=10) as resp:
            assert resp.status == 200


def test_a_worker_stopped_while_the_service_is_down_stops_and_loses_nothing(env, service):
    """Asked to stop while it retries a batch against an absent service, the worker ends (it
    does not retry forever), leaving the batch unconfirmed: the next worker embeds the item."""
    cfg = env["cfg"]
    down = cfg.model_copy(update={"stream": cfg.stream.model_copy(update={
        "service_url": f"http://127.0.0.1:{free_port()}", "retry_max_seconds": 0.5})})
    with db.transaction() as cur:
        version = registry.active(cur, cfg).model_version
    with running_worker(down) as worker:  # which asserts that the worker's thread ends
        insert_new_item(env, "while_stopped")
        wait_for(lambda: worker.stats.retries >= 2, what="retries against the absent service")
        stop_asked = time.monotonic()
    assert time.monotonic() - stop_asked < 10, "the worker kept retrying after the stop"
    assert stored(env, version, "while_stopped") is None
    with running_worker(cfg):
        wait_for(lambda: stored(env, version, "while_stopped") is not None,
                 what="the held item, embedded by the next worker")
    assert np.allclose(stored(env, version, "while_stopped"),
                       daily_vector(env, version, "while_stopped"), atol=1e-4)


def test_the_demos_worker_runs_in_the_background_and_shows_new_items_recallable(env, service,
                                                                               capsys):
    """`make demo`'s real-time step: the worker started as a background process next to the
    model service, new items inserted, each one's insert-to-recallable latency, and a recall
    that contains one; `make stop`'s stop_stream_worker ends it."""
    import os
    import re

    from dropoutnet.core import locations, processes
    from dropoutnet.local import demo, stack

    try:
        demo.stream_new_items(env["home"], locations.database_url(), dict(os.environ), n=2)
    finally:
        pid = stack.stop_stream_worker(env["home"])
    assert pid is not None and not processes.alive(pid)
    out = capsys.readouterr().out
    latencies = re.findall(r"new item (live_\d+_\d) inserted -> recallable in version \d+ "
                           r"after ([\d.]+) s", out)
    assert [i for i, _ in latencies] == [f"{latencies[0][0][:-1]}{k}" for k in (1, 2)]
    assert all(float(t) < 30 for _, t in latencies)
    first = latencies[0][0]
    recall = out.split("$ dropoutnet recall")[1]
    header = recall.splitlines()[0]
    assert "--created-within 24" in header and int(header.split(" is #")[1].split()[0]) <= 10
    assert f" {first} " in recall
    # the newest items' channel: only items created within the window, the new ones among them
    user = header.split("--user-id ")[1].split()[0]
    newest = retrieval.recall(env["cfg"], user, 10, created_within_hours=1)
    assert first in [i["item_id"] for i in newest["items"]]
    assert all(i["item_id"].startswith(("live_", "stream_", "switch_", "killed_", "while_"))
               for i in newest["items"])
    with pytest.raises(retrieval.RecallError, match="created_within_hours must be a number "
                                                    "of hours above 0"):
        retrieval.recall(env["cfg"], user, 10, created_within_hours=0)
