"""The fault thread: applies a plan's faults at their moments, and what follows them.

One thread runs a timetable. A planned fault fires at its time; what it sets
in motion (the SIGCONT that ends a pause, the restart of a killed or
terminated consumer, the start of a stopped server) is put on the timetable
too, so faults overlap without the thread ever sleeping blindly. A planned
fault that finds nothing to act on (no consumer runs any more, the server is
down) is put off a little or skipped, and its record says so.
"""

from __future__ import annotations

import heapq
import itertools
import signal
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass

from .events import Tail
from .plan import CONN, CRASH, KILL, PAUSE, RESTART, TERM, FaultSpec
from .rig import Consumers, Run, Server

START_WAIT = 30.0  # longest wait for the first item to start
TERM_TARGET_WAIT = 3.0  # how long a SIGTERM waits for a consumer that has run an item


@dataclass
class FaultRecord:
    """What became of one planned fault; times are wall clock."""

    spec: FaultSpec
    applied: bool = False
    at: float = 0.0
    until: float = 0.0  # end of a pause or of the server's downtime; `at` for the others
    pid: int | None = None
    note: str = ""


class Injector:
    def __init__(
        self,
        faults: tuple[FaultSpec, ...],
        server: Server,
        consumers: Consumers,
        tail: Tail,
    ) -> None:
        self.server = server
        self.consumers = consumers
        self.tail = tail
        self.records = [FaultRecord(f) for f in faults]
        self.errors: list[str] = []
        self._t0: float | None = None
        self._seq = itertools.count()
        self._lock = threading.Lock()
        self._busy = False
        self._timetable: list[tuple[float, int, bool, Callable[[], None]]] = []
        self._halt = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="fault-injector", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)

    # -- the timetable ---------------------------------------------------------

    def _plan(self, due: float, action: Callable[[], None], *, primary: bool = False) -> None:
        with self._lock:
            heapq.heappush(self._timetable, (due, next(self._seq), primary, action))

    def _after(self, delay: float, action: Callable[[], None], *, primary: bool = False) -> None:
        self._plan(time.monotonic() + delay, action, primary=primary)

    def idle(self) -> bool:
        """Nothing planned and nothing being done."""
        with self._lock:
            return self._t0 is not None and not self._timetable and not self._busy

    def stop(self) -> None:
        self._halt.set()

    def _loop(self) -> None:
        # Fault times count from the first item started, not from the processes'
        # start: a consumer needs a moment (more on a loaded machine) to import
        # and connect, and faults before that test little.
        deadline = time.monotonic() + START_WAIT
        while not self.tail.started() and time.monotonic() < deadline:
            if self._halt.wait(0.02):
                return
        t0 = time.monotonic()
        for record in self.records:
            self._plan(t0 + record.spec.at, self._fault_action(record), primary=True)
        with self._lock:
            self._t0 = t0  # only now may idle() say True
        while not self._halt.is_set():
            with self._lock:
                if (
                    self._timetable
                    and all(entry[2] for entry in self._timetable)
                    and not self.consumers.live()
                ):
                    # Every consumer has exited and only planned faults are left.
                    self._timetable.clear()
                due = self._timetable[0][0] if self._timetable else None
                ready = due is not None and due <= time.monotonic()
                action = heapq.heappop(self._timetable)[3] if ready else None
                self._busy = action is not None
            if action is None:
                wait = 0.05 if due is None else min(0.05, max(due - time.monotonic(), 0.0))
                self._halt.wait(wait)
                continue
            try:
                action()
            except Exception:
                self.errors.append(traceback.format_exc())
            finally:
                with self._lock:
                    self._busy = False
        for record in self.records:
            if not record.applied and not record.note:
                record.note = "skipped: every consumer had exited"

    # -- choosing a consumer ---------------------------------------------------

    def _target(self, pick: float, *, need_run: bool = False) -> Run | None:
        """A live consumer, neither paused nor already signalled: one running an item
        now if any, else one that has run an item, else (unless `need_run`) any."""
        runs = sorted(
            (r for r in self.consumers.live() if not (r.paused or r.fate)),
            key=lambda r: (r.slot, r.number),
        )
        has_run = [r for r in runs if self.tail.has_run(r.pid)]
        busy = [r for r in has_run if self.tail.running(r.pid)]
        pool = busy or has_run or ([] if need_run else runs)
        if not pool:
            return None
        return pool[int(pick * len(pool))]

    # -- the faults ------------------------------------------------------------

    def _fault_action(self, record: FaultRecord) -> Callable[[], None]:
        kinds: dict[str, Callable[[FaultRecord], None]] = {
            KILL: self._kill,
            PAUSE: self._pause,
            TERM: self._term,
            CONN: self._conn,
            RESTART: self._server_stop,
            CRASH: self._server_stop,
        }
        return lambda: kinds[record.spec.kind](record)

    def _postpone(self, record: FaultRecord, why: str) -> bool:
        """Try the fault again soon, unless it is too late; False means skip it."""
        if not self.consumers.live():
            record.note = f"skipped: {why}, and every consumer had exited"
            return False
        self._after(0.1, self._fault_action(record), primary=True)
        return True

    def _kill(self, record: FaultRecord) -> None:
        run = self._target(record.spec.pick)
        if run is None:
            self._postpone(record, "no consumer to kill")
            return
        mid_item = self.tail.running(run.pid)
        at = time.time()
        run.proc.send_signal(signal.SIGKILL)
        run.proc.wait(10)
        if run.proc.returncode != -signal.SIGKILL:
            record.note = f"skipped: {run.name} exited by itself ({run.proc.returncode})"
            return
        run.fate, run.signalled = "killed", at
        self._applied(record, run, at, at, "mid-item" if mid_item else "between items")
        self._after(record.spec.param, lambda: self._restart(run.slot))

    def _term(self, record: FaultRecord) -> None:
        run = self._target(record.spec.pick, need_run=True)
        if run is None:
            assert self._t0 is not None
            late = time.monotonic() - self._t0 > record.spec.at + TERM_TARGET_WAIT
            if late or not self._postpone(record, "no consumer that ran an item"):
                record.note = record.note or "skipped: no consumer that ran an item"
            return
        mid_item = self.tail.running(run.pid)
        at = time.time()
        run.proc.send_signal(signal.SIGTERM)
        run.fate, run.signalled = "terminated", at
        self._applied(record, run, at, at, "mid-item" if mid_item else "between items")
        self._after(0.05, lambda: self._await_exit(run, record.spec.param))

    def _await_exit(self, run: Run, delay: float) -> None:
        if run.alive():
            self._after(0.05, lambda: self._await_exit(run, delay))
        else:
            self._after(delay, lambda: self._restart(run.slot))

    def _restart(self, slot: int) -> None:
        self.consumers.start(slot)

    def _pause(self, record: FaultRecord) -> None:
        run = self._target(record.spec.pick)
        if run is None:
            self._postpone(record, "no consumer to pause")
            return
        mid_item = self.tail.running(run.pid)
        at = time.time()
        run.proc.send_signal(signal.SIGSTOP)
        run.paused = True
        self._applied(record, run, at, at, "mid-item" if mid_item else "between items")

        def resume() -> None:
            record.until = time.time()
            run.proc.send_signal(signal.SIGCONT)
            run.paused = False
            run.pauses.append((record.at, record.until))

        self._after(record.spec.param, resume)

    def _conn(self, record: FaultRecord) -> None:
        if not self.server.up:
            self._postpone(record, "the server was down")
            return
        at = time.time()
        closed = self.server.kill_clients()
        self._applied(record, None, at, time.time(), f"{closed} connection(s) closed")
        # A burst: cuts 0.1 s apart catch more calls in flight than one does.
        self._after(0.1, lambda: self._cut_again(record, int(record.spec.param) - 1))

    def _cut_again(self, record: FaultRecord, left: int) -> None:
        if left <= 0 or not self.server.up:
            return
        closed = self.server.kill_clients()
        record.until = time.time()
        record.note += f", {closed}"
        self._after(0.1, lambda: self._cut_again(record, left - 1))

    def _server_stop(self, record: FaultRecord) -> None:
        if not self.server.up:
            self._postpone(record, "the server was down")
            return
        at = time.time()
        self.server.stop(crash=record.spec.kind == CRASH)
        self._applied(record, None, at, at, "")

        def start() -> None:
            self.server.start()
            record.until = time.time()
            record.note = f"down {record.until - record.at:.2f}s"

        self._after(record.spec.param, start)

    @staticmethod
    def _applied(record: FaultRecord, run: Run | None, at: float, until: float, note: str) -> None:
        record.applied = True
        record.at, record.until, record.note = at, until, note
        record.pid = None if run is None else run.pid
        if run is not None:
            record.note = f"{run.name} {note}"
