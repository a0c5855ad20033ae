"""Server-side batching: concurrent small requests of one model version become one call.

Adaptive, so that batching costs no latency when there is nothing to batch: a request that
finds its version idle (no call running, none waiting) runs at once.  Requests that arrive
while calls run gather into the next batch, which goes as soon as a call ends.  At most
``max_concurrent_batches`` calls of one version run at once (TensorFlow Serving's
``num_batch_threads``): a small model's call gains nothing from a second one beside it on a
few cores, and each call holds the interpreter for its Python part, so a second call mostly
delays the first and splits the batch.  Below that cap, ``timeout_ms`` bounds how long a batch
waits behind the running calls before it starts a call of its own; at the cap it keeps
gathering until a call ends.  ``max_batch_size`` rows close a batch at once (it queues if
every slot is busy); a request of at least ``max_batch_size`` rows runs on its own.

A batch's requests go to one ``predict`` call on a worker thread (which makes their arrays:
see :meth:`~.versions.Version.predict_requests`), and each request gets its own rows back.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

Predict = Callable[[list[Any]], dict[str, np.ndarray]]
"""Outputs for a list of requests' inputs: one row per input row, in the requests' order."""


@dataclass
class _Batch:
    predict: Predict
    key: Any = None
    items: list[tuple[Any, int, asyncio.Future]] = field(default_factory=list)
    rows: int = 0
    timer: asyncio.TimerHandle | None = None


class Batcher:
    """Merges concurrent predict calls per key (one loaded model version) into batched calls,
    as described above; ``on_batch`` is told each call's request and row counts."""

    def __init__(self, max_batch_size: int, timeout_ms: float, max_concurrent_batches: int = 1,
                 on_batch: Callable[[int, int], None] | None = None) -> None:
        self.max_batch_size = max_batch_size
        self.timeout = timeout_ms / 1000.0
        self.max_concurrent = max_concurrent_batches
        self.on_batch = on_batch  # (requests, rows) of every executed batch, for metrics
        self._open: dict[Any, _Batch] = {}          # the batch gathering requests, per key
        self._queued: dict[Any, deque[_Batch]] = {}  # full batches waiting for a free slot
        self._running: dict[Any, int] = {}           # calls in progress per key

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
        batch = self._open.get(key)
        if batch is not None and batch.rows + rows > self.max_batch_size:
            self._close(key)
            batch = None
        if batch is None:
            batch = self._open[key] = _Batch(predict, key)
        future: asyncio.Future = loop.create_future()
        batch.items.append((inputs, rows, future))
        batch.rows += rows
        running = self._running.get(key, 0)
        if batch.rows >= self.max_batch_size or not running:
            self._close(key)  # full, or nothing running to wait for: go now
        elif running < self.max_concurrent:
            if self.timeout == 0:
                self._close(key)
            elif batch.timer is None:
                batch.timer = loop.call_later(self.timeout, self._close, key)
        return await future

    def _close(self, key: Any) -> None:
        """Close the open batch of ``key``: start it if a slot is free; else a full batch
        queues, and one that is not full keeps gathering (a call's end starts it)."""
        batch = self._open.get(key)
        if batch is None:
            return
        if batch.timer is not None:
            batch.timer.cancel()
            batch.timer = None
        if self._running.get(key, 0) < self.max_concurrent:
            del self._open[key]
            self._start(batch)
        elif batch.rows >= self.max_batch_size:
            del self._open[key]
            self._queued.setdefault(key, deque()).append(batch)

    def _start(self, batch: _Batch) -> None:
        self._running[batch.key] = self._running.get(batch.key, 0) + 1
        asyncio.get_running_loop().create_task(self._run(batch))

    async def _run(self, batch: _Batch) -> None:
        try:
            await self._call(batch)
        finally:
            key = batch.key
            self._running[key] -= 1
            if not self._running[key]:
                del self._running[key]
            queued = self._queued.get(key)
            if queued:
                self._start(queued.popleft())
                if not queued:
                    del self._queued[key]
            else:
                self._close(key)  # what gathered while this call ran goes next, at once

    async def _call(self, batch: _Batch) -> None:
        items = batch.items
        if self.on_batch:
            self.on_batch(len(items), batch.rows)
        try:
            outputs = await asyncio.to_thread(batch.predict, [inputs for inputs, _, _ in items])
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
