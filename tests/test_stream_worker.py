"""The stream worker end to end: a published version, the model service over real HTTP, a real
replication slot; new items become recallable in the active version with the vectors the
daily path would give them."""

from __future__ import annotations

import contextlib
import datetime as dt
import socket
import threading
import time

import numpy as np
import pytest

from dropoutnet import db, feature_queries, inputs, pipeline, registry, retrieval
from dropoutnet.stream import source
from dropoutnet.stream.worker import Worker
from helpers import pipeline_env

END = dt.date(2026, 11, 20)
ITEM_MODEL = "sv_dropoutnet_item"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def env(database_url, tmp_path_factory):
    port = free_port()
    with pipeline_env(database_url, tmp_path_factory.mktemp("stream"), "strm", END,
                      dict(n_users=150, n_items=80, n_authors=10, days=4,
                           new_items_per_day=15, seed=9),
                      cold_start_recall={"train_days": 2},
                      training={"epochs": 1, "batch_size": 256},
                      retrieval={"candidate_window_days": 3},
                      stream={"service_url": f"http://127.0.0.1:{port}", "batch_wait_ms": 50},
                      evaluation={"k": [5, 10], "gate": {"metric": "recall@10"}}) as e:
        pipeline.run(END.isoformat(), tasks=pipeline.TASKS[:-1])  # published and deployed
        e["cfg"] = pipeline.load(e["config"])
        e["port"] = port
        yield e
        source.drop(e["cfg"])


@pytest.fixture(scope="module")
def service(env):
    import uvicorn

    from dropoutnet.serving.app import create_app
    from dropoutnet.serving.config import ServiceConfig

    config = ServiceConfig(name=ITEM_MODEL, model_path=env["home"] / "serving" / ITEM_MODEL,
                           port=env["port"], poll_seconds=0.2)
    server = uvicorn.Server(uvicorn.Config(create_app(config), host="127.0.0.1",
                                           port=env["port"], log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    yield
    server.should_exit = True
    thread.join(timeout=20)


def query(env, text, params=None):
    with env["conn"].cursor() as cur:
        cur.execute(text, params)
        return cur.fetchall() if cur.description else None


def wait_for(predicate, timeout=60.0, what="condition"):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def stored(env, version: str, item: str) -> np.ndarray | None:
    rows = query(env, f"select embedding::real[] from {env['schema']}.item_embeddings "
                      "where model_version = %s and item_id = %s", (version, item))
    return np.asarray(rows[0][0], dtype=np.float32) if rows else None


def daily_vector(env, version: str, item: str) -> np.ndarray:
    """What the daily path's tower gives the item's features (same query, same tower)."""
    from dropoutnet.saved_models import load_tower

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
        wait_for(lambda: not np.allclose(stored(env, version, "stream_1"), first),
                 what="the re-embedding")
        assert np.allclose(stored(env, version, "stream_1"),
                           daily_vector(env, version, "stream_1"), atol=1e-4)

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
