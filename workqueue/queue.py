"""The queue protocol from Python: one method per script of docs/protocol.md.

`Queue` is what the producer, the consumer, the CLI and `workqueue.testing`
share. Every state change is one Lua script run atomically by the server; this
module only shapes arguments and replies, validates what callers give, and
routes each call through `Connection.run` for retries and error naming.

Items travel as JSON text. Nothing read from Redis is unpickled or executed:
the consumer decodes item text with `json.loads`, and so does every reader here.
"""

from __future__ import annotations

import itertools
import json
import random
import secrets
import traceback
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from workqueue.connection import Connection
from workqueue.errors import InputError
from workqueue.keys import QueueKeys, check_queue_name
from workqueue.scripts import Scripts
from workqueue.settings import Settings

# Lua's unpack limit bounds a script's arguments; enqueue sends two per item.
MAX_BATCH = 2000
MAX_ID_BYTES = 256
GENERATED_ID_MARK = "#"


def check_item_id(item_id: object, *, source: str | None = None, line: int | None = None) -> str:
    """Return `item_id` as text if it is a valid caller-given id, else raise `InputError`."""
    if isinstance(item_id, bool) or not isinstance(item_id, str | int):
        raise InputError(
            f"item id must be a string or an integer, not {type(item_id).__name__}",
            source=source,
            line=line,
        )
    text = str(item_id)
    problem = None
    if not text:
        problem = "item id is empty"
    elif len(text.encode("utf-8", "surrogatepass")) > MAX_ID_BYTES:
        problem = f"item id is longer than {MAX_ID_BYTES} bytes"
    elif text.startswith(GENERATED_ID_MARK):
        problem = f"item id {text[:40]!r} starts with {GENERATED_ID_MARK!r}, kept for generated ids"
    elif any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in text):
        problem = f"item id {text[:40]!r} contains a control character"
    else:
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            problem = f"item id {text[:40]!r} is not valid Unicode text"
    if problem:
        raise InputError(problem, source=source, line=line)
    return text


@dataclass(frozen=True, slots=True)
class Stats:
    """The queue's counts, read in one atomic step."""

    pending: int
    leased: int
    delayed: int
    done: int
    dead: int
    sealed: bool
    next_due_ms: int
    now_ms: int

    @property
    def finished(self) -> bool:
        """Sealed, and nothing pending, leased or waiting for a retry."""
        return self.sealed and self.pending == 0 and self.leased == 0 and self.delayed == 0

    @property
    def idle(self) -> bool:
        """Nothing pending, leased or waiting for a retry (sealed or not)."""
        return self.pending == 0 and self.leased == 0 and self.delayed == 0

    def as_dict(self) -> dict[str, int | bool]:
        return {
            "pending": self.pending,
            "leased": self.leased,
            "delayed": self.delayed,
            "done": self.done,
            "dead": self.dead,
            "sealed": self.sealed,
            "finished": self.finished,
        }

    @classmethod
    def from_reply(cls, reply: Sequence[Any], now_ms: int) -> Stats:
        pending, leased, delayed, done, dead, sealed, next_due = (int(v) for v in reply[:7])
        return cls(pending, leased, delayed, done, dead, sealed == 1, next_due, now_ms)


@dataclass(frozen=True, slots=True)
class LeaseReply:
    """What one lease call handed out, as three aligned lists, and the queue's counts.

    `attempts[i]` is the number of attempts item `ids[i]` already used, so the
    attempt about to run is `attempts[i] + 1`.
    """

    group: str
    ids: list[str]
    texts: list[str]
    attempts: list[int]
    reclaimed: int
    stats: Stats


@dataclass(frozen=True, slots=True)
class EnqueueResult:
    enqueued: int
    duplicates: int
    replayed: bool


@dataclass(frozen=True, slots=True)
class Failure:
    """A failed attempt to report: the item, its error, and whether it is permanent."""

    id: str
    attempt: int
    error: BaseException
    permanent: bool = False


@dataclass(frozen=True, slots=True)
class FailOutcome:
    id: str
    outcome: str  # "retry", "dead" or "lost"
    delay_ms: int


@dataclass(frozen=True, slots=True)
class DeadItem:
    id: str
    text: str | None
    error: dict[str, Any]


def error_json(error: BaseException, attempt: int, limit: int = 4000) -> str:
    """The JSON record kept for a dead-lettered item: type, message, traceback summary."""
    frames = traceback.format_exception(type(error), error, error.__traceback__, limit=-4)
    summary = "".join(frames)[-limit:]
    return json.dumps(
        {
            "type": type(error).__qualname__,
            "message": str(error)[:limit],
            "traceback": summary,
            "attempts": attempt,
        },
        ensure_ascii=False,
    )


class Queue:
    """One named queue on one server.

    `now_ms` may be given for tests that move time without sleeping; by default
    the scripts use the server's clock, so consumers on hosts whose clocks
    disagree still agree on lease deadlines.
    """

    def __init__(
        self,
        name: str,
        connection: Connection,
        *,
        now_ms: Callable[[], int | None] = lambda: None,
        rng: random.Random | None = None,
    ) -> None:
        self.name = check_queue_name(name)
        self.connection = connection
        self.settings: Settings = connection.settings
        self.keys = QueueKeys.for_queue(name, self.settings.key_prefix)
        self._keys = self.keys.all
        self._scripts = Scripts.register(connection.client)
        self._now = now_ms
        self._rng = rng or random.Random()
        self._groups = itertools.count(1)

    @classmethod
    def from_settings(cls, name: str, settings: Settings) -> Queue:
        return cls(name, Connection(settings))

    def __repr__(self) -> str:
        return f"Queue({self.name!r}, {self.connection.url!r})"

    def close(self) -> None:
        self.connection.close()

    def _time_arg(self) -> str:
        now = self._now()
        return "" if now is None else str(int(now))

    def _run(self, what: str, script: Any, args: list[Any], max_delay: float = 5.0) -> Any:
        return self.connection.run(
            what,
            lambda: script(keys=self._keys, args=[self._time_arg(), *args]),
            queue=self.name,
            max_delay=max_delay,
        )

    # -- producing ---------------------------------------------------------

    def check_item_text(self, text: str, item_id: str | None = None) -> None:
        size = len(text.encode("utf-8"))
        if size > self.settings.max_item_bytes:
            raise InputError(
                f"item is {size} bytes, above the limit of {self.settings.max_item_bytes} "
                "(WORKQUEUE_MAX_ITEM_BYTES)",
                item_id=item_id,
            )

    def enqueue_texts(
        self,
        texts: Sequence[str],
        ids: Sequence[str] | None = None,
        *,
        token: str | None = None,
    ) -> EnqueueResult:
        """Enqueue one batch of JSON texts, already validated, atomically.

        With `ids`, an id the queue has seen before is skipped; without, the
        server numbers the items ``#1``, ``#2``... `token` makes a retried batch
        apply once; one is chosen when not given.
        """
        if len(texts) > MAX_BATCH:
            raise InputError(f"a batch holds at most {MAX_BATCH} items, not {len(texts)}")
        if ids is not None and len(ids) != len(texts):
            raise InputError("ids and items differ in number")
        args: list[Any] = [token or secrets.token_hex(12)]
        if ids is None:
            args.append("gen")
            args.extend(texts)
        else:
            args.append("ids")
            for item_id, text in zip(ids, texts, strict=True):
                args.append(item_id)
                args.append(text)
        reply = self._run("enqueue", self._scripts.enqueue, args)
        return EnqueueResult(int(reply[0]), int(reply[1]), reply[2] == 1)

    def seal(self) -> Stats:
        reply = self._run("seal", self._scripts.seal, [])
        return Stats.from_reply(reply, -1)

    # -- consuming -----------------------------------------------------------

    def lease(self, token: str, count: int) -> LeaseReply:
        """Reclaim expired leases, then lease up to `count` items as a new lease group.

        The group is named from the consumer's `token` and a counter; the reply
        says which. Each try of a retried call uses a new name: if a reply was
        lost in transit, the group it named is unknown to the caller and is
        reclaimed when its lease expires, rather than being mixed up with the
        group of the retry.
        """
        s = self.settings
        args = [count, int(s.lease_seconds * 1000), s.max_attempts]
        used_group = ""

        def call() -> Any:
            nonlocal used_group
            used_group = new_group_name(token, next(self._groups))
            return self._scripts.lease(keys=self._keys, args=[self._time_arg(), used_group, *args])

        reply = self.connection.run("lease", call, queue=self.name)
        stats = Stats.from_reply(reply[1:8], int(reply[8]))
        ids, texts, used = reply[9], reply[10], reply[11]
        if None in texts:  # ids whose item is missing were not leased
            keep = [i for i, text in enumerate(texts) if text is not None]
            ids, texts, used = (
                [ids[i] for i in keep],
                [texts[i] for i in keep],
                [used[i] for i in keep],
            )
        attempts = [0 if n is None else int(n) for n in used]
        return LeaseReply(used_group, ids, texts, attempts, int(reply[0]), stats)

    def renew(self, groups: Iterable[str]) -> list[str]:
        """Extend the deadline of lease `groups`; returns the groups that were lost.

        A dropped connection is retried with at most a sixth of the lease
        between tries, so renewals resume soon after an outage.
        """
        lease = self.settings.lease_seconds
        args: list[Any] = [int(lease * 1000), *groups]
        if len(args) == 1:
            return []
        return list(self._run("renew", self._scripts.renew, args, max_delay=min(5.0, lease / 6)))

    def ack(self, group: str, done: Sequence[tuple[str, str]], *, close: bool = False) -> list[str]:
        """Mark items done; `done` holds (id, result JSON or ""). Returns lost ids.

        `close` says this call settles the group's last items.
        """
        if not done and not close:
            return []
        args: list[Any] = [group, "1" if close else "0"]
        for item_id, result in done:
            args.append(item_id)
            args.append(result)
        return list(self._run("ack", self._scripts.ack, args))

    def fail(
        self, group: str, failures: Sequence[Failure], *, close: bool = False
    ) -> list[FailOutcome]:
        """Record failed attempts: each is retried later or dead-lettered."""
        if not failures and not close:
            return []
        s = self.settings
        args: list[Any] = [
            group,
            "1" if close else "0",
            s.max_attempts,
            int(s.retry_base_seconds * 1000),
            int(s.retry_max_seconds * 1000),
        ]
        for failure in failures:
            args.append(failure.id)
            args.append("1" if failure.permanent else "0")
            args.append(repr(self._rng.random()))
            args.append(error_json(failure.error, failure.attempt))
        reply = self._run("fail", self._scripts.fail, args)
        return [
            FailOutcome(reply[i], reply[i + 1], int(reply[i + 2])) for i in range(0, len(reply), 3)
        ]

    def release(self, group: str, ids: Sequence[str], *, close: bool = False) -> int:
        """Hand leased items back at once, counting no attempt."""
        if not ids and not close:
            return 0
        return int(
            self._run("release", self._scripts.release, [group, "1" if close else "0", *ids])
        )

    # -- inspecting and administering ----------------------------------------

    def stats(self) -> Stats:
        reply = self._run("stats", self._scripts.stats, [])
        return Stats.from_reply(reply, int(reply[7]))

    def requeue_dead(self, count: int = MAX_BATCH) -> int:
        """Move up to `count` dead-lettered items back to pending; returns how many."""
        moved = 0
        while count > moved:
            step = int(self._run("requeue", self._scripts.requeue, [min(MAX_BATCH, count - moved)]))
            moved += step
            if step == 0:
                break
        return moved

    def dead_items(self, limit: int = 100) -> list[DeadItem]:
        """The oldest dead-lettered items with their last error."""

        def read() -> list[Any]:
            ids = self.connection.client.zrange(self.keys.dead, 0, limit - 1)
            if not ids:
                return [ids, [], []]
            pipe = self.connection.client.pipeline(transaction=True)
            pipe.hmget(self.keys.items, ids)
            pipe.hmget(self.keys.errors, ids)
            texts, errors = pipe.execute()
            return [ids, texts, errors]

        ids, texts, errors = self.connection.run("dead-letter read", read, queue=self.name)
        out = []
        for item_id, text, error in zip(ids, texts, errors, strict=True):
            try:
                detail = json.loads(error) if error else {}
            except ValueError:
                detail = {"message": str(error)}
            out.append(DeadItem(item_id, text, detail))
        return out

    def result(self, item_id: str) -> Any:
        """The result stored with an item's ack, decoded; None if there is none."""
        text = self.connection.run(
            "result read", lambda: self.connection.client.hget(self.keys.results, item_id)
        )
        return None if text is None else json.loads(text)

    def delete(self) -> int:
        """Remove every key of the queue; returns the number of keys removed."""
        return int(
            self.connection.run(
                "delete", lambda: self.connection.client.unlink(*self._keys), queue=self.name
            )
        )


def new_token() -> str:
    """A fresh consumer token: 16 hex characters, unique in practice."""
    return secrets.token_hex(8)


def new_group_name(token: str, seq: int) -> str:
    """The name of a consumer's `seq`-th lease group."""
    return f"{token}:{seq}"
