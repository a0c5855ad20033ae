"""The online loop's costs: the served log on the recall path, and the daily online metrics.

    .venv/bin/python bench/online.py [--items 100000] [--rounds 3] [--requests 500]
                                     [--seconds 10] [--served 1000000]

Runs in a temporary ``DROPOUTNET_HOME`` with its own embedded Postgres:

1. **Recall with the served log on and off, side by side.**  One published version of
   ``--items`` random item vectors (33 dims, the demo's, with the pipeline's HNSW index) and
   2,000 users; two ``dropoutnet recall-api`` processes on the same version, one with
   ``retrieval.log.enabled`` on (the default flush settings) and one with it off.  Per round,
   for each in turn: ``--requests`` sequential requests (concurrency 1: p50 and p99, ms) and
   ``--seconds`` of 4 clients (throughput and p99), each client on its own keep-alive
   connection.  Reported: the medians over rounds, the log's p99 overhead (on - off, ms) and
   its throughput ratio (on / off).  Targets: overhead <= 1 ms p99, throughput >= 90 %.
2. **online_metrics for a day of ``--served`` served items** (lists of 10 to 50,000 users,
   with impressions, clicks carrying the request id for half of them, and new items): the
   task's wall time, median of ``--rounds`` runs.  Target: <= 60 s.

Prints the JSON and writes ``OUT/online.json``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import os
import statistics
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import numpy as np
from common import REPO, free_port, new_home, remove_home, write_result

DAY = dt.date(2026, 11, 20)
VERSION = "20261120"
USERS = 2000
OVERHEAD_P99_MS, THROUGHPUT_RATIO, METRICS_SECONDS = 1.0, 0.9, 60.0


def config(home: Path, log: bool) -> Path:
    """The demo config with the benchmark's schema and the served log on or off."""
    import yaml

    data = yaml.safe_load((REPO / "config" / "pipeline.yaml").read_text())
    data["storage"] = {"schema": "bench_dn"}
    data["retrieval"]["log"] = {"enabled": log}
    data["online"]["bootstrap_samples"] = 1000
    path = home / f"pipeline-log-{'on' if log else 'off'}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def publish(url: str, cfg, items: int, seed: int = 0) -> None:
    """One active version of random vectors: ``items`` items, ``USERS`` users."""
    from dropoutnet import registry
    from dropoutnet.core import db
    from dropoutnet.recall import vectors

    rng = np.random.default_rng(seed)
    dim = cfg.vector_dim
    now = dt.datetime.now(dt.timezone.utc)
    vectors.ensure_tables(url, cfg)
    registry.ensure_tables(url, cfg)
    with db.transaction(url) as cur:
        vectors.write_candidate(cur, cfg, "user", VERSION, "bench", ["user_id"],
                                [(f"u{k}",) for k in range(USERS)],
                                rng.normal(size=(USERS, dim)).astype(np.float32))
        vectors.write_candidate(cur, cfg, "item", VERSION, "bench",
                                ["item_id", "created_at", "attributes"],
                                [(f"i{k}", now, {}) for k in range(items)],
                                rng.normal(size=(items, dim)).astype(np.float32))
        for side in ("user", "item"):
            parent = vectors.table(side)
            db.swap_partition(cur, cfg.storage.schema_, parent, VERSION,
                              db.candidate_name(parent, VERSION))
        registry.record_version(cur, cfg, VERSION, DAY, "bench", "/nonexistent")
        registry.activate(cur, cfg, VERSION, registry.Change.cli(), "publish")


def start_api(path: Path, port: int, url: str, home: Path) -> subprocess.Popen:
    """``dropoutnet recall-api`` with the config at ``path``, once it answers."""
    env = dict(os.environ, DROPOUTNET_DATABASE_URL=url, DROPOUTNET_CONFIG=str(path))
    proc = subprocess.Popen([sys.executable, "-m", "dropoutnet.cli", "recall-api", "--port",
                             str(port)], env=env, cwd=str(REPO),
                            stdout=open(home / f"api-{port}.log", "wb"),
                            stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", "/healthz")
            if conn.getresponse().status == 200:
                return proc
        except OSError:
            pass
        if proc.poll() is not None:
            raise RuntimeError(f"the recall API exited; see {home / f'api-{port}.log'}")
        time.sleep(0.3)
    raise RuntimeError("the recall API did not answer within 120 s")


def ask(conn: http.client.HTTPConnection, k: int) -> float:
    """One recall over a kept-alive connection; its latency in ms."""
    t = time.perf_counter()
    conn.request("GET", f"/v1/recall?user_id=u{k % USERS}&n=10")
    response = conn.getresponse()
    body = response.read()
    if response.status != 200:
        raise RuntimeError(f"recall answered {response.status}: {body[:200]!r}")
    return (time.perf_counter() - t) * 1000


def sequential(port: int, requests: int) -> dict[str, float]:
    """Concurrency 1: ``requests`` recalls in a row (after 20 to warm up)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    for k in range(20):
        ask(conn, k)
    times = [ask(conn, k) for k in range(requests)]
    return {"p50_ms": float(np.percentile(times, 50)), "p99_ms": float(np.percentile(times, 99))}


def concurrent(port: int, seconds: float, clients: int = 4) -> dict[str, float]:
    """``clients`` clients asking as fast as answered for ``seconds``: throughput and p99."""
    times: list[list[float]] = [[] for _ in range(clients)]
    stop = time.monotonic() + seconds

    def client(c: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        k = c * 100_000
        while time.monotonic() < stop:
            times[c].append(ask(conn, k))
            k += 1

    threads = [threading.Thread(target=client, args=(c,)) for c in range(clients)]
    began = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - began
    flat = [x for c in times for x in c]
    return {"qps": len(flat) / elapsed, "p99_ms": float(np.percentile(flat, 99))}


def served_day(url: str, cfg, served: int, seed: int = 1) -> dict[str, int]:
    """A day of served lists (10 items each) and the events that answer them."""
    import psycopg

    from dropoutnet.core import sql
    from dropoutnet.online.served_log import ServedList, ServedLogWriter

    rng = np.random.default_rng(seed)
    lists, users, pool = served // 10, 50_000, 200_000
    start = dt.datetime.combine(DAY, dt.time(), tzinfo=dt.timezone.utc)
    writer = ServedLogWriter(cfg, url).start()
    events = []
    for k in range(lists):
        at = start + dt.timedelta(seconds=float(rng.uniform(0, 86_000)))
        user = f"u{rng.integers(users)}"
        items = [f"i{j}" for j in rng.integers(pool, size=10)]
        rid = uuid.uuid4()
        writer.log(ServedList(rid, at, "api", user, VERSION, "active", None, "all", None,
                              items, list(np.linspace(1, 0.1, 10))))
        for position in np.flatnonzero(rng.random(10) < 0.05):
            when = at + dt.timedelta(seconds=float(rng.uniform(1, 600)))
            events.append((user, items[position], "click", min(when, start + dt.timedelta(
                seconds=86_399)), str(rid) if k % 2 else None))
    if not writer.close(timeout=600):
        raise RuntimeError(f"the served log was not written: {writer.stats}")
    with psycopg.connect(url) as conn, conn.cursor() as cur:
        with cur.copy(sql.render("online/copy_events.sql", events=cfg.raw.events)) as copy:
            for row in events:
                copy.write_row(row)
        cur.execute("insert into sv_items (item_id, author_id, create_time) "
                    "select 'i' || k, 'a1', %s::timestamptz + k * interval '1 second' "
                    "from generate_series(0, 19999) as k on conflict do nothing", (start,))
    return {"lists": lists, "served_items": lists * 10, "clicks": len(events)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--served", type=int, default=1_000_000)
    parser.add_argument("--out", default=str(REPO / "bench" / "results"))
    args = parser.parse_args()

    home = new_home("dropoutnet-bench-online-")
    procs: list[subprocess.Popen] = []
    try:
        from dropoutnet.config import load_config
        from dropoutnet.data import synthetic
        from dropoutnet.local import embedded_pg

        url = embedded_pg.ensure_database_url()
        synthetic.generate(url, end_date=DAY, n_users=200, n_items=100, n_authors=10, days=2,
                           new_items_per_day=10, seed=0)
        paths = {mode: config(home, mode == "on") for mode in ("on", "off")}
        cfg = load_config(paths["on"])
        t = time.perf_counter()
        publish(url, cfg, args.items)
        print(f"published {args.items} items in {time.perf_counter() - t:.0f} s", flush=True)
        ports = {mode: free_port() for mode in paths}
        for mode, path in paths.items():
            procs.append(start_api(path, ports[mode], url, home))

        rounds: dict[str, list[dict]] = {"on": [], "off": []}
        for r in range(args.rounds):
            for mode in (("on", "off") if r % 2 == 0 else ("off", "on")):
                one = sequential(ports[mode], args.requests)
                four = concurrent(ports[mode], args.seconds)
                rounds[mode].append({"c1": one, "c4": four})
                print(f"round {r + 1} log {mode}: c1 {one}, c4 {four}", flush=True)

        def median(mode: str, level: str, key: str) -> float:
            return round(statistics.median(x[level][key] for x in rounds[mode]), 3)

        recall = {mode: {"c1_p50_ms": median(mode, "c1", "p50_ms"),
                         "c1_p99_ms": median(mode, "c1", "p99_ms"),
                         "c4_qps": median(mode, "c4", "qps"),
                         "c4_p99_ms": median(mode, "c4", "p99_ms")} for mode in rounds}
        overhead = {"c1_p99_ms": round(recall["on"]["c1_p99_ms"] - recall["off"]["c1_p99_ms"], 3),
                    "c4_p99_ms": round(recall["on"]["c4_p99_ms"] - recall["off"]["c4_p99_ms"], 3),
                    "c4_throughput_ratio": round(recall["on"]["c4_qps"]
                                                 / recall["off"]["c4_qps"], 3)}
        for p in procs:
            p.terminate()
            p.wait(timeout=30)
        procs.clear()

        from dropoutnet.steps.online_metrics import online_metrics

        made = served_day(url, cfg, args.served)
        times = []
        for _ in range(args.rounds):
            t = time.perf_counter()
            out = online_metrics(cfg, DAY, url)
            times.append(time.perf_counter() - t)
        m = out["groups"][0]["metrics"]
        result = {
            "items": args.items, "rounds": args.rounds, "requests": args.requests,
            "seconds": args.seconds, "recall": recall, "log_overhead": overhead,
            "targets": {"overhead_p99_ms": OVERHEAD_P99_MS, "throughput_ratio": THROUGHPUT_RATIO,
                        "online_metrics_seconds": METRICS_SECONDS},
            "online_metrics": {**made, "seconds": [round(x, 2) for x in times],
                               "median_seconds": round(statistics.median(times), 2),
                               "ctr": m["ctr"]["value"], "users": m["users"]},
        }
        result["met"] = {
            "overhead": max(overhead["c1_p99_ms"], overhead["c4_p99_ms"]) <= OVERHEAD_P99_MS,
            "throughput": overhead["c4_throughput_ratio"] >= THROUGHPUT_RATIO,
            "online_metrics": result["online_metrics"]["median_seconds"] <= METRICS_SECONDS}
        write_result(result, Path(args.out), "online.json")
    finally:
        for p in procs:
            p.kill()
        remove_home(home)
    return 0


if __name__ == "__main__":
    sys.exit(main())
