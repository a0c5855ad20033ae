"""Where the project keeps things: its home folder and the application database's URL.

The ground floor for every part that stores something (``db``, ``artifacts``, the services),
so that none of them needs the local launcher (:mod:`dropoutnet.embedded_pg`): only
:func:`database_url`, when ``DROPOUTNET_DATABASE_URL`` is unset, asks the launcher for the
embedded server, starting it on first use so that a fresh checkout needs no set-up step.
"""

from __future__ import annotations

import os
from pathlib import Path


def home() -> Path:
    """The project home: ``DROPOUTNET_HOME`` or ``.dropoutnet`` in the working directory."""
    path = Path(os.environ.get("DROPOUTNET_HOME") or ".dropoutnet").resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path


def database_url() -> str:
    """The application database: ``DROPOUTNET_DATABASE_URL``, else the embedded server's (as
    the pipeline role)."""
    url = os.environ.get("DROPOUTNET_DATABASE_URL")
    if url:
        return url
    from . import embedded_pg

    return embedded_pg.app_url(embedded_pg.start())
