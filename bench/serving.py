"""The model service's latency and throughput, beside calling the SavedModel in-process.

    .venv/bin/python bench/serving.py [--seconds 4] [--rounds 3] [--baseline REF]
                                      [--out bench/results]

The item tower of the demo config (``config/pipeline.yaml``: its features and layer sizes,
weights initialised, not trained: serving cost does not depend on the weights) is exported
and served by ``python -m dropoutnet.serving`` in its own process, once with server-side
batching and once without.  A keep-alive HTTP/1.1 load generator (asyncio streams: little
client CPU) sends one-instance ``:predict`` requests from 1, 8 and 32 concurrent
connections.  The ceiling is the same SavedModel called in this process on the same
instances: one row per call, and 32 rows per call.  A third server, ``batching_trivial_model``,
serves a SavedModel with the tower's signature that computes nothing (zeros): the serving
layer's own ceiling (HTTP, parsing, batching, encoding) on this machine.  With ``--baseline REF`` (a git commit
or branch), the server of that commit (checked out in a temporary worktree) is a third arm,
``batching@REF``, measured in the same rounds: the before and after of a change in one run.
Beside latency and throughput, each measurement reports the server's CPU time per request
(from ``/proc``): steadier than throughput on a shared machine.

Every measurement runs ``--rounds`` times, interleaved; the JSON reports medians over rounds
(this machine is shared and noisy: read the ratios).  Prints the JSON and writes it to
``OUT/serving.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np
from common import REPO, free_port, write_result  # first: the repository on the path

CONCURRENCY = (1, 8, 32)


def build_item_tower(work: Path) -> Path:
    """Export the demo config's towers (initialised weights) and return the item tower."""
    from dropoutnet.config import load_config
    from dropoutnet.training.fit import train_model
    from dropoutnet.training.saved_models import export_models

    cfg = load_config(REPO / "config" / "pipeline.yaml")
    features = random_features(cfg.features, 256, np.random.default_rng(0))
    boundaries = {f.name: [0.25, 0.5, 0.75] for f in cfg.binned_features}
    labels = (np.arange(256) % 2).astype(np.float32)
    train_model(cfg, features, labels, boundaries, work / "ckpt", None, epochs=0)
    export_models(cfg, work / "ckpt", work / "export")
    return work / "export" / "item"


def build_trivial_tower(tower: Path, work: Path) -> Path:
    """A SavedModel with ``tower``'s ``serving_default`` signature whose outputs are zeros."""
    import tensorflow as tf

    from dropoutnet.training.saved_models import SIGNATURE

    signature = tf.saved_model.load(str(tower)).signatures[SIGNATURE]
    inputs = signature.structured_input_signature[1]
    outputs = signature.structured_outputs
    first = sorted(inputs)[0]

    @tf.function(input_signature=[inputs])
    def serve(x):
        rows = tf.shape(x[first])[0]
        return {k: tf.zeros(tf.concat([[rows], v.shape[1:]], 0), v.dtype)
                for k, v in outputs.items()}

    target = work / "trivial" / "20261128"
    tf.saved_model.save(tf.Module(), str(target), signatures={SIGNATURE: serve})
    return target


def random_features(specs, n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    out = {}
    for f in specs:
        if f.kind == "categorical":
            out[f.name] = np.array([f"v{x}" for x in rng.integers(0, 50, n)], dtype=object)
        elif f.kind == "tags":
            out[f.name] = np.array([f"t{a}|t{b}" for a, b in rng.integers(0, 30, (n, 2))],
                                   dtype=object)
        elif f.kind == "numeric":
            values = rng.random(n).astype(np.float32)
            values[rng.random(n) < 0.2] = np.nan
            out[f.name] = values
        else:
            out[f.name] = rng.normal(size=(n, f.dim)).astype(np.float32)
    return out


def as_instances(features: dict[str, np.ndarray], names: list[str]) -> list[dict]:
    n = len(next(iter(features.values())))
    rows = []
    for i in range(n):
        row = {}
        for name in names:
            v = features[name][i]
            if isinstance(v, np.ndarray):
                row[name] = [round(float(x), 6) for x in v]
            elif isinstance(v, (float, np.floating)):
                row[name] = None if np.isnan(v) else round(float(v), 6)
            else:
                row[name] = str(v)
        rows.append(row)
    return rows


def start_server(base: Path, work: Path, batching: bool, label: str, source: Path = REPO,
                 instances: int = 1) -> tuple[subprocess.Popen, int]:
    """The model service of ``source`` (this checkout, or a baseline worktree) on ``base``,
    with ``instances`` server processes (``metadata.instance``) sharing the machine's cores."""
    port = free_port()
    cores = os.cpu_count() or 1
    config = {"name": "items", "model_path": str(base), "processor": "tensorflow_cpu",
              "metadata": {"cpu": max(1, cores // instances), "instance": instances},
              "port": port, "poll_seconds": 60,
              "batching": {"enabled": batching, "max_batch_size": 256, "timeout_ms": 2.0}}
    path = work / f"service-{label.replace('@', '-')}.json"
    path.write_text(json.dumps(config))
    log = open(work / f"{path.stem}.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "dropoutnet.serving", str(path)],
                            stdout=log, stderr=subprocess.STDOUT, cwd=source,
                            env={**os.environ, "PYTHONPATH": str(source)})
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as r:
                if r.status == 200:
                    return proc, port
        except OSError:
            pass
        time.sleep(0.3)
    proc.kill()
    raise RuntimeError(f"server did not start; see {work / (path.stem + '.log')}")


async def _client(port: int, requests: list[bytes], seconds: float,
                  latencies: list[float], errors: list[int]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    end = time.perf_counter() + seconds
    i = 0
    try:
        while time.perf_counter() < end:
            started = time.perf_counter()
            writer.write(requests[i % len(requests)])
            await writer.drain()
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head.split(b" ", 2)[1])
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            await reader.readexactly(length)
            latencies.append(time.perf_counter() - started)
            if status != 200:
                errors.append(status)
            i += 1
    finally:
        writer.close()


def cpu_seconds(pid: int) -> float:
    """CPU time (user and system, all threads) so far of process ``pid`` and its children
    (the worker processes of a server with several instances)."""
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # the process ended meanwhile
            continue
        if stat.parent.name == str(pid) or fields[1] == str(pid):
            total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def load_test(port: int, bodies: list[bytes], concurrency: int, seconds: float,
              pid: int | None = None) -> dict:
    requests = [b"POST /v1/models/items:predict HTTP/1.1\r\nHost: bench\r\n"
                b"Content-Type: application/json\r\nContent-Length: "
                + str(len(b)).encode() + b"\r\n\r\n" + b for b in bodies]
    latencies: list[float] = []
    errors: list[int] = []

    async def main():
        await asyncio.gather(*(_client(port, requests[k::concurrency] or requests, seconds,
                                       latencies, errors) for k in range(concurrency)))

    cpu = cpu_seconds(pid) if pid else 0.0
    started = time.perf_counter()
    asyncio.run(main())
    elapsed = time.perf_counter() - started
    ms = np.array(latencies) * 1000
    out = {"requests": len(latencies), "errors": len(errors),
           "p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99)),
           "rows_per_s": len(latencies) / elapsed}
    if pid:
        out["server_cpu_us_per_request"] = (cpu_seconds(pid) - cpu) / len(latencies) * 1e6
    return out


def checkout(ref: str, work: Path) -> Path:
    """A temporary git worktree of ``ref`` (removed at the end of the run)."""
    dest = work / "baseline"
    subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", "--quiet", str(dest),
                    ref], check=True)
    return dest


def in_process(path: Path, features: dict[str, np.ndarray], rows_per_call: int,
               seconds: float) -> dict:
    from dropoutnet.serving.versions import load_version

    _, predict = load_version(path)
    n = len(next(iter(features.values())))
    batches = [{k: v[i:i + rows_per_call] for k, v in features.items()}
               for i in range(0, n - rows_per_call + 1, rows_per_call)]
    latencies = []
    end = time.perf_counter() + seconds
    started = time.perf_counter()
    i = 0
    while time.perf_counter() < end:
        t = time.perf_counter()
        predict(batches[i % len(batches)])
        latencies.append(time.perf_counter() - t)
        i += 1
    elapsed = time.perf_counter() - started
    ms = np.array(latencies) * 1000
    return {"calls": len(latencies), "p50_ms": float(np.percentile(ms, 50)),
            "p99_ms": float(np.percentile(ms, 99)),
            "rows_per_s": len(latencies) * rows_per_call / elapsed}


def median_of(rounds: list[dict]) -> dict:
    return {k: (round(statistics.median(r[k] for r in rounds), 3)
                if isinstance(rounds[0][k], float) else sum(r[k] for r in rounds))
            for k in rounds[0]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=4.0, help="per measurement")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--baseline", metavar="REF",
                        help="also measure the model service of this git commit or branch")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    work = Path(tempfile.mkdtemp(prefix="dropoutnet-serving-bench-"))
    os.environ.setdefault("KERAS_HOME", str(work / "keras"))

    from dropoutnet.config import load_config
    from dropoutnet.registry import artifacts

    tower = build_item_tower(work)
    base = work / "serving" / "items"
    artifacts.copy_dir(tower, base / "20261128")
    cfg = load_config(REPO / "config" / "pipeline.yaml")
    specs = cfg.features_of(side="item")
    features = random_features(specs, 512, np.random.default_rng(1))
    bodies = [json.dumps({"instances": [row]}).encode()
              for row in as_instances(features, [f.name for f in specs])]

    trivial = build_trivial_tower(tower, work).parent
    sources = {"batching": (REPO, True, base), "no_batching": (REPO, False, base),
               "batching_trivial_model": (REPO, True, trivial)}
    if args.baseline:
        sources[f"batching@{args.baseline}"] = (checkout(args.baseline, work), True, base)
    servers = {mode: start_server(model, work, batching, mode, source)
               for mode, (source, batching, model) in sources.items()}
    raw: dict[str, dict[str, list]] = {m: {str(c): [] for c in CONCURRENCY} for m in servers}
    ceiling: dict[str, list] = {"one_row_per_call": [], "32_rows_per_call": []}
    try:
        for mode, (_, port) in servers.items():  # warm-up: first requests pay graph tracing
            load_test(port, bodies, 4, 1.0)
        for _ in range(args.rounds):
            for mode, (proc, port) in servers.items():
                for c in CONCURRENCY:
                    raw[mode][str(c)].append(load_test(port, bodies, c, args.seconds, proc.pid))
            ceiling["one_row_per_call"].append(in_process(tower, features, 1, args.seconds))
            ceiling["32_rows_per_call"].append(in_process(tower, features, 32, args.seconds))
    finally:
        for proc, _ in servers.values():
            proc.terminate()
            proc.wait(timeout=30)
        if args.baseline:
            subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force",
                            str(sources[f"batching@{args.baseline}"][0])], check=False)

    http = {m: {c: median_of(r) for c, r in by_c.items()} for m, by_c in raw.items()}
    local = {k: median_of(v) for k, v in ceiling.items()}
    result = {
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{os.cpu_count()} cores (shared)",
        "model": "demo item tower (config/pipeline.yaml), one instance per request",
        "seconds_per_measurement": args.seconds, "rounds": args.rounds,
        "http": http,
        "in_process": local,
        "targets": {
            "p99_ms_one_instance_concurrency_1": {
                "goal": 5.0, "batching": http["batching"]["1"]["p99_ms"],
                "no_batching": http["no_batching"]["1"]["p99_ms"]},
            "throughput_c32_batching_vs_in_process": {
                "goal": 0.5,
                "vs_one_row_per_call": round(http["batching"]["32"]["rows_per_s"]
                                             / local["one_row_per_call"]["rows_per_s"], 3),
                "vs_32_rows_per_call": round(http["batching"]["32"]["rows_per_s"]
                                             / local["32_rows_per_call"]["rows_per_s"], 3)},
            "serving_layer_ceiling_c32_vs_in_process": round(
                http["batching_trivial_model"]["32"]["rows_per_s"]
                / local["32_rows_per_call"]["rows_per_s"], 3),
            "batching_speedup_c32": round(http["batching"]["32"]["rows_per_s"]
                                          / http["no_batching"]["32"]["rows_per_s"], 3),
        },
        **({"vs_baseline_c32": {
            "baseline": args.baseline,
            "throughput": round(http["batching"]["32"]["rows_per_s"]
                                / http[f"batching@{args.baseline}"]["32"]["rows_per_s"], 3),
            "server_cpu_per_request": round(
                http["batching"]["32"]["server_cpu_us_per_request"]
                / http[f"batching@{args.baseline}"]["32"]["server_cpu_us_per_request"], 3)}}
           if args.baseline else {}),
    }
    write_result(result, args.out, "serving.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
