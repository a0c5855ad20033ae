"""``make prod-check``: ``docker-compose.yml``'s topology started as local processes, its daily
DAG run through it, and every health check of the compose file run with its service up and
again with it stopped.

    python -m dropoutnet.local.topology.check [--home DIR] [--workers 2] [--no-run] [--keep]

1. **Up**: every service with the command and environment the compose file gives it (read
   through Docker Compose; :mod:`.containers` says what is mapped), ``airflow-worker`` scaled
   to ``--workers``, in ``depends_on`` order, each waited for as the file says.
2. **Health, up**: each container's health check has passed (``up`` waits for it).
3. **A daily run** (unless ``--no-run``): small synthetic data through the ``dropoutnet-cli``
   service (``docker compose run --rm dropoutnet-cli datagen``), a backfill of yesterday
   through Airflow's REST API, run by the scheduler, the broker and the workers, then a recall
   through the recall API with the deployment's bearer token.
4. **Down, health stopped**: each service stopped in turn, dependents first (``docker compose
   down``), and its check run again once stopped: it must fail.  No process of the topology
   may be left.

Each check starts from empty volumes, as a first ``docker compose up`` does: an earlier
check's volumes, containers and logs are removed first.  A table of every container (how it
was started, its local ports, both health results) ends the output; the exit status is 0 only
when every check answered as it should.  ``--keep``
leaves the topology running until Ctrl-C (the Airflow UI's address and login are printed).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

from dropoutnet.core import locations
from dropoutnet.local.airflow_api import AirflowAPI
from dropoutnet.local.errors import StackError
from dropoutnet.local.topology import model
from dropoutnet.local.topology.supervisor import Topology

DAG_ID = "dropoutnet_daily"
SMALL = ["--users", "300", "--items", "400", "--authors", "30", "--days", "16",
         "--new-items-per-day", "40", "--seed", "11"]


def airflow_api(topology: Topology) -> AirflowAPI:
    """A REST client of the topology's Airflow, logged in as the compose file's admin."""
    values = model.read_env_file(topology.env_file)
    return AirflowAPI(topology.port("airflow-apiserver", 8080),
                      values.get("AIRFLOW_ADMIN_USER") or "admin",
                      values["AIRFLOW_ADMIN_PASSWORD"])


def generate_data(topology: Topology, end: dt.date, sizes: list[str] = SMALL) -> None:
    """Synthetic data ending ``end``, through the compose file's ``dropoutnet-cli`` service."""
    proc = topology.run("dropoutnet-cli", ["datagen", *sizes, "--end-date", end.isoformat()])
    if proc.returncode != 0:
        raise StackError(f"dropoutnet-cli datagen failed: {proc.stdout[-1500:]}"
                         f"{proc.stderr[-1500:]}")


def wait_for_dag(api, wait: float = 300) -> None:
    """Until the dag-processor has parsed the daily DAG."""
    deadline = time.monotonic() + wait
    while True:
        try:
            api.call("GET", f"/dags/{DAG_ID}")
            return
        except (StackError, OSError):  # 404 until parsed
            if time.monotonic() > deadline:
                raise StackError(f"the dag-processor did not list {DAG_ID} within "
                                 f"{wait:.0f} s") from None
            time.sleep(2)


def backfill(api: AirflowAPI, first: dt.date, last: dt.date) -> None:
    """A backfill of the daily DAG from ``first`` to ``last`` (bizdates: the days' data
    intervals), one run at a time, through the scheduler; the DAG unpaused."""
    api.call("POST", "/backfills", {
        "dag_id": DAG_ID, "from_date": f"{first}T00:00:00Z", "to_date": f"{last}T00:00:00Z",
        "max_active_runs": 1, "reprocess_behavior": "completed", "run_backwards": False,
        "dag_run_conf": {}})
    api.call("PATCH", f"/dags/{DAG_ID}", {"is_paused": False})


def runs(api: AirflowAPI, first: dt.date, last: dt.date) -> dict[str, dict]:
    """The daily DAG's runs of the bizdates ``first`` .. ``last``, by bizdate."""
    data = api.call("GET", f"/dags/{DAG_ID}/dagRuns", limit=100,
                    logical_date_gte=f"{first}T00:00:00Z", logical_date_lte=f"{last}T00:00:00Z")
    return {run["logical_date"][:10]: run for run in data.get("dag_runs", [])}


def wait_for_runs(api: AirflowAPI, first: dt.date, last: dt.date,
                  wait: float = 900) -> dict[str, dict]:
    """Until every run of ``first`` .. ``last`` has ended; the runs by bizdate."""
    days = (last - first).days + 1
    deadline = time.monotonic() + wait
    while True:
        found = runs(api, first, last)
        if len(found) == days and all(r["state"] in ("success", "failed")
                                      for r in found.values()):
            return found
        if time.monotonic() > deadline:
            raise StackError(f"the runs of {first} .. {last} did not end within {wait:.0f} s: "
                             + ", ".join(f"{d} {r['state']}" for d, r in sorted(found.items())))
        time.sleep(2)


def database_url(topology: Topology) -> str:
    """The pipeline's database as the recall API's container reaches it."""
    inst = topology.get("recall-api")[0]
    return inst.container.environment(topology.marker(inst))["DROPOUTNET_DATABASE_URL"]


def an_active_user(topology: Topology, bizdate: dt.date) -> str:
    """The user with the most events on ``bizdate``."""
    import psycopg2

    conn = psycopg2.connect(database_url(topology))
    try:
        with conn, conn.cursor() as cur:
            cur.execute("select user_id from sv_events where event_time >= %s and "
                        "event_time < %s::date + 1 group by 1 order by count(*) desc, 1 "
                        "limit 1", (bizdate, bizdate))
            return cur.fetchone()[0]
    finally:
        conn.close()


def recall(topology: Topology, user_id: str, top_n: int = 5) -> dict:
    """``GET /v1/recall`` of the topology's recall API, with the deployment's token."""
    token = model.read_env_file(topology.env_file)["DROPOUTNET_SERVING_TOKEN"]
    url = (f"http://127.0.0.1:{topology.port('recall-api', 8502)}/v1/recall?"
           + urllib.parse.urlencode({"user_id": user_id, "n": top_n}))
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=30) as resp:
        return json.loads(resp.read())


def down_with_checks(topology: Topology, timeout: float = 30) -> dict[str, bool]:
    """``docker compose down``, one service at a time (dependents first), each container's
    health check run once its service is stopped: container name -> the check passed while
    stopped (it should not)."""
    found: dict[str, bool] = {}
    for service in reversed(topology.order()):
        topology.stop(service, timeout=timeout)
        for inst in topology.get(service):
            if inst.container.service.healthcheck:
                found[inst.name] = topology.check(inst).ok
    topology.down(timeout=timeout)
    return found


def report(topology: Topology, up: dict[str, bool], stopped: dict[str, bool]) -> str:
    """The table that ends ``make prod-check``."""
    lines = [f"{'container':34} {'local ports':22} {'health up':10} {'stopped':9} command"]
    for inst in topology.all():
        ports = ",".join(f"{c}->{p}" for c, p in inst.container.ports.items()) or "-"
        ok_up = {True: "healthy", False: "UNHEALTHY"}.get(up.get(inst.name), "-")
        ok_down = {True: "PASSED", False: "failed"}.get(stopped.get(inst.name), "-")
        lines.append(f"{inst.name:34} {ports:22} {ok_up:10} {ok_down:9} "
                     f"{' '.join(inst.container.compose_argv())[:70]}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """The ``make prod-check`` command line."""
    parser = argparse.ArgumentParser(prog="python -m dropoutnet.local.topology.check",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, default=None,
                        help="the topology's folder (default $DROPOUTNET_HOME/topology)")
    parser.add_argument("--env-file", type=Path, default=None,
                        help="your .env (default: .env.example with generated secrets)")
    parser.add_argument("--workers", type=int, default=2, help="Celery workers (default 2)")
    parser.add_argument("--no-run", action="store_true", help="skip the daily run")
    parser.add_argument("--keep", action="store_true", help="leave it running until Ctrl-C")
    args = parser.parse_args(argv)
    home = args.home or locations.home() / "topology"
    t0 = time.monotonic()
    for made in ("volumes", "containers", "logs"):  # what an earlier check made, not more
        shutil.rmtree(home / made, ignore_errors=True)  # empty volumes: a first `compose up`
    try:
        topology = Topology(home, env_file=args.env_file,
                            scale={"airflow-worker": args.workers})
    except StackError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    ok = False
    try:
        print(f"Starting docker-compose.yml's services as local processes in {home} ...")
        topology.up()
        print(f"All services up and healthy in {time.monotonic() - t0:.0f} s.")
        # up() waited for each health check to pass: that is its result with the service up
        up = {inst.name: inst.healthy_once for inst in topology.all()
              if inst.container.service.healthcheck}
        if not args.no_run:
            bizdate = dt.datetime.now(dt.timezone.utc).date() - dt.timedelta(days=1)
            print(f"Synthetic data ending {bizdate} (dropoutnet-cli datagen) ...")
            generate_data(topology, bizdate)
            api = airflow_api(topology)
            wait_for_dag(api)
            backfill(api, bizdate, bizdate)
            print(f"The daily run of {bizdate} through the scheduler and the workers ...")
            run = wait_for_runs(api, bizdate, bizdate)[bizdate.isoformat()]
            print(f"  {run['state']}")
            if run["state"] != "success":
                raise StackError(f"the daily run of {bizdate} ended {run['state']}")
            answer = recall(topology, an_active_user(topology, bizdate))
            print(f"  GET /v1/recall: model version {answer['model_version']}, "
                  f"{len(answer['items'])} items")
        if args.keep:
            port = topology.port("airflow-apiserver", 8080)
            print(f"Airflow UI: http://localhost:{port}  (login: admin and AIRFLOW_ADMIN_"
                  f"PASSWORD of {topology.env_file}); Ctrl-C stops everything")
            try:
                while True:
                    time.sleep(3600)
            except KeyboardInterrupt:
                pass
        stopped = down_with_checks(topology)
        print(report(topology, up, stopped))
        ok = all(up.values()) and not any(stopped.values())
    except StackError as exc:
        print(f"error: {exc}", file=sys.stderr)
    finally:
        topology.down(timeout=30)
        left = {name: pids for name, pids in topology.pids().items() if pids}
        if left:
            print(f"error: processes left behind: {left}", file=sys.stderr)
            ok = False
    print(f"prod-check {'passed' if ok else 'FAILED'} in {time.monotonic() - t0:.0f} s")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
