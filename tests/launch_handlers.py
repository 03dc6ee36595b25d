"""Handlers that consumer pods run in the launcher tests (local engine, real processes).

The pods import this module by name (``launch_handlers:double`` and so on),
either because they run in this directory (the launcher's working directory
is theirs) or through PYTHONPATH. Every item is a JSON object ``{"n": int}``
with optional keys the handlers read.

`noted` appends one line per start and per end of an item to the file named
by ``$WQL_LOG``, so a test can see which process ran an item, at which attempt::

    start <id> <pid> <attempt>
    end <id> <pid> <attempt>

Each line is written with one ``write`` on a file opened for appending, so the
lines of concurrent processes do not interleave.

`flush_calls` is for the tests themselves: it tells a queue emptied by another
test session sharing the database from a fault of the code under test.
"""

from __future__ import annotations

import os
import time
from typing import Any

import redis

from consumer import PermanentError, current_item

#: The one item `dead_letters_one` gives up on.
DEAD_ID = "item-0007"


def double(item: dict[str, Any]) -> int:
    """A fast handler with a result the test can check."""
    return int(item["n"]) * 2


def dead_letters_one(item: dict[str, Any]) -> int:
    """Like `double`, but `DEAD_ID` can never succeed and is dead-lettered."""
    if current_item().id == DEAD_ID:
        raise PermanentError(f"{DEAD_ID} is refused on purpose")
    return double(item)


def _note(event: str) -> None:
    ctx = current_item()
    with open(os.environ["WQL_LOG"], "a", encoding="utf-8") as out:
        out.write(f"{event} {ctx.id} {os.getpid()} {ctx.attempt}\n")


def noted(item: dict[str, Any]) -> int:
    """Note the start, sleep ``item["sleep"]`` seconds, note the end.

    An item with ``"stall_first": true`` sleeps a minute on its first attempt,
    long enough for the test to kill the process in the middle of it.
    """
    _note("start")
    stall = item.get("stall_first") and current_item().attempt == 1
    time.sleep(60.0 if stall else float(item.get("sleep", 0)))
    _note("end")
    return double(item)


# -- for the tests themselves, not the pods --------------------------------------------


def flush_calls(redis_url: str) -> int | None:
    """FLUSHDB and FLUSHALL calls the server has run, or None if it will not say.

    Test sessions that share a database each flush it when they start; a queue
    that empties under a running test is explained by a change of this count.
    """
    client = redis.Redis.from_url(redis_url)
    try:
        stats = client.info("commandstats")
    except redis.RedisError:
        return None
    finally:
        client.close()
    return sum(int(stats.get(f"cmdstat_{c}", {}).get("calls", 0)) for c in ("flushdb", "flushall"))
