"""The published versions as the console shows them: state, origin, samples, the gate.

A version is **active** (the one recall serves), **superseded** (published, not live: a
later version replaced it, or a backfill kept it aside; ``Make live`` can bring it back) or
**retired** (retention dropped its embeddings and towers; only its record is left).  The
gate's decision is the training run's (``published``, ``superseded``, ``rejected``) with both
figures it decided on, the threshold they were held to and, where both versions were scored
on the same users, the paired difference with its interval.
"""

from __future__ import annotations

from typing import Any

from dropoutnet import registry
from dropoutnet.config import PipelineConfig
from dropoutnet.console.params import not_found
from dropoutnet.core import db, sql

RUN_PREFIX_CLI = "cli:"


def _state(row: dict[str, Any]) -> str:
    if row["retired_at"] is not None:
        return "retired"
    return "active" if row["active"] else "superseded"


def gate_summary(decision: str | None, gate: dict[str, Any] | None) -> dict[str, Any]:
    """The gate's decision and figures of a run: this version's metric, the active
    version's on the same users, the threshold (active x (1 - tolerance)), the paired
    difference and its interval, and why there was no comparison when there was none."""
    gate = gate or {}
    old, tolerance = gate.get("active"), gate.get("tolerance")
    return {
        "decision": decision,
        "metric": gate.get("metric"),
        "new": gate.get("new"),
        "active": old,
        "active_version": gate.get("active_version"),
        "threshold": (old * (1 - tolerance)
                      if old is not None and tolerance is not None else None),
        "difference": gate.get("difference"),
        "difference_ci": gate.get("difference_ci"),
        "note": gate.get("not_comparable") or gate.get("active_error"),
    }


def _samples(row: dict[str, Any]) -> dict[str, Any]:
    splits = row.get("splits") or {}
    return {"train": row.get("train_samples"), "train_positives": row.get("train_positives"),
            **{name: {"samples": f.get("samples"), "users": f.get("users")}
               for name, f in splits.items()}}


def _version(row: dict[str, Any]) -> dict[str, Any]:
    run = row["pipeline_run"]
    return {
        "model_version": row["model_version"],
        "state": _state(row),
        "bizdate": row["bizdate"],
        "run_id": row["run_id"],
        "pipeline_run": run,
        "airflow_run": run if run and not run.startswith(RUN_PREFIX_CLI) else None,
        "config_hash": row["config_hash"],
        "warm_start_from": row["warm_start_from"],
        "warm_start_run": row["warm_start_run"],
        "samples": _samples(row),
        "gate": gate_summary(row["decision"], row["gate"]),
        "trained": {"started_at": row["started_at"], "finished_at": row["finished_at"]},
        "published_at": row["published_at"],
        "live_since": row["live_since"],
        "retired_at": row["retired_at"],
    }


def version_list(cur, cfg: PipelineConfig, version: str | None = None) -> list[dict[str, Any]]:
    """Every published version (or one), newest bizdate first; empty before the first."""
    if not db.table_exists(cur, cfg.storage.schema_, "model_versions"):
        return []
    sql.execute(cur, "console/versions.sql",
                params={"model_name": cfg.model_name, "model_version": version},
                schema=cfg.storage.schema_, version=version)
    return [_version(row) for row in db.fetch_dicts(cur)]


def version_detail(cur, cfg: PipelineConfig, version: str) -> dict[str, Any]:
    """One version: its row, its metrics per split (with the baselines), the training run's
    loss per epoch and every change of the active version to or from it."""
    found = version_list(cur, cfg, version)
    if not found:
        raise not_found(f"version {version} of model {cfg.model_name} was never published; "
                        "the versions page lists the published ones")
    detail = found[0]
    metrics = registry.version_metrics(cur, cfg, detail)
    train = (metrics or {}).get("train") or {}
    detail["metrics"] = (metrics or {}).get("splits")
    detail["loss_per_epoch"] = train.get("loss_per_epoch")
    detail["train"] = {k: v for k, v in train.items() if k != "loss_per_epoch"} or None
    detail["history"] = registry.activations(cur, cfg, version)
    return detail


def overview(cur, cfg: PipelineConfig) -> dict[str, Any]:
    """What is live and since when, the last change (who and why), and the version count."""
    versions = version_list(cur, cfg)
    active = next((v for v in versions if v["state"] == "active"), None)
    last = registry.activations(cur, cfg, limit=1)
    return {"model_name": cfg.model_name, "active": active,
            "last_change": last[0] if last else None,
            "versions": {state: sum(v["state"] == state for v in versions)
                         for state in ("active", "superseded", "retired")}}


def run_versions(cur, cfg: PipelineConfig, pipeline_run: str) -> dict[str, Any]:
    """What a pipeline run (an Airflow DAG run) did: its training runs with their decisions
    and the versions they published; empty lists for a run that trained nothing."""
    runs = [r for r in registry.runs(cur, cfg) if r["pipeline_run"] == pipeline_run]
    ids = {r["run_id"] for r in runs}
    return {"pipeline_run": pipeline_run,
            "runs": [{**r, "gate": gate_summary(r["decision"], r["gate"])} for r in runs],
            "versions": [v for v in version_list(cur, cfg) if v["run_id"] in ids]}
