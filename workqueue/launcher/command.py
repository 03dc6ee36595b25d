"""The launcher's commands (launch, jobs, demo); filled in by the launcher issue."""

from __future__ import annotations

from typing import Any


def register(sub: Any) -> None:
    """No launcher command is registered yet."""
