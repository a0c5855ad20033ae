"""The embedding store at catalogue scale: loading vectors, building
the HNSW index, querying it.

    .venv/bin/python bench/scale.py [--items 100000] [--dim 33] [--rounds 3] [--out bench/results]
    .venv/bin/python bench/scale.py --configs m=16 storage=halfvec m=24,ef_construction=128
    .venv/bin/python bench/scale.py --sections load --items 1000000 --name copy-1m.json

Runs in a temporary ``DROPOUTNET_HOME`` with its own embedded Postgres.  **Load**: ``--items``
clustered unit vectors of ``--dim`` (the demo model's 32 + the prior) with their ids and
creation times, written into a fresh table of the embedding store's shape, side by side:

* ``binary_copy``: the pipeline's encoding (:func:`dropoutnet.recall.vectors.copy_binary`), the
  whole payload at once, then ``COPY ... (format binary)``, our encoding included;
* ``binary_copy_streamed``: the same rows sent as the embedding tasks send theirs
  (:func:`dropoutnet.recall.vectors.copy_reader`: chunks of the tasks' 8,192 rows encoded as COPY
  reads them, 1 MB reads), so our encoding and the server's parsing overlap;
* ``binary_copy_halfvec``: ``binary_copy`` into a ``halfvec`` column (``storage.vector_type:
  halfvec``: float16s on the wire);
* ``text_copy``: the text COPY the pipeline used before (each float formatted ``%.7g``);
* ``executemany``: psycopg2's ``execute_values`` INSERT, pages of 1,000 rows.

Every method runs ``--rounds`` times, interleaved; the JSON reports the median rows/s of each
and their ratios (this machine is shared: read the ratios).  Before the server starts,
``encode`` times our encoding alone, :func:`dropoutnet.recall.vectors.copy_binary` (vectorised in
numpy) against :func:`per_row_copy_binary` (the per-row ``struct.pack`` encoder it replaced),
``--rounds`` times interleaved, on the load's rows (ids all of one width) and on the same rows
with ids of 2 to 7 characters: median rows/s, their ratio, and whether the bytes are equal.

**Index**: one table per index setting (``--configs``, each ``key=value,...`` over ``m``,
``ef_construction``, ``maintenance_work_mem``, ``storage``; a key left out takes ``--m``,
``--ef-construction``, ``--maintenance-work-mem``, ``--storage``, whose defaults are
``retrieval.hnsw``'s and ``storage.vector_type``'s), loaded by binary COPY and indexed after
the load by the pipeline's own ``recall/hnsw_index.sql`` (``maintenance_work_mem`` set locally): the
build's seconds, whether the graph outgrew ``maintenance_work_mem`` (pgvector's notice), and
the table's and index's sizes.

**Query**: ``--queries`` query vectors drawn like the items; for each ``ef_search``, each setting in
turn (side by side, so drift hits them alike), the pipeline's retrieval statement
(``recall/retrieve.sql`` and ``recall/retrieval_settings.sql`` themselves: HNSW, inner product, the
query vector cast to the stored type) at concurrency 1 (p50 / p99 latency, recall@100 against the
exact answer over the model's float32 vectors, so halfvec's rounding counts: the exact answer over
its float16 values reaches ``stored_exact_recall_at_100``), 4 and 16 (queries/s, one connection per
client, ``--seconds`` each); the same with a filter (items created in the newest 10 %, iterative
scan); the exact scan in Postgres (``recall/retrieve.sql``'s exact fallback) and an exact top-k in
numpy over the same vectors (the ceiling for exactness).

The JSON keeps its shape: ``hnsw_build_s``, ``hnsw`` and ``query`` are the first setting's;
``index_configs`` lists every setting with its build and queries, and ``targets`` says, per
setting, the smallest ``ef_search`` reaching recall@100 0.97 and whether it also meets p99
<= 15 ms and >= 300 QPS at concurrency 4.

``--sections`` (``load,index,query`` by default) runs a part only, e.g. ``load``; ``query``
needs ``index``.  A section not run leaves its keys out.  Prints the JSON and writes
``OUT/NAME`` (``--name``, ``scale.json`` by default).
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import json
import os
import re
import statistics
import struct
import sys
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from common import REPO, new_home, remove_home, write_result  # first: the repository on the path


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


def per_row_copy_binary(rows, vectors, *, vector_type: str = "vector") -> bytes:
    """The binary COPY payload as :func:`dropoutnet.recall.vectors.copy_binary` encoded it before it
    was vectorised: a row at a time, ``struct.pack`` per field.  The reference for its bytes
    (``tests/test_vectors.py``) and for the encode-only rates."""
    from dropoutnet.recall.vectors import _COPY_HEADER, _COPY_TRAILER, _PG_EPOCH, stored_values

    vectors = stored_values(vectors, vector_type)
    dim = vectors.shape[1] if vectors.ndim == 2 else 0
    vector_head = struct.pack("!ihh", 4 + vectors.dtype.itemsize * dim, dim, 0)
    out = [_COPY_HEADER]
    for values, vector in zip(rows, vectors):
        out.append(struct.pack("!h", len(values) + 1))
        for v in values:
            if v is None:
                out.append(struct.pack("!i", -1))
            elif isinstance(v, dt.datetime):
                moment = v if v.tzinfo else v.replace(tzinfo=dt.timezone.utc)
                out.append(struct.pack("!iq", 8, (moment - _PG_EPOCH) // dt.timedelta(
                    microseconds=1)))
            elif isinstance(v, dict):
                data = b"\x01" + json.dumps(v, ensure_ascii=False,
                                             separators=(",", ":")).encode()
                out += [struct.pack("!i", len(data)), data]
            else:
                text = str(v).encode()
                out += [struct.pack("!i", len(text)), text]
        out += [vector_head, vector.tobytes()]
    out.append(_COPY_TRAILER)
    return b"".join(out)


def encode_rates(rows, vectors, rounds: int) -> dict:
    """Encode-only rows/s of :func:`dropoutnet.recall.vectors.copy_binary` (vectorised) and of
    :func:`per_row_copy_binary` on the same rows, interleaved over ``rounds``: medians, their
    ratio, and whether the payloads are byte for byte the same."""
    from dropoutnet.recall.vectors import copy_binary

    encoders = {"vectorised": copy_binary, "per_row": per_row_copy_binary}
    seconds: dict[str, list[float]] = {name: [] for name in encoders}
    payloads = {}
    for _ in range(rounds):
        for name, encode in encoders.items():
            started = time.perf_counter()
            payloads[name] = encode(rows, vectors)
            seconds[name].append(time.perf_counter() - started)
    rate = {name: round(len(rows) / statistics.median(s)) for name, s in seconds.items()}
    same = payloads["vectorised"] == payloads["per_row"]
    return {"rows_per_s": rate, "vectorised_vs_per_row": round(
        rate["vectorised"] / rate["per_row"], 2), "identical_bytes": same,
        "payload_mb": round(len(payloads["vectorised"]) / 2 ** 20, 1)}


def load(cur, method: str, rows, vectors, dim: int) -> float:
    """Seconds to load ``rows`` and ``vectors`` into a fresh table, encoding included."""
    from psycopg2.extras import execute_values

    from dropoutnet.recall.vectors import copy_binary, copy_reader
    from dropoutnet.steps.embeddings import CHUNK_ROWS

    vector_type = "halfvec" if method == "binary_copy_halfvec" else "vector"
    cur.execute("drop table if exists bench_load")
    cur.execute(f"create table bench_load (model_version text, item_id text, "
                f"created_at timestamptz, embedding {vector_type}({int(dim)}))")
    started = time.perf_counter()
    columns = "bench_load (model_version, item_id, created_at, embedding)"
    if method == "binary_copy_streamed":  # as write_candidate_chunks sends the embedding chunks
        cur.copy_expert(f"copy {columns} from stdin with (format binary)",
                        copy_reader((rows[k:k + CHUNK_ROWS], vectors[k:k + CHUNK_ROWS])
                                    for k in range(0, len(rows), CHUNK_ROWS)), size=1 << 20)
    elif method.startswith("binary_copy"):
        cur.copy_expert(f"copy {columns} from stdin with (format binary)",
                        io.BytesIO(copy_binary(rows, vectors, vector_type=vector_type)))
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
VERSION = "20261130"
SECTIONS = ("load", "index", "query")
CONFIG_KEYS = {"m": "m", "ef_construction": "ef_construction", "efc": "ef_construction",
               "maintenance_work_mem": "maintenance_work_mem", "mwm": "maintenance_work_mem",
               "storage": "storage"}


@dataclass(frozen=True)
class IndexSetting:
    """One index setting compared: ``retrieval.hnsw``'s build settings (validated by
    :class:`dropoutnet.config.HnswConfig`) and ``storage.vector_type``."""

    hnsw: Any
    storage: str
    schema: str = "public"  # where its table is made: main() sets the connection's schema

    @property
    def label(self) -> str:
        return (f"{self.storage} m{self.hnsw.m} efc{self.hnsw.ef_construction} "
                f"{self.hnsw.maintenance_work_mem}")

    @property
    def table(self) -> str:
        return "bench_" + re.sub(r"\W+", "_", self.label).lower()


def parse_settings(specs: list[str] | None, defaults: dict[str, Any]) -> list[IndexSetting]:
    """``--configs`` (``m=24,ef_construction=128,storage=halfvec`` each; ``efc`` and ``mwm``
    abbreviate) over the single options' ``defaults``; the single options alone without it."""
    from dropoutnet.config import HnswConfig

    out = []
    for spec in specs or [""]:
        values = dict(defaults)
        for part in filter(None, (p.strip() for p in spec.split(","))):
            key, sep, value = part.partition("=")
            if not sep or key.strip() not in CONFIG_KEYS:
                raise SystemExit(f"--configs {spec!r}: {part!r} is not KEY=VALUE with KEY one "
                                 f"of {sorted(CONFIG_KEYS)}")
            values[CONFIG_KEYS[key.strip()]] = value.strip()
        if values["storage"] not in ("vector", "halfvec"):
            raise SystemExit(f"storage must be vector or halfvec, got {values['storage']!r}")
        mwm = values["maintenance_work_mem"]
        hnsw = HnswConfig(m=int(values["m"]), ef_construction=int(values["ef_construction"]),
                          maintenance_work_mem=int(mwm) if str(mwm).isdigit() else mwm)
        setting = IndexSetting(hnsw, values["storage"])
        if setting.label in {o.label for o in out}:
            raise SystemExit(f"--configs names {setting.label!r} twice")
        out.append(setting)
    return out


def build(cur, setting: IndexSetting, rows, vectors: np.ndarray, dim: int) -> dict:
    """Load ``setting``'s table (binary COPY) and build its index as the pipeline does
    (``recall/hnsw_index.sql``, in the load's transaction); the build's figures."""
    from dropoutnet.core import sql
    from dropoutnet.recall.vectors import copy_reader

    table, hnsw, vector_type = setting.table, setting.hnsw, setting.storage
    cur.execute(f"drop table if exists {table}")
    cur.execute(f"create table {table} (model_version text, item_id text, "
                f"created_at timestamptz, embedding {vector_type}({int(dim)}))")
    chunk = 100_000
    cur.copy_expert(f"copy {table} from stdin with (format binary)",
                    copy_reader(((rows[k:k + chunk], vectors[k:k + chunk])
                                 for k in range(0, len(rows), chunk)),
                                vector_type=vector_type), size=1 << 20)
    seen = len(cur.connection.notices)
    started = time.perf_counter()
    sql.execute(cur, "recall/hnsw_index.sql",
                params={"maintenance_work_mem": hnsw.maintenance_work_mem},
                schema=setting.schema, stage=table, m=hnsw.m,
                ef_construction=hnsw.ef_construction, vector_type=vector_type)
    cur.connection.commit()
    seconds = time.perf_counter() - started
    outgrew = any("maintenance_work_mem" in n for n in cur.connection.notices[seen:])
    cur.execute(f"analyze {table}")
    cur.execute("select pg_table_size(%s), pg_indexes_size(%s)", (table, table))
    table_bytes, index_bytes = cur.fetchone()
    cur.connection.commit()
    return {"label": setting.label, "storage": vector_type, "m": hnsw.m,
            "ef_construction": hnsw.ef_construction,
            "maintenance_work_mem": hnsw.maintenance_work_mem,
            "build_s": round(seconds, 2), "graph_outgrew_maintenance_work_mem": outgrew,
            "table_mb": round(table_bytes / 2 ** 20, 1),
            "index_mb": round(index_bytes / 2 ** 20, 1)}


def top_k(vectors: np.ndarray, query: np.ndarray, k: int, keep: np.ndarray | None = None):
    scores = vectors @ query
    if keep is not None:
        scores = np.where(keep, scores, -np.inf)
    best = np.argpartition(-scores, k)[:k]
    return set(best[np.isfinite(scores[best])].tolist())


def search(cur, setting: IndexSetting, query: np.ndarray, ef: int, created_from=None,
           created_to=None, iterative: str = "strict_order", exact: bool = False) -> set[int]:
    """The pipeline's retrieval statements
    (:func:`dropoutnet.recall.retrieval.execute_scan`: ``recall/retrieval_settings.sql`` and
    ``recall/retrieve.sql`` in one round trip, the query vector cast to the stored type) on
    ``setting``'s table: the top K items' row numbers.  A filtered scan is iterative
    (``iterative``: pgvector's ``strict_order`` or ``relaxed_order``); ``exact``: the exact
    fallback (ordered by the computed score, no index)."""
    from dropoutnet.recall.retrieval import execute_scan

    ranged = created_from is not None
    execute_scan(cur, {"user_vector": query, "model_version": VERSION, "top_n": K,
                       "created_from": created_from, "created_to": created_to},
                 ef_search=ef, iterative_scan=iterative if ranged else "off",
                 max_scan_tuples=setting.hnsw.max_scan_tuples, exact=exact,
                 schema=setting.schema, table=setting.table, vector_type=setting.storage,
                 created_range=ranged, filtered=False, excluding=False)
    return {int(r[0][1:]) for r in cur.fetchall()}


def server_memory(home: Path, arm: str, settings: list[IndexSetting]) -> None:
    """Restart the embedded server with ``arm``'s shared buffers (``default``: 128 MB;
    ``sized``: :func:`dropoutnet.local.embedded_pg.server_settings`'s) and, for ``sized``,
    read every setting's table and indexes into them (pg_prewarm, as publish does)."""
    import psycopg2

    from dropoutnet.local import embedded_pg

    if arm not in ("default", "sized"):
        raise SystemExit(f"--memory {arm!r}: 'default' or 'sized'")
    if arm == "default":
        os.environ[embedded_pg.SHARED_BUFFERS_ENV] = "128MB"
    else:
        os.environ.pop(embedded_pg.SHARED_BUFFERS_ENV, None)
    embedded_pg.stop(home)
    url = embedded_pg.app_url(embedded_pg.start(home))  # restarted with the arm's setting
    with psycopg2.connect(url) as conn, conn.cursor() as cur:
        cur.execute("show shared_buffers")
        print(f"memory {arm}: shared_buffers {cur.fetchone()[0]}", file=sys.stderr, flush=True)
        if arm == "sized":
            for setting in settings:
                cur.execute("select sum(pg_prewarm(c.oid)) from pg_class as c where c.oid = "
                            "%s::regclass or c.oid in (select indexrelid from pg_index where "
                            "indrelid = %s::regclass)", (setting.table, setting.table))
                print(f"  warmed {setting.table}: {cur.fetchone()[0]} blocks", file=sys.stderr,
                      flush=True)


def query_section(url: str, settings: list[IndexSetting], vectors: np.ndarray, times: list,
                  queries: np.ndarray, seconds: float, ef_search: tuple[int, ...]) -> dict:
    """Per setting: ``{"hnsw": {ef: row}, "hnsw_filtered": {ef: row},
    "postgres_exact_scan_ms"}``, measured ef by ef with the settings side by side; and the
    numpy exact top-k's time, under ``"numpy_exact_ms"``."""
    from dropoutnet.core import db

    n = len(vectors)
    exact = [top_k(vectors, q, K) for q in queries]
    newest = np.arange(n) < n // 10  # item k was created k seconds before now
    created_to, created_from = times[0] + dt.timedelta(seconds=1), times[n // 10 - 1]
    exact_filtered = [top_k(vectors, q, K, newest) for q in queries]
    started = time.perf_counter()
    for q in queries:
        top_k(vectors, q, K)
    numpy_ms = round(1000 * (time.perf_counter() - started) / len(queries), 2)
    out: dict[str, dict] = {s.label: {"k": K, "queries": len(queries), "hnsw": {},
                                      "hnsw_filtered": {}, "hnsw_filtered_relaxed": {}}
                            for s in settings}
    # the stored type's own ceiling: the exact top K over the stored values (halfvec: float16
    # roundings of items and query, as pgvector compares them) against the float32 answer
    for vector_type in {s.storage for s in settings}:
        stored, asked = (vectors, queries) if vector_type == "vector" else (
            vectors.astype(np.float16).astype(np.float32),
            queries.astype(np.float16).astype(np.float32))
        ceiling = round(float(np.mean([len(top_k(stored, q, K) & want) / K
                                       for q, want in zip(asked, exact)])), 4)
        for setting in settings:
            if setting.storage == vector_type:
                out[setting.label]["stored_exact_recall_at_100"] = ceiling
    conn = db.connect(url)
    try:
        with conn.cursor() as cur:
            for setting in settings:
                times_ms = []
                for q in queries[:20]:
                    started = time.perf_counter()
                    search(cur, setting, q, 40, exact=True)
                    times_ms.append(1000 * (time.perf_counter() - started))
                    conn.commit()
                out[setting.label]["postgres_exact_scan_ms"] = round(
                    statistics.median(times_ms), 1)
            for name, ranges, truth in (
                    ("hnsw", (None, None), exact),
                    ("hnsw_filtered", (created_from, created_to, "strict_order"),
                     exact_filtered),
                    ("hnsw_filtered_relaxed", (created_from, created_to, "relaxed_order"),
                     exact_filtered)):
                for ef in ef_search:
                    for setting in settings:
                        lat, hits = [], []
                        for q, want in zip(queries, truth):
                            started = time.perf_counter()
                            got = search(cur, setting, q, ef, *ranges)
                            lat.append(1000 * (time.perf_counter() - started))
                            hits.append(len(got & want) / max(len(want), 1))
                            conn.commit()
                        row = {"recall_at_100": round(float(np.mean(hits)), 4),
                               "p50_ms": round(float(np.percentile(lat, 50)), 2),
                               "p99_ms": round(float(np.percentile(lat, 99)), 2)}
                        for c in CONCURRENCY:
                            row[f"qps_c{c}"] = qps(url, setting, queries, ef, c, seconds,
                                                   ranges)
                        out[setting.label][name][str(ef)] = row
                        print(f"{setting.label} {name} ef_search {ef}: {row}",
                              file=sys.stderr, flush=True)
    finally:
        conn.close()
    for section in out.values():
        section["numpy_exact_ms"] = numpy_ms
    return out


def qps(url: str, setting: IndexSetting, queries: np.ndarray, ef: int, clients: int,
        seconds: float, ranges) -> float:
    """Queries per second of ``clients`` connections searching for ``seconds``."""
    from dropoutnet.core import db

    counts = [0] * clients
    deadline = time.perf_counter() + seconds

    def client(k: int) -> None:
        conn = db.connect(url)
        try:
            with conn.cursor() as cur:
                i = k
                while time.perf_counter() < deadline:
                    search(cur, setting, queries[i % len(queries)], ef, *ranges)
                    conn.commit()
                    counts[k] += 1
                    i += clients
        finally:
            conn.close()

    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return round(sum(counts) / seconds, 1)


def target(query: dict) -> dict:
    """The target for one setting: the smallest ef_search reaching recall@100 0.97,
    its row, and whether that row also has p99 <= 15 ms and >= 300 QPS at concurrency 4."""
    best = {ef: row for ef, row in query["hnsw"].items() if row["recall_at_100"] >= 0.97}
    ef = min(best, key=int) if best else None
    met = any(row["p99_ms"] <= 15 and row["qps_c4"] >= 300 for row in best.values())
    return {"ef_search_reaching_recall_0.97": ef, "at_that_ef": best[ef] if best else None,
            "met_at_some_ef": met}


def main() -> int:
    from pydantic import ValidationError

    from dropoutnet.config import HnswConfig, format_errors

    hnsw_defaults = HnswConfig()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=33)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=5.0, help="per QPS measurement")
    parser.add_argument("--m", type=int, default=hnsw_defaults.m)
    parser.add_argument("--ef-construction", type=int, default=hnsw_defaults.ef_construction)
    parser.add_argument("--maintenance-work-mem", default=hnsw_defaults.maintenance_work_mem,
                        help="a PostgreSQL size ('1GB') or megabytes")
    parser.add_argument("--storage", choices=("vector", "halfvec"), default="vector")
    parser.add_argument("--configs", nargs="+", metavar="KEY=VALUE,...",
                        help="index settings to compare side by side, e.g. m=16 "
                             "storage=halfvec m=24,ef_construction=128,mwm=2GB (keys m, "
                             "ef_construction|efc, maintenance_work_mem|mwm, storage; the "
                             "rest from the single options)")
    parser.add_argument("--ef-search", type=int, nargs="+", default=list(EF_SEARCH))
    parser.add_argument("--sections", default=",".join(SECTIONS),
                        help="what to measure, comma-separated, of load, index, query (query "
                             "needs index)")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    parser.add_argument("--name", default="scale.json", help="the JSON's file name in --out")
    parser.add_argument("--memory", default="sized",
                        help="the server's memory for the queries, in turn: 'default' "
                             "(PostgreSQL's 128 MB of shared buffers, nothing warmed) and/or "
                             "'sized' (the embedded server's own setting, the indexes "
                             "warmed with pg_prewarm as publish does), e.g. default,sized")
    args = parser.parse_args()
    sections = set(args.sections.split(","))
    if not sections <= set(SECTIONS) or not sections:
        parser.error(f"--sections {args.sections!r}: a comma-separated subset of "
                     f"{','.join(SECTIONS)}")
    if "query" in sections and "index" not in sections:
        parser.error("--sections: query needs index (it queries the indexes built there)")
    if min(args.ef_search) < K:
        parser.error(f"--ef-search must be at least {K}: an HNSW scan returns at most "
                     f"ef_search rows")
    try:
        settings = parse_settings(args.configs, {
            "m": args.m, "ef_construction": args.ef_construction,
            "maintenance_work_mem": args.maintenance_work_mem, "storage": args.storage})
    except ValidationError as exc:  # HnswConfig's validation, as the config loader says it
        parser.error(format_errors(exc, "invalid index setting").replace(
            "  - (top level)", "  - retrieval.hnsw"))

    home = new_home("dropoutnet-scale-")
    import psycopg2

    from dropoutnet.local import embedded_pg

    drawn = clustered_unit_vectors(args.items + args.queries, args.dim)  # one distribution
    vectors, queries = drawn[:args.items], drawn[args.items:]
    now = dt.datetime.now(dt.timezone.utc)
    rows = [(VERSION, f"i{k:07d}", now - dt.timedelta(seconds=k)) for k in range(args.items)]
    methods = ("binary_copy", "binary_copy_streamed", "binary_copy_halfvec", "text_copy",
               "executemany")
    seconds: dict[str, list[float]] = {m: [] for m in methods}
    result: dict = {"date": now.isoformat(timespec="seconds"),
                    "machine": f"{os.cpu_count()} cores (shared)", "items": args.items,
                    "dim": args.dim, "rounds": args.rounds,
                    "sections": [s for s in SECTIONS if s in sections],
                    "load_average_at_start": round(os.getloadavg()[0], 1)}
    builds, queried = [], {}
    if "load" in sections:  # before the server starts: our encoding alone
        # the load's ids (all 8 characters: no padding to cut) and ids of 2 to 7 characters
        varied = [(v, f"i{k}", c) for k, (v, _, c) in enumerate(rows)]
        result["encode"] = {"ids_of_one_width": encode_rates(rows, vectors, args.rounds),
                            "ids_of_varying_width": encode_rates(varied, vectors, args.rounds)}
        print(f"encode: {result['encode']}", file=sys.stderr, flush=True)
    try:
        with psycopg2.connect(embedded_pg.ensure_database_url()) as conn, conn.cursor() as cur:
            for _ in range(args.rounds if "load" in sections else 0):
                for method in methods:
                    seconds[method].append(load(cur, method, rows, vectors, args.dim))
                    print(f"load {method}: {args.items / seconds[method][-1]:.0f} rows/s",
                          file=sys.stderr, flush=True)
            cur.execute("drop table if exists bench_load")
            cur.execute("show max_parallel_maintenance_workers")
            result["max_parallel_maintenance_workers"] = int(cur.fetchone()[0])
            cur.execute("select current_schema()")
            (schema,) = cur.fetchone()
            settings = [replace(s, schema=schema) for s in settings]
            conn.commit()
            for setting in settings if "index" in sections else ():
                builds.append(build(cur, setting, rows, vectors, args.dim))
                print(f"built {builds[-1]}", file=sys.stderr, flush=True)
        if "query" in sections:
            arms = args.memory.split(",")
            by_arm = {}
            for arm in arms:  # the last arm's figures are the result's "query"
                server_memory(home, arm, settings)
                by_arm[arm] = query_section(embedded_pg.ensure_database_url(), settings,
                                            vectors, [r[2] for r in rows], queries,
                                            args.seconds, tuple(args.ef_search))
            queried = by_arm[arms[-1]]
            if len(arms) > 1:
                result["memory_arms"] = by_arm
    finally:
        remove_home(home)
    result["targets"] = {}
    if "load" in sections:
        rate = {m: round(args.items / statistics.median(s)) for m, s in seconds.items()}
        result["load_rows_per_s"] = rate
        result["load_ratio_to_executemany"] = {m: round(rate[m] / rate["executemany"], 2)
                                               for m in methods}
        result["targets"]["binary_copy_vectors_per_s"] = {
            "goal": 250_000, "measured": rate["binary_copy"],
            "measured_streamed": rate["binary_copy_streamed"]}
    if builds:
        first = builds[0]
        result["hnsw_build_s"] = first["build_s"]
        result["hnsw"] = {k: first[k] for k in ("m", "ef_construction",
                                                "maintenance_work_mem", "storage")}
        result["index_configs"] = [{**b, "query": queried.get(b["label"])} for b in builds]
    if queried:
        result["query"] = queried[first["label"]]
        result["targets"]["hnsw_recall_0.97_p99_ms_15_qps_c4_300"] = {
            **target(result["query"]),
            "by_config": {b["label"]: target(queried[b["label"]]) for b in builds}}
    result["load_average_at_end"] = round(os.getloadavg()[0], 1)  # the others' work too
    write_result(result, args.out, args.name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
