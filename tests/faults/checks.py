"""The invariants a scenario must keep, judged after every consumer has exited.

Sources: the server's final state (`Final`), each consumer process's exit code
and log, the executions the handler recorded (events.py) and the faults the
injector applied. The invariants:

1. nothing is lost: done + dead == items, and nothing is pending, leased or
   delayed; the queue is finished;
2. done == items - poison, and each done item's stored result names an
   execution that ended well;
3. the poison items, and only they, are dead-lettered, after exactly the
   maximum of attempts;
4. an item runs again without having failed only when its lease was lost to a
   fault: each such duplicate execution is given a cause, or reported;
5. no consumer exits 0 before the last counted execution ended;
6. the last process of every slot exits 0; a terminated one exits 143 (or 0
   if the queue was finished by then); a killed one died of SIGKILL.

How a duplicate is explained. Execution E of an item in process P was not the
one the queue counted and did not fail. Let N be the item's first execution
with a higher attempt number, or with the same one started later (the run
that followed because E's lease was reclaimed, or its item released); if
there is none, N starts at infinity. E is explained when

- P was SIGKILLed after E started and before N started ("killed-mid-item" if E
  never ended, else "killed-before-ack": E ended, its ack was not yet sent);
- P was paused by SIGSTOP during [E.start - reach, N.start] ("paused");
- P was terminated after E started and its grace period ran out, which a
  second SIGTERM also ends ("terminated-grace-over");
- the server was down during that window, widened by `RETRY_CAP`
  ("server-restart", "server-crash");
- the server closed the connections in that window, widened the same way
  ("conn-killed").

`reach` is a third of the lease plus one second: after a pause the heartbeat
notices a lost lease within a third of the lease, and a consumer starts no
item of a group it knows is lost; the second is slack for a loaded machine.
After a server outage or cut connections, `RETRY_CAP` more: every call that
failed meanwhile, the heartbeat's renewals included, is retried with a
back-off of up to 5 s (workqueue/connection.py), so a consumer may learn of a
lost lease that much later, and meanwhile start items of the lost group.
Anything else is "unexplained", and a violation.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from .events import Execution
from .handlers import fails
from .injector import FaultRecord
from .plan import CONN, CRASH, MAX_ATTEMPTS, RESTART, Plan
from .rig import Run

SUMMARY = re.compile(
    r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),(\d{3}) INFO consumer\.consumer: "
    r"consumer summary: .* exit=(-?\d+) \((.*)\)$",
    re.MULTILINE,
)
GRACE_OVER = "grace period of"
RETRY_CAP = 5.0  # the longest sleep between retries of a failed Redis call
LOST_AT_ACK = re.compile(
    r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),(\d{3}) WARNING consumer\.consumer: "
    r"the lease of \d+ item\(s\) was lost before the ack \(.*?\): (.*)$",
    re.MULTILINE,
)


@dataclass
class Final:
    """The queue as the server holds it once every consumer has exited."""

    stats: dict[str, int | bool]
    results: dict[str, str]  # done id -> result JSON
    dead: dict[str, dict[str, Any]]  # dead id -> its last error
    attempts: dict[str, int]  # the attempts hash (kept for dead items only)
    items_left: set[str]  # ids whose item text is still stored
    lease_groups: int  # lease groups still registered


@dataclass
class Verdict:
    violations: list[str] = field(default_factory=list)
    duplicates: Counter[str] = field(default_factory=Counter)
    retries: int = 0
    lost: int = 0
    notes: list[str] = field(default_factory=list)


def summary_of(run: Run) -> tuple[int, int, str] | None:
    """The consumer's summary line: (wall-clock ms, exit code, reason), if logged."""
    found = SUMMARY.findall(run.stderr())
    if len(found) != 1:
        return None
    stamp, millis, code, reason = found[0]
    return _wall_ms(stamp, millis), int(code), reason


def _wall_ms(stamp: str, millis: str) -> int:
    """A log line's time (local time, as logging writes it) in ms since the epoch."""
    return int(time.mktime(time.strptime(stamp, "%Y-%m-%d %H:%M:%S"))) * 1000 + int(millis)


def check(
    plan: Plan,
    final: Final,
    runs: list[Run],
    executions: list[Execution],
    faults: list[FaultRecord],
) -> Verdict:
    v = Verdict()
    specs = {i.id: i for i in plan.items}
    by_item: dict[str, list[Execution]] = {}
    for e in executions:
        by_item.setdefault(e.id, []).append(e)
        spec = specs.get(e.id)
        if spec is None:
            v.violations.append(f"an execution of an unknown item: {e.describe()}")
            continue
        if e.attempt > MAX_ATTEMPTS:
            v.violations.append(f"an attempt beyond the maximum: {e.describe()}")
        expected = "error" if fails(spec.kind, plan.seed, e.id, e.attempt) else "ok"
        if e.outcome is not None and e.outcome != expected:
            v.violations.append(f"outcome {e.outcome}, expected {expected}: {e.describe()}")

    accepted = _check_counts(plan, final, by_item, v)
    last_needed = max((e.end or 0.0 for e in accepted.values()), default=0.0)
    _check_duplicates(plan, runs, by_item, accepted, faults, v)
    _check_exits(runs, last_needed, v)
    _check_lost_reports(runs, by_item, accepted, v)
    return v


def _check_lost_reports(
    runs: list[Run], by_item: dict[str, list[Execution]], accepted: dict[str, Execution], v: Verdict
) -> None:
    """A note (not a violation) for each item a consumer called lost at the ack though
    its own ack counted: the ack was applied, its reply was lost, and the retried ack
    found the item no longer held. The queue's accounting is right; the warning and the
    summary are not. The warning names no attempt, so an item the process ran twice
    (the lost ack may be the other run's) is left out."""
    for run in runs:
        for stamp, millis, listed in LOST_AT_ACK.findall(run.stderr()):
            logged = _wall_ms(stamp, millis) / 1000
            for item_id in listed.split(", "):
                e = accepted.get(item_id.strip())
                if e is None or e.pid != run.pid or e.outcome != "ok" or e.end is None:
                    continue
                mine = [x for x in by_item.get(e.id, []) if x.pid == run.pid and x.outcome]
                if len(mine) == 1 and e.end <= logged + 0.001:
                    v.notes.append(
                        f"{run.name} reported item {item_id} lost at the ack, but its own "
                        f"ack (attempt {e.attempt}) is the one the queue counted"
                    )


def _check_counts(
    plan: Plan, final: Final, by_item: dict[str, list[Execution]], v: Verdict
) -> dict[str, Execution]:
    """Invariants 1 to 3; returns, per item, the execution that settled it."""
    s = final.stats
    n, poison = len(plan.items), plan.poison
    ids = {i.id for i in plan.items}
    settled = set(final.results) | set(final.dead)
    v.lost = len(ids - settled)
    if v.lost:
        v.violations.append(f"{v.lost} item(s) lost: {sorted(ids - settled)[:10]}")
    if s["done"] + s["dead"] != n:
        v.violations.append(f"done {s['done']} + dead {s['dead']} != {n} items")
    if s["pending"] or s["leased"] or s["delayed"] or not s["finished"]:
        v.violations.append(f"the queue is not finished: {s}")
    if s["done"] != n - len(poison):
        v.violations.append(f"done {s['done']} != {n} items - {len(poison)} poison")
    if s["done"] != len(final.results):
        v.violations.append(f"done counter {s['done']} != {len(final.results)} stored results")
    if set(final.dead) != poison:
        v.violations.append(
            f"dead-lettered {sorted(final.dead)}, but the poison items are {sorted(poison)}"
        )
    if final.items_left != set(final.dead):
        extra = sorted(final.items_left ^ set(final.dead))[:10]
        v.violations.append(f"item texts kept for items that are not dead, or lost: {extra}")
    if final.lease_groups:
        v.notes.append(f"{final.lease_groups} lease group(s) left registered")
    if set(final.attempts) != set(final.dead):
        extra = sorted(set(final.attempts) ^ set(final.dead))[:10]
        v.notes.append(f"attempt counts kept for items that are not dead: {extra}")

    accepted: dict[str, Execution] = {}
    for item_id, error in final.dead.items():
        used = final.attempts.get(item_id)
        if error.get("attempts") != MAX_ATTEMPTS or used != MAX_ATTEMPTS:
            v.violations.append(
                f"dead item {item_id} after {error.get('attempts')} attempts "
                f"(attempts hash {used}), not {MAX_ATTEMPTS}: {error.get('type')}"
            )
        burial = re.search(r"attempt (\d+) pid (\d+)$", str(error.get("message", "")))
        if error.get("type") == "InjectedFailure" and burial:
            key = (int(burial[1]), int(burial[2]))
            for e in by_item.get(item_id, []):
                if (e.attempt, e.pid) == key and e.outcome == "error":
                    accepted[item_id] = e
    for item_id, text in final.results.items():
        result = json.loads(text)
        runs = by_item.get(item_id, [])
        match = [e for e in runs if (e.pid, e.attempt) == (result["pid"], result["attempt"])]
        if len(match) != 1 or match[0].outcome != "ok":
            v.violations.append(
                f"item {item_id} is done by pid {result['pid']} attempt {result['attempt']}, "
                f"which is not one execution that ended ok: {[e.describe() for e in match]}"
            )
            continue
        accepted[item_id] = match[0]
        top = max(e.attempt for e in runs)
        if match[0].attempt != top:
            v.violations.append(
                f"item {item_id} was counted at attempt {match[0].attempt} though attempt "
                f"{top} ran: {[e.describe() for e in runs]}"
            )
    return accepted


def _check_duplicates(
    plan: Plan,
    runs: list[Run],
    by_item: dict[str, list[Execution]],
    accepted: dict[str, Execution],
    faults: list[FaultRecord],
    v: Verdict,
) -> None:
    """Invariant 4: every execution that neither counted nor failed has a cause."""
    reach = plan.lease_seconds / 3 + 1.0
    by_pid = {r.pid: r for r in runs}
    outages = [
        (f.spec.kind, f.at, f.until)
        for f in faults
        if f.applied and f.spec.kind in (RESTART, CRASH, CONN)
    ]
    for item_id, execs in by_item.items():
        for e in execs:
            if e is accepted.get(item_id):
                continue
            if e.outcome == "error":
                v.retries += 1
                continue
            later = [
                x.start
                for x in execs
                if x.attempt > e.attempt or (x.attempt == e.attempt and x.start > e.start)
            ]
            nxt = min(later) if later else math.inf
            cause = _cause(e, nxt, by_pid.get(e.pid), outages, reach)
            v.duplicates[cause] += 1
            if cause == "unexplained":
                v.violations.append(
                    f"item {item_id} ran again though no fault explains it: {e.describe()} "
                    f"(next attempt started at {nxt:.3f}); runs: "
                    f"{[x.describe() for x in execs]}"
                )


def _cause(
    e: Execution,
    nxt: float,
    run: Run | None,
    outages: list[tuple[str, float, float]],
    reach: float,
) -> str:
    lo = e.start - reach
    if run is not None:
        if run.fate == "killed" and e.start <= run.signalled <= nxt:
            return "killed-mid-item" if e.end is None else "killed-before-ack"
        if any(stop <= nxt and resume >= lo for stop, resume in run.pauses):
            return "paused"
        if run.fate == "terminated" and e.start <= run.signalled and GRACE_OVER in run.stderr():
            return "terminated-grace-over"
    # A server outage explains more than a cut connection: it is named first.
    for kind, start, end in sorted(outages, key=lambda o: o[0] == CONN):
        if start <= nxt and end >= lo - RETRY_CAP:
            return {RESTART: "server-restart", CRASH: "server-crash", CONN: "conn-killed"}[kind]
    return "unexplained"


def _check_exits(runs: list[Run], last_needed: float, v: Verdict) -> None:
    """Invariants 5 and 6."""
    last_ms = math.floor(last_needed * 1000)
    final_run = {r.slot: r for r in sorted(runs, key=lambda r: r.number)}
    for run in runs:
        code = run.proc.returncode
        summary = summary_of(run)
        if run.fate == "killed":
            continue  # the injector saw it die of SIGKILL
        if summary is None:
            v.violations.append(f"{run.name} exited {code} without one summary line")
            continue
        ms, logged, reason = summary
        if logged != code:
            v.violations.append(f"{run.name} exited {code} but its summary says {logged}")
        if run.fate == "terminated":
            if code != 143 and not (code == 0 and "finished" in reason):
                v.violations.append(f"{run.name} was terminated and exited {code} ({reason})")
        elif code != 0:
            v.violations.append(f"{run.name} exited {code} ({reason})")
        if code == 0 and ms < last_ms:
            v.violations.append(
                f"{run.name} exited 0 at {ms / 1000:.3f}, before the last counted execution "
                f"ended at {last_needed:.3f} ({reason})"
            )
    for slot, run in final_run.items():
        if run.fate:
            v.violations.append(f"slot {slot} ends with a {run.fate} process: nothing restarted it")
