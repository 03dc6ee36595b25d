"""The lease queue of the Kubernetes docs' task "Fine Parallel Processing Using a Work Queue".

That page pairs a Job with a small Redis client library. Its algorithm, which
this module implements for the benchmark (written here from the description,
not taken from the page's code):

- a producer appends items to a *main* list;
- a worker atomically moves the next item from the main list to a *processing*
  list (LMOVE, formerly RPOPLPUSH), then SETs a *lease key* named after the
  item, with an expiry, saying which worker holds it;
- the worker runs the item, then removes it from the processing list (LREM)
  and deletes its lease key.

An item whose lease key expired while it sits in the processing list belongs
to a worker that died; a clean-up pass would move it back to the main list.
Draining does not need that pass, so it is not written here.

Choices that make this peer as fast as its design allows, so the comparison is
not against a strawman:

- the producer sends variadic RPUSH commands of `PUSH_BATCH` items, several per
  pipeline round trip, as a user filling the list from Python would;
- the worker completes an item with LREM and DEL in one pipelined round trip,
  so an item costs three round trips (LMOVE, SET, LREM+DEL), and it stops when
  LMOVE finds the main list empty. The docs' example worker also checks that
  both lists are empty before every item, which costs more round trips; that
  check is left out here.

Run as a process, this module drains one queue with the no-op handler and
prints how many items it handled::

    WQBENCH_REDIS_URL=redis://127.0.0.1:6379/9 python -m benchmarks.peers.docs_lease NAME
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import sys
from collections.abc import Callable, Iterable, Sequence
from itertools import islice
from typing import Any

import redis

from benchmarks.peers.noop import handle

URL_VARIABLE = "WQBENCH_REDIS_URL"
PUSH_BATCH = 1000
PUSHES_PER_PIPELINE = 10


class LeaseQueue:
    """One queue of the docs' design: a main list, a processing list, one lease key per item."""

    def __init__(self, client: redis.Redis, name: str, lease_seconds: int = 30) -> None:
        self.client = client
        self.main = f"{name}:main"
        self.processing = f"{name}:processing"
        self.lease_prefix = f"{name}:lease:"
        self.lease_seconds = lease_seconds
        self.session = secrets.token_hex(8)

    def put_many(self, texts: Iterable[str]) -> int:
        """RPUSH `texts` to the main list, `PUSH_BATCH` per command; returns how many."""
        source = iter(texts)
        count = 0
        while True:
            pipe = self.client.pipeline(transaction=False)
            queued = 0
            for _ in range(PUSHES_PER_PIPELINE):
                chunk = list(islice(source, PUSH_BATCH))
                if not chunk:
                    break
                pipe.rpush(self.main, *chunk)
                queued += len(chunk)
            if not queued:
                return count
            pipe.execute()
            count += queued

    def lease(self) -> bytes | None:
        """Move the next item to the processing list and take its lease; None when empty."""
        raw = self.client.lmove(self.main, self.processing, "LEFT", "LEFT")
        if raw is None:
            return None
        item = raw if isinstance(raw, bytes) else str(raw).encode()
        self.client.set(self._lease_key(item), self.session, ex=self.lease_seconds)
        return item

    def complete(self, item: bytes) -> None:
        """Drop a finished item from the processing list and delete its lease key."""
        pipe = self.client.pipeline(transaction=False)
        pipe.lrem(self.processing, 1, item)  # type: ignore[arg-type]  # bytes work; stubs say str
        pipe.delete(self._lease_key(item))
        pipe.execute()

    def lengths(self) -> tuple[int, int]:
        """Items in the main list and in the processing list."""
        return int(self.client.llen(self.main)), int(self.client.llen(self.processing))

    def _lease_key(self, item: bytes) -> str:
        # Named after a digest of the item, so a large item makes no large key name.
        return self.lease_prefix + hashlib.blake2b(item, digest_size=16).hexdigest()


def drain(queue: LeaseQueue, handler: Callable[[Any], object] = handle) -> int:
    """Lease, run and complete items one at a time until the main list is empty."""
    count = 0
    while (item := queue.lease()) is not None:
        handler(json.loads(item))
        queue.complete(item)
        count += 1
    return count


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    url = os.environ.get(URL_VARIABLE)
    if len(args) != 1 or not url:
        print(
            f"usage: {URL_VARIABLE}=redis://... python -m benchmarks.peers.docs_lease NAME",
            file=sys.stderr,
        )
        return 2
    client = redis.Redis.from_url(url)
    try:
        print(drain(LeaseQueue(client, args[0])))
    finally:
        client.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
