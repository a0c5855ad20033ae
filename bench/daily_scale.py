"""The daily run at catalogue scale (the pipeline's half; bench/scale.py
measures the embedding store).

    .venv/bin/python bench/daily_scale.py [--samples 1000000] [--rounds 1] [--out bench/results]
    .venv/bin/python bench/daily_scale.py --samples 100000          # a quick run

Runs in a temporary ``DROPOUTNET_HOME`` with its own embedded Postgres, on the demo's config
and synthetic data sized so that one bizdate holds about ``--samples`` training samples (the
demo's shape: users, items and new items scaled together; the demo holds 257,380).

* **daily**: ``dropoutnet run --bizdate D`` task by task, each task in its own process: wall
  seconds and peak memory (the process's max RSS) per task, and the whole run's wall time.
* **training**: the same partition and model, side by side, each in its own process and
  interleaved over ``--rounds``: ``postgres`` streams the partition from Postgres (what the
  train task does: :class:`dropoutnet.training.source.PartitionSource`, the later epochs from
  its disk cache; ``postgres_uncached``, not run unless asked for with ``--training-modes``,
  reads Postgres every epoch); ``memory`` reads the
  partition into memory first and trains on the arrays (the read is timed apart);
  ``input_only`` (when asked for) passes the streamed input (the read, the disk cache, the
  shuffle, the tensors) through its epochs with no model step, the input's own ceiling, and
  its CPU milliseconds per batch; and
  ``model_only`` trains on batches already made, the model's own ceiling
  (``model_only_keras_adam``, when asked for, the same with Keras's own Adam in place of
  :class:`dropoutnet.model.optimizer.Adam`); ``MODE@N`` runs a mode at N steps per call into
  TensorFlow in place of the config's ``training.steps_per_execution``.  Samples per second
  of training (epochs x rows / seconds) and peak memory of each.
* **user embeddings**: ``--users`` more users (default 1,000,000; each a copy of a generated
  user's attributes, with an impression and a click on the bizdate, so every one is active
  and has preference features) are added to the raw tables after the daily run, and the
  user_embeddings task is rerun: users per second end to end (read the features, predict,
  COPY; the task's wall time, process start and model load included) and its peak memory.

Prints the JSON and writes ``OUT/daily_scale.json``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import REPO, new_home, remove_home, write_result  # first: the repository on the path

DEMO_SAMPLES = 257_380  # one bizdate of the demo's data (2,000 users, 3,000 items, 150 new a day)
END = dt.date(2026, 11, 30)
TASKS = ("samples", "train", "export", "user_embeddings", "item_embeddings", "evaluate",
         "publish", "deploy", "retention")


def day_sizes(samples: int, min_scale: float = 0.05) -> dict[str, int]:
    """The synthetic data's sizes for a bizdate of about ``samples`` training samples: the
    demo's, scaled (never below ``min_scale`` of it)."""
    scale = max(samples / DEMO_SAMPLES, min_scale)
    return dict(n_users=round(2000 * scale), n_items=round(3000 * scale),
                n_authors=max(20, round(300 * scale)), new_items_per_day=round(150 * scale))


def datagen_command(cli: list[str], sizes: dict[str, int]) -> list[str]:
    """``dropoutnet datagen`` of ``sizes`` (:func:`day_sizes`), ending at :data:`END`."""
    return cli + ["datagen", "--users", str(sizes["n_users"]), "--items", str(sizes["n_items"]),
                  "--authors", str(sizes["n_authors"]), "--new-items-per-day",
                  str(sizes["new_items_per_day"]), "--end-date", END.isoformat(), "--json"]


def run_child(args: list[str], env: dict[str, str]) -> dict:
    """Run ``args`` as a child process; its wall seconds, max RSS (MB) and last stdout line."""
    started = time.perf_counter()
    proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - started
    out, err = proc.stdout.read(), proc.stderr.read()
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise RuntimeError(f"{' '.join(args)} failed ({code}):\n{err[-3000:]}")
    lines = [line for line in out.splitlines() if line.strip()]
    return {"seconds": round(seconds, 1), "peak_rss_mb": round(usage.ru_maxrss / 1024),
            "output": lines[-1] if lines else ""}


def add_users(n: int) -> None:
    """``n`` active users more: copies of the generated users' attributes, each with an
    impression and a click of a generated item on the bizdate."""
    import psycopg2

    from dropoutnet.local import embedded_pg

    with psycopg2.connect(embedded_pg.ensure_database_url()) as conn, conn.cursor() as cur:
        cur.execute("""
            with base as (select row_number() over (order by user_id) - 1 as k, * from sv_users),
                 size as (select count(*) as n from base)
            insert into sv_users (user_id, gender, age_band, city, level, register_time)
            select 'bench' || lpad(g::text, 7, '0'), b.gender, b.age_band, b.city, b.level,
                   b.register_time
            from generate_series(1, %(n)s) as g
            cross join size
            join base as b on b.k = g %% size.n""", {"n": n})
        cur.execute("""
            with items as (select row_number() over (order by item_id) - 1 as k, item_id
                           from sv_items),
                 size as (select count(*) as n from items)
            insert into sv_events (user_id, item_id, event_type, event_time)
            select 'bench' || lpad(g::text, 7, '0'), i.item_id, e.event_type,
                   %(day)s::timestamptz + make_interval(secs => g %% 80000 + e.lag)
            from generate_series(1, %(n)s) as g
            cross join size
            join items as i on i.k = (g::bigint * 7919) %% size.n
            cross join (values ('impression', 0), ('click', 5)) as e (event_type, lag)""",
                    {"n": n, "day": END.isoformat()})
        cur.execute("analyze sv_users; analyze sv_events")


def child_embeddings(prefetch: int) -> None:
    """The user-embeddings step of ``END`` with ``prefetch`` chunks ahead, in this process
    (run by :func:`run_child`); prints JSON."""
    from dropoutnet.config import load_config
    from dropoutnet.local import embedded_pg
    from dropoutnet.steps.embeddings import write_embeddings

    cfg = load_config(os.environ["DROPOUTNET_CONFIG"])
    done = write_embeddings(cfg, END, "user", embedded_pg.ensure_database_url(),
                            prefetch=prefetch)
    print(json.dumps({"users": done["users"], "per_second": done["per_second"],
                      "seconds": done["seconds"]}))


def child_training(mode: str) -> None:
    """One training method, in this process (run by :func:`run_child`); prints JSON."""
    import tensorflow as tf

    from dropoutnet.config import load_config
    from dropoutnet.core import db
    from dropoutnet.data import partitions
    from dropoutnet.local import embedded_pg
    from dropoutnet.model.dropoutnet import build_model
    from dropoutnet.training.fit import make_dataset, no_autotune, train_model, train_samples
    from dropoutnet.training.source import PartitionSource

    cfg = load_config(os.environ["DROPOUTNET_CONFIG"])
    out: dict = {"mode": mode}
    mode, _, steps = mode.partition("@")  # "postgres@1": 1 step per call into TensorFlow
    if steps:
        cfg = cfg.model_copy(update={"training": cfg.training.model_copy(
            update={"steps_per_execution": int(steps)})})
    out["steps_per_execution"] = cfg.training.steps_per_execution
    url = embedded_pg.ensure_database_url()
    with db.transaction(url) as cur:
        boundaries = partitions.load_boundaries(cur, cfg, END)
    work = Path(tempfile.mkdtemp(prefix="dropoutnet-train-"))
    try:
        if mode in ("postgres", "postgres_uncached"):
            started = time.perf_counter()
            with PartitionSource(cfg, END, url, cache=mode == "postgres") as source:
                stats = train_samples(cfg, source, boundaries, work / "ckpt", None)
            out["train_seconds"] = time.perf_counter() - started
        elif mode == "memory":
            started = time.perf_counter()
            with db.transaction(url) as cur:
                data = partitions.load_partition(cur, cfg, "samples", END, shuffled=True)
            out["read_seconds"] = time.perf_counter() - started
            started = time.perf_counter()
            stats = train_model(cfg, data["features"], data["labels"], boundaries,
                                work / "ckpt", None, data["item_ids"],
                                sample_dates=data["sample_dates"])
            out["train_seconds"] = time.perf_counter() - started
        elif mode == "input_only":  # the streamed input alone: no model step at all
            tc = cfg.training
            model = build_model(cfg.features, cfg.model, boundaries, tc.seed)
            started, cpu = time.perf_counter(), time.process_time()
            with PartitionSource(cfg, END, url, cache=True) as source:
                rows = sum(len(c) for c in source.chunks())  # the scan's pass fills the cache
                ds = make_dataset(model, source, rows, tc.batch_size,
                                  shuffle_buffer=tc.shuffle_buffer, seed=tc.seed)
                batches = sum(1 for _ in ds.repeat(tc.epochs))
            out["train_seconds"] = time.perf_counter() - started
            out["cpu_ms_per_batch"] = round(1000 * (time.process_time() - cpu) / batches, 2)
            stats = {"rows": rows, "epochs": tc.epochs}
        else:  # model_only: the model on batches made beforehand (no input work at all)
            tc = cfg.training
            model = build_model(cfg.features, cfg.model, boundaries, tc.seed,
                                learning_rate=tc.learning_rate, weight_decay=tc.weight_decay,
                                steps_per_execution=tc.steps_per_execution)
            if mode == "model_only_keras_adam":  # Keras's own Adam(W), for comparison
                import keras

                model.compile(optimizer=(
                    keras.optimizers.AdamW(tc.learning_rate, weight_decay=tc.weight_decay)
                    if tc.weight_decay > 0 else keras.optimizers.Adam(tc.learning_rate)),
                    jit_compile=False, steps_per_execution=tc.steps_per_execution)
                model.optimizer.build(model.trainable_variables)
            with PartitionSource(cfg, END, url, cache=False) as source:
                rows = sum(len(c) for c in source.chunks())
                ds = make_dataset(model, source, rows, tc.batch_size, shuffle_buffer=0)
                batches = list(ds)
            cached = tf.data.Dataset.from_generator(
                lambda: iter(batches), output_signature=ds.element_spec).apply(
                tf.data.experimental.assert_cardinality(len(batches))).with_options(no_autotune())
            started = time.perf_counter()
            model.fit(cached, epochs=tc.epochs, verbose=0)
            out["train_seconds"] = time.perf_counter() - started
            stats = {"rows": rows, "epochs": tc.epochs}
        out["rows"], out["epochs"] = stats["rows"], stats["epochs"]
        out["samples_per_s"] = round(stats["rows"] * stats["epochs"] / out["train_seconds"])
        out["loss"] = stats.get("loss")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(out))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=1_000_000,
                        help="training samples of the bizdate, about (default 1,000,000)")
    parser.add_argument("--rounds", type=int, default=1, help="rounds of the training section")
    parser.add_argument("--users", type=int, default=1_000_000,
                        help="users of the user-embeddings section (default 1,000,000)")
    parser.add_argument("--sections", default="daily,embeddings,training")
    parser.add_argument("--training-modes", default="postgres,memory,model_only",
                        help="methods of the training section, in the order run each round "
                        "(also: postgres_uncached, every epoch read from Postgres; "
                        "input_only, the streamed input with no model step; "
                        "model_only_keras_adam, the model alone with Keras's Adam; a mode "
                        "with @N, e.g. postgres@1, runs N steps per call into TensorFlow in "
                        "place of the config's training.steps_per_execution)")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        if args.child.startswith("embed:"):
            child_embeddings(int(args.child.split(":")[1]))
        else:
            child_training(args.child)
        return 0

    home = new_home("dropoutnet-daily-scale-")
    env = {**os.environ, "PYTHONPATH": str(REPO),
           "DROPOUTNET_CONFIG": str(REPO / "config" / "pipeline.yaml"),
           "TF_CPP_MIN_LOG_LEVEL": "2"}
    cli = [sys.executable, "-m", "dropoutnet.cli"]
    sizes = day_sizes(args.samples)
    result: dict = {"date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                    "machine": f"{os.cpu_count()} cores (shared)", "data": sizes}
    sections = set(args.sections.split(","))

    try:
        started = time.perf_counter()
        gen = run_child(datagen_command(cli, sizes), env)
        result["datagen"] = {"seconds": gen["seconds"], **json.loads(gen["output"])["rows"]}
        tasks: dict = {}
        daily = "daily" in sections
        for task in TASKS if daily else ("samples",):
            r = run_child(cli + ["run", "--bizdate", END.isoformat(), "--tasks", task,
                                 "--force-publish"], env)
            tasks[task] = {"seconds": r["seconds"], "peak_rss_mb": r["peak_rss_mb"]}
            print(f"{task}: {tasks[task]}", file=sys.stderr, flush=True)
            if task in ("samples", "user_embeddings", "item_embeddings", "train"):
                tasks[task]["result"] = json.loads(r["output"].split(": ", 1)[1])
        result["daily_run"] = {"tasks": tasks, "seconds": round(sum(
            t["seconds"] for t in tasks.values()), 1)}
        result["training_samples"] = tasks["samples"]["result"]["train"]["samples"]
        if daily:
            users = tasks["user_embeddings"]
            result["user_embeddings"] = {
                "users": users["result"]["users"],
                "users_per_s_task": round(users["result"]["users"] / users["seconds"]),
                "users_per_s_embedding": users["result"].get("per_second"),
                "peak_rss_mb": users["peak_rss_mb"]}
        if daily and "embeddings" in sections:
            add_users(args.users)
            r = run_child(cli + ["run", "--bizdate", END.isoformat(), "--tasks",
                                 "user_embeddings"], env)
            done = json.loads(r["output"].split(": ", 1)[1])
            result["user_embeddings_at_scale"] = {
                "users": done["users"], "seconds": r["seconds"],
                "users_per_s_task": round(done["users"] / r["seconds"]),
                "users_per_s_embedding": done.get("per_second"),
                "peak_rss_mb": r["peak_rss_mb"], "goal_users_per_s": 20_000}
            print(f"user embeddings at scale: {result['user_embeddings_at_scale']}",
                  file=sys.stderr, flush=True)
            # the step itself, chunks read and embedded ahead of COPY (2) or one after the
            # other (0), each in its own process, interleaved over --rounds
            arms: dict[str, list[dict]] = {"prefetch_0": [], "prefetch_2": []}
            for _ in range(args.rounds):
                for arm in arms:
                    r = run_child([sys.executable, __file__, "--child", f"embed:{arm[-1]}"],
                                  env)
                    arms[arm].append({**json.loads(r["output"]),
                                      "peak_rss_mb": r["peak_rss_mb"]})
                    print(f"user embeddings {arm}: {arms[arm][-1]}", file=sys.stderr,
                          flush=True)
            result["user_embeddings_at_scale"]["by_prefetch"] = {
                arm: {"users_per_s_median": statistics.median(x["per_second"] for x in runs),
                      "runs": runs} for arm, runs in arms.items()}
        if "training" in sections:
            modes = tuple(args.training_modes.split(","))
            runs: dict[str, list[dict]] = {m: [] for m in modes}
            for _ in range(args.rounds):
                for mode in modes:
                    r = run_child([sys.executable, __file__, "--child", mode], env)
                    runs[mode].append({**json.loads(r["output"]), "peak_rss_mb":
                                       r["peak_rss_mb"], "process_seconds": r["seconds"]})
                    print(f"training {mode}: {runs[mode][-1]}", file=sys.stderr, flush=True)
            rate = {m: statistics.median(x["samples_per_s"] for x in v) for m, v in runs.items()}
            ratios = {f"{a}_vs_{b}": round(rate[a] / rate[b], 3)
                      for a, b in (("postgres", "memory"), ("postgres_uncached", "memory"),
                                   ("memory", "model_only"), ("postgres", "model_only"),
                                   ("postgres", "postgres@1"))
                      if a in rate and b in rate}
            result["training"] = {
                "runs": runs, "samples_per_s": rate, **ratios,
                "peak_rss_mb": {m: max(x["peak_rss_mb"] for x in v) for m, v in runs.items()}}
        started = time.perf_counter() - started
        result["seconds"] = round(started, 1)
    finally:
        remove_home(home)
    write_result(result, args.out, "daily_scale.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
