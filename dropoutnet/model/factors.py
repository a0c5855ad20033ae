"""The factor prior: the preference model's own cold-start guess, added to the score.

Where the data comes with a preference model's factors (precomputed CF factors of users and
items, named by ``model.losses.distill_features``), the strongest simple ranker of new items
is the attribute-to-factor mapping (Gantner et al. 2010; the ``ridge_to_factors`` baseline): a
ridge from an item's content to its factors, the prediction's direction scored by the user's
factors.  The towers learn from the same content and factors, but they and the ridge make
different errors: on CiteULike's validation split (a fifth of the training items held out as
new, tags + citations, one seed) the model alone reached recall@20/50/100 0.433/0.574/0.662,
the ridge alone 0.445/0.580/0.661, and their sum, each in standard deviations, 0.456/0.594/0.680
(within 0.005 of that for relative weights from 0.5 to 2).

So with ``model.factor_prior`` (a weight ``w``), fitted in closed form after the warm start
and kept out of the click losses, the score becomes

    score = logit + popularity + c * <U_u, d_i>

* ``U_u``: the user's factors (zeros for a user without them: the term vanishes);
* ``d_i``: the unit direction of the item's own factors when it has them, else of the ridge's
  prediction from its content (a new item), or of ``model.factor_prior_feature`` when the data
  brings its own guess of a new item's factors (a content model better than a ridge on the
  tower's design: on CiteULike, the tf-idf → factors ridge, which the model's 300-d SVD input
  cannot reproduce; validation recall@20 0.448 → 0.455, 2 seeds);
* ``c = w / s``, with ``s`` the standard deviation of ``<U_u, d_i>`` over random pairs of a
  training user and a training item's *predicted* direction (as a new item's): ``w`` is in
  standard deviations of the factor score, whatever the scale of the given factors.

Still one inner product: the exported user vector ends in ``c * U_u`` and the item vector in
``d_i`` (the item tower's :meth:`~dropoutnet.model.towers.Tower.factors`), so the stored
vectors, the model service and the stream worker compute the same score.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from dropoutnet.model.closed_form import RIDGE_REG, factor_regression, unit_rows
from dropoutnet.model.towers import design_matrix

__all__ = ["fit_factors"]

# random user x item pairs that measure the factor score's spread
SCALE_PAIRS = 100_000


def _clean(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return np.where(np.isnan(x), 0.0, x)


def fit_factors(model, item_features: Mapping[str, np.ndarray], user_factors: np.ndarray,
                seed: int = 0) -> dict[str, float | int]:
    """Fit ``model``'s factor prior on one row of ``item_features`` per item (content and the
    item factors) and the training users' factors (rows; users without factors are skipped);
    return stats: ``items``, ``items_with_factors``, ``users_with_factors``, ``score_std``
    (``s``), ``scale`` (``c``) and ``cosine`` (mean cosine of the prediction with the item's own
    factors, on the fitted items: a sanity figure, not a validation one)."""
    tower = model.item_tower
    if model.factor_scale is None:
        raise ValueError("the model has no factor prior: set model.factor_prior above 0")
    own = _clean(item_features[tower.factor_feature])
    present = np.abs(own).sum(axis=1) > 0
    users = _clean(user_factors)
    users = users[np.abs(users).sum(axis=1) > 0]
    stats = {"items": int(len(own)), "items_with_factors": int(present.sum()),
             "users_with_factors": int(len(users)), "score_std": 0.0, "scale": 0.0,
             "cosine": 0.0}
    if not present.any() or not len(users):
        model.factor_scale.assign(0.0)  # nothing to learn from: the term is off today
        return stats
    if tower.factor_guess:  # the given guess, no ridge
        predicted = unit_rows(_clean(item_features[tower.factor_guess]))
    else:
        design = design_matrix(tower, item_features)
        ridge = factor_regression(design, own, reg=RIDGE_REG)
        tower.factor_map.assign(ridge.weights.astype(np.float32))
        predicted = unit_rows(ridge.predict(design))
    rng = np.random.default_rng(seed)
    pairs = min(SCALE_PAIRS, len(users) * len(predicted))
    scores = np.sum(users[rng.integers(0, len(users), pairs)]
                    * predicted[rng.integers(0, len(predicted), pairs)], axis=1)
    std = float(scores.std())
    scale = float(model.model_config.factor_prior) / std if std > 0 else 0.0
    model.factor_scale.assign(scale)
    cosine = np.sum(predicted[present] * unit_rows(own[present]), axis=1).mean()
    return stats | {"score_std": round(std, 6), "scale": round(scale, 6),
                    "cosine": round(float(cosine), 4)}
