"""The model service: TensorFlow Serving's REST API as an ASGI app.

Routes (TF Serving's, plus health and metrics):

* ``GET  /v1/models/{name}[/versions/{v}]``           version status
* ``GET  /v1/models/{name}[/versions/{v}]/metadata``  the ``serving_default`` signature
* ``POST /v1/models/{name}[/versions/{v}]:predict``   ``instances`` or ``inputs``; the answer
  names the version that served it (``"model_version"`` and the ``X-Model-Version`` header)
* ``GET  /healthz``  200 when every model has an AVAILABLE version, else 503; per model the
  AVAILABLE versions, the version requests without one go to, and the version policy (a
  malformed ``version_policy.json`` with its error)
* ``GET  /metrics``  Prometheus text: requests, latency histogram, batch sizes, versions,
  version policy

Errors are ``{"error": "..."}``: 400 for a malformed request (naming the field and what was
expected), 401 for a missing or wrong bearer token (when the token's environment variable
is set), 404 for an unknown model or version, 413 for a body over ``max_body_bytes``.
Inputs are checked against the signature before TensorFlow sees them.

Predict requests, the hot path, take a lane of their own: a plain ASGI handler that reads
the body, decodes it with the version's :class:`~.requests.PredictDecoder`, batches, and
answers with msgspec's encoder, without a framework's routing, middleware, request objects or
dependency resolution per request (they cost more than the TensorFlow call's share of a
32-request batch; ``bench/serving.py`` measures it).  Every other route is FastAPI's.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import time
from contextlib import asynccontextmanager
from typing import Any, Awaitable, Callable

import msgspec
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from starlette.datastructures import Headers

from dropoutnet.core.http import HttpError
from dropoutnet.core.http import authorize as check_token
from dropoutnet.serving.batching import Batcher
from dropoutnet.serving.config import ServiceConfig
from dropoutnet.serving.requests import BadRequest, format_predict, metadata
from dropoutnet.serving.versions import ModelRepository, NotFound, configure_threads

log = logging.getLogger(__name__)

_PREDICT_PATH = re.compile(r"/v1/models/(?P<name>[^/]+)(?:/versions/(?P<version>[^/]+))?"
                           r":predict")
_JSON = (b"content-type", b"application/json")
LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.025, 0.05,
                   0.1, 0.25, 0.5, 1.0, 2.5)


class _Metrics:
    def __init__(self) -> None:
        disable_created_metrics()  # no *_created series: they only add noise to a scrape
        self.registry = CollectorRegistry()
        self.requests = Counter("dropoutnet_serving_requests_total",
                                "Requests by model, API and HTTP status",
                                ["model", "api", "code"], registry=self.registry)
        self.latency = Histogram("dropoutnet_serving_request_seconds",
                                 "Request latency by model and API", ["model", "api"],
                                 buckets=LATENCY_BUCKETS, registry=self.registry)
        self.batch_rows = Histogram("dropoutnet_serving_batch_rows",
                                    "Rows per TensorFlow call",
                                    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024),
                                    registry=self.registry)
        self.batch_requests = Histogram("dropoutnet_serving_batch_requests",
                                        "Requests merged per TensorFlow call",
                                        buckets=(1, 2, 4, 8, 16, 32, 64),
                                        registry=self.registry)
        self.versions = Gauge("dropoutnet_serving_loaded_versions",
                              "AVAILABLE versions per model", ["model"], registry=self.registry)
        self.latest = Gauge("dropoutnet_serving_latest_version",
                            "Newest AVAILABLE version per model (yyyymmdd)", ["model"],
                            registry=self.registry)
        self.default = Gauge("dropoutnet_serving_default_version",
                             "Version that requests without a version go to (0: none)",
                             ["model"], registry=self.registry)
        self.policy = Gauge("dropoutnet_serving_policy_version",
                            "Newest version named by version_policy.json (0: latest policy)",
                            ["model"], registry=self.registry)
        self.policy_error = Gauge("dropoutnet_serving_policy_error",
                                  "1 when version_policy.json is malformed (and ignored)",
                                  ["model"], registry=self.registry)


class ModelService:
    """The ASGI app: ``POST ...:predict`` on its own lane (see the module's docstring), every
    other request (and the lifespan) through the FastAPI app ``api``."""

    def __init__(self, api: FastAPI, predict: Callable[..., Awaitable[None]]) -> None:
        self.api = api
        self.state = api.state
        self._predict = predict

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http":
            match = _PREDICT_PATH.fullmatch(scope["path"])
            if match is not None:
                if scope["method"] == "POST":
                    return await self._predict(scope, receive, send, **match.groupdict())
                body = msgspec.json.encode({"error": f"method {scope['method']} is not "
                                                     f"allowed on {scope['path']}"})
                return await _respond(send, 405, body, [(b"allow", b"POST")])
        await self.api(scope, receive, send)


async def _respond(send, status: int, body: bytes,
                   headers: list[tuple[bytes, bytes]] = ()) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [_JSON, (b"content-length", str(len(body)).encode()), *headers]})
    await send({"type": "http.response.body", "body": body})


# the most of an over-limit body read (and dropped) to answer it with a 413; beyond, the
# connection is closed unread
DISCARD_BYTES = 256 * 1024 * 1024


class _Disconnected(Exception):
    """The client went away before its request body arrived: nothing to answer."""


async def _discard_body(receive, size: int) -> None:
    """Read the rest of a body over the limit without keeping it (up to
    :data:`DISCARD_BYTES` in all), so that the client, still sending, gets the 413: a
    server that answers and closes with the body unread makes the client's socket
    reset, and the client sees a broken connection, not the answer telling it to split
    (the stream worker splits a batch on a 413, and retries a broken connection)."""
    while size <= DISCARD_BYTES:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _Disconnected()
        size += len(message.get("body", b""))
        if not message.get("more_body", False):
            return


def _error(err: Exception, api: str, model: str) -> tuple[int, str]:
    """TF Serving's error shape for an exception raised by a request: (status, message)."""
    if isinstance(err, HttpError):
        return err.status, str(err)
    if isinstance(err, BadRequest):
        return 400, str(err)
    if isinstance(err, NotFound):
        return 404, str(err)
    log.error("%s %s failed", api, model, exc_info=err)
    return 500, f"internal error: {type(err).__name__}: {err}"


def create_app(config: ServiceConfig, repository: ModelRepository | None = None
               ) -> ModelService:
    """The app for ``config``; the repository (polling the model paths) starts with it."""
    metrics = _Metrics()

    def on_change(model: str, available: list[int]) -> None:
        metrics.versions.labels(model).set(len(available))
        metrics.latest.labels(model).set(max(available) if available else 0)
        policy = repo.policy(model)
        metrics.default.labels(model).set(repo.default_version(model) or 0)
        metrics.policy.labels(model).set(max(policy.versions) if policy.versions else 0)
        metrics.policy_error.labels(model).set(1 if policy.error else 0)

    repo = repository or ModelRepository(config.model_paths(), config.keep_versions,
                                         config.poll_seconds, on_change=on_change)
    batcher = (Batcher(config.batching.max_batch_size, config.batching.timeout_ms,
                       config.batching.max_concurrent_batches,
                       on_batch=lambda n, rows: (metrics.batch_requests.observe(n),
                                                 metrics.batch_rows.observe(rows)))
               if config.batching.enabled else None)
    limit = config.max_body_bytes

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        configure_threads(config.metadata.cpu)
        repo.start()
        for model in repo.models:
            on_change(model, repo.available(model))
        log.info("serving %s on %s:%s", {m: str(p) for m, p in repo.models.items()},
                 config.host, config.port)
        yield
        repo.stop()

    api = FastAPI(title=f"DropoutNet model service {config.name}", lifespan=lifespan,
                  docs_url=None, redoc_url=None, openapi_url=None)
    api.state.repository = repo
    api.state.config = config

    series: dict[tuple[str, str, int], tuple[Any, Any]] = {}  # labelled children, looked up once

    def record(model: str, api_name: str, status: int, started: float) -> None:
        known = model if model in repo.models else "(unknown)"  # bounded label values
        key = (known, api_name, status)
        pair = series.get(key)
        if pair is None:
            pair = series[key] = (metrics.requests.labels(known, api_name, str(status)),
                                  metrics.latency.labels(known, api_name))
        pair[0].inc()
        pair[1].observe(time.perf_counter() - started)

    async def observed(model: str, api_name: str, request: Request, handler) -> Response:
        started = time.perf_counter()
        try:
            check_token(request.headers, config.token_env)
            response = await handler()
        except Exception as err:  # noqa: BLE001 - answer in TF Serving's error shape
            status, message = _error(err, api_name, model)
            response = JSONResponse({"error": message}, status_code=status)
        record(model, api_name, response.status_code, started)
        return response

    def version_number(version: str | None) -> int | None:
        if version is None:
            return None
        if not version.isdigit():
            raise BadRequest(f"version {version!r} must be an integer (a yyyymmdd folder)")
        return int(version)

    async def read_body(headers: Headers, receive) -> bytes:
        declared = headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await _discard_body(receive, 0)
            raise HttpError(413, f"request body of {declared} bytes is over the limit of "
                                 f"{limit} bytes (max_body_bytes); split the instances over "
                                 "several requests")
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise _Disconnected()
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                if message.get("more_body", False):
                    await _discard_body(receive, size)
                raise HttpError(413, f"request body is over the limit of {limit} bytes "
                                     "(max_body_bytes); split the instances over several "
                                     "requests")
            chunks.append(chunk)
            if not message.get("more_body", False):
                return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    async def predict(scope, receive, send, name: str, version: str | None = None) -> None:
        started = time.perf_counter()
        extra: list[tuple[bytes, bytes]] = []
        try:
            headers = Headers(scope=scope)
            check_token(headers, config.token_env)
            number = version_number(version)
            repo.check_model(name)
            raw = await read_body(headers, receive)
            with repo.acquire(name, number) as held:
                inputs, fmt, rows = held.decoder.decode(raw)
                if batcher is not None:
                    outputs = await batcher.predict(id(held), held.predict_requests, inputs,
                                                    rows)
                else:
                    outputs = await asyncio.to_thread(held.predict_requests, [inputs])
            status, answer = 200, format_predict(outputs, fmt, held.number)
            extra.append((b"x-model-version", str(held.number).encode()))
        except _Disconnected:
            return
        except Exception as err:  # noqa: BLE001 - answer in TF Serving's error shape
            status, message = _error(err, "predict", name)
            answer = {"error": message}
        await _respond(send, status, msgspec.json.encode(answer), extra)
        record(name, "predict", status, started)

    async def status(request: Request, name: str, version: str | None = None) -> Response:
        async def handler():
            return JSONResponse({"model_version_status": repo.statuses(
                name, version_number(version))})
        return await observed(name, "status", request, handler)

    async def get_metadata(request: Request, name: str, version: str | None = None) -> Response:
        async def handler():
            with repo.acquire(name, version_number(version)) as held:
                return JSONResponse(metadata(name, held.number, held.signature))
        return await observed(name, "metadata", request, handler)

    api.add_api_route("/v1/models/{name}", status, methods=["GET"])
    api.add_api_route("/v1/models/{name}/versions/{version}", status, methods=["GET"])
    api.add_api_route("/v1/models/{name}/metadata", get_metadata, methods=["GET"])
    api.add_api_route("/v1/models/{name}/versions/{version}/metadata", get_metadata,
                      methods=["GET"])

    @api.get("/healthz")
    async def healthz() -> Response:
        models = {m: repo.available(m) for m in repo.models}
        ok = all(models.values())
        return JSONResponse({"status": "ok" if ok else "waiting for a model version",
                             "models": {m: {"available_versions": v,
                                            "default_version": repo.default_version(m),
                                            "version_policy": repo.policy(m).describe(
                                                repo.keep_versions)}
                                        for m, v in models.items()}},
                            status_code=200 if ok else 503)

    @api.get("/metrics")
    async def prometheus(request: Request) -> Response:
        try:
            check_token(request.headers, config.token_env)
        except HttpError as err:
            return JSONResponse({"error": str(err)}, status_code=err.status)
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @api.exception_handler(404)
    async def not_found(request: Request, exc) -> Response:
        return JSONResponse({"error": f"no such endpoint: {request.method} {request.url.path}; "
                                      "see /v1/models/{name}[:predict|/metadata]"},
                            status_code=404)

    @api.exception_handler(405)
    async def not_allowed(request: Request, exc) -> Response:
        return JSONResponse({"error": f"method {request.method} is not allowed on "
                                      f"{request.url.path}"}, status_code=405)

    return ModelService(api, predict)


def app_from_env() -> ModelService:
    """uvicorn's factory for worker processes: the config path is in an environment
    variable (``DROPOUTNET_SERVICE_CONFIG``)."""
    from dropoutnet.serving.config import load_service_config

    return create_app(load_service_config(os.environ["DROPOUTNET_SERVICE_CONFIG"]))
