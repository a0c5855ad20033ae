"""The console's pages and JSON API, as one FastAPI app (the plugin mounts it in Airflow).

Every route, the pages, the JSON under ``/api`` and the static files alike, runs behind the
``authenticate`` the plugin hands in (Airflow's auth manager: a user who may read the DAG
reads everything; one who may edit it may make a version live).  The app itself imports no
Airflow, so it takes three things from the plugin:

* ``authenticate(request)``: the :class:`Viewer`, or an ``HTTPException`` 401/403;
* ``make_live(version, actor=, source=, reason=)``: what ``dropoutnet rollback`` runs
  (:func:`dropoutnet.pipeline.rollback`), so the button and the command are one code path;
* ``database_url()``: the pipeline's database (the Airflow connection ``dropoutnet_db``),
  asked on the first request that needs it, so a missing connection is a 503 that says so.

Make live is a ``POST`` with a JSON body.  A browser session (the ``_token`` cookie) must
also send ``X-CSRF-Token``: an HMAC of its session cookie that only a page of this origin can
have (it is in the page; a cross-site page can neither read it nor the cookie), and a
cross-origin ``Origin`` is refused.  A client with a bearer token needs neither.

Experiments start and stop the same way: ``POST /api/experiments`` (``{"challenger",
"share", "reason"}``) and ``POST /api/experiments/stop`` (``{"reason"}``).

Errors are ``{"error": "..."}`` in the JSON and a message in the page, never a stack trace:
400 for a malformed parameter, 404 for an unknown version or user, 403 for a viewer's Make
live or experiment, 409 for an experiment the registry's state refuses, 503 when the
database or config cannot be read (nothing changes on any of them).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import hmac
import html
import logging
import math
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Awaitable, Callable
from urllib.parse import quote, urlencode, urlsplit

import jinja2
import psycopg2
from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import HTMLResponse, JSONResponse, Response

from dropoutnet.config import ConfigError, PipelineConfig, default_config_path, load_config
from dropoutnet.console import charts, params
from dropoutnet.console.params import ConsoleError
from dropoutnet.core.errors import MissingDataError, RunLockError

log = logging.getLogger(__name__)

HERE = Path(__file__).parent
STATIC = {"console.css": "text/css", "console.js": "text/javascript",
          "icon.svg": "image/svg+xml"}
SESSION_COOKIE = "_token"  # Airflow's session cookie (a JWT)
CSRF_HEADER = "X-CSRF-Token"
SPLITS = ("cold_items", "cold_both", "cold_users", "warm_items")
MAX_USERS = 200


@dataclass(frozen=True)
class Viewer:
    """The signed-in user: a name, whether they may make a version live, and the session
    cookie they came with (None for a bearer token: no CSRF check then)."""

    name: str
    can_edit: bool
    session: str | None = None


Authenticate = Callable[[Request], Awaitable[Viewer]]


def csrf_token(session: str) -> str:
    """The token a page of this session sends with a state-changing request."""
    return hmac.new(session.encode(), b"dropoutnet console: make live",
                    hashlib.sha256).hexdigest()


class _Config:
    """The pipeline config, read again when its file changes (the DAG reads it per task)."""

    def __init__(self, path: str | None) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._cached: tuple[float, PipelineConfig] | None = None

    def __call__(self) -> PipelineConfig:
        path = Path(self.path or default_config_path())
        try:
            mtime = path.stat().st_mtime
        except OSError as err:
            raise ConsoleError(503, f"the pipeline config {path} cannot be read ({err}): set "
                                    "DROPOUTNET_CONFIG for the Airflow API server") from None
        with self._lock:
            if self._cached is None or self._cached[0] != mtime:
                try:
                    self._cached = (mtime, load_config(path))
                except ConfigError as err:
                    raise ConsoleError(503, f"the pipeline config is invalid: {err}") from None
            return self._cached[1]


def _plain(value: Any) -> Any:
    """JSON-able, with NaN as null (JSON has no NaN)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _figure(value: Any, digits: int = 4) -> str:
    """A figure as the pages print it: 4 decimals, ``–`` for none."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def _templates() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(HERE / "templates")),
                             autoescape=True, undefined=jinja2.ChainableUndefined,
                             trim_blocks=True, lstrip_blocks=True)

    def when(value: Any) -> str:
        if value is None:
            return "–"
        if isinstance(value, str):  # an ISO time from a JSON-ready view
            try:
                value = dt.datetime.fromisoformat(value)
            except ValueError:
                return value
        if isinstance(value, dt.datetime):
            return value.astimezone(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
        return str(value)

    def interval(ci: Any, digits: int = 4) -> str:
        return f"[{_figure(ci[0], digits)}, {_figure(ci[1], digits)}]" if ci else ""

    env.filters.update(figure=_figure, when=when, interval=interval,
                       urlpart=lambda v: quote(str(v), safe=""))
    return env


def create_app(authenticate: Authenticate, make_live: Callable[..., dict[str, Any]],
               database_url: Callable[[], str | None], *, config_path: str | None = None,
               dag_id: str = "dropoutnet_daily",
               login_url: Callable[[str], str] | None = None) -> FastAPI:
    """The console app; see the module's docstring for the three callables.  ``login_url``
    gives the sign-in page for a ``next`` URL (the auth manager's; default Airflow's
    ``/auth/login``)."""
    from dropoutnet.core.db import ConnectionPool

    config = _Config(config_path)
    pages = _templates()
    state: dict[str, Any] = {"pool": None}
    pool_lock = threading.Lock()

    def pool() -> ConnectionPool:
        with pool_lock:
            if state["pool"] is None:
                try:
                    url = database_url()
                except Exception as err:  # noqa: BLE001 - named, with its fix, as a 503
                    raise ConsoleError(503, str(err)) from None
                state["pool"] = ConnectionPool(url, 4)
            return state["pool"]

    async def viewer(request: Request) -> Viewer:
        user = await authenticate(request)
        request.state.viewer = user
        return user

    app = FastAPI(title="DropoutNet console", docs_url=None, redoc_url=None,
                  openapi_url=None, dependencies=[Depends(viewer)])

    async def read(fn: Callable[[Any, PipelineConfig], Any]) -> Any:
        """``fn(cursor, cfg)`` in one read-only transaction on a pooled connection."""
        cfg = config()
        connections = pool()

        def call(cur):
            cur.execute("set transaction read only")
            return fn(cur, cfg)

        return await asyncio.to_thread(connections.run, call)

    def airflow_root(request: Request) -> str:
        """Airflow's own base path (the console is mounted below it)."""
        root = request.scope.get("root_path", "")
        return root[: -len(PREFIX)] if root.endswith(PREFIX) else ""

    def page(request: Request, template: str, status: int = 200, **context: Any) -> Response:
        user: Viewer = request.state.viewer
        base = request.scope.get("root_path", "")
        text = pages.get_template(template).render(
            base=base, airflow=airflow_root(request), dag_id=dag_id, user=user,
            csrf=csrf_token(user.session) if user.session else "", request=request,
            embedded=request.query_params.get("embedded") is not None, **context)
        return HTMLResponse(text, status_code=status)

    def fail(request: Request, err: ConsoleError, as_json: bool) -> Response:
        if as_json:
            return JSONResponse({"error": str(err)}, status_code=err.status)
        return page(request, "error.html", err.status, code=err.status, message=str(err))

    async def answer(request: Request, as_json: bool, produce: Callable[[], Awaitable[Any]],
                     template: str | None = None, extra: Callable[[Any], dict] | None = None
                     ) -> Response:
        """Run ``produce`` and answer JSON or the page, every failure as a clear message."""
        try:
            data = await produce()
        except Exception as err:  # noqa: BLE001 - each answered in the same shape
            known = _console_error(err, missing=404)
            if known is None:  # a bug: logged
                log.exception("console: %s failed", request.url.path)
                known = ConsoleError(500, f"internal error: {type(err).__name__}: {err}")
            return fail(request, known, as_json)
        if as_json:
            return JSONResponse(_plain(jsonable_encoder(data)))
        return page(request, template, data=data, **(extra(data) if extra else {}))

    # --- the views: each a JSON route and a page -------------------------------------------

    def both(path: str, template: str, extra: Callable[[Any], dict] | None = None):
        """Register ``fn(request)`` (returning the data's coroutine) as the page at ``path``
        and the JSON at ``/api<path>``."""
        def register(fn: Callable[..., Awaitable[Any]]):
            async def as_page(request: Request) -> Response:
                return await answer(request, False, lambda: fn(request), template, extra)

            async def as_json(request: Request) -> Response:
                return await answer(request, True, lambda: fn(request))

            api_path = "/api" + (path if path != "/" else "/overview")
            app.add_api_route(path, as_page, methods=["GET"], name=f"page:{template}")
            app.add_api_route(api_path, as_json, methods=["GET"], name=f"api:{template}")
            return fn
        return register

    from dropoutnet import registry
    from dropoutnet.console import compare as compare_view
    from dropoutnet.console import health as health_view
    from dropoutnet.console import online as online_view
    from dropoutnet.console import playground as playground_view
    from dropoutnet.console import quality as quality_view
    from dropoutnet.console import versions as versions_view

    @both("/", "overview.html")
    async def overview(request: Request):
        return await read(versions_view.overview)

    @both("/versions", "versions.html")
    async def versions(request: Request):
        return await read(versions_view.version_list)

    @both("/versions/{version}", "version.html", lambda d: {"loss_chart": _loss_chart(d)})
    async def version(request: Request):
        name = params.version(request.path_params["version"])
        return await read(lambda cur, cfg: versions_view.version_detail(cur, cfg, name))

    @both("/history", "history.html")
    async def history(request: Request):
        return await read(lambda cur, cfg: registry.activations(cur, cfg, limit=500))

    @both("/runs/{run_id:path}", "run.html")
    async def run(request: Request):
        pipeline_run = request.path_params["run_id"]
        return await read(lambda cur, cfg: versions_view.run_versions(cur, cfg, pipeline_run))

    @both("/quality", "quality.html",
          lambda d: {"chart": _quality_chart(d), "splits": SPLITS, "ks": d["ks"]})
    async def quality(request: Request):
        q = request.query_params
        split = params.split(q.get("split"), SPLITS)
        start, end = params.bizdate(q.get("from"), "from"), params.bizdate(q.get("to"), "to")
        if start and end and start > end:
            raise params.bad(f"from ({start}) is after to ({end}): swap them")

        def fn(cur, cfg):
            k = params.k_of(cfg, q.get("k"))
            return {**quality_view.quality(cur, cfg, split, k, start, end),
                    "ks": cfg.evaluation.k}
        return await read(fn)

    @both("/compare", "compare.html")
    async def compare(request: Request):
        q = request.query_params
        given = q.get("a") is not None or q.get("b") is not None
        a = params.version(q.get("a"), "a") if given else None
        b = params.version(q.get("b"), "b") if given else None
        users = params.integer(q.get("users"), "users", 1, MAX_USERS, 50)

        def fn(cur, cfg):
            top = params.integer(q.get("n"), "n", 1, cfg.retrieval.max_top_n,
                                 cfg.retrieval.top_n)
            pair = (a, b) if given else compare_view.default_pair(cur, cfg)
            return compare_view.compare(cur, cfg, *pair, users, top)
        return await read(fn)

    @both("/playground", "playground.html")
    async def playground(request: Request):
        # the form's empty fields are left out (the recall API's defaults apply)
        pairs = [(k, v) for k, v in request.query_params.multi_items()
                 if k not in ("other", "embedded") and v != ""]
        other = request.query_params.get("other") or None
        if other is not None:
            other = params.version(other, "other")
        if not any(k == "user_id" for k, _ in pairs):
            return {"form_only": True}

        def fn(cur, cfg):
            from dropoutnet.recall import vectors

            vectors.check_tables(cur, cfg, size=False)
            return playground_view.playground(cur, cfg, pairs, other)
        return await read(fn)

    @both("/online", "online.html")
    async def online(request: Request):
        q = request.query_params
        start, end = params.bizdate(q.get("from"), "from"), params.bizdate(q.get("to"), "to")
        if start and end and start > end:
            raise params.bad(f"from ({start}) is after to ({end}): swap them")
        return await read(lambda cur, cfg: online_view.online(cur, cfg, start, end))

    @both("/experiments/{experiment_id}", "experiment.html")
    async def experiment(request: Request):
        from dropoutnet.online.report import experiment_status

        number = params.integer(request.path_params["experiment_id"], "experiment", 1,
                                2 ** 62, 1)
        cfg, url = config(), pool().url
        return await asyncio.to_thread(experiment_status, cfg, number, url)

    @both("/health", "health.html")
    async def health(request: Request):
        cfg = config()
        active = await read(lambda cur, c: registry.active_version(cur, c))
        url = pool().url
        return await asyncio.to_thread(health_view.health, cfg, active, url)

    async def edit_body(request: Request, what: str, shape: str) -> dict[str, Any]:
        """The JSON object of an edit (``what``), once the user may edit, the request is of
        this origin and (for a browser session) carries the page's CSRF token."""
        user: Viewer = request.state.viewer
        if not user.can_edit:
            raise ConsoleError(403, f"{user.name} may view the DropoutNet DAG but not edit it: "
                                    f"{what} needs edit permission on the DAG {dag_id}")
        _check_origin(request)
        if user.session is not None:
            sent = request.headers.get(CSRF_HEADER, "")
            if not hmac.compare_digest(sent, csrf_token(user.session)):
                raise ConsoleError(403, f"missing or wrong {CSRF_HEADER}: use the console's "
                                        "page (reload it first)")
        try:
            body = await request.json()
        except ValueError:
            raise params.bad(f"the body must be JSON: {shape}") from None
        if not isinstance(body, dict):
            raise params.bad(f"the body must be a JSON object: {shape}")
        return body

    async def experiment_action(request: Request, act: Callable[[Viewer, dict], Any]
                                ) -> Response:
        user: Viewer = request.state.viewer
        try:
            body = await edit_body(request, "starting or stopping an experiment",
                                   '{"challenger": "yyyymmdd", "share": 0.2, "reason": "why"}')
            cfg = config()
            pool()  # the connection is resolved (and the package's database set) first
            done = await asyncio.to_thread(act, user, body, cfg)
        except Exception as err:
            known = _console_error(err, missing=409)
            if known is None:
                raise
            return JSONResponse({"error": str(known)}, status_code=known.status)
        log.info("console: %s: experiment %s", user.name, done.experiment_id)
        return JSONResponse(_plain(jsonable_encoder(done.as_dict())))

    @app.post("/api/experiments", name="api:experiment-start")
    async def start_experiment(request: Request) -> Response:
        def act(user: Viewer, body: dict, cfg: PipelineConfig):
            challenger = params.version(body.get("challenger"), "challenger")
            share = body.get("share", cfg.retrieval.experiment.share)
            return registry.start_experiment(cfg, challenger, share, user.name,
                                             params.reason(body.get("reason")), pool().url)
        return await experiment_action(request, act)

    @app.post("/api/experiments/stop", name="api:experiment-stop")
    async def stop_experiment(request: Request) -> Response:
        def act(user: Viewer, body: dict, cfg: PipelineConfig):
            return registry.stop_experiment(cfg, user.name, params.reason(body.get("reason")),
                                            pool().url)
        return await experiment_action(request, act)

    @app.post("/api/versions/{version}/make-live", name="api:make-live")
    async def make_live_route(request: Request) -> Response:
        user: Viewer = request.state.viewer
        try:
            name = params.version(request.path_params["version"])
            body = await edit_body(request, "making a version live", '{"reason": "why"}')
            why = params.reason(body.get("reason"))
            config()
            pool()  # the connection is resolved (and the package's database set) first
            result = await asyncio.to_thread(make_live, name, config_path, actor=user.name,
                                             source="airflow ui", reason=why)
        except Exception as err:
            known = _console_error(err, missing=409)  # not a version that can be made live
            if known is None:
                raise
            return JSONResponse({"error": str(known)}, status_code=known.status)
        log.info("console: %s made version %s live (%s)", user.name, name, why)
        return JSONResponse(_plain(jsonable_encoder(result)))

    @app.get("/static/{name}", name="static")
    async def static(name: str) -> Response:
        if name not in STATIC:
            return JSONResponse({"error": f"no static file {name!r}"}, status_code=404)
        return Response((HERE / "static" / name).read_bytes(), media_type=STATIC[name],
                        headers={"Cache-Control": "private, max-age=300"})

    @app.exception_handler(HTTPException)
    async def refused(request: Request, exc: HTTPException) -> Response:
        if exc.status_code in (401, 403) and not request.url.path.startswith(
                (request.scope.get("root_path", "") + "/api", "/api")):
            login = (login_url(str(request.url)) if login_url else
                     f"{airflow_root(request)}/auth/login?{urlencode({'next': str(request.url)})}")
            return HTMLResponse(
                f"<!doctype html><title>DropoutNet: sign in</title><p>{exc.status_code}: "
                f"{html.escape(str(exc.detail))}. <a href=\"{html.escape(login)}\" "
                "target=\"_top\">Sign in to Airflow</a> to see the DropoutNet console.</p>",
                status_code=exc.status_code)
        return JSONResponse({"error": str(exc.detail)}, status_code=exc.status_code)

    @app.exception_handler(404)
    async def no_route(request: Request, exc) -> Response:
        return JSONResponse({"error": f"no such page: {request.url.path}"}, status_code=404)

    @app.exception_handler(405)
    async def not_allowed(request: Request, exc) -> Response:
        return JSONResponse({"error": f"method {request.method} is not allowed on "
                                      f"{request.url.path}"}, status_code=405)

    return app


PREFIX = "/dropoutnet"


def _console_error(err: Exception, missing: int) -> ConsoleError | None:
    """The answer to a known failure (``missing``: the status of missing data), or None for
    a bug."""
    from dropoutnet.recall.retrieval import RecallError
    from dropoutnet.registry import ExperimentError

    if isinstance(err, ConsoleError):
        return err
    if isinstance(err, (RecallError, ExperimentError)):
        return ConsoleError(err.status, str(err))
    if isinstance(err, (MissingDataError, RunLockError)):
        return ConsoleError(missing, str(err))
    if isinstance(err, (psycopg2.OperationalError, psycopg2.InterfaceError)):
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        log.warning("console: the database is unavailable: %s", first)
        return ConsoleError(503, f"the pipeline's database does not answer ({first}): check "
                                 "the Airflow connection dropoutnet_db and that the database "
                                 "is up; nothing changed, retry")
    return None


def _check_origin(request: Request) -> None:
    """A browser's cross-origin request is refused (its ``Origin`` names another host)."""
    origin = request.headers.get("origin")
    if origin and urlsplit(origin).netloc != request.headers.get("host", ""):
        raise ConsoleError(403, f"cross-origin request from {origin} refused")


def _loss_chart(detail: dict[str, Any]) -> str:
    loss = detail.get("loss_per_epoch") or []
    return charts.line_chart([str(i + 1) for i in range(len(loss))],
                             [charts.Series("training loss", loss, charts.PALETTE["loss"])],
                             title=f"training loss per epoch, run {detail['run_id']}",
                             y_label="loss", zero_based=False, height=220)


def _quality_chart(data: dict[str, Any]) -> str:
    points = data["points"]
    labels = [str(p["bizdate"]) for p in points]
    metric = data["metric"]
    model = charts.Series(
        f"model {metric}", [p["value"] for p in points], charts.PALETTE["model"],
        band=[tuple(p["ci"]) if p["ci"] else None for p in points],
        links=[f"versions/{p['model_version']}" for p in points],
        titles=[f"{p['bizdate']}: version {p['model_version']} {metric} "
                f"{_figure(p['value'])} {p['ci'] or ''}, {p['decision'] or 'not published'}; "
                f"live after the run: {p['live'] or 'none'} (click to open the version)"
                for p in points])
    series = [model]
    if any(p["baseline"] for p in points):
        series.append(charts.Series(
            "strongest baseline", [(p["baseline"] or {}).get("value") for p in points],
            charts.PALETTE["baseline"],
            band=[tuple(p["baseline"]["ci"]) if p["baseline"] and p["baseline"]["ci"]
                  else None for p in points],
            titles=[f"{p['bizdate']}: {(p['baseline'] or {}).get('name')}" for p in points]))
    if any(p["oracle"] is not None for p in points):
        series.append(charts.Series("oracle (ceiling)", [p["oracle"] for p in points],
                                    charts.PALETTE["oracle"], dashed=True))
    if any(p["threshold"] is not None for p in points):
        series.append(charts.Series("gate threshold", [p["threshold"] for p in points],
                                    charts.PALETTE["threshold"], dashed=True))
    return charts.line_chart(labels, series, title=f"{data['split']}: {metric} by bizdate",
                             y_label=metric)
