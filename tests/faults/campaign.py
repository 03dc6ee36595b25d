"""Many fault scenarios in a row, and their totals.

    python -m tests.faults.campaign --scenarios 200 --seed 1000

runs the scenarios with seeds 1000, 1001, ... 1199 (run it from the
repository's root). One line per scenario, then the totals: scenarios,
items, faults applied by kind, items lost, duplicate executions by cause, and
the seeds that failed. ``--seed S`` alone replays the one scenario of seed S.
The work directories of failed scenarios are kept (their path is printed);
those of passed ones are removed unless ``--keep``. Exit status 1 if any
scenario failed.
"""

from __future__ import annotations

import argparse
import shutil
import signal
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from .plan import KINDS
from .scenario import TIMEOUT_SECONDS, Result, run_scenario


@dataclass
class Totals:
    scenarios: int = 0
    failed: list[int] = field(default_factory=list)
    items: int = 0
    faults: Counter[str] = field(default_factory=Counter)
    skipped: int = 0
    lost: int = 0
    duplicates: Counter[str] = field(default_factory=Counter)
    retries: int = 0
    seconds: float = 0.0

    def add(self, result: Result) -> None:
        self.scenarios += 1
        if not result.ok:
            self.failed.append(result.plan.seed)
        self.items += len(result.plan.items)
        self.faults += result.applied
        self.skipped += result.skipped
        self.lost += result.verdict.lost
        self.duplicates += result.verdict.duplicates
        self.retries += result.verdict.retries
        self.seconds += result.elapsed

    def text(self) -> str:
        faults = ", ".join(f"{k} {self.faults[k]}" for k in KINDS)
        dups = ", ".join(f"{k} {n}" for k, n in sorted(self.duplicates.items())) or "none"
        failed = ", ".join(map(str, self.failed)) or "none"
        return (
            f"scenarios: {self.scenarios} ({len(self.failed)} failed: {failed})\n"
            f"items: {self.items}\n"
            f"faults applied: {sum(self.faults.values())} ({faults}); "
            f"planned but skipped: {self.skipped}\n"
            f"items lost: {self.lost}\n"
            f"duplicate executions: {sum(self.duplicates.values())} ({dups})\n"
            f"retries after a failure: {self.retries}\n"
            f"drain time: {self.seconds:.0f}s"
        )


def seed_from_clock() -> int:
    return int(time.time()) % 1_000_000 * 1000


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.faults.campaign", description=__doc__)
    parser.add_argument("--scenarios", type=int, default=1, help="how many scenarios (1)")
    parser.add_argument("--seed", type=int, help="seed of the first scenario (from the clock)")
    parser.add_argument("--timeout", type=float, default=TIMEOUT_SECONDS, help="per scenario")
    parser.add_argument("--workdir", type=Path, help="where scenario files go (a temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the files of passed scenarios")
    args = parser.parse_args(argv)
    # SIGTERM ends the campaign as Ctrl-C does: the running scenario stops its
    # consumers and its server on the way out.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(143))
    base = seed_from_clock() if args.seed is None else args.seed
    root = args.workdir or Path(tempfile.mkdtemp(prefix="workqueue-faults-"))
    print(
        f"fault campaign: {args.scenarios} scenario(s) from seed {base}, files in {root}",
        flush=True,
    )
    totals = Totals()
    for seed in range(base, base + args.scenarios):
        workdir = root / f"seed-{seed}"
        result = run_scenario(seed, workdir, args.timeout)
        totals.add(result)
        print(result.report(), flush=True)
        if result.ok and not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    print(totals.text())
    return 1 if totals.failed else 0


if __name__ == "__main__":
    sys.exit(main())
