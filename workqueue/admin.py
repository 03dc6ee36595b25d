"""Queue administration commands: status, seal, dead, requeue-dead, delete."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from workqueue.cli import add_connection_flags
from workqueue.queue import Queue
from workqueue.settings import Settings, load_settings


def settings_from(args: argparse.Namespace, **extra: Any) -> Settings:
    """Settings from the environment with the shared connection flags on top."""
    return load_settings(
        redis_url=getattr(args, "redis_url", None),
        key_prefix=getattr(args, "key_prefix", None),
        **extra,
    )


def open_queue(args: argparse.Namespace, **extra: Any) -> Queue:
    queue = Queue.from_settings(args.queue, settings_from(args, **extra))
    queue.connection.check_server()
    return queue


def _status(args: argparse.Namespace) -> int:
    queue = open_queue(args)
    stats = queue.stats().as_dict()
    if args.json:
        print(json.dumps(stats))
    else:
        print(f"queue {queue.name} at {queue.connection.url}")
        for key, value in stats.items():
            print(f"  {key:<9} {str(value).lower() if isinstance(value, bool) else value}")
    return 0


def _seal(args: argparse.Namespace) -> int:
    stats = open_queue(args).seal()
    print(f"sealed {args.queue}: {stats.pending} pending, {stats.leased} leased")
    return 0


def _dead(args: argparse.Namespace) -> int:
    for item in open_queue(args).dead_items(args.limit):
        record = {"id": item.id, "item": item.text, "error": item.error}
        print(json.dumps(record, ensure_ascii=False))
    return 0


def _requeue(args: argparse.Namespace) -> int:
    moved = open_queue(args).requeue_dead(args.limit)
    print(f"requeued {moved} dead item(s) of {args.queue}")
    return 0


def _delete(args: argparse.Namespace) -> int:
    if not args.yes and sys.stdin.isatty():
        answer = input(f"delete queue {args.queue!r} and all its items? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            print("not deleted")
            return 0
    removed = open_queue(args).delete()
    print(f"deleted {args.queue} ({removed} keys)")
    return 0


def register(sub: Any) -> None:
    def command(name: str, help_text: str, run: Any) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = sub.add_parser(
            name, help=help_text, description=help_text
        )
        parser.add_argument("queue", metavar="QUEUE", help="queue name")
        add_connection_flags(parser)
        parser.set_defaults(run=run)
        return parser

    status = command("status", "print a queue's counts", _status)
    status.add_argument("--json", action="store_true", help="print one JSON object")
    command("seal", "declare that no more items will come", _seal)
    dead = command("dead", "print dead-lettered items with their errors, as JSON Lines", _dead)
    dead.add_argument("--limit", type=int, default=100, help="most items to print (default 100)")
    requeue = command("requeue-dead", "move dead-lettered items back to pending", _requeue)
    requeue.add_argument("--limit", type=int, default=1_000_000, help="most items to move")
    delete = command("delete", "delete a queue and everything in it", _delete)
    delete.add_argument("--yes", action="store_true", help="do not ask for confirmation")
