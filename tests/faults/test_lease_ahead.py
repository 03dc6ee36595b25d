"""A batch leased ahead must keep its lease while the batch before it runs.

Found by the fault campaign (seed 2, with no fault involved). When a
consumer's batches are large (fast items), `Consumer._work_loop` leases the
next batch while the current one runs (consumer/consumer.py, the lease taken
"ahead"). That group enters the `LeaseBook` only when `_handle_batch` starts
it, so the heartbeat does not renew it meanwhile. If one item of the current
batch runs longer than the lease, the batch leased ahead expires; a peer's
next lease call reclaims it (counting an attempt for every item) and runs
its items, and this consumer then runs them too, until its heartbeat notices
the loss a third of a lease later. Items run twice and spend attempts without
any fault, which can dead-letter items that never failed.

This plan reproduces it without faults: one consumer with two workers, 1000
items of 1 ms and, early in the queue, one of 4 s with a lease of 1 s. The
test states the correct behaviour and is marked as an expected failure until
the consumer is fixed; strict, so the fix makes it fail until the mark goes.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from .plan import ItemSpec, Plan
from .scenario import run_plan


def _plan() -> Plan:
    items = tuple(
        ItemSpec(f"item-{n:04d}", "slow" if n == 150 else "quick", 4.0 if n == 150 else 0.001)
        for n in range(1000)
    )
    return Plan(seed=0, items=items, consumers=1, concurrency=2, lease_seconds=1.0, faults=())


def test_a_batch_leased_ahead_is_not_run_twice_without_a_fault(tmp_path: Path) -> None:
    result = run_plan(_plan(), tmp_path / "lease-ahead")
    # Anything but the duplicates is a real failure, not the expected one.
    others = [v for v in result.verdict.violations if "no fault explains" not in v]
    if result.errors or result.timed_out or others:
        pytest.fail(f"{result.report()}\n\n{result.dump_text}")
    assert not result.verdict.duplicates, f"{result.report()}\n\n{result.dump_text}"
