"""The embedding store at catalogue scale (issue 11's benchmark; so far: loading vectors).

    .venv/bin/python bench/scale.py [--items 100000] [--dim 33] [--rounds 3] [--out bench/results]

Runs in a temporary ``DROPOUTNET_HOME`` with its own embedded Postgres.  **Load**: ``--items``
clustered unit vectors of ``--dim`` (the demo model's 32 + the prior) with their ids and
creation times, written into a fresh table of the embedding store's shape, side by side:

* ``binary_copy``: what the pipeline does (:func:`dropoutnet.vectors.copy_binary`, then
  ``COPY ... (format binary)``), our encoding included;
* ``text_copy``: the text COPY the pipeline used before (each float formatted ``%.7g``);
* ``executemany``: psycopg2's ``execute_values`` INSERT, pages of 1,000 rows;

then the HNSW index built after the load (``retrieval.hnsw``'s defaults).  Every method runs
``--rounds`` times, interleaved; the JSON reports the median rows/s of each and their ratios
(this machine is shared: read the ratios).

**Query**: ``--queries`` query vectors drawn like the items; for each ``ef_search`` the
pipeline's retrieval statement (``retrieve.sql``'s shape: HNSW, inner product) at
concurrency 1 (p50 / p99 latency, recall@100 against the exact answer), 4 and 16 (queries/s,
one connection per client, ``--seconds`` each); the same with a filter (items created in the
newest 10 %, iterative scan); the exact scan in Postgres (index off) and an exact top-k in
numpy over the same vectors (the ceiling for exactness).

Prints the JSON and writes ``OUT/scale.json``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import json
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def clustered_unit_vectors(n: int, dim: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(max(1, n // 1000), dim))
    x = centres[rng.integers(0, len(centres), n)] + 0.3 * rng.normal(size=(n, dim))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def text_copy_payload(rows, vectors) -> bytes:
    lines = []
    for (version, item, created), vec in zip(rows, vectors):
        fields = [version, item, created.isoformat()]
        fields.append("[" + ",".join(f"{x:.7g}" for x in vec) + "]")
        lines.append("\t".join(fields))
    return ("\n".join(lines) + "\n").encode()


def load(cur, method: str, rows, vectors, dim: int) -> float:
    """Seconds to load ``rows`` and ``vectors`` into a fresh table, encoding included."""
    from psycopg2.extras import execute_values

    from dropoutnet.vectors import copy_binary

    cur.execute("drop table if exists bench_load")
    cur.execute(f"create table bench_load (model_version text, item_id text, "
                f"created_at timestamptz, embedding vector({int(dim)}))")
    started = time.perf_counter()
    columns = "bench_load (model_version, item_id, created_at, embedding)"
    if method == "binary_copy":
        cur.copy_expert(f"copy {columns} from stdin with (format binary)",
                        io.BytesIO(copy_binary(rows, vectors)))
    elif method == "text_copy":
        cur.copy_expert(f"copy {columns} from stdin", io.BytesIO(text_copy_payload(rows, vectors)))
    else:
        values = [(v, i, c, "[" + ",".join(f"{x:.7g}" for x in vec) + "]")
                  for (v, i, c), vec in zip(rows, vectors)]
        execute_values(cur, f"insert into {columns} values %s", values,
                       template="(%s, %s, %s, %s::vector)", page_size=1000)
    cur.connection.commit()
    return time.perf_counter() - started


K = 100
EF_SEARCH = (100, 200, 400)  # at least K: an HNSW scan returns at most ef_search rows
CONCURRENCY = (4, 16)


def top_k(vectors: np.ndarray, query: np.ndarray, k: int, keep: np.ndarray | None = None):
    scores = vectors @ query
    if keep is not None:
        scores = np.where(keep, scores, -np.inf)
    best = np.argpartition(-scores, k)[:k]
    return set(best[np.isfinite(scores[best])].tolist())


def search(cur, query: np.ndarray, ef: int, created_from=None, created_to=None) -> set[int]:
    """The pipeline's retrieval statement (``retrieve.sql``'s shape, its HNSW settings) on the
    bench table: the top K items' row numbers."""
    cur.execute("select set_config('hnsw.ef_search', %s, true), "
                "set_config('hnsw.iterative_scan', %s, true)",
                (str(ef), "strict_order" if created_from else "off"))
    where = "where created_at >= %(f)s and created_at < %(t)s" if created_from else ""
    cur.execute(f"select item_id from bench_load {where} "
                "order by embedding <#> %(q)s::vector limit %(k)s",
                {"q": "[" + ",".join(map(str, query.tolist())) + "]",
                 "k": K, "f": created_from, "t": created_to})
    return {int(r[0][1:]) for r in cur.fetchall()}


def query_section(url: str, vectors: np.ndarray, times: list, queries: np.ndarray,
                  seconds: float) -> dict:
    import psycopg2

    n = len(vectors)
    exact = [top_k(vectors, q, K) for q in queries]
    newest = np.arange(n) < n // 10  # item k was created k seconds before now
    created_to, created_from = times[0] + dt.timedelta(seconds=1), times[n // 10 - 1]
    exact_filtered = [top_k(vectors, q, K, newest) for q in queries]
    out: dict = {"k": K, "queries": len(queries), "hnsw": {}, "hnsw_filtered": {}}
    started = time.perf_counter()
    for q in queries:
        top_k(vectors, q, K)
    out["numpy_exact_ms"] = round(1000 * (time.perf_counter() - started) / len(queries), 2)
    with psycopg2.connect(url) as conn, conn.cursor() as cur:
        cur.execute("set enable_indexscan = off")
        times_ms = []
        for q in queries[:20]:
            started = time.perf_counter()
            search(cur, q, 40)
            times_ms.append(1000 * (time.perf_counter() - started))
        cur.execute("set enable_indexscan = on")
        out["postgres_exact_scan_ms"] = round(statistics.median(times_ms), 1)
        for name, ranges, truth in (("hnsw", (None, None), exact),
                                    ("hnsw_filtered", (created_from, created_to),
                                     exact_filtered)):
            for ef in EF_SEARCH:
                lat, hits = [], []
                for q, want in zip(queries, truth):
                    started = time.perf_counter()
                    got = search(cur, q, ef, *ranges)
                    lat.append(1000 * (time.perf_counter() - started))
                    hits.append(len(got & want) / max(len(want), 1))
                    conn.commit()
                row = {"recall_at_100": round(float(np.mean(hits)), 4),
                       "p50_ms": round(float(np.percentile(lat, 50)), 2),
                       "p99_ms": round(float(np.percentile(lat, 99)), 2)}
                for c in CONCURRENCY:
                    row[f"qps_c{c}"] = qps(url, queries, ef, c, seconds, ranges)
                out[name][str(ef)] = row
    return out


def qps(url: str, queries: np.ndarray, ef: int, clients: int, seconds: float, ranges) -> float:
    """Queries per second of ``clients`` connections searching for ``seconds``."""
    import psycopg2

    counts = [0] * clients
    deadline = time.perf_counter() + seconds

    def client(k: int) -> None:
        with psycopg2.connect(url) as conn, conn.cursor() as cur:
            i = k
            while time.perf_counter() < deadline:
                search(cur, queries[i % len(queries)], ef, *ranges)
                conn.commit()
                counts[k] += 1
                i += clients

    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return round(sum(counts) / seconds, 1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=33)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=5.0, help="per QPS measurement")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    args = parser.parse_args()

    home = Path(tempfile.mkdtemp(prefix="dropoutnet-scale-"))
    os.environ["DROPOUTNET_HOME"] = str(home)
    os.environ.pop("DROPOUTNET_DATABASE_URL", None)
    import psycopg2

    from dropoutnet import embedded_pg, locations
    from dropoutnet.config import HnswConfig

    drawn = clustered_unit_vectors(args.items + args.queries, args.dim)  # one distribution
    vectors, queries = drawn[:args.items], drawn[args.items:]
    now = dt.datetime.now(dt.timezone.utc)
    rows = [("20261130", f"i{k:07d}", now - dt.timedelta(seconds=k)) for k in range(args.items)]
    methods = ("binary_copy", "text_copy", "executemany")
    seconds: dict[str, list[float]] = {m: [] for m in methods}
    result: dict = {"date": now.isoformat(timespec="seconds"),
                    "machine": f"{os.cpu_count()} cores (shared)", "items": args.items,
                    "dim": args.dim, "rounds": args.rounds}
    try:
        with psycopg2.connect(locations.database_url()) as conn, conn.cursor() as cur:
            for _ in range(args.rounds):
                for method in methods:
                    seconds[method].append(load(cur, method, rows, vectors, args.dim))
            hnsw = HnswConfig()
            started = time.perf_counter()
            cur.execute("set maintenance_work_mem = '256MB'")
            cur.execute(f"create index on bench_load using hnsw (embedding vector_ip_ops) "
                        f"with (m = {hnsw.m}, ef_construction = {hnsw.ef_construction})")
            conn.commit()
            result["hnsw_build_s"] = round(time.perf_counter() - started, 2)
            result["hnsw"] = {"m": hnsw.m, "ef_construction": hnsw.ef_construction}
            cur.execute("analyze bench_load")
            conn.commit()
        result["query"] = query_section(locations.database_url(), vectors,
                                        [r[2] for r in rows], queries, args.seconds)
    finally:
        embedded_pg.stop(home)
        shutil.rmtree(home, ignore_errors=True)
    rate = {m: round(args.items / statistics.median(s)) for m, s in seconds.items()}
    result["load_rows_per_s"] = rate
    result["load_ratio_to_executemany"] = {m: round(rate[m] / rate["executemany"], 2)
                                           for m in methods}
    best = {ef: row for ef, row in result["query"]["hnsw"].items()
            if row["recall_at_100"] >= 0.97}
    result["targets"] = {
        "binary_copy_vectors_per_s": {"goal": 250_000, "measured": rate["binary_copy"]},
        "hnsw_recall_0.97_p99_ms_15_qps_c4_300": {
            "ef_search_reaching_recall_0.97": min(best, key=int) if best else None,
            "at_that_ef": best[min(best, key=int)] if best else None}}
    text = json.dumps(result, indent=1)
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "scale.json").write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
