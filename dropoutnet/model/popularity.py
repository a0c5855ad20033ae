"""The item tower's popularity prior: a new item's expected positives from its content.

Recall ranks a new item for a user by how likely the user is to engage with it at all, and that is
two things: how likely a user who meets the item is to click it, and how many users the item will
meet.  The click losses learn the first from the samples (impressions, sampled negatives); the
second is not in them (a sample is a row that was shown or drawn, whatever the item's reach), and
content says a lot about it: a genre, an author, a new release against an old film appearing late.
On MovieLens a ridge from content to log1p of the training positives (the content → popularity
baseline, :func:`dropoutnet.model.closed_form.popularity_regression`) ranks the new movies far
better than the model's learned prior, and putting it inside the click losses does not help: as an
offset of the logit, the learned prior and the towers learn to cancel it (recall@20 on the
held-out-arrival folds fell from 0.59 to 0.45 at weight 1 and 0.42 at weight 10), since the click
labels do not reward reach.

So with ``model.popularity_prior`` (a weight ``w``) the ridge is fitted first, in closed form,
on each training day's samples, kept out of the losses, and added to the *ranking score*:

    score = scale * <u, v> + prior + bias + w * expected_popularity(content)

i.e. the click model's log-odds plus ``w`` times the log of the item's expected reach: the
ranking of ``P(click | met) * reach ** w``.  The weights live in the item tower
(:attr:`~dropoutnet.model.towers.Tower.popularity`), so the exported item vector's prior
dimension carries it: the exported towers, the model service and the stream worker compute the
same score, still one inner product.  The model's ``logit`` and ``probability`` stay the click
model's.

**The fit, per training day.**  One example per item of the training samples:

* its content, read from its *first* sample row (as new as the item is in the window; age
  features are left out: a new item's age is always 0; ``model.popularity_features`` narrows
  it to the named features, :attr:`Tower.popularity_specs`);
* its positives (rows with label 1) and its exposure: the days from its first sample day to the
  last one.  An item that was there longer has more clicks for it, so the fit also gets the
  exposure's quantile bins and keeps only the content weights: the prediction is at equal
  exposure, as the baseline's.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from dropoutnet.model.closed_form import RIDGE_REG, popularity_regression
from dropoutnet.model.towers import Tower, design_matrix

__all__ = ["fit_popularity"]



def fit_popularity(tower: Tower, features: Mapping[str, np.ndarray], positives: np.ndarray,
                   exposure_days: np.ndarray | None = None) -> dict[str, float | int]:
    """Fit the item tower's popularity prior on one row of ``features`` per item, their
    ``positives`` and (optionally) their exposure; return stats: ``items``,
    ``positive_items`` and ``correlation`` (of the prediction with log1p of the positives on
    these items: a sanity figure, not a validation one)."""
    if tower.popularity is None:
        raise ValueError("the item tower has no popularity prior: set model.popularity_prior "
                         "above 0")
    positives = np.asarray(positives, dtype=np.float64)
    if not len(positives):
        return {"items": 0, "positive_items": 0, "correlation": 0.0}
    design = design_matrix(tower, features, tower.popularity_specs)
    ridge = popularity_regression(design, positives, exposure_days, reg=RIDGE_REG)
    tower.popularity.assign(ridge.weights[:, 0].astype(np.float32))
    predicted, target = ridge.predict(design)[:, 0], np.log1p(positives)
    correlation = (float(np.corrcoef(predicted, target)[0, 1])
                   if predicted.std() * target.std() > 0 else 0.0)
    return {"items": int(len(positives)), "positive_items": int(np.sum(positives > 0)),
            "correlation": round(correlation, 4)}
