"""pgvector's binary quantization with re-ranking, against the float HNSW index we build.

    .venv/bin/python bench/binary_quantization.py [--items 200000] [--rounds 2] [--out DIR]

pgvector's ``binary_quantize(v)`` keeps one bit per dimension (1 where the value is > 0); the
recipe for a smaller, faster index is an HNSW index over those bits (Hamming distance) whose
nearest ``n`` candidates are re-ranked by the exact inner product.  On ``bench/scale.py``'s
vectors (:func:`scale.clustered_unit_vectors`, 33 dimensions: the demo model's 32 and its
prior; queries drawn with the items), in a temporary ``DROPOUTNET_HOME`` with its own
embedded Postgres:

* **pgvector**: the float index as the pipeline builds it (``vector_ip_ops``, m 24,
  ef_construction 128, ``ef_search`` 100) against the bit index (same m and
  ef_construction) with ``ef_search`` = ``n`` re-ranked to the top 100, ``n`` in
  :data:`RERANK_PG`; every index prewarmed; p50/p99 of one connection's queries and
  recall@100 against the exact answer, interleaved over ``--rounds``;
* **best case**: the exact Hamming-nearest ``n`` (numpy, no index) re-ranked, for more ``n``
  (:data:`RERANK`): what any index over the bits could at most find.

Prints the JSON and writes ``OUT/binary_quantization.json``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import os
import statistics
import time
from pathlib import Path

import numpy as np
from common import REPO, new_home, remove_home, write_result  # first: the repository on the path
from scale import clustered_unit_vectors, top_k

DIM, K = 33, 100
RERANK = (100, 400, 1_000, 4_000, 10_000)
RERANK_PG = (400, 1_000)  # pgvector's hnsw.ef_search is at most 1,000
# set bits per byte value: the Hamming distance of packed bits by table lookup
POPCOUNT = np.unpackbits(np.arange(256, dtype=np.uint8)[:, None], axis=1).sum(axis=1)
FLOAT_SCAN = "select id from bq order by embedding <#> %(q)s::vector limit 100"
BIT_SCAN = ("select id from (select id, embedding from bq"
            " order by binary_quantize(embedding)::bit(33) <~> binary_quantize(%(q)s::vector)"
            " limit {n}) as candidates"
            " order by embedding <#> %(q)s::vector limit 100")


def best_case(items: np.ndarray, queries: np.ndarray) -> dict[str, float]:
    """Mean recall@K among the exact Hamming-nearest ``n`` re-ranked, per ``n`` of
    :data:`RERANK`."""
    bits = np.packbits(items > 0, axis=1)
    found: dict[int, list[float]] = {n: [] for n in RERANK}
    for query in queries:
        scores = items @ query
        exact = top_k(items, query, K)
        hamming = POPCOUNT[np.bitwise_xor(bits, np.packbits(query > 0))].sum(axis=1)
        nearest = np.argsort(hamming, kind="stable")
        for n in RERANK:
            candidates = nearest[:n]
            top = candidates[np.argsort(-scores[candidates])[:K]]
            found[n].append(len(exact.intersection(top.tolist())) / K)
    return {f"rerank_{n}": round(float(np.mean(v)), 3) for n, v in found.items()}


def in_pgvector(items: np.ndarray, queries: np.ndarray, rounds: int) -> dict:
    """Build both indexes on ``items`` and time ``queries`` against each, in rounds."""
    import psycopg2

    from dropoutnet.local import embedded_pg
    from dropoutnet.recall.vectors import copy_binary

    exact = [{str(i) for i in top_k(items, q, K)} for q in queries]  # the ids, as stored
    literals = ["[" + ",".join(repr(float(x)) for x in q) + "]" for q in queries]
    arms = {"float_ef_search_100": (100, FLOAT_SCAN)}
    arms.update({f"bits_rerank_{n}": (n, BIT_SCAN.format(n=n)) for n in RERANK_PG})
    out: dict = {"build_seconds": {}, "arms": {arm: [] for arm in arms}}
    conn = psycopg2.connect(embedded_pg.ensure_database_url())
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("create extension if not exists vector")
        cur.execute("create extension if not exists pg_prewarm")
        cur.execute("create table bq (id text, embedding vector(33))")  # ids sent as text
        cur.copy_expert("copy bq (id, embedding) from stdin with (format binary)",
                        io.BytesIO(copy_binary([(str(i),) for i in range(len(items))], items)))
        cur.execute("set maintenance_work_mem = '1GB'")
        for name, index in (("float", "(embedding vector_ip_ops)"),
                            ("bits", "((binary_quantize(embedding)::bit(33)) bit_hamming_ops)")):
            started = time.perf_counter()
            cur.execute(f"create index bq_{name} on bq using hnsw {index}"
                        " with (m = 24, ef_construction = 128)")
            out["build_seconds"][name] = round(time.perf_counter() - started, 1)
        cur.execute("vacuum analyze bq")
        cur.execute("select pg_prewarm('bq'), pg_prewarm('bq_float'), pg_prewarm('bq_bits')")
        for _ in range(rounds):
            for arm, (ef_search, scan) in arms.items():
                cur.execute(f"set hnsw.ef_search = {ef_search}")
                ms, recall = [], []
                for literal, truth in zip(literals, exact):
                    started = time.perf_counter()
                    cur.execute(scan, {"q": literal})
                    got = {row[0] for row in cur.fetchall()}
                    ms.append(1000 * (time.perf_counter() - started))
                    recall.append(len(got & truth) / K)
                out["arms"][arm].append({
                    "p50_ms": round(float(np.percentile(ms, 50)), 2),
                    "p99_ms": round(float(np.percentile(ms, 99)), 2),
                    "recall_at_100": round(float(np.mean(recall)), 3)})
                print(arm, out["arms"][arm][-1], flush=True)
    conn.close()
    out["medians"] = {arm: {key: round(statistics.median(r[key] for r in runs), 3)
                            for key in ("p50_ms", "p99_ms", "recall_at_100")}
                      for arm, runs in out["arms"].items()}
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=200_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    args = parser.parse_args()
    drawn = clustered_unit_vectors(args.items + args.queries, DIM)  # as scale.py draws them
    items, queries = drawn[:args.items], drawn[args.items:]
    result: dict = {"date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                    "machine": f"{os.cpu_count()} cores (shared)", "items": args.items,
                    "dim": DIM, "queries": args.queries, "k": K,
                    "best_case_recall_at_100": best_case(items, queries)}
    home = new_home("dropoutnet-binary-quantization-")
    try:
        result["pgvector"] = in_pgvector(items, queries, args.rounds)
    finally:
        remove_home(home)
    write_result(result, args.out, "binary_quantization.json")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
