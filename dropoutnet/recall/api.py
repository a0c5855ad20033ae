"""The recall API: a user's top-N items of the active version over HTTP (FastAPI).

``dropoutnet recall-api`` runs it (address and token in the pipeline config's
``retrieval.api``).  It is its own small app beside the model service: recall needs the
pipeline's database and config, the model service needs neither (it only serves towers from
disk, in as many TensorFlow processes as its config says), and the two scale differently.
Both follow the same bearer-token rule (:mod:`dropoutnet.core.http`).

Routes:

* ``GET /v1/recall?user_id=U[&n=N][&exclude_interacted=true][&created_within_hours=H]
  [&ef_search=E][&filter.<column>=<value> ...][&request_id=UUID]`` answers
  ``{"user_id", "model_version", "arm", ["experiment_id",] "items": [{"item_id", "score"}],
  "request_id"}``, best first, and the headers ``X-Model-Version`` and ``X-Request-Id``.
  ``arm`` is ``active``, or ``control`` / ``challenger`` while an experiment splits traffic
  (:mod:`dropoutnet.registry.experiments`).  The request id is the caller's (the
  ``request_id`` parameter or an ``X-Request-Id`` header, a UUID) or a new one; every answer
  is kept in the served log under it (:mod:`dropoutnet.online.served_log`, unless
  ``retrieval.log.enabled`` is off), so events that carry it are attributed exactly.
  ``filter.<column>`` names a column of ``retrieval.filter_columns`` (one parameter per
  column; several must all hold);
  booleans are ``true``/``false`` (or ``1``/``0``, ``yes``/``no``).  Everything else is
  :func:`dropoutnet.recall.retrieval.recall`'s.
* ``GET /healthz``: 200 with the active version and the served log's counters (buffered,
  written, dropped) when the database answers, its embedding tables hold this config's
  vector type and a version is active, else 503 (no token needed).

Errors are ``{"error": "..."}`` naming the parameter and the fix: 400 for an unknown,
repeated, malformed or out-of-range parameter; 401 for a missing or wrong token; 404 when
no version is active or the user has no vector in it; 422 for a filter value no item of the
active version has; 503 when the database cannot be reached.  A bad request never gets a 500:
that is for the server's own faults, such as a config whose ``storage.vector_type`` differs
from the stored tables' (recall would scan every item instead of using the index; checked on
the first request that finds the tables; the message names the setting and the fix).

The database work is synchronous psycopg2, so it runs in worker threads
(``asyncio.to_thread``), each on a connection of a small pool (at most
``retrieval.api.connections``; a recall holds one for its one read-only transaction).
Parameters are checked before a connection is taken.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any, AsyncIterator, Callable, Iterable, TypeVar

import psycopg2
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from dropoutnet import registry
from dropoutnet.config import PipelineConfig
from dropoutnet.core import db
from dropoutnet.core.errors import MissingDataError
from dropoutnet.core.http import HttpError, authorize
from dropoutnet.online.served_log import ServedList, ServedLogWriter, parse_request_id
from dropoutnet.recall import vectors
from dropoutnet.recall.retrieval import (
    API_NAMES,
    RecallError,
    channel_of,
    check_request,
    recall_checked,
)

log = logging.getLogger(__name__)

T = TypeVar("T")

PARAMETERS = ("user_id", "n", "exclude_interacted", "created_within_hours", "ef_search",
              "request_id")
FILTER_PREFIX = "filter."
TRUE, FALSE = ("true", "1", "yes"), ("false", "0", "no")


def parse_query(pairs: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """``recall``'s keyword arguments from the query string's ``(name, value)`` pairs.

    Unknown and repeated parameters are refused here (400); a value that does not parse is
    passed on as its text, so that :func:`dropoutnet.recall.retrieval.check_request` refuses it
    with the parameter's allowed range in the message.
    """
    seen: dict[str, str] = {}
    for name, value in pairs:
        if name in seen:
            raise RecallError(f"query parameter {name!r} is given more than once: give it "
                              "once (several filters go on different columns)")
        seen[name] = value
    out: dict[str, Any] = {"filters": {}}
    for name, value in seen.items():
        if name.startswith(FILTER_PREFIX):
            column = name[len(FILTER_PREFIX):]
            if not column:
                raise RecallError("query parameter 'filter.' names no column: write "
                                  "filter.<column>=<value>, e.g. filter.category_level1=music")
            out["filters"][column] = value
        elif name in ("user_id", "request_id"):
            out[name] = value
        elif name == "n":
            out["top_n"] = _number(value, int)
        elif name == "ef_search":
            out["ef_search"] = _number(value, int)
        elif name == "created_within_hours":
            out["created_within_hours"] = _number(value, float)
        elif name == "exclude_interacted":
            word = value.strip().lower()
            out["exclude_interacted"] = True if word in TRUE else False if word in FALSE \
                else value
        else:
            raise RecallError(
                f"unknown query parameter {name!r}: the parameters are "
                f"{', '.join(PARAMETERS)} and filter.<column>=<value>, e.g. "
                "/v1/recall?user_id=u1&n=20&filter.category_level1=music")
    out.setdefault("user_id", "")
    return out


def _number(text: str, kind: Callable[[str], T]) -> T | str:
    try:
        return kind(text.strip())
    except ValueError:
        return text


class _TablesCheck:
    """:func:`dropoutnet.recall.vectors.check_tables` until it has seen both tables pass, then
    nothing: a table's vector type is fixed once made, and absent tables (no run yet) are
    checked again on the next request."""

    def __init__(self, cfg: PipelineConfig) -> None:
        self.cfg = cfg
        self.passed = False

    def __call__(self, cur) -> None:
        if not self.passed:
            columns = vectors.check_tables(cur, self.cfg, size=False)
            self.passed = all("embedding" in side for side in columns.values())


def _request_id(value: str | None):
    """The caller's request id, or a new one; a malformed one is a 400 naming it."""
    try:
        return parse_request_id(value)
    except ValueError as err:
        raise RecallError(str(err)) from None


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def create_recall_app(cfg: PipelineConfig, url: str | None = None) -> FastAPI:
    """The recall API for ``cfg`` on the database at ``url`` (default: the pipeline's)."""
    api = cfg.retrieval.api
    pool = db.ConnectionPool(url, api.connections)
    served_log = ServedLogWriter(cfg, url) if cfg.retrieval.log.enabled else None

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        log.info("recall API of model %s on %s:%s (served log %s)", cfg.model_name, api.host,
                 api.port, "on" if served_log else "off")
        if served_log is not None:
            served_log.start()
        yield
        if served_log is not None:
            await asyncio.to_thread(served_log.close)
        pool.close()

    app = FastAPI(title=f"DropoutNet recall {cfg.model_name}", lifespan=lifespan,
                  docs_url=None, redoc_url=None, openapi_url=None)
    app.state.pool = pool
    app.state.served_log = served_log
    tables = _TablesCheck(cfg)

    def answer(cur, checked):
        tables(cur)
        return recall_checked(cur, cfg, checked, API_NAMES)

    def database_down(err: Exception) -> JSONResponse:
        log.warning("recall: the database is unavailable: %s", err)
        return _error(503, f"the database is unavailable ({str(err).strip().splitlines()[0]}"
                           "); retry later")

    @app.get("/v1/recall")
    async def recall_route(request: Request) -> Response:
        try:
            authorize(request.headers, api.token_env)
            query = parse_query(request.query_params.multi_items())
            request_id = _request_id(query.pop("request_id", None)
                                     or request.headers.get("x-request-id"))
            checked = check_request(cfg, **query, names=API_NAMES)
            result = await asyncio.to_thread(pool.run, lambda cur: answer(cur, checked))
        except HttpError as err:
            return _error(err.status, str(err))
        except RecallError as err:
            return _error(err.status, str(err))
        except psycopg2.OperationalError as err:
            return database_down(err)
        except MissingDataError as err:  # this server's config, not the request
            log.error("recall: %s", err)
            return _error(500, str(err))
        except Exception as err:  # noqa: BLE001 - a bug: logged, answered in the same shape
            log.exception("recall failed")
            return _error(500, f"internal error: {type(err).__name__}: {err}")
        result["request_id"] = str(request_id)
        if served_log is not None:
            served_log.log(ServedList.of_answer(result, request_id, "api", channel_of(checked),
                                                checked.filters))
        return JSONResponse(result, headers={"X-Model-Version": result["model_version"],
                                             "X-Request-Id": result["request_id"]})

    @app.get("/healthz")
    async def healthz() -> Response:
        def active_version(cur):
            tables(cur)
            return registry.active_version(cur, cfg)

        try:
            version = await asyncio.to_thread(pool.run, active_version)
        except psycopg2.OperationalError as err:
            return database_down(err)
        except MissingDataError as err:
            return JSONResponse({"status": str(err), "model_version": None}, status_code=503)
        if version is None:
            return JSONResponse({"status": f"model {cfg.model_name} has no active version yet",
                                 "model_version": None}, status_code=503)
        return JSONResponse({"status": "ok", "model_version": version,
                             "served_log": served_log.stats if served_log else None})

    @app.exception_handler(404)
    async def not_found(request: Request, exc) -> Response:
        return _error(404, f"no such endpoint: {request.method} {request.url.path}; see "
                           "GET /v1/recall?user_id=...&n=... and GET /healthz")

    @app.exception_handler(405)
    async def not_allowed(request: Request, exc) -> Response:
        return _error(405, f"method {request.method} is not allowed on {request.url.path}; "
                           "recall is a GET")

    return app


def serve(cfg: PipelineConfig, host: str | None = None, port: int | None = None) -> None:
    """Run the recall API in the foreground (``dropoutnet recall-api``) until interrupted."""
    import uvicorn

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: "
                                                   "%(message)s")
    uvicorn.run(create_recall_app(cfg), host=host or cfg.retrieval.api.host,
                port=cfg.retrieval.api.port if port is None else port, access_log=False,
                log_level="info", timeout_graceful_shutdown=10)
