"""What the online figures say, for people: a bizdate's table beside the offline gate's
figure of each version (``dropoutnet metrics --online``), and an experiment's verdict
(``dropoutnet experiment status``)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from dropoutnet import registry
from dropoutnet.config import PipelineConfig
from dropoutnet.core import db
from dropoutnet.online import metrics

HEADLINES = (("ctr", "CTR"), ("served_recall", "served recall"),
             ("new_item_reach", "new-item reach"))


def offline_figures(cur, cfg: PipelineConfig, versions: set[str]) -> dict[str, dict[str, Any]]:
    """Each version's offline gate figure, where the evaluate task stored one: ``{version:
    {metric, value}}`` (the version's own cold-item figure on its bizdate)."""
    out = {}
    for row in registry.versions(cur, cfg):
        if row["model_version"] not in versions:
            continue
        m = registry.version_metrics(cur, cfg, row) or {}
        gate = m.get("gate") or {}
        if gate.get("new") is not None:
            out[row["model_version"]] = {"metric": f"cold-item {gate.get('metric')}",
                                         "value": gate["new"]}
    return out


def bizdate_report(cur, cfg: PipelineConfig, first_day: dt.date, last_day: dt.date
                   ) -> dict[str, Any]:
    """The stored online metrics of the bizdates, each row with its version's offline gate
    figure (``offline``) beside it (the CLI's ``metrics --online`` and the console's page)."""
    rows = metrics.read(cur, cfg, first_day, last_day)
    offline = offline_figures(cur, cfg, {r["model_version"] for r in rows})
    for row in rows:
        row["dt"] = row["dt"].isoformat()
        row["computed_at"] = row["computed_at"].isoformat()
        row["offline"] = offline.get(row["model_version"])
    return {"first_day": first_day.isoformat(), "last_day": last_day.isoformat(),
            "rows": rows}


def _value(figure: dict[str, Any], share: bool = False) -> str:
    value = figure.get("share" if share else "value")
    if value is None:
        return "n/a"
    ci = figure.get("ci") or [None, None]
    band = f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci[0] is not None else ""
    return f"{value:.4f}{band}"


def format_bizdates(report: dict[str, Any]) -> str:
    """The bizdates' online figures as a table, a line per version, arm and channel."""
    rows = report["rows"]
    if not rows:
        return (f"no online metrics stored for {report['first_day']} .. {report['last_day']}: "
                "the online_metrics task writes them from the served log (set "
                "online.positive_events, and serve through the recall API)")
    lines = [f"{'bizdate':<10}  {'version':<8}  {'arm':<10}  {'channel':<7}  {'requests':>8}  "
             f"{'users':>6}  {'CTR [95% CI]':<24}  {'served recall':<24}  "
             f"{'new-item reach':<24}  offline gate"]
    for r in rows:
        m = r["metrics"]
        arm = r["arm"] + (f" #{r['experiment_id']}" if r["experiment_id"] else "")
        offline = r.get("offline")
        lines.append(
            f"{r['dt']:<10}  {r['model_version']:<8}  {arm:<10}  {r['channel']:<7}  "
            f"{m['requests']:>8}  {m['users']:>6}  {_value(m['ctr']):<24}  "
            f"{_value(m['served_recall']):<24}  {_value(m['new_item_reach'], True):<24}  "
            + (f"{offline['metric']} {offline['value']:.4f}" if offline else "n/a"))
    return "\n".join(lines)


def experiment_status(cfg: PipelineConfig, experiment_id: int | None = None,
                      url: str | None = None, now: dt.datetime | None = None) -> dict[str, Any]:
    """The experiment (``experiment_id``, else the running one, else the newest) and the
    online figures of its two arms per channel since it started, with the challenger's
    difference, its interval and whether it is significant."""
    now = now or dt.datetime.now(dt.timezone.utc)
    with db.transaction(url) as cur:
        found = registry.list_experiments(cur, cfg, experiment_id=experiment_id, limit=1)
    if not found and experiment_id is not None:
        raise registry.ExperimentError(
            f"experiment {experiment_id} of model {cfg.model_name!r} does not exist: "
            "`dropoutnet experiment status` without --id shows the newest", 404)
    if not found:
        raise registry.ExperimentError(
            f"no experiment of model {cfg.model_name!r} was ever started: start one with "
            "`dropoutnet experiment start --challenger VERSION`", 404)
    e = found[0]
    end = e.stopped_at or now
    window = dt.timedelta(hours=cfg.online.attribution_hours)
    period = metrics.Period(e.started_at, end, min(now, end + window), e.experiment_id)
    status: dict[str, Any] = {"experiment": e.as_dict(), "channels": {}}
    if not cfg.online.positive_events:
        status["skipped"] = ("online.positive_events is not set: name the event types that "
                             "are a positive reaction (e.g. [click]) to judge the arms")
        return status
    groups = metrics.compute(cfg, period, url, by_version=False)
    confidence = cfg.online.confidence
    for channel in sorted({g["channel"] for g in groups}):
        arms = {g["arm"]: g for g in groups if g["channel"] == channel}
        entry: dict[str, Any] = {arm: arms[arm]["metrics"] for arm in arms}
        if {"control", "challenger"} <= set(arms):
            entry["difference"] = metrics.compare_arms(arms["control"], arms["challenger"],
                                                       confidence)
        status["channels"][channel] = entry
    return status


def format_experiment(status: dict[str, Any]) -> str:
    """An experiment's status for people: what runs, then per channel both arms' figures and
    the challenger's difference with its interval and verdict."""
    e = status["experiment"]
    state = "running" if e["stopped_at"] is None else \
        f"stopped {e['stopped_at'][:16]} by {e['stopped_by']} ({e['stop_reason']})"
    lines = [f"experiment {e['experiment_id']}: challenger {e['challenger']} to "
             f"{e['share']:.0%} of users, since {e['started_at'][:16]} by {e['started_by']}; "
             f"{state}" + ("" if e["serving"] or e["stopped_at"] else
                           " (not serving: its challenger is retired or active)")]
    if status.get("skipped"):
        return "\n".join(lines + ["  " + status["skipped"]])
    if not status["channels"]:
        lines.append("  nothing served in the experiment yet")
    for channel, entry in status["channels"].items():
        lines.append(f"  channel {channel}:")
        for arm in ("control", "challenger"):
            if arm in entry:
                m = entry[arm]
                lines.append(f"    {arm:<10}  {m['requests']:>7} requests  {m['users']:>6} users"
                             f"  CTR {_value(m['ctr'])}  served recall "
                             f"{_value(m['served_recall'])}")
        for name, title in HEADLINES:
            d = (entry.get("difference") or {}).get(name)
            if not d or d["difference"] is None:
                continue
            verdict = "significant" if d["significant"] else "not significant"
            lines.append(f"    {title}: challenger - control = {d['difference']:+.4f} "
                         f"[{d['ci'][0]:+.4f}, {d['ci'][1]:+.4f}]  {verdict}")
    return "\n".join(lines)
