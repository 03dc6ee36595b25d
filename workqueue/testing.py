"""Test handlers without a server: an in-memory queue that runs the real scripts.

`memory_queue()` returns a `Queue` backed by fakeredis (with its Lua support),
driven by the same Lua scripts as production, so what a handler sees in a unit
test is what it sees on Redis. `ManualClock` moves the queue's time by hand, to
test lease expiry and retry delays without sleeping::

    from workqueue.testing import ManualClock, memory_queue

    clock = ManualClock()
    queue = memory_queue(clock=clock, lease_seconds=10)
    queue.enqueue_texts(['{"n": 1}'])
    clock.advance(11)          # any lease taken now has expired

`consumer.testing.run_items` runs a handler over a list of items with it.
"""

from __future__ import annotations

import time
from typing import Any

from workqueue.connection import Connection
from workqueue.queue import Queue
from workqueue.settings import Settings, load_settings


class ManualClock:
    """A clock in milliseconds that moves only when told; pass it as a queue's clock."""

    def __init__(self, start_ms: int | None = None) -> None:
        self.now_ms = int(time.time() * 1000) if start_ms is None else start_ms

    def advance(self, seconds: float) -> None:
        self.now_ms += int(seconds * 1000)

    def __call__(self) -> int:
        return self.now_ms


def memory_queue(
    name: str = "test",
    *,
    clock: ManualClock | None = None,
    settings: Settings | None = None,
    **overrides: Any,
) -> Queue:
    """A queue held in memory by fakeredis. Settings default as usual, except that
    retries are due at once (``retry_base_seconds=0``) unless overridden."""
    try:
        import fakeredis  # noqa: PLC0415 - an optional dependency (workqueue[testing])
    except ImportError as exc:  # pragma: no cover - depends on the installation
        raise ImportError(
            "workqueue.testing needs fakeredis with Lua: pip install 'workqueue[testing]'"
        ) from exc
    if settings is None:
        overrides.setdefault("retry_base_seconds", 0.0)
        settings = load_settings(**overrides)
    client = fakeredis.FakeRedis(decode_responses=True)
    connection = Connection(settings, client=client, check_version=False)
    if clock is None:
        return Queue(name, connection)
    return Queue(name, connection, now_ms=clock)
