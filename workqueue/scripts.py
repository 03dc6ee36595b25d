"""Loads the queue's Lua scripts and registers them with a Redis client.

Each script file under ``scripts/`` states its KEYS and ARGV at its top; the
shared prologue ``_common.lua`` is prepended to each, so the source that runs
on the server is the prologue followed by the script.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from redis.commands.core import Script

NAMES = ("enqueue", "lease", "ack", "fail", "renew", "release", "seal", "stats", "requeue")


@cache
def source(name: str) -> str:
    """The full source of script `name`, prologue included."""
    folder = resources.files("workqueue") / "scripts"
    common = (folder / "_common.lua").read_text(encoding="utf-8")
    return common + "\n" + (folder / f"{name}.lua").read_text(encoding="utf-8")


@dataclass(frozen=True, slots=True)
class Scripts:
    """The registered scripts of one client; calls use EVALSHA, loading on demand."""

    enqueue: Script
    lease: Script
    ack: Script
    fail: Script
    renew: Script
    release: Script
    seal: Script
    stats: Script
    requeue: Script

    @classmethod
    def register(cls, client: Any) -> Scripts:
        return cls(*(client.register_script(source(name)) for name in NAMES))
