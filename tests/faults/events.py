"""Reading the start and end lines the handler writes (format in handlers.py)."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path


@dataclass(slots=True)
class Execution:
    """One run of the handler on one item in one process."""

    id: str
    attempt: int
    pid: int
    start: float
    end: float | None = None  # None: the process stopped (was killed) before the end
    outcome: str | None = None  # "ok" or "error" once ended

    def describe(self) -> str:
        end = "-" if self.end is None else f"{self.end:.3f} {self.outcome}"
        return f"{self.id} attempt {self.attempt} pid {self.pid} {self.start:.3f}..{end}"


def parse(lines: list[str]) -> tuple[list[Execution], list[str]]:
    """The executions in start order, and the lines that make no sense (problems)."""
    runs: list[Execution] = []
    open_runs: dict[tuple[int, str, int], Execution] = {}
    problems: list[str] = []
    for line in lines:
        parts = line.split()
        try:
            if parts[0] == "start" and len(parts) == 5:
                run = Execution(parts[1], int(parts[2]), int(parts[3]), float(parts[4]))
                key = (run.pid, run.id, run.attempt)
                if key in open_runs:
                    problems.append(f"a second start before the end: {line!r}")
                open_runs[key] = run
                runs.append(run)
                continue
            if parts[0] == "end" and len(parts) == 6:
                key = (int(parts[3]), parts[1], int(parts[2]))
                started = open_runs.pop(key, None)
                if started is None:
                    problems.append(f"an end without a start: {line!r}")
                else:
                    started.end, started.outcome = float(parts[4]), parts[5]
                continue
        except (IndexError, ValueError):
            pass
        problems.append(f"a line that is not an event: {line!r}")
    return runs, problems


def read(path: Path) -> tuple[list[Execution], list[str]]:
    if not path.exists():
        return [], []
    return parse(path.read_text(encoding="utf-8").splitlines())


class Tail:
    """Follows the events file while the scenario runs: which process runs an item now."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._offset = 0
        self._rest = b""
        self._lock = threading.Lock()
        self._open: dict[int, dict[tuple[str, int], float]] = {}
        self._seen: set[int] = set()

    def _update(self) -> None:
        try:
            with self.path.open("rb") as f:
                f.seek(self._offset)
                data = f.read()
        except FileNotFoundError:
            return
        self._offset += len(data)
        *lines, self._rest = (self._rest + data).split(b"\n")
        for raw in lines:
            parts = raw.decode("utf-8").split()
            if len(parts) < 5:
                continue
            pid, key = int(parts[3]), (parts[1], int(parts[2]))
            self._seen.add(pid)
            if parts[0] == "start":
                self._open.setdefault(pid, {})[key] = float(parts[4])
            else:
                self._open.get(pid, {}).pop(key, None)

    def running(self, pid: int) -> bool:
        """Whether process `pid` has started an item it has not ended."""
        with self._lock:
            self._update()
            return bool(self._open.get(pid))

    def started(self) -> bool:
        """Whether any process has started an item."""
        with self._lock:
            self._update()
            return bool(self._seen)

    def has_run(self, pid: int) -> bool:
        """Whether process `pid` has started any item (so its signal handlers are set)."""
        with self._lock:
            self._update()
            return pid in self._seen
