"""How much of the synthetic oracle's cold-item recall any model can reach, from each side.

    .venv/bin/python bench/synthetic_ceiling.py [--k 20,50]

``bench/quality.py`` reports the model's cold-item recall@K as a share of the oracle's (the
generator's own ``taste . latent + quality``).  This script asks where the gap can come from,
on the same generated world (``quality.SYNTHETIC``, seed 42), in memory, without Postgres or a
model:

* **the item side**: a new item's latent estimated from its content (level-1 and level-2
  category, tags, author, title and tag embeddings) by a ridge fitted on the items published
  before the candidate window, and its quality from ``grade_score`` (a content column the
  generator makes it from), scored with the *true* tastes;
* **the user side**: each user's taste estimated from the behaviour before the day, by the
  generator's own click model: a logistic regression of the user's clicks on the latents of
  the items shown to them, offset ``CLICK_BIAS + quality``, with a Gaussian prior (MAP; the
  prior's scale is the tastes' own per-dimension scale, ``TASTE_SCALE / sqrt(ORACLE_DIM)``),
  scored against the content-estimated item latents; and, for comparison, the direction of
  the mean latent of the items the user clicked.

The split approximates the pipeline's cold-item split of the last day: users who registered
before that day and clicked one of its new items, ranking that day's new items.  The ratio
that a model's users cannot beat without more behaviour is the user side's.  Prints one JSON
object.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json

import numpy as np
from common import SYNTHETIC  # first: the repository on the path
from scipy.optimize import minimize

from dropoutnet.config import FeatureSpec  # noqa: E402
from dropoutnet.data import synthetic  # noqa: E402
from dropoutnet.model.closed_form import ridge_predict  # noqa: E402
from dropoutnet.model.content import ContentEncoder  # noqa: E402

DAY = 86400
# the generated items' content columns, encoded as the benchmarks' baselines encode theirs
CONTENT = [FeatureSpec(name=n, group="item_content", kind=k, source=f"items.{n}", **extra)
           for n, k, extra in (("category_level1", "categorical", {}),
                               ("category_level2", "categorical", {}),
                               ("tags", "tags", {"separator": ","}),
                               ("author_id", "categorical", {}),
                               ("title_emb", "vector", {"dim": synthetic.TEXT_DIM}),
                               ("tag_emb", "vector", {"dim": synthetic.TEXT_DIM}))]


def map_taste(latents: np.ndarray, offsets: np.ndarray, clicks: np.ndarray,
              prior_sd: float) -> np.ndarray:
    """The MAP taste of one user under the click model ``sigmoid(taste . latent + offset)``."""
    def loss(t):
        z = latents @ t + offsets
        p = 1.0 / (1.0 + np.exp(-z))
        return (np.sum(np.logaddexp(0.0, z) - clicks * z) + 0.5 * t @ t / prior_sd ** 2,
                latents.T @ (p - clicks) + t / prior_sd ** 2)
    return minimize(loss, np.zeros(latents.shape[1]), jac=True, method="L-BFGS-B").x


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--k", default="20,50", help="recall cut-offs, comma-separated")
    args = parser.parse_args()
    ks = [int(k) for k in args.k.split(",")]

    world = synthetic._World(end_date=dt.date(2026, 12, 1), seed=42, **SYNTHETIC)
    events = world.events()
    items, day = world.items, world.item_day
    last = world.days - 1
    start = last * DAY
    columns = {"category_level1": items["category_level1"],
               "category_level2": items["category_level2"],
               "tags": [t.strip("{}") for t in items["tags"]], "author_id": items["author_id"],
               "title_emb": world.title_emb, "tag_emb": world.tag_emb}
    content = ContentEncoder(CONTENT).fit(columns).transform(columns)
    older = np.flatnonzero(day < last - 2)  # published before the 3-day candidate window
    latent_hat = ridge_predict(content, world.item_latent, older, np.arange(len(day)), reg=1.0)
    quality = world.item_quality  # linear in grade_score, a content column
    candidates = np.flatnonzero(day == last)

    user, item, kind, time = events["user"], events["item"], events["type"], events["time"]
    today = (kind == 1) & (time >= start) & (day[item] == last) & (world.user_rt[user] < start)
    relevant: dict[int, set[int]] = {}
    for u, i in zip(user[today].tolist(), item[today].tolist()):
        relevant.setdefault(u, set()).add(i)
    users = np.array(sorted(relevant))

    def recall(taste: np.ndarray, latent: np.ndarray, k: int) -> float:
        scores = taste[users] @ latent[candidates].T + quality[candidates]
        top = candidates[np.argsort(-scores, axis=1)[:, :k]]
        return float(np.mean([len(relevant[u] & set(t.tolist())) / len(relevant[u])
                              for u, t in zip(users.tolist(), top)]))

    before = time < start
    shown, clicked = before & (kind == 0), before & (kind == 1)
    n_users = len(world.user_ids)
    mean_clicked = np.zeros((n_users, synthetic.ORACLE_DIM))
    np.add.at(mean_clicked, user[clicked], latent_hat[item[clicked]])
    mean_clicked *= synthetic.TASTE_SCALE / np.maximum(
        np.linalg.norm(mean_clicked, axis=1, keepdims=True), 1e-12)
    clicked_pairs = set(zip(user[clicked].tolist(), item[clicked].tolist()))
    shown_user, shown_item = user[shown], item[shown]
    order = np.argsort(shown_user, kind="stable")
    shown_user, shown_item = shown_user[order], shown_item[order]
    prior_sd = synthetic.TASTE_SCALE / np.sqrt(synthetic.ORACLE_DIM)
    map_tastes = np.zeros((n_users, synthetic.ORACLE_DIM))
    for u in users.tolist():
        lo, hi = np.searchsorted(shown_user, [u, u + 1])
        seen = shown_item[lo:hi]
        if len(seen):
            labels = np.array([(u, int(i)) in clicked_pairs for i in seen], dtype=float)
            map_tastes[u] = map_taste(world.item_latent[seen],
                                      synthetic.CLICK_BIAS + quality[seen], labels, prior_sd)

    clicks_before = np.bincount(user[clicked], minlength=n_users)[users]
    out = {"sizes": SYNTHETIC, "users": int(len(users)), "candidates": int(len(candidates)),
           "clicks_before_per_user_median": float(np.median(clicks_before)),
           "item_latent_mse": round(float(np.mean(np.sum(
               (latent_hat[candidates] - world.item_latent[candidates]) ** 2, axis=1))), 4)}
    for k in ks:
        oracle = recall(world.user_taste, world.item_latent, k)
        rows = {"oracle": oracle,
                "item side from content, true tastes": recall(world.user_taste, latent_hat, k),
                "and tastes by MAP from behaviour": recall(map_tastes, latent_hat, k),
                "and tastes as the clicked items' mean": recall(mean_clicked, latent_hat, k)}
        out[f"recall@{k}"] = {name: {"recall": round(v, 4), "of_oracle": round(v / oracle, 3)}
                              for name, v in rows.items()}
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
