"""`workqueue produce QUEUE [FILE|-]`: put the items of a file on a queue, then seal it.

The command reads and validates its whole input first (see producer.reader),
so a bad line stops it with nothing enqueued, then sends the items in batches
with two round trips in flight (see producer.sender), seals the queue unless
told ``--keep-open``, and prints one summary line on standard output. A
progress bar is drawn on standard error only when that is a terminal.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from typing import IO, Any

from producer.reader import Format, Input, read_input
from producer.sender import BatchSender
from workqueue.admin import settings_from
from workqueue.cli import add_connection_flags
from workqueue.errors import InputError, UsageError
from workqueue.keys import check_queue_name
from workqueue.queue import MAX_BATCH, Queue

log = logging.getLogger(__name__)


def _progress_bar(total: int | None, unit: str, desc: str) -> Any:
    """A tqdm bar on standard error if it is a terminal, else None."""
    if not sys.stderr.isatty():
        return None
    from tqdm import tqdm  # noqa: PLC0415 - only needed on a terminal

    return tqdm(total=total, unit=unit, unit_scale=True, desc=desc, file=sys.stderr, leave=False)


def _read(path: str, fmt: Format) -> Input:
    source = path
    stream: IO[bytes]
    if path == "-":
        stream = sys.stdin.buffer
    else:
        try:
            stream = open(path, "rb")  # noqa: SIM115 - closed below
        except OSError as exc:
            raise InputError(f"cannot open: {exc.strerror or exc}", source=source) from exc
    try:
        size = os.fstat(stream.fileno()).st_size if path != "-" else None
        bar = _progress_bar(size or None, "B", "reading")
        try:
            return read_input(stream, source, fmt, bar.update if bar is not None else None)
        finally:
            if bar is not None:
                bar.close()
    finally:
        if path != "-":
            stream.close()


def _send(queue: Queue, data: Input, batch_size: int) -> BatchSender:
    sender = BatchSender(queue)
    texts, ids = data.texts, data.ids
    bar = _progress_bar(len(texts), "item", "sending")
    try:
        for start in range(0, len(texts), batch_size):
            stop = start + batch_size
            sender.send(texts[start:stop], None if ids is None else ids[start:stop])
            if bar is not None:
                bar.update(min(stop, len(texts)) - start)
        sender.wait()
    finally:
        sender.close()
        if bar is not None:
            bar.close()
    return sender


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def _produce(args: argparse.Namespace) -> int:
    if args.lines and args.id_field is not None:
        raise UsageError("--id-field needs JSON Lines: plain text lines (--lines) have no fields")
    check_queue_name(args.queue)
    settings = settings_from(args, batch_size=args.batch_size)
    fmt = Format(plain=args.lines, id_field=args.id_field, max_item_bytes=settings.max_item_bytes)
    queue = Queue.from_settings(args.queue, settings)
    try:
        # Fail on an unusable server before reading a large input.
        queue.connection.check_server()
        began = time.monotonic()
        data = _read(args.file, fmt)
        read_s = time.monotonic() - began
        log.info(
            "read %d items from %s (%d lines) in %.2f s",
            len(data.texts),
            args.file,
            data.lines,
            read_s,
        )
        began = time.monotonic()
        sender = _send(queue, data, min(settings.batch_size, MAX_BATCH))
        send_s = time.monotonic() - began
        if not args.keep_open:
            queue.seal()
        log.info(
            "sent %d items to queue %s in %.2f s (%.0f items/s)",
            len(data.texts),
            queue.name,
            send_s,
            len(data.texts) / send_s if send_s > 0 else 0.0,
        )
    finally:
        queue.close()
    summary = (
        f"produced {_plural(len(data.texts), 'item')} to queue {queue.name}: "
        f"{sender.enqueued} enqueued, {_plural(sender.duplicates, 'duplicate')} skipped"
    )
    if sender.replayed_items:
        summary += (
            f", {sender.replayed_items} in batches the server had applied before a lost reply"
        )
    summary += ", left open" if args.keep_open else ", sealed"
    print(summary)
    return 0


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "produce",
        help="put the items of a JSON Lines or text file on a queue, then seal it",
        description=(
            "Read items from FILE (default: standard input), one per line, and put them on "
            "QUEUE. The whole input is checked first: a line that is not valid UTF-8 or "
            "not valid JSON, or an item above the size limit, stops the command with exit "
            "code 2 and nothing enqueued. Then the queue is sealed, unless --keep-open."
        ),
    )
    parser.add_argument("queue", metavar="QUEUE", help="queue name")
    parser.add_argument(
        "file",
        metavar="FILE",
        nargs="?",
        default="-",
        help="JSON Lines file, one JSON value per line; '-' or nothing: standard input",
    )
    parser.add_argument(
        "--lines",
        action="store_true",
        help="read plain text: each line (without its line ending) becomes a JSON string "
        "item; blank lines are skipped, as they are in JSON Lines",
    )
    parser.add_argument(
        "--id-field",
        metavar="NAME",
        help="take each item's id from field NAME of the JSON object on its line (a string "
        "or an integer); an id the queue has seen before is skipped, so a rerun after a "
        "crash adds no duplicates",
    )
    parser.add_argument(
        "--keep-open",
        action="store_true",
        help="do not seal the queue, so more items can follow (consumers then keep waiting)",
    )
    parser.add_argument(
        "--batch-size",
        metavar="N",
        type=int,
        help=f"items per round trip (default $WORKQUEUE_BATCH_SIZE or 1000; at most {MAX_BATCH})",
    )
    add_connection_flags(parser)
    parser.set_defaults(run=_produce)
