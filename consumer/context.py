"""What a handler can learn about the item it is running."""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ItemContext:
    """The item a handler is running: its queue, its id and the attempt (from 1)."""

    queue: str
    id: str
    attempt: int


_current: ContextVar[ItemContext | None] = ContextVar("workqueue_item", default=None)


def current_item() -> ItemContext:
    """The item the calling handler is running; `LookupError` outside a handler."""
    ctx = _current.get()
    if ctx is None:
        raise LookupError("current_item() is only available inside a handler")
    return ctx
