"""The real-time path's health: the model service, the stream worker, the recall API.

Each check answers ``{"name", "status": "ok" | "warning" | "down", "summary", "details",
"fix"}``: green, yellow or red, one line of what was seen, the figures, and what to do when
it is not green.  The services are asked over HTTP with a short timeout (their own
``/healthz``), the stream worker through the database (its slot, heartbeat and dead
letters), so one page shows everything without waiting long for whatever is down.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from typing import Any

from dropoutnet.config import PipelineConfig
from dropoutnet.core import db, sql
from dropoutnet.stream.worker import status as stream_status

TIMEOUT = 1.5
DEAD_LETTERS = 10


def _get(url: str, token_env: str | None = None) -> tuple[int | None, Any, str | None]:
    """``(status, JSON body, error)`` of a GET; status None when nothing answers."""
    request = urllib.request.Request(url)
    token = os.environ.get(token_env) if token_env else None
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as resp:
            return resp.status, json.loads(resp.read() or b"null"), None
    except urllib.error.HTTPError as err:
        try:
            return err.code, json.loads(err.read() or b"null"), None
        except ValueError:
            return err.code, None, None
    except (urllib.error.URLError, OSError, ValueError) as err:
        return None, None, str(getattr(err, "reason", err))


def model_service(cfg: PipelineConfig, active: str | None) -> dict[str, Any]:
    """The model service the stream worker calls (``stream.service_url``): the versions it
    serves, the one requests without a version go to, its version policy."""
    url = cfg.stream.service_url.rstrip("/") + "/healthz"
    code, body, error = _get(url, cfg.stream.token_env)
    check = {"name": "model service", "url": url, "details": body}
    if code is None:
        return check | {"status": "down", "summary": f"{url} does not answer: {error}",
                        "fix": "start it: `dropoutnet service create config/item-service.json`"
                               " (make demo starts one); or set stream.service_url"}
    models = (body or {}).get("models") or {}
    served = {m: v.get("default_version") for m, v in models.items()}
    check["served"] = served
    if code != 200:
        return check | {"status": "down", "summary": f"answers {code}: "
                        f"{(body or {}).get('status', 'no model version')}",
                        "fix": "the deploy task has not put a version in the service's base "
                               "path: run the daily DAG (its deploy task)"}
    stale = {m: v for m, v in served.items() if active and str(v) != str(int(active))}
    if stale:
        return check | {"status": "warning",
                        "summary": f"serves {stale} but version {active} is active",
                        "fix": "the service loads new versions from its base path within "
                               "seconds: check the deploy task's log and the service's "
                               "version_policy.json"}
    return check | {"status": "ok", "summary": f"serves {served}", "fix": None}


def stream_worker(cfg: PipelineConfig, url: str | None = None) -> dict[str, Any]:
    """The stream worker: its slot (lag in bytes, stale or not), its heartbeat (lag in
    seconds, items per second) and its latest dead letters with their reasons."""
    answer = stream_status(cfg, url)
    answer["latest_dead_letters"] = []
    if answer["dead_letters"]:
        with db.transaction(url) as cur:
            sql.execute(cur, "console/dead_letters.sql",
                        params={"model_name": cfg.model_name, "limit": DEAD_LETTERS},
                        schema=cfg.storage.schema_)
            answer["latest_dead_letters"] = db.fetch_dicts(cur)
    check = {"name": "stream worker", "details": answer}
    if not answer["exists"]:
        return check | {"status": "down", "summary": f"no slot {answer['slot']}: no worker "
                        "has ever run for this model",
                        "fix": "run `dropoutnet stream` beside the model service (make demo "
                               "starts one): new items are recallable within a second"}
    if answer.get("stale"):
        return check | {"status": "down", "summary": answer["warning"],
                        "fix": "start `dropoutnet stream` again; `dropoutnet stream --drop` "
                               "if the worker is gone for good"}
    lag = answer.get("lag_seconds")
    summary = (f"{'connected' if answer.get('worker_connected') else 'not connected'}, lag "
               f"{lag if lag is not None else '?'} s / {answer.get('lag_bytes')} bytes, "
               f"{answer.get('items_per_second') or 0} items/s, "
               f"{answer['dead_letters']} dead letters")
    if not answer.get("worker_connected") or answer["dead_letters"]:
        return check | {"status": "warning", "summary": summary,
                        "fix": "dead letters are changes the worker could not embed: read "
                               "their reasons below, fix the rows, update them again"
                               if answer["dead_letters"] else
                               "no worker reads the slot right now: start `dropoutnet stream`"}
    return check | {"status": "ok", "summary": summary, "fix": None}


def recall_api(cfg: PipelineConfig) -> dict[str, Any]:
    """The recall API (``retrieval.api``): its own ``/healthz``."""
    api = cfg.retrieval.api
    host = "127.0.0.1" if api.host in ("0.0.0.0", "") else api.host
    url = f"http://{host}:{api.port}/healthz"
    code, body, error = _get(url)
    check = {"name": "recall API", "url": url, "details": body}
    if code is None:
        return check | {"status": "down", "summary": f"{url} does not answer: {error}",
                        "fix": "start it: `dropoutnet recall-api` (make demo starts one); or "
                               "set retrieval.api.host / port"}
    if code != 200:
        return check | {"status": "down", "summary": f"answers {code}: "
                        f"{(body or {}).get('status')}",
                        "fix": "it answers once a version is active and its tables match the "
                               "config: run the daily DAG, or read its log"}
    return check | {"status": "ok", "summary": f"serves version {body.get('model_version')}",
                    "fix": None}


def health(cfg: PipelineConfig, active: str | None, url: str | None = None
           ) -> list[dict[str, Any]]:
    """The three checks, in the order a request travels: service, stream, recall."""
    return [model_service(cfg, active), stream_worker(cfg, url), recall_api(cfg)]
