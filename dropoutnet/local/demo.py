"""The whole demo in one command (``make demo``): data, Airflow, two daily runs, results.

1. start the embedded Postgres and Airflow's four components (left running at the end);
2. generate the synthetic short-video tables, ending yesterday (UTC);
3. serialize the ``dropoutnet_daily`` DAG and check it imports cleanly;
4. backfill the two last bizdates (yesterday-1, then yesterday) through the scheduler;
5. wait for both runs, then print each bizdate's sample counts and metrics and the top-10 new
   items of three users;
6. start the model service on the deployed towers and embed one new item through its REST API;
7. start the recall API; simulated users ask it for lists and click with the data's planted
   probabilities; print today's online figures, then run an A/B between the two versions;
8. print the Airflow UI address and login.

Running it again needs no cleanup: the data is regenerated and both bizdates are reprocessed.
``make stop`` stops everything.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from dropoutnet.local import embedded_pg, stack
from dropoutnet.local.airflow_api import AirflowAPI

DAG_ID = "dropoutnet_daily"
DAG_FILE = stack.DAGS_FOLDER / "dropoutnet_daily.py"
FINISHED = ("success", "failed")

_T0 = time.monotonic()


def say(msg: str = "") -> None:
    """Print one line of the demo's report at once."""
    print(msg, flush=True)


def step(msg: str) -> None:
    """Print the heading of the demo's next step."""
    say(f"\n[{time.monotonic() - _T0:6.1f}s] == {msg}")


class DemoError(RuntimeError):
    """A step of the demo failed; the message says which and where its log is."""
    pass


# --- the airflow CLI and REST API --------------------------------------------------------------


def _json_out(text: str) -> Any:
    """The JSON document in an ``airflow ... -o json`` output (warnings may precede it)."""
    for line in text.splitlines():
        line = line.strip()
        if line.startswith(("[", "{")):
            try:
                return json.loads(line)
            except ValueError:
                continue
    return None


def airflow(args: list[str], env: dict[str, str], *, check: bool = True, timeout: float = 300):
    """Run an ``airflow`` command in the stack's environment; its output."""
    return stack.run_airflow(args, env, check=check, timeout=timeout)


# --- steps -----------------------------------------------------------------------------------


def generate_data(url: str, end_date: dt.date, sizes: dict[str, int], seed: int) -> dict:
    """The synthetic short-video tables, ending at ``end_date``; the generator's summary."""
    from dropoutnet.data import synthetic

    return synthetic.generate(url, end_date=end_date, seed=seed, schema=None, **sizes)


def ensure_dag(env: dict[str, str], timeout: float = 120) -> None:
    """Serialize the DAG into the metadata DB and wait until it is listed, without import errors."""
    t0 = time.monotonic()
    proc = airflow(["dags", "reserialize"], env, check=False)
    if proc.returncode != 0:
        say("  airflow dags reserialize reported a problem; checking import errors ...")
    while True:
        errors = _json_out(airflow(["dags", "list-import-errors", "-o", "json"], env,
                                   check=False).stdout) or []
        ours = [e for e in errors if isinstance(e, dict)
                and Path(str(e.get("filename", ""))).name == DAG_FILE.name]
        if ours:
            for e in ours:
                say(f"  import error in {e.get('filename')}:\n{e.get('stack_trace') or e}")
            raise DemoError(f"the DAG file {DAG_FILE} does not import; fix the error above")
        dags = _json_out(airflow(["dags", "list", "-o", "json"], env, check=False).stdout) or []
        if any(isinstance(d, dict) and d.get("dag_id") == DAG_ID for d in dags):
            say(f"  {DAG_ID} is serialized, no import errors ({time.monotonic() - t0:.1f}s)")
            return
        if time.monotonic() - t0 > timeout:
            raise DemoError(f"{DAG_ID} did not show up in `airflow dags list` within {timeout:.0f}s; "
                            f"see {stack.log_dir() / 'airflow-dag-processor.log'}")
        time.sleep(3)


def _day_of(run: dict) -> str | None:
    value = run.get("logical_date")
    return value[:10] if value else None


def runs_for(api: AirflowAPI, days: list[str]) -> dict[str, dict]:
    """The DAG runs of the demo's bizdates, by bizdate."""
    data = api.call("GET", f"/dags/{DAG_ID}/dagRuns",
                    logical_date_gte=f"{days[0]}T00:00:00Z", logical_date_lte=f"{days[-1]}T00:00:00Z",
                    limit=100)
    return {d: r for r in data.get("dag_runs", []) if (d := _day_of(r)) in days}


def clear_leftovers(api: AirflowAPI, days: list[str]) -> None:
    """Cancel unfinished backfills and stop unfinished runs of these bizdates (an earlier demo's)."""
    backfills = api.call("GET", "/backfills", dag_id=DAG_ID, limit=100).get("backfills", [])
    for b in backfills:
        if not b.get("completed_at"):
            say(f"  cancelling the earlier backfill {b['id']}, not marked complete yet, ({b.get('from_date')} .. {b.get('to_date')})")
            api.call("PUT", f"/backfills/{b['id']}/cancel")
    for day, run in runs_for(api, days).items():
        if run["state"] not in FINISHED:
            say(f"  stopping unfinished run {run['dag_run_id']} (bizdate {day}, {run['state']})")
            api.call("PATCH", f"/dags/{DAG_ID}/dagRuns/{urllib.parse.quote(run['dag_run_id'], safe='')}",
                     {"state": "failed"})


def task_log_path(run_id: str, task_id: str, try_number: int) -> Path:
    """Where Airflow keeps the log of one try of one task of a run."""
    return (stack.airflow_home() / "logs" / f"dag_id={DAG_ID}" / f"run_id={run_id}"
            / f"task_id={task_id}" / f"attempt={max(try_number, 1)}.log")


def _last_error(log: Path) -> str | None:
    """The last error event of a task log (JSON lines), as one readable line."""
    try:
        lines = log.read_text(errors="replace").splitlines()
    except FileNotFoundError:
        return None
    for line in reversed(lines):
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if event.get("level") == "error":
            details = event.get("error_detail") or []
            if details and isinstance(details, list) and isinstance(details[-1], dict):
                d = details[-1]
                return f"{d.get('exc_type')}: {d.get('exc_value')}"
            return str(event.get("event"))
    return None


def task_instances(api: AirflowAPI, run_id: str) -> list[dict]:
    """The task instances of a DAG run, as Airflow's REST API lists them."""
    path = f"/dags/{DAG_ID}/dagRuns/{urllib.parse.quote(run_id, safe='')}/taskInstances"
    return api.call("GET", path, limit=100).get("task_instances", [])


def wait_for_runs(api: AirflowAPI, days: list[str], since: dt.datetime, timeout: float) -> dict[str, dict]:
    """Poll the runs of ``days`` until all succeed (after ``since``) or one fails."""
    t0 = time.monotonic()
    seen: dict[str, str] = {}
    retry_noted: set[tuple[str, str, int]] = set()
    while True:
        runs = runs_for(api, days)
        for day in days:
            run = runs.get(day)
            state = run["state"] if run else "not created yet"
            if run and run["state"] in FINISHED and run.get("end_date"):
                ended = dt.datetime.fromisoformat(run["end_date"].replace("Z", "+00:00"))
                if ended < since:
                    state = "queued"  # the previous demo's finished run, not yet cleared
            shown = state
            if run and state == "running":
                tis = task_instances(api, run["dag_run_id"])
                active = sorted(t["task_id"] for t in tis
                                if t.get("state") in ("running", "queued", "scheduled"))
                active += sorted(f"{t['task_id']} (waiting to retry)" for t in tis
                                 if t.get("state") == "up_for_retry")
                done = sum(1 for t in tis if t.get("state") == "success")
                shown = f"running {', '.join(active) or '...'} ({done}/{len(tis)} tasks done)"
                for t in tis:
                    if t.get("state") == "up_for_retry":
                        key = (day, t["task_id"], t.get("try_number") or 1)
                        if key not in retry_noted:
                            retry_noted.add(key)
                            log = task_log_path(run["dag_run_id"], t["task_id"], t.get("try_number") or 1)
                            say(f"  ! bizdate {day}: task {t['task_id']} failed, Airflow will retry it "
                                f"({_last_error(log) or 'see log'}; log {log})")
            if seen.get(day) != shown:
                seen[day] = shown
                say(f"  [{time.monotonic() - _T0:6.1f}s] bizdate {day}: {shown}")
            if run and state == "failed":
                report_failure(api, day, run)
                raise DemoError(f"the run for bizdate {day} failed")
        if all(runs.get(d) and seen.get(d) == "success" for d in days):
            return runs
        if time.monotonic() - t0 > timeout:
            raise DemoError(f"the runs did not finish within {timeout:.0f}s; they go on in Airflow "
                            "(see the UI)")
        time.sleep(5)


def report_failure(api: AirflowAPI, day: str, run: dict) -> None:
    """Print which task of a failed run failed, and the last error of its log."""
    say(f"\nThe run {run['dag_run_id']} (bizdate {day}) failed:")
    for t in task_instances(api, run["dag_run_id"]):
        if t.get("state") in ("failed", "upstream_failed"):
            log = task_log_path(run["dag_run_id"], t["task_id"], t.get("try_number") or 1)
            if t["state"] == "failed":
                say(f"  task {t['task_id']} FAILED (try {t.get('try_number')}): "
                    f"{_last_error(log) or 'see its log'}\n    log: {log}")
            else:
                say(f"  task {t['task_id']}: upstream_failed")


def active_users(url: str, bizdate: str, n: int = 3) -> list[str]:
    """The ``n`` users with the most events on the bizdate (table names from the config)."""
    import psycopg2

    from dropoutnet.config import default_config_path, load_config

    cfg = load_config(default_config_path())
    events = cfg.raw.events
    cols = events.columns
    table = f'"{events.schema_}"."{events.table}"' if events.schema_ else f'"{events.table}"'
    conn = psycopg2.connect(url)
    try:
        with conn.cursor() as cur:
            cur.execute(
                f'select "{cols["user_id"]}"::text, count(*) from {table} '
                f'where "{cols["event_time"]}" >= %s::date and "{cols["event_time"]}" < %s::date + 1 '
                f"group by 1 order by 2 desc, 1 limit %s", (bizdate, bizdate, n))
            return [row[0] for row in cur.fetchall()]
    finally:
        conn.close()


def start_item_service(base: Path, url: str, bizdate: str) -> None:
    """Serve the deployed towers (``dropoutnet service create``) and embed one of the
    bizdate's new items through the REST API, as the real-time job would."""
    import numpy as np

    from dropoutnet import pipeline
    from dropoutnet.core import db
    from dropoutnet.data import inputs
    from dropoutnet.data.feature_queries import read_features
    from dropoutnet.registry import artifacts
    from dropoutnet.serving import service
    from dropoutnet.steps.deploy import served_models

    cfg = pipeline.load(None)
    models = served_models(cfg)
    root = artifacts.serving_root(cfg.serving.base_path)
    config = {"name": models["item"], "model_path": str(root / models["item"]),
              "processor": "tensorflow_cpu", "metadata": {"cpu": 2, "instance": 1, "memory": 2000},
              "models": {m: str(root / m) for side, m in models.items() if side != "item"},
              "port": int(os.environ.get("DROPOUTNET_SERVING_PORT", "8501"))}
    path = base / "item-service.json"
    path.write_text(json.dumps(config, indent=1))
    name = models["item"]
    say(f"  dropoutnet service {'modify ' + name if service.running_pid(name) else 'create'} {path}")
    desc = (service.modify(name, path) if service.running_pid(name) else service.create(path))
    say("  " + "\n  ".join(service.format_desc(desc).splitlines()[:5]))

    day = dt.date.fromisoformat(bizdate)
    start = dt.datetime.combine(day, dt.time(), tzinfo=dt.timezone.utc)
    with db.transaction(url) as cur:
        items = read_features(cur, cfg, "item", day, {
            "created_from": start, "created_to": start + dt.timedelta(days=1)})
    specs = cfg.features_of(side="item")
    arrays = inputs.to_inputs(specs, {k: v[:1] for k, v in items.items()})
    instance = {}
    for f in specs:
        v = arrays[f.name][0]
        instance[f.name] = ([round(float(x), 5) for x in v] if f.kind == "vector" else
                            (None if np.isnan(v) else float(v)) if f.kind == "numeric" else
                            (str(v) or None))
    address = desc["address"]
    request = urllib.request.Request(f"{address}/v1/models/{name}:predict",
                                     data=json.dumps({"instances": [instance]}).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        embedding = json.loads(response.read())["predictions"][0]
    say(f"\n  new item {items['item_id'][0]} (created {bizdate}), embedded online:")
    say(f"  curl {address}/v1/models/{name}:predict -d '{{\"instances\": [{{...{len(instance)} "
        "raw features, preference ones null...}]}'")
    say("  -> {\"predictions\": [[" + ", ".join(f"{x:.4f}" for x in embedding[:4])
        + f", ...]]}}  ({len(embedding)} dims, norm {np.linalg.norm(embedding):.3f})")


def stream_new_items(base: Path, url: str, cli_env: dict[str, str], n: int = 3) -> None:
    """Start the stream worker next to the model service, insert ``n`` new items, and print
    each one's insert-to-recallable latency (insert committed -> its vector in the active
    version's partition) and the recall of a user that contains the first one."""
    import numpy as np

    from dropoutnet import pipeline, registry
    from dropoutnet.core import db, sql

    cfg = pipeline.load(None)
    pid, logfile = stack.start_stream_worker(base)
    say(f"  dropoutnet stream  (pid {pid}, log {logfile}; metrics on "
        f"http://{cfg.stream.metrics_host}:{cfg.stream.metrics_port}/metrics)")
    with db.transaction(url) as cur:
        version = registry.active_version(cur, cfg)
    schema, items = cfg.storage.schema_, cfg.raw.items
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%H%M%S")
    with db.transaction(url) as cur:
        sql.execute(cur, "local/demo/newest_items.sql", params={"n": n}, items=items)
        sources = [r[0] for r in cur.fetchall()]
    new_ids = []
    for k, source_id in enumerate(sources):
        item_id = f"live_{stamp}_{k + 1}"
        with db.transaction(url) as cur:  # committed when the block ends
            sql.execute(cur, "local/demo/copy_items.sql", params={
                "source_ids": [source_id], "item_ids": [item_id],
                "id_column": items.columns["item_id"],
                "time_column": items.columns["create_time"]}, items=items)
        inserted = time.monotonic()
        while True:
            with db.transaction(url) as cur:
                sql.execute(cur, "local/demo/items_stored.sql",
                            params={"version": version, "item_ids": [item_id]}, schema=schema)
                if cur.fetchall():
                    break
            if time.monotonic() - inserted > 60:
                raise DemoError(f"item {item_id} was not embedded within 60 s; see {logfile}")
            time.sleep(0.01)
        say(f"  new item {item_id} inserted -> recallable in version {version} after "
            f"{time.monotonic() - inserted:.2f} s")
        new_ids.append(item_id)
    # the newest items' channel (created within the stream's window): the user who ranks the
    # first new item highest there, whose recall contains it
    window = cfg.stream.window_hours
    created_from = dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=window)
    vectors = {}
    with db.transaction(url) as cur:
        for side in ("user", "item"):
            sql.execute(cur, "local/demo/version_vectors.sql",
                        params={"version": version, "created_from": created_from},
                        schema=schema, side=side, table=f"{side}_embeddings",
                        created_from=side == "item")
            rows = cur.fetchall()
            vectors[side] = ([r[0] for r in rows], np.array([r[1] for r in rows], np.float32))
    users, user_vectors = vectors["user"]
    item_ids, item_vectors = vectors["item"]
    scores = user_vectors @ item_vectors.T
    column = item_ids.index(new_ids[0])
    ranks = (scores > scores[:, [column]]).sum(axis=1)
    user = users[int(np.lexsort((-scores[:, column], ranks))[0])]
    say(f"\n$ dropoutnet recall --user-id {user} --top-n 10 --created-within {window:g}"
        f"     # the newest items; {new_ids[0]} is #{int(ranks.min()) + 1} here")
    say(dropoutnet_cli(["recall", "--user-id", user, "--top-n", "10",
                        "--created-within", f"{window:g}"], cli_env))


def online_loop(base: Path, cli_env: dict[str, str]) -> None:
    """Start the recall API, let simulated users click on what it serves, compute today's
    online figures, then run an A/B between the two demo versions and print its verdict."""
    from dropoutnet import pipeline, registry
    from dropoutnet.core import db

    pid, logfile, address = stack.start_recall_api(base)
    say(f"  dropoutnet recall-api  (pid {pid}, log {logfile}) on {address}; every answer goes "
        "to the served log")
    today = dt.datetime.now(dt.timezone.utc).date().isoformat()

    def simulate(users: int) -> None:
        args = ["simulate", "--users", str(users), "--requests-per-user", "2", "--top-n", "20"]
        say(f"\n$ dropoutnet {' '.join(args)}")
        say(dropoutnet_cli(args, cli_env))
        deadline = time.monotonic() + 30  # the writer's last batch, before anyone reads it
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{address}/healthz", timeout=5) as response:
                    if not json.loads(response.read())["served_log"]["buffered"]:
                        break
            except (OSError, ValueError, KeyError, TypeError):
                break
            time.sleep(0.2)

    simulate(300)
    say(f"\n$ dropoutnet run --bizdate {today} --tasks online_metrics")
    dropoutnet_cli(["run", "--bizdate", today, "--tasks", "online_metrics"], cli_env)
    say(f"$ dropoutnet metrics --bizdate {today} --online")
    say(dropoutnet_cli(["metrics", "--bizdate", today, "--online"], cli_env))

    cfg = pipeline.load(None)
    with db.transaction() as cur:
        active = registry.active_version(cur, cfg)
        others = [v["model_version"] for v in registry.versions(cur, cfg)
                  if v["model_version"] != active and v["retired_at"] is None]
    if not others:
        say("  (only one version is published: no A/B to run)")
        return
    start = ["experiment", "start", "--challenger", others[0], "--share", "0.5", "--reason",
             "make demo"]
    say(f"\n$ dropoutnet {' '.join(start)}")
    say(dropoutnet_cli(start, cli_env))
    try:
        simulate(600)
        say("\n$ dropoutnet experiment status")
        say(dropoutnet_cli(["experiment", "status"], cli_env))
    finally:
        say("$ dropoutnet experiment stop")
        say(dropoutnet_cli(["experiment", "stop", "--reason", "make demo"], cli_env))


def dropoutnet_cli(args: list[str], env: dict[str, str]) -> str:
    """Run a ``dropoutnet`` command for the demo's report; its output, or why it failed."""
    proc = subprocess.run([stack.dropoutnet_bin(), *args], env=env, capture_output=True, text=True,
                          timeout=300)
    out = (proc.stdout or "").rstrip()
    if proc.returncode != 0:
        err = (proc.stderr or "").strip().splitlines()
        return f"(`dropoutnet {' '.join(args)}` failed: {err[-1] if err else 'exit %d' % proc.returncode})"
    return out


# --- main ------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    """``make demo``: data, Airflow, two daily runs through the scheduler, the results."""
    from dropoutnet.data import synthetic

    defaults = getattr(synthetic, "DEFAULTS", {})
    parser = argparse.ArgumentParser(prog="python -m dropoutnet.local.demo",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=defaults.get("n_users", 2000))
    parser.add_argument("--items", type=int, default=defaults.get("n_items", 3000))
    parser.add_argument("--authors", type=int, default=defaults.get("n_authors", 300))
    parser.add_argument("--days", type=int, default=defaults.get("days", 21))
    parser.add_argument("--new-items-per-day", type=int, default=defaults.get("new_items_per_day", 150))
    parser.add_argument("--seed", type=int, default=defaults.get("seed", 42))
    parser.add_argument("--timeout", type=float, default=3600, help="seconds to wait for the runs")
    args = parser.parse_args(argv)

    base = stack.home()
    yesterday = dt.datetime.now(dt.timezone.utc).date() - dt.timedelta(days=1)
    days = [(yesterday - dt.timedelta(days=1)).isoformat(), yesterday.isoformat()]
    say(f"DropoutNet cold-start recall demo  (home {base})")
    say(f"bizdates: {days[0]} and {days[1]} (the two last complete days, UTC)")
    try:
        step("Starting Postgres")
        t = time.monotonic()
        socket_dir = stack.start_postgres(base)
        url = embedded_pg.ensure_database_url()
        say(f"  Postgres is up (socket {socket_dir}) in {time.monotonic() - t:.1f}s")

        step(f"Starting Airflow ({', '.join(stack.components(base))})")
        info = stack.start_airflow(base, echo=say)
        env = stack.airflow_env(base=base)
        api = AirflowAPI(stack.api_port(base), info.user, info.password)
        say(f"  Airflow is up at {info.url}")
        try:
            clear_leftovers(api, days)
        except stack.StackError as exc:  # the DAG is not serialized yet: nothing to clear
            if "HTTP 404" not in str(exc):
                raise

        step(f"Generating synthetic short-video data ending {yesterday}")
        sizes = dict(n_users=args.users, n_items=args.items, n_authors=args.authors, days=args.days,
                     new_items_per_day=args.new_items_per_day)
        summary = generate_data(url, yesterday, sizes, args.seed)
        rows = summary.get("rows", {}) if isinstance(summary, dict) else {}
        say("  " + ", ".join(f"{k} {v}" for k, v in rows.items()) if rows else f"  {summary}")
        if isinstance(summary, dict) and summary.get("start_date"):
            say(f"  events from {summary.get('start_date')} to {summary.get('end_date')}, "
                f"CTR {summary.get('ctr')}, in {summary.get('seconds')}s")

        step(f"Serializing the DAG {DAG_ID}")
        ensure_dag(env)

        step(f"Backfilling bizdates {days[0]} and {days[1]} through the scheduler")
        since = dt.datetime.now(dt.timezone.utc)
        cmd = ["backfill", "create", "--dag-id", DAG_ID, "--from-date", days[0], "--to-date", days[1],
               "--max-active-runs", "1", "--reprocess-behavior", "completed"]
        say(f"  airflow {' '.join(cmd)}")
        airflow(cmd, env)
        airflow(["dags", "unpause", DAG_ID], env)
        say(f"  {DAG_ID} unpaused; the scheduler runs {days[0]} first, then {days[1]}")
        wait_for_runs(api, days, since, args.timeout)

        step("Results")
        cli_env = dict(os.environ, DROPOUTNET_HOME=str(base))
        for day in days:
            say(f"\n$ dropoutnet metrics --bizdate {day}")
            say(dropoutnet_cli(["metrics", "--bizdate", day], cli_env))
        try:
            users = active_users(url, days[-1])
        except Exception as exc:  # noqa: BLE001 - a demo nicety, never a failure
            users = []
            say(f"  (could not pick active users: {exc})")
        for user in users:
            say(f"\n$ dropoutnet recall --user-id {user} --top-n 10")
            say(dropoutnet_cli(["recall", "--user-id", user, "--top-n", "10"], cli_env))

        step("The item tower online (TensorFlow Serving's REST API)")
        try:
            start_item_service(base, url, days[-1])
            step("New items in real time: the stream worker (change log -> service -> pgvector)")
            stream_new_items(base, url, cli_env)
        except Exception as exc:  # noqa: BLE001 - the pipeline's results stand without it
            say(f"  (the model service or the stream worker did not start: {exc})")
        step("The online loop: simulated users on the recall API, online metrics, an A/B")
        try:
            online_loop(base, cli_env)
        except Exception as exc:  # noqa: BLE001 - the pipeline's results stand without it
            say(f"  (the online loop did not run: {exc})")
    except (DemoError, stack.StackError) as exc:
        say(f"\nerror: {exc}")
        say(f"Airflow and Postgres are still running (see the UI); `make stop` stops them. "
            f"Wall time {time.monotonic() - _T0:.0f}s.")
        return 1

    say("")
    stack.print_login(stack.login_info(base), echo=say)
    say("  dropoutnet_daily runs daily at 00:00 UTC for the day before; trigger a bizdate from the "
        "UI's trigger form (bizdate = YYYY-MM-DD).")
    say("Airflow, Postgres, the model service, the stream worker and the recall API keep "
        "running; `make stop` stops them.")
    say(f"Demo finished in {time.monotonic() - _T0:.0f}s (wall time).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
