"""Redis key names of a queue, built in this one place.

All keys of one queue share the hash tag ``{<queue>}``, so a queue lives in one
Redis Cluster slot and every script touches a single slot. The order of
`QueueKeys.all` is the KEYS order every script expects (see scripts/_common.lua
and docs/protocol.md).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from workqueue.errors import InputError

# Queue names become part of key names and of Kubernetes label values, so they
# keep to characters that are safe in both and cannot break the hash tag.
QUEUE_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,61}[A-Za-z0-9])?")
PARTS = (
    "pending",
    "items",
    "leases",
    "owners",
    "groups",
    "delayed",
    "attempts",
    "dead",
    "errors",
    "results",
    "seen",
    "meta",
    "batches",
)


def check_queue_name(name: str) -> str:
    """Return `name` if it is a valid queue name, else raise `InputError`."""
    if not isinstance(name, str) or not QUEUE_NAME.fullmatch(name):
        raise InputError(
            f"invalid queue name {name!r}: use 1 to 63 letters, digits, '.', '_' or '-', "
            "starting and ending with a letter or digit"
        )
    return name


@dataclass(frozen=True, slots=True)
class QueueKeys:
    """The thirteen keys of one queue."""

    pending: str
    items: str
    leases: str
    owners: str
    groups: str
    delayed: str
    attempts: str
    dead: str
    errors: str
    results: str
    seen: str
    meta: str
    batches: str

    @classmethod
    def for_queue(cls, queue: str, prefix: str = "wq") -> QueueKeys:
        check_queue_name(queue)
        base = f"{prefix}:{{{queue}}}:"
        return cls(*(base + part for part in PARTS))

    @property
    def all(self) -> list[str]:
        return [getattr(self, part) for part in PARTS]
