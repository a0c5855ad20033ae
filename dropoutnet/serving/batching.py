"""Server-side batching: concurrent small requests of one model version become one call.

Adaptive, so that batching costs no latency when there is nothing to batch: a request that
finds its version idle (no call running, none waiting) runs at once.  Requests that arrive
while a call runs wait for it and go together as the next call, as soon as the running one
ends; ``timeout_ms`` bounds that wait, and ``max_batch_size`` rows start a call at once.
The batch's requests go to one ``predict`` call on a worker thread (which makes their
arrays: see :meth:`~.versions.Version.predict_requests`), and each request gets its own rows
back.  A request of at least ``max_batch_size`` rows runs on its own.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

Predict = Callable[[list[Any]], dict[str, np.ndarray]]
"""Outputs for a list of requests' inputs: one row per input row, in the requests' order."""


@dataclass
class _Pending:
    predict: Predict
    key: Any = None
    items: list[tuple[Any, int, asyncio.Future]] = field(default_factory=list)
    rows: int = 0
    timer: asyncio.TimerHandle | None = None


class Batcher:
    """Merges concurrent predict calls per key (one loaded model version) into batched calls,
    as described above; ``on_batch`` is told each call's request and row counts."""

    def __init__(self, max_batch_size: int, timeout_ms: float,
                 on_batch: Callable[[int, int], None] | None = None) -> None:
        self.max_batch_size = max_batch_size
        self.timeout = timeout_ms / 1000.0
        self.on_batch = on_batch  # (requests, rows) of every executed batch, for metrics
        self._pending: dict[Any, _Pending] = {}
        self._running: dict[Any, int] = {}  # calls in progress per key

    async def predict(self, key: Any, predict: Predict, inputs: Any,
                      rows: int) -> dict[str, np.ndarray]:
        """The outputs of one request's ``inputs`` (``rows`` rows), computed by ``predict``
        together with the other requests of the same ``key``; returns this request's own
        rows of the outputs."""
        if rows >= self.max_batch_size:
            if self.on_batch:
                self.on_batch(1, rows)
            return await asyncio.to_thread(predict, [inputs])
        loop = asyncio.get_running_loop()
        pending = self._pending.get(key)
        if pending is not None and pending.rows + rows > self.max_batch_size:
            self._flush(key)
            pending = None
        if pending is None:
            pending = self._pending[key] = _Pending(predict, key)
        future: asyncio.Future = loop.create_future()
        pending.items.append((inputs, rows, future))
        pending.rows += rows
        if (pending.rows >= self.max_batch_size or self.timeout == 0
                or not self._running.get(key)):
            self._flush(key)  # full, or nothing running to wait for: go now
        elif pending.timer is None:
            pending.timer = loop.call_later(self.timeout, self._flush, key)
        return await future

    def _flush(self, key: Any) -> None:
        pending = self._pending.pop(key, None)
        if pending is None:
            return
        if pending.timer is not None:
            pending.timer.cancel()
        self._running[key] = self._running.get(key, 0) + 1
        asyncio.get_running_loop().create_task(self._run(pending))

    async def _run(self, pending: _Pending) -> None:
        try:
            await self._call(pending)
        finally:
            key = pending.key
            self._running[key] -= 1
            if not self._running[key]:
                del self._running[key]
                self._flush(key)  # what gathered while this call ran goes next, at once

    async def _call(self, pending: _Pending) -> None:
        items = pending.items
        if self.on_batch:
            self.on_batch(len(items), pending.rows)
        try:
            outputs = await asyncio.to_thread(pending.predict, [inputs for inputs, _, _ in items])
        except Exception as err:  # noqa: BLE001 - every waiting request gets the error
            for _, _, future in items:
                if not future.done():
                    future.set_exception(err)
            return
        start = 0
        for _, rows, future in items:
            if not future.done():
                future.set_result({k: v[start:start + rows] for k, v in outputs.items()})
            start += rows
