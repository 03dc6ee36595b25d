"""What the benchmark does with RQ: produce with `enqueue_many`, drain with a burst worker.

Producing builds one `Queue.prepare_data` per item (the item is the job's one
argument) and hands them all to one `Queue.enqueue_many` call, which sends
them in one pipeline: RQ's fastest documented way to add many jobs. Each job
gets an id made of the queue name and its index, so the benchmark can find
and delete every key it made; RQ checks such ids for repeats, which costs
little next to creating the job.

Draining runs ``rq worker --burst --worker-class rq.worker.SimpleWorker`` as a
child process (SimpleWorker runs jobs in its own process instead of forking
one per job), at logging level WARNING. Everything else is RQ's defaults,
including keeping each job and its result for 500 s after it finished.
"""

from __future__ import annotations

import sys

import redis
import rq

from benchmarks.peers.rq_jobs import noop
from workqueue.errors import WorkqueueError

LOG_LEVEL = "WARNING"


class RQPeer:
    label = "RQ"

    def __init__(self, url: str) -> None:
        self.url = url

    def env(self) -> dict[str, str]:
        return {"RQ_REDIS_URL": self.url}

    def _queue(self, name: str, client: redis.Redis) -> rq.Queue:
        return rq.Queue(name, connection=client)

    def produce(self, name: str, count: int) -> int:
        """Enqueue `count` no-op jobs in one `enqueue_many` call; returns how many."""
        client = redis.Redis.from_url(self.url)
        try:
            queue = self._queue(name, client)
            jobs = queue.enqueue_many(
                [
                    rq.Queue.prepare_data(noop, args=({"n": i},), job_id=f"{name}-{i}")
                    for i in range(count)
                ]
            )
        finally:
            client.close()
        return len(jobs)

    def drain_argv(self, name: str) -> list[str]:
        return [
            *(sys.executable, "-m", "rq.cli", "worker", "--burst"),
            *("--worker-class", "rq.worker.SimpleWorker"),
            *("--logging_level", LOG_LEVEL, "--name", f"{name}-worker", name),
        ]

    def prepare_empty(self, name: str) -> None:
        """Nothing to do: a burst worker on a queue that was never filled starts and exits."""

    def check_filled(self, name: str, count: int) -> None:
        client = redis.Redis.from_url(self.url)
        try:
            queued = self._queue(name, client).count
        finally:
            client.close()
        if queued != count:
            raise WorkqueueError(f"RQ queue {name} should hold {count} jobs, not {queued}")

    def check_drained(self, name: str, count: int, output: str) -> None:
        client = redis.Redis.from_url(self.url)
        try:
            queue = self._queue(name, client)
            left = queue.count
            finished = queue.finished_job_registry.count
            failed = queue.failed_job_registry.count
        finally:
            client.close()
        if left or failed or finished != count:
            raise WorkqueueError(
                f"RQ queue {name} should have {count} finished jobs: "
                f"{left} queued, {finished} finished, {failed} failed"
            )
