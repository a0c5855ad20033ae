"""Train one bizdate's DropoutNet: warm start from yesterday, fit, checkpoint.

:func:`train_model` builds the model from the config and the bizdate's numeric boundaries,
optionally warm-starts it from yesterday's checkpoint folder, fits ``training.epochs`` epochs
of shuffled mini-batches with Adam, and writes

* ``checkpoint_dir/ckpt-N.*`` and ``checkpoint``: a ``tf.train.Checkpoint`` of every model
  weight and Adam slot, keyed by the variable's path (``dropoutnet/item_tower/i_author/...``);
* ``checkpoint_dir/model_meta.json``: the features, the model config, the boundaries and the
  seed, so :mod:`dropoutnet.training.saved_models` rebuilds exactly this model whatever the config
  says later.

The folder is written next to its target and renamed into place, so a rerun of the same day
replaces it whole and a reader never sees half of one.

**Warm start by name and shape.**  Checkpoint keys are variable paths, which follow feature
names rather than positions, so adding, removing or reordering features leaves the other
features' variables matched.  Every variable whose path and shape match is restored; the rest
keep their fresh initialisation, and both lists are logged (a new feature's embedding, and the
first content-MLP kernel whose input width changed, are "not restored").  Nothing raises on a
mismatch.  The learning rate is not checkpointed: it always comes from today's config.

**AUC.**  The returned ``train_auc`` is measured during training (so under preference dropout).
For evaluation use :func:`predict_scores` (or the exported ``final`` model, which computes the
same ``probability``) on the eval samples, and compute AUC from those probabilities.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from dropoutnet.config import FeatureSpec, PipelineConfig
from dropoutnet.core.progress import Progress
from dropoutnet.model import ITEM_ID_KEY, ITEM_LOGQ_KEY, DropoutNet
from dropoutnet.model.dropoutnet import (
    META_FILE,
    build_model,
    checkpoint_variables,
    model_meta,
)
from dropoutnet.model.factors import SCALE_PAIRS, fit_factors
from dropoutnet.model.features import (
    input_signature,
    item_codes,
    prepared_signature,
    to_numpy_batch,
    to_tensor,
)
from dropoutnet.model.popularity import fit_popularity
from dropoutnet.registry import artifacts
from dropoutnet.training import cluster
from dropoutnet.training.source import (
    ArraySource,
    Chunk,
    SampleSource,
    Scan,
    scan,
    shuffled_batches,
)

__all__ = [
    "WarmStartReport", "global_batches", "make_dataset", "predict_scores", "restore_warm_start",
    "shard_rows", "train_model", "train_samples",
]

log = logging.getLogger(__name__)

_VALUE_SUFFIX = "/.ATTRIBUTES/VARIABLE_VALUE"


# --- warm start -----------------------------------------------------------------------------


@dataclass
class WarmStartReport:
    """What a warm start restored; JSON-able through :func:`dataclasses.asdict`."""

    source: str | None
    checkpoint: str | None = None
    restored: list[str] = field(default_factory=list)
    not_restored: dict[str, str] = field(default_factory=dict)  # key -> reason
    unused_in_checkpoint: list[str] = field(default_factory=list)

    @property
    def warm_started(self) -> bool:
        """Whether a readable checkpoint was found; its variables of matching shape were
        restored (see ``restored`` and ``not_restored`` for which)."""
        return self.checkpoint is not None


def restore_warm_start(model: DropoutNet, warm_start_dir: Path | None) -> WarmStartReport:
    """Restore every variable of ``model`` (and its optimizer) found with the same shape.

    Never raises on a missing folder, a missing checkpoint or mismatched variables: those are
    logged, and unmatched variables keep their initialisation.
    """
    report = WarmStartReport(source=None if warm_start_dir is None else str(warm_start_dir))
    latest = tf.train.latest_checkpoint(str(warm_start_dir)) if warm_start_dir else None
    if latest is None:
        log.info("no checkpoint at %s: cold start (training from scratch)", warm_start_dir)
        return report
    try:
        reader = tf.train.load_checkpoint(latest)
    except Exception as exc:  # a corrupt checkpoint must not stop the day
        log.warning("no checkpoint at %s: cold start (training from scratch); %s could not "
                    "be read: %s", warm_start_dir, latest, exc)
        return report
    report.checkpoint = latest
    shapes = {k[: -len(_VALUE_SUFFIX)]: v for k, v in reader.get_variable_to_shape_map().items()
              if k.endswith(_VALUE_SUFFIX)}
    mine = checkpoint_variables(model)
    for key, var in mine.items():
        if key not in shapes:
            report.not_restored[key] = "not in checkpoint"
        elif tuple(shapes[key]) != tuple(var.shape):
            report.not_restored[key] = (f"shape {tuple(var.shape)} != checkpoint "
                                        f"{tuple(shapes[key])}")
        else:
            var.assign(reader.get_tensor(key + _VALUE_SUFFIX))
            report.restored.append(key)
    report.unused_in_checkpoint = sorted(k for k in shapes if k not in mine
                                         and k != "save_counter")
    log.info("warm start from %s (%s): restored %d of %d variables",
             warm_start_dir, latest, len(report.restored), len(mine))
    log.info("warm start restored: %s", report.restored)
    if report.not_restored:
        log.warning("warm start did not restore %d variables (freshly initialised): %s",
                    len(report.not_restored),
                    "; ".join(f"{k}: {why}" for k, why in report.not_restored.items()))
    if report.unused_in_checkpoint:
        log.info("checkpoint variables no longer in the model: %s", report.unused_in_checkpoint)
    return report


# --- data -----------------------------------------------------------------------------------


def _reported(chunks: Iterable[Chunk], progress: Progress) -> Iterator[Chunk]:
    rows = 0
    for chunk in chunks:
        rows += len(chunk)
        progress.update(rows)
        yield chunk
    progress.close()


def global_batches(rows: int, batch_size: int, shards: int = 1) -> list[int]:
    """The sizes of an epoch's batches of ``rows`` rows; with ``shards`` (a cluster's workers)
    the last, smaller batch is dropped when it has fewer rows than shards, so that no worker
    gets an empty share."""
    sizes = [batch_size] * (rows // batch_size)
    if rows % batch_size and rows % batch_size >= shards:
        sizes.append(rows % batch_size)
    return sizes


def shard_rows(batch: int, shards: int, index: int) -> slice:
    """Shard ``index``'s rows of a global batch of ``batch`` rows: ``shards`` contiguous,
    near-equal slices (the batch is already shuffled), the first ``batch % shards`` one row
    longer."""
    size, extra = divmod(batch, shards)
    start = index * size + min(index, extra)
    return slice(start, start + size + (1 if index < extra else 0))


def make_dataset(model: DropoutNet, source: SampleSource, rows: int, batch_size: int, *,
                 shuffle_buffer: int = 0, seed: int = 42,
                 item_logq: Mapping[str | int, float] | None = None,
                 shard: tuple[int, int] | None = None) -> tf.data.Dataset:
    """``(x, label)`` batches of ``source``'s ``rows`` samples (:mod:`dropoutnet.training.source`),
    re-read every epoch and shuffled through a buffer of ``shuffle_buffer`` rows (0: in order),
    differently each epoch; ``x`` holds the model's features in training's prepared form
    (strings hashed once, when the source first read them: :meth:`Chunk.prepared`; a chunk
    still raw is prepared here) and, when the source has them, ``item_id`` (int64 codes) and
    (with ``item_logq``, per item) ``item_logq`` (for the softmax loss only).

    With ``shard = (index, count)`` (a worker of a cluster, :mod:`dropoutnet.training.cluster`)
    every global batch of ``batch_size`` rows is cut as :func:`shard_rows` says and only slice
    ``index`` is yielded: every worker builds the same global batches (same rows, order and seed),
    so the workers' slices of a step are that step's global batch, and every worker has the same
    number of steps (:func:`global_batches`).

    The dataset declares its number of batches: Keras runs one more (empty) step per epoch on
    a dataset of unknown length, and Adam moves the weights even on a zero gradient."""
    specs, config = model.feature_specs, model.model_config
    names = [f.name for f in specs]
    signature = prepared_signature(specs)
    if source.has_item_ids:
        signature[ITEM_ID_KEY] = tf.TensorSpec([None], tf.int64)
    if item_logq is not None:
        signature[ITEM_LOGQ_KEY] = tf.TensorSpec([None], tf.float32)
        # the frequencies by item code, sorted, so that a batch looks its rows up at once
        codes = item_codes(np.asarray(list(item_logq)))
        order = np.argsort(codes)
        codes = codes[order]
        logq = np.fromiter(item_logq.values(), np.float32, len(item_logq))[order]
    epochs = itertools.count()

    index, shards = shard if shard is not None else (0, 1)
    steps = len(global_batches(rows, batch_size, shards))

    def batches():
        rng = (np.random.default_rng([seed, next(epochs)]) if shuffle_buffer > 0 else None)
        chunks = (c.prepared(specs, config) for c in source.chunks())  # no-op once prepared
        for step, b in enumerate(shuffled_batches(chunks, batch_size, shuffle_buffer, rng)):
            if step >= steps:  # a last batch too small to share among the workers
                break
            if shards > 1:
                b = b.take(shard_rows(len(b), shards, index))
            x = {k: to_tensor(b.features[k]) for k in names}
            if source.has_item_ids:
                x[ITEM_ID_KEY] = b.item_ids
            if item_logq is not None:
                x[ITEM_LOGQ_KEY] = logq[np.searchsorted(codes, b.item_ids)]
            yield x, b.labels

    ds = tf.data.Dataset.from_generator(
        batches, output_signature=(signature, tf.TensorSpec([None], tf.float32)))
    ds = ds.apply(tf.data.experimental.assert_cardinality(steps)).with_options(no_autotune())
    return ds.prefetch(tf.data.AUTOTUNE) if shard is None else ds


def no_autotune() -> tf.data.Options:
    """tf.data options without the autotuning model's thread.

    That thread sleeps in doubling periods (10 ms, 20 ms, ... 5.12 s, 10.24 s, ...) and an
    iterator's teardown waits for its sleep to end.  Keras drops an epoch's iterator at the
    epoch's end, so every epoch ended with a wait of up to a period: measured, ``fit``
    returning at exactly 5.12 or 10.24 s after its start when its last step was done at 4.7
    or 5.9 s.  A prefetch of ``AUTOTUNE`` still sizes its buffer (its own legacy tuner); our
    datasets have no other parallelism to tune."""
    options = tf.data.Options()
    options.autotune.enabled = False
    return options


class ProgressLog(keras.callbacks.Callback):
    """Training progress (:class:`dropoutnet.core.progress.Progress`): rows done, rows per second
    and the loss, per epoch.  Keras reports a batch's end once per call into TensorFlow
    (``training.steps_per_execution`` steps), with the index of its last step."""

    def __init__(self, rows: int, batch_size: int, epochs: int):
        super().__init__()
        self.rows, self.batch_size, self.epochs = rows, batch_size, epochs

    def on_epoch_begin(self, epoch: int, logs=None) -> None:
        self.progress = Progress(f"training, epoch {epoch + 1}/{self.epochs}", log,
                                 total=self.rows)

    def on_train_batch_end(self, batch: int, logs=None) -> None:
        # a step's logs have one axis under a multi-worker strategy (DropoutNet.train_step)
        loss = np.asarray((logs or {}).get("loss", np.nan), np.float64).reshape(-1)[0]
        self.progress.update(min((batch + 1) * self.batch_size, self.rows),
                             loss=round(float(loss), 4))

    def on_epoch_end(self, epoch: int, logs=None) -> None:
        self.progress.update(self.rows)
        self.progress.close(loss=round(float((logs or {}).get("loss", float("nan"))), 4))


def _batched(fn: Callable[[dict[str, tf.Tensor]], tf.Tensor], specs: Sequence[FeatureSpec],
             features: Mapping[str, np.ndarray], batch_size: int) -> np.ndarray:
    x = to_numpy_batch(specs, features)
    sig = input_signature(specs)
    n = len(next(iter(x.values())))
    out = [fn({k: tf.constant(v[i:i + batch_size], sig[k].dtype) for k, v in x.items()}).numpy()
           for i in range(0, n, batch_size)]
    return np.concatenate(out) if out else np.zeros([0], np.float32)


def predict_scores(model: DropoutNet, features: Mapping[str, np.ndarray],
                   batch_size: int = 4096, output: str = "probability") -> np.ndarray:
    """Inference-mode ``probability`` (sigmoid(scale * cosine + bias)) per row, or ``score``.

    Preference dropout is off: a row with no preference feature is scored as a cold entity.
    """
    specs = model.user_specs + model.item_specs

    @tf.function(input_signature=[input_signature(specs)], autograph=False)
    def fn(x):
        return model(x, training=False)[output]

    return _batched(fn, specs, features, batch_size)


# --- training -------------------------------------------------------------------------------


def train_model(cfg: PipelineConfig, features: dict[str, np.ndarray], labels: np.ndarray,
                boundaries: dict[str, list[float]], checkpoint_dir: Path,
                warm_start_dir: Path | None, item_ids: np.ndarray | None = None,
                *, epochs: int | None = None,
                sample_dates: np.ndarray | None = None) -> dict[str, Any]:
    """:func:`train_samples` on samples in memory.

    ``features`` holds every configured feature (see :mod:`dropoutnet.model.features` for dtypes),
    ``labels`` 0/1, ``item_ids`` the sample's item id (optional; masks duplicate items in the
    in-batch softmax, and gives the item frequencies of the logQ correction, which needs it).
    ``sample_dates`` (the rows' sample days) and ``item_ids`` are needed by
    ``model.popularity_prior``; ``model.factor_prior`` needs ``item_ids``.
    """
    return train_samples(cfg, ArraySource(cfg.features, features, labels, item_ids,
                                          sample_dates, model=cfg.model),
                         boundaries, checkpoint_dir, warm_start_dir, epochs=epochs)


def train_samples(cfg: PipelineConfig, source: SampleSource,
                  boundaries: dict[str, list[float]], checkpoint_dir: Path,
                  warm_start_dir: Path | None, *, epochs: int | None = None,
                  member: cluster.Member | None = None) -> dict[str, Any]:
    """Build, warm start, fit and checkpoint one bizdate's model on ``source``'s samples (a
    partition streamed from Postgres, or arrays: :mod:`dropoutnet.training.source`); return
    JSON-able stats.

    One pass over the samples first (:func:`dropoutnet.training.source.scan`) gives the counts,
    the logQ item frequencies and the priors' one row per item; the priors
    (``model.popularity_prior``, ``model.factor_prior``) are fitted after the warm start and
    before the towers train; then ``epochs`` (default ``training.epochs``; 0 = restore and
    save only) passes through the bounded shuffle.  Memory grows with the items and the
    shuffle buffer, not with the samples.

    With ``member`` (this process is one worker of a cluster, :mod:`dropoutnet.training.cluster`)
    the model is built under the cluster's ``MultiWorkerMirroredStrategy`` and each worker trains on
    its share of every global batch; every worker saves the checkpoint, but only the chief's goes to
    ``checkpoint_dir`` (with the metadata): the others' go to a temporary folder that is deleted.
    The stats gain ``cluster``: the strategy, the workers, this task, the rows it trained on and its
    seconds.
    """
    started = time.monotonic()
    strategy = cluster.strategy() if member is not None else None  # before any TF operation
    checkpoint_dir = Path(checkpoint_dir)
    tc = cfg.training
    epochs = tc.epochs if epochs is None else int(epochs)
    logq = cfg.model.losses.softmax_logq and cfg.model.losses.softmax_weight > 0
    if logq and not source.has_item_ids:
        raise ValueError("model.losses.softmax_logq needs item_ids: the item frequencies "
                         "come from the training rows' item ids")
    if cfg.model.popularity_prior > 0 and not (source.has_item_ids and source.has_sample_dates):
        raise ValueError("model.popularity_prior needs the training rows' item_ids and "
                         "sample_dates: an item's positives and exposure come from them")
    if cfg.model.factor_prior > 0 and not source.has_item_ids:
        raise ValueError("model.factor_prior needs the training rows' item_ids: the content → "
                         "factors ridge is fitted on one row per item")
    scope = strategy.scope() if strategy is not None else contextlib.nullcontext()
    with scope:  # variables mirrored on every worker; the strategy's fit
        return _train(cfg, source, boundaries, checkpoint_dir, warm_start_dir, epochs, logq,
                      member, strategy, started)


def _train(cfg: PipelineConfig, source: SampleSource, boundaries: dict[str, list[float]],
           checkpoint_dir: Path, warm_start_dir: Path | None, epochs: int, logq: bool,
           member: cluster.Member | None, strategy: Any, started: float) -> dict[str, Any]:
    tc = cfg.training
    model = build_model(cfg.features, cfg.model, boundaries, tc.seed,
                        learning_rate=tc.learning_rate, weight_decay=tc.weight_decay,
                        # one step per call on a cluster: Keras's loop of steps over a
                        # distributed iterator failed in the workers' graphs (TF 2.21)
                        steps_per_execution=tc.steps_per_execution if strategy is None else 1)
    report = restore_warm_start(model, Path(warm_start_dir) if warm_start_dir else None)
    item, user = model.item_tower, model.user_tower
    first_row = ([f.name for f in item.design_specs]
                 + ([item.factor_feature] if model.factor_scale is not None else [])
                 + ([item.factor_guess] if item.factor_guess else []))
    if first_row or logq:  # a pass over the day for the priors / the item frequencies
        seen = scan(_reported(source.chunks(), Progress("reading samples", log)), first_row,
                    user.factor_feature if model.factor_scale is not None else None,
                    sample_rows=SCALE_PAIRS, seed=tc.seed)
    else:  # nothing needs one: the counts only (one read of the day fewer)
        rows, positives = source.counts()
        seen = Scan(rows=rows, positives=positives)
    log.info("training samples: %d rows, %d positives", seen.rows, seen.positives)
    popularity = None
    if item.popularity is not None:  # refitted every day, whatever was restored
        popularity = fit_popularity(item, seen.item_first_rows, seen.item_positives,
                                    seen.exposure_days())
    factor = None
    if model.factor_scale is not None and seen.item_ids:  # the same
        factor = fit_factors(model, seen.item_first_rows, seen.row_sample, seed=tc.seed)
    elif model.factor_scale is not None:
        model.factor_scale.assign(0.0)  # no samples today: the term is off

    buffer = tc.shuffle_buffer
    if buffer and source.in_memory:  # already in memory: shuffled whole
        buffer = max(buffer, seen.rows)
    item_logq = seen.item_log_frequency() if logq else None
    n = seen.rows
    shards = member.workers if member is not None else 1
    batches = global_batches(n, tc.batch_size, shards)
    pipeline = {"index": 0}
    if strategy is None:
        ds = make_dataset(model, source, n, tc.batch_size, shuffle_buffer=buffer, seed=tc.seed,
                          item_logq=item_logq)
    else:  # this worker's share of each global batch (its input context's)

        def worker_dataset(context: tf.distribute.InputContext) -> tf.data.Dataset:
            pipeline["index"] = context.input_pipeline_id
            if context.num_input_pipelines != shards:
                raise cluster.ClusterError(
                    f"{context.num_input_pipelines} input pipelines for {shards} workers")
            return make_dataset(model, source, n, tc.batch_size, shuffle_buffer=buffer,
                                seed=tc.seed, item_logq=item_logq,
                                shard=(context.input_pipeline_id, shards))

        # no device prefetch (CPU only) and no tf.data prefetch: with them the end of fit
        # waited 10-30 s more on a worker (the iterator's teardown, measured here before the
        # datasets ran without autotuning, :func:`no_autotune`)
        ds = strategy.distribute_datasets_from_function(
            worker_dataset, tf.distribute.InputOptions(experimental_fetch_to_device=False))
    history: dict[str, list[float]] = {}
    if epochs > 0 and batches:
        history = model.fit(ds, epochs=epochs, verbose=0, shuffle=False,
                            callbacks=[ProgressLog(n, tc.batch_size, epochs)]).history
    last = {k: float(v[-1]) for k, v in history.items() if v}
    steps = epochs * len(batches)

    if member is None or member.chief:
        checkpoint_dir.parent.mkdir(parents=True, exist_ok=True)
        tmp = checkpoint_dir.with_name(f".{checkpoint_dir.name}.tmp-{uuid.uuid4().hex[:8]}")
    else:  # every worker saves (MWMS), only the chief's copy is kept
        tmp = Path(tempfile.mkdtemp(prefix="dropoutnet-worker-checkpoint-"))
    manager = tf.train.CheckpointManager(tf.train.Checkpoint(**checkpoint_variables(model)),
                                         str(tmp), max_to_keep=1)
    saved = manager.save()
    if member is None or member.chief:
        (tmp / META_FILE).write_text(json.dumps(model_meta(cfg, boundaries), indent=1))
        artifacts.replace_dir(tmp, checkpoint_dir)
    else:
        shutil.rmtree(tmp, ignore_errors=True)

    stats = {
        "rows": n,
        "positives": seen.positives,
        "epochs": epochs,
        "steps": steps,
        "optimizer_iterations": int(model.optimizer.iterations.numpy()),
        "loss": last.get("loss"),
        "pointwise_loss": last.get("pointwise_loss"),
        "pairwise_loss": last.get("pairwise_loss"),
        "softmax_loss": last.get("softmax_loss"),
        "distill_loss": last.get("distill_loss"),
        "align_loss": last.get("align_loss"),
        "train_auc": last.get("auc"),
        "popularity_prior": popularity,
        "factor_prior": factor,
        "history": {k: [float(x) for x in v] for k, v in history.items()},
        "warm_started": report.warm_started,
        "warm_start": {k: v for k, v in asdict(report).items() if k != "restored"},
        "restored_variables": len(report.restored),
        "not_restored_variables": len(report.not_restored),
        "checkpoint": str(checkpoint_dir / Path(saved).name),
        "checkpoint_dir": str(checkpoint_dir),
    }
    if member is not None:
        share = pipeline["index"]
        stats["cluster"] = {
            "strategy": cluster.STRATEGY_NAME, "workers": member.workers,
            "task": {"type": member.task_type, "index": member.index, "chief": member.chief,
                     "input_pipeline": share},
            "global_batch_size": tc.batch_size,
            "rows_trained": epochs * sum(
                len(range(b)[shard_rows(b, shards, share)]) for b in batches),
            "rows_dropped_per_epoch": n - sum(batches),
            "seconds": round(time.monotonic() - started, 2),
        }
    log.info("trained %s on %d rows (%d positives): %d steps, loss %s (pointwise %s, pairwise "
             "%s, softmax %s, distill %s), train AUC %s", cfg.model_name, n, stats["positives"],
             steps, stats["loss"], stats["pointwise_loss"], stats["pairwise_loss"],
             stats["softmax_loss"], stats["distill_loss"], stats["train_auc"])
    return stats
