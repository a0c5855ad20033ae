"""The errors every step may raise; the ground floor of the package (imports nothing of it).

Each message names the problem and the fix; the CLI prints it as one line and exits 1, and
the DAG's tasks fail with it.  Errors that belong to one concept live beside it (a bad config
in :mod:`dropoutnet.config`, a bad day in :mod:`dropoutnet.core.dates`, a bad recall request
in :mod:`dropoutnet.recall.retrieval`).
"""


class MissingDataError(RuntimeError):
    """The raw data or a derived partition, model or version a task needs is not there."""


class RunLockError(RuntimeError):
    """Another pipeline run holds the model's run lock (:mod:`dropoutnet.registry.lock`):
    every task takes it, so every task may raise this."""


class QualityGateError(RuntimeError):
    """The new version is worse than the active one by more than the tolerance, or the gate
    has no figure to decide on (:mod:`dropoutnet.steps.publish`): retrying measures the same
    figures again, so the DAG fails the run at once."""
