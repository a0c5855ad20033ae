"""The errors every step may raise; the ground floor of the package (imports nothing of it).

Each message names the problem and the fix; the CLI prints it as one line and exits 1, and
the DAG's tasks fail with it.
"""


class MissingDataError(RuntimeError):
    """The raw data or a derived partition, model or version a task needs is not there."""
