"""Test helpers: configs derived from the demo config, and a tiny hand-checked dataset."""

from __future__ import annotations

import contextlib
import copy
import datetime as dt
import json
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import psycopg2
import yaml

from dropoutnet.config import PipelineConfig
from dropoutnet.core.processes import free_port  # noqa: F401  (the tests' import)

ROOT = Path(__file__).resolve().parent.parent
DEMO_CONFIG = ROOT / "config" / "pipeline.yaml"


def demo_config_data() -> dict[str, Any]:
    return yaml.safe_load(DEMO_CONFIG.read_text())


# Every feature group and kind of the demo config, in 11 features instead of 26: for the tests
# of the pipeline's orchestration (registry, crash safety, the cluster, the stream worker),
# where the model's width costs only TensorFlow's graph building, about a third of each task.
SMALL_FEATURES = ("u_gender", "u_age_band", "u_clicks_7d", "u_click_cate1_14d", "i_author",
                  "i_cate1", "i_tags", "i_duration", "i_title_emb", "i_impressions_7d",
                  "i_ctr_7d")


def small_features() -> list[dict[str, Any]]:
    """The demo config's features named in :data:`SMALL_FEATURES`, as config entries."""
    return [f for f in demo_config_data()["features"] if f["name"] in SMALL_FEATURES]


def merge(base: dict, overrides: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def make_config(**overrides: Any) -> PipelineConfig:
    return PipelineConfig.model_validate(merge(demo_config_data(), overrides))


def write_config(path: Path, **overrides: Any) -> Path:
    path.write_text(yaml.safe_dump(merge(demo_config_data(), overrides), sort_keys=False))
    return path


RAW_DDL = """
create table sv_users (user_id text primary key, gender text, age_band text, city text,
                       level int, register_time timestamptz);
create table sv_authors (author_id text primary key, gender text, level int, is_member boolean,
                         city text, author_type text, fans_count bigint, visitor_count bigint,
                         play_count bigint, like_count bigint);
create table sv_items (item_id text primary key, author_id text, primary_type text, title text,
                       duration double precision, source_type text, width int, height int,
                       grade_score double precision, topic text, category_level1 text,
                       category_level2 text, tags text[], create_time timestamptz);
create table sv_item_text_embedding (item_id text primary key, title_embedding vector(16),
                                     tag_embedding vector(16));
create table sv_events (user_id text, item_id text, event_type text, event_time timestamptz,
                        request_id text);
"""

# A tiny dataset whose samples and features are worked out by hand in test_samples.py.
# Bizdate 2026-11-10, train_days 3: the training window is 11-08 .. 11-10.
TINY = {
    "sv_users": [
        ("u1", "f", "18-24", "hz", 1, "2026-10-01 00:00+00"),
        ("u2", "m", "25-34", "sh", 2, "2026-11-10 08:00+00"),
    ],
    "sv_authors": [
        ("a1", "f", 3, True, "hz", "pro", 1000, 10, 100, 50),
        ("a2", "m", 1, False, "sh", "ugc", 10, 1, 5, 1),
    ],
    "sv_items": [
        ("i1", "a1", "video", "t1", 30.0, "app", 720, 1280, 0.9, "fun", "music", "music/pop",
         "{x,y}", "2026-11-01 10:00+00"),
        ("i2", "a2", "video", "t2", 60.0, "web", 720, 1280, 0.5, "sport", "sport", "sport/ball",
         "{y}", "2026-11-05 10:00+00"),
        ("i3", "a1", "video", "t3", 15.0, "app", 720, 1280, 0.7, "fun", "music", "music/rock",
         "{x}", "2026-11-10 09:00+00"),
    ],
    "sv_events": [
        ("u1", "i1", "impression", "2026-11-07 10:00+00"),
        ("u1", "i1", "click", "2026-11-07 10:01+00"),
        ("u1", "i1", "impression", "2026-11-08 10:00+00"),
        ("u1", "i2", "impression", "2026-11-08 11:00+00"),
        ("u1", "i2", "click", "2026-11-08 11:01+00"),
        ("u1", "i1", "impression", "2026-11-09 10:00+00"),
        ("u1", "i1", "click", "2026-11-09 10:01+00"),
        ("u1", "i3", "impression", "2026-11-10 10:00+00"),
        ("u1", "i3", "click", "2026-11-10 10:01+00"),
        ("u2", "i2", "impression", "2026-11-10 12:00+00"),
        ("u2", "i3", "impression", "2026-11-10 12:05+00"),
        # the future: must not reach any feature or sample of 11-10
        ("u1", "i2", "impression", "2026-11-11 10:00+00"),
        ("u1", "i2", "click", "2026-11-11 10:01+00"),
        ("u2", "i3", "click", "2026-11-11 10:02+00"),
    ],
}


def fetch_all(url: str, sql: str, params=None) -> list[tuple]:
    """Run one query on a new connection and return its rows."""
    conn = psycopg2.connect(url)
    try:
        with conn.cursor() as cur:
            cur.execute(sql, params)
            return cur.fetchall()
    finally:
        conn.close()


def load_tiny(url: str) -> None:
    """Create the raw tables (in the URL's search-path schema) and load TINY."""
    conn = psycopg2.connect(url)
    try:
        with conn, conn.cursor() as cur:
            cur.execute(RAW_DDL)
            for table, rows in TINY.items():
                for row in rows:
                    marks = ", ".join(["%s"] * len(row))
                    cur.execute(f"insert into {table} values ({marks})", row)
            vec = "[" + ",".join(["0.1"] * 16) + "]"
            cur.execute("insert into sv_item_text_embedding select item_id, %s, %s from sv_items",
                        (vec, vec))
    finally:
        conn.close()


@contextlib.contextmanager
def pipeline_env(database_url: str, home: Path, name: str, end: dt.date,
                 data: dict[str, Any], **config: Any) -> Iterator[dict[str, Any]]:
    """Generated data (``synthetic.generate(**data)`` ending at ``end``) in schema
    ``<name>_raw``, the pipeline's tables in ``<name>_dn``, a config with ``config``'s
    overrides, and the ``DROPOUTNET_*`` variables pointing the pipeline there; all dropped
    afterwards.  Yields ``{url, config, home, schema, conn}`` (``conn``: autocommit)."""
    import pytest

    from dropoutnet.data import synthetic

    raw_schema, out_schema = f"{name}_raw", f"{name}_dn"
    conn = psycopg2.connect(database_url)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f"drop schema if exists {raw_schema} cascade; create schema {raw_schema}")
        cur.execute(f"drop schema if exists {out_schema} cascade")
    url = f"{database_url}&options=-csearch_path%3D{raw_schema},public"
    synthetic.generate(url, end_date=end, schema=raw_schema, **data)
    path = write_config(home / "pipeline.yaml", storage={"schema": out_schema}, **config)
    mp = pytest.MonkeyPatch()
    mp.setenv("DROPOUTNET_DATABASE_URL", url)
    mp.setenv("DROPOUTNET_MODELS_ROOT", str(home / "models"))
    mp.setenv("DROPOUTNET_SERVING_ROOT", str(home / "serving"))
    mp.setenv("DROPOUTNET_CONFIG", str(path))
    mp.delenv("DROPOUTNET_FAILPOINT", raising=False)
    try:
        yield {"url": url, "config": str(path), "home": home, "schema": out_schema,
               "conn": conn}
    finally:
        mp.undo()
        with conn.cursor() as cur:
            cur.execute(f"drop schema if exists {raw_schema} cascade; "
                        f"drop schema if exists {out_schema} cascade")
        conn.close()


def wait_for(predicate, timeout: float = 60.0, what: str = "condition") -> None:
    """Poll ``predicate`` every 0.1 s until it holds; fail naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)



class ThreadedServer:
    """An ASGI app under a real uvicorn server in a daemon thread (real HTTP, one process)."""

    def __init__(self, app, port: int | None = None, start_timeout: float = 60) -> None:
        import uvicorn

        port = port or free_port()
        self.url = f"http://127.0.0.1:{port}"
        self.app = app
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                                    log_level="warning", access_log=False))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + start_timeout
        while not self.server.started:
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.05)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=20)

    def exchange(self, method: str, path: str, body=None, headers=None
                 ) -> tuple[int, dict | str, dict[str, str]]:
        """Status, body (parsed JSON, else text) and the response's headers (names in lower
        case) of one request; a dict or list ``body`` is sent as JSON."""
        data = body if isinstance(body, (bytes, type(None))) else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method,
                                         headers={"Content-Type": "application/json",
                                                  **(headers or {})})
        try:
            with urllib.request.urlopen(request, timeout=30) as r:
                raw, status, got = r.read(), r.status, r.headers
        except urllib.error.HTTPError as err:
            raw, status, got = err.read(), err.code, err.headers
        got = {k.lower(): v for k, v in got.items()}
        try:
            return status, json.loads(raw), got
        except ValueError:
            return status, raw.decode(), got


def item_examples(item_ids: np.ndarray, labels: np.ndarray, sample_dates: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The reference for :func:`dropoutnet.training.source.scan`'s per-item statistics, on
    arrays. Per distinct item: the row of its first sample (ties: the first such row), its
    positives and its exposure in days (first sample day to the last sample day, inclusive)."""
    ids = np.asarray(item_ids).astype(str)
    days = np.asarray(sample_dates, dtype="datetime64[D]").astype(np.int64)
    if len(ids) != len(days) or len(ids) != len(np.asarray(labels).reshape(-1)):
        raise ValueError(f"{len(ids)} item ids, {len(days)} sample dates and "
                         f"{len(np.asarray(labels).reshape(-1))} labels: one of each per row")
    order = np.lexsort((np.arange(len(ids)), days, ids))
    _, first, inverse = np.unique(ids[order], return_index=True, return_inverse=True)
    rows = order[first]
    positives = np.bincount(inverse, weights=(np.asarray(labels).reshape(-1)[order] > 0.5),
                            minlength=len(rows))
    exposure = (days.max() - days[rows] + 1).astype(np.float64)
    return rows, positives, exposure


def publish_vectors(url: str, cfg, version: str, bizdate: dt.date, item_rows: list[tuple],
                    item_vectors, users: list[str], user_vectors, activate: bool = True) -> None:
    """Write a version's vectors as the embedding tasks do (``item_rows``: ``(item_id,
    created_at, attributes)``) and publish it, making it active unless ``activate`` is
    False: a version without a model, for tests that only read vectors."""
    from dropoutnet import registry
    from dropoutnet.core import db
    from dropoutnet.recall import vectors

    vectors.ensure_tables(url, cfg)
    registry.ensure_tables(url, cfg)
    with db.transaction(url) as cur:
        run = f"r{version}"
        vectors.write_candidate(cur, cfg, "user", version, run, ["user_id"],
                                [(u,) for u in users], user_vectors)
        vectors.write_candidate(cur, cfg, "item", version, run,
                                ["item_id", "created_at", "attributes"], item_rows,
                                item_vectors)
        for side in ("user", "item"):
            parent = vectors.table(side)
            db.swap_partition(cur, cfg.storage.schema_, parent, version,
                              db.candidate_name(parent, version))
        registry.record_version(cur, cfg, version, bizdate, run, "/nonexistent/export")
        if activate:
            registry.activate(cur, cfg, version, registry.Change.cli(), "publish")
