"""A recall's time at catalogue scale, layer by layer: the scan, ``recall()``, ``/v1/recall``.

    .venv/bin/python bench/recall_api.py [--items 1000000] [--requests 1000] [--rounds 3]
                                         [--seconds 5] [--out bench/results]

Runs in a temporary ``DROPOUTNET_HOME`` with its own embedded Postgres (its memory sized to
the machine, as the pipeline starts it).  One published, active version: ``--items`` item
vectors drawn as ``bench/scale.py`` draws them (clustered, unit length, 33 dimensions: the
demo model's), indexed by the pipeline itself (``recall.vectors.write_candidate``: HNSW with
``retrieval.hnsw``'s settings), 2,000 users drawn alike, and the version prewarmed as publish
does.  Then, in rounds, each layer in turn for ``--requests`` sequential recalls of 100 items
(the users taken in turn), after a warm-up:

* ``scan``: the retrieval statements alone on one connection
  (:func:`dropoutnet.recall.retrieval.execute_scan`, the user's vector already in hand);
* ``recall``: :func:`dropoutnet.recall.retrieval.recall` in this process on one connection:
  the active version and experiment lookups, the user's vector, the scan;
* ``api``: ``GET /v1/recall`` of a ``dropoutnet recall-api`` process over a kept-alive
  connection (the served log off: ``bench/online.py`` measures its cost).

p50 and p99 per layer (medians over rounds), the differences between layers (what each adds),
and ``/v1/recall``'s throughput with 4 clients (``--seconds`` per round).  Target: p99 <= 8 ms
through ``/v1/recall``.  Prints the JSON and writes ``OUT/recall_api.json``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from common import REPO, free_port, new_home, remove_home, write_result  # first: the repo path
from online import USERS, VERSION, burst, config, publish, start_api
from scale import clustered_unit_vectors

TOP_N = 100


def timed(fn, requests: int, warm: int = 50) -> list[float]:
    """``fn(k)`` for k in 0..requests-1 after ``warm`` calls: each call's ms."""
    for k in range(warm):
        fn(k)
    out = []
    for k in range(requests):
        started = time.perf_counter()
        fn(k)
        out.append(1000 * (time.perf_counter() - started))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    args = parser.parse_args()

    home = new_home("dropoutnet-bench-recall-api-")
    proc = None
    try:
        from dropoutnet.config import load_config
        from dropoutnet.core import db
        from dropoutnet.local import embedded_pg
        from dropoutnet.recall.retrieval import execute_scan, recall, user_vector

        url = embedded_pg.ensure_database_url()
        path = config(home, log=False)
        cfg = load_config(path)
        dim = cfg.vector_dim
        started = time.perf_counter()
        from dropoutnet.recall import vectors

        publish(url, cfg, args.items, item_vectors=clustered_unit_vectors(args.items, dim, 0),
                user_vectors=clustered_unit_vectors(USERS, dim, 1))
        vectors.prewarm(cfg, VERSION, url)  # as publish does
        built = round(time.perf_counter() - started, 1)
        print(f"published {args.items} items in {built} s", file=sys.stderr, flush=True)
        conn = db.connect(url)
        cur = conn.cursor()
        users = [user_vector(cur, cfg, VERSION, f"u{k}") for k in range(USERS)]
        conn.commit()
        hnsw = cfg.retrieval.hnsw
        context = {"schema": cfg.storage.schema_, "table": "item_embeddings",
                   "created_range": False, "filtered": False, "excluding": False,
                   "vector_type": cfg.storage.vector_type}

        def scan(k: int) -> None:
            execute_scan(cur, {"user_vector": users[k % USERS], "model_version": VERSION,
                               "top_n": TOP_N},
                         ef_search=max(hnsw.ef_search, TOP_N), iterative_scan="off",
                         max_scan_tuples=hnsw.max_scan_tuples, **context)
            assert len(cur.fetchall()) == TOP_N
            conn.commit()

        def in_process(k: int) -> None:
            assert len(recall(cfg, f"u{k % USERS}", TOP_N, url, cur=cur)["items"]) == TOP_N
            conn.commit()

        port = free_port()
        proc = start_api(path, port, url, home)
        http_conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

        def api(k: int) -> None:
            http_conn.request("GET", f"/v1/recall?user_id=u{k % USERS}&n={TOP_N}")
            response = http_conn.getresponse()
            body = response.read()
            if response.status != 200:
                raise RuntimeError(f"recall answered {response.status}: {body[:200]!r}")

        layers = {"scan": scan, "recall": in_process, "api": api}
        rounds: list[dict] = []
        for r in range(args.rounds):
            row = {}
            for name, fn in layers.items():
                if name == "api":  # a fresh connection: the server closes idle ones
                    http_conn.close()
                ms = timed(fn, args.requests)
                row[name] = {"p50_ms": float(np.percentile(ms, 50)),
                             "p99_ms": float(np.percentile(ms, 99))}
            n, elapsed, ms = burst(port, args.seconds)
            row["api_c4"] = {"qps": n / elapsed, "p99_ms": float(np.percentile(ms, 99))}
            rounds.append(row)
            print(f"round {r + 1}: {json.dumps(row)}", file=sys.stderr, flush=True)
        conn.close()
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=30)
        remove_home(home)

    def median(layer: str, key: str) -> float:
        return round(statistics.median(x[layer][key] for x in rounds), 3)

    layers_out = {name: {key: median(name, key) for key in rounds[0][name]}
                  for name in rounds[0]}
    result = {
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "items": args.items, "dim": dim, "top_n": TOP_N, "requests": args.requests,
        "rounds": args.rounds, "publish_seconds": built,
        "layers": layers_out,
        "added_p50_ms": {
            "recall_over_scan": round(layers_out["recall"]["p50_ms"]
                                      - layers_out["scan"]["p50_ms"], 3),
            "api_over_recall": round(layers_out["api"]["p50_ms"]
                                     - layers_out["recall"]["p50_ms"], 3)},
        "target": {"api_p99_ms": 8.0, "met": layers_out["api"]["p99_ms"] <= 8.0},
        "runs": rounds,
    }
    write_result(result, args.out, "recall_api.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
