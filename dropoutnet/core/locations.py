"""Where the project keeps things: the repository's own files, the project home, and the
application database's URL.

The ground floor for every part that stores something (``db``, the registry's artifacts, the
services).  It never starts a database: :func:`database_url` reads ``DROPOUTNET_DATABASE_URL``,
which the entry points set before anything below them runs -- the ``dropoutnet`` command and
``make demo`` to the embedded server when it is unset
(:func:`dropoutnet.local.embedded_pg.ensure_database_url`), each Airflow task to the Airflow
connection (:mod:`dropoutnet.airflow_connection`).
"""

from __future__ import annotations

import os
from pathlib import Path

# the checkout (or installed source tree) holding sql_templates/, config/ and dags/
REPOSITORY = Path(__file__).resolve().parents[2]
DATABASE_URL_ENV = "DROPOUTNET_DATABASE_URL"


class NoDatabaseError(RuntimeError):
    """No application database was named: ``DROPOUTNET_DATABASE_URL`` is unset in a process
    that no entry point set up (a library call outside the ``dropoutnet`` command)."""


def home() -> Path:
    """The project home: ``DROPOUTNET_HOME`` or ``.dropoutnet`` in the working directory."""
    path = Path(os.environ.get("DROPOUTNET_HOME") or ".dropoutnet").resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path


def database_url() -> str:
    """The application database: ``DROPOUTNET_DATABASE_URL``, as the entry point set it."""
    url = os.environ.get(DATABASE_URL_ENV)
    if not url:
        raise NoDatabaseError(
            f"no application database: set {DATABASE_URL_ENV}=postgresql://USER:PASSWORD@HOST/"
            "DATABASE, or run through the `dropoutnet` command or `make demo`, which use the "
            "embedded server when it is unset")
    return url
