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
(this machine is shared: read the ratios).  Prints the JSON and writes ``OUT/scale.json``.
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=33)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    args = parser.parse_args()

    home = Path(tempfile.mkdtemp(prefix="dropoutnet-scale-"))
    os.environ["DROPOUTNET_HOME"] = str(home)
    os.environ.pop("DROPOUTNET_DATABASE_URL", None)
    import psycopg2

    from dropoutnet import embedded_pg, locations
    from dropoutnet.config import HnswConfig

    vectors = clustered_unit_vectors(args.items, args.dim)
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
    finally:
        embedded_pg.stop(home)
        shutil.rmtree(home, ignore_errors=True)
    rate = {m: round(args.items / statistics.median(s)) for m, s in seconds.items()}
    result["load_rows_per_s"] = rate
    result["load_ratio_to_executemany"] = {m: round(rate[m] / rate["executemany"], 2)
                                           for m in methods}
    result["targets"] = {"binary_copy_vectors_per_s": {"goal": 250_000,
                                                       "measured": rate["binary_copy"]}}
    text = json.dumps(result, indent=1)
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "scale.json").write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
