"""Which worker ran a task: the name Airflow records for a task instance, and the line a task
logs first.

Airflow records a task instance's ``hostname`` from ``[core] hostname_callable``; by default
that is the machine's name, so two Celery workers on one machine (the local stack's Celery
mode, :mod:`dropoutnet.local.celery_mode`) would both record the same host.  The stack and
``docker-compose.yml`` set ``hostname_callable`` to :func:`name`: the worker's own name when
the launcher gave it one (``DROPOUTNET_WORKER_NAME``, inherited by the worker's task
processes), else the machine's name as Airflow has it (in a container: the container's).
"""

from __future__ import annotations

import os
import socket

WORKER_ENV = "DROPOUTNET_WORKER_NAME"


def name() -> str:
    """This process's worker name: ``DROPOUTNET_WORKER_NAME``, else the host's FQDN."""
    return os.environ.get(WORKER_ENV) or socket.getfqdn()


def describe() -> str:
    """One line for a task's log: the worker, the host and the process."""
    return f"running on worker {name()} (host {socket.gethostname()}, pid {os.getpid()})"
