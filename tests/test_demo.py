"""`workqueue demo` as a real process: the whole flow on one machine, with one command.

Run once with no server configured (the demo starts its embedded valkey) and
once per test server with ``--redis-url``; in the second case the queue is
kept, so the test checks the demo's claims against the server itself.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
from pathlib import Path

import pytest
import redis
from support import cli

from workqueue.demo_handler import derive_key
from workqueue.queue import Queue

ITEMS = 60
ROUNDS = 2000
DEMO_FLAGS = ("demo", "--items", str(ITEMS), "--parallelism", "3", "--rounds", str(ROUNDS))
DEMO_SECONDS = 120  # a healthy run takes under 10 s


def run_demo(*extra: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run the demo; past the timeout, Ctrl-C it (so it stops its pods) and fail."""
    argv = cli(*DEMO_FLAGS, *extra)
    with subprocess.Popen(
        argv, env=demo_env(), cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as proc:
        try:
            out, err = proc.communicate(timeout=DEMO_SECONDS)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGINT)
            try:
                out, err = proc.communicate(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                out, err = proc.communicate()
            pytest.fail(f"the demo did not end within {DEMO_SECONDS}s; stderr:\n{err[-4000:]}")
    return subprocess.CompletedProcess(argv, proc.returncode, out, err)


def demo_env() -> dict[str, str]:
    """No WORKQUEUE_ variable at all: no server is configured for the demo."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WORKQUEUE_")}
    env["PYTHONUNBUFFERED"] = "1"
    return env


def assert_summary(stdout: str) -> None:
    assert "demo summary:" in stdout
    assert f"{ITEMS} published, {ITEMS} done, 0 dead-lettered" in stdout
    assert "Complete, 3 pod(s) succeeded, 0 failed" in stdout
    assert "20 sampled keys re-derived and matched" in stdout


def test_demo_without_a_server_runs_on_an_embedded_one(tmp_path: Path) -> None:
    out = run_demo(cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert_summary(out.stdout)
    assert "an embedded valkey server" in out.stderr
    # The embedded server lived only as long as the demo.
    found = re.search(r"embedded server started at (redis://\S+)", out.stderr)
    assert found, out.stderr
    with pytest.raises(redis.ConnectionError):
        redis.Redis.from_url(found.group(1), socket_connect_timeout=2).ping()


def test_demo_with_redis_url_does_the_work_on_that_server(
    redis_url: str, queue: Queue, tmp_path: Path
) -> None:
    out = run_demo("--redis-url", redis_url, "--queue", queue.name, "--keep", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert_summary(out.stdout)
    assert "embedded" not in out.stderr
    # The server holds what the summary claims: every item done, every key right.
    stats = queue.stats()
    assert (stats.done, stats.dead, stats.pending, stats.leased) == (ITEMS, 0, 0, 0)
    assert stats.finished
    for n in range(ITEMS):
        assert queue.result(f"item-{n:06d}") == derive_key({"seed": n, "rounds": ROUNDS})
