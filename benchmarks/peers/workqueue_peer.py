"""What the benchmark does with workqueue itself: produce, drain, check.

Producing goes two ways: the library (`producer.Producer.put_many`, then
`seal`) inside the benchmark's process, and the ``workqueue produce`` command
on a JSON Lines file, as a child process. Draining is always the
``workqueue consume`` command as a child process, at log level WARNING so no
per-item line is written, with the no-op handler of benchmarks/peers/noop.py.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from typing import TypeVar

from producer import Producer
from workqueue.errors import WorkqueueError
from workqueue.queue import Queue
from workqueue.settings import Settings, load_settings

T = TypeVar("T")
HANDLER = "benchmarks.peers.noop:handle"
LOG_LEVEL = "WARNING"


def items(count: int) -> Iterator[dict[str, int]]:
    """The benchmark's items: small JSON objects ``{"n": i}``."""
    return ({"n": i} for i in range(count))


class WorkqueuePeer:
    label = "workqueue"

    def __init__(self, url: str) -> None:
        self.url = url
        self.settings: Settings = load_settings(redis_url=url)

    def env(self) -> dict[str, str]:
        return {"WORKQUEUE_REDIS_URL": self.url}

    def produce(self, name: str, count: int) -> int:
        """Put `count` items with the library and seal the queue; returns the enqueued count."""
        producer = Producer(name, self.settings)
        try:
            producer.put_many(items(count))
            producer.seal()
        finally:
            producer.close()
        return producer.enqueued

    def produce_argv(self, name: str, path: str) -> list[str]:
        return [sys.executable, "-m", "workqueue", "--log-level", LOG_LEVEL, "produce", name, path]

    def drain_argv(self, name: str) -> list[str]:
        return [
            *(sys.executable, "-m", "workqueue", "--log-level", LOG_LEVEL),
            *("consume", name, "--handler", HANDLER),
        ]

    def prepare_empty(self, name: str) -> None:
        """A sealed queue with nothing in it: a consumer there only starts and exits."""
        with_queue(self.settings, name, lambda q: q.seal())

    def check_filled(self, name: str, count: int) -> None:
        stats = with_queue(self.settings, name, lambda q: q.stats())
        if stats.pending != count or not stats.sealed:
            raise WorkqueueError(
                f"queue {name} should hold {count} pending items and be sealed, but has {stats}"
            )

    def check_drained(self, name: str, count: int, output: str) -> None:
        stats = with_queue(self.settings, name, lambda q: q.stats())
        if not stats.finished or stats.done != count:
            raise WorkqueueError(f"queue {name} should be finished with {count} done: {stats}")


def with_queue(settings: Settings, name: str, action: Callable[[Queue], T]) -> T:
    """Open queue `name`, run `action` on it, close it."""
    queue = Queue.from_settings(name, settings)
    try:
        return action(queue)
    finally:
        queue.close()
