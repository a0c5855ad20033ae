"""Collaborative-filtering building blocks in numpy / scipy, shared by the pipeline's
evaluation and the offline benchmarks.

* :func:`implicit_als`: weighted matrix factorisation of implicit feedback (Hu, Koren &
  Volinsky 2008) by alternating conjugate-gradient steps; an entity without a pair stays at an
  all-zero row, i.e. "no preference" (cold);
* :class:`Ridge`: ridge regression from a (sparse) feature matrix to one or more targets,
  solved by conjugate gradients without forming ``XᵀX`` -- the map from an item's content to
  its factors or to its popularity;
* :func:`unit_rows`: rows scaled to unit length (a predicted factor's direction).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

__all__ = ["conjugate_gradient", "implicit_als", "Ridge", "ridge_predict", "unit_rows"]


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
