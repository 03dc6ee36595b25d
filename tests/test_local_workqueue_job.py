"""A work-queue Job of real consumers on the local engine survives a consumer killed mid-item.

The Job is built by the same builder `workqueue launch` uses: four
``workqueue consume`` pods, restartPolicy OnFailure, lease 2 s. One consumer
is SIGKILLed while it runs an item (the handler stalls on that item's first
attempt, so the kill cannot come too late). The local engine documents what
follows for OnFailure: the container reruns in the same pod after the scaled
back-off, and the Job completes once every pod has exited 0. The queue must
then count every item done exactly once, and the killed item must have run
again, in another process, after its lease expired.
"""

from __future__ import annotations

import json
import os
import signal
import threading
from collections import defaultdict
from pathlib import Path
from typing import Any

from launch_handlers import double, flush_calls
from support import wait_until

from workqueue.launcher.builder import build_job
from workqueue.launcher.local import EventKind, JobEvent, LocalJobEngine, PodPhase
from workqueue.launcher.spec import JobOptions
from workqueue.queue import Queue

TESTS_DIR = Path(__file__).resolve().parent
ITEMS = 24
VICTIM = "item-0005"  # stalls on its first attempt: the consumer running it is killed
WAIT_SECONDS = 60.0
JOB_SECONDS = 90.0  # the run is stopped after this; a healthy one takes under 10 s


def read_notes(path: Path) -> list[tuple[str, str, int, int]]:
    """(event, id, pid, attempt) of every complete line the handlers wrote."""
    if not path.exists():
        return []
    notes = []
    for line in path.read_text(encoding="utf-8").splitlines(keepends=True):
        if line.endswith("\n"):
            event, item_id, pid, attempt = line.split()
            notes.append((event, item_id, int(pid), int(attempt)))
    return notes


def pod_env(log_path: Path) -> dict[str, str]:
    """The pods' base environment: no WORKQUEUE_ variable of ours, the handlers importable."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WORKQUEUE_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(TESTS_DIR), env.get("PYTHONPATH")]))
    env["WQL_LOG"] = str(log_path)
    return env


def test_consumer_killed_mid_item_restarts_in_place_and_every_item_is_done_once(
    redis_url: str, queue: Queue, tmp_path: Path
) -> None:
    flushes = flush_calls(redis_url)
    ids = [f"item-{n:04d}" for n in range(ITEMS)]
    texts = [
        json.dumps({"n": n, "sleep": 0.2, "stall_first": item_id == VICTIM})
        for n, item_id in enumerate(ids)
    ]
    queue.enqueue_texts(texts, ids)
    queue.seal()
    opts = JobOptions(
        image="local",
        queue=queue.name,
        handler="launch_handlers:noted",
        parallelism=4,
        settings={"lease_seconds": 2},
    )
    log_path = tmp_path / "notes.log"
    events: list[JobEvent] = []
    output: list[str] = []
    engine = LocalJobEngine(
        build_job(opts),
        secrets={(opts.redis_secret, opts.redis_secret_key): redis_url},
        cwd=tmp_path,
        env=pod_env(log_path),
        backoff_scale=0.01,
        on_event=events.append,
        on_output=lambda pod, stream, line: output.append(f"[{pod}] {line}"),
    )
    killed: dict[str, Any] = {}
    killer_errors: list[BaseException] = []

    def kill_the_victims_consumer() -> None:
        try:
            start = wait_until(
                lambda: next(
                    (n for n in read_notes(log_path) if n[0] == "start" and n[1] == VICTIM), None
                ),
                f"{VICTIM} started",
                timeout=WAIT_SECONDS,
            )
            pid = start[2]
            pod = next(p for p in engine.pods() if p.pid == pid)
            os.kill(pid, signal.SIGKILL)
            killed.update(pid=pid, pod=pod.name)
        except BaseException as exc:
            killer_errors.append(exc)
            engine.stop()  # end the run now rather than after the minute-long stall
            raise

    def explain() -> str:
        """The queue's counts, other sessions' flushes, and the pods' last lines."""
        now = flush_calls(redis_url)
        flushed = ""
        if now is not None and flushes is not None:
            flushed = f", {now - flushes} FLUSHDB/FLUSHALL meanwhile"
        tail = "\n".join(output[-40:])
        return f"queue {queue.stats().as_dict()}{flushed}\npods' last lines:\n{tail}"

    killer = threading.Thread(target=kill_the_victims_consumer, daemon=True)
    killer.start()
    watchdog = threading.Timer(JOB_SECONDS, engine.stop)
    watchdog.start()
    try:
        result = engine.run()
    finally:
        watchdog.cancel()
    killer.join(5)
    assert not killer_errors, (killer_errors, explain())
    log_tail = explain()

    # The Job: Complete, the killed container rerun once in its own pod.
    assert result.condition == "Complete", (result.reason, result.message, log_tail)
    assert result.reason is None
    assert (result.succeeded, result.failed, result.restarts) == (4, 0, 1)
    victim_pod = next(p for p in result.pods if p.name == killed["pod"])
    assert victim_pod.exit_codes == (137, 0)
    assert victim_pod.restarts == 1
    assert victim_pod.phase is PodPhase.SUCCEEDED
    assert all(p.phase is PodPhase.SUCCEEDED for p in result.pods)
    assert len(result.pods) == 4  # OnFailure: no replacement pod was made
    restarted = [e.pod.name for e in events if e.kind is EventKind.CONTAINER_RESTARTED and e.pod]
    assert restarted == [killed["pod"]]

    # The queue: every item done exactly once, nothing left anywhere.
    stats = queue.stats()
    assert (stats.done, stats.dead, stats.leased, stats.pending, stats.delayed) == (
        ITEMS,
        0,
        0,
        0,
        0,
    ), log_tail
    assert stats.finished
    assert [queue.result(i) for i in ids] == [double({"n": n}) for n in range(ITEMS)]

    # The handler runs: the victim ran twice, the second time elsewhere, after the reclaim.
    starts: defaultdict[str, list[tuple[int, int]]] = defaultdict(list)
    ends: defaultdict[str, list[int]] = defaultdict(list)
    for event, item_id, pid, attempt in read_notes(log_path):
        if event == "start":
            starts[item_id].append((pid, attempt))
        else:
            ends[item_id].append(pid)
    assert sorted(starts) == ids
    assert sorted(ends) == ids
    (first_pid, first_attempt), (second_pid, second_attempt) = starts[VICTIM]
    assert (first_pid, first_attempt) == (killed["pid"], 1)
    assert second_pid != killed["pid"]
    assert second_attempt == 2
    assert ends[VICTIM] == [second_pid]
    # Any other item that ran twice was held by the killed consumer when it died.
    for item_id, runs in starts.items():
        if len(runs) > 1:
            assert runs[0][0] == killed["pid"], (item_id, runs)
