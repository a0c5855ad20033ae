"""Cold-start quality of our model against baselines on three datasets, in one run.

    .venv/bin/python bench/quality.py [--out bench/results] [--skip citeulike] [--keep] [--quick]
                                      [--seeds 3]

* synthetic: the demo's generator and config, sized so that every eval split of the reported
  bizdate has several hundred users with a click (``SYNTHETIC``), the daily pipeline for two
  bizdates (the second warm starts); recall@K of real pgvector retrieval on the three eval
  splits (cold items, warm items, cold users), with every baseline of the evaluation and the
  planted-preference oracle;
* movielens-100k: the time-based item-cold split (``dropoutnet.benchmarks.movielens``);
* citeulike-a: the DropoutNet paper's cold split (``dropoutnet.benchmarks.citeulike``).

Every model is trained with ``--seeds`` seeds (the synthetic pipeline runs once per seed) and
reported as their mean, with its spread and bootstrap interval; the models use the configs'
settings (the schema's defaults unless a config says otherwise): no setting is chosen here.

Prints one JSON object with every figure and writes it to ``OUT/quality.json`` with a chart of
the recall@K curves (model, strongest baseline per K, oracle, with intervals) to
``OUT/quality.png``.  Runs in a temporary
``DROPOUTNET_HOME`` with its own embedded Postgres, so it never touches your pipeline's data.
Datasets are read from ``../shared/datasets`` (``--datasets DIR``); they are never copied.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import time
from pathlib import Path

from common import REPO, SYNTHETIC, new_home, remove_home  # first: the repository on the path

SYNTHETIC_QUICK = dict(SYNTHETIC, n_users=600, n_items=800, n_authors=80, new_items_per_day=60,
                       days=16)
SYNTHETIC_CONFIG = {"evaluation": {"warm_holdout_share": 0.5}}  # over config/pipeline.yaml


def synthetic_config(path: Path) -> Path:
    """The demo config with ``SYNTHETIC_CONFIG`` laid over it, written to ``path``."""
    import yaml

    from dropoutnet import pipeline

    data = pipeline.load(None).model_dump(by_alias=True, exclude_none=True)
    for section, values in SYNTHETIC_CONFIG.items():
        data[section].update(values)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    pipeline.load(str(path))  # validate now rather than in the first task
    return path


def synthetic(quick: bool, work: Path, seeds: int) -> dict:
    """The daily pipeline for two bizdates (the second warm-starts), once per training seed;
    the last bizdate's figures, the model's as the mean and spread over the seeds."""
    import yaml

    from dropoutnet import pipeline
    from dropoutnet.data import synthetic
    from dropoutnet.local import embedded_pg
    from dropoutnet.registry import read_metrics

    url = embedded_pg.ensure_database_url()
    end = dt.datetime.now(dt.timezone.utc).date() - dt.timedelta(days=1)
    sizes = SYNTHETIC_QUICK if quick else SYNTHETIC
    base = synthetic_config(work / "synthetic.yaml")
    started = time.monotonic()
    synthetic.generate(url, end_date=end, seed=42, **sizes)
    days = [end - dt.timedelta(days=1), end]
    out = {"sizes": sizes, "config_overrides": SYNTHETIC_CONFIG, "bizdates": {}, "per_seed": []}
    for i in range(seeds):
        data = yaml.safe_load(base.read_text())
        data["training"]["seed"] += i
        config = work / f"synthetic-seed{i}.yaml"
        config.write_text(yaml.safe_dump(data, sort_keys=False))
        cfg = pipeline.load(str(config))
        for day in days:
            pipeline.run(day.isoformat(), str(config), force_publish=True)
        out["per_seed"].append(read_metrics(cfg, days[-1]))
        if i == 0:
            out["bizdates"][days[0].isoformat()] = read_metrics(cfg, days[0])
    last = _mean_over_seeds(out["per_seed"])
    out["bizdates"][days[-1].isoformat()] = last
    out["ratio_to_oracle"] = {}
    for split, figures in last["splits"].items():
        oracle = figures["baselines"].get("oracle", {})
        out["ratio_to_oracle"][split] = {
            k: round(figures[k] / oracle[k], 4) for k in oracle
            if k.startswith("recall@") and k[7:].isdigit() and oracle[k]
            and figures.get(k) is not None}
    out["seconds"] = round(time.monotonic() - started, 1)
    return out


def _mean_over_seeds(runs: list[dict]) -> dict:
    """One bizdate's metrics over training seeds: the model's recall@K as the mean, with
    ``recall@K_std``, ``recall@K_per_seed`` and ``recall@K_range`` (lowest and highest seed's
    interval bounds); the baselines are the first run's (they do not depend on the seed)."""
    import numpy as np

    merged = json.loads(json.dumps(runs[0]))
    for split, figures in merged["splits"].items():
        figures["seeds"] = len(runs)
        for key in [k for k in figures if k.startswith(("recall@", "ndcg@")) and
                    k.split("@")[1].isdigit()]:
            values = [r["splits"][split][key] for r in runs]
            if any(v is None for v in values):
                continue
            figures[key] = round(float(np.mean(values)), 4)
            if key.startswith("recall@"):
                figures[f"{key}_std"] = round(float(np.std(values)), 4)
                figures[f"{key}_per_seed"] = [round(v, 4) for v in values]
                cis = [r["splits"][split].get(f"{key}_ci") for r in runs]
                if all(cis):
                    figures[f"{key}_ci"] = [min(c[0] for c in cis), max(c[1] for c in cis)]
        aucs = [r["splits"][split].get("auc") for r in runs]
        if all(a is not None for a in aucs):
            figures["auc"] = round(float(np.mean(aucs)), 4)
    return merged


def movielens(datasets: Path, seeds: int) -> dict:
    from dropoutnet.benchmarks import movielens as bench
    from dropoutnet.local import embedded_pg

    return bench.run(datasets / "ml-100k", embedded_pg.ensure_database_url(), seeds=seeds)


def citeulike(datasets: Path, seeds: int) -> dict:
    from dropoutnet.benchmarks import citeulike as bench

    return bench.run_benchmark(datasets / "citeulike-a", datasets / "citeulike-a-dropoutnet-split",
                               seeds=seeds)


def _panels(result: dict) -> dict[str, dict]:
    """Per chart panel: ``model``, ``baselines`` and ``strongest`` (per K, a baseline's name)
    figures, and ``oracle`` when there is one."""
    panels: dict[str, dict] = {}
    if "synthetic" in result:
        last = list(result["synthetic"]["bizdates"].values())[-1]
        order = ("cold_items", "cold_both", "cold_users", "warm_items")  # jsonb sorts keys
        for split, figures in sorted(last["splits"].items(),
                                     key=lambda kv: order.index(kv[0]) if kv[0] in order else 9):
            baselines = dict(figures["baselines"])
            oracle = baselines.pop("oracle", None)
            title = f"synthetic: {split.replace('_', ' ')} ({figures.get('users')} users)"
            panels[title] = {"model": figures, "baselines": baselines, "oracle": oracle,
                             "strongest": figures.get("strongest_baseline", {})}
    if "movielens-100k" in result:
        r = result["movielens-100k"]
        panels[f"MovieLens 100K: time-cold items ({r.get('test_users')} users)"] = {
            "model": r["model"], "baselines": r["baselines"],
            "strongest": r.get("strongest_baseline", {})}
    if "citeulike-a" in result:
        r = result["citeulike-a"]
        blocks = [r] + [v for v in r.values() if isinstance(v, dict) and "model" in v
                        and "baselines" in v]
        for block in blocks:
            panels[f"CiteULike-a cold split: {block['content']}"] = {
                "model": block["model"], "baselines": block["baselines"],
                "strongest": block.get("strongest_baseline", {})}
    return panels


def _points(figures: dict | None) -> dict[int, tuple[float, float | None, float | None]]:
    """``{K: (recall, low, high)}`` of one method's figures (no interval: ``None``)."""
    out = {}
    for key, value in (figures or {}).items():
        if key.startswith("recall@") and key[7:].isdigit() and isinstance(value, (int, float)):
            ci = figures.get(f"{key}_ci") or (None, None)
            out[int(key[7:])] = (float(value), ci[0], ci[1])
    return out


def chart(result: dict, path: Path) -> None:
    """recall@K per dataset: the model (mean of its seeds, band: the bootstrap interval), the
    strongest baseline at each K (band: its interval; its name at each point), the other
    baselines thin, the oracle dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = _panels(result)
    n = max(len(panels), 1)
    cols = min(n, 3)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5.4 * cols, 4.4 * rows), squeeze=False)
    axes = list(axes.flat)
    for ax in axes[len(panels):]:
        ax.set_visible(False)
    for ax, (title, panel) in zip(axes, panels.items()):
        for name, figures in panel["baselines"].items():
            pts = _points(figures)
            ks = sorted(pts)
            style = dict(ls=":", color="0.55") if name == "random" else dict(lw=0.8, color="0.75")
            ax.plot(ks, [pts[k][0] for k in ks], label=name if name == "random" else None,
                    **style)
        best = {k: (name, _points(panel["baselines"].get(name)).get(k))
                for k, name in ((int(key[7:]), v) for key, v in panel["strongest"].items())
                if name}
        ks = sorted(k for k in best if best[k][1])
        if ks:
            values = [best[k][1] for k in ks]
            ax.plot(ks, [v[0] for v in values], marker="s", color="C0", lw=1.8,
                    label="strongest baseline")
            if all(v[1] is not None for v in values):
                ax.fill_between(ks, [v[1] for v in values], [v[2] for v in values],
                                color="C0", alpha=0.15)
            for k in ks:
                ax.annotate(best[k][0], (k, best[k][1][0]), fontsize=6, color="C0",
                            xytext=(3, -9), textcoords="offset points")
        if panel.get("oracle"):
            pts = _points(panel["oracle"])
            ax.plot(sorted(pts), [pts[k][0] for k in sorted(pts)], ls="--", color="k",
                    label="oracle")
        pts = _points(panel["model"])
        ks = sorted(pts)
        seeds = panel["model"].get("seeds")
        ax.plot(ks, [pts[k][0] for k in ks], marker="o", lw=2.6, color="C3",
                label=f"model (mean of {seeds} seeds)" if seeds else "model")
        if ks and all(pts[k][1] is not None for k in ks):
            ax.fill_between(ks, [pts[k][1] for k in ks], [pts[k][2] for k in ks], color="C3",
                            alpha=0.2)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("K")
        ax.set_ylabel("recall@K")
        ax.set_ylim(0, 1)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    parser.add_argument("--datasets", type=Path, default=REPO.parent / "shared" / "datasets")
    parser.add_argument("--skip", action="append", default=[],
                        choices=["synthetic", "movielens", "citeulike"])
    parser.add_argument("--quick", action="store_true", help="smaller synthetic data")
    parser.add_argument("--seeds", type=int, default=3,
                        help="training seeds of each model (its figures are their mean)")
    parser.add_argument("--keep", action="store_true",
                        help="keep the skipped datasets' figures from OUT/quality.json (each "
                             "section keeps the date of the run that made it)")
    args = parser.parse_args()
    sections = {"synthetic": "synthetic", "movielens": "movielens-100k",
                "citeulike": "citeulike-a"}
    kept: dict = {}
    if args.keep and (args.out / "quality.json").exists():
        previous = json.loads((args.out / "quality.json").read_text())
        for name in args.skip:
            if sections[name] in previous:
                kept[sections[name]] = {"run_date": previous.get("date"),
                                        **previous[sections[name]]}

    home = new_home("dropoutnet-quality-")
    os.environ.setdefault("KERAS_HOME", str(home / "keras"))
    os.environ.pop("DROPOUTNET_CONFIG", None)
    started = time.monotonic()
    result: dict = {"date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}
    try:
        if "synthetic" not in args.skip:
            result["synthetic"] = synthetic(args.quick, home, args.seeds)
        if "movielens" not in args.skip:
            result["movielens-100k"] = movielens(args.datasets, args.seeds)
        if "citeulike" not in args.skip:
            result["citeulike-a"] = citeulike(args.datasets, args.seeds)
    finally:
        remove_home(home)
    result["seconds"] = round(time.monotonic() - started, 1)
    for key, section in kept.items():
        result.setdefault(key, section)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "quality.json").write_text(json.dumps(result, indent=1, default=str))
    chart(result, args.out / "quality.png")
    print(json.dumps(result, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
