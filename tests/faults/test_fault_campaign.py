"""The fault campaign in CI: a few randomized scenarios, each one test.

WORKQUEUE_FAULT_SCENARIOS sets how many (6), WORKQUEUE_FAULT_SEED the first
seed (else one from the clock); the seeds are consecutive and each is part of
its test id, so a failure names its replay:
``python -m tests.faults.campaign --seed S``. Each scenario runs real
`workqueue consume` processes against a real valkey server it restarts, and
checks the invariants of checks.py; a scenario takes 10 to 30 s.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from .campaign import seed_from_clock
from .scenario import run_scenario

SCENARIOS = int(os.environ.get("WORKQUEUE_FAULT_SCENARIOS", "6"))
BASE_SEED = int(os.environ.get("WORKQUEUE_FAULT_SEED") or seed_from_clock())
SEEDS = list(range(BASE_SEED, BASE_SEED + SCENARIOS))


@pytest.mark.slow
@pytest.mark.timeout(240)
@pytest.mark.parametrize("seed", SEEDS, ids=[f"seed-{s}" for s in SEEDS])
def test_fault_scenario_keeps_every_invariant(
    seed: int, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    result = run_scenario(seed, tmp_path / f"seed-{seed}")
    with capsys.disabled():
        print(f"\n{result.line()}")
    assert result.ok, f"{result.report()}\n\n{result.dump_text}"
