"""Deploy, update, describe and stop model services, as PAI-EAS's ``eascmd`` does.

``create CONFIG.json`` starts a server for the config as a managed background process;
``modify NAME CONFIG.json`` restarts it with a new config (the model path, resources or
settings); ``desc NAME`` shows status, address, loaded versions and config; ``stop NAME``
stops it.  Each service keeps its files in ``$DROPOUTNET_HOME/services/<name>/``:
``service.json`` (the config it runs), ``server.pid`` and ``server.log``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from dropoutnet.config import ConfigError
from dropoutnet.core import locations, processes
from dropoutnet.serving.config import ServiceConfig, load_service_config, parse_service_config


class ServiceError(RuntimeError):
    """A service command that cannot be done; the message says why and what to do."""


def services_dir() -> Path:
    """Where managed services keep their config, pid file and log, one folder each."""
    return locations.home() / "services"


def _files(name: str) -> tuple[Path, Path, Path]:
    folder = services_dir() / name
    return folder / "service.json", folder / "server.pid", folder / "server.log"


def _is_server(cmdline: str, comm: str) -> bool:
    return "dropoutnet.serving" in cmdline


def _alive(pid: int) -> bool:
    """A live process running our server (guards against a reused pid)."""
    return processes.alive(pid, _is_server)


def running_pid(name: str) -> int | None:
    """The pid of service ``name``'s live server, or None (a stale pid file is ignored)."""
    return processes.pid_from_file(_files(name)[1], _is_server)


def _get(url: str, token: str | None, timeout: float = 3.0) -> tuple[int, Any]:
    request = urllib.request.Request(url)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as err:
        try:
            return err.code, json.loads(err.read() or b"null")
        except ValueError:
            return err.code, None


def _address(config: ServiceConfig) -> str:
    host = "127.0.0.1" if config.host in ("0.0.0.0", "") else config.host
    return f"http://{host}:{config.port}"


def _resolved(config_path: str | Path) -> ServiceConfig:
    """The config with its model paths made absolute (relative to the config file)."""
    path = Path(config_path)
    config = load_service_config(path)
    data = config.model_dump(mode="json")
    base = path.resolve().parent
    data["model_path"] = str((base / config.model_path).resolve())
    data["models"] = {k: str((base / v).resolve()) for k, v in config.models.items()}
    return parse_service_config(data, str(path))


def _start(config: ServiceConfig, wait: float) -> int:
    config_file, pidfile, logfile = _files(config.name)
    config_file.parent.mkdir(parents=True, exist_ok=True)
    tmp = config_file.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(config.model_dump(mode="json"), indent=1))
    os.replace(tmp, config_file)
    if not processes.port_free(config.host, config.port):
        raise ServiceError(f"port {config.port} on {config.host} is in use: stop what uses it, "
                           f"or set \"port\" in the service config")
    with open(logfile, "ab") as log:
        proc = subprocess.Popen([sys.executable, "-m", "dropoutnet.serving", str(config_file)],
                                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True, env=os.environ.copy())
    pidfile.write_text(str(proc.pid))
    token = os.environ.get(config.token_env) or None
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pidfile.unlink(missing_ok=True)
            raise ServiceError(f"service {config.name} exited at start (status "
                               f"{proc.returncode}); its log {logfile} ends with:\n"
                               f"{processes.tail(logfile, 20)}")
        try:
            code, _ = _get(f"{_address(config)}/healthz", token, timeout=1.0)
            if code in (200, 503):  # up; 503 = no version on disk yet
                return proc.pid
        except OSError:
            pass
        time.sleep(0.3)
    raise ServiceError(f"service {config.name} did not answer on {_address(config)} within "
                       f"{wait:.0f} s; see {logfile}")


def _stop_pid(pid: int, timeout: float = 20.0) -> None:
    try:
        os.killpg(pid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        return
    deadline = time.monotonic() + timeout
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if _alive(pid):
        os.killpg(pid, signal.SIGKILL)


def create(config_path: str | Path, wait: float = 120.0) -> dict[str, Any]:
    """Start a new service from a config file; refuse if one of that name is running."""
    config = _resolved(config_path)
    if running_pid(config.name) is not None:
        raise ServiceError(f"service {config.name} is already running: use `dropoutnet "
                           f"service modify {config.name} CONFIG.json` to change it, or "
                           f"`dropoutnet service stop {config.name}` first")
    _start(config, wait)
    return desc(config.name)


def modify(name: str, config_path: str | Path, wait: float = 120.0) -> dict[str, Any]:
    """Restart service ``name`` with a new config (its name must stay ``name``)."""
    config = _resolved(config_path)
    if config.name != name:
        raise ConfigError(f"service config {config_path} is for {config.name!r}, not {name!r}: "
                          "a service keeps its name (create a new one instead)")
    config_file, _, _ = _files(name)
    if not config_file.exists():
        raise ServiceError(f"no service {name!r}: create it first with `dropoutnet service "
                           "create CONFIG.json`")
    pid = running_pid(name)
    if pid is not None:
        _stop_pid(pid)
    _start(config, wait)
    return desc(name)


def stop(name: str) -> dict[str, Any]:
    """Stop service ``name``'s server (SIGTERM to its process group, SIGKILL after 20 s); its
    folder and config stay, so ``modify`` can start it again."""
    config_file, pidfile, _ = _files(name)
    if not config_file.exists():
        raise ServiceError(f"no service {name!r} (known: {', '.join(known()) or 'none'})")
    pid = running_pid(name)
    if pid is not None:
        _stop_pid(pid)
    pidfile.unlink(missing_ok=True)
    return {"name": name, "status": "Stopped", "stopped_pid": pid}


def known() -> list[str]:
    """The names of every service created on this machine, running or not."""
    root = services_dir()
    return sorted(p.name for p in root.iterdir() if (p / "service.json").exists()) \
        if root.is_dir() else []


def stop_all() -> list[str]:
    """Stop every running service (``make stop``)."""
    return [name for name in known() if stop(name)["stopped_pid"] is not None]


def desc(name: str) -> dict[str, Any]:
    """Status, address, pid, log, each model's versions and the config of service ``name``."""
    config_file, _, logfile = _files(name)
    if not config_file.exists():
        raise ServiceError(f"no service {name!r} (known: {', '.join(known()) or 'none'})")
    config = load_service_config(config_file)
    pid = running_pid(name)
    out: dict[str, Any] = {"name": name, "status": "Running" if pid else "Stopped",
                           "address": _address(config), "pid": pid, "log": str(logfile),
                           "models": {}, "config": config.model_dump(mode="json")}
    if pid:
        token = os.environ.get(config.token_env) or None
        for model in config.model_paths():
            try:
                code, body = _get(f"{_address(config)}/v1/models/{model}", token)
            except OSError as err:
                out["models"][model] = {"error": str(err)}
                continue
            out["models"][model] = (body.get("model_version_status") if code == 200 and body
                                    else {"error": (body or {}).get("error", f"HTTP {code}")})
    return out


def format_desc(d: dict[str, Any]) -> str:
    """:func:`desc`'s result as aligned text for the terminal."""
    lines = [f"service   {d['name']}", f"status    {d['status']}" +
             (f" (pid {d['pid']})" if d.get("pid") else ""),
             f"address   {d['address']}", f"log       {d['log']}"]
    for model, versions in d["models"].items():
        if isinstance(versions, dict):
            lines.append(f"model     {model}: {versions.get('error')}")
            continue
        shown = ", ".join(f"{v['version']} {v['state']}" + (
            f" ({v['status']['error_message']})" if v["status"]["error_message"] else "")
            for v in versions) or "no version yet"
        lines.append(f"model     {model}: {shown}")
    lines.append("config    " + json.dumps(d["config"], indent=1).replace("\n", "\n          "))
    return "\n".join(lines)
