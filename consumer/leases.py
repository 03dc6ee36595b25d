"""The leases a consumer process holds, and the heartbeat that keeps them.

Each lease call hands out a lease group: the items leased together, with one
deadline. Every group is recorded here with the items it still holds, from the
lease until their ack, fail or release. A background thread renews every held
group each third of the lease time, so an item that runs longer than the lease
keeps it. A renewal that finds a group gone (it expired while the process was
paused or cut off, and a peer reclaimed its items) marks the group lost: its
unstarted items are skipped, and the server refuses its acks.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable

from workqueue.errors import ServerOutOfMemoryError, WorkqueueError
from workqueue.queue import Queue

log = logging.getLogger(__name__)


class LeaseBook:
    """A thread-safe record of the lease groups this process holds, and their items."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._held: dict[str, set[str]] = {}
        self._lost: set[str] = set()

    def add(self, group: str, ids: Iterable[str]) -> None:
        with self._lock:
            self._held.setdefault(group, set()).update(ids)

    def settle(self, group: str, ids: Iterable[str]) -> None:
        """The items were acked, failed or released: the group no longer holds them."""
        with self._lock:
            held = self._held.get(group)
            if held is None:
                return
            held.difference_update(ids)
            if not held:
                del self._held[group]
                self._lost.discard(group)

    def drop(self, group: str) -> None:
        with self._lock:
            self._held.pop(group, None)
            self._lost.discard(group)

    def mark_lost(self, groups: Iterable[str]) -> list[str]:
        """Record groups the server no longer has; returns those still held here."""
        with self._lock:
            really = [g for g in groups if g in self._held]
            self._lost.update(really)
            return really

    def is_lost(self, group: str) -> bool:
        return group in self._lost

    def groups(self) -> list[str]:
        """The groups to renew: held, and not known to be lost."""
        with self._lock:
            return [g for g in self._held if g not in self._lost]

    def held(self) -> dict[str, list[str]]:
        """The items still held, by group (lost groups left out)."""
        with self._lock:
            return {g: sorted(ids) for g, ids in self._held.items() if g not in self._lost}

    def __len__(self) -> int:
        with self._lock:
            return sum(len(ids) for ids in self._held.values())


class Heartbeat(threading.Thread):
    """Renews the book's leases until stopped; reports a fatal error through `on_error`."""

    def __init__(
        self,
        queue: Queue,
        book: LeaseBook,
        on_error: Callable[[WorkqueueError], None],
    ) -> None:
        super().__init__(name="workqueue-heartbeat", daemon=True)
        self.queue = queue
        self.book = book
        self.on_error = on_error
        self.interval = max(queue.settings.lease_seconds / 3, 0.02)
        self._stop_event = threading.Event()

    def stop(self) -> None:
        self._stop_event.set()

    def run(self) -> None:
        while not self._stop_event.wait(self.interval):
            groups = self.book.groups()
            if not groups:
                continue
            try:
                lost = self.queue.renew(groups)
            except ServerOutOfMemoryError as exc:
                # The server refuses the renewal's write at its memory limit.
                # Work goes on; should the limit last past the lease, peers
                # reclaim the items and this process's acks are refused.
                log.warning("could not renew leases, trying again: %s", exc)
                continue
            except WorkqueueError as exc:
                self.on_error(exc)
                return
            # A group may have been settled and closed between the snapshot and
            # the renewal; only groups still held here are really lost.
            really = self.book.mark_lost(lost) if lost else []
            if really:
                log.warning(
                    "lost %d lease group(s): the lease expired (this process was paused or "
                    "cut off) and peers reclaimed the items: %s",
                    len(really),
                    ", ".join(really[:5]),
                )
