"""A scenario drawn from one seed: the items, the consumers' settings, and the faults.

Everything random about a scenario is decided here, from `random.Random(seed)`,
before anything runs, so the seed printed with a result rebuilds the same
queue, the same consumers and the same fault schedule. What a replay cannot
repeat is the interleaving: faults fire at the planned moments of wall-clock
time, and which item a consumer runs at that moment depends on the machine's
load (the injector then picks its target among the consumers running an item,
using the fault's own `pick` number).
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass

# Consumer faults need a live consumer; server faults act on the one server.
KILL = "kill"  # SIGKILL a consumer mid-item, restart it after `param` seconds
PAUSE = "pause"  # SIGSTOP a consumer for `param` seconds (longer than its lease), then SIGCONT
CONN = "conn"  # the server closes every client connection, `param` times 0.1 s apart
RESTART = "restart"  # stop the server gracefully, start it `param` seconds later
CRASH = "crash"  # SIGKILL the server, start it `param` seconds later
TERM = "term"  # SIGTERM a consumer mid-item; once it exited, restart it after `param` s
KINDS = (KILL, PAUSE, CONN, RESTART, CRASH, TERM)

MAX_ATTEMPTS = 6
RETRY_BASE_SECONDS = 0.05
RETRY_MAX_SECONDS = 1.0
GRACE_SECONDS = 20.0  # above the longest item: a terminated consumer finishes what it runs
REDIS_RETRY_SECONDS = 30.0

# Per-scenario speed of the quick items, in seconds: the fastest make a consumer
# lease batches of 50 and more, and lease the next batch ahead while one runs.
QUICK_RANGES = ((0.0005, 0.003), (0.002, 0.012), (0.005, 0.04))


@dataclass(frozen=True, slots=True)
class ItemSpec:
    id: str
    kind: str  # quick, slow, flaky or poison (see handlers.py)
    seconds: float

    def text(self, salt: int) -> str:
        return json.dumps({"kind": self.kind, "seconds": round(self.seconds, 4), "salt": salt})


@dataclass(frozen=True, slots=True)
class FaultSpec:
    at: float  # seconds after the consumers were started
    kind: str
    param: float  # the pause, the downtime, the delay before a restart, or how many cuts
    pick: float  # in [0, 1): chooses the target among the candidates at run time


@dataclass(frozen=True, slots=True)
class Plan:
    seed: int
    items: tuple[ItemSpec, ...]
    consumers: int
    concurrency: int
    lease_seconds: float
    faults: tuple[FaultSpec, ...]

    @property
    def poison(self) -> frozenset[str]:
        return frozenset(i.id for i in self.items if i.kind == "poison")

    def count(self, kind: str) -> int:
        return sum(1 for i in self.items if i.kind == kind)

    def consume_args(self) -> list[str]:
        """The `workqueue consume` flags every consumer of the scenario gets."""
        return [
            "--lease-seconds",
            f"{self.lease_seconds:g}",
            "--max-attempts",
            str(MAX_ATTEMPTS),
            "--retry-base-seconds",
            f"{RETRY_BASE_SECONDS:g}",
            "--retry-max-seconds",
            f"{RETRY_MAX_SECONDS:g}",
            "--grace-seconds",
            f"{GRACE_SECONDS:g}",
            "--concurrency",
            str(self.concurrency),
        ]


def make_plan(seed: int) -> Plan:
    rng = random.Random(seed)
    count = rng.randint(50, 300)
    lease = rng.choice((1.0, 1.5, 2.0))
    quick = rng.choice(QUICK_RANGES)
    kinds = ["poison"] * rng.randint(0, 3)
    kinds += ["slow"] * rng.randint(1, 5)
    kinds += ["flaky"] * rng.randint(count // 20, count // 8)
    kinds += ["quick"] * (count - len(kinds))
    rng.shuffle(kinds)
    items = tuple(
        ItemSpec(
            f"item-{n:03d}",
            kind,
            lease * rng.uniform(1.4, 2.5) if kind == "slow" else rng.uniform(*quick),
        )
        for n, kind in enumerate(kinds)
    )
    consumers = rng.randint(2, 4)
    concurrency = rng.randint(1, 2)
    # Faults fall in the first part of the drain the plan expects without them;
    # faults themselves make the drain longer, so late ones still find work.
    work = sum(i.seconds for i in items) / (consumers * concurrency)
    slowest = max(i.seconds for i in items)
    horizon = max(2.0, 0.8 * max(work, slowest))
    faults = []
    for _ in range(rng.randint(1, 6)):
        kind = rng.choice(KINDS)
        if kind == PAUSE:
            param = lease * rng.uniform(1.3, 3.0)
        elif kind in (RESTART, CRASH):
            param = rng.uniform(0.1, 2.0 * lease)
        elif kind == KILL:
            param = rng.uniform(0.1, 1.0)
        elif kind == CONN:
            param = rng.randint(1, 5)
        else:
            param = rng.uniform(0.1, 0.5)
        faults.append(FaultSpec(rng.uniform(0.3, horizon), kind, param, rng.random()))
    faults.sort(key=lambda f: f.at)
    return Plan(seed, items, consumers, concurrency, lease, tuple(faults))
