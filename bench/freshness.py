"""Freshness of new items: insert committed -> vector visible to recall, through the stream worker.

    .venv/bin/python bench/freshness.py [--rates 50,1000] [--seconds 30] [--rounds 3]
                                        [--out bench/results]

Runs in a temporary ``DROPOUTNET_HOME`` with its own embedded Postgres: small synthetic data,
the daily pipeline for yesterday (a published, deployed version), then the model service
(``python -m dropoutnet.serving``, the item tower) and the worker (``dropoutnet stream``), each
in its own process, as in production.  Two arms of the worker, side by side in each round:
``fixed_wait`` (``stream.flush_when_idle: false``: a batch collects changes for
``batch_wait_ms``, the worker before this option) and ``flush_when_idle`` (the default: a
batch goes as soon as no further change waits).  For each arm and rate: ``--inserters``
connections commit one new item per transaction (a copy of one of the 100 newest items under
a new id, created now), together at that rate, for ``--seconds``, while an observer polls the
active version's item partition for the new ids every 5 ms at up to 100 inserts/s, every
20 ms above (so a latency is measured to about 5 or 20 ms).  Before each measurement the
items of the earlier ones are removed and the partition's indexes rebuilt, so that each
starts from the published partition.  Reported per arm and rate, the median over ``--rounds`` rounds of: latency
p50 / p90 / p99 / max over the items, the insert and store rates reached, whether the lag
grows (median latency of the last tenth of the inserts against the first tenth), and where
the worker's time went (its ``dropoutnet_stream_phase_seconds_total`` per phase, per item);
every round's figures are kept too.  Then, per arm and round, a **backlog** of ``--backlog``
new items committed in one transaction: the seconds until all are visible and the rate the
worker stored them at (first to last visible), its capacity beyond the inserters' own rate.

Targets (on this 2-core machine): p99 <= 200 ms at 50 inserts/s; >= 1,000 items/s sustained
with a lag that does not grow.  Prints the JSON and writes it to ``OUT/freshness.json``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np

# first: the repository on the path
from common import REPO, free_port, new_home, remove_home, write_result

DATA = dict(n_users=400, n_items=600, n_authors=60, days=5, new_items_per_day=40, seed=7)
CONFIG = {"cold_start_recall": {"train_days": 2}, "training": {"epochs": 1},
          "retrieval": {"candidate_window_days": 3}}
ARMS = {"fixed_wait": False, "flush_when_idle": True}  # stream.flush_when_idle


def write_config(path: Path, service_port: int, metrics_port: int,
                 flush_when_idle: bool = True) -> Path:
    """The demo config with small training windows and the worker's addresses."""
    import yaml

    from dropoutnet import pipeline

    data = pipeline.load(str(REPO / "config" / "pipeline.yaml")).model_dump(
        by_alias=True, exclude_none=True)
    for section, values in CONFIG.items():
        data[section].update(values)
    data["stream"] = dict(data.get("stream", {}),
                          service_url=f"http://127.0.0.1:{service_port}",
                          metrics_port=metrics_port, flush_when_idle=flush_when_idle)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    pipeline.load(str(path))
    return path


def start_service(cfg, work: Path, port: int) -> subprocess.Popen:
    """The item tower of the active version, served in its own process."""
    from dropoutnet.registry import artifacts
    from dropoutnet.steps.deploy import served_models

    name = served_models(cfg)["item"]
    config = {"name": name, "port": port, "poll_seconds": 1,
              "model_path": str(artifacts.serving_root(cfg.serving.base_path) / name)}
    path = work / "item-service.json"
    path.write_text(json.dumps(config))
    log = open(work / "service.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "dropoutnet.serving", str(path)],
                            stdout=log, stderr=subprocess.STDOUT, cwd=REPO)
    wait_until(lambda: _get(f"http://127.0.0.1:{port}/healthz") is not None, 120,
               f"the model service (see {work / 'service.log'})")
    return proc


def start_worker(cfg, work: Path) -> subprocess.Popen:
    from dropoutnet.stream.worker import status

    log = open(work / "stream.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "dropoutnet.cli", "stream"],
                            stdout=log, stderr=subprocess.STDOUT, cwd=REPO)
    wait_until(lambda: status(cfg).get("worker_connected"), 120,
               f"the stream worker (see {work / 'stream.log'})")
    return proc


def wait_until(predicate, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.2)


def _get(url: str) -> str | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return r.read().decode()
    except OSError:
        return None


def phase_seconds(metrics_port: int) -> dict[str, float]:
    """The worker's seconds per phase so far, from its metrics endpoint."""
    from prometheus_client.parser import text_string_to_metric_families

    text = _get(f"http://127.0.0.1:{metrics_port}/metrics") or ""
    return {s.labels["phase"]: s.value for family in text_string_to_metric_families(text)
            for s in family.samples if s.name == "dropoutnet_stream_phase_seconds_total"}


def with_worker_time(metrics_port: int, run) -> dict:
    """``run()``'s figures, with the worker's seconds per phase spent meanwhile, per item
    made visible (``worker_ms_per_item``)."""
    before = phase_seconds(metrics_port)
    figures = run()
    after = phase_seconds(metrics_port)
    figures["worker_ms_per_item"] = {
        phase: round(1000 * (after.get(phase, 0) - before.get(phase, 0))
                     / max(figures["visible"], 1), 3) for phase in after}
    return figures


def measure(cfg, url: str, version: str, rate: float, seconds: float, tag: str,
            inserters: int) -> dict:
    """Insert ``rate`` items a second for ``seconds`` from ``inserters`` connections; each
    one's insert-to-visible seconds."""
    import psycopg2

    from dropoutnet.core import sql

    items = cfg.raw.items
    committed: dict[str, float] = {}
    visible: dict[str, float] = {}
    done = threading.Event()

    poll = 0.005 if rate <= 100 else 0.02  # finer at low rates; at high, less load

    def observe() -> None:
        conn = psycopg2.connect(url)
        conn.autocommit = True
        with conn.cursor() as cur:
            while True:
                pending = [i for i in list(committed) if i not in visible]
                if pending:
                    sql.execute(cur, "local/demo/items_stored.sql",
                                params={"version": version, "item_ids": pending},
                                schema=cfg.storage.schema_)
                    now = time.monotonic()
                    for (item_id,) in cur.fetchall():
                        visible[item_id] = now
                elif done.is_set():
                    break
                if done.is_set() and time.monotonic() > stop_by:
                    break
                time.sleep(poll)
        conn.close()

    def insert(first: int) -> None:  # items first, first + inserters, ...: paced by the clock
        conn = psycopg2.connect(url)
        with conn.cursor() as cur:
            for k in range(first, n, inserters):
                wait = started + k / rate - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
                item_id = f"fresh_{tag}_{k}"
                sql.execute(cur, "local/demo/copy_items.sql", params={
                    "source_ids": [sources[k % len(sources)]], "item_ids": [item_id],
                    "id_column": items.columns["item_id"],
                    "time_column": items.columns["create_time"]}, items=items)
                conn.commit()
                committed[item_id] = time.monotonic()
        conn.close()

    with psycopg2.connect(url) as conn, conn.cursor() as cur:  # the rows copied as new items
        sql.execute(cur, "local/demo/newest_items.sql", params={"n": 100}, items=items)
        sources = [r[0] for r in cur.fetchall()]
    stop_by = float("inf")
    n = int(rate * seconds)
    watcher = threading.Thread(target=observe, daemon=True)
    watcher.start()
    started = time.monotonic()
    threads = [threading.Thread(target=insert, args=(k,)) for k in range(inserters)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    insert_seconds = time.monotonic() - started
    stop_by = time.monotonic() + 60  # the stragglers' time to land
    done.set()
    watcher.join()
    ids = sorted(committed, key=committed.get)
    latency = np.array([visible[i] - committed[i] for i in ids if i in visible])
    tenth = max(1, len(ids) // 10)
    head = [visible[i] - committed[i] for i in ids[:tenth] if i in visible]
    tail = [visible[i] - committed[i] for i in ids[-tenth:] if i in visible]
    last = max(visible.values()) if visible else started
    return {
        "rate_goal": rate, "inserted": n, "visible": int(len(latency)),
        "insert_rate": round(n / insert_seconds, 1),
        "store_rate": round(len(latency) / max(last - started, 1e-9), 1),
        "latency_s": {q: round(float(np.percentile(latency, p)), 3) for q, p in
                      (("p50", 50), ("p90", 90), ("p99", 99), ("max", 100))}
        if len(latency) else None,
        "lag_trend_s": {"first_tenth_median": round(float(np.median(head)), 3) if head else None,
                        "last_tenth_median": round(float(np.median(tail)), 3) if tail else None},
    }


def drain(cfg, url: str, version: str, n: int, tag: str) -> dict:
    """A backlog: ``n`` new items committed in one transaction, which the worker receives
    together at the commit.  The seconds until each is visible, and the rate the worker
    stored them at, first to last visible: its sustained capacity, which the paced arms
    cannot show beyond the inserters' own rate."""
    import psycopg2

    from dropoutnet.core import sql

    items = cfg.raw.items
    conn = psycopg2.connect(url)
    try:
        with conn.cursor() as cur:
            sql.execute(cur, "local/demo/newest_items.sql", params={"n": 100}, items=items)
            sources = [r[0] for r in cur.fetchall()]
            ids = [f"fresh_{tag}_{k}" for k in range(n)]
            sql.execute(cur, "local/demo/copy_items.sql", params={
                "source_ids": [sources[k % len(sources)] for k in range(n)], "item_ids": ids,
                "id_column": items.columns["item_id"],
                "time_column": items.columns["create_time"]}, items=items)
        conn.commit()
        committed = time.monotonic()
        conn.autocommit = True
        pending, visible = set(ids), []
        with conn.cursor() as cur:
            while pending and time.monotonic() < committed + 300:
                time.sleep(0.05)
                sql.execute(cur, "local/demo/items_stored.sql",
                            params={"version": version, "item_ids": list(pending)},
                            schema=cfg.storage.schema_)
                now = time.monotonic()
                for (item_id,) in cur.fetchall():
                    pending.discard(item_id)
                    visible.append(now)
    finally:
        conn.close()
    first, last = (min(visible), max(visible)) if visible else (committed, committed)
    return {"backlog": n, "visible": len(visible),
            "first_visible_s": round(first - committed, 3),
            "all_visible_s": round(last - committed, 3),
            "store_rate": round((len(visible) - 1) / max(last - first, 1e-9), 1)}


def forget_fresh_items(cfg, url: str, version: str) -> dict:
    """Remove the items the measurements inserted (raw rows, vectors, stream features), then
    rebuild the partition's indexes and vacuum: every measurement starts from the published
    partition as it was, not from one grown by the earlier ones (an HNSW insert costs more in
    a bigger graph, and the arms would be compared on different tables)."""
    import psycopg2

    from dropoutnet.core import db, sql
    from dropoutnet.recall import vectors

    schema = cfg.storage.schema_
    partition = sql.qualified(schema, db.partition_name(vectors.table("item"), version))
    conn = psycopg2.connect(url)
    try:
        with conn.cursor() as cur:
            sql.execute(cur, "local/demo/forget_items.sql",
                        params={"prefix": "fresh\\_", "version": version},
                        items=cfg.raw.items, schema=schema)
            removed = dict(zip(("raw_rows", "stream_rows", "vector_rows"), cur.fetchone()))
        conn.commit()
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(f"reindex table {partition}")
            for name in (partition, sql.qualified(schema, "stream_item_features")):
                cur.execute(f"vacuum analyze {name}")
    finally:
        conn.close()
    return removed


def summary(rounds: list[dict]) -> dict:
    """The median over rounds of each figure of one arm and rate."""
    def median(values):
        values = [v for v in values if v is not None]
        return round(float(np.median(values)), 3) if values else None

    first = rounds[0]
    return {
        "latency_s": {q: median([(r["latency_s"] or {}).get(q) for r in rounds])
                      for q in first["latency_s"] or {}},
        "insert_rate": median([r["insert_rate"] for r in rounds]),
        "store_rate": median([r["store_rate"] for r in rounds]),
        "lag_trend_s": {k: median([r["lag_trend_s"][k] for r in rounds])
                        for k in first["lag_trend_s"]},
        "worker_ms_per_item": {k: median([r["worker_ms_per_item"].get(k) for r in rounds])
                               for k in first["worker_ms_per_item"]},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rates", default="50,1000",
                        help="inserts per second, comma-separated")
    parser.add_argument("--seconds", type=float, default=30.0, help="per arm and rate")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--inserters", type=int, default=4,
                        help="connections inserting in parallel (one alone tops out near "
                             "350 inserts/s here)")
    parser.add_argument("--backlog", type=int, default=20_000,
                        help="new items committed at once after the paced rates, per arm and "
                             "round: the worker's drain rate (0: none)")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    args = parser.parse_args()
    rates = [float(r) for r in args.rates.split(",")]

    work = new_home("dropoutnet-freshness-")
    os.environ.setdefault("KERAS_HOME", str(work / "keras"))
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    service_port, metrics_port = free_port(), free_port()
    configs = {arm: write_config(work / f"freshness-{arm}.yaml", service_port, metrics_port,
                                 flush)
               for arm, flush in ARMS.items()}
    os.environ["DROPOUTNET_CONFIG"] = str(configs["flush_when_idle"])
    from dropoutnet import pipeline, registry
    from dropoutnet.core import db
    from dropoutnet.data import synthetic
    from dropoutnet.local import embedded_pg

    service = None
    result: dict = {"date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                    "machine": f"{os.cpu_count()} cores (shared)",
                    "seconds_per_rate": args.seconds, "rounds": args.rounds,
                    "inserters": args.inserters}
    per_round: dict[str, dict[str, list]] = {arm: {str(int(r)): [] for r in rates}
                                             for arm in ARMS}
    drains: dict[str, list[dict]] = {arm: [] for arm in ARMS}
    try:
        url = embedded_pg.ensure_database_url()
        cfg = pipeline.load(None)
        yesterday = dt.datetime.now(dt.timezone.utc).date() - dt.timedelta(days=1)
        synthetic.generate(url, end_date=yesterday, **DATA)
        pipeline.run(yesterday.isoformat(), force_publish=True)
        with db.transaction(url) as cur:
            version = registry.active_version(cur, cfg)
        service = start_service(cfg, work, service_port)
        result["stream"] = cfg.stream.model_dump()
        for k in range(args.rounds):
            # side by side in each round, each with its own worker process, in turns
            for arm in (list(ARMS) if k % 2 == 0 else list(ARMS)[::-1]):
                os.environ["DROPOUTNET_CONFIG"] = str(configs[arm])
                worker = start_worker(cfg, work)
                try:
                    for rate in rates:
                        forget_fresh_items(cfg, url, version)
                        figures = with_worker_time(metrics_port, lambda: measure(
                            cfg, url, version, rate, args.seconds, f"{arm}{k}r{int(rate)}",
                            args.inserters))
                        per_round[arm][str(int(rate))].append(figures)
                        print(json.dumps({"round": k, "arm": arm, str(int(rate)): figures}),
                              flush=True)
                    if args.backlog:
                        forget_fresh_items(cfg, url, version)
                        figures = with_worker_time(metrics_port, lambda: drain(
                            cfg, url, version, args.backlog, f"{arm}{k}b"))
                        drains[arm].append(figures)
                        print(json.dumps({"round": k, "arm": arm, "backlog": figures}),
                              flush=True)
                finally:
                    stop(worker)
        result["arms"] = {arm: {rate: summary(rounds) for rate, rounds in by_rate.items()}
                          for arm, by_rate in per_round.items()}
        result["rounds_figures"] = per_round
        if args.backlog:
            result["backlog"] = {arm: {
                "store_rate": float(np.median([d["store_rate"] for d in runs])),
                "all_visible_s": float(np.median([d["all_visible_s"] for d in runs])),
                "rounds": runs} for arm, runs in drains.items()}
        best = result["arms"]["flush_when_idle"]
        low, high = best.get("50") or {}, best.get("1000") or {}
        result["targets"] = {
            "p99_s_at_50_per_s": {"goal": 0.2,
                                  "measured": (low.get("latency_s") or {}).get("p99"),
                                  "fixed_wait": ((result["arms"]["fixed_wait"].get("50") or {})
                                                 .get("latency_s") or {}).get("p99")},
            "sustained_items_per_s": {"goal": 1000, "measured": high.get("store_rate"),
                                      "insert_rate": high.get("insert_rate"),
                                      "lag_trend_s": high.get("lag_trend_s"),
                                      "backlog_store_rate": (result.get("backlog") or {}).get(
                                          "flush_when_idle", {}).get("store_rate")},
        }
    finally:
        if service is not None:
            stop(service)
        remove_home(work)
    write_result(result, args.out, "freshness.json")
    return 0


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()


if __name__ == "__main__":
    sys.exit(main())
