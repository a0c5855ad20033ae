"""``stream``: the stream worker that embeds new items from the change log."""

from __future__ import annotations

import urllib.parse

from pydantic import Field, field_validator

from dropoutnet.config.base import Strict


class StreamConfig(Strict):
    """The stream worker (``dropoutnet stream``, :mod:`dropoutnet.stream.worker`).

    It embeds items created within ``window_hours`` whose rows (or the rows their features
    read) change, in batches of up to ``batch_size`` changes collected for at most
    ``batch_wait_ms``; with ``flush_when_idle`` (the default) a batch goes as soon as the
    change log has been quiet for ``batch_idle_ms``, so that at low rates an item waits for
    no timer, while under load, when changes come closer together, batches fill and share
    their fixed costs.  The item tower is the active version's, served at ``service_url``
    (the model service, ``dropoutnet serve``; its bearer token from ``token_env`` when set).
    While it runs it serves Prometheus metrics on ``metrics_host:metrics_port`` (0 = off) and
    records its progress every ``heartbeat_seconds``; a slot that no worker has read for
    ``stale_after_minutes`` is reported stale (it keeps the change log from being recycled).
    """

    window_hours: float = Field(default=24, gt=0)
    batch_size: int = Field(default=256, ge=1)
    batch_wait_ms: int = Field(default=200, ge=1)
    flush_when_idle: bool = True
    batch_idle_ms: float = Field(default=5, gt=0)
    service_url: str = "http://127.0.0.1:8501"
    token_env: str = "DROPOUTNET_SERVING_TOKEN"
    retry_max_seconds: float = Field(default=30, gt=0)
    metrics_host: str = "127.0.0.1"
    metrics_port: int = Field(default=9464, ge=0, le=65535)
    heartbeat_seconds: float = Field(default=5, gt=0)
    stale_after_minutes: float = Field(default=30, gt=0)

    @field_validator("service_url")
    @classmethod
    def _service_url(cls, v: str) -> str:
        parts = urllib.parse.urlsplit(v)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{v!r} is not an http(s) URL with a host; for example "
                             "http://model-service:8501")
        return v

