"""Running `workqueue` as a subprocess, and judging what it printed.

`run_cli` runs one command to its end against a given Redis URL and returns
what it printed and how long it took. `error_of` finds the one error line the
command printed, and `assert_clean` checks that no traceback and no secret
reached the output: the checks every bad-input and permission test makes.
"""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from support import cli, cli_env

TESTS_DIR = Path(__file__).resolve().parent
TIMEOUT_SECONDS = 120.0


@dataclass(frozen=True)
class Ran:
    """One finished `workqueue` process."""

    argv: list[str]
    returncode: int
    stdout: str
    stderr: str
    seconds: float

    def __str__(self) -> str:
        head = f"{self.argv[3:]} exit {self.returncode}"
        return f"{head}\nstdout:\n{self.stdout}\nstderr:\n{self.stderr}"


def run_cli(
    redis_url: str,
    *args: str,
    stdin: bytes | str | None = None,
    cwd: Path | None = None,
    **env: str,
) -> Ran:
    """Run ``workqueue ARGS`` with WORKQUEUE_REDIS_URL=`redis_url` and `env` on top.

    The tests folder is on PYTHONPATH (for tests/consumer_handlers.py), and a
    handler module written to `cwd` is found there.
    """
    argv = cli(*args)
    environ = cli_env(redis_url, PYTHONPATH=str(TESTS_DIR), **env)
    data = stdin.encode() if isinstance(stdin, str) else stdin
    began = time.monotonic()
    done = subprocess.run(
        argv,
        input=data,
        env=environ,
        cwd=cwd,
        capture_output=True,
        timeout=TIMEOUT_SECONDS,
        check=False,
    )
    return Ran(
        argv,
        done.returncode,
        done.stdout.decode("utf-8", "replace"),
        done.stderr.decode("utf-8", "replace"),
        time.monotonic() - began,
    )


def error_of(ran: Ran) -> str:
    """The one ``workqueue CMD: error: ...`` line `ran` printed, without that prefix."""
    marker = f"workqueue {ran.argv[3]}: error: "
    lines = [line for line in ran.stderr.splitlines() if line.startswith(marker)]
    assert len(lines) == 1, f"expected one error line:\n{ran}"
    return lines[0][len(marker) :]


def assert_clean(ran: Ran, *secrets: str) -> None:
    """No traceback on standard error, and none of `secrets` in anything `ran` printed.

    (Standard output may hold tracebacks as data: `workqueue dead` prints the
    ones stored with dead-lettered items.)
    """
    assert "Traceback" not in ran.stderr, str(ran)
    both = ran.stdout + ran.stderr
    for secret in secrets:
        assert secret not in both, f"a secret was printed:\n{ran}"
