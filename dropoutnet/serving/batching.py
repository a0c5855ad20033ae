"""Server-side batching: concurrent small requests of one model version become one call.

The first request of a batch starts a timer of ``timeout_ms``; requests of the same version
that arrive before it fires (or until ``max_batch_size`` rows are waiting) join the batch.
The batch's inputs are concatenated, predicted in one TensorFlow call on a worker thread, and
each request gets its own rows back.  While a batch runs, the next one fills, so batching
also pipelines.  A request at least ``max_batch_size`` rows long runs on its own at once.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

Predict = Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]


@dataclass
class _Pending:
    predict: Predict
    items: list[tuple[dict[str, np.ndarray], int, asyncio.Future]] = field(default_factory=list)
    rows: int = 0
    timer: asyncio.TimerHandle | None = None


class Batcher:
    def __init__(self, max_batch_size: int, timeout_ms: float,
                 on_batch: Callable[[int, int], None] | None = None) -> None:
        self.max_batch_size = max_batch_size
        self.timeout = timeout_ms / 1000.0
        self.on_batch = on_batch  # (requests, rows) of every executed batch, for metrics
        self._pending: dict[Any, _Pending] = {}

    async def predict(self, key: Any, predict: Predict, inputs: dict[str, np.ndarray],
                      rows: int) -> dict[str, np.ndarray]:
        if rows >= self.max_batch_size:
            if self.on_batch:
                self.on_batch(1, rows)
            return await asyncio.to_thread(predict, inputs)
        loop = asyncio.get_running_loop()
        pending = self._pending.get(key)
        if pending is not None and pending.rows + rows > self.max_batch_size:
            self._flush(key)
            pending = None
        if pending is None:
            pending = self._pending[key] = _Pending(predict)
        future: asyncio.Future = loop.create_future()
        pending.items.append((inputs, rows, future))
        pending.rows += rows
        if pending.rows >= self.max_batch_size or self.timeout == 0:
            self._flush(key)
        elif pending.timer is None:
            pending.timer = loop.call_later(self.timeout, self._flush, key)
        return await future

    def _flush(self, key: Any) -> None:
        pending = self._pending.pop(key, None)
        if pending is None:
            return
        if pending.timer is not None:
            pending.timer.cancel()
        asyncio.get_running_loop().create_task(self._run(pending))

    async def _run(self, pending: _Pending) -> None:
        items = pending.items
        if self.on_batch:
            self.on_batch(len(items), pending.rows)
        try:
            if len(items) == 1:
                merged = items[0][0]
            else:
                merged = {k: np.concatenate([inputs[k] for inputs, _, _ in items])
                          for k in items[0][0]}
            outputs = await asyncio.to_thread(pending.predict, merged)
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
