"""A small client of Airflow's REST API (v2), logged in as the SimpleAuthManager's admin: what
the demo and the topology check ask the running Airflow (DAG runs, task instances, backfills).
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from dropoutnet.local.errors import StackError


class AirflowAPI:
    """A tiny client of Airflow's REST API (v2), logged in as the SimpleAuthManager admin."""

    def __init__(self, port: int, user: str, password: str | None):
        self.base = f"http://127.0.0.1:{port}"
        self.user, self.password = user, password
        self._token: str | None = None

    def _login(self) -> str:
        if not self.password:
            raise StackError("no Airflow admin password found (simple_auth_manager_passwords file)")
        body = json.dumps({"username": self.user, "password": self.password}).encode()
        req = urllib.request.Request(f"{self.base}/auth/token", data=body, method="POST",
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as resp:
            return json.loads(resp.read())["access_token"]

    def call(self, method: str, path: str, body: Any = None, **query: Any) -> Any:
        url = f"{self.base}/api/v2{path}"
        if query:
            url += "?" + urllib.parse.urlencode(query, doseq=True)
        for attempt in (1, 2):
            if self._token is None:
                self._token = self._login()
            req = urllib.request.Request(
                url, method=method, data=None if body is None else json.dumps(body).encode(),
                headers={"Authorization": f"Bearer {self._token}",
                         "Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(req, timeout=30) as resp:
                    data = resp.read()
                    return json.loads(data) if data else None
            except urllib.error.HTTPError as exc:
                if exc.code == 401 and attempt == 1:
                    self._token = None
                    continue
                detail = exc.read().decode(errors="replace")[:500]
                raise StackError(f"Airflow API {method} {path}: HTTP {exc.code} {detail}") from None
        raise AssertionError("unreachable")
