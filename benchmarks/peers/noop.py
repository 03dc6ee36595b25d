"""The no-op handler the workqueue consumer and the docs' lease queue run on each item.

The item arrives already decoded from JSON; doing nothing with it measures the
queue's own cost per item.
"""

from __future__ import annotations

from typing import Any


def handle(item: Any) -> None:
    """Accept one decoded item and do nothing."""
    del item
