"""`workqueue consume`."""

from __future__ import annotations

from typing import Any


def register(sub: Any) -> None:
    """Not yet registered."""
