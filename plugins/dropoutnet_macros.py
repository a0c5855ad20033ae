"""Airflow plugin ``dropoutnet``: template macros for the run's bizdate.

In any templated field::

    {{ macros.dropoutnet.bizdate(params.bizdate, data_interval_start) }}        -> 2026-11-28
    {{ macros.dropoutnet.bizdate_nodash(params.bizdate, data_interval_start) }} -> 20261128

Both apply the same rule as the DAG's ``resolve_bizdate`` task (the ``bizdate`` param wins, else
the data interval's start).  The module imports nothing heavy: plugins load in every Airflow
process.
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin


def bizdate(param=None, data_interval_start=None, logical_date=None) -> str:
    """The bizdate ``YYYY-MM-DD`` of a run (the ``bizdate`` param, else its data interval)."""
    from dropoutnet.pipeline import resolve_bizdate

    return resolve_bizdate(param, data_interval_start, logical_date)


def bizdate_nodash(param=None, data_interval_start=None, logical_date=None) -> str:
    """The bizdate as ``YYYYMMDD``: the model version under which the run's models are served."""
    return bizdate(param, data_interval_start, logical_date).replace("-", "")


class DropoutNetPlugin(AirflowPlugin):
    name = "dropoutnet"
    macros = [bizdate, bizdate_nodash]
