"""Simulated traffic: the synthetic data's users ask the recall API and react to what it
serves, closing the online loop on a laptop (``dropoutnet simulate``).

Each simulated user is a user the active version embedded.  It asks ``GET /v1/recall`` for a
list (as a client would, over HTTP, with its own request id), looks at every item served
(an ``impression``), clicks each with the data's planted probability
(:func:`dropoutnet.data.synthetic.click_probability` of the oracle score ``taste . latent +
quality``, from the tables ``evaluation.oracle`` names) and likes a clicked item with
:func:`dropoutnet.data.synthetic.like_probability`.  The events go into the raw events table
(``raw.events``, with the response's request id where that role is mapped), stamped within a
second of the answer: the online metrics then judge what was served, and the next
bizdate's samples include what the model itself exposed, as in production.

Seeded: the same users, in the same order, and the same draws for the same lists.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import psycopg

from dropoutnet import registry
from dropoutnet.config import PipelineConfig
from dropoutnet.core import db, sql
from dropoutnet.core.errors import MissingDataError
from dropoutnet.core.locations import database_url
from dropoutnet.data import synthetic
from dropoutnet.data.inputs import as_vector


class SimulationError(RuntimeError):
    """The simulation cannot run; the message says why and what to do."""


@dataclass(frozen=True)
class Served:
    """One answer the simulated user got: when, from which version and arm, which items."""

    user_id: str
    request_id: str
    at: dt.datetime
    model_version: str
    arm: str
    items: list[str]


def _oracle(cur, cfg: PipelineConfig, side: str, ids: list[str]
            ) -> dict[str, tuple[np.ndarray, float]]:
    t = getattr(cfg.evaluation.oracle, side)
    sql.execute(cur, "evaluation/oracle_vectors.sql", params={"ids": ids}, table=t.table,
                id=t.id, vector=t.vector, bias=t.bias)
    return {i: (as_vector(v), float(b)) for i, v, b in cur.fetchall()}


def _ask(api_url: str, user: str, top_n: int, created_within: float | None,
         token: str | None) -> Served | None:
    request_id = str(uuid.uuid4())
    query = {"user_id": user, "n": str(top_n), "request_id": request_id}
    if created_within is not None:
        query["created_within_hours"] = str(created_within)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    request = urllib.request.Request(f"{api_url}/v1/recall?{urllib.parse.urlencode(query)}",
                                     headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            body = json.loads(response.read())
    except urllib.error.HTTPError as err:
        if err.code == 404:  # a user this version cannot answer: it asks nothing more
            return None
        raise SimulationError(f"the recall API answered {err.code}: "
                              f"{err.read().decode(errors='replace')[:300]}") from None
    except OSError as err:
        raise SimulationError(f"the recall API at {api_url} cannot be reached ({err}): start "
                              "it with `dropoutnet recall-api`") from None
    return Served(user, body["request_id"], dt.datetime.now(dt.timezone.utc),
                  body["model_version"], body["arm"], [i["item_id"] for i in body["items"]])


def simulate(cfg: PipelineConfig, *, users: int = 200, requests_per_user: int = 1,
             top_n: int | None = None, created_within_hours: float | None = None,
             api_url: str | None = None, seed: int = 0, clients: int = 4,
             url: str | None = None) -> dict[str, Any]:
    """Play ``users`` simulated users, each asking ``requests_per_user`` lists of ``top_n``
    items (the newest only with ``created_within_hours``) from the recall API at
    ``api_url`` (default ``retrieval.api``'s address), with ``clients`` requests in flight;
    write their impressions, clicks and likes; return what was served and done, per arm."""
    if cfg.evaluation.oracle is None:
        raise SimulationError("simulate plays the synthetic data's planted users: it needs "
                              "evaluation.oracle (the tables of their tastes and the items' "
                              "latents), which `dropoutnet datagen` writes")
    if users < 1 or requests_per_user < 1 or clients < 1:
        raise SimulationError(f"users, requests per user and clients must be at least 1, got "
                              f"{users}, {requests_per_user}, {clients}")
    api = cfg.retrieval.api
    api_url = (api_url or f"http://{api.host}:{api.port}").rstrip("/")
    top_n = top_n or cfg.retrieval.top_n
    url = url or database_url()
    with db.transaction(url) as cur:
        active = registry.active_version(cur, cfg)
        if active is None:
            raise MissingDataError("no version is active yet: run the daily DAG first")
        sql.execute(cur, "online/simulated_users.sql",
                    params={"model_version": active, "seed": str(seed), "users": users},
                    schema=cfg.storage.schema_)
        chosen = [u for (u,) in cur.fetchall()]
        tastes = _oracle(cur, cfg, "users", chosen)
    asks = [u for _ in range(requests_per_user) for u in chosen if u in tastes]
    token = os.environ.get(api.token_env) or None
    with ThreadPoolExecutor(clients) as pool:
        answers = [a for a in pool.map(lambda u: _ask(api_url, u, top_n, created_within_hours,
                                                      token), asks) if a is not None]
    items = sorted({i for a in answers for i in a.items})
    with db.transaction(url) as cur:
        latents = _oracle(cur, cfg, "items", items)

    rng = np.random.default_rng(seed)
    rows: list[tuple] = []
    counts: Counter = Counter()
    with_request_id = "request_id" in cfg.raw.events.columns
    for a in answers:
        taste = tastes[a.user_id][0]
        known = [i for i in a.items if i in latents]
        if not known:
            continue
        logits = np.array([taste @ latents[i][0] + latents[i][1] for i in known])
        clicks = rng.random(len(known)) < synthetic.click_probability(logits)
        likes = clicks & (rng.random(len(known)) < synthetic.like_probability(logits))
        for k, item in enumerate(known):
            # within a second of the answer, so that no event is in the future once the
            # simulation returns (it waits that long): a reader sees every one of them
            events = [("impression", a.at)]
            if clicks[k]:
                clicked = a.at + dt.timedelta(milliseconds=int(rng.integers(1, 500)))
                events.append(("click", clicked))
                if likes[k]:
                    events.append(("like", clicked + dt.timedelta(milliseconds=400)))
            for kind, when in events:
                rows.append((a.user_id, item, kind, when)
                            + ((a.request_id,) if with_request_id else ()))
        counts[(a.arm, "requests")] += 1
        counts[(a.arm, "served")] += len(a.items)
        counts[(a.arm, "clicks")] += int(clicks.sum())
        counts[(a.arm, "likes")] += int(likes.sum())
    with psycopg.connect(url) as conn, conn.cursor() as cur:
        with cur.copy(sql.render("online/copy_events.sql", events=cfg.raw.events)) as copy:
            for row in rows:
                copy.write_row(row)
    if rows:
        last = max(row[3] for row in rows)
        time.sleep(max(0.0, (last - dt.datetime.now(dt.timezone.utc)).total_seconds()))
    arms = sorted({arm for arm, _ in counts})
    return {"users": len(chosen), "requests": len(asks), "answered": len(answers),
            "events": len(rows),
            "arms": {arm: {k: counts[(arm, k)] for k in ("requests", "served", "clicks",
                                                         "likes")}
                     | {"ctr": round(counts[(arm, "clicks")] / counts[(arm, "served")], 4)
                        if counts[(arm, "served")] else None} for arm in arms}}
