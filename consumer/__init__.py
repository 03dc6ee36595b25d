"""The workqueue consumer SDK: drain a queue with your handler.

A handler is a plain or ``async`` function taking one item (a JSON value). Its
return value, if not None, is stored as the item's result. Any exception
retries the item with back-off; `PermanentError` dead-letters it at once.
`current_item()` tells a handler its item's id and attempt.
"""

from consumer.consumer import Consumer, Options, Summary
from consumer.context import ItemContext, current_item
from consumer.loader import load_handler
from workqueue.errors import PermanentError

__all__ = [
    "Consumer",
    "ItemContext",
    "Options",
    "PermanentError",
    "Summary",
    "current_item",
    "load_handler",
]
