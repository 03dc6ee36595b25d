"""`Producer`: put JSON items on a queue from Python, in batches.

A producer serialises each item with `json` (compact, no NaN or Infinity),
checks it against the size limit, buffers it, and sends a batch whenever
`batch_size` items are waiting. As a context manager it seals the queue on a
clean exit, which tells the consumers that no more work will come; on an
exception it still sends what was accepted but leaves the queue open, so a
rerun can add the rest::

    with Producer("thumbnails") as producer:
        producer.put_many(rows, ids=lambda row: row["path"])

Give ids to make reruns safe: an id the queue has seen before is skipped and
counted in `duplicates`. Without ids the server numbers the items, and a rerun
adds them all again.

Unlike ``workqueue produce``, which reads its whole input before sending
anything, `put_many` streams: an invalid item raises `InputError` after the
batches before it were sent.
"""

from __future__ import annotations

import json
import json.encoder
import logging
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import Any

from producer.ids import item_id
from producer.sender import BatchSender
from workqueue.errors import InputError, UsageError
from workqueue.queue import MAX_BATCH, Queue, Stats
from workqueue.settings import Settings, load_settings

log = logging.getLogger(__name__)

_ENCODE_ERRORS = (TypeError, ValueError, RecursionError)


def _not_json(value: object) -> Any:
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _compact_encoder() -> Callable[[Any], str]:
    """A function doing what ``json.dumps(item, separators=(",", ":"),
    ensure_ascii=False, allow_nan=False)`` does, in less than half the time.

    json.dumps builds a new C encoder for every call; this builds one and
    keeps it. It skips the circular-reference check, so an item that contains
    itself fails with RecursionError, as a deeply nested one does (and the
    error says so).
    """
    try:
        from _json import make_encoder  # noqa: PLC0415 - the C accelerator of json
    except ImportError:  # an interpreter without it
        return json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode
    chunks = make_encoder(
        None, _not_json, json.encoder.encode_basestring, None, ":", ",", False, False, False
    )
    join = "".join

    def encode(item: Any) -> str:
        return join(chunks(item, 0))

    return encode


_encode = _compact_encoder()

IdOf = Callable[[Any], object]
_NO_ID = object()


class Producer:
    """Puts JSON items on one queue.

    `queue` is a queue name, or an open `workqueue.queue.Queue` to share its
    connection (the producer then leaves it open when it closes). `settings`
    go with a name; by default they are read from the environment
    (``WORKQUEUE_REDIS_URL``, ``WORKQUEUE_BATCH_SIZE``...). Batches hold
    `Settings.batch_size` items, at most `workqueue.queue.MAX_BATCH`.

    `enqueued` and `duplicates` count the items of the batches the server has
    answered so far; after `flush` (or the end of a ``with`` block) they are
    final. A batch holds items with ids or items without, not both: switching
    between the two sends the buffer early. A producer is not thread-safe;
    give each thread its own.
    """

    def __init__(self, queue: str | Queue, settings: Settings | None = None) -> None:
        if isinstance(queue, Queue):
            if settings is not None:
                raise UsageError("give Producer a queue name with settings, or a Queue alone")
            self.queue = queue
            self._owns_queue = False
        else:
            self.queue = Queue.from_settings(queue, settings or load_settings())
            self._owns_queue = True
        self.batch_size = min(self.queue.settings.batch_size, MAX_BATCH)
        self._max_bytes = self.queue.settings.max_item_bytes
        self._sender = BatchSender(self.queue)
        self._texts: list[str] = []
        self._ids: list[str] = []
        # Whether the buffered items carry ids; one batch is all one or the other.
        self._keyed = False
        self._accepted = 0
        self._send_error: BaseException | None = None
        self.sealed = False

    def __repr__(self) -> str:
        return f"Producer({self.queue.name!r}, {self.queue.connection.url!r})"

    # -- counts --------------------------------------------------------------

    @property
    def enqueued(self) -> int:
        """Items the server added to the queue."""
        return self._sender.enqueued

    @property
    def duplicates(self) -> int:
        """Items skipped because the queue had already seen their id."""
        return self._sender.duplicates

    @property
    def accepted(self) -> int:
        """Items taken by `put` and `put_many`, sent or still buffered."""
        return self._accepted

    # -- putting ---------------------------------------------------------------

    def put(self, item: Any, id: str | int | None = None) -> None:
        """Buffer one JSON-serialisable item, with an optional id (a string or an integer)."""
        key = None if id is None else item_id(id)
        self._add(self._encode(item, key, None), key)

    def put_many(self, items: Iterable[Any], ids: Iterable[object] | IdOf | None = None) -> int:
        """Buffer every item of `items` (any iterable, read once) and return how many.

        `ids` is None (the server numbers the items), an iterable of ids in
        step with `items`, or a function giving an item's id. Full batches are
        sent as the iterable is read, so a generator is never held in memory
        whole. A bad item raises `InputError` naming its index, and its id.
        """
        if ids is None:
            return self._put_unkeyed(items)
        id_of: IdOf
        if callable(ids):
            id_of = ids
        else:
            id_iter = iter(ids)

            def id_of(_: Any) -> object:
                return next(id_iter, _NO_ID)

        count = 0
        for index, item in enumerate(items):
            raw_id = id_of(item)
            if raw_id is _NO_ID:
                raise InputError(f"put_many: fewer ids than items (none left for index {index})")
            try:
                key = item_id(raw_id)
            except InputError as exc:
                raise InputError(f"item at index {index} of put_many: {exc}") from exc
            self._add(self._encode(item, key, index), key)
            count += 1
        if not callable(ids) and id_of(None) is not _NO_ID:
            raise InputError(f"put_many: more ids than items ({count} items)")
        return count

    def _put_unkeyed(self, items: Iterable[Any]) -> int:
        # The hot path of the library: kept inline, one call per item.
        if self._keyed:
            self._ship()
            self._keyed = False
        encode = _encode
        limit = self._max_bytes
        size = self.batch_size
        texts = self._texts
        count = 0
        for index, item in enumerate(items):
            try:
                text = encode(item)
            except _ENCODE_ERRORS as exc:
                where = f"item at index {index} of put_many"
                raise InputError(f"{where} {_unencodable(exc)}") from exc
            if not text.isascii() or len(text) > limit:
                self._check_size(text, f"item at index {index} of put_many", None)
            texts.append(text)
            count += 1
            self._accepted += 1
            if len(texts) >= size:
                self._ship()
                texts = self._texts
        return count

    def _encode(self, item: Any, key: str | None, index: int | None) -> str:
        """`item` as compact JSON text; `index` is its place in a put_many call."""
        try:
            text = _encode(item)
        except _ENCODE_ERRORS as exc:
            raise _item_error(_unencodable(exc), self._where(key, index), key) from exc
        if not text.isascii() or len(text) > self._max_bytes:
            self._check_size(text, self._where(key, index), key)
        return text

    def _where(self, key: str | None, index: int | None) -> str | None:
        """How errors name an item: by id and index, by index, or by its number."""
        if index is not None:
            return (
                f"item at index {index} of put_many"
                if key is None
                else f"index {index} of put_many"
            )
        return None if key is not None else f"item {self._accepted} of this producer"

    def _check_size(self, text: str, where: str | None, key: str | None) -> None:
        try:
            size = len(text.encode("utf-8"))
        except UnicodeEncodeError as exc:
            problem = f"holds text that is not valid Unicode (a lone surrogate?): {exc.reason}"
            raise _item_error(problem, where, key) from exc
        if size > self._max_bytes:
            problem = (
                f"is {size} bytes as JSON, above the limit of {self._max_bytes} "
                "(WORKQUEUE_MAX_ITEM_BYTES)"
            )
            raise _item_error(problem, where, key)

    def _add(self, text: str, key: str | None) -> None:
        keyed = key is not None
        if keyed != self._keyed:
            self._ship()
            self._keyed = keyed
        self._texts.append(text)
        if key is not None:
            self._ids.append(key)
        self._accepted += 1
        if len(self._texts) >= self.batch_size:
            self._ship()

    def _ship(self) -> None:
        """Hand the buffer to the sender; it stays buffered if the sender refuses it."""
        if not self._texts:
            return
        try:
            self._sender.send(self._texts, self._ids if self._keyed else None)
        except BaseException as exc:
            self._send_error = exc
            raise
        self._texts = []
        self._ids = []

    # -- finishing -------------------------------------------------------------

    def flush(self) -> None:
        """Send every buffered item and wait for the server's answers."""
        self._ship()
        try:
            self._sender.wait()
        except BaseException as exc:
            self._send_error = exc
            raise

    def seal(self) -> Stats:
        """Flush, then declare that this queue takes no more items; returns its counts."""
        self.flush()
        stats = self.queue.seal()
        self.sealed = True
        log.info(
            "sealed queue %s: %d enqueued, %d duplicates skipped by this producer",
            self.queue.name,
            self.enqueued,
            self.duplicates,
        )
        return stats

    def close(self) -> None:
        """Stop the sender and close the connection if this producer opened it.

        Items still buffered are dropped, with a warning: call `flush` first.
        """
        if self._texts:
            log.warning(
                "producer of queue %s closed with %d items never sent",
                self.queue.name,
                len(self._texts),
            )
            self._texts = []
            self._ids = []
        self._sender.close()
        if self._owns_queue:
            self.queue.close()

    def __enter__(self) -> Producer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if exc is None:
                self.seal()
            elif exc is not self._send_error:
                # Keep what the caller put before the error; a rerun with ids
                # adds only the rest. The queue stays open for that rerun.
                self.flush()
        finally:
            self.close()


def _unencodable(exc: BaseException) -> str:
    if isinstance(exc, RecursionError):
        return "cannot be encoded as JSON: it is nested too deeply, or contains itself"
    if isinstance(exc, ValueError) and "Out of range float" in str(exc):
        return "cannot be encoded as JSON: it holds NaN or Infinity, which JSON cannot express"
    return f"cannot be encoded as JSON: {exc}"


def _item_error(problem: str, where: str | None, key: str | None) -> InputError:
    """An error naming the item by its id if it has one, else by `where`."""
    if key is None:
        return InputError(f"{where or 'item'} {problem}")
    if where is None:
        return InputError(problem, item_id=key)
    return InputError(f"{problem} ({where})", item_id=key)
