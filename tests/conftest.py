"""Shared pytest fixtures: a PostgreSQL (with pgvector) per session and a schema per test."""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from pathlib import Path

import psycopg2
import pytest

from dropoutnet.local import embedded_pg


def pytest_configure(config):
    """Test processes (``make test`` runs one per core, ``-n``) each start their own embedded
    Postgres; an external test database would be shared by them, and the tests' schemas would
    collide."""
    if os.environ.get("DROPOUTNET_TEST_DATABASE_URL") and getattr(config.option, "numprocesses",
                                                                   None):
        raise pytest.UsageError("DROPOUTNET_TEST_DATABASE_URL is one database for every test "
                                "process: run the tests in one process (make test "
                                "TEST_WORKERS=0, or pytest -n 0)")


# Files that take minutes of one test process whatever their number of tests.  ``make test``
# hands files to its processes in collection order (``--no-loadscope-reorder``): these first,
# then the others by their number of tests, most first (what pytest-xdist's own reordering
# does, which left a long file of two tests for the end, alone on one core).
LONG_FILES = ("test_topology.py",)


def pytest_collection_modifyitems(config, items):
    """The long files' tests first, then each file's tests, the files with most first."""
    per_file: dict[str, int] = {}
    for item in items:
        per_file[item.path.name] = per_file.get(item.path.name, 0) + 1
    items.sort(key=lambda item: (item.path.name not in LONG_FILES, -per_file[item.path.name]))


@pytest.fixture(scope="session")
def database_urls():
    """``(pipeline URL, admin URL)`` of database ``dropoutnet`` (with the ``vector`` extension).

    ``DROPOUTNET_TEST_DATABASE_URL`` for both when set (an external Postgres); otherwise the
    embedded server, started under a temporary ``DROPOUTNET_HOME`` for the session and stopped
    after it: the pipeline's own role (as the pipeline connects) and the superuser.  The
    pipeline URL is the session's ``DROPOUTNET_DATABASE_URL``, as an entry point sets it.
    """
    external = os.environ.get("DROPOUTNET_TEST_DATABASE_URL")
    env = pytest.MonkeyPatch()
    if external:
        env.setenv("DROPOUTNET_DATABASE_URL", external)
        yield external, external
        env.undo()
        return
    # Not under pytest's basetemp: pytest prunes old basetemp folders when other test
    # sessions start, which would pull the data folder from under a running server.
    home = Path(tempfile.mkdtemp(prefix="dropoutnet-test-"))
    env.setenv("DROPOUTNET_HOME", str(home))
    try:
        socket_dir = embedded_pg.start(home)
        # what an entry point does: the package's database, for code called without a URL
        env.setenv("DROPOUTNET_DATABASE_URL", embedded_pg.app_url(socket_dir))
        yield (embedded_pg.app_url(socket_dir),
               embedded_pg.socket_url(socket_dir, embedded_pg.APP_DATABASE,
                                      user=embedded_pg.SUPERUSER))
    finally:
        embedded_pg.stop(home)
        env.undo()
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="session")
def database_url(database_urls):
    """The test database as the pipeline connects to it (the embedded server's pipeline role)."""
    return database_urls[0]


@pytest.fixture(scope="session")
def admin_database_url(database_urls):
    """The test database as a role that may create databases (the embedded superuser)."""
    return database_urls[1]


class SchemaURL(str):
    """A database URL whose connections use ``search_path = <schema>, public``.

    ``.schema`` is the schema's name; ``.base_url`` the URL without the search path option.
    """

    schema: str
    base_url: str


@pytest.fixture
def db_schema(database_url):
    """A fresh, empty schema for one test, dropped afterwards (with everything in it).

    The value is a URL (a ``str``) whose connections see the schema first on their
    ``search_path``, so unqualified table names land in it; ``db_schema.schema`` is its name.
    """
    name = f"test_{uuid.uuid4().hex[:12]}"
    conn = psycopg2.connect(database_url)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(f'create schema "{name}"')
        sep = "&" if "?" in database_url else "?"
        url = SchemaURL(f"{database_url}{sep}options=-csearch_path%3D{name},public")
        url.schema, url.base_url = name, database_url
        yield url
        with conn.cursor() as cur:
            cur.execute(f'drop schema "{name}" cascade')
    finally:
        conn.close()


@pytest.fixture
def tiny(db_schema):
    """The hand-checked tiny raw tables (``helpers.TINY``) in ``db_schema``, and the demo
    config reading them with its own output schema (dropped afterwards): ``(url, cfg)``."""
    from helpers import load_tiny, make_config

    load_tiny(db_schema)
    cfg = make_config(storage={"schema": db_schema.schema + "_dn"},
                      cold_start_recall={"train_days": 3,
                                         "model_name": f"m_{db_schema.schema}"})
    yield db_schema, cfg
    conn = psycopg2.connect(db_schema.base_url)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f'drop schema if exists "{cfg.storage.schema_}" cascade')
    conn.close()
