"""Local processes, ports and logs: what the stack launcher (:mod:`dropoutnet.local.stack`) and the
model service manager (:mod:`dropoutnet.serving.service`) both need, in one place.

Processes are read from ``/proc`` (Linux), so a pid file can be checked against the process
that really holds the pid now (pids are reused).
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Callable

Matcher = Callable[[str, str], bool]  # (command line, process name) -> is it ours?


def alive(pid: int, matches: Matcher | None = None) -> bool:
    """A live (not zombie) process with this pid, which ``matches`` recognises as ours."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(
            errors="replace")
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return False
    if stat.rsplit(")", 1)[-1].split()[0] in ("Z", "X"):
        return False
    comm = stat.split("(", 1)[-1].rsplit(")", 1)[0]
    return matches is None or matches(cmdline, comm)


def pid_from_file(path: Path, matches: Matcher | None = None) -> int | None:
    """The pid a pid file names, if that process is alive and ours."""
    try:
        pid = int(path.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    return pid if alive(pid, matches) else None


def table() -> dict[int, tuple[int, int, str]]:
    """Every live process: pid -> (parent pid, process group, state)."""
    procs = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            fields = (proc / "stat").read_text().rsplit(")", 1)[-1].split()
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
        if fields[0] not in ("Z", "X"):
            procs[int(proc.name)] = (int(fields[1]), int(fields[2]), fields[0])
    return procs


def tree(root: int, procs: dict[int, tuple[int, int, str]]) -> set[int]:
    """``root`` and all its descendants."""
    children: dict[int, list[int]] = {}
    for pid, (ppid, _, _) in procs.items():
        children.setdefault(ppid, []).append(pid)
    found, todo = set(), [root]
    while todo:
        pid = todo.pop()
        if pid in found:
            continue
        found.add(pid)
        todo.extend(children.get(pid, ()))
    return found


def port_free(host: str, port: int) -> bool:
    """Whether a server could listen on ``host:port`` now (tried by binding it), so that a
    service refuses to start on a taken port with a clear message instead of a crash."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host if host not in ("", "0.0.0.0") else "0.0.0.0", port))
        except OSError:
            return False
    return True


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on ``host`` right now (the system's choice)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def tail(path: Path, lines: int = 25) -> str:
    """The last ``lines`` lines of a log file, for an error message."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log)"
