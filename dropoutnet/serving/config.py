"""The model service's JSON config, in the shape of PAI-EAS's ``eascmd`` service config.

::

    {
      "name": "sv_dropoutnet_item",
      "model_path": "/srv/dropoutnet/serving/sv_dropoutnet_item",
      "processor": "tensorflow_cpu",
      "metadata": {"cpu": 2, "instance": 1, "memory": 2000}
    }

``model_path`` is a TensorFlow Serving base path: one folder per version, named by an
integer (the bizdate as yyyymmdd), each holding a SavedModel.  ``metadata.instance`` is the
number of server worker processes, ``metadata.cpu`` the TensorFlow threads of each, and
``metadata.memory`` (MB) is recorded for the operator (the local runner does not enforce it).
Everything past eascmd's keys is optional: more models on the same server, the address,
version policy, batching and safety settings.
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from dropoutnet.config import ConfigError, format_errors
from dropoutnet.config.base import ServedName

PROCESSORS = ("tensorflow_cpu", "tensorflow")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Resources(_Strict):
    """``metadata``: the server's worker processes and TensorFlow threads (memory is only
    recorded), as eascmd's resource block names them."""

    cpu: int = Field(default=1, ge=1, le=64, description="TensorFlow threads per worker")
    instance: int = Field(default=1, ge=1, le=16, description="server worker processes")
    memory: int | None = Field(default=None, ge=1, description="MB, informational")


class Batching(_Strict):
    """Server-side batching: concurrent requests of one model version are merged into one
    call of up to ``max_batch_size`` rows; at most ``max_concurrent_batches`` calls of a
    version run at once (TF Serving's ``num_batch_threads``), and below that cap a batch
    waits at most ``timeout_ms`` behind the running calls before it starts another
    (:mod:`dropoutnet.serving.batching`)."""

    enabled: bool = True
    max_batch_size: int = Field(default=256, ge=1, le=100_000)
    timeout_ms: float = Field(default=2.0, ge=0.0, le=1000.0)
    max_concurrent_batches: int = Field(default=1, ge=1, le=64)


class ServiceConfig(_Strict):
    """One model service: its name and model base path (eascmd's keys), further models, the
    address, how often version folders are polled and how many kept loaded, the request
    size limit, batching and where the bearer token is read from."""

    name: ServedName("name")
    model_path: Path
    processor: str = "tensorflow_cpu"
    metadata: Resources = Field(default_factory=Resources)
    # further models served by the same server: name -> base path (e.g. the user tower)
    models: dict[ServedName("models key"), Path] = Field(default_factory=dict)
    host: str = "127.0.0.1"
    port: int = Field(default=8501, ge=0, le=65535)
    poll_seconds: float = Field(default=5.0, gt=0.0, le=3600.0)
    keep_versions: int = Field(default=2, ge=1, le=100)
    max_body_bytes: int = Field(default=4 * 1024 * 1024, ge=1024)
    batching: Batching = Field(default_factory=Batching)
    # the bearer token is read from this environment variable (never from the file, never
    # logged); unset or empty: no token required
    token_env: str = "DROPOUTNET_SERVING_TOKEN"

    @field_validator("processor")
    @classmethod
    def _processor(cls, v: str) -> str:
        if v not in PROCESSORS:
            raise ValueError(f"unknown processor {v!r}; this server runs TensorFlow "
                             f"SavedModels: use one of {', '.join(PROCESSORS)}")
        return v

    def model_paths(self) -> dict[str, Path]:
        """Every served model: the service's own (named like the service) and the extras."""
        out = {self.name: self.model_path}
        out.update(self.models)
        return out


def parse_service_config(data: object, where: str) -> ServiceConfig:
    """Validate a parsed service config; :class:`ConfigError` naming ``where`` and each key."""
    try:
        return ServiceConfig.model_validate(data)
    except ValidationError as err:
        raise ConfigError(format_errors(err, f"invalid service config {where}")) from None


def load_service_config(path: str | Path) -> ServiceConfig:
    """Read and validate a service config file; :class:`ConfigError` with the fix otherwise."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"service config {path} does not exist")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ConfigError(f"service config {path} is not valid JSON: {err.msg} at line "
                          f"{err.lineno}, column {err.colno}") from None
    return parse_service_config(data, str(path))
