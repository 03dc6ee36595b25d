"""`workqueue consume QUEUE --handler module:function`."""

from __future__ import annotations

import argparse
from typing import Any

from consumer.consumer import Consumer, Options
from consumer.loader import load_handler
from workqueue.admin import settings_from
from workqueue.cli import add_connection_flags
from workqueue.errors import UsageError
from workqueue.queue import Queue


def _run(args: argparse.Namespace) -> int:
    if args.max_items is not None and args.max_items < 1:
        raise UsageError(f"--max-items must be at least 1, not {args.max_items}")
    handler = load_handler(args.handler)
    settings = settings_from(
        args,
        concurrency=args.concurrency,
        lease_seconds=args.lease_seconds,
        max_attempts=args.max_attempts,
        grace_seconds=args.grace_seconds,
        batch_size=args.batch_size,
        retry_base_seconds=args.retry_base_seconds,
        retry_max_seconds=args.retry_max_seconds,
        poll_seconds=args.poll_seconds,
    )
    queue = Queue.from_settings(args.queue, settings)
    options = Options(max_items=args.max_items, exit_when_empty=args.exit_when_empty)
    try:
        return Consumer(queue, handler, options).run()
    finally:
        queue.close()


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "consume",
        help="drain a queue with a handler; exit 0 only when all work is done",
        description=(
            "Lease items from QUEUE and run HANDLER on each. Exits 0 only when the queue "
            "is finished (sealed, nothing pending, leased or waiting for a retry), or "
            "after --max-items, or with --exit-when-empty once nothing is left. SIGTERM "
            "or SIGINT hands unfinished items back and exits 143 or 130."
        ),
    )
    parser.add_argument("queue", metavar="QUEUE", help="queue name")
    parser.add_argument(
        "--handler",
        required=True,
        metavar="MODULE:FUNCTION",
        help="the function (plain or async) called with each item; the current "
        "directory is importable",
    )
    parser.add_argument("--concurrency", type=int, metavar="N", help="items at once (default 1)")
    parser.add_argument("--lease-seconds", type=float, metavar="S", help="lease length (30)")
    parser.add_argument("--max-attempts", type=int, metavar="N", help="attempts per item (5)")
    parser.add_argument(
        "--grace-seconds", type=float, metavar="S", help="time to finish items on SIGTERM (25)"
    )
    parser.add_argument(
        "--max-items", type=int, metavar="M", help="exit 0 after M items (fixed completions)"
    )
    parser.add_argument(
        "--exit-when-empty",
        action="store_true",
        help="exit 0 once nothing is pending, leased or delayed, sealed or not",
    )
    parser.add_argument("--batch-size", type=int, metavar="N", help="most items per lease (1000)")
    parser.add_argument(
        "--retry-base-seconds", type=float, metavar="S", help="first retry delay (1)"
    )
    parser.add_argument("--retry-max-seconds", type=float, metavar="S", help="retry cap (300)")
    parser.add_argument(
        "--poll-seconds", type=float, metavar="S", help="longest wait on an idle queue (1)"
    )
    add_connection_flags(parser)
    parser.set_defaults(run=_run)
