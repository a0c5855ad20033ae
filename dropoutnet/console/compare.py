"""Two versions side by side: metrics per split, config differences, overlap of their lists.

**Metrics.** Each version was scored on its own bizdate's held-out users, so in general the
two figures are of different users: their difference gets an interval from the two bootstrap
intervals (normal approximation, independent samples).  Where one version's gate scored the
other on the same users (the newer one was evaluated while the older was active), the gate
metric's difference is also given **paired** over those users, with its bootstrap interval:
the sharper comparison.

**Config.** The differences between the configs the two training runs trained with (every
setting, flattened to dotted keys).

**Overlap.** For a fixed sample of users embedded in both versions, each version's top-N
(HNSW retrieval, one statement per version) and how many items the two lists share.
"""

from __future__ import annotations

import math
from typing import Any

from dropoutnet import registry
from dropoutnet.config import PipelineConfig
from dropoutnet.console.params import not_found
from dropoutnet.console.versions import version_list
from dropoutnet.core import sql

Z95 = 1.959964


def _flat(config: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(config, dict):
        out: dict[str, Any] = {}
        for key, value in config.items():
            out.update(_flat(value, f"{prefix}{key}."))
        return out
    return {prefix.rstrip("."): config}


def config_differences(a: dict[str, Any] | None, b: dict[str, Any] | None
                       ) -> list[dict[str, Any]] | None:
    """The settings whose values differ (``{"key", "a", "b"}``), or None when a run's config
    was not recorded (runs trained before configs were)."""
    if a is None or b is None:
        return None
    fa, fb = _flat(a), _flat(b)
    return [{"key": key, "a": fa.get(key), "b": fb.get(key)}
            for key in sorted(set(fa) | set(fb)) if fa.get(key) != fb.get(key)]


def unpaired_difference(a: float | None, a_ci: list | None, b: float | None,
                        b_ci: list | None) -> dict[str, Any] | None:
    """``b - a`` with a 95 % interval from the two independent bootstrap intervals."""
    if a is None or b is None:
        return None
    out: dict[str, Any] = {"value": b - a, "ci": None, "paired": False}
    if a_ci and b_ci:
        se = math.hypot((a_ci[1] - a_ci[0]) / (2 * Z95), (b_ci[1] - b_ci[0]) / (2 * Z95))
        out["ci"] = [b - a - Z95 * se, b - a + Z95 * se]
    return out


def _paired(newer: dict[str, Any], older: dict[str, Any], sign: int) -> dict[str, Any] | None:
    """The gate's paired difference when ``newer``'s gate scored ``older`` on its users."""
    gate = newer["gate"]
    if gate["active_version"] != older["model_version"] or gate["difference"] is None:
        return None
    ci = gate["difference_ci"]
    return {"metric": gate["metric"], "value": sign * gate["difference"],
            "ci": sorted(sign * c for c in ci) if ci else None, "paired": True,
            "users_of": newer["model_version"]}


def _run_config(cur, cfg: PipelineConfig, run_id: str | None) -> dict[str, Any] | None:
    if run_id is None:
        return None
    sql.execute(cur, "console/run_config.sql",
                params={"model_name": cfg.model_name, "run_id": run_id},
                schema=cfg.storage.schema_)
    row = cur.fetchone()
    return row[0] if row else None


def overlap(cur, cfg: PipelineConfig, a: str, b: str, users: int, top_n: int
            ) -> dict[str, Any]:
    """The share of items the two versions' top-``top_n`` lists share, over a fixed sample of
    at most ``users`` users embedded in both (the same users every time for the pair).  Each
    version's lists come from one statement, as the evaluation retrieves them (an HNSW scan
    per user, ``evaluation/top_items_of_users.sql``)."""
    schema, hnsw = cfg.storage.schema_, cfg.retrieval.hnsw
    sql.execute(cur, "console/common_users.sql",
                params={"version_a": a, "version_b": b, "users": users}, schema=schema)
    sample = [u for (u,) in cur.fetchall()]
    sql.execute(cur, "recall/retrieval_settings.sql", params={
        "ef_search": max(hnsw.ef_search, top_n), "iterative_scan": "off",
        "max_scan_tuples": hnsw.max_scan_tuples})
    lists: dict[str, dict[str, list[str]]] = {}
    for version in (a, b):
        sql.execute(cur, "evaluation/top_items_of_users.sql",
                    params={"model_version": version, "user_ids": sample, "top_n": top_n},
                    schema=schema, user_table="user_embeddings", item_table="item_embeddings",
                    created_range=False)
        lists[version] = {}
        for user, item in cur.fetchall():
            lists[version].setdefault(user, []).append(item)
    per_user = []
    for user in sample:
        la, lb = lists[a].get(user, []), lists[b].get(user, [])
        per_user.append({"user_id": user, "shared": len(set(la) & set(lb)), "a": la, "b": lb})
    mean = (sum(u["shared"] for u in per_user) / (len(per_user) * top_n)) if per_user else None
    return {"users": len(per_user), "top_n": top_n, "mean_overlap": mean,
            "per_user": per_user}


def default_pair(cur, cfg: PipelineConfig) -> tuple[str, str]:
    """What to compare when nothing is asked: the version before the active one (a) and the
    active one (b); the two newest ones when none is active."""
    usable = [v for v in version_list(cur, cfg) if v["state"] != "retired"]
    active = next((v for v in usable if v["state"] == "active"), None)
    b = active or (usable[0] if usable else None)
    older = [v for v in usable if b and v["bizdate"] < b["bizdate"]] or [
        v for v in usable if v is not b]
    if b is None or not older:
        raise not_found("comparing needs two published versions that are not retired; "
                        "run the daily DAG for another bizdate")
    return older[0]["model_version"], b["model_version"]


def compare(cur, cfg: PipelineConfig, a: str, b: str, users: int = 50,
            top_n: int | None = None) -> dict[str, Any]:
    """Versions ``a`` and ``b`` side by side (differences are ``b - a``)."""
    rows = {}
    for name in (a, b):
        found = version_list(cur, cfg, name)
        if not found:
            raise not_found(f"version {name} of model {cfg.model_name} was never published; "
                            "choose two of the versions page")
        rows[name] = found[0]
    va, vb = rows[a], rows[b]
    ma, mb = ((registry.version_metrics(cur, cfg, v) or {}).get("splits") or {} for v in (va, vb))
    splits = []
    for split in sorted(set(ma) | set(mb)):
        fa, fb = ma.get(split) or {}, mb.get(split) or {}
        for k in cfg.evaluation.k:
            metric = f"recall@{k}"
            splits.append({
                "split": split, "metric": metric,
                "a": fa.get(metric), "a_ci": fa.get(f"{metric}_ci"), "a_users": fa.get("users"),
                "b": fb.get(metric), "b_ci": fb.get(f"{metric}_ci"), "b_users": fb.get("users"),
                "difference": unpaired_difference(fa.get(metric), fa.get(f"{metric}_ci"),
                                                  fb.get(metric), fb.get(f"{metric}_ci"))})
    newer, older, sign = (vb, va, 1) if vb["bizdate"] >= va["bizdate"] else (va, vb, -1)
    top_n = top_n or cfg.retrieval.top_n
    retired = [v["model_version"] for v in (va, vb) if v["state"] == "retired"]
    return {
        "a": va, "b": vb,
        "metrics": splits,
        "paired": _paired(newer, older, sign),
        "config": config_differences(_run_config(cur, cfg, va["run_id"]),
                                     _run_config(cur, cfg, vb["run_id"])),
        "config_hashes": [va["config_hash"], vb["config_hash"]],
        "overlap": (overlap(cur, cfg, a, b, users, top_n) if not retired else
                    {"error": f"version {', '.join(retired)} is retired: its embeddings are "
                              "gone, so no top-N can be compared"}),
    }
