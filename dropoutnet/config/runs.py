"""``runs``: one pipeline run per model at a time."""

from __future__ import annotations

from pydantic import Field

from dropoutnet.config.base import Strict


class RunsConfig(Strict):
    """One pipeline run per model at a time (see :mod:`dropoutnet.registry`).

    A run (an Airflow DAG run, or ``dropoutnet run``) holds the model's run lock from its
    first task to its last.  Another run's first task waits up to ``lock_wait_minutes`` for
    it, then fails naming the holder.  A holder whose tasks stopped renewing the lock for
    ``lock_stale_minutes`` (its workers died) is taken over.
    """

    lock_wait_minutes: float = Field(default=60, ge=0)
    lock_stale_minutes: float = Field(default=30, gt=0)

