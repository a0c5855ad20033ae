"""Training on a cluster: who this process is (``TF_CONFIG``), the strategy, and the launcher
of a cluster of local processes.

**Strategy.**  EasyRec's recipe trains with 1 parameter server and 9 workers.  Keras 3's
``model.fit`` cannot drive ``tf.distribute.ParameterServerStrategy``: that needs a
``ClusterCoordinator`` scheduling the steps, and Keras 3's TensorFlow trainer has none (its
source names neither; only the legacy tf-keras 2 did).  So a cluster trains with
``tf.distribute.MultiWorkerMirroredStrategy`` (MWMS): synchronous data parallelism, every
worker holding a copy of every variable and the gradients summed across workers by an
all-reduce (ring, over gRPC).  A config with parameter servers is refused at load
(:data:`dropoutnet.config.PS_UNSUPPORTED`).

**Two ways in.**

* ``TF_CONFIG`` in the environment (set by a platform that launched the cluster, e.g. a
  Kubernetes TFJob running the train task on every pod): the process is one member
  (:func:`from_environment`).  Its chief (the ``chief`` task, else worker 0) runs the train
  task as in one process (run folder, registry, checkpoint, report); the other workers train
  the same steps and write their checkpoint copy to a temporary folder that is deleted
  (TensorFlow's documented pattern for MWMS checkpoints: every worker saves, only the chief's
  copy is kept).  ``training.cluster`` is not used then: the platform's cluster is the truth.
* ``training.cluster.worker.count`` N > 1 and no ``TF_CONFIG``: the train task launches the N
  workers itself on this machine (:func:`train_local_cluster`), each ``python -m
  dropoutnet.training.worker JOB`` with its own ``TF_CONFIG`` on free localhost ports.  Their output
  is streamed line by line into this process's log (so into the Airflow task log), prefixed
  ``[worker i]``.  If one exits non-zero the others are killed at once (each runs in its own
  process group) and the task fails with that worker's log tail; whatever happens (success,
  failure, an exception or SIGTERM in the task), no worker outlives the launcher: a ``finally``
  kills what is left, and each worker also gets SIGKILL from the kernel if the launcher dies
  (``PR_SET_PDEATHSIG``).  The launcher itself never imports TensorFlow.

**Data.**  Every worker reads the whole bizdate partition in the same order and shuffles it
with the same seed, so all workers see the same sequence of global batches of
``training.batch_size`` rows; worker *i* trains on its slice *i* of N of each global batch
(:func:`dropoutnet.training.fit.make_dataset`, through ``distribute_datasets_from_function``).
The global batch and the number of steps are those of one process; the last global batch
of an epoch is dropped if it has fewer rows than workers (a replica must not get an empty
batch).  The closed-form priors fitted before training come out the same on every worker
(same rows, same seed).  The reading is not divided: each worker pays the full read (once,
then its local chunk cache).  On a real multi-host cluster the models root (checkpoints,
yesterday's warm start) must be shared storage, and every worker must reach the database.
"""

from __future__ import annotations

import collections
import ctypes
import datetime as dt
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from dropoutnet.config import PS_UNSUPPORTED, ConfigError, PipelineConfig

__all__ = ["ENV", "ClusterError", "Member", "from_environment", "strategy", "train_local_cluster",
           "worker_failpoint"]

log = logging.getLogger(__name__)

ENV = "TF_CONFIG"
STRATEGY_NAME = "MultiWorkerMirroredStrategy"
TAIL_LINES = 40
STOP_GRACE_SECONDS = 5.0


class ClusterError(RuntimeError):
    """A worker of a cluster failed, or the cluster could not be set up."""


# --- who this process is ---------------------------------------------------------------------


@dataclass(frozen=True)
class Member:
    """This process's place in a cluster: its task (``chief`` or ``worker``) and index, and
    the number of training processes (chief and workers)."""

    task_type: str
    index: int
    workers: int
    chief: bool

    @property
    def name(self) -> str:
        """``<task type> <index>`` (``worker 2``), how the logs name this member."""
        return f"{self.task_type} {self.index}"


def from_environment(env: Mapping[str, str] | None = None) -> Member | None:
    """The member ``TF_CONFIG`` makes of this process, or None without ``TF_CONFIG``.

    Raises :class:`ConfigError` for a ``TF_CONFIG`` that is not JSON, lacks ``cluster`` or
    ``task``, names parameter servers, or gives this process a task type that does not train.
    """
    raw = (os.environ if env is None else env).get(ENV, "").strip()
    if not raw:
        return None
    try:
        spec = json.loads(raw)
        cluster, task = spec["cluster"], spec["task"]
        task_type, index = str(task["type"]), int(task["index"])
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"{ENV} must be JSON like {{\"cluster\": {{\"worker\": [\"host:port\", "
                          f"...]}}, \"task\": {{\"type\": \"worker\", \"index\": 0}}}}; got "
                          f"{raw[:200]!r} ({exc})") from None
    if cluster.get("ps"):
        raise ConfigError(f"{ENV} names {len(cluster['ps'])} ps task(s): {PS_UNSUPPORTED}")
    if task_type not in ("chief", "worker"):
        raise ConfigError(f"{ENV} gives this process the task type {task_type!r}; the train "
                          "task runs as 'chief' or 'worker' only (MultiWorkerMirroredStrategy)")
    chiefs, workers = len(cluster.get("chief") or []), len(cluster.get("worker") or [])
    if index < 0 or index >= (chiefs if task_type == "chief" else workers):
        raise ConfigError(f"{ENV}: task {task_type} {index} is not in its cluster "
                          f"({chiefs} chief, {workers} worker)")
    chief = task_type == "chief" or (chiefs == 0 and index == 0)
    return Member(task_type, index, chiefs + workers, chief)


_STRATEGY: Any = None


def strategy() -> Any:
    """This process's ``MultiWorkerMirroredStrategy`` (one per process: created on the first
    call, from ``TF_CONFIG``).  Call it before any other TensorFlow operation of the process:
    collective ops must be configured at program start."""
    global _STRATEGY
    if _STRATEGY is None:
        import tensorflow as tf

        options = tf.distribute.experimental.CommunicationOptions(
            implementation=tf.distribute.experimental.CommunicationImplementation.RING)
        try:
            _STRATEGY = tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)
        except (RuntimeError, ValueError) as exc:
            raise ClusterError(f"cannot join the cluster of {ENV}={os.environ.get(ENV)!r}: "
                               f"{exc} (the strategy must be created before any other "
                               "TensorFlow operation of the process)") from exc
        # Every worker has the same number of steps, each with rows (make_dataset), so the
        # input needs no "has every worker still data?" all-reduce at every step (TF's
        # partial-batch handling, on by default in multi-worker mode)
        _STRATEGY.extended.experimental_enable_get_next_as_optional = False
    return _STRATEGY


def worker_failpoint(member: Member) -> str:
    """The failpoint (:mod:`dropoutnet.core.failpoints`) a worker passes once it joined the
    cluster: ``train.cluster_worker<i>`` (``train.cluster_chief`` for a chief task)."""
    return "train.cluster_chief" if member.task_type == "chief" else \
        f"train.cluster_worker{member.index}"


# --- the local launcher ----------------------------------------------------------------------


def _free_ports(n: int) -> list[int]:
    """``n`` distinct TCP ports free on localhost now (held together while chosen)."""
    socks = []
    try:
        for _ in range(n):
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            socks.append(sock)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _die_with_parent() -> None:  # runs in the child between fork and exec
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:  # not Linux: the launcher's finally still stops the workers
        pass


class _Worker:
    """One launched worker: its process, and a thread streaming its output into our log."""

    def __init__(self, index: int, job: Path, tf_config: dict[str, Any]) -> None:
        self.index = index
        self.tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
        env = {**os.environ, ENV: json.dumps(tf_config)}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "dropoutnet.training.worker", str(job)], env=env,
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            start_new_session=True, preexec_fn=_die_with_parent)
        self.reader = threading.Thread(target=self._stream, name=f"cluster-worker-{index}",
                                       daemon=True)
        self.reader.start()

    def _stream(self) -> None:
        for raw in iter(self.proc.stdout.readline, b""):
            line = raw.decode(errors="replace").rstrip()
            self.tail.append(line)
            log.info("[worker %d] %s", self.index, line)
        self.proc.stdout.close()

    def signal_group(self, sig: int) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                pass


def _describe(code: int) -> str:
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


def _stop(workers: Sequence[_Worker]) -> None:
    """SIGTERM to every live worker's process group, SIGKILL to what is left after a grace."""
    for w in workers:
        w.signal_group(signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE_SECONDS
    for w in workers:
        try:
            w.proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            pass
    for w in workers:
        w.signal_group(signal.SIGKILL)
        w.proc.wait()
    for w in workers:
        w.reader.join(timeout=5)


def train_local_cluster(cfg: PipelineConfig, bizdate: dt.date, url: str | None,
                        boundaries: Mapping[str, Sequence[float]], checkpoint_dir: Path,
                        warm_start_dir: Path | None, workers: int, *,
                        table: str = "samples", epochs: int | None = None) -> dict[str, Any]:
    """Train the bizdate's model on ``workers`` local processes; return the chief's stats
    (:func:`dropoutnet.training.fit.train_samples`) with ``cluster`` filled in: the workers, the
    rows each trained on, each one's seconds.

    The chief writes ``checkpoint_dir`` exactly as one process would.  Raises
    :class:`ClusterError` (with the worker's log tail) when a worker fails; no worker
    process is left running when this returns or raises.
    """
    folder = Path(tempfile.mkdtemp(prefix="dropoutnet-cluster-"))
    job = folder / "job.json"
    job.write_text(json.dumps({
        "config": cfg.model_dump(mode="json", by_alias=True),
        "bizdate": bizdate.isoformat(), "url": url, "table": table, "epochs": epochs,
        "boundaries": {k: [float(b) for b in v] for k, v in boundaries.items()},
        "checkpoint_dir": str(checkpoint_dir),
        "warm_start_dir": None if warm_start_dir is None else str(warm_start_dir),
        "stats_dir": str(folder),
    }))
    addresses = [f"localhost:{p}" for p in _free_ports(workers)]
    log.info("launching a local cluster of %d workers (%s) on %s", workers, STRATEGY_NAME,
             ", ".join(addresses))
    launched: list[_Worker] = []
    started = time.monotonic()
    try:
        for i in range(workers):
            launched.append(_Worker(i, job, {"cluster": {"worker": addresses},
                                             "task": {"type": "worker", "index": i}}))
        log.info("cluster worker pids: %s", [w.proc.pid for w in launched])
        while True:
            codes = [w.proc.poll() for w in launched]
            failed = [w for w, c in zip(launched, codes) if c not in (None, 0)]
            if failed:
                bad = failed[0]
                bad.reader.join(timeout=5)
                _stop(launched)
                tail = "\n".join(bad.tail) or "(no output)"
                raise ClusterError(
                    f"cluster worker {bad.index} of {workers} failed "
                    f"({_describe(bad.proc.returncode)}); the other workers were stopped.  "
                    f"Worker {bad.index}'s log ends:\n{tail}")
            if all(c == 0 for c in codes):
                break
            time.sleep(0.2)
        for w in launched:
            w.reader.join(timeout=5)
        per_worker = []
        for i in range(workers):
            path = folder / f"stats-{i}.json"
            if not path.is_file():
                raise ClusterError(f"cluster worker {i} exited 0 without its stats ({path})")
            per_worker.append(json.loads(path.read_text()))
    finally:
        _stop(launched)
        shutil.rmtree(folder, ignore_errors=True)
    stats = per_worker[0]
    stats["cluster"] = {
        **stats["cluster"], "launched": "local", "addresses": addresses,
        "seconds": round(time.monotonic() - started, 2),
        "per_worker": [{"index": i, "pid": w.proc.pid,
                        "rows_trained": s["cluster"]["rows_trained"],
                        "seconds": s["cluster"]["seconds"]}
                       for i, (w, s) in enumerate(zip(launched, per_worker))],
    }
    stats["cluster"].pop("rows_trained", None)
    stats["cluster"].pop("task", None)
    return stats
