"""User embeddings at 1M users against the raw events' indexes (the pipeline's half of the
read is ``data/user_features.sql``; the indexes are the data owner's).

    .venv/bin/python bench/events_index.py [--users 1000000] [--rounds 3] [--out bench/results]

Runs in a temporary ``DROPOUTNET_HOME`` with its own embedded Postgres: the synthetic day of
``bench/daily_scale.py`` (about 1M training samples), its samples, train and export tasks,
then ``--users`` more active users (:func:`daily_scale.add_users`).  Then, in rounds, the
user-embeddings step (read, tower and COPY overlapped, each run in its own process) with the
events' per-user index on ``user_id`` alone and on ``(user_id, event_time)``, the other
indexes as the dataset writer makes them, each built and the table vacuumed (as autovacuum
keeps an append-only table) before its run.  Users per second and the seconds the tower
waited for the read, medians over rounds.  Prints the JSON and writes
``OUT/events_index.json``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import sys
from pathlib import Path

import daily_scale as ds
from common import REPO, new_home, remove_home, write_result  # first: the repository on the path

ARMS = {"user_id": "user_id", "user_id_event_time": "user_id, event_time"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    args = parser.parse_args()

    home = new_home("dropoutnet-events-index-")
    env = {**os.environ, "PYTHONPATH": str(REPO),
           "DROPOUTNET_CONFIG": str(REPO / "config" / "pipeline.yaml"),
           "TF_CPP_MIN_LOG_LEVEL": "2"}
    cli = [sys.executable, "-m", "dropoutnet.cli"]
    runs: dict[str, list[dict]] = {arm: [] for arm in ARMS}
    try:
        ds.run_child(ds.datagen_command(cli, ds.day_sizes(1_000_000)), env)
        for task in ("samples", "train", "export"):
            ds.run_child(cli + ["run", "--bizdate", ds.END.isoformat(), "--tasks", task], env)
        ds.add_users(args.users)
        import psycopg2

        from dropoutnet.local import embedded_pg

        conn = psycopg2.connect(embedded_pg.ensure_database_url())
        conn.autocommit = True  # vacuum runs outside a transaction
        with conn.cursor() as cur:
            cur.execute("drop index if exists sv_events_user_id_event_time_idx")
            for _ in range(args.rounds):
                for arm, columns in ARMS.items():
                    cur.execute("drop index if exists bench_events_user_idx")
                    cur.execute(f"create index bench_events_user_idx on sv_events ({columns})")
                    cur.execute("vacuum analyze sv_events")
                    r = ds.run_child([sys.executable, str(REPO / "bench" / "daily_scale.py"),
                                      "--child", "embed:2"], env)
                    runs[arm].append({**json.loads(r["output"]), "process_seconds": r["seconds"]})
                    print(f"{arm}: {runs[arm][-1]}", file=sys.stderr, flush=True)
        conn.close()
    finally:
        remove_home(home)
    result = {
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{os.cpu_count()} cores (shared)", "users": runs["user_id"][0]["users"],
        "rounds": args.rounds,
        "arms": {arm: {"users_per_s_median": statistics.median(x["per_second"] for x in v),
                       "read_wait_s_median": statistics.median(x["seconds"]["read"] for x in v),
                       "runs": v} for arm, v in runs.items()},
        "goal_users_per_s": 100_000}
    write_result(result, args.out, "events_index.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
