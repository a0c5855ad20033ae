"""The DropoutNet paper's cold-item protocol on CiteULike-a, with our model and baselines.

    dropoutnet benchmark citeulike --path ../shared/datasets/citeulike-a \\
        --split ../shared/datasets/citeulike-a-dropoutnet-split [--json] [--epochs N]

**Data.**  ``--path`` holds CiteULike-a (``users.dat``, ``item-tag.dat``, ``citations.dat``:
one line per user / article, ``count id id ...``, ids 0-based).  ``--split`` holds the exact
cold-item split of the paper (``cold/train.csv``, ``cold/test.csv``: rows ``uid,iid,1`` with
1-based ids, i.e. row index + 1; ``cold/test_item_ids.csv``: the cold items, 1-based).  A
missing file or a malformed row raises :class:`CiteULikeDataError` naming the file, the line
and what was expected.

**Protocol.**  Train on ``cold/train.csv``.  For every user with at least one test pair, rank
every cold test item; recall@K = |top-K ∩ user's test items| / |user's test items|, NDCG@K
with binary relevance, both averaged over those users (K = 20, 50, 100).

**Inputs** (the paper used tf-idf of the article *text*, not available here):

* item content: tf-idf of the article's tags and/or citations (each block's rows L2-normalised),
  reduced to 300 dims by a randomised truncated SVD, standardised on the non-zero rows and
  clipped to ±5 -- run twice: tags+citations, and citations only (the tags pool every user's
  tags, test users' included, so they leak; see ``shared/datasets/README.md``); concatenated
  with the content mapped into the CF space: a ridge regression from the tf-idf to the ALS
  item factors (200 dims, standardised), fit on the items with training pairs -- out-of-fold
  for those items, so that the model sees it as noisy as it is for a cold item.  It is a
  function of the content only (cf. Heater / GAR aligning content with the CF embedding);
* preference: implicit-feedback WMF factors (ALS with conjugate-gradient steps, rank 200) fit
  on the training pairs only; cold items get all-zero factors, i.e. "no preference";
* user content: the mean content vector of the user's training items.

**Model.**  The project's :class:`~dropoutnet.model.DropoutNet` built by
:func:`dropoutnet.model.dropoutnet.build_model` with four dense vector features (item factors and
user factors are *precomputed* preference features), trained on the training positives plus sampled
negatives (label 0) with its configured losses, item preference dropout 0.5.  Cold items are
embedded by the item tower with zero factors, exactly as at serving.

**Baselines, same run, same users and items:** random; content → popularity (a ridge from the
tf-idf to log1p of an item's training users, the same ranking for every user: item popularity
itself is flat on cold items, none has a training pair); content kNN (a user is the mean
tf-idf of their training items, cosine); a ridge map from the tf-idf content to the ALS item
factors, ranked by U·V̂ (``ridge_to_als``) and by U·V̂/|V̂| (``ridge_to_als_normalised``).
Every recall carries its bootstrap interval over the test users (``recall@K_ci``), and each
content variant names its ``strongest_baseline`` per K.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import scipy.sparse as sp

from dropoutnet.evaluation.metrics import bootstrap_ci, score_metrics, strongest_baseline
from dropoutnet.model.closed_form import (
    implicit_als,
    popularity_regression,
    ridge_predict,
    unit_rows,
)

log = logging.getLogger(__name__)

__all__ = [
    "CiteULikeDataError", "CiteULikeData", "BenchmarkSettings", "load", "tfidf",
    "content_matrix", "svd_features", "implicit_als", "ranking_metrics", "run_benchmark",
    "format_report", "CONTENTS", "KS",
]

KS = (20, 50, 100)
CONTENTS = {"tags+citations": ("tags", "citations"), "citations": ("citations",)}
TARGETS = {"recall@20": 0.43, "recall@100": 0.671}


class CiteULikeDataError(ValueError):
    """A dataset folder that is missing a file or has a malformed row."""


# --- loading ---------------------------------------------------------------------------------


def _lines(path: Path) -> list[str]:
    if not path.is_file():
        raise CiteULikeDataError(f"{path}: file not found (expected it in {path.parent})")
    try:
        return path.read_text().splitlines()
    except UnicodeDecodeError as exc:
        raise CiteULikeDataError(f"{path}: not a text file ({exc})") from None


def _read_counted_lists(path: Path, what: str, id_limit: int | None = None) -> list[list[int]]:
    """``count id id ...`` per line (ids 0-based, < ``id_limit`` when given)."""
    rows: list[list[int]] = []
    for no, line in enumerate(_lines(path), 1):
        fields = line.split()
        expected = f"expected 'count {what} {what} ...' with count non-negative integers"
        try:
            values = [int(f) for f in fields]
        except ValueError:
            raise CiteULikeDataError(f"{path}, line {no}: {expected}; got {line[:80]!r}") from None
        if not values or values[0] < 0 or len(values) != values[0] + 1:
            raise CiteULikeDataError(
                f"{path}, line {no}: {expected}, as many ids as the count says; got "
                f"{line[:80]!r}")
        ids = values[1:]
        bad = [i for i in ids if i < 0 or (id_limit is not None and i >= id_limit)]
        if bad:
            raise CiteULikeDataError(f"{path}, line {no}: {what} id {bad[0]} out of range; "
                                     f"expected 0 .. {(id_limit or 1) - 1}")
        rows.append(ids)
    return rows


def _read_pairs(path: Path, n_users: int, n_items: int) -> np.ndarray:
    """``uid,iid[,value]`` rows with 1-based ids -> int array [n, 2] of 0-based ids."""
    out = []
    for no, line in enumerate(_lines(path), 1):
        if not line.strip():
            continue
        fields = line.strip().split(",")
        try:
            if len(fields) not in (2, 3):
                raise ValueError
            uid, iid = int(fields[0]), int(fields[1])
            if len(fields) == 3:
                float(fields[2])
        except ValueError:
            raise CiteULikeDataError(f"{path}, line {no}: expected 'uid,iid,1' (integers, "
                                     f"1-based ids); got {line[:80]!r}") from None
        if not (1 <= uid <= n_users and 1 <= iid <= n_items):
            raise CiteULikeDataError(f"{path}, line {no}: expected 1 <= uid <= {n_users} and "
                                     f"1 <= iid <= {n_items} (1-based ids); got {line[:80]!r}")
        out.append((uid - 1, iid - 1))
    return np.asarray(out, dtype=np.int64).reshape(-1, 2)


def _read_ids(path: Path, n_items: int) -> np.ndarray:
    out = []
    for no, line in enumerate(_lines(path), 1):
        if not line.strip():
            continue
        try:
            iid = int(line.strip().split(",")[0])
        except ValueError:
            raise CiteULikeDataError(f"{path}, line {no}: expected one item id (integer, "
                                     f"1-based); got {line[:80]!r}") from None
        if not 1 <= iid <= n_items:
            raise CiteULikeDataError(f"{path}, line {no}: expected 1 <= item id <= {n_items}; "
                                     f"got {line[:80]!r}")
        out.append(iid - 1)
    return np.asarray(out, dtype=np.int64)


def _binary_csr(rows: Sequence[Sequence[int]], n_cols: int) -> sp.csr_matrix:
    indptr = np.cumsum([0] + [len(r) for r in rows])
    indices = np.fromiter((i for r in rows for i in r), dtype=np.int64, count=int(indptr[-1]))
    m = sp.csr_matrix((np.ones(len(indices), np.float32), indices, indptr),
                      shape=(len(rows), n_cols))
    m.sum_duplicates()
    m.data[:] = 1.0
    return m


@dataclass
class CiteULikeData:
    """CiteULike-a with the cold split; every id 0-based."""

    n_users: int
    n_items: int
    tags: sp.csr_matrix        # [n_items, n_tags] binary
    citations: sp.csr_matrix   # [n_items, n_items] binary, linked articles
    train: np.ndarray          # [n, 2] (user, item)
    test: np.ndarray           # [m, 2]
    test_items: np.ndarray     # cold candidates


def load(path: str | Path, split: str | Path) -> CiteULikeData:
    """Parse and check the dataset and its cold split; raise :class:`CiteULikeDataError`."""
    path, split = Path(path), Path(split)
    for folder, flag in ((path, "--path"), (split, "--split")):
        if not folder.is_dir():
            raise CiteULikeDataError(f"{folder}: no such folder (pass {flag} DIR)")
    item_tags = _read_counted_lists(path / "item-tag.dat", "tag")
    n_items = len(item_tags)
    if n_items == 0:
        raise CiteULikeDataError(f"{path / 'item-tag.dat'}: no line; expected one per article")
    users = _read_counted_lists(path / "users.dat", "item", id_limit=n_items)
    citations = _read_counted_lists(path / "citations.dat", "article", id_limit=n_items)
    if len(citations) != n_items:
        raise CiteULikeDataError(f"{path / 'citations.dat'}: {len(citations)} lines; expected "
                                 f"one per article ({n_items}, as in item-tag.dat)")
    n_users = len(users)
    n_tags = 1 + max((t for r in item_tags for t in r), default=0)
    cit = _binary_csr(citations, n_items)
    cit = ((cit + cit.T) > 0).astype(np.float32).tocsr()  # a link, whichever side lists it
    train = _read_pairs(split / "cold" / "train.csv", n_users, n_items)
    test = _read_pairs(split / "cold" / "test.csv", n_users, n_items)
    test_items = _read_ids(split / "cold" / "test_item_ids.csv", n_items)
    if len(train) == 0 or len(test) == 0 or len(test_items) == 0:
        raise CiteULikeDataError(f"{split / 'cold'}: train.csv, test.csv and test_item_ids.csv "
                                 "must each have at least one row")
    outside = np.setdiff1d(test[:, 1], test_items)
    if outside.size:
        raise CiteULikeDataError(f"{split / 'cold' / 'test.csv'}: item {outside[0] + 1} is not "
                                 "in test_item_ids.csv; expected test pairs on cold items only")
    return CiteULikeData(n_users=n_users, n_items=n_items, tags=_binary_csr(item_tags, n_tags),
                         citations=cit, train=train, test=test, test_items=test_items)


# --- content ---------------------------------------------------------------------------------


def _l2_rows(m: sp.csr_matrix) -> sp.csr_matrix:
    norms = np.sqrt(np.asarray(m.multiply(m).sum(axis=1)).ravel())
    return sp.diags(np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)) @ m


def tfidf(m: sp.csr_matrix) -> sp.csr_matrix:
    """Binary term matrix -> tf-idf (idf = log(n / df)), rows L2-normalised."""
    m = sp.csr_matrix(m, dtype=np.float64)
    df = np.bincount(m.indices, minlength=m.shape[1])
    idf = np.log(m.shape[0] / np.maximum(df, 1))
    return _l2_rows(m @ sp.diags(idf)).tocsr()


def content_matrix(data: CiteULikeData, sources: Sequence[str]) -> sp.csr_matrix:
    """tf-idf of the chosen sources (``tags``, ``citations``), each block's rows unit length,
    concatenated and re-normalised."""
    blocks = {"tags": data.tags, "citations": data.citations}
    unknown = [s for s in sources if s not in blocks]
    if unknown:
        raise ValueError(f"unknown content source(s) {unknown}; allowed: {sorted(blocks)}")
    return _l2_rows(sp.hstack([tfidf(blocks[s]) for s in sources]).tocsr()).tocsr()


def svd_features(x: sp.csr_matrix, dim: int, seed: int, n_iter: int = 4,
                 clip: float = 5.0) -> np.ndarray:
    """Randomised truncated SVD projection ``U S`` to ``dim`` dims (as the paper reduced
    tf-idf to 300), standardised on the non-zero rows, clipped to ±``clip``; all-zero rows
    stay zero."""
    n, m = x.shape
    dim = max(1, min(dim, n - 1, m - 1)) if min(n, m) > 1 else 1
    rng = np.random.default_rng(seed)
    k = min(dim + 20, min(n, m))
    q, _ = np.linalg.qr(x @ rng.standard_normal((m, k)))
    for _ in range(n_iter):
        q, _ = np.linalg.qr(x @ (x.T @ q))
    b = np.ascontiguousarray(np.asarray(x.T @ q).T)  # [k, m]; x ≈ q b
    # the left singular vectors of the small b from the eigenvectors of b bᵀ ([k, k])
    eig, ub = np.linalg.eigh(b @ b.T)
    top = np.argsort(eig)[::-1][:dim]
    z = (q @ ub[:, top]) * np.sqrt(np.maximum(eig[top], 0.0))
    nonzero = np.asarray(abs(x).sum(axis=1)).ravel() > 0
    if nonzero.any():
        mu = z[nonzero].mean(axis=0)
        sd = z[nonzero].std(axis=0)
        z = np.where(nonzero[:, None], (z - mu) / np.where(sd > 0, sd, 1.0), 0.0)
    return np.clip(z, -clip, clip).astype(np.float32)


# --- metrics ---------------------------------------------------------------------------------


def ranking_metrics(scores: np.ndarray, relevant: np.ndarray, ks: Sequence[int] = KS,
                    ci: bool = False, per_user: bool = False) -> dict[str, Any]:
    """Mean recall@K and NDCG@K over the rows of ``relevant`` (bool ``[users, items]``) that
    have at least one relevant item; ``scores`` ``[users, items]``, higher ranks first (ties
    broken by column order): :func:`dropoutnet.evaluation.metrics.score_metrics`.  With ``ci``, also
    ``recall@K_ci``; with ``per_user``, ``per_user``: each of those users' recall@K."""
    relevant = np.asarray(relevant, dtype=bool)
    keep = relevant.any(axis=1)
    rows = [set(np.flatnonzero(r).tolist()) for r in relevant[keep]]
    out = score_metrics(np.asarray(scores)[keep], rows, ks, ci=ci, per_user=per_user)
    for k in ks:
        if out.get(f"recall@{k}_ci"):
            out[f"recall@{k}_ci"] = [round(x, 4) for x in out[f"recall@{k}_ci"]]
    return out


# --- the benchmark ---------------------------------------------------------------------------


# the item feature holding the tf-idf -> factors ridge's prediction (model.factor_prior_feature)
FACTOR_GUESS = "i_factor_guess"


@dataclass
class BenchmarkSettings:
    """The benchmark's data preparation, and the model's ``model`` / ``training`` sections.

    ``model`` and ``training`` are overrides of the pipeline config's sections
    (:class:`~dropoutnet.config.ModelConfig`, :class:`~dropoutnet.config.TrainingConfig`):
    everything they do not set takes the schema's defaults, as the pipeline would.  The
    defaults here set only what this dataset has a reason for: towers of the paper's size
    (500-wide layers, rank 200, as its preference factors), the factor features that the
    distillation loss and the factor prior read, the factor prior's weight (1: chosen on the
    validation split, see :mod:`dropoutnet.model.factors`) and its guess for new items (the
    tf-idf → factors ridge's prediction, ``i_factor_guess``: this data set's content is raw
    tf-idf, which the model's 300-d SVD input cannot reproduce; on the validation split,
    2 seeds, recall@20/50/100 0.448/0.589/0.679 with the ridge over the model's input, 0.455/
    0.593/0.680 with the guess), and 4 epochs (one model trained from scratch, not a daily
    warm-started one).
    """

    content_dim: int = 300
    rank: int = 200
    als_reg: float = 1.0
    als_alpha: float = 20.0
    als_iterations: int = 12
    ridge_reg: float = 1.0
    ridge_folds: int = 3
    negatives: int = 1
    seed: int = 42
    contents: tuple[str, ...] = tuple(CONTENTS)
    model: dict[str, Any] = field(default_factory=lambda: {
        "embedding_dim": 200, "content_mlp": [512], "preference_mlp": [512],
        "tower_mlp": [512], "factor_prior": 1.0, "factor_prior_feature": FACTOR_GUESS,
        "losses": {"distill_features": ["u_factors", "i_factors"]}})
    training: dict[str, Any] = field(default_factory=lambda: {"epochs": 4})


def _feature_specs(content_dim: int, rank: int, factor_guess: bool = False) -> list:
    from dropoutnet.config import FeatureSpec

    specs = [
        FeatureSpec(name="u_content", group="user_content", kind="vector", dim=content_dim,
                    source="users.content"),
        FeatureSpec(name="u_factors", group="user_preference", kind="vector", dim=rank,
                    source="users.wmf_factors", precomputed=True),
        FeatureSpec(name="i_content", group="item_content", kind="vector", dim=content_dim,
                    source="items.content"),
        FeatureSpec(name="i_factors", group="item_preference", kind="vector", dim=rank,
                    source="items.wmf_factors", precomputed=True),
    ]
    if factor_guess:  # the tf-idf -> factors ridge's prediction, for model.factor_prior_feature
        specs.append(FeatureSpec(name=FACTOR_GUESS, group="item_content", kind="vector",
                                 dim=rank, source="items.factor_guess"))
    return specs


def _sections(s: BenchmarkSettings, settings: Mapping[str, Any] | None = None):
    """The ``(ModelConfig, TrainingConfig)`` of ``s`` with ``settings`` (e.g. a trial's)."""
    from dropoutnet.config import ModelConfig, TrainingConfig
    from dropoutnet.training import tuning

    merged = tuning.apply({"model": s.model, "training": s.training}, settings or {})
    model = tuning.apply(ModelConfig().model_dump(), merged["model"])
    training = tuning.apply(TrainingConfig(seed=s.seed).model_dump(), merged["training"])
    return ModelConfig.model_validate(model), TrainingConfig.model_validate(training)


def _mean_rows(r: sp.csr_matrix, x) -> Any:
    """Row-wise mean of ``x``'s rows selected by the binary ``r`` (users x items)."""
    counts = np.asarray(r.sum(axis=1)).ravel()
    inv = sp.diags(np.divide(1.0, counts, out=np.zeros_like(counts, dtype=np.float64),
                             where=counts > 0))
    return inv @ (r @ x)


@dataclass
class Prepared:
    """One split with one content variant, ready to score: what every baseline and every
    model trained on it share (built once, by :func:`prepare`)."""

    content: str
    train: np.ndarray            # [n, 2] (user, item) training pairs
    r: sp.csr_matrix             # users x items, binary, the training pairs
    u: np.ndarray                # ALS factors of the training pairs (cold rows zero)
    v: np.ndarray
    tf_idf: sp.csr_matrix
    cold_vhat: np.ndarray        # ridge tf-idf -> V, predicted for the candidates
    factor_guess: np.ndarray     # ridge tf-idf -> V for every item (out-of-fold if warm)
    item_content: np.ndarray     # the model's item content input
    user_content: np.ndarray
    candidates: np.ndarray       # cold items, ranked for every test user
    test_users: np.ndarray
    relevant: np.ndarray         # bool [test users, candidates]


def _relevant(test: np.ndarray, candidates: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    test_users = np.unique(test[:, 0])
    col = {int(i): j for j, i in enumerate(candidates)}
    relevant = np.zeros((len(test_users), len(candidates)), dtype=bool)
    relevant[np.searchsorted(test_users, test[:, 0]), [col[int(i)] for i in test[:, 1]]] = True
    return test_users, relevant


def prepare(s: BenchmarkSettings, data: CiteULikeData, train: np.ndarray, test: np.ndarray,
            candidates: np.ndarray) -> dict[str, Prepared]:
    """ALS on ``train`` once, then each content variant's inputs; keyed by variant."""
    t_als = time.monotonic()
    r = sp.csr_matrix((np.ones(len(train), np.float32), (train[:, 0], train[:, 1])),
                      shape=(data.n_users, data.n_items))
    r.sum_duplicates()
    r.data[:] = 1.0
    rank = max(1, min(s.rank, data.n_users, data.n_items))
    u, v = implicit_als(train, data.n_users, data.n_items, rank=rank, reg=s.als_reg,
                        alpha=s.als_alpha, iterations=s.als_iterations, seed=s.seed)
    log.info("ALS rank %d in %.1fs", rank, time.monotonic() - t_als)
    if not np.all(np.diff(r.tocsc()[:, candidates].indptr) == 0):
        log.warning("some cold test items have training pairs: they are not cold")
    test_users, relevant = _relevant(test, candidates)
    warm = np.flatnonzero(np.diff(r.tocsc().indptr) > 0)
    out = {}
    for name in s.contents:
        t0 = time.monotonic()
        tf_idf = content_matrix(data, CONTENTS[name])
        svd = svd_features(tf_idf, s.content_dim, s.seed)
        cold_vhat = ridge_predict(tf_idf, v, warm, candidates, s.ridge_reg)
        # content mapped to the CF space (a function of content only): out-of-fold for the
        # items with training pairs, so the model sees it as noisy as it is for cold items
        vhat = _out_of_fold_ridge(tf_idf, v, warm, s.ridge_reg, s.ridge_folds, s.seed)
        vhat[candidates] = cold_vhat
        guess = vhat.astype(np.float32)
        mu, sd = vhat[warm].mean(axis=0), vhat[warm].std(axis=0)
        vhat = np.clip((vhat - mu) / np.where(sd > 0, sd, 1.0), -5, 5)
        item_content = np.hstack([svd, vhat]).astype(np.float32)
        user_content = np.asarray(_mean_rows(r, item_content), dtype=np.float32)
        log.info("%s: content %s -> %s in %.1fs", name, tf_idf.shape, item_content.shape,
                 time.monotonic() - t0)
        out[name] = Prepared(name, train, r, u, v, tf_idf, cold_vhat, guess, item_content,
                             user_content, candidates, test_users, relevant)
    return out


def validation_split(data: CiteULikeData, share: float = 0.2, seed: int = 0
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(train, test, candidates)`` carved from the training pairs alone: a ``share`` of the
    items with training pairs becomes pseudo-cold (all their pairs are the test)."""
    if not 0 < share < 1:
        raise ValueError(f"the validation share must be between 0 and 1, got {share!r}")
    items = np.unique(data.train[:, 1])
    rng = np.random.default_rng(seed)
    held = np.sort(rng.choice(items, max(1, int(round(share * len(items)))), replace=False))
    is_held = np.isin(data.train[:, 1], held)
    return data.train[~is_held], data.train[is_held], held


def baseline_figures(p: Prepared, s: BenchmarkSettings, ks: Sequence[int] = KS
                     ) -> dict[str, dict[str, Any]]:
    """Every baseline on the prepared users and candidates, simplest first (a tie for the
    strongest baseline goes to the simpler one); each recall with its bootstrap interval."""
    baselines: dict[str, dict[str, Any]] = {}
    rng = np.random.default_rng(s.seed)
    relevant, cand = p.relevant, p.candidates
    baselines["random"] = ranking_metrics(rng.random(relevant.shape), relevant, ks, ci=True)

    # content -> popularity: a ridge from the tf-idf to log1p(training users per item), fit
    # on every non-candidate item (0 users included); the same ranking for every user
    fit = np.setdiff1d(np.arange(p.tf_idf.shape[0]), cand)
    users_per_item = np.diff(p.r.tocsc().indptr)
    expected = popularity_regression(p.tf_idf[fit], users_per_item[fit],
                                     reg=s.ridge_reg).predict(p.tf_idf[cand])[:, 0]
    baselines["content_popularity"] = ranking_metrics(
        np.broadcast_to(expected, relevant.shape), relevant, ks, ci=True)

    # content kNN: the user's mean tf-idf against each candidate's, cosine
    profile = _l2_rows(sp.csr_matrix(_mean_rows(p.r[p.test_users], p.tf_idf)))
    knn = (profile @ p.tf_idf[cand].T).toarray()
    baselines["content_knn"] = ranking_metrics(knn, relevant, ks, ci=True)

    # ridge map: tf-idf content -> ALS item factors on the items with training pairs, ranked
    # by U·V̂, and by U·V̂/|V̂| (the predicted direction only)
    users = p.u[p.test_users]
    baselines["ridge_to_als"] = ranking_metrics(users @ p.cold_vhat.T, relevant, ks, ci=True)
    baselines["ridge_to_als_normalised"] = ranking_metrics(
        users @ unit_rows(p.cold_vhat).T, relevant, ks, ci=True)
    return baselines


def train_dropoutnet(p: Prepared, s: BenchmarkSettings,
                     settings: Mapping[str, Any] | None = None,
                     seed: int | None = None) -> tuple[Any, dict[str, Any]]:
    """Build the project's DropoutNet and fit it on positives + sampled negatives.

    Each epoch draws ``negatives`` fresh negatives per positive, uniformly over the items with
    training pairs (never a pair of the user's).  Batches gather the rows' features from the
    per-entity tables inside tf.data, so no ``[rows, features]`` copy is materialised; the
    item id rides along as ``item_id`` so the in-batch softmax masks duplicates.
    """
    import tensorflow as tf

    from dropoutnet.model import ITEM_ID_KEY, item_log_frequency
    from dropoutnet.model.dropoutnet import build_model
    from dropoutnet.model.factors import fit_factors
    from dropoutnet.model.popularity import fit_popularity

    model_config, tc = _sections(s, settings)
    seed = tc.seed if seed is None else seed
    guess = model_config.factor_prior_feature == FACTOR_GUESS
    specs = _feature_specs(p.item_content.shape[1], p.u.shape[1], guess)
    model = build_model(specs, model_config, {}, seed, learning_rate=tc.learning_rate,
                        weight_decay=tc.weight_decay)
    tables = {"u_content": (0, tf.constant(p.user_content)), "u_factors": (0, tf.constant(p.u)),
              "i_content": (1, tf.constant(p.item_content)), "i_factors": (1, tf.constant(p.v))}
    if guess:
        tables[FACTOR_GUESS] = (1, tf.constant(p.factor_guess))
    logq = model_config.losses.softmax_logq and model_config.losses.softmax_weight > 0

    def gather(pair, label, item_logq):
        x = {name: tf.gather(table, pair[:, side]) for name, (side, table) in tables.items()}
        x[ITEM_ID_KEY] = pair[:, 1]
        if logq:
            x["item_logq"] = item_logq
        return x, label

    rng = np.random.default_rng(seed)
    per_item = np.diff(p.r.tocsc().indptr)
    warm_items = np.flatnonzero(per_item > 0)
    if model.item_tower.popularity is not None:  # no time in CiteULike: equal exposure
        fit_popularity(model.item_tower, {"i_content": p.item_content[warm_items]},
                       per_item[warm_items])
    if model.factor_scale is not None:
        fit_factors(model, {"i_content": p.item_content[warm_items],
                            "i_factors": p.v[warm_items],
                            FACTOR_GUESS: p.factor_guess[warm_items]},
                    p.u[np.unique(p.train[:, 0])], seed)
    pos = p.train
    histories: dict[str, list[float]] = {}
    rows = 0
    for epoch in range(tc.epochs):
        neg_users = np.repeat(pos[:, 0], s.negatives)
        neg_items = warm_items[rng.integers(0, len(warm_items), len(neg_users))]
        is_pos = np.asarray(p.r[neg_users, neg_items]).ravel() > 0
        pairs = np.concatenate([pos, np.stack([neg_users, neg_items], 1)[~is_pos]])
        labels = np.zeros(len(pairs), np.float32)
        labels[:len(pos)] = 1.0
        order = rng.permutation(len(pairs))
        if len(order) % tc.batch_size == 1 and len(order) > 1:
            order = order[:-1]  # no one-row last batch: an in-batch softmax needs two rows
        rows = len(pairs)
        item_logq = item_log_frequency(pairs[:, 1])
        ds = (tf.data.Dataset.from_tensor_slices((pairs[order], labels[order], item_logq[order]))
              .batch(tc.batch_size).map(gather, num_parallel_calls=tf.data.AUTOTUNE)
              .prefetch(tf.data.AUTOTUNE))
        h = model.fit(ds, epochs=1, verbose=0, shuffle=False).history
        for k, vals in h.items():
            histories.setdefault(k, []).extend(float(x) for x in vals)
        log.info("epoch %d/%d: %s", epoch + 1, tc.epochs,
                 {k: round(vals[-1], 4) for k, vals in histories.items()})
    return model, {"rows_per_epoch": int(rows), "positives": int(len(pos)),
                   "epochs": tc.epochs, "history": histories}


def _embed(fn, feats: dict[str, np.ndarray], batch: int = 4096) -> np.ndarray:
    import tensorflow as tf

    n = len(next(iter(feats.values())))
    out = [fn({k: tf.constant(v[i:i + batch], tf.float32) for k, v in feats.items()}).numpy()
           for i in range(0, n, batch)]
    return np.concatenate(out)


def model_scores(p: Prepared, s: BenchmarkSettings, settings: Mapping[str, Any] | None = None,
                 seed: int | None = None) -> tuple[np.ndarray, dict[str, Any]]:
    """Train a model on ``p`` and score its candidates for its test users (exported vectors'
    inner products); cold items have all-zero factors: the cold encoding."""
    import tensorflow as tf

    model, stats = train_dropoutnet(p, s, settings, seed)
    user_fn = tf.function(lambda x: model.user_embedding(x, training=False), autograph=False)
    item_fn = tf.function(lambda x: model.item_embedding(x, training=False), autograph=False)
    ue = _embed(user_fn, {"u_content": p.user_content[p.test_users],
                          "u_factors": p.u[p.test_users]})
    items = {"i_content": p.item_content[p.candidates], "i_factors": p.v[p.candidates]}
    if FACTOR_GUESS in model.item_tower.feature_names:
        items[FACTOR_GUESS] = p.factor_guess[p.candidates]
    ie = _embed(item_fn, items)
    return ue @ ie.T, stats


def seeds_figures(relevant: np.ndarray, per_seed: Sequence[np.ndarray],
                  ks: Sequence[int] = KS) -> dict[str, Any]:
    """Figures over several training seeds: recall@K and NDCG@K of the mean, the bootstrap
    interval of each user's recall averaged over the seeds, the spread over the seeds."""
    runs = [ranking_metrics(sc, relevant, ks, per_user=True) for sc in per_seed]
    out: dict[str, Any] = {"seeds": len(per_seed)}
    for k in ks:
        per_user = np.mean([r["per_user"][f"recall@{k}"] for r in runs], axis=0)
        means = np.array([r[f"recall@{k}"] for r in runs])
        out[f"recall@{k}"] = float(means.mean())
        out[f"recall@{k}_ci"] = [round(x, 4) for x in bootstrap_ci(per_user)]
        out[f"recall@{k}_std"] = round(float(means.std()), 4)
        out[f"recall@{k}_per_seed"] = [round(float(m), 4) for m in means]
        out[f"ndcg@{k}"] = float(np.mean([r[f"ndcg@{k}"] for r in runs]))
    return out


def _out_of_fold_ridge(x: sp.csr_matrix, v: np.ndarray, rows: np.ndarray, reg: float,
                       folds: int, seed: int) -> np.ndarray:
    """``[n_items, rank]``: each of ``rows`` predicted by a ridge fit on the other folds."""
    out = np.zeros((x.shape[0], v.shape[1]))
    fold = np.random.default_rng(seed).integers(0, max(2, folds), len(rows))
    for f in range(max(2, folds)):
        held = rows[fold == f]
        if len(held):
            out[held] = ridge_predict(x, v, rows[fold != f], held, reg)
    return out


def tune(path: str | Path, split: str | Path, trials: int, settings: BenchmarkSettings | None = None,
         seed: int = 0, k: int = 100, share: float = 0.2, content: str = "tags+citations",
         seeds: int = 1, echo=print) -> dict[str, Any]:
    """An Optuna study of the model's settings on a validation split of the training pairs
    (a ``share`` of the warm items held out as pseudo-cold; recall@k, the mean over ``seeds``
    training seeds per trial)."""
    from dropoutnet.training import tuning

    s = settings or BenchmarkSettings()
    s = BenchmarkSettings(**{**s.__dict__, "contents": (content,)})
    data = load(path, split)
    train, test, candidates = validation_split(data, share, seed)
    p = prepare(s, data, train, test, candidates)[content]
    echo(f"validation split: {len(candidates)} pseudo-cold items, {len(p.test_users)} users, "
         f"{len(train)} training pairs")
    model, training = _sections(s)
    base = {"model": model.model_dump(), "training": training.model_dump()}

    def objective(trial_settings: dict[str, Any]) -> float:
        scores, _ = model_scores(p, s, trial_settings)
        return ranking_metrics(scores, p.relevant, [k])[f"recall@{k}"]

    return tuning.run_study(objective, base, trials, seed, metric=f"recall@{k}", echo=echo,
                            seeds=seeds)


def run_benchmark(path: str | Path, split: str | Path, settings: BenchmarkSettings | None = None,
                  ks: Sequence[int] = KS, seeds: int = 1) -> dict[str, Any]:
    """Load, fit ALS once, then for each content variant the baselines and the model
    (``seeds`` training seeds); return one JSON-able dict (the first variant's figures at top
    level)."""
    s = settings or BenchmarkSettings()
    unknown = [c for c in s.contents if c not in CONTENTS]
    if unknown or not s.contents:
        raise ValueError(f"unknown content variant(s) {unknown}; allowed: {list(CONTENTS)}")
    if seeds < 1:
        raise ValueError(f"--seeds must be at least 1, got {seeds}")
    t0 = time.monotonic()
    data = load(path, split)
    variants = []
    for name, p in prepare(s, data, data.train, data.test, data.test_items).items():
        baselines = baseline_figures(p, s, ks)
        strongest = strongest_baseline(baselines, ks)
        log.info("%s baselines: %s; strongest: %s", name, baselines, strongest)
        _, training = _sections(s)
        per_seed, stats = [], {}
        for i in range(seeds):
            scores, stats = model_scores(p, s, seed=training.seed + i)
            per_seed.append(scores)
        model_metrics = seeds_figures(p.relevant, per_seed, ks)
        log.info("%s model: %s", name, model_metrics)
        variants.append({
            "content": name, "model": model_metrics, "baselines": baselines,
            "strongest_baseline": strongest,
            "training": {k: val for k, val in stats.items() if k != "history"}
            | {"final": {k: round(val[-1], 5) for k, val in stats["history"].items()}},
            "n_users": int(len(p.test_users))})
    first = variants[0]
    out: dict[str, Any] = {
        "dataset": "citeulike-a, DropoutNet cold-item split",
        "content": first["content"],
        "model": first["model"],
        "baselines": first["baselines"],
        "strongest_baseline": first["strongest_baseline"],
        "n_users": first["n_users"],
        "n_items": int(len(data.test_items)),
        "seconds": 0.0,
    }
    for other in variants[1:]:  # e.g. "citations_only"
        key = other["content"] if "+" in other["content"] else other["content"] + "_only"
        out[key] = {k: other[k] for k in ("content", "model", "baselines",
                                          "strongest_baseline")}
    out["training"] = {vr["content"]: vr["training"] for vr in variants}
    model, training = _sections(s)
    out["settings"] = {k: (list(val) if isinstance(val, tuple) else val)
                       for k, val in s.__dict__.items() if k not in ("model", "training")}
    out["settings"] |= {"model": model.model_dump(mode="json"),
                        "training": training.model_dump(mode="json")}
    out["targets"] = TARGETS
    out["seconds"] = round(time.monotonic() - t0, 1)
    return out


def format_report(result: dict[str, Any]) -> str:
    """A plain-text table of every figure: recall@K with its 95 % bootstrap interval over the
    test users, NDCG@K, and the strongest baseline per K."""
    ks = sorted(int(k.split("@")[1]) for k in result["model"]
                if k.startswith("recall@") and k.split("@")[1].isdigit())
    lines = [f"{result['dataset']}: {result['n_users']} test users, {result['n_items']} cold "
             f"items, {result['seconds']:.0f}s"]
    blocks = [result] + [v for v in result.values()
                         if isinstance(v, dict) and "model" in v and "baselines" in v]
    for block in blocks:
        lines.append(f"content: {block['content']}")
        header = "  " + f"{'':<24}" + "".join(
            f"  {'recall@' + str(k) + ' [95% CI]':<23}" for k in ks) + \
            "".join(f"{'ndcg@' + str(k):>10}" for k in ks)
        lines.append(header)
        rows = {"dropoutnet": block["model"], **block["baselines"]}
        for name, m in rows.items():
            cells = []
            for k in ks:
                ci = m.get(f"recall@{k}_ci")
                cells.append(f"{m[f'recall@{k}']:.4f}" + (f" [{ci[0]:.3f}, {ci[1]:.3f}]"
                                                         if ci else ""))
            if "seeds" in m:
                name = f"{name} ({m['seeds']} seeds)"
            lines.append("  " + f"{name:<24}" + "".join(f"  {c:<23}" for c in cells)
                         + "".join(f"{m[f'ndcg@{k}']:>10.4f}" for k in ks))
        strongest = block.get("strongest_baseline")
        if strongest:
            lines.append("  strongest baseline: " + ", ".join(
                f"{key} {name or 'n/a'}" for key, name in strongest.items()))
    return "\n".join(lines)
