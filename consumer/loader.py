"""Finding the user's handler from a ``module:function`` path."""

from __future__ import annotations

import importlib
import inspect
import os
import sys
from collections.abc import Callable
from typing import Any

from workqueue.errors import UsageError

Handler = Callable[[Any], Any]


def load_handler(path: str) -> Handler:
    """Import ``module:function`` (or ``module.function``) and return the callable.

    The current directory is importable, as with ``rq worker``. Anything wrong
    (no colon, a module that fails to import, a missing or non-callable
    attribute) is a `UsageError` naming the path and the cause.
    """
    module_name, sep, attr = path.partition(":")
    if not sep:
        module_name, _, attr = path.rpartition(".")
    if not module_name or not attr:
        raise UsageError(f"handler {path!r} must look like 'module:function'")
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    try:
        module = importlib.import_module(module_name)
    except (Exception, SystemExit) as exc:
        # SystemExit too: a module that exits at import must not end the
        # consumer with its code (exit 0 would tell the Job all work is done).
        raise UsageError(
            f"handler {path!r}: module {module_name!r} failed to import: "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    target: Any = module
    for part in attr.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise UsageError(
                f"handler {path!r}: module {module_name!r} has no attribute {attr!r}"
            ) from None
    if not callable(target):
        raise UsageError(f"handler {path!r} is a {type(target).__name__}, not a function")
    handler: Handler = target
    return handler


def is_async(handler: Handler) -> bool:
    """Whether calling `handler` returns a coroutine to await."""
    call = getattr(handler, "__call__", None)  # noqa: B004 - objects with async __call__
    return inspect.iscoroutinefunction(handler) or inspect.iscoroutinefunction(call)
