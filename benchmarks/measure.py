"""Timing one step of a benchmark: wall time, client CPU and server CPU.

A step is either a call in this process (`time_call`) or a whole child process
timed from its start to its exit (`time_process`). Besides the wall time each
`Run` records the CPU seconds the client side used (this process's threads,
or the child's) and the CPU seconds the server used meanwhile, read from INFO
cpu before and after. On a shared server the latter includes the work of
other clients; on the 2-core development machine the two CPU figures show
which side was the bottleneck.
"""

from __future__ import annotations

import math
import resource
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import redis

from workqueue.errors import WorkqueueError

T = TypeVar("T")
OUTPUT_TAIL = 2000


@dataclass(frozen=True, slots=True)
class Run:
    """One timed step."""

    seconds: float
    client_cpu: float
    server_cpu: float

    def minus(self, other: Run) -> Run:
        """This run with `other` (a start-up run) taken away."""
        return Run(
            self.seconds - other.seconds,
            self.client_cpu - other.client_cpu,
            self.server_cpu - other.server_cpu,
        )

    def as_dict(self) -> dict[str, float]:
        return {
            "seconds": self.seconds,
            "client_cpu": self.client_cpu,
            "server_cpu": self.server_cpu,
        }


@dataclass
class Series:
    """The repeated runs of one operation of one peer, on `items` items each."""

    peer: str
    operation: str
    items: int
    runs: list[Run] = field(default_factory=list)

    def rates(self) -> list[float]:
        """Items per second of each run; NaN for a run of no positive duration."""
        return [self.items / r.seconds if r.seconds > 0 else float("nan") for r in self.runs]

    def median_rate(self) -> float:
        """The median of `rates`; NaN if any run had no positive duration."""
        rates = self.rates()
        if not rates or any(math.isnan(r) for r in rates):
            return float("nan")
        return statistics.median(rates)

    def median(self, attribute: str) -> float:
        """The median of one `Run` field: "seconds", "client_cpu" or "server_cpu"."""
        return statistics.median(float(getattr(r, attribute)) for r in self.runs)

    def as_dict(self) -> dict[str, Any]:
        return {
            "peer": self.peer,
            "operation": self.operation,
            "items": self.items,
            "runs": [r.as_dict() for r in self.runs],
            "rates": [finite(r) for r in self.rates()],
            "median_rate": finite(self.median_rate()),
        }


def finite(value: float) -> float | None:
    """`value`, or None for NaN, which strict JSON cannot hold."""
    return None if math.isnan(value) else value


def round_trip(client: redis.Redis, count: int = 2000) -> dict[str, float]:
    """Mean wall and client-CPU microseconds of one PING, over `count` PINGs.

    It tells how dear a round trip is on this machine, which decides how far
    a design that batches (workqueue) gets ahead of one that does not.
    """
    client.ping()
    cpu_before = time.process_time()
    began = time.perf_counter()
    for _ in range(count):
        client.ping()
    seconds = time.perf_counter() - began
    cpu = time.process_time() - cpu_before
    return {"wall_us": seconds / count * 1e6, "client_cpu_us": cpu / count * 1e6}


def server_cpu(client: redis.Redis) -> float:
    """CPU seconds (user plus system) the server has used since it started."""
    info = client.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def time_call(client: redis.Redis, call: Callable[[], T]) -> tuple[Run, T]:
    """Run `call` here; the client CPU is this process's, all threads included."""
    server_before = server_cpu(client)
    cpu_before = time.process_time()
    began = time.perf_counter()
    result = call()
    seconds = time.perf_counter() - began
    cpu = time.process_time() - cpu_before
    return Run(seconds, cpu, server_cpu(client) - server_before), result


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def time_process(
    client: redis.Redis, argv: Sequence[str], env: Mapping[str, str], cwd: Path
) -> tuple[Run, str]:
    """Run `argv` to its end, timed from the spawn to the exit; returns its output too.

    Standard output and error go to a temporary file, so a chatty child never
    blocks on a full pipe. A non-zero exit raises `WorkqueueError` with the
    tail of that output. The child's CPU comes from the rusage of waited-for
    children, so no other child may end meanwhile (none does here).
    """
    server_before = server_cpu(client)
    cpu_before = _children_cpu()
    with tempfile.TemporaryFile() as out:
        began = time.perf_counter()
        done = subprocess.run(
            list(argv), check=False, env=dict(env), cwd=cwd, stdout=out, stderr=out
        )
        seconds = time.perf_counter() - began
        cpu = _children_cpu() - cpu_before
        out.seek(0)
        output = out.read().decode("utf-8", "replace")
    run = Run(seconds, cpu, server_cpu(client) - server_before)
    if done.returncode != 0:
        raise WorkqueueError(
            f"{' '.join(argv[:6])} ... exited {done.returncode}; its output ends with:\n"
            f"{output[-OUTPUT_TAIL:]}"
        )
    return run, output
