"""The demo's work: derive a key per item, real CPU work as in a key-generation batch.

Kept apart from the demo command so consumer pods import only this and hashlib.
"""

from __future__ import annotations

import hashlib
from typing import Any


def derive_key(item: dict[str, Any]) -> dict[str, Any]:
    """PBKDF2-HMAC-SHA256 of the item's seed, `rounds` iterations; returns the hex key."""
    seed = str(item["seed"]).encode()
    rounds = int(item.get("rounds", 20000))
    key = hashlib.pbkdf2_hmac("sha256", seed, b"workqueue-demo", rounds, dklen=32)
    return {"seed": item["seed"], "key": key.hex()}
