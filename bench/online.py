"""The online loop's costs: the served log on the recall path, and the daily online metrics.

    .venv/bin/python bench/online.py [--items 100000] [--rounds 3] [--requests 500]
                                     [--seconds 10] [--served 1000000]

Runs in a temporary ``DROPOUTNET_HOME`` with its own embedded Postgres:

1. **Recall with the served log on and off, side by side.**  One published version of
   ``--items`` random item vectors (33 dims, the demo's, with the pipeline's HNSW index) and
   2,000 users.  Each round starts three ``dropoutnet recall-api`` processes on that version:
   ``on`` (``retrieval.log.enabled``, the default flush settings), ``off``, and ``off_again``,
   a second log-off process: the A/A control, whose difference from ``off`` is the noise
   floor of this machine.  The three are measured interleaved, so that each sees the same
   moments of a shared machine: ``--requests`` sequential requests each, taking turns request
   by request (concurrency 1: p50 and p99, ms), then ``--seconds`` each of 4 clients (each on
   its own keep-alive connection) in 1-second windows taking turns (throughput and p99).  The
   processes are stopped at the end of the round and started afresh, in the opposite order,
   for the next.  Reported: per API the medians over rounds, and the log's cost paired round
   by round (p99 on - off, throughput on / off; medians over rounds) beside the same pairing
   of ``off_again`` with ``off``.  Targets: overhead <= 1 ms p99, throughput >= 90 %.
2. **online_metrics for a day of ``--served`` served items** (lists of 10 to 50,000 users,
   with impressions, clicks carrying the request id for half of them, and new items): the
   task's wall time, median of ``--rounds`` runs.  Target: <= 60 s.

Prints the JSON and writes ``OUT/online.json``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import json
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


def publish(url: str, cfg, items: int, seed: int = 0, item_vectors=None,
            user_vectors=None) -> None:
    """One active version: ``items`` items and ``USERS`` users, of the given vectors or
    random ones."""
    from dropoutnet import registry
    from dropoutnet.core import db
    from dropoutnet.recall import vectors

    rng = np.random.default_rng(seed)
    dim = cfg.vector_dim
    if user_vectors is None:
        user_vectors = rng.normal(size=(USERS, dim)).astype(np.float32)
    if item_vectors is None:
        item_vectors = rng.normal(size=(items, dim)).astype(np.float32)
    now = dt.datetime.now(dt.timezone.utc)
    vectors.ensure_tables(url, cfg)
    registry.ensure_tables(url, cfg)
    with db.transaction(url) as cur:
        vectors.write_candidate(cur, cfg, "user", VERSION, "bench", ["user_id"],
                                [(f"u{k}",) for k in range(len(user_vectors))], user_vectors)
        vectors.write_candidate(cur, cfg, "item", VERSION, "bench",
                                ["item_id", "created_at", "attributes"],
                                [(f"i{k}", now, {}) for k in range(len(item_vectors))],
                                item_vectors)
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


def sequential(ports: dict[str, int], requests: int) -> dict[str, dict[str, float]]:
    """Concurrency 1, interleaved: ``requests`` recalls to each API, taking turns request by
    request (the order of each turn alternating), so that both see the same moments of a
    shared machine; p50 and p99 per API (after 20 requests each to warm up)."""
    conns = {mode: http.client.HTTPConnection("127.0.0.1", port, timeout=30)
             for mode, port in ports.items()}
    modes = list(ports)
    for k in range(20):
        for mode in modes:
            ask(conns[mode], k)
    times: dict[str, list[float]] = {mode: [] for mode in modes}
    for k in range(requests):
        for mode in (modes if k % 2 == 0 else modes[::-1]):
            times[mode].append(ask(conns[mode], k))
    return {mode: {"p50_ms": float(np.percentile(t, 50)), "p99_ms": float(np.percentile(t, 99))}
            for mode, t in times.items()}


def burst(port: int, seconds: float, clients: int = 4) -> tuple[int, float, list[float]]:
    """``clients`` clients asking as fast as answered for ``seconds``, each on its own
    kept-alive connection: (requests answered, elapsed seconds, latencies in ms)."""
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
    flat = [x for c in times for x in c]
    return len(flat), time.monotonic() - began, flat


def concurrent(ports: dict[str, int], seconds: float, window: float = 1.0
               ) -> dict[str, dict[str, float]]:
    """4 clients, interleaved: windows of ``window`` seconds taking turns between the APIs
    (the order alternating) for ``seconds`` per API; throughput and p99 per API over its
    windows."""
    modes = list(ports)
    done = {mode: [0, 0.0, []] for mode in modes}
    for j in range(max(1, round(seconds / window))):
        for mode in (modes if j % 2 == 0 else modes[::-1]):
            n, elapsed, times = burst(ports[mode], window)
            done[mode][0] += n
            done[mode][1] += elapsed
            done[mode][2] += times
    return {mode: {"qps": n / elapsed, "p99_ms": float(np.percentile(times, 99))}
            for mode, (n, elapsed, times) in done.items()}


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
        modes = {"on": paths["on"], "off": paths["off"], "off_again": paths["off"]}
        rounds: list[dict[str, dict]] = []
        for r in range(args.rounds):
            # fresh processes each round, started in turn order, so that neither side keeps
            # a lucky (or unlucky) process, core or memory layout for the whole run
            order = list(modes) if r % 2 == 0 else list(modes)[::-1]
            ports = {mode: free_port() for mode in order}
            for mode in order:
                procs.append(start_api(modes[mode], ports[mode], url, home))
            one = sequential(ports, args.requests)
            four = concurrent(ports, args.seconds)
            rounds.append({mode: {"c1_p50_ms": one[mode]["p50_ms"],
                                  "c1_p99_ms": one[mode]["p99_ms"],
                                  "c4_qps": four[mode]["qps"],
                                  "c4_p99_ms": four[mode]["p99_ms"]} for mode in modes})
            print(f"round {r + 1}: " + json.dumps(rounds[-1]), flush=True)
            for p in procs:
                p.terminate()
                p.wait(timeout=30)
            procs.clear()

        def median(values) -> float:
            return round(statistics.median(values), 3)

        def paired(mode: str) -> dict[str, float]:
            """``mode`` against the log off, round by round (medians over rounds)."""
            return {"c1_p99_ms": median(x[mode]["c1_p99_ms"] - x["off"]["c1_p99_ms"]
                                        for x in rounds),
                    "c4_p99_ms": median(x[mode]["c4_p99_ms"] - x["off"]["c4_p99_ms"]
                                        for x in rounds),
                    "c4_throughput_ratio": median(x[mode]["c4_qps"] / x["off"]["c4_qps"]
                                                  for x in rounds)}

        recall = {mode: {key: median(x[mode][key] for x in rounds) for key in rounds[0][mode]}
                  for mode in modes}
        overhead, noise = paired("on"), paired("off_again")

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
            "noise_floor": noise,
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
