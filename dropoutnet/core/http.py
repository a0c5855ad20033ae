"""The HTTP services' bearer-token rule, shared by the model service
(:mod:`dropoutnet.serving.app`) and the recall API (:mod:`dropoutnet.recall.api`).

The token is read from an environment variable (its name is the service's ``token_env``)
at every request, never from a config file and never logged.  Unset or empty: no token is
required.  Set: every request but ``/healthz`` needs ``Authorization: Bearer <token>``,
compared in constant time; otherwise 401.
"""

from __future__ import annotations

import hmac
import os
from typing import Mapping


class HttpError(Exception):
    """An answer other than 200, with its status and a message naming the fix."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def authorize(headers: Mapping[str, str], token_env: str) -> None:
    """Raise :class:`HttpError` 401 unless a request's ``headers`` (lower-case names, as
    Starlette's ``Request.headers``) carry the token of ``token_env`` (when that variable is
    set)."""
    token = os.environ.get(token_env, "")
    if not token:
        return
    given = headers.get("authorization", "")
    scheme, _, value = given.partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(value.strip().encode(),
                                                              token.encode()):
        raise HttpError(401, "missing or wrong bearer token: send the header "
                             "'Authorization: Bearer <token>'")
