"""The example handler of the k8s/ walk-through: squares numbers, slowly.

Items are JSON objects such as ``{"n": 7}``; the handler returns
``{"n": 7, "square": 49}``, which the consumer stores as the item's result.
An item without an integer ``n`` can never succeed, so it is dead-lettered at
once with `PermanentError` instead of being retried.
"""

from __future__ import annotations

import logging
import time

from workqueue.errors import PermanentError

log = logging.getLogger(__name__)

# Stand-in for real work, so that several consumers visibly share the queue.
WORK_SECONDS = 0.5


def handle(item: object) -> dict[str, int]:
    """Square ``item["n"]``."""
    if not isinstance(item, dict) or type(item.get("n")) is not int:
        raise PermanentError(f"expected an object with an integer 'n', not {item!r}")
    n: int = item["n"]
    time.sleep(WORK_SECONDS)
    log.debug("squared %d", n)
    return {"n": n, "square": n * n}
