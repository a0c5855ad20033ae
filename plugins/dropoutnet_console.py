"""Airflow plugin ``dropoutnet_console``: the DropoutNet console inside the Airflow UI.

It mounts the console (:mod:`dropoutnet.console.app`: pages and a JSON API) at
``/dropoutnet`` of the API server and puts it in the UI: **DropoutNet** in the navigation, a
**DropoutNet** tab on the daily DAG's page and on each of its runs (what the run trained and
published).  Airflow mounts a plugin's app without authentication, so the console asks
Airflow's auth manager on every request (:func:`authenticate`): reading needs read access to
the DAG ``dropoutnet_daily``, making a version live needs edit access to it.

Plugins are imported by every Airflow process (the macros are needed in tasks); only the API
server serves the console, so it is built on its first request (:class:`LazyConsole`).
"""

from __future__ import annotations

import os

from airflow.plugins_manager import AirflowPlugin

DAG_ID = "dropoutnet_daily"
PREFIX = "/dropoutnet"


async def authenticate(request):
    """The console's viewer: the user of the request's bearer token or session cookie, who
    may read the DAG (403 otherwise) and may or may not edit it."""
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.models.resource_details import DagDetails
    from airflow.api_fastapi.core_api.security import get_user
    from fastapi import HTTPException
    from fastapi.security import HTTPAuthorizationCredentials
    from fastapi.security.utils import get_authorization_scheme_param

    from dropoutnet.console.app import SESSION_COOKIE, Viewer

    scheme, token = get_authorization_scheme_param(request.headers.get("Authorization"))
    bearer = (HTTPAuthorizationCredentials(scheme=scheme, credentials=token)
              if scheme.lower() == "bearer" and token else None)
    user = await get_user(request, None, bearer)
    manager, dag = get_auth_manager(), DagDetails(id=DAG_ID)
    if not manager.is_authorized_dag(method="GET", details=dag, user=user):
        raise HTTPException(403, f"{user.get_name()} may not read the DAG {DAG_ID}")
    return Viewer(name=user.get_name(),
                  can_edit=manager.is_authorized_dag(method="PUT", details=dag, user=user),
                  session=None if bearer else request.cookies.get(SESSION_COOKIE))


def login_url(next_url: str) -> str:
    """The auth manager's sign-in page, coming back to ``next_url``."""
    from airflow.api_fastapi.app import get_auth_manager

    return get_auth_manager().get_url_login(next_url=next_url)


def make_live(version: str, config_path: str | None, **change) -> dict:
    """What ``dropoutnet rollback --to VERSION`` runs: the version live, deployed, recorded."""
    from dropoutnet import pipeline

    return pipeline.rollback(version, config_path, **change)


def database_url() -> str:
    """The pipeline's database: the Airflow connection ``dropoutnet_db``, as in the tasks."""
    from dropoutnet import airflow_connection

    return airflow_connection.use_in_server()


class LazyConsole:
    """The console's ASGI app, built on the first request it gets."""

    def __init__(self) -> None:
        self.app = None

    async def __call__(self, scope, receive, send) -> None:
        if self.app is None:
            from dropoutnet.console.app import create_app

            self.app = create_app(authenticate, make_live, database_url,
                                  config_path=os.environ.get("DROPOUTNET_CONFIG") or None,
                                  dag_id=DAG_ID, login_url=login_url)
        await self.app(scope, receive, send)


class DropoutNetConsolePlugin(AirflowPlugin):
    name = "dropoutnet_console"
    fastapi_apps = [{"app": LazyConsole(), "url_prefix": PREFIX, "name": "DropoutNet console"}]
    external_views = [
        {"name": "DropoutNet", "href": f"{PREFIX}/", "destination": "nav",
         "url_route": "dropoutnet", "icon": f"{PREFIX}/static/icon.svg", "nav_top_level": True},
        {"name": "DropoutNet", "href": f"{PREFIX}/?dag_id={{DAG_ID}}", "destination": "dag",
         "url_route": "dropoutnet-dag"},
        {"name": "DropoutNet", "href": f"{PREFIX}/runs/{{RUN_ID}}", "destination": "dag_run",
         "url_route": "dropoutnet-run"},
    ]
