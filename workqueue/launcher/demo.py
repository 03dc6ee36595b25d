"""`workqueue demo`: the whole flow on one machine, with one command.

It starts an embedded server when WORKQUEUE_REDIS_URL is unset, publishes N
items of real CPU work (a PBKDF2 key derived per item), seals the queue,
builds the work-queue Job with the same builder `workqueue launch` uses, runs
it on the local engine with P consumer pods, shows progress, and prints a
summary taken from the queue and the Job: items, wall time, items/s, retries,
dead letters and the Job's condition. It then checks a sample of the stored
keys against a fresh derivation, so the summary cannot claim work that was not
done.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import string
import sys
import threading
import time
from contextlib import ExitStack
from typing import Any

from workqueue.connection import Connection
from workqueue.demo_handler import derive_key
from workqueue.errors import EXIT_OK, WorkFailedError
from workqueue.queue import Queue
from workqueue.settings import load_settings

SUMMARY = re.compile(r"consumer summary: .*?retried=(\d+) .*?reclaimed=(\d+)")
HANDLER = "workqueue.demo_handler:derive_key"


class _PodOutput:
    """Collects the consumers' summaries; shows only warnings, errors and summaries."""

    def __init__(self, verbose: bool) -> None:
        self.verbose = verbose
        self.retried = 0
        self.reclaimed = 0
        self._lock = threading.Lock()

    def __call__(self, pod: str, stream: str, line: str) -> None:
        match = SUMMARY.search(line)
        if match:
            with self._lock:
                self.retried += int(match.group(1))
                self.reclaimed += int(match.group(2))
        if self.verbose or match or " WARNING " in line or " ERROR " in line:
            print(f"[{pod}] {line}", file=sys.stderr, flush=True)


def _publish(queue: Queue, items: int, rounds: int) -> None:
    batch = 1000
    for start in range(0, items, batch):
        stop = min(start + batch, items)
        ids = [f"item-{n:06d}" for n in range(start, stop)]
        texts = [json.dumps({"seed": n, "rounds": rounds}) for n in range(start, stop)]
        queue.enqueue_texts(texts, ids)
    queue.seal()


def _progress(queue: Queue, total: int, halt: threading.Event) -> None:
    bar: Any = None
    if sys.stderr.isatty():
        from tqdm import tqdm  # noqa: PLC0415

        bar = tqdm(total=total, unit="item", desc="demo", file=sys.stderr)
    shown = 0.0
    while not halt.wait(0.2):
        try:
            stats = queue.stats()
        except Exception as exc:  # the display must not end the run
            print(f"progress: no stats ({exc})", file=sys.stderr)
            continue
        handled = stats.done + stats.dead
        if bar is not None:
            bar.update(handled - bar.n)
        elif time.monotonic() - shown >= 1.0:
            shown = time.monotonic()
            print(
                f"progress: {handled}/{total} handled, {stats.leased} leased, "
                f"{stats.pending} pending",
                file=sys.stderr,
                flush=True,
            )
    if bar is not None:
        bar.close()


def _verify(queue: Queue, items: int, rounds: int, sample: int = 20) -> tuple[int, int]:
    """Re-derive a sample of keys and compare them with the stored results.

    Returns how many were checked and how many were wrong."""
    picks = random.Random(0).sample(range(items), min(sample, items))
    wrong = 0
    for n in picks:
        stored = queue.result(f"item-{n:06d}")
        expected = derive_key({"seed": n, "rounds": rounds})
        if stored != expected:
            wrong += 1
    return len(picks), wrong


def _demo(args: argparse.Namespace) -> int:
    from workqueue.embedded import embedded_server  # noqa: PLC0415
    from workqueue.launcher.builder import build_job  # noqa: PLC0415
    from workqueue.launcher.local import LocalJobEngine  # noqa: PLC0415
    from workqueue.launcher.spec import JobOptions  # noqa: PLC0415

    suffix = "".join(random.choices(string.ascii_lowercase + string.digits, k=5))
    name = args.queue or f"demo-{suffix}"
    with ExitStack() as stack:
        url = args.redis_url or os.environ.get("WORKQUEUE_REDIS_URL")
        where = (
            "the server given by --redis-url"
            if args.redis_url
            else ("the server in WORKQUEUE_REDIS_URL")
        )
        if not url:
            url = stack.enter_context(embedded_server())
            where = "an embedded valkey server"
        settings = load_settings(redis_url=url, lease_seconds=args.lease_seconds)
        queue = Queue(name, Connection(settings))
        stack.callback(queue.close)
        queue.connection.check_server()
        print(
            f"demo: {args.items} items of {args.rounds}-round PBKDF2 on queue {name} "
            f"({where} at {settings.redacted_url()}), {args.parallelism} consumer pods",
            file=sys.stderr,
        )
        began = time.monotonic()
        _publish(queue, args.items, args.rounds)
        opts = JobOptions(
            image="local",
            queue=name,
            handler=HANDLER,
            name=f"wq-{name}",
            parallelism=args.parallelism,
            settings={"lease_seconds": args.lease_seconds},
        )
        job = build_job(opts)
        output = _PodOutput(args.verbose)
        secrets = {(opts.redis_secret, opts.redis_secret_key): url}
        engine = LocalJobEngine(job, secrets=secrets, backoff_scale=0.05, on_output=output)
        halt = threading.Event()
        display = threading.Thread(target=_progress, args=(queue, args.items, halt), daemon=True)
        display.start()
        try:
            result = engine.run()
        finally:
            halt.set()
            display.join(2)
        wall = time.monotonic() - began
        stats = queue.stats()
        checked, wrong = _verify(queue, args.items, args.rounds)
        handled = stats.done + stats.dead
        condition = result.condition + (f" ({result.reason})" if result.reason else "")
        print(
            "\n".join(
                [
                    "demo summary:",
                    f"  items        {args.items} published, {stats.done} done, "
                    f"{stats.dead} dead-lettered",
                    f"  wall time    {wall:.2f} s (publish, run, drain)",
                    f"  throughput   {handled / wall if wall else 0:.1f} items/s",
                    f"  retries      {output.retried} after errors, "
                    f"{output.reclaimed} reclaimed from dead or stalled pods",
                    f"  job          {result.name}: {condition}, {result.succeeded} pod(s) "
                    f"succeeded, {result.failed} failed, {result.restarts} restart(s)",
                    f"  check        {checked - wrong} of {checked}"
                    f" sampled keys re-derived and matched",
                ]
            )
        )
        if not args.keep:
            queue.delete()
        if not result.complete:
            raise WorkFailedError(f"the demo Job did not complete: {condition}")
        if stats.done != args.items or stats.dead or wrong:
            raise WorkFailedError(
                f"the demo finished with {stats.done}/{args.items} done, {stats.dead} dead, "
                f"{wrong} wrong key(s)"
            )
    return EXIT_OK


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "demo",
        help="run the whole flow here: produce, a work-queue Job on the local engine, drain",
        description=(
            "Publish N items of real CPU work, run a work-queue Job of P consumer pods on "
            "the local engine, and print a summary. Uses an embedded server unless "
            "WORKQUEUE_REDIS_URL (or --redis-url) is set."
        ),
    )
    parser.add_argument("--items", type=int, default=400, metavar="N", help="items (400)")
    parser.add_argument("--parallelism", type=int, default=4, metavar="P", help="consumer pods (4)")
    parser.add_argument(
        "--rounds", type=int, default=20000, help="PBKDF2 rounds per item (20000, ~10 ms)"
    )
    parser.add_argument("--lease-seconds", type=float, default=10.0, help="lease length (10)")
    parser.add_argument("--queue", help="queue name (default demo-<random>)")
    parser.add_argument("--redis-url", help="use this server instead of an embedded one")
    parser.add_argument("--keep", action="store_true", help="keep the queue afterwards")
    parser.add_argument("--verbose", action="store_true", help="show every pod log line")
    parser.set_defaults(run=_demo)
