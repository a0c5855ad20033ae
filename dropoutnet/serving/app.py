"""The model service: TensorFlow Serving's REST API as an ASGI app (FastAPI).

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
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from contextlib import asynccontextmanager
from typing import Any

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

from dropoutnet.core.http import HttpError
from dropoutnet.core.http import authorize as check_token
from dropoutnet.serving.batching import Batcher
from dropoutnet.serving.config import ServiceConfig
from dropoutnet.serving.requests import BadRequest, format_predict, metadata, parse_predict
from dropoutnet.serving.versions import ModelRepository, NotFound, configure_threads

log = logging.getLogger(__name__)

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


def create_app(config: ServiceConfig, repository: ModelRepository | None = None) -> FastAPI:
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

    app = FastAPI(title=f"DropoutNet model service {config.name}", lifespan=lifespan,
                  docs_url=None, redoc_url=None, openapi_url=None)
    app.state.repository = repo
    app.state.config = config

    def authorize(request: Request) -> None:
        check_token(request, config.token_env)

    async def read_json(request: Request) -> Any:
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise HttpError(413, f"request body of {declared} bytes is over the limit of "
                                 f"{limit} bytes (max_body_bytes); split the instances over "
                                 "several requests")
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise HttpError(413, f"request body is over the limit of {limit} bytes "
                                     "(max_body_bytes); split the instances over several "
                                     "requests")
            chunks.append(chunk)
        raw = b"".join(chunks)
        if not raw.strip():
            raise BadRequest("the request body is empty: send a JSON object with "
                             "\"instances\" or \"inputs\"")
        try:
            return json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise BadRequest(f"the request body is not valid JSON: {err}") from None

    async def observed(model: str, api: str, request: Request, handler) -> Response:
        started = time.perf_counter()
        try:
            authorize(request)
            response = await handler()
        except HttpError as err:
            response = JSONResponse({"error": str(err)}, status_code=err.status)
        except BadRequest as err:
            response = JSONResponse({"error": str(err)}, status_code=400)
        except NotFound as err:
            response = JSONResponse({"error": str(err)}, status_code=404)
        except Exception as err:  # noqa: BLE001 - answer in TF Serving's error shape
            log.exception("%s %s failed", api, model)
            response = JSONResponse({"error": f"internal error: {type(err).__name__}: {err}"},
                                    status_code=500)
        known = model if model in repo.models else "(unknown)"  # bounded label values
        metrics.requests.labels(known, api, str(response.status_code)).inc()
        metrics.latency.labels(known, api).observe(time.perf_counter() - started)
        return response

    def version_number(version: str | None) -> int | None:
        if version is None:
            return None
        if not version.isdigit():
            raise BadRequest(f"version {version!r} must be an integer (a yyyymmdd folder)")
        return int(version)

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

    async def predict(request: Request, name: str, version: str | None = None) -> Response:
        async def handler():
            number = version_number(version)
            repo.check_model(name)
            body = await read_json(request)
            with repo.acquire(name, number) as held:
                inputs, fmt, rows = parse_predict(body, held.signature)
                if batcher is not None:
                    outputs = await batcher.predict(id(held), held.predict, inputs, rows)
                else:
                    outputs = await asyncio.to_thread(held.predict, inputs)
            return JSONResponse(format_predict(outputs, fmt, held.number),
                                headers={"X-Model-Version": str(held.number)})
        return await observed(name, "predict", request, handler)

    app.add_api_route("/v1/models/{name}", status, methods=["GET"])
    app.add_api_route("/v1/models/{name}/versions/{version}", status, methods=["GET"])
    app.add_api_route("/v1/models/{name}/metadata", get_metadata, methods=["GET"])
    app.add_api_route("/v1/models/{name}/versions/{version}/metadata", get_metadata,
                      methods=["GET"])
    app.add_api_route("/v1/models/{name}:predict", predict, methods=["POST"])
    app.add_api_route("/v1/models/{name}/versions/{version}:predict", predict,
                      methods=["POST"])

    @app.get("/healthz")
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

    @app.get("/metrics")
    async def prometheus(request: Request) -> Response:
        try:
            authorize(request)
        except HttpError as err:
            return JSONResponse({"error": str(err)}, status_code=err.status)
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.exception_handler(404)
    async def not_found(request: Request, exc) -> Response:
        return JSONResponse({"error": f"no such endpoint: {request.method} {request.url.path}; "
                                      "see /v1/models/{name}[:predict|/metadata]"},
                            status_code=404)

    @app.exception_handler(405)
    async def not_allowed(request: Request, exc) -> Response:
        return JSONResponse({"error": f"method {request.method} is not allowed on "
                                      f"{request.url.path}"}, status_code=405)

    return app


def app_from_env() -> FastAPI:
    """uvicorn's factory for worker processes: the config path is in an environment
    variable (``DROPOUTNET_SERVICE_CONFIG``)."""
    from dropoutnet.serving.config import load_service_config

    return create_app(load_service_config(os.environ["DROPOUTNET_SERVICE_CONFIG"]))
