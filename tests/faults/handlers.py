"""The handler the fault scenarios run inside real `workqueue consume` processes.

Imported by the consumer as ``faults.handlers:handle`` (the scenario puts
``tests/`` on PYTHONPATH). An item is a JSON object::

    {"kind": "quick" | "slow" | "flaky" | "poison", "seconds": 0.004, "salt": 17}

The handler appends one line when an execution starts and one when it ends to
the file named by ``$WQF_EVENTS``::

    start <id> <attempt> <pid> <time>
    end <id> <attempt> <pid> <time> ok|error

Each line is one `os.write` on a descriptor opened with ``O_APPEND``: lines of
concurrent threads and processes never interleave, and a process killed
mid-write leaves no half line. A poison item always fails; a flaky item fails
on some of its first two attempts, chosen from (salt, id, attempt) alone, so a
replay fails the same attempts. A success returns ``{"pid": ..., "attempt": ...}``,
stored with the ack, which names the execution the queue counted.
"""

from __future__ import annotations

import os
import random
import threading
import time
from typing import Any

from consumer import current_item

FLAKY_ATTEMPTS = 2  # a flaky item may fail only on attempts up to this one
FLAKY_RATE = 0.6

_lock = threading.Lock()
_fd: int | None = None


class InjectedFailure(Exception):
    """The failure a poison or flaky item raises on purpose."""


def fails(kind: str, salt: int, item_id: str, attempt: int) -> bool:
    """Whether the execution of `item_id` at `attempt` raises."""
    if kind == "poison":
        return True
    if kind != "flaky" or attempt > FLAKY_ATTEMPTS:
        return False
    return random.Random(f"{salt}/{item_id}/{attempt}").random() < FLAKY_RATE


def _write(line: str) -> None:
    global _fd  # noqa: PLW0603 - one descriptor per process, opened on first use
    with _lock:
        if _fd is None:
            _fd = os.open(os.environ["WQF_EVENTS"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        fd = _fd
    os.write(fd, line.encode("utf-8"))


def handle(item: dict[str, Any]) -> dict[str, int]:
    ctx = current_item()
    pid = os.getpid()
    _write(f"start {ctx.id} {ctx.attempt} {pid} {time.time():.6f}\n")
    time.sleep(float(item["seconds"]))
    failing = fails(str(item["kind"]), int(item["salt"]), ctx.id, ctx.attempt)
    outcome = "error" if failing else "ok"
    _write(f"end {ctx.id} {ctx.attempt} {pid} {time.time():.6f} {outcome}\n")
    if failing:
        raise InjectedFailure(f"{item['kind']} item {ctx.id} attempt {ctx.attempt} pid {pid}")
    return {"pid": pid, "attempt": ctx.attempt}
