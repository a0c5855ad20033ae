"""Closed-form fits in numpy / scipy: what the model's priors fit before training, and what
the evaluation's baselines rank with.

* :func:`implicit_als`: weighted matrix factorisation of implicit feedback (Hu, Koren &
  Volinsky 2008) by alternating conjugate-gradient steps; an entity without a pair stays at an
  all-zero row, i.e. "no preference" (cold);
* :class:`Ridge`: ridge regression from a (sparse) feature matrix to one or more targets,
  solved by conjugate gradients without forming ``XᵀX`` -- the map from an item's content to
  its factors or to its popularity;
* :func:`unit_rows`: rows scaled to unit length (a predicted factor's direction);
* :func:`popularity_regression`: content → log1p of an item's positives at equal exposure
  (the popularity prior, and the content → popularity baseline);
* :func:`als_factors`, :func:`factor_regression`, :func:`factor_directions`: implicit-ALS
  factors and the ridge from content to them (the factor prior, and the ridge → factors
  baseline).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Hashable, Sequence

import numpy as np
import scipy.sparse as sp

__all__ = ["ALS_RANK", "Factors", "RIDGE_REG", "Ridge", "als_factors", "binned",
           "conjugate_gradient", "factor_directions", "factor_regression", "implicit_als",
           "popularity_regression", "quantile_edges", "ridge_predict", "unit_rows"]

# implicit ALS of the ridge → factors baseline: rank, regularisation, confidence weight of a
# positive, alternations (the settings are the baseline's, fixed, not tuned on the test)
ALS_RANK, ALS_REG, ALS_ALPHA, ALS_ITERATIONS = 32, 1.0, 20.0, 12
# quantile bins of an item's exposure in the content → popularity fit
EXPOSURE_BINS = 10
# the regularisation of the content regressions the model's priors fit (the baselines' too)
RIDGE_REG = 1.0


# --- quantile bins -----------------------------------------------------------------------------


def quantile_edges(values: np.ndarray, num_bins: int) -> np.ndarray:
    """The distinct inner quantile edges that cut the finite ``values`` into ``num_bins``."""
    finite = np.asarray(values, dtype=np.float64)
    finite = finite[np.isfinite(finite)]
    if not finite.size:
        return np.zeros(0)
    return np.unique(np.quantile(finite, np.arange(1, num_bins) / num_bins))


def binned(values: np.ndarray, edges: np.ndarray) -> sp.csr_matrix:
    """``[n, len(edges) + 2]``: one-hot of each value's bin, the last column for missing."""
    values = np.asarray(values, dtype=np.float64)
    missing = ~np.isfinite(values)
    cols = np.where(missing, len(edges) + 1,
                    np.searchsorted(edges, np.nan_to_num(values), side="right"))
    return sp.csr_matrix((np.ones(len(values)), (np.arange(len(values)), cols)),
                         shape=(len(values), len(edges) + 2))


# --- conjugate gradients ----------------------------------------------------------------------


def conjugate_gradient(apply, b: np.ndarray, x: np.ndarray, steps: int,
                       tol: float = 1e-20) -> np.ndarray:
    """``steps`` conjugate-gradient steps on many symmetric positive-definite systems at once.

    Row ``i`` of ``x`` (``[systems, size]``) is one system's unknown and row ``i`` of ``b`` its
    right-hand side; ``apply`` maps a ``[systems, size]`` array to each row's matrix product.
    """
    x = np.array(x, dtype=np.float64)
    res = b - apply(x)
    p = res.copy()
    rs_old = np.einsum("ij,ij->i", res, res)
    for _ in range(steps):
        ap = apply(p)
        denom = np.einsum("ij,ij->i", p, ap)
        a = np.divide(rs_old, denom, out=np.zeros_like(rs_old), where=denom > tol)
        x += a[:, None] * p
        res -= a[:, None] * ap
        rs_new = np.einsum("ij,ij->i", res, res)
        beta = np.divide(rs_new, rs_old, out=np.zeros_like(rs_new), where=rs_old > tol)
        p = res + beta[:, None] * p
        rs_old = rs_new
    return x


# --- implicit ALS ----------------------------------------------------------------------------


def _cg_solve(r: sp.csr_matrix, y: np.ndarray, x: np.ndarray, reg: float, alpha: float,
              steps: int) -> np.ndarray:
    """A few conjugate-gradient steps on every row's WMF normal equations at once.

    Row u solves ``(YᵀY + Yᵀ(C_u − I)Y + reg·I) x_u = Yᵀ C_u p_u`` with ``C_u = 1 + alpha·r_u``
    and ``p_u`` = 1 on the row's pairs (Hu, Koren & Volinsky 2008; CG as in Takács et al.).
    """
    rows = np.repeat(np.arange(r.shape[0]), np.diff(r.indptr))
    cols = r.indices
    extra = alpha * r.data  # C - 1 on the observed entries
    gram = y.T @ y + reg * np.eye(y.shape[1])

    def apply(v: np.ndarray) -> np.ndarray:
        d = np.einsum("ij,ij->i", v[rows], y[cols]) * extra
        return v @ gram + sp.csr_matrix((d, (rows, cols)), shape=r.shape) @ y

    b = sp.csr_matrix((1.0 + extra, (rows, cols)), shape=r.shape) @ y
    return conjugate_gradient(apply, np.asarray(b), x, steps)


def implicit_als(pairs: np.ndarray, n_users: int, n_items: int, rank: int = 200,
                 reg: float = 1.0, alpha: float = 20.0, iterations: int = 12,
                 cg_steps: int = 3, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """WMF user and item factors ``(U [n_users, rank], V [n_items, rank])`` from implicit
    ``pairs`` (``[n, 2]`` of 0-based user and item indices; repeats count once); an entity
    with no pair gets an all-zero row (cold: no preference)."""
    pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    r = sp.csr_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])),
                      shape=(n_users, n_items))
    r.sum_duplicates()
    r.data[:] = 1.0
    rt = r.T.tocsr()
    rng = np.random.default_rng(seed)
    has_u = np.diff(r.indptr) > 0
    has_i = np.diff(rt.indptr) > 0
    u = rng.normal(0, 0.01, (n_users, rank)) * has_u[:, None]
    v = rng.normal(0, 0.01, (n_items, rank)) * has_i[:, None]
    for _ in range(iterations):
        u = _cg_solve(r, v, u, reg, alpha, cg_steps) * has_u[:, None]
        v = _cg_solve(rt, u, v, reg, alpha, cg_steps) * has_i[:, None]
    return u.astype(np.float32), v.astype(np.float32)


# --- ridge regression ------------------------------------------------------------------------


def _with_intercept(x) -> sp.csr_matrix:
    return sp.hstack([sp.csr_matrix(x), np.ones((x.shape[0], 1))]).tocsr()


@dataclass(frozen=True)
class Ridge:
    """A fitted ridge regression: ``weights`` ``[features + 1, outputs]``, the intercept last.

    ``(XᵀX + reg·I) W = XᵀY`` is solved by conjugate gradients for every output column at once,
    so a sparse ``X`` with many columns (one-hot values, tf-idf terms) never becomes a dense
    Gram matrix.  The intercept is regularised like every other weight (as the benchmarks'
    published figures were computed).
    """

    weights: np.ndarray

    @classmethod
    def fit(cls, x, y: np.ndarray, reg: float = 1.0, steps: int = 100) -> "Ridge":
        """Fit on the rows of ``x`` (sparse or dense) and targets ``y`` (``[n]`` or
        ``[n, outputs]``)."""
        xt = _with_intercept(x)
        target = np.asarray(y, dtype=np.float64)
        target = target[:, None] if target.ndim == 1 else target

        def apply(wt: np.ndarray) -> np.ndarray:  # one output column's system per row
            return (xt.T @ (xt @ wt.T) + reg * wt.T).T

        rhs = np.asarray(xt.T @ target).T
        w = conjugate_gradient(apply, rhs, np.zeros_like(rhs), steps, tol=1e-30).T
        return cls(weights=w)

    def predict(self, x) -> np.ndarray:
        """``[n, outputs]`` predictions for the rows of ``x`` (the fit's columns)."""
        if x.shape[1] + 1 != self.weights.shape[0]:
            raise ValueError(f"x has {x.shape[1]} columns; the ridge was fit on "
                             f"{self.weights.shape[0] - 1}")
        return np.asarray(_with_intercept(x) @ self.weights)


def ridge_predict(x, y: np.ndarray, fit_rows: np.ndarray, predict_rows: np.ndarray,
                  reg: float, steps: int = 100) -> np.ndarray:
    """A ridge from ``x`` to ``y`` fit on ``fit_rows``; its prediction for ``predict_rows``."""
    return Ridge.fit(x[fit_rows], np.asarray(y)[fit_rows], reg, steps).predict(x[predict_rows])


def unit_rows(x: np.ndarray) -> np.ndarray:
    """The rows of ``x`` scaled to unit L2 length; an all-zero row stays zero."""
    x = np.asarray(x, dtype=np.float64)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return np.divide(x, norms, out=np.zeros_like(x), where=norms > 0)


# --- the regressions the priors and the baselines share -------------------------------------


def popularity_regression(content, positives: np.ndarray,
                          exposure_days: np.ndarray | None = None, *, reg: float = 1.0) -> Ridge:
    """The content → popularity model: a ridge from the items' content (``[items, columns]``)
    to log1p of their positive counts (log1p tames the few very popular items that a squared
    loss would chase); ``.predict(candidate_content)[:, 0]`` scores candidates.

    An item's count also grows with the time it was there to be clicked, and content can
    stand in for that time: on MovieLens the latest releases have the fewest training clicks
    because they arrived last, and the plain fit ranked the cold (new) movies below random
    (recall@20 0.016 against 0.093; 0.52 at equal exposure).  With ``exposure_days`` (per item, the days it was
    available in training) the fit also gets the exposure's quantile bins, and the returned
    model keeps only the content weights: it scores what the content predicts at equal
    exposure (in an additive model, the same ranking as predicting every candidate at any one
    exposure).
    """
    target = np.log1p(np.asarray(positives, dtype=np.float64))
    if exposure_days is None:
        return Ridge.fit(content, target, reg)
    exposure = binned(exposure_days, quantile_edges(exposure_days, EXPOSURE_BINS))
    fitted = Ridge.fit(sp.hstack([sp.csr_matrix(content), exposure]).tocsr(), target, reg)
    n = content.shape[1]
    return Ridge(np.vstack([fitted.weights[:n], fitted.weights[-1:]]))


@dataclass(frozen=True)
class Factors:
    """Implicit-ALS factors with the ids of their rows."""

    users: dict[Hashable, int]
    items: dict[Hashable, int]
    user_vectors: np.ndarray
    item_vectors: np.ndarray

    def item_factors(self, ids: Sequence[Hashable]) -> np.ndarray:
        """``[len(ids), rank]``: the items' factors, zeros for an item without any."""
        out = np.zeros((len(ids), self.item_vectors.shape[1]))
        rows = [(k, self.items[i]) for k, i in enumerate(ids) if i in self.items]
        if rows:
            out[[k for k, _ in rows]] = self.item_vectors[[r for _, r in rows]]
        return out


def als_factors(user_ids: Sequence[Hashable], item_ids: Sequence[Hashable],
                rank: int = ALS_RANK, seed: int = 0) -> Factors:
    """Implicit-ALS factors of the positive (user, item) pairs ``zip(user_ids, item_ids)``."""
    users = {u: i for i, u in enumerate(dict.fromkeys(user_ids))}
    items = {t: i for i, t in enumerate(dict.fromkeys(item_ids))}
    pairs = np.array([(users[u], items[t]) for u, t in zip(user_ids, item_ids)],
                     dtype=np.int64).reshape(-1, 2)
    rank = max(1, min(rank, len(users), len(items)))
    u, v = implicit_als(pairs, len(users), len(items), rank=rank, reg=ALS_REG, alpha=ALS_ALPHA,
                        iterations=ALS_ITERATIONS, seed=seed)
    return Factors(users, items, u, v)


def factor_regression(content, factors: np.ndarray, *, reg: float = 1.0) -> Ridge:
    """The ridge → factors model: a ridge from the items' content to their item factors
    (rows of ``content`` and ``factors`` aligned; items without factors left out of the fit);
    :func:`factor_directions` applies it."""
    has = np.abs(factors).sum(axis=1) > 0
    return Ridge.fit(content[np.flatnonzero(has)], factors[has], reg)


def factor_directions(model: Ridge, content) -> np.ndarray:
    """The candidates' predicted item factors, each L2-normalised."""
    return unit_rows(model.predict(content))
