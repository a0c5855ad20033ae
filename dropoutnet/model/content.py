"""Items' content features as one design matrix, for the content regressions of the baselines.

The content → popularity and content → factors baselines (:mod:`dropoutnet.evaluation.baselines`)
are linear models of an item's content.  :class:`ContentEncoder` turns the config's item-content
features, in the pipeline's column contract (:mod:`dropoutnet.data.inputs`), into a sparse matrix:

* categorical: one-hot over the values seen when fitting (a missing or unseen value sets none);
* tags: multi-hot over the tags seen when fitting, split by the feature's separator;
* numeric: one-hot of the value's quantile bin (``num_bins`` bins of the fitting rows'
  values, so a heavy tail or a non-linear effect costs nothing), and a column for missing;
* vector: the values as they are.

It is fitted on the training items and applied unchanged to the candidates, so a candidate is
described by its content alone, exactly as a new item is.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import scipy.sparse as sp

from dropoutnet.config import FeatureSpec
from dropoutnet.data.inputs import to_array
from dropoutnet.model.closed_form import binned, quantile_edges

__all__ = ["ContentEncoder"]


class ContentEncoder:
    """Fit vocabularies and bins on some items' content columns; encode any items' columns."""

    def __init__(self, features: Sequence[FeatureSpec], num_bins: int = 10):
        self.features = list(features)
        self.num_bins = num_bins
        self._vocab: dict[str, dict[str, int]] = {}
        self._edges: dict[str, np.ndarray] = {}
        self.n_columns = 0

    def _width(self, f: FeatureSpec) -> int:
        if f.kind == "numeric":
            return len(self._edges[f.name]) + 2  # the bins, and missing
        if f.kind == "vector":
            return int(f.dim)
        return len(self._vocab[f.name])

    def fit(self, columns: Mapping[str, Sequence[Any]]) -> "ContentEncoder":
        """Learn each feature's vocabulary or quantile bins from ``columns`` (name → values)."""
        for f in self.features:
            values = to_array(f, columns[f.name])
            if f.kind == "numeric":
                self._edges[f.name] = quantile_edges(values, self.num_bins)
            elif f.kind in ("categorical", "tags"):
                seen = sorted({t for v in values for t in self._tokens(f, v)})
                self._vocab[f.name] = {t: i for i, t in enumerate(seen)}
        self.n_columns = sum(self._width(f) for f in self.features)
        return self

    @staticmethod
    def _tokens(f: FeatureSpec, value: str) -> list[str]:
        if not value:
            return []
        return [t for t in value.split(f.separator) if t] if f.kind == "tags" else [value]

    def transform(self, columns: Mapping[str, Sequence[Any]]) -> sp.csr_matrix:
        """``[items, n_columns]``: the rows of ``columns`` encoded as fitted."""
        blocks = []
        n = len(columns[self.features[0].name]) if self.features else 0
        for f in self.features:
            values = to_array(f, columns[f.name])
            if f.kind == "vector":
                blocks.append(sp.csr_matrix(values.astype(np.float64)))
            elif f.kind == "numeric":
                blocks.append(binned(values, self._edges[f.name]))
            else:
                vocab = self._vocab[f.name]
                hits = [(r, vocab[t]) for r, v in enumerate(values)
                        for t in self._tokens(f, v) if t in vocab]
                rows = np.array([r for r, _ in hits], dtype=np.int64)
                cols = np.array([c for _, c in hits], dtype=np.int64)
                blocks.append(sp.csr_matrix((np.ones(len(rows)), (rows, cols)),
                                            shape=(n, len(vocab))))
        if not blocks:
            return sp.csr_matrix((n, 0))
        return sp.hstack(blocks).tocsr()
