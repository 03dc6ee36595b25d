"""Helpers for tests: settings, and running the `workqueue` command as a real process."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from workqueue.settings import Settings, load_settings

REPO = Path(__file__).resolve().parent.parent


def make_settings(redis_url: str, **overrides: Any) -> Settings:
    return load_settings(redis_url=redis_url, **overrides)


def cli_env(redis_url: str, **extra: str) -> dict[str, str]:
    """Environment for a `workqueue` subprocess against `redis_url`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WORKQUEUE_")}
    env["WORKQUEUE_REDIS_URL"] = redis_url
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def cli(*args: str) -> list[str]:
    """The argv that runs the installed `workqueue` command of this interpreter."""
    return [sys.executable, "-m", "workqueue", *args]


T = TypeVar("T")


def wait_until(
    check: Callable[[], T],
    what: str,
    explain: Callable[[], str] = lambda: "",
    timeout: float = 40.0,
) -> T:
    """Poll `check` until it returns something true; return that, or fail naming `what`
    and adding what `explain` says about the state of things."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting until {what}\n{explain()}")
        time.sleep(0.02)
