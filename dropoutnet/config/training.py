"""``training``: batches, epochs, the optimiser, warm start and the cluster."""

from __future__ import annotations

from pydantic import Field, field_validator, model_validator

from dropoutnet.config.base import Strict


class ClusterTasks(Strict):
    """One task type of a cluster (EasyRec's recipe writes ``{"worker": {"count": 9}}``)."""

    count: int = Field(ge=0)


# The one-line answer to parameter servers in a config shaped like EasyRec's recipe
# (``{"ps": {"count": 1}, ...}``).
PS_UNSUPPORTED = (
    "parameter-server training is not available: Keras 3's model.fit cannot drive "
    "tf.distribute.ParameterServerStrategy (Keras 3 has no ClusterCoordinator support), so a "
    "cluster trains with MultiWorkerMirroredStrategy, every worker holding all the variables; "
    "remove ps (or set ps.count: 0) and give the workers only, e.g. "
    "cluster: {worker: {count: 10}} for EasyRec's recipe of 1 ps + 9 workers")


class ClusterConfig(Strict):
    """``training.cluster``: train on several processes (:mod:`dropoutnet.training.cluster`).

    The shape of EasyRec's recipe, ``{ps: {count: P}, worker: {count: N}}``; ``ps`` must be
    absent or 0 (:data:`PS_UNSUPPORTED`).  Worker 0 is the chief: it alone writes the
    checkpoint, the model's metadata and the train report.  Without ``TF_CONFIG`` in the
    environment, the train task launches the N workers itself as processes on this machine;
    with ``TF_CONFIG`` (set by a platform that launched the cluster) the process is one member
    of that cluster and ``worker.count`` is not used (the platform's cluster is the truth).
    """

    worker: ClusterTasks
    ps: ClusterTasks | None = None

    @field_validator("worker")
    @classmethod
    def _workers(cls, v: ClusterTasks) -> ClusterTasks:
        if v.count < 1:
            raise ValueError(f"worker.count is {v.count}; a cluster needs at least one worker "
                             "(1 = train in the task's own process, as without a cluster)")
        return v

    @field_validator("ps")
    @classmethod
    def _no_ps(cls, v: ClusterTasks | None) -> ClusterTasks | None:
        if v is not None and v.count > 0:
            raise ValueError(f"ps.count is {v.count}: {PS_UNSUPPORTED}")
        return v

    @property
    def workers(self) -> int:
        """How many worker processes train (``worker.count``), the chief included."""
        return self.worker.count


class TrainingConfig(Strict):
    """``training``: the global batch size, epochs, optimiser (AdamW), random seed, how the
    day's samples are streamed and shuffled, warm start from an earlier checkpoint, and an
    optional multi-worker cluster."""

    batch_size: int = Field(default=1024, ge=2)
    epochs: int = Field(default=2, ge=1)
    learning_rate: float = Field(default=1e-3, gt=0)
    weight_decay: float = Field(default=0.0, ge=0, lt=1, description="AdamW's decoupled weight "
                                "decay (0 = Adam): keeps the content embeddings from memorising "
                                "warm items, which a cold item cannot use")
    seed: int = 42
    steps_per_execution: int = Field(
        default=8, ge=1, le=1000, description="training steps run in one call into "
        "TensorFlow (Keras's steps_per_execution): the same steps in the same order, with "
        "the per-call Python work (function dispatch, building each batch's structure) paid "
        "once per this many; at 8 the model alone trained 1.19-1.34x faster than at 1, on "
        "the same batches; progress is logged once per call.  A multi-worker cluster "
        "runs one step per call (Keras's loop over a distributed iterator fails there)")
    shuffle_buffer: int = Field(
        default=65536, ge=0, description="training reads its samples in chunks and shuffles "
        "them through a buffer of this many rows (0 = in the partition's order): memory "
        "stays this size whatever the day's samples; the partition is read in a fixed "
        "pseudo-random order, so a buffer smaller than the day still mixes days and users; "
        "samples already in memory (benchmarks, tuning) are shuffled whole")
    cache_samples: bool = Field(
        default=True, description="the first read of the day's partition also keeps its "
        "converted chunks in a private temporary folder on local disk (TMPDIR; about as "
        "many bytes as the partition in Postgres), and later passes (epochs) read them "
        "instead of Postgres; the folder is deleted when training ends.  false: every "
        "pass reads Postgres")
    warm_start_max_gap_days: int = Field(
        default=7, ge=0, description="warm start from the newest checkpoint of an earlier "
        "bizdate at most this many days back (0 = always train from scratch); a later "
        "bizdate's checkpoint is never used")
    cluster: ClusterConfig | None = Field(
        default=None, description="train on several processes with tf.distribute's "
        "MultiWorkerMirroredStrategy (see ClusterConfig); none = one process")

    @model_validator(mode="after")
    def _batch_per_worker(self) -> "TrainingConfig":
        if self.cluster is not None and self.batch_size < 2 * self.cluster.workers:
            raise ValueError(
                f"training.batch_size ({self.batch_size}) is the global batch, split among "
                f"the cluster's {self.cluster.workers} workers: it must be at least 2 rows "
                f"per worker ({2 * self.cluster.workers}); raise batch_size or lower "
                "cluster.worker.count")
        return self

