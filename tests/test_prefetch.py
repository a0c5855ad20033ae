"""core.prefetch: items made ahead in a thread come in order, an error comes where its item
would have, and a consumer that stops early stops the thread and closes the source."""

from __future__ import annotations

import threading

import pytest

from dropoutnet.core.prefetch import prefetched


def test_items_come_in_order_made_by_another_thread():
    makers = []

    def source():
        for k in range(50):
            makers.append(threading.current_thread().name)
            yield k

    assert list(prefetched(source(), depth=3)) == list(range(50))
    assert set(makers) == {"prefetch"}


def test_an_error_comes_where_its_item_would_have():
    def source():
        yield 1
        yield 2
        raise ValueError("chunk 3 is malformed")

    got = []
    with pytest.raises(ValueError, match="chunk 3 is malformed"):
        for item in prefetched(source()):
            got.append(item)
    assert got == [1, 2]


def test_a_consumer_that_stops_early_closes_the_source_in_its_thread():
    closed = threading.Event()
    made = []

    def source():
        try:
            for k in range(10_000):
                made.append(k)
                yield k
        finally:
            closed.set()

    items = prefetched(source(), depth=2)
    assert [next(items) for _ in range(3)] == [0, 1, 2]
    items.close()
    assert closed.is_set() and len(made) < 10
    assert not [t for t in threading.enumerate() if t.name == "prefetch"]
