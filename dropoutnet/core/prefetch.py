"""An iterator's next items made ahead, in a thread of their own, while the caller works on the
current one: a two-stage pipeline.

The embedding steps read a chunk of features from Postgres and run the tower on it, then
encode the vectors and send them with COPY.  One after the other, each stage waits for the
others: the server computes the next chunk only when it is asked, and COPY sends nothing
while the tower runs.  The reading, the tower and COPY's sending release the GIL (network
waits, TensorFlow's kernels, libpq), so a thread making the next chunks while the caller
sends this one overlaps them on a machine's cores.
"""

from __future__ import annotations

import queue
import threading
from typing import Iterable, Iterator, TypeVar

T = TypeVar("T")

_DONE = object()


class _Failed:
    def __init__(self, error: BaseException) -> None:
        self.error = error


def prefetched(items: Iterable[T], depth: int = 2) -> Iterator[T]:
    """Yield ``items`` in order, up to ``depth`` of them made ahead by a background thread
    (``depth`` 0: made here, as they are asked for, with no thread).

    An error raised while making an item is raised here, where that item would have come.
    When the caller stops early (an error of its own, or ``close()``), the thread stops at
    its next item and closes ``items`` (a generator's ``finally`` runs in that thread, where
    its resources were opened)."""
    if depth <= 0:
        yield from items  # (closing this closes ``items``)
        return
    ahead: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(value) -> bool:
        while not stop.is_set():
            try:
                ahead.put(value, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def make() -> None:
        source = iter(items)
        try:
            for item in source:
                if not put(item):
                    break
            else:
                put(_DONE)
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer
            put(_Failed(exc))
        finally:
            close = getattr(source, "close", None)
            if close is not None:
                close()

    thread = threading.Thread(target=make, name="prefetch", daemon=True)
    thread.start()
    try:
        while True:
            value = ahead.get()
            if value is _DONE:
                return
            if isinstance(value, _Failed):
                raise value.error
            yield value
    finally:
        stop.set()
        thread.join()
