"""``cold_start_recall``: the template section of EasyRec's DropoutNet recipe, verbatim (model
name and type, the label and its SQL selection, ``train_days``)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from dropoutnet.config.base import Identifier, Strict


class LabelConfig(Strict):
    """``cold_start_recall.label``: the training label of a sample, by name, how it is computed
    from the sample's events (an SQL aggregate) and its type (binary classification)."""

    name: Identifier("label name")
    selection: str = Field(description="SQL aggregate over one sample's events, e.g. "
                                       "max(case when event_type = 'click' then 1 else 0 end); "
                                       "pasted into samples.sql and run by the pipeline's "
                                       "database role, so the config file is trusted code: it "
                                       "must come from the people who can change the DAG")
    type: Literal["CLASSIFICATION"]


class ColdStartRecall(Strict):
    """``cold_start_recall``: the model's name (the key of its runs, versions, run lock and
    artifact folders), its type, its label and ``train_days``, the days of samples one run
    trains on."""

    model_name: Identifier("model_name")
    model_type: Literal["dropoutnet"]
    label: LabelConfig
    train_days: int = Field(ge=1, le=365)
