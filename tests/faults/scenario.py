"""One fault scenario, from its seed to a one-line result.

`run_scenario(seed, workdir)` starts the server, fills and seals the queue,
starts the consumers and the fault thread, waits (polling, with an overall
timeout) until every consumer has exited and every fault has played out,
reads the server's final state, and judges it (checks.py). The result's
`line()` is what the suite prints per scenario; `dump()` is the evidence for a
failure: the faults, the tail of every consumer's log, the odd event lines.

Replaying a seed rebuilds the same plan (items, consumers, fault kinds, times
and parameters); the interleaving with the consumers' work differs from run to
run, so a failure found once may need a few replays (or a campaign over
nearby seeds) to show again. Every file of a run stays in its work directory.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from workqueue.connection import Connection
from workqueue.queue import MAX_BATCH, Queue
from workqueue.settings import load_settings

from . import events
from .checks import Final, Verdict, check, summary_of
from .injector import FaultRecord, Injector
from .plan import KINDS, Plan, make_plan
from .rig import QUEUE, Consumers, Server

TIMEOUT_SECONDS = 90.0
POLL_SECONDS = 0.05


@dataclass
class Result:
    plan: Plan
    workdir: Path
    elapsed: float = 0.0
    faults: list[FaultRecord] = field(default_factory=list)
    verdict: Verdict = field(default_factory=Verdict)
    timed_out: bool = False
    errors: list[str] = field(default_factory=list)  # the rig's own failures
    dump_text: str = ""

    @property
    def ok(self) -> bool:
        return not (self.verdict.violations or self.timed_out or self.errors)

    @property
    def applied(self) -> Counter[str]:
        return Counter(f.spec.kind for f in self.faults if f.applied)

    @property
    def skipped(self) -> int:
        return sum(1 for f in self.faults if not f.applied)

    def line(self) -> str:
        p = self.plan
        faults = " ".join(f"{k}={self.applied[k]}" for k in KINDS if self.applied[k]) or "none"
        dups = self.verdict.duplicates
        dup_text = " ".join(f"{k}={n}" for k, n in sorted(dups.items())) or "none"
        status = "OK" if self.ok else "FAILED"
        if self.timed_out:
            status += " (timed out)"
        return (
            f"seed={p.seed} items={len(p.items)} (poison {p.count('poison')}, flaky "
            f"{p.count('flaky')}, slow {p.count('slow')}) consumers={p.consumers}x"
            f"{p.concurrency} lease={p.lease_seconds:g}s faults: {faults}"
            f"{f' (skipped {self.skipped})' if self.skipped else ''} duplicates: {dup_text} "
            f"retries={self.verdict.retries} lost={self.verdict.lost} "
            f"time={self.elapsed:.1f}s {status}"
        )

    def report(self) -> str:
        """The line, then every violation and note, then where the evidence is."""
        out = [self.line()]
        out += [f"  violation: {text}" for text in self.verdict.violations]
        out += [f"  rig error: {text}" for text in self.errors]
        out += [f"  note: {text}" for text in self.verdict.notes]
        if not self.ok:
            out.append(f"  replay: python -m tests.faults.campaign --seed {self.plan.seed}")
            out.append(f"  evidence: {self.workdir}")
        return "\n".join(out)


def run_scenario(seed: int, workdir: Path, timeout: float = TIMEOUT_SECONDS) -> Result:
    return run_plan(make_plan(seed), workdir, timeout)


def run_plan(plan: Plan, workdir: Path, timeout: float = TIMEOUT_SECONDS) -> Result:
    """Run `plan` (a seed's, or one written by hand) and judge it."""
    workdir.mkdir(parents=True, exist_ok=True)
    result = Result(plan, workdir)
    server = Server(workdir / "valkey")
    server.start()
    event_path = workdir / "events.log"
    consumers = Consumers(plan, server, workdir, event_path)
    injector: Injector | None = None
    try:
        _fill(plan, server.url)
        began = time.monotonic()
        for slot in range(plan.consumers):
            consumers.start(slot)
        injector = Injector(plan.faults, server, consumers, events.Tail(event_path))
        injector.start()
        while not (injector.idle() and not consumers.live() and injector.idle()):
            if time.monotonic() - began > timeout:
                result.timed_out = True
                break
            time.sleep(POLL_SECONDS)
        result.elapsed = time.monotonic() - began
        injector.stop()
        injector.join(30)
        consumers.kill_all()
        result.faults = injector.records
        result.errors += injector.errors
        if not server.up:
            server.start()
        final = _read_final(plan, server.url)
        executions, problems = events.read(event_path)
        result.errors += problems
        result.verdict = check(plan, final, consumers.all_runs(), executions, result.faults)
    except BaseException as exc:  # interrupted too: leave no process behind
        result.errors.append(f"{type(exc).__name__}: {exc}")
        if injector is not None:
            injector.stop()
        consumers.kill_all()
        raise
    finally:
        if server.up:
            server.stop()
        dump = _dump(result, consumers, server)
        (workdir / "dump.txt").write_text(dump, encoding="utf-8")
        if not result.ok:
            result.dump_text = dump
    return result


def _queue(url: str) -> Queue:
    return Queue(QUEUE, Connection(load_settings(redis_url=url, redis_retry_seconds=30)))


def _fill(plan: Plan, url: str) -> None:
    queue = _queue(url)
    try:
        for start in range(0, len(plan.items), MAX_BATCH):
            batch = plan.items[start : start + MAX_BATCH]
            queue.enqueue_texts([i.text(plan.seed) for i in batch], [i.id for i in batch])
        queue.seal()
    finally:
        queue.close()


def _read_final(plan: Plan, url: str) -> Final:
    queue = _queue(url)
    try:
        stats = queue.stats().as_dict()
        dead = {d.id: d.error for d in queue.dead_items(limit=len(plan.items) + 1)}
        client, keys = queue.connection.client, queue.keys
        return Final(
            stats=stats,
            results=client.hgetall(keys.results),
            dead=dead,
            attempts={k: int(n) for k, n in client.hgetall(keys.attempts).items()},
            items_left=set(client.hkeys(keys.items)),
            lease_groups=int(client.zcard(keys.leases)),
        )
    finally:
        queue.close()


def _dump(result: Result, consumers: Consumers, server: Server, tail: int = 60) -> str:
    out = [result.report(), "", "faults:"]
    for f in result.faults:
        state = "applied" if f.applied else "not applied"
        out.append(
            f"  {f.spec.kind} planned +{f.spec.at:.2f}s param {f.spec.param:.2f}: {state} "
            f"at {f.at:.3f} until {f.until:.3f} pid {f.pid} {f.note}"
        )
    for run in consumers.all_runs():
        summary = summary_of(run)
        out.append(
            f"\n{run.name}: started {run.started:.3f} fate {run.fate or '-'} "
            f"exit {run.proc.returncode} summary {summary}; last {tail} log lines:"
        )
        out += ["  " + line for line in run.stderr().splitlines()[-tail:]]
    if server.log_path.exists():
        out.append("\nserver log (last lines):")
        lines = server.log_path.read_text(encoding="utf-8", errors="replace").splitlines()
        out += ["  " + line for line in lines[-tail:]]
    return "\n".join(out)
