"""What the benchmark does with the docs' lease queue: fill it, drain it in a process, check."""

from __future__ import annotations

import json
import sys

import redis

from benchmarks.peers.docs_lease import URL_VARIABLE, LeaseQueue
from workqueue.errors import WorkqueueError


class DocsLeasePeer:
    label = "docs lease"

    def __init__(self, url: str) -> None:
        self.url = url

    def env(self) -> dict[str, str]:
        return {URL_VARIABLE: self.url}

    def produce(self, name: str, count: int) -> int:
        """Encode `count` items as JSON and RPUSH them in pipelined batches; returns how many."""
        client = redis.Redis.from_url(self.url)
        try:
            encode = json.JSONEncoder(separators=(",", ":")).encode
            return LeaseQueue(client, name).put_many(encode({"n": i}) for i in range(count))
        finally:
            client.close()

    def drain_argv(self, name: str) -> list[str]:
        return [sys.executable, "-m", "benchmarks.peers.docs_lease", name]

    def prepare_empty(self, name: str) -> None:
        """Nothing to do: a worker on a list that was never filled starts and exits."""

    def _lengths(self, name: str) -> tuple[int, int]:
        client = redis.Redis.from_url(self.url)
        try:
            return LeaseQueue(client, name).lengths()
        finally:
            client.close()

    def check_filled(self, name: str, count: int) -> None:
        main, processing = self._lengths(name)
        if (main, processing) != (count, 0):
            raise WorkqueueError(
                f"docs queue {name} should hold {count} items: main {main}, processing {processing}"
            )

    def check_drained(self, name: str, count: int, output: str) -> None:
        main, processing = self._lengths(name)
        handled = output.strip().splitlines()[-1] if output.strip() else "nothing"
        if (main, processing) != (0, 0) or handled != str(count):
            raise WorkqueueError(
                f"docs queue {name} should be drained of {count} items: the worker handled "
                f"{handled}; main {main}, processing {processing} left"
            )
