"""The compose topology run as local processes: what ``docker compose up``, ``stop``,
``kill``, ``restart``, ``run --rm`` and ``down`` do, for the containers of
:mod:`dropoutnet.local.topology.containers`.

* **Start order** is the compose file's ``depends_on``: a container starts once each service
  it depends on has started (``service_started``), answers its health check
  (``service_healthy``) or has exited 0 (``service_completed_successfully``).  While a
  dependent waits, the health check runs every 2 s (Docker's ``start_interval`` idea) rather
  than every ``interval``.
* **Restart policy**, as the Docker engine applies it: a container that exits is started again
  under ``always`` and ``unless-stopped`` (``on-failure``: when its exit status is not 0),
  after 0.1 s doubling up to 60 s, the delay reset once it ran 10 s; never after the user
  stopped or killed it.
* **A container's processes** are every process that carries its marker in its environment
  (:data:`~dropoutnet.local.topology.containers.MARKER_ENV`), which every child inherits, so a
  task process that left its parent's session is still found, as a cgroup would hold it.
  ``stop`` sends the image's stop signal (SIGINT for PostgreSQL, else SIGTERM) to the main
  process, as ``init: true`` forwards it, waits ``stop_grace_period`` and then SIGKILLs what
  is left; ``kill`` SIGKILLs them all at once (a lost host).
* **Health checks** run the compose file's test in the container's environment: ``CMD`` as a
  command, ``CMD-SHELL`` through ``/bin/sh -c``, with its ``timeout``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from dropoutnet.core import processes
from dropoutnet.local.errors import StackError
from dropoutnet.local.topology import model
from dropoutnet.local.topology.containers import MARKER_ENV, Container

HEALTH_POLL_S = 2.0
RESTARTING = ("always", "unless-stopped")


@dataclass
class Health:
    """One run of a container's health check."""
    ok: bool
    output: str
    seconds: float


@dataclass
class Instance:
    """A container and its state: its main process, whether the user stopped it, its
    restarts and its last health check."""
    container: Container
    proc: subprocess.Popen | None = None
    started_at: float = 0.0
    stopped: bool = False
    restarts: int = 0
    backoff: int = 0
    restart_at: float | None = None
    exit_code: int | None = None
    health: Health | None = None
    healthy_once: bool = False
    sessions: set[int] = field(default_factory=set)  # one per start of its main process
    events: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        """The container's name."""
        return self.container.name

    @property
    def running(self) -> bool:
        """Whether its main process runs."""
        return self.proc is not None and self.proc.poll() is None


def members(marker: str, sessions: set[int] = frozenset()) -> set[int]:
    """Every live process of a container: in one of its ``sessions`` (each start of its main
    process opens one; Airflow's task processes leave the process group, not the session), or
    carrying its ``marker`` in the environment it started with (a process that opened a
    session of its own; ``setproctitle`` overwrites that record, hence both)."""
    needle = f"{MARKER_ENV}={marker}\0".encode()
    found = set()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            fields = (proc / "stat").read_text().rsplit(")", 1)[-1].split()
            if fields[0] in ("Z", "X"):
                continue
            if int(fields[3]) in sessions or needle in (proc / "environ").read_bytes():
                found.add(int(proc.name))
        except (FileNotFoundError, ProcessLookupError, PermissionError, IndexError):
            continue
    return found


class Topology:
    """The compose file's services as local processes under ``home``."""

    def __init__(self, home: Path, *, env_file: Path | None = None,
                 scale: dict[str, int] | None = None, settings: dict[str, str] | None = None,
                 echo=print) -> None:
        self.home = home.resolve()
        self.home.mkdir(parents=True, exist_ok=True)
        self.env_file = env_file or model.make_env_file(self.home / ".env", settings)
        self.project = model.load(self.env_file)
        self.echo = echo
        self.instances: dict[str, list[Instance]] = {}
        network: dict[str, dict[int, int]] = {}
        for service in self.project.services.values():
            if service.profiles:  # started only by run()
                continue
            replicas = (scale or {}).get(service.name, service.replicas)
            for index in range(1, replicas + 1):
                ports = {port: self._local_port(service, port) for port in service.ports}
                container = Container(service, index, self.project.name, self.home, ports,
                                      network)
                self.instances.setdefault(service.name, []).append(Instance(container))
                network.setdefault(service.name, ports)
        self._lock = threading.RLock()
        self._closing = threading.Event()
        self._monitor = threading.Thread(target=self._watch, name="topology-monitor",
                                         daemon=True)
        self._monitor.start()

    @staticmethod
    def _local_port(service: model.Service, port: int) -> int:
        published = service.published.get(port)
        if published and processes.port_free("127.0.0.1", published):
            return published  # where the compose file publishes it, when free here
        return processes.free_port()

    # --- lookup -------------------------------------------------------------------------------

    def marker(self, instance: Instance) -> str:
        """The marker of a container's processes."""
        return f"{self.home}/{instance.name}"

    def all(self) -> list[Instance]:
        """Every container, in the compose file's start order."""
        return [inst for name in self.order() for inst in self.instances[name]]

    def get(self, name: str) -> list[Instance]:
        """The containers of a service (``airflow-worker``) or one container by its name
        (``dropoutnet-airflow-worker-2``)."""
        if name in self.instances:
            return self.instances[name]
        found = [inst for inst in self.all() if inst.name == name]
        if not found:
            raise StackError(f"no service or container named {name!r}: the topology has "
                             f"{', '.join(self.instances)}")
        return found

    def port(self, service: str, container_port: int, index: int = 1) -> int:
        """The local port of a container's port."""
        return self.instances[service][index - 1].container.ports[container_port]

    def order(self) -> list[str]:
        """The services in dependency order (each after what it depends on)."""
        done: list[str] = []

        def visit(name: str, path: tuple[str, ...]) -> None:
            if name in done:
                return
            if name in path:
                raise StackError(f"depends_on has a cycle: {' -> '.join((*path, name))}")
            for dep in self.project.services[name].depends_on:
                if dep in self.instances:
                    visit(dep, (*path, name))
            done.append(name)

        for name in self.instances:
            visit(name, ())
        return done

    def pids(self) -> dict[str, set[int]]:
        """Every process of every container, by container."""
        return {inst.name: members(self.marker(inst), inst.sessions) for inst in self.all()}

    # --- processes ----------------------------------------------------------------------------

    def _spawn(self, inst: Instance) -> None:
        container = inst.container
        container.prepare()
        argv = container.argv()
        with open(container.log, "ab") as log:
            log.write(f"\n===== {time.ctime()}: start {inst.name}\n"
                      f"compose: {' '.join(container.compose_argv())}\n"
                      f"local:   {' '.join(argv)}\n".encode())
            log.flush()
            inst.proc = subprocess.Popen(argv, env=container.environment(self.marker(inst)),
                                         cwd=str(container.cwd()), stdout=log,
                                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         start_new_session=True)
        inst.sessions.add(inst.proc.pid)  # start_new_session: the session's id is its pid
        inst.started_at, inst.exit_code, inst.restart_at = time.monotonic(), None, None
        inst.health, inst.healthy_once = None, False

    def _event(self, inst: Instance, text: str) -> None:
        line = f"{time.strftime('%H:%M:%S')} {inst.name}: {text}"
        inst.events.append(line)
        with open(inst.container.log, "a") as log:
            log.write(f"===== {line}\n")

    def _watch(self) -> None:
        """The restart policy: a container that exited is started again (see the module)."""
        while not self._closing.wait(0.5):
            with self._lock:
                for inst in self.all():
                    self._apply_policy(inst)

    def _apply_policy(self, inst: Instance) -> None:
        if inst.proc is None or inst.stopped:
            return
        code = inst.proc.poll()
        if code is None:
            if time.monotonic() - inst.started_at >= 10:
                inst.backoff = 0
            return
        policy = inst.container.service.restart
        if inst.exit_code is None:
            inst.exit_code = code
            wants = policy in RESTARTING or (policy.startswith("on-failure") and code != 0)
            if wants:
                delay = min(0.1 * 2 ** inst.backoff, 60.0)
                inst.backoff += 1
                inst.restart_at = time.monotonic() + delay
                self._event(inst, f"exited with status {code}; restarting in {delay:.1f} s "
                                  f"(restart: {policy})")
            else:
                self._event(inst, f"exited with status {code}")
        if inst.restart_at is not None and time.monotonic() >= inst.restart_at:
            inst.restarts += 1
            self._spawn(inst)

    def check(self, inst: Instance) -> Health:
        """Run the container's health check once (its result is also kept)."""
        hc = inst.container.service.healthcheck
        if hc is None:
            raise StackError(f"{inst.name} has no health check")
        container = inst.container
        kind, *rest = hc.test
        argv = (["/bin/sh", "-c", container.text(rest[0])] if kind == "CMD-SHELL"
                else [container.text(word) for word in rest])
        t0 = time.monotonic()
        try:
            proc = subprocess.run(argv, env=container.environment(self.marker(inst)),
                                  cwd=str(container.cwd()), capture_output=True, text=True,
                                  timeout=hc.timeout)
            health = Health(proc.returncode == 0, (proc.stdout + proc.stderr).strip()[-500:],
                            time.monotonic() - t0)
        except subprocess.TimeoutExpired:
            health = Health(False, f"timed out after {hc.timeout:.0f} s", hc.timeout)
        except OSError as err:
            health = Health(False, str(err), time.monotonic() - t0)
        inst.health = health
        inst.healthy_once |= health.ok
        return health

    def _ready(self, service: str, condition: str) -> bool:
        group = self.instances[service]
        if condition == "service_completed_successfully":
            return all(i.proc is not None and i.proc.poll() == 0 for i in group)
        if condition == "service_healthy":
            return all(i.running and i.healthy_once for i in group)
        return all(i.running for i in group)

    def up(self, *, wait: float = 600, services: list[str] | None = None) -> None:
        """Start the containers that do not run (all, or those of ``services`` and what they
        depend on) in dependency order, and wait until every one with a health check has
        passed it once and every one-off has exited 0."""
        wanted = self._with_dependencies(services or list(self.instances))
        deadline = time.monotonic() + wait
        checking: dict[str, threading.Thread] = {}
        last_check: dict[str, float] = {}
        while True:
            with self._lock:
                for name in [n for n in self.order() if n in wanted]:
                    service = self.project.services[name]
                    for inst in self.instances[name]:
                        if inst.proc is None or (inst.stopped and not inst.running):
                            if all(self._ready(dep, cond)
                                   for dep, cond in service.depends_on.items()
                                   if dep in self.instances):
                                inst.stopped = False
                                self._spawn(inst)
                                self.echo(f"  started {inst.name} (pid {inst.proc.pid})")
                        failed = self._failed_one_off(inst)
                        if failed:
                            raise StackError(failed)
            pending = [inst for name in wanted for inst in self.instances[name]
                       if not self._done(inst)]
            if not pending:
                return
            now = time.monotonic()
            for inst in pending:
                if (inst.running and inst.container.service.healthcheck
                        and not checking.get(inst.name, threading.Thread()).is_alive()
                        and now - last_check.get(inst.name, 0) >= HEALTH_POLL_S):
                    last_check[inst.name] = now
                    checking[inst.name] = threading.Thread(target=self.check, args=(inst,),
                                                           daemon=True)
                    checking[inst.name].start()
            if now > deadline:
                raise StackError("not ready within {:.0f} s: {}".format(wait, "; ".join(
                    f"{i.name} ({self._why(i)})" for i in pending)))
            time.sleep(0.5)

    def _with_dependencies(self, names: list[str]) -> list[str]:
        found: list[str] = []
        todo = list(names)
        while todo:
            name = todo.pop()
            if name not in found:
                found.append(name)
                todo.extend(d for d in self.project.services[name].depends_on
                            if d in self.instances)
        return found

    @staticmethod
    def _done(inst: Instance) -> bool:
        service = inst.container.service
        if service.restart == "no" and not service.healthcheck:  # a one-off
            return inst.proc is not None and inst.proc.poll() == 0
        if service.healthcheck:
            return inst.running and inst.healthy_once
        return inst.running

    @staticmethod
    def _failed_one_off(inst: Instance) -> str | None:
        service = inst.container.service
        if (service.restart == "no" and inst.proc is not None
                and inst.proc.poll() not in (None, 0)):
            return (f"{inst.name} exited with status {inst.proc.returncode}; the end of its "
                    f"log {inst.container.log}:\n{processes.tail(inst.container.log)}")
        return None

    def _why(self, inst: Instance) -> str:
        if inst.proc is None:
            return "waiting for " + ", ".join(
                f"{dep} ({cond})" for dep, cond in inst.container.service.depends_on.items()
                if dep in self.instances and not self._ready(dep, cond))
        if not inst.running:
            return f"exited with status {inst.proc.returncode}, see {inst.container.log}"
        return f"health check: {inst.health.output if inst.health else 'not run yet'}"

    def stop(self, name: str, *, timeout: float | None = None) -> None:
        """``docker stop``: the stop signal to the main process, ``stop_grace_period`` (or
        ``timeout``) to exit, then SIGKILL to every process of the container."""
        for inst in self.get(name):
            with self._lock:
                inst.stopped, inst.restart_at = True, None
            if inst.running:
                sig = signal.SIGINT if inst.container.kind == "postgres" else signal.SIGTERM
                inst.proc.send_signal(sig)
                grace = inst.container.service.stop_grace_period if timeout is None else timeout
                try:
                    inst.proc.wait(grace)
                except subprocess.TimeoutExpired:
                    self._event(inst, f"did not stop within {grace:.0f} s: killed")
            self._kill_all(inst)
            self._event(inst, "stopped")

    def kill(self, name: str) -> None:
        """``docker kill``: SIGKILL to every process of the container at once (a lost host);
        it stays down until started again."""
        for inst in self.get(name):
            with self._lock:
                inst.stopped, inst.restart_at = True, None
            self._kill_all(inst)
            self._event(inst, "killed")

    def start(self, name: str, *, wait: float = 300) -> None:
        """``docker start`` of stopped containers, waiting for their health check."""
        for inst in self.get(name):
            with self._lock:
                if not inst.running:
                    inst.stopped = False
                    self._spawn(inst)
                    self._event(inst, "started again")
        self._wait_healthy(self.get(name), wait)

    def restart(self, name: str, *, timeout: float | None = None, wait: float = 300) -> None:
        """``docker restart``: stop, then start."""
        self.stop(name, timeout=timeout)
        self.start(name, wait=wait)

    def _wait_healthy(self, group: list[Instance], wait: float) -> None:
        deadline = time.monotonic() + wait
        for inst in group:
            while not self._done(inst):
                if time.monotonic() > deadline:
                    raise StackError(f"{inst.name} not healthy within {wait:.0f} s: "
                                     f"{self._why(inst)}")
                if inst.running and inst.container.service.healthcheck:
                    self.check(inst)
                time.sleep(HEALTH_POLL_S)

    def _kill_all(self, inst: Instance) -> None:
        marker = self.marker(inst)
        deadline = time.monotonic() + 15
        while (left := members(marker, inst.sessions)) and time.monotonic() < deadline:
            for pid in left:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.1)
        if inst.proc is not None:
            try:
                inst.proc.wait(5)
            except subprocess.TimeoutExpired:
                pass

    def run(self, service: str, args: list[str], *, timeout: float = 600,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        """``docker compose run --rm SERVICE ARGS``: a one-off container of the service,
        its output captured."""
        spec = self.project.services[service]
        network = self.instances[next(iter(self.instances))][0].container.network
        container = Container(spec, 1, self.project.name, self.home, {}, network)
        container.prepare()
        marker = f"{self.home}/{container.name}-run"
        argv = container.argv(args)
        proc = subprocess.Popen(argv, env={**container.environment(marker), **(env or {})},
                                cwd=str(container.cwd()), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, start_new_session=True)
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise StackError(f"docker compose run {service} {' '.join(args)}: not done "
                             f"within {timeout:.0f} s") from None
        finally:
            for pid in members(marker, {proc.pid}):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            proc.wait()
        return subprocess.CompletedProcess(argv, proc.returncode, out, err)

    def down(self, *, timeout: float | None = None) -> None:
        """``docker compose down``: every container stopped, dependents first."""
        try:
            for inst in reversed(self.all()):
                if inst.running or members(self.marker(inst), inst.sessions):
                    self.stop(inst.name, timeout=timeout)
        finally:
            self._closing.set()
            self._monitor.join(5)
