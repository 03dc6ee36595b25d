"""The `workqueue` command runs as a real process and reports a queue's counts."""

from __future__ import annotations

import json
import subprocess

from support import cli, cli_env


def test_status_json_of_an_empty_queue_has_the_documented_keys(redis_url: str) -> None:
    out = subprocess.run(
        cli("status", "nosuchqueue", "--json"),
        env=cli_env(redis_url),
        capture_output=True,
        text=True,
        check=True,
    )
    stats = json.loads(out.stdout)
    assert set(stats) == {"pending", "leased", "delayed", "done", "dead", "sealed", "finished"}
    assert stats["pending"] == 0 and stats["sealed"] is False and stats["finished"] is False


def test_bad_queue_name_exits_2_and_names_the_problem(redis_url: str) -> None:
    out = subprocess.run(
        cli("status", "bad{name}"),
        env=cli_env(redis_url),
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 2
    assert "invalid queue name 'bad{name}'" in out.stderr
