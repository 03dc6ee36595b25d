"""One local pod: its container process, the threads reading its output, and its record.

A pod runs one container, as a child process in a session of its own
(``start_new_session``), so a Ctrl-C or SIGTERM sent to the engine's process
group does not reach it: only the engine stops pods. Stopping follows the
kubelet: SIGTERM to the container's main process, SIGKILL to its whole process
group once the grace period has passed. When the main process exits, whatever
it left behind in its group is killed too, as a container's processes all end
with it.

Each stream is read line by line by a thread of its own, so a chatty pod never
blocks on a full pipe; lines go to an `OutputCallback` (called from those
threads). Exit codes are reported as a container runtime does: a death by
signal N is ``128 + N`` (143 for SIGTERM, 137 for SIGKILL).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import IO

log = logging.getLogger(__name__)

# (pod name, "stdout" or "stderr", line without its line ending); called from reader threads.
OutputCallback = Callable[[str, str, str], None]

START_ERROR_EXIT_CODE = 128  # what container runtimes report when the command cannot be run
_READER_JOIN_SECONDS = 1.0
_print_lock = threading.Lock()


def print_output(pod: str, stream: str, line: str) -> None:
    """The default output callback: ``[pod-name] line`` on standard error."""
    with _print_lock:
        sys.stderr.write(f"[{pod}] {line}\n")
        sys.stderr.flush()


class PodPhase(StrEnum):
    RUNNING = "Running"  # a container process runs, or waits to be restarted (OnFailure)
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"


@dataclass(frozen=True)
class PodRecord:
    """A snapshot of one pod, as events and results report it.

    `pid` is the running container process (None between runs and once the pod
    ended); killing it from outside is how a test simulates a crash. Times are
    seconds since the Job started, on the engine's clock. `policy_action` is the
    podFailurePolicy action applied to the pod's failure, if one was evaluated.
    """

    name: str
    index: int | None
    phase: PodPhase
    pid: int | None
    exit_codes: tuple[int, ...]
    restarts: int
    started_at: float
    finished_at: float | None
    conditions: tuple[str, ...]
    policy_action: str | None


def exit_code_of(returncode: int) -> int:
    """A `Popen.returncode` as a container exit code (a signal N becomes 128 + N)."""
    return 128 - returncode if returncode < 0 else returncode


class LocalPod:
    """A pod's container process and its bookkeeping; driven by the engine's loop only."""

    def __init__(
        self,
        name: str,
        index: int | None,
        *,
        argv: Sequence[str],
        env: Mapping[str, str],
        cwd: str,
        on_output: OutputCallback,
        created_at: float,
    ) -> None:
        self.name = name
        self.index = index
        self.phase = PodPhase.RUNNING
        self.exit_codes: list[int] = []
        self.restarts = 0
        self.started_at = created_at
        self.finished_at: float | None = None
        self.conditions: list[str] = []
        self.policy_action: str | None = None
        self.restart_at: float | None = None  # OnFailure: when the failed container reruns
        self.kill_at: float | None = None  # once SIGTERM was sent: when SIGKILL follows
        self.disrupted = False  # stopped on purpose by `LocalJobEngine.disrupt`
        self.counted_failures = 0  # failures of this pod's containers (OnFailure restarts)
        self._argv = list(argv)
        self._env = dict(env)
        self._cwd = cwd
        self._on_output = on_output
        self._proc: subprocess.Popen[bytes] | None = None
        self._readers: list[threading.Thread] = []
        self._start_error = False
        self._output_failed = False

    # -- state -----------------------------------------------------------------

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def has_process(self) -> bool:
        return self._proc is not None or self._start_error

    @property
    def terminal(self) -> bool:
        return self.phase is not PodPhase.RUNNING

    def record(self) -> PodRecord:
        return PodRecord(
            name=self.name,
            index=self.index,
            phase=self.phase,
            pid=self.pid,
            exit_codes=tuple(self.exit_codes),
            restarts=self.restarts,
            started_at=self.started_at,
            finished_at=self.finished_at,
            conditions=tuple(self.conditions),
            policy_action=self.policy_action,
        )

    # -- process ---------------------------------------------------------------

    def start_container(self) -> None:
        """Start (or, for OnFailure, restart) the container process; then `read_output`."""
        self.restart_at = None
        try:
            proc = subprocess.Popen(
                self._argv,
                env=self._env,
                cwd=self._cwd,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,
                close_fds=True,
            )
        except OSError as exc:
            # The runtime's StartError: the container fails without running.
            self._emit("stderr", f"cannot start the container: {exc.strerror or exc}")
            self._start_error = True
            return
        self._proc = proc
        log.debug("pod %s: container started, pid %d", self.name, proc.pid)

    def read_output(self) -> None:
        """Start the threads that read the container's output.

        Separate from `start_container` so the engine can publish the new pid
        before any line of output reaches a callback that may look it up.
        """
        proc = self._proc
        if proc is None or self._readers:
            return
        assert proc.stdout is not None and proc.stderr is not None
        self._readers = [
            threading.Thread(
                target=self._read, args=(pipe, stream), name=f"{self.name}-{stream}", daemon=True
            )
            for pipe, stream in ((proc.stdout, "stdout"), (proc.stderr, "stderr"))
        ]
        for reader in self._readers:
            reader.start()

    def poll(self) -> int | None:
        """The container's exit code if it just ended (then reaped), else None."""
        if self._start_error:
            self._start_error = False
            self.exit_codes.append(START_ERROR_EXIT_CODE)
            return START_ERROR_EXIT_CODE
        proc = self._proc
        if proc is None:
            return None
        returncode = proc.poll()
        if returncode is None:
            return None
        self._kill_group(proc.pid)  # the container's leftovers end with it
        if not self._readers:  # never read (the run was aborted): the readers would close them
            for pipe in (proc.stdout, proc.stderr):
                if pipe is not None:
                    pipe.close()
        for reader in self._readers:
            # A grandchild that left the process group may still hold the pipe;
            # its reader is then abandoned (daemon thread) after this wait.
            reader.join(_READER_JOIN_SECONDS)
        self._readers = []
        self._proc = None
        self.kill_at = None
        code = exit_code_of(returncode)
        self.exit_codes.append(code)
        log.debug("pod %s: container exited with %d", self.name, code)
        return code

    def terminate(self, now: float, grace_seconds: float) -> None:
        """SIGTERM the main process now; `kill_due` sends SIGKILL after the grace period."""
        if self._proc is None or self.kill_at is not None:
            return
        self.kill_at = now + grace_seconds
        with contextlib.suppress(ProcessLookupError):
            self._proc.send_signal(signal.SIGTERM)

    def kill_due(self, now: float) -> None:
        """SIGKILL the process group if the grace period has run out."""
        if self._proc is not None and self.kill_at is not None and now >= self.kill_at:
            self._kill_group(self._proc.pid)

    def kill_now(self) -> None:
        if self._proc is not None:
            self._kill_group(self._proc.pid)

    def reap(self, timeout: float = 5.0) -> None:
        """Wait for a killed container process and record its exit."""
        if self._proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._proc.wait(timeout)
            self.poll()

    @staticmethod
    def _kill_group(pgid: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)

    # -- output ----------------------------------------------------------------

    def _read(self, pipe: IO[bytes], stream: str) -> None:
        with pipe:
            for raw in iter(pipe.readline, b""):
                self._emit(stream, raw.decode("utf-8", "replace").rstrip("\r\n"))

    def _emit(self, stream: str, line: str) -> None:
        try:
            self._on_output(self.name, stream, line)
        except Exception:
            # Keep draining the pipe whatever the callback does, or the pod would block.
            if not self._output_failed:
                self._output_failed = True
                log.warning("output callback failed for pod %s", self.name, exc_info=True)
