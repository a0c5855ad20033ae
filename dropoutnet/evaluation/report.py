"""A bizdate's stored metrics as a user reads them: per split, the model beside every baseline
on the same users and candidates, with intervals (``dropoutnet metrics --bizdate D``)."""

from __future__ import annotations

from typing import Any

SPLIT_TITLES = {"cold_items": "cold items (new on the bizdate; returning users)",
                "warm_items": "warm items (held-out returning users)",
                "cold_users": "cold users (no event before the bizdate)",
                "cold_both": "cold items and cold users (new items, new users)"}


def format_metrics(m: dict[str, Any]) -> str:
    """The stored metrics of a bizdate as small tables: per split, the model beside every
    baseline on the same users and candidates, each recall with its 95 % bootstrap interval
    over the users, and the strongest baseline per K."""

    def f(v: Any) -> str:
        return "   n/a" if v is None else f"{v:6.4f}"

    def recall(figures: dict[str, Any], k: int) -> str:
        ci = figures.get(f"recall@{k}_ci")
        text = f(figures.get(f"recall@{k}"))
        return text + (f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else "")

    lines = [f"bizdate {m['bizdate']}  model version {m['model_version']}",
             f"  training samples: {m.get('train_samples')} ({m.get('train_positives')} positive)"]
    for split, s in m.get("splits", {}).items():
        ks = sorted(int(k.split("@")[1]) for k in s
                    if k.startswith("recall@") and not k.endswith("_ci"))
        auc = s.get("auc")
        lines += [
            f"  {SPLIT_TITLES.get(split, split)}: {s.get('samples')} samples "
            f"({s.get('positives')} positive), {s.get('users')} users with a click, "
            f"{s.get('candidates')} candidates, AUC {f(auc).strip()}",
            "    " + f"{'':<18}" + "".join(f"  {'recall@' + str(k) + ' [95% CI]':<22}" for k in ks)
            + "".join(f"  NDCG@{k:<6}" for k in ks),
        ]
        for name, figures in [("model", s)] + list(s.get("baselines", {}).items()):
            lines.append("    " + f"{name:<18}"
                         + "".join(f"  {recall(figures, k):<22}" for k in ks)
                         + "".join(f"  {f(figures.get(f'ndcg@{k}')):>11}" for k in ks))
        strongest = s.get("strongest_baseline")
        if strongest:
            lines.append("    strongest baseline: " + ", ".join(
                f"{key} {name or 'n/a'}" for key, name in strongest.items()))
    gate = m.get("gate") or {}
    if gate.get("active") is not None:
        lines.append(f"  gate: cold-item {gate['metric']} {f(gate.get('new'))} vs active version "
                     f"{gate['active_version']} {f(gate.get('active'))} (same users and items)")
    train = m.get("train")
    if train:
        lines.append(f"  training: {train.get('rows')} rows, {train.get('steps')} steps, loss "
                     f"{train.get('loss')}, warm start: {train.get('warm_started')}")
    return "\n".join(lines)
