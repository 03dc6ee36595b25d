"""The no-op job function RQ's worker imports; kept alone so the worker imports little.

RQ stores the function by its dotted name (``benchmarks.peers.rq_jobs.noop``),
so the worker needs the repository root on its import path, which
benchmarks/compare.py gives it through PYTHONPATH.
"""

from __future__ import annotations

from typing import Any


def noop(item: Any) -> None:
    """Accept the job's one argument (the item, unpickled by RQ) and do nothing."""
    del item
