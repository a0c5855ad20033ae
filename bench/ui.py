"""The console's server time, page by page, at 60 versions and a 1M-item live version.

    .venv/bin/python bench/ui.py [--items 1000000] [--versions 60] [--rounds 3] [--requests 30]

Runs in a temporary ``DROPOUTNET_HOME`` with its own embedded Postgres:

1. synthetic data, and the pipeline run for two bizdates (two real versions: towers,
   embeddings, metrics, gate);
2. the registry grown to ``--versions`` versions: older bizdates recorded like the first real
   one (its run, metrics and config copied under their own names and bizdates, retired as
   retention leaves old versions), each made live once in turn, so the versions page, the
   quality chart and the activation history have ``--versions`` rows;
3. the live version's item partition grown to ``--items`` items: vectors drawn around its
   real item vectors, loaded by binary COPY, the HNSW index rebuilt by the pipeline's own
   ``build_index``;
4. the console app (``dropoutnet.console.app``, the plugin's app without Airflow's
   authentication, which is one JWT check) and the recall API (``dropoutnet recall-api``),
   each in its own process, asked over HTTP on loopback.

Every page and JSON endpoint is asked ``--requests`` times per round, the routes interleaved
within a round, for ``--rounds`` rounds: per route the median over rounds of p50 and p99 (ms).
The playground is also compared with ``/v1/recall`` for the same request (its cost on top of
recall).  Targets: pages p99 <= 300 ms, the playground <= 50 ms p99 on top of recall.  Prints
the JSON and writes ``OUT/NAME`` (``ui.json``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from common import REPO, free_port, new_home, remove_home, write_result

END = dt.date(2026, 11, 20)
DATA = dict(n_users=1500, n_items=1200, n_authors=100, days=10, new_items_per_day=80, seed=7)
PAGE_P99_MS, PLAYGROUND_EXTRA_P99_MS = 300, 50


def serve_console(port: int, url: str, config: str) -> None:
    """The console app on ``port`` (this script's ``--serve`` mode, in its own process)."""
    import uvicorn

    from dropoutnet import pipeline
    from dropoutnet.console.app import Viewer, create_app

    async def editor(request):
        return Viewer("bench", True)

    uvicorn.run(create_app(editor, pipeline.rollback, lambda: url, config_path=config),
                host="127.0.0.1", port=port, log_level="warning")


def grow_registry(url: str, cfg, versions: int) -> list[str]:
    """Older bizdates recorded like the first real version, each made live in turn, then the
    newest real version live again: ``versions`` versions in all."""
    from psycopg2.extras import Json

    from dropoutnet import registry
    from dropoutnet.core import db

    schema, model = cfg.storage.schema_, cfg.model_name
    with db.transaction(url) as cur:
        live = registry.active(cur, cfg)
        first = registry.versions(cur, cfg)[-1]
        cur.execute(f"select * from {schema}.runs where run_id = %s", (first["run_id"],))
        run = db.fetch_dicts(cur)[0]
        cur.execute(f"select metrics from {schema}.metrics where dt = %s", (first["bizdate"],))
        metrics = cur.fetchone()[0]
        names = []
        for back in range(versions - 2, 0, -1):
            day = first["bizdate"] - dt.timedelta(days=back)
            name, run_id = day.strftime("%Y%m%d"), f"bench-{day:%Y%m%d}"
            cur.execute(
                f"insert into {schema}.runs (model_name, run_id, bizdate, pipeline_run, "
                "config_hash, config, status, warm_start_from, warm_start_run, decision, gate, "
                "started_at, finished_at) values (%s, %s, %s, %s, %s, %s, 'succeeded', %s, %s, "
                "'published', %s, now(), now())",
                (model, run_id, day, f"scheduled__{day}T00:00:00+00:00", run["config_hash"],
                 Json(run["config"]), day - dt.timedelta(days=1), None, Json(run["gate"])))
            cur.execute(
                f"insert into {schema}.model_versions (model_name, model_version, bizdate, "
                "export_path, run_id, published_at, retired_at) values (%s, %s, %s, %s, %s, "
                "now(), now())", (model, name, day, first["export_path"], run_id))
            cur.execute(f"insert into {schema}.metrics (dt, model_version, metrics) "
                        "values (%s, %s, %s)",
                        (day, name, Json({**metrics, "bizdate": str(day), "model_version": name,
                                          "run_id": run_id})))
            registry.activate(cur, cfg, name, registry.Change("bench", "cli"), "publish")
            names.append(name)
        registry.activate(cur, cfg, live.model_version, registry.Change("bench", "cli"),
                          "rollback")
    return names


def grow_items(url: str, cfg, version: str, items: int, seed: int = 0) -> dict:
    """The live version's item partition grown to ``items`` items around its real vectors;
    its HNSW index rebuilt after the load."""
    from dropoutnet.core import db, sql
    from dropoutnet.recall import vectors

    schema, table = cfg.storage.schema_, db.partition_name("item_embeddings", version)
    rng = np.random.default_rng(seed)
    started = time.monotonic()
    with db.transaction(url) as cur:
        cur.execute(f"select embedding::text from {schema}.{table}")
        real = np.array([json.loads(v) for (v,) in cur.fetchall()], dtype=np.float32)
        cur.execute("select indexname from pg_indexes where schemaname = %s and tablename = %s "
                    "and indexdef like '%%hnsw%%'", (schema, table))
        for (index,) in cur.fetchall():
            cur.execute(f"drop index {schema}.{index}")
        spread = real.std(axis=0) * 0.5
        categories = ["music", "sports", "food", "tech", "pets", "travel"]
        created = dt.datetime.combine(END, dt.time(), tzinfo=dt.timezone.utc)
        extra = items - len(real)

        def chunks(size: int = 100_000):
            for start in range(0, extra, size):
                n = min(size, extra - start)
                base = real[rng.integers(0, len(real), n)]
                vecs = (base + rng.normal(size=base.shape) * spread).astype(np.float32)
                rows = [(version, f"x{start + i:07d}",
                         created + dt.timedelta(seconds=int(s)),
                         {"category_level1": categories[c]})
                        for i, (s, c) in enumerate(zip(rng.integers(0, 86400, n),
                                                       rng.integers(0, len(categories), n)))]
                yield rows, vecs

        cur.copy_expert(sql.render("recall/copy_embeddings.sql", schema=schema, stage=table,
                                   columns=["model_version", "item_id", "created_at",
                                            "attributes", "embedding"]),
                        vectors.copy_reader(chunks(), vector_type=cfg.storage.vector_type),
                        size=1 << 20)
        loaded = time.monotonic() - started
        build = vectors.build_index(cur, cfg, table, items, version)
        cur.execute(f"analyze {schema}.{table}")
    return {"items": items, "real_items": len(real), "load_s": round(loaded, 1),
            "hnsw_build_s": round(build, 1)}


def wait_for(url: str, proc: subprocess.Popen, seconds: float = 120) -> None:
    import requests

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{url} exited with {proc.returncode}")
        try:
            requests.get(url, timeout=2)
            return
        except requests.RequestException:
            time.sleep(0.3)
    raise RuntimeError(f"{url} did not answer in {seconds}s")


def measure(routes: dict[str, str], rounds: int, per_round: int) -> dict[str, dict]:
    """Per route, the median over rounds of each round's p50 and p99 (ms)."""
    import requests

    session = requests.Session()
    samples: dict[str, list[tuple[float, float]]] = {name: [] for name in routes}
    statuses: dict[str, set] = {name: set() for name in routes}
    for name, url in routes.items():  # one warm-up request each
        statuses[name].add(session.get(url, timeout=120).status_code)
    for _ in range(rounds):
        times: dict[str, list[float]] = {name: [] for name in routes}
        for _ in range(per_round):
            for name, url in routes.items():
                started = time.perf_counter()
                answer = session.get(url, timeout=120)
                times[name].append((time.perf_counter() - started) * 1000)
                statuses[name].add(answer.status_code)
        for name, ms in times.items():
            samples[name].append((float(np.percentile(ms, 50)), float(np.percentile(ms, 99))))
    return {name: {"p50_ms": round(statistics.median(p[0] for p in s), 2),
                   "p99_ms": round(statistics.median(p[1] for p in s), 2),
                   "statuses": sorted(statuses[name])}
            for name, s in samples.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--versions", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--requests", type=int, default=30, help="per route and round")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    parser.add_argument("--name", default="ui.json")
    parser.add_argument("--serve", nargs=3, metavar=("PORT", "URL", "CONFIG"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve_console(int(args.serve[0]), args.serve[1], args.serve[2])
        return 0

    import yaml

    from dropoutnet import pipeline
    from dropoutnet.core import db
    from dropoutnet.data import synthetic
    from dropoutnet.local import embedded_pg

    home = new_home("dropoutnet-bench-ui-")
    servers: list[subprocess.Popen] = []
    try:
        url = embedded_pg.ensure_database_url()
        config = yaml.safe_load((REPO / "config" / "pipeline.yaml").read_text())
        config["training"]["epochs"] = 1
        config["retrieval"]["api"]["port"] = recall_port = free_port()
        path = home / "pipeline.yaml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        os.environ["DROPOUTNET_CONFIG"] = str(path)
        t0 = time.monotonic()
        synthetic.generate(url, end_date=END, **DATA)
        for day in (END - dt.timedelta(days=1), END):
            pipeline.run(day.isoformat())
        cfg = pipeline.load(str(path))
        setup = {"pipeline_s": round(time.monotonic() - t0, 1)}
        older = grow_registry(url, cfg, args.versions)
        with db.transaction(url) as cur:
            from dropoutnet import registry

            live = registry.active(cur, cfg).model_version
            previous = registry.versions(cur, cfg)[1]["model_version"]
            cur.execute(f"select user_id from {cfg.storage.schema_}.user_embeddings "
                        "where model_version = %s order by user_id limit 1", (live,))
            (user,), = cur.fetchall()
        setup["item_partition"] = grow_items(url, cfg, live, args.items)

        port = free_port()
        log = open(home / "servers.log", "ab")
        servers.append(subprocess.Popen(
            [sys.executable, str(Path(__file__)), "--serve", str(port), url, str(path)],
            stdout=log, stderr=subprocess.STDOUT, cwd=REPO))
        servers.append(subprocess.Popen(
            [sys.executable, "-m", "dropoutnet.cli", "recall-api", "--port", str(recall_port)],
            stdout=log, stderr=subprocess.STDOUT, cwd=REPO))
        console = f"http://127.0.0.1:{port}"
        wait_for(console + "/static/console.css", servers[0])
        wait_for(f"http://127.0.0.1:{recall_port}/healthz", servers[1])

        query = f"user_id={user}&n=10"
        routes = {}
        for path_ in ("/", "/versions", f"/versions/{live}", "/history", "/quality",
                      f"/compare?a={previous}&b={live}", f"/playground?{query}", "/health"):
            routes[f"page {path_}"] = console + path_
            api = "/api" + (path_ if path_ != "/" else "/overview")
            routes[f"api {api}"] = console + api
        routes["recall /v1/recall"] = f"http://127.0.0.1:{recall_port}/v1/recall?{query}"
        figures = measure(routes, args.rounds, args.requests)
        pages = {k: v for k, v in figures.items() if not k.startswith("recall ")}
        playground = figures[f"api /api/playground?{query}"]["p99_ms"]
        recall = figures["recall /v1/recall"]["p99_ms"]
        result = {
            "versions": args.versions, "older_versions_recorded": len(older),
            "setup": setup, "rounds": args.rounds, "requests_per_round": args.requests,
            "routes": figures,
            "targets": {
                "pages_p99_ms_max": max(v["p99_ms"] for v in pages.values()),
                "pages_over_300ms": sorted(k for k, v in pages.items()
                                           if v["p99_ms"] > PAGE_P99_MS),
                "playground_p99_over_recall_ms": round(playground - recall, 2),
                "playground_within_50ms": playground - recall <= PLAYGROUND_EXTRA_P99_MS,
            },
        }
        write_result(result, args.out, args.name)
    finally:
        for proc in servers:
            proc.terminate()
            proc.wait(30)
        remove_home(home)
    return 0


if __name__ == "__main__":
    sys.exit(main())
