"""Failpoints: named places where a crash-safety test kills the process.

``DROPOUTNET_FAILPOINT=<name>`` makes :func:`failpoint` send SIGKILL to its own process when
execution reaches the point of that name: no ``finally``, no rollback by the client, exactly
what an OOM kill or a lost worker does.  ``tests/test_crash_safety.py`` kills each task at its
dangerous moments (mid-write, between a write and the switch that makes it visible, inside
the publish transaction), reruns it and checks that the end state is that of a run that never
failed.  Unset (always, outside those tests), a failpoint is one dictionary lookup.
"""

from __future__ import annotations

import logging
import os
import signal

ENV = "DROPOUTNET_FAILPOINT"
log = logging.getLogger(__name__)


def failpoint(name: str) -> None:
    """SIGKILL this process if ``DROPOUTNET_FAILPOINT`` names this point; otherwise nothing."""
    if os.environ.get(ENV) == name:
        log.warning("failpoint %s: killing process %d", name, os.getpid())
        logging.shutdown()
        os.kill(os.getpid(), signal.SIGKILL)
