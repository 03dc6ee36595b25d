"""The consumer: leases items, runs the handler, and decides when it may exit 0.

Why the exit rule matters: in a Kubernetes Job with `completions` unset, the
first Pod to exit 0 tells the controller that the work is done; it starts no
new Pods after that. A consumer that exited 0 while a peer still held items
would leave them stranded if that peer then crashed. So `Consumer.run` returns
0 only when the queue is *finished* (sealed, nothing pending, leased or
delayed), or `max_items` were handled, or, with `exit_when_empty`, nothing is
pending, leased or delayed. While peers hold leases it keeps polling, and every
poll reclaims expired leases, so the items of a dead peer are redone here.

Threads: `concurrency` worker threads each run the lease, handle, ack loop; a
heartbeat thread renews every held lease; a coroutine handler runs on one
event loop thread shared by the workers. The main thread only waits and
handles SIGTERM and SIGINT: stop leasing, release the items not yet started,
give running items `grace_seconds` to finish, release the rest, and exit 143
or 130 (0 if the queue is finished by then).

Batches adapt to the handler's speed: a worker leases as many items as it can
handle in about a quarter of a second (at most `batch_size`), so a fast handler
costs few round trips and a slow one does not hoard items its peers could run.
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

from consumer.context import ItemContext, _current
from consumer.leases import Heartbeat, LeaseBook
from consumer.loader import Handler, is_async
from workqueue.errors import (
    EXIT_INTERNAL,
    EXIT_OK,
    EXIT_SIGINT,
    EXIT_SIGTERM,
    PermanentError,
    WorkqueueError,
)
from workqueue.queue import MAX_BATCH, Failure, LeaseReply, Queue, new_token

log = logging.getLogger(__name__)

TARGET_BATCH_SECONDS = 0.25
FLUSH_SECONDS = 0.25
FIRST_POLL_SECONDS = 0.02
PREFETCH_MIN_BATCH = 50


class _NotJSONResult(PermanentError):
    """The handler returned a value that JSON cannot encode."""


class _BadItem(PermanentError):
    """The item's text in Redis is not JSON (written by a foreign producer)."""


class _Background:
    """A call run on a thread of its own; `wait()` joins it and re-raises its error."""

    def __init__(self, call: Callable[[], None]) -> None:
        self._call = call
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="workqueue-settle", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self._call()
        except BaseException as exc:  # re-raised in the worker by wait()
            self._error = exc

    def wait(self) -> None:
        self._thread.join()
        if self._error is not None:
            raise self._error


class _Lease:
    """A lease call made in the background, so it can run while a batch is handled."""

    def __init__(self, consumer: Consumer, wanted: int) -> None:
        self._consumer = consumer
        self._wanted = wanted
        self._reply: LeaseReply | None = None
        self._call = _Background(self._run)

    def _run(self) -> None:
        reply = self._consumer.queue.lease(self._consumer.token, self._wanted)
        # Into the book at once, so the heartbeat renews this batch while the
        # previous one still runs (a slow item there must not expire it).
        if reply.ids:
            self._consumer.book.add(reply.group, reply.ids)
        self._reply = reply

    def result(self) -> LeaseReply:
        self._call.wait()
        assert self._reply is not None
        self._consumer._on_lease(self._wanted, self._reply)
        return self._reply


@dataclass
class Summary:
    """What one consumer process did; printed as one line at exit."""

    queue: str
    ok: int = 0
    retried: int = 0
    dead: int = 0
    released: int = 0
    lost: int = 0
    reclaimed: int = 0
    started: float = field(default_factory=time.monotonic)
    exit_code: int = EXIT_OK
    reason: str = ""

    @property
    def handled(self) -> int:
        return self.ok + self.retried + self.dead

    def line(self) -> str:
        elapsed = time.monotonic() - self.started
        rate = self.handled / elapsed if elapsed > 0 else 0.0
        return (
            f"consumer summary: queue={self.queue} handled={self.handled} ok={self.ok} "
            f"retried={self.retried} dead={self.dead} released={self.released} "
            f"lost={self.lost} reclaimed={self.reclaimed} elapsed={elapsed:.2f}s "
            f"rate={rate:.1f}/s exit={self.exit_code} ({self.reason})"
        )


@dataclass(frozen=True, slots=True)
class Options:
    """Per-run choices that are not queue settings."""

    max_items: int | None = None
    exit_when_empty: bool = False
    install_signal_handlers: bool = True


class Consumer:
    """Drains one queue with one handler; `run()` returns the process exit code."""

    def __init__(self, queue: Queue, handler: Handler, options: Options | None = None) -> None:
        self.queue = queue
        self.handler = handler
        self.options = options or Options()
        self.settings = queue.settings
        self.token = new_token()
        self.book = LeaseBook()
        self.summary = Summary(queue.name)
        self._lock = threading.Lock()
        self._stop = threading.Event()  # a signal or a fatal error: stop leasing
        self._done = threading.Event()  # the exit condition was met
        self._wake = threading.Event()  # either of the two; idle workers wait on it
        self._stop_code = EXIT_OK
        self._hurry = False  # a second signal: skip the rest of the grace period
        self._completed = 0
        self._fatal: BaseException | None = None
        self._budget = self.options.max_items
        self._loop: asyncio.AbstractEventLoop | None = None
        self._async = is_async(handler)

    # -- the main thread ------------------------------------------------------

    def run(self) -> int:
        """Drain the queue; return 0, 130, 143, or raise a `WorkqueueError`."""
        self.queue.connection.check_server()
        log.info(
            "consumer %s started on queue %s at %s (concurrency %d, lease %gs)",
            self.token,
            self.queue.name,
            self.queue.connection.url,
            self.settings.concurrency,
            self.settings.lease_seconds,
        )
        previous = self._install_signals()
        loop_thread = self._start_loop() if self._async else None
        heartbeat = Heartbeat(self.queue, self.book, self._fail_fatally)
        heartbeat.start()
        workers = [
            threading.Thread(target=self._work, name=f"workqueue-worker-{n}", daemon=True)
            for n in range(self.settings.concurrency)
        ]
        for worker in workers:
            worker.start()
        try:
            code = self._wait(workers)
        finally:
            heartbeat.stop()
            if self._loop is not None and loop_thread is not None:
                self._loop.call_soon_threadsafe(self._loop.stop)
            self._restore_signals(previous)
        self.summary.exit_code = code
        log.info("%s", self.summary.line())
        return code

    def _wait(self, workers: list[threading.Thread]) -> int:
        grace_ends: float | None = None
        while any(w.is_alive() for w in workers):
            if self._fatal is not None:
                break
            if self._stop.is_set() and self._stop_code != EXIT_OK:
                if grace_ends is None:
                    grace_ends = time.monotonic() + self.settings.grace_seconds
                elif self._hurry or time.monotonic() >= grace_ends:
                    log.warning(
                        "grace period of %gs is over; releasing %d running item(s)",
                        self.settings.grace_seconds,
                        len(self.book),
                    )
                    break
            for w in workers:
                w.join(0.05)
        self._release_all()
        if self._fatal is not None:
            self.summary.reason = f"error: {self._fatal}"
            if isinstance(self._fatal, WorkqueueError):
                self.summary.exit_code = self._fatal.exit_code
                log.info("%s", self.summary.line())
                raise self._fatal
            log.error("a worker thread failed", exc_info=self._fatal)
            return EXIT_INTERNAL
        if self._stop_code != EXIT_OK:
            if self._finished_now():
                self.summary.reason = "stopped by signal, but the queue is finished"
                return EXIT_OK
            self.summary.reason = "stopped by signal; items handed back"
            return self._stop_code
        return EXIT_OK

    def _finished_now(self) -> bool:
        try:
            return self.queue.stats().finished
        except WorkqueueError:
            return False

    def _release_all(self) -> None:
        count = 0
        for group, ids in self.book.held().items():
            try:
                count += self.queue.release(group, ids, close=True)
            except WorkqueueError as exc:
                log.error(
                    "could not release %d item(s); they return to the queue when their "
                    "lease expires: %s",
                    len(ids),
                    exc,
                )
                continue
            self.book.drop(group)
        if count:
            with self._lock:
                self.summary.released += count
            log.info("released %d item(s) back to the queue", count)

    def stop(self, code: int = EXIT_SIGTERM) -> None:
        """Stop leasing and hand items back; `run` then returns `code`."""
        if self._stop.is_set() and self._stop_code != EXIT_OK:
            return
        self._stop_code = code
        self._stop.set()
        self._wake.set()

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        code = EXIT_SIGINT if signum == signal.SIGINT else EXIT_SIGTERM
        if self._stop.is_set() and self._stop_code != EXIT_OK:
            log.warning("received a second signal: not waiting for running items")
            self._hurry = True
            return
        log.warning(
            "received %s: leasing stops; running items get %gs to finish",
            signal.Signals(signum).name,
            self.settings.grace_seconds,
        )
        self.stop(code)

    def _install_signals(self) -> dict[int, Any]:
        previous: dict[int, Any] = {}
        if not self.options.install_signal_handlers:
            return previous
        if threading.current_thread() is not threading.main_thread():
            log.debug("not in the main thread: SIGTERM and SIGINT are left alone")
            return previous
        for signum in (signal.SIGTERM, signal.SIGINT):
            previous[signum] = signal.signal(signum, self._on_signal)
        return previous

    @staticmethod
    def _restore_signals(previous: dict[int, Any]) -> None:
        for signum, handler in previous.items():
            signal.signal(signum, handler)

    def _fail_fatally(self, exc: BaseException) -> None:
        if self._fatal is None:
            self._fatal = exc
        self._stop.set()
        self._wake.set()

    def _finish(self, reason: str) -> None:
        self.summary.reason = reason
        self._done.set()
        self._wake.set()

    def _start_loop(self) -> threading.Thread:
        loop = asyncio.new_event_loop()
        self._loop = loop
        thread = threading.Thread(target=loop.run_forever, name="workqueue-event-loop", daemon=True)
        thread.start()
        return thread

    # -- worker threads --------------------------------------------------------

    def _take_budget(self, wanted: int) -> int:
        with self._lock:
            if self._budget is None:
                return wanted
            granted = min(wanted, self._budget)
            self._budget -= granted
            return granted

    def _return_budget(self, unused: int) -> None:
        if unused and self._budget is not None:
            with self._lock:
                self._budget += unused

    def _work(self) -> None:
        try:
            self._work_loop()
        except BaseException as exc:  # reported by the main thread
            self._fail_fatally(exc)

    def _lease(self, wanted: int) -> _Lease:
        return _Lease(self, wanted)

    def _work_loop(self) -> None:
        batch = 1
        poll = FIRST_POLL_SECONDS
        max_batch = min(self.settings.batch_size, MAX_BATCH)
        ahead: _Lease | None = None  # a lease already asked for while the last batch ran
        settling: _Background | None = None  # the last batch's acks, still in flight
        try:
            while not self._wake.is_set():
                if ahead is None:
                    wanted = self._take_budget(batch)
                    if wanted == 0:
                        # Peers hold the rest of the max-items budget; they finish it.
                        self._wake.wait(FIRST_POLL_SECONDS)
                        continue
                    ahead = self._lease(wanted)
                current, ahead = ahead, None
                reply = current.result()
                group = reply.group
                if reply.ids:
                    poll = FIRST_POLL_SECONDS
                    if batch >= PREFETCH_MIN_BATCH and not self._wake.is_set():
                        # Fast items: lease the next batch while this one runs, so the
                        # server's work and ours overlap.
                        wanted = self._take_budget(batch)
                        ahead = self._lease(wanted) if wanted else None
                    began = time.monotonic()
                    if ahead is not None:
                        # Fast items: the acks of this batch go out while the next
                        # batch runs; one batch of acks in flight at a time.
                        settle = self._handle_batch(group, reply, defer=True)
                        if settling is not None:
                            settling.wait()
                        settling = _Background(settle) if settle is not None else None
                    else:
                        self._handle_batch(group, reply)
                    per_item = (time.monotonic() - began) / len(reply.ids)
                    batch = max(1, min(max_batch, int(TARGET_BATCH_SECONDS / max(per_item, 1e-6))))
                    continue
                stats = reply.stats
                if stats.finished:
                    self._finish("queue finished")
                    return
                if self.options.exit_when_empty and stats.idle:
                    self._finish("queue empty (exit-when-empty)")
                    return
                wait = poll
                if stats.next_due_ms >= 0:
                    wait = min(wait, max((stats.next_due_ms - stats.now_ms) / 1000, 0.005))
                self._wake.wait(wait)
                poll = min(poll * 2, self.settings.poll_seconds)
        finally:
            if settling is not None:
                settling.wait()
            if ahead is not None:
                # Stopping with a batch leased ahead: none of it started.
                reply = ahead.result()
                if reply.ids:
                    self.book.add(reply.group, reply.ids)
                    self._release_unstarted(reply.group, reply.ids)

    def _on_lease(self, wanted: int, reply: LeaseReply) -> None:
        self._return_budget(wanted - len(reply.ids))
        if reply.reclaimed:
            with self._lock:
                self.summary.reclaimed += reply.reclaimed
            log.info("reclaimed %d item(s) whose lease expired", reply.reclaimed)

    def _handle_batch(
        self, group: str, batch: LeaseReply, *, defer: bool = False
    ) -> Callable[[], None] | None:
        """Run the batch's items; settle them now, or return the call that settles them."""
        ids = batch.ids
        self.book.add(group, ids)
        acks: list[tuple[str, str]] = []
        fails: list[tuple[Failure, float]] = []
        loud = log.isEnabledFor(logging.INFO)
        flushed = time.monotonic()
        skipped = False
        for index, (item_id, text, used) in enumerate(
            zip(ids, batch.texts, batch.attempts, strict=True)
        ):
            if self._stop.is_set():
                self._flush(group, acks, fails, close=False)
                self._release_unstarted(group, ids[index:])
                return None
            if self.book.is_lost(group):
                log.warning(
                    "skipping %d unstarted item(s) of a lost lease group; peers run them",
                    len(ids) - index,
                )
                # They were never handled here: give their share of a
                # --max-items budget back, or the count could never be reached.
                self._return_budget(len(ids) - index)
                skipped = True
                break
            began = time.perf_counter()
            attempt = used + 1
            error: BaseException | None = None
            result = ""
            try:
                result = self._call(item_id, text, attempt)
            except Exception as exc:  # every handler error fails the item
                error = exc
            took = time.perf_counter() - began
            if error is None:
                acks.append((item_id, result))
                if loud:
                    log.info("item %s attempt %d ok in %.3fs", item_id, attempt, took)
            else:
                permanent = isinstance(error, PermanentError)
                fails.append((Failure(item_id, attempt, error, permanent), took))
            now = time.monotonic()
            if now - flushed >= FLUSH_SECONDS:
                self._flush(group, acks, fails, close=False)
                acks, fails = [], []
                flushed = now

        def settle() -> None:
            # A group with skipped items is left to expire rather than closed:
            # should it still hold them (an ack retried after a lost reply looks
            # like a loss), closing it would leave them owned by no lease.
            self._flush(group, acks, fails, close=not skipped)
            self.book.drop(group)

        if defer:
            return settle
        settle()
        return None

    def _call(self, item_id: str, text: str, attempt: int) -> str:
        if not text.isascii():
            try:
                text.encode("utf-8")
            except UnicodeEncodeError:
                raise _BadItem("the item's text is not valid UTF-8") from None
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise _BadItem(f"the item's text is not JSON: {exc}") from None
        ctx = ItemContext(self.queue.name, item_id, attempt)
        if self._loop is not None:
            future = asyncio.run_coroutine_threadsafe(self._run_async(ctx, data), self._loop)
            value = future.result()
        else:
            reset = _current.set(ctx)
            try:
                value = self.handler(data)
            finally:
                _current.reset(reset)
        if value is None:
            return ""
        try:
            text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise _NotJSONResult(
                f"the handler returned a {type(value).__name__} that is not JSON: {exc}"
            ) from None
        size = len(text.encode("utf-8", "surrogatepass"))
        if size > self.settings.max_item_bytes:
            raise _NotJSONResult(
                f"the handler's result is {size} bytes, above the limit of "
                f"{self.settings.max_item_bytes} (WORKQUEUE_MAX_ITEM_BYTES)"
            )
        return text

    async def _run_async(self, ctx: ItemContext, data: Any) -> Any:
        _current.set(ctx)
        return await self.handler(data)

    def _release_unstarted(self, group: str, ids: list[str]) -> None:
        count = 0 if self.book.is_lost(group) else self.queue.release(group, ids, close=True)
        self.book.drop(group)
        with self._lock:
            self.summary.released += count
        if count:
            log.info("released %d unstarted item(s) back to the queue", count)

    def _flush(
        self,
        group: str,
        acks: list[tuple[str, str]],
        fails: list[tuple[Failure, float]],
        *,
        close: bool,
    ) -> None:
        lost: list[str] = []
        if acks or (close and not fails):
            lost.extend(self.queue.ack(group, acks, close=close and not fails))
            if lost:
                # The group expired and was reclaimed: skip the rest of it now
                # rather than when the heartbeat notices.
                self.book.mark_lost([group])
        outcomes = self.queue.fail(group, [f for f, _ in fails], close=close) if fails else []
        self.book.settle(group, [item_id for item_id, _ in acks])
        self.book.settle(group, [f.id for f, _ in fails])
        retried = dead = 0
        for (failure, took), outcome in zip(fails, outcomes, strict=True):
            err = failure.error
            what = f"{type(err).__name__}: {err}"
            if outcome.outcome == "retry":
                retried += 1
                log.warning(
                    "item %s attempt %d failed in %.3fs, retry in %.1fs: %s",
                    failure.id,
                    failure.attempt,
                    took,
                    outcome.delay_ms / 1000,
                    what,
                )
            elif outcome.outcome == "dead":
                dead += 1
                log.error(
                    "item %s attempt %d failed in %.3fs, dead-lettered%s: %s",
                    failure.id,
                    failure.attempt,
                    took,
                    " (permanent error)" if failure.permanent else " (no attempts left)",
                    what,
                )
            else:
                lost.append(failure.id)
        if lost:
            log.warning(
                "the lease of %d item(s) was lost before the ack (it expired and a peer "
                "reclaimed the item, which will run there): %s",
                len(lost),
                ", ".join(lost[:10]),
            )
        lost_acks = len(set(lost).intersection(item_id for item_id, _ in acks)) if lost else 0
        with self._lock:
            self.summary.ok += len(acks) - lost_acks
            self.summary.retried += retried
            self.summary.dead += dead
            self.summary.lost += len(lost)
            self._completed += len(acks) + len(fails)
            reached = self.options.max_items is not None and (
                self._completed >= self.options.max_items
            )
        if reached:
            self._finish(f"handled max-items {self.options.max_items}")


__all__ = ["Consumer", "Options", "Summary"]
