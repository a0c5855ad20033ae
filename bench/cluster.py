"""Training on a local cluster against one process, side by side.

    .venv/bin/python bench/cluster.py [--samples 30000] [--workers 2] [--rounds 3] [--out bench/results]

Runs in a temporary ``DROPOUTNET_HOME`` with its own embedded Postgres, on the demo's config
and synthetic data sized so that the bizdate holds about ``--samples`` training samples.  The
samples task runs once; then, each round, the train task runs twice, each in its own
process (``dropoutnet run --tasks train``) on the same partition and the same model: once
in one process (``single``) and once with ``training.cluster.worker.count`` = ``--workers``
(``cluster``: the task launches the workers on this machine).  Reported per method, as
medians over the rounds: the task's wall seconds and samples per second end to end (epochs x
rows / wall seconds: process start, TensorFlow's import, reading, building, tracing and the
checkpoint included), and for the cluster the workers' own seconds (from joining the cluster
to the saved checkpoint) and the rows each trained on.  Prints the JSON and writes
``OUT/cluster.json``.
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

import yaml
from common import REPO, new_home, remove_home, write_result  # first: the repository on the path
from daily_scale import END, datagen_command, day_sizes  # noqa: E402


def run_task(cli: list[str], config: Path, env: dict[str, str]) -> tuple[float, dict]:
    """The train task in its own process: wall seconds and its result."""
    started = time.perf_counter()
    proc = subprocess.run(cli + ["run", "--bizdate", END.isoformat(), "--tasks", "train"],
                          env={**env, "DROPOUTNET_CONFIG": str(config)}, capture_output=True,
                          text=True)
    seconds = time.perf_counter() - started
    if proc.returncode:
        raise RuntimeError(f"train task failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("train: ")][-1]
    return seconds, json.loads(line.split(": ", 1)[1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=30_000,
                        help="training samples of the bizdate, about (default 30,000)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    args = parser.parse_args()

    home = new_home("dropoutnet-bench-cluster-")
    env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "2"}
    env.pop("TF_CONFIG", None)
    cli = [sys.executable, "-m", "dropoutnet.cli"]
    sizes = day_sizes(args.samples, min_scale=0.02)
    demo = yaml.safe_load((REPO / "config" / "pipeline.yaml").read_text())
    training = {**demo.get("training", {}), "epochs": args.epochs,
                "batch_size": args.batch_size}
    configs = {}
    for method, cluster in (("single", None),
                            ("cluster", {"worker": {"count": args.workers}})):
        data = {**demo, "training": {**training, **({"cluster": cluster} if cluster else {})}}
        configs[method] = home / f"{method}.yaml"
        configs[method].write_text(yaml.safe_dump(data, sort_keys=False))
    result: dict = {"date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                    "machine": f"{os.cpu_count()} cores (shared)", "data": sizes,
                    "workers": args.workers, "epochs": args.epochs,
                    "batch_size": args.batch_size, "rounds": args.rounds}

    try:
        subprocess.run(datagen_command(cli, sizes),
                       env={**env, "DROPOUTNET_CONFIG": str(configs["single"])}, check=True,
                       capture_output=True)
        subprocess.run(cli + ["run", "--bizdate", END.isoformat(), "--tasks", "samples"],
                       env={**env, "DROPOUTNET_CONFIG": str(configs["single"])}, check=True,
                       capture_output=True)
        runs: dict[str, list[dict]] = {"single": [], "cluster": []}
        for r in range(args.rounds):
            for method in ("single", "cluster"):
                seconds, out = run_task(cli, configs[method], env)
                samples = out["rows"] * args.epochs
                entry = {"seconds": round(seconds, 2), "rows": out["rows"],
                         "samples_per_s": round(samples / seconds, 1), "loss": out["loss"]}
                if "cluster" in out:
                    entry["worker_seconds"] = [w["seconds"] for w in out["cluster"]["per_worker"]]
                    entry["rows_trained"] = [w["rows_trained"]
                                             for w in out["cluster"]["per_worker"]]
                runs[method].append(entry)
                print(f"round {r + 1} {method}: {entry}", file=sys.stderr, flush=True)
        summary = {}
        for method, entries in runs.items():
            summary[method] = {
                "seconds_median": round(statistics.median(e["seconds"] for e in entries), 2),
                "samples_per_s_median": round(statistics.median(
                    e["samples_per_s"] for e in entries), 1),
                "runs": entries}
        summary["cluster_over_single_samples_per_s"] = round(
            summary["cluster"]["samples_per_s_median"]
            / summary["single"]["samples_per_s_median"], 3)
        result.update(summary)
        result["training_samples"] = runs["single"][0]["rows"]
    finally:
        remove_home(home)
    write_result(result, args.out, "cluster.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
