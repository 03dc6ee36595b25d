"""Run a handler over items in memory, for unit tests of handlers.

    from consumer.testing import run_items

    outcome = run_items(my_handler, [{"n": 1}, {"n": 2}])
    assert outcome.stats.done == 2 and outcome.results["#1"] == ...

It drives the real consumer over `workqueue.testing.memory_queue`, so retries,
dead-lettering and results behave as on a server.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from consumer.consumer import Consumer, Options, Summary
from consumer.loader import Handler
from workqueue.queue import DeadItem, Stats
from workqueue.testing import memory_queue


@dataclass(frozen=True)
class Outcome:
    """What a run did: the queue's final counts, results by id, dead items, the summary."""

    stats: Stats
    results: dict[str, Any]
    dead: list[DeadItem]
    summary: Summary
    exit_code: int


def run_items(
    handler: Handler,
    items: Iterable[Any],
    *,
    ids: Sequence[str] | None = None,
    **settings: Any,
) -> Outcome:
    """Enqueue `items` in a fresh in-memory queue, seal it, and drain it with `handler`."""
    queue = memory_queue(**settings)
    texts = [json.dumps(item) for item in items]
    for start in range(0, len(texts), 1000):
        part_ids = None if ids is None else list(ids[start : start + 1000])
        queue.enqueue_texts(texts[start : start + 1000], part_ids)
    queue.seal()
    consumer = Consumer(queue, handler, Options(install_signal_handlers=False))
    code = consumer.run()
    all_ids = list(ids) if ids is not None else [f"#{n}" for n in range(1, len(texts) + 1)]
    results = {item_id: queue.result(item_id) for item_id in all_ids}
    return Outcome(
        queue.stats(),
        {k: v for k, v in results.items() if v is not None},
        queue.dead_items(len(texts) or 1),
        consumer.summary,
        code,
    )
