"""A/B experiments between versions: which version each user is served while one runs.

An experiment serves a **challenger** (any published, unretired version other than the
active one) to a stable share of users and the active version to the rest (the **control**
arm).  A user's arm is a salted hash of the user id: the salt is the experiment's own, drawn
at its start and stored with it, so the split is the same in every recall API replica and
after restarts, and independent between two experiments.  The running experiment is registry
state (``experiments``), read in the transaction of every recall, so a start or a stop takes
effect at the next request everywhere.

An experiment never moves the active version: promotion stays a publish or a rollback.  When
one of those makes the challenger active, or retention retires it, the registry's own
statement stops the experiment in the same transaction (``registry/activate.sql``,
``retire_version.sql``), and every user is back on the active version.
"""

from __future__ import annotations

import hashlib
import math
import secrets
from dataclasses import dataclass
from typing import Any

import psycopg2.errors

from dropoutnet.config import PipelineConfig
from dropoutnet.core import db, sql
from dropoutnet.core.errors import MissingDataError
from dropoutnet.registry.tables import ensure_tables, execute
from dropoutnet.registry.versions import (
    ActiveVersion,
    active,
    active_of_row,
    active_version,
    versions,
)

ARMS = ("control", "challenger")


class ExperimentError(ValueError):
    """An experiment that cannot be started or stopped; the message says why and the fix.
    Nothing was changed.  ``status`` is the HTTP status the console answers with: 400 for a
    malformed share, 404 for a version never published, 409 for a state that refuses it (a
    retired or active challenger, an experiment running or none to stop)."""

    def __init__(self, message: str, status: int = 409) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Experiment:
    """One A/B split: its challenger, the challenger's share of users and the salt of the
    split; ``serving`` is whether it splits traffic now (running, challenger servable)."""

    experiment_id: int
    challenger: str
    share: float
    salt: str
    started_at: Any
    started_by: str
    reason: str | None
    stopped_at: Any
    stopped_by: str | None
    stop_reason: str | None
    serving: bool

    def arm_of(self, user_id: str) -> str:
        """``challenger`` for the users whose salted hash falls below the share, else
        ``control``: a uniform draw per (experiment, user), the same on every call."""
        digest = hashlib.sha256(f"{self.salt}:{user_id}".encode()).digest()
        return "challenger" if int.from_bytes(digest[:8], "big") / 2.0 ** 64 < self.share \
            else "control"

    def as_dict(self) -> dict[str, Any]:
        """The experiment as JSON-ready values (the salt left out: it is the split's key)."""
        out = {k: v for k, v in self.__dict__.items() if k != "salt"}
        for key in ("started_at", "stopped_at"):
            out[key] = None if out[key] is None else out[key].isoformat()
        return out


def list_experiments(cur, cfg: PipelineConfig, *, running: bool = False,
                experiment_id: int | None = None, limit: int | None = None
                ) -> list[Experiment]:
    """The model's experiments, newest first (only the running one with ``running``);
    empty before the registry's tables exist."""
    if not db.table_exists(cur, cfg.storage.schema_, "experiments"):
        return []
    sql.execute(cur, "registry/experiments.sql",
                params={"model_name": cfg.model_name, "experiment_id": experiment_id,
                        "limit": limit},
                schema=cfg.storage.schema_, running=running, experiment_id=experiment_id,
                limit=limit)
    return [Experiment(**row) for row in db.fetch_dicts(cur)]


def serving_state(cur, cfg: PipelineConfig) -> tuple[ActiveVersion | None, Experiment | None]:
    """What every recall reads first: the active version (None before the first publish)
    and the experiment that splits traffic now (None when none does), in one statement
    (``registry/serving_state.sql``) after one check that the registry's tables exist."""
    if not db.tables_exist(cur, cfg.storage.schema_, "active_version", "experiments"):
        return active(cur, cfg), None  # registry tables of a release before experiments
    execute(cur, cfg, "serving_state")
    row = cur.fetchone()
    if row is None:
        return None, None
    names = [d[0] for d in cur.description]
    found = dict(zip(names[5:], row[5:]))
    serving_now = found.pop("serving")
    return (active_of_row(row[:5]),
            Experiment(**found, serving=True) if serving_now else None)


def start_experiment(cfg: PipelineConfig, challenger: str, share: float | None, actor: str,
          reason: str | None = None, url: str | None = None) -> Experiment:
    """Start serving ``challenger`` to ``share`` of users (default
    ``retrieval.experiment.share``); :class:`ExperimentError` for an unknown, retired or
    active challenger, a share outside (0, 1) or an experiment already running."""
    share = cfg.retrieval.experiment.share if share is None else share
    if isinstance(share, bool) or not isinstance(share, (int, float)) \
            or not math.isfinite(share) or not 0 < share < 1:
        raise ExperimentError(f"share must be a number strictly between 0 and 1 (the "
                              f"challenger's share of users, e.g. 0.1), got {share!r}", 400)
    ensure_tables(url, cfg)
    with db.transaction(url) as cur:
        found = versions(cur, cfg, challenger)
        if not found:
            raise ExperimentError(
                f"version {challenger!r} of model {cfg.model_name!r} was never published: "
                "the challenger must be one of `dropoutnet versions`", 404)
        if found[0]["retired_at"] is not None:
            raise ExperimentError(
                f"version {challenger} was retired on {found[0]['retired_at']:%Y-%m-%d} "
                "(retention dropped its embeddings): choose a version that is not retired")
        live = active_version(cur, cfg)
        if live is None:
            raise MissingDataError(f"model {cfg.model_name!r} has no active version yet: an "
                                   "experiment compares a challenger with the active version")
        if live == challenger:
            raise ExperimentError(
                f"version {challenger} is the active version: the challenger must be another "
                "published version (the control arm is always the active version)")
        running = list_experiments(cur, cfg, running=True)
        if running:
            raise ExperimentError(
                f"experiment {running[0].experiment_id} (challenger {running[0].challenger}) is "
                "still running: stop it first (`dropoutnet experiment stop`)")
        try:
            execute(cur, cfg, "start_experiment", challenger=challenger, share=float(share),
                    salt=secrets.token_hex(8), actor=actor, reason=reason)
        except psycopg2.errors.UniqueViolation as err:  # started elsewhere meanwhile
            raise ExperimentError("another experiment was started at the same time: see "
                                  "`dropoutnet experiment status`") from err
        new_id = cur.fetchone()[0]
        return list_experiments(cur, cfg, experiment_id=new_id)[0]


def stop_experiment(cfg: PipelineConfig, actor: str, reason: str | None = None,
         url: str | None = None) -> Experiment:
    """Stop the running experiment (every user back on the active version);
    :class:`ExperimentError` when none runs."""
    ensure_tables(url, cfg)
    with db.transaction(url) as cur:
        execute(cur, cfg, "stop_experiment", actor=actor, reason=reason or "stopped")
        row = cur.fetchone()
        if row is None:
            raise ExperimentError(f"no experiment of model {cfg.model_name!r} is running: "
                                  "nothing to stop (`dropoutnet experiment status` lists them)")
        return list_experiments(cur, cfg, experiment_id=row[0])[0]
