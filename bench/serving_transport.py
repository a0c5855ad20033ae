"""The transport's own ceiling for the model service: gRPC against HTTP, with no model.

    .venv/bin/python bench/serving_transport.py [--rounds 3] [--seconds 5] [--out bench/results]

TF Serving offers gRPC beside REST; is it the faster path for our Python server?  Two
servers that do no work, each in its own process, answer every request with the same small
prediction: ``grpc`` (``grpc.aio``, TF Serving's ``PredictionService/Predict`` method as a
generic handler of raw bytes, so no protobuf cost either) and ``http`` (a bare ASGI app
under uvicorn, as ``dropoutnet.serving`` runs).  Each is loaded at concurrency 1 and 32
(``grpc.aio`` clients, and ``bench/serving.py``'s keep-alive HTTP clients), in turns over
``--rounds``: requests per second, p99, and the server's CPU per request (medians).  No
model: what the transport costs before any request is parsed.  Writes
``OUT/serving_transport.json``.
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
import time
from pathlib import Path

import numpy as np
from common import REPO, free_port, write_result  # first: the repository on the path
from serving import cpu_seconds, load_test

ANSWER = b'{"predictions": [[0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]]}'
BODY = json.dumps({"instances": [{"i_cate1": "a", "i_ctr_7d": 0.1,
                                  "i_title_emb": [0.1, 0.2, 0.3, 0.4]}]}).encode()
METHOD = "/tensorflow.serving.PredictionService/Predict"


async def grpc_server(port: int) -> None:
    import grpc

    async def predict(request: bytes, context) -> bytes:
        return ANSWER

    server = grpc.aio.server()
    service, method = METHOD.strip("/").split("/")
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(
        service, {method: grpc.unary_unary_rpc_method_handler(predict)}),))
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    await server.wait_for_termination()


async def http_app(scope, receive, send) -> None:
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body"):
        pass
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(ANSWER)).encode())]})
    await send({"type": "http.response.body", "body": ANSWER})


def grpc_load(port: int, concurrency: int, seconds: float, pid: int) -> dict:
    import grpc

    latencies: list[float] = []

    async def main() -> None:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            call = channel.unary_unary(METHOD)
            end = time.perf_counter() + seconds

            async def client() -> None:
                while time.perf_counter() < end:
                    started = time.perf_counter()
                    await call(BODY)
                    latencies.append(time.perf_counter() - started)

            await asyncio.gather(*(client() for _ in range(concurrency)))

    cpu = cpu_seconds(pid)
    started = time.perf_counter()
    asyncio.run(main())
    elapsed = time.perf_counter() - started
    return {"rows_per_s": len(latencies) / elapsed,
            "p99_ms": float(np.percentile(np.array(latencies) * 1000, 99)),
            "server_cpu_us_per_request": (cpu_seconds(pid) - cpu) / len(latencies) * 1e6}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, port = args.child[0], int(args.child[1])
        if kind == "grpc":
            asyncio.run(grpc_server(port))
        else:
            import uvicorn

            uvicorn.run(http_app, host="127.0.0.1", port=port, log_level="warning",
                        access_log=False)
        return 0

    servers = {}
    runs: dict[str, list[dict]] = {"grpc": [], "http": []}
    try:
        for kind in runs:
            port = free_port()
            servers[kind] = (subprocess.Popen([sys.executable, __file__, "--child", kind,
                                               str(port)]), port)
        time.sleep(5)
        for _ in range(args.rounds):
            for kind, (proc, port) in servers.items():
                for concurrency in (1, 32):
                    got = (grpc_load(port, concurrency, args.seconds, proc.pid) if kind == "grpc"
                           else load_test(port, [BODY], concurrency, args.seconds, proc.pid))
                    runs[kind].append({"concurrency": concurrency, **{
                        k: round(got[k], 1) for k in ("rows_per_s", "p99_ms",
                                                      "server_cpu_us_per_request")}})
                    print(kind, runs[kind][-1], file=sys.stderr, flush=True)
    finally:
        for proc, _ in servers.values():
            proc.terminate()
            proc.wait(timeout=30)
    result = {"date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
              "machine": f"{os.cpu_count()} cores (shared)", "rounds": args.rounds,
              "medians": {kind: {str(c): {k: statistics.median(
                  x[k] for x in v if x["concurrency"] == c)
                  for k in ("rows_per_s", "p99_ms", "server_cpu_us_per_request")}
                  for c in (1, 32)} for kind, v in runs.items()},
              "runs": runs}
    write_result(result, args.out, "serving_transport.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
