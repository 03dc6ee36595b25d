"""Handlers that tests/test_consumer_processes.py runs inside real consumer processes.

The consumer subprocess imports this module through PYTHONPATH. Each handler
appends one line to the file named by ``$WQT_LOG`` when an item starts and one
when it ends, so the test can see which process ran what, when, at which
attempt, and how runs overlapped::

    start <id> <pid> <time.time()> <attempt> <queue>
    end <id> <pid> <time.time()> <attempt> <queue>

The id, attempt and queue come from `consumer.current_item()`. An item is a
JSON object whose keys choose the behaviour:

- ``sleep``: seconds to sleep (``$WQT_EXTRA_SLEEP`` is added, to make one
  process of several slow on purpose);
- ``raise``: ``"ValueError"`` raises a ValueError, ``"permanent"`` a
  `consumer.PermanentError`;
- ``result``: returned as is; ``"result_set": true`` returns a set, which is
  not JSON.

Lines are short and written with one ``write`` on a file opened for appending,
so lines of concurrent processes do not interleave.
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

from consumer import PermanentError, current_item

NOT_CALLABLE = 42


def _note(event: str) -> None:
    path = os.environ.get("WQT_LOG")
    if not path:
        return
    ctx = current_item()
    line = f"{event} {ctx.id} {os.getpid()} {time.time():.6f} {ctx.attempt} {ctx.queue}\n"
    with open(path, "a", encoding="utf-8") as out:
        out.write(line)


def _sleep_for(item: dict[str, Any]) -> float:
    return float(item.get("sleep", 0)) + float(os.environ.get("WQT_EXTRA_SLEEP", "0"))


def _outcome(item: dict[str, Any]) -> Any:
    kind = item.get("raise")
    if kind == "ValueError":
        raise ValueError(f"boom on {current_item().id}")
    if kind == "permanent":
        raise PermanentError(f"item {current_item().id} can never succeed")
    if item.get("result_set"):
        return {1, 2, 3}
    return item.get("result")


def work(item: dict[str, Any]) -> Any:
    """The plain handler: note the start, sleep, note the end, then act as the item says."""
    _note("start")
    time.sleep(_sleep_for(item))
    _note("end")
    return _outcome(item)


async def awork(item: dict[str, Any]) -> Any:
    """The coroutine handler: like `work`, with `asyncio.sleep`."""
    _note("start")
    await asyncio.sleep(_sleep_for(item))
    _note("end")
    return _outcome(item)
