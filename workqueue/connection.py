"""Connecting to Redis, retrying what failed in transit, and naming what went wrong.

Every Redis call of the project goes through `Connection.run`, which

- retries connection errors and timeouts with exponential back-off and jitter
  (redis-py's `ExponentialWithJitterBackoff`) until `redis_retry_seconds` have
  passed, then raises `ServerUnavailableError`;
- turns the server's refusals into the project's errors: a wrong password or a
  missing ACL permission (`ServerAuthError`), the memory limit
  (`ServerOutOfMemoryError`), an unknown command (`ServerTooOldError`), a
  sealed queue (`QueueSealedError`).

Retrying a script after a lost reply may run it twice. The scripts are written
so that this is harmless: enqueue batches carry a token that is applied once;
ack, renew, release and fail act only on leases still held. A lease whose reply
was lost stays held by nobody until it expires, and then counts an attempt.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, TypeVar

import redis
from redis.backoff import ExponentialWithJitterBackoff

from workqueue.errors import (
    QueueSealedError,
    ServerAuthError,
    ServerError,
    ServerOutOfMemoryError,
    ServerTooOldError,
    ServerUnavailableError,
    UsageError,
    WorkqueueError,
)
from workqueue.settings import Settings, redact_url

log = logging.getLogger(__name__)
T = TypeVar("T")

# LPOP with a count, SMISMEMBER and ZMSCORE arrived in Redis 6.2.
MIN_SERVER_VERSION = (6, 2, 0)


def _version(text: str) -> tuple[int, ...]:
    parts = []
    for piece in text.split(".")[:3]:
        digits = "".join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits or 0))
    return tuple(parts)


class Connection:
    """A Redis client for one URL with the project's retry and error rules."""

    def __init__(
        self,
        settings: Settings,
        *,
        client: Any = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        check_version: bool = True,
    ) -> None:
        self.settings = settings
        self.url = settings.redacted_url()
        self._sleep = sleep
        self._clock = clock
        if client is None:
            try:
                client = redis.Redis.from_url(
                    settings.redis_url.get_secret_value(),
                    decode_responses=True,
                    # An item that is not UTF-8 (written by some other client)
                    # must not break a whole lease reply: its bytes are kept as
                    # surrogates, and the consumer dead-letters that item.
                    encoding_errors="surrogateescape",
                    socket_timeout=settings.socket_timeout,
                    socket_connect_timeout=min(settings.socket_timeout, 5.0),
                    health_check_interval=30,
                    retry=None,
                    retry_on_timeout=False,
                )
                # Building one connection object (it does not connect) checks
                # the URL's options now rather than at the first command.
                pool = client.connection_pool
                pool.connection_class(**pool.connection_kwargs)
            except (ValueError, TypeError, redis.RedisError) as exc:
                raise UsageError(
                    f"invalid Redis URL {self.url!r} (WORKQUEUE_REDIS_URL or --redis-url): "
                    f"{_clean(exc, settings)}"
                ) from None
        self.client = client
        # fakeredis has no INFO; workqueue.testing turns the check off.
        self._checked = not check_version

    def __repr__(self) -> str:
        return f"Connection({self.url!r})"

    def close(self) -> None:
        self.client.close()

    def run(
        self,
        what: str,
        call: Callable[[], T],
        *,
        queue: str | None = None,
        max_delay: float = 5.0,
    ) -> T:
        """Run `call`, retrying transport errors; `what` names it in messages.

        Retries wait at most `max_delay` seconds each, so a call whose timing
        matters (a lease renewal) resumes soon after the server is back.
        """
        backoff = ExponentialWithJitterBackoff(cap=max_delay, base=0.05)
        deadline = self._clock() + self.settings.redis_retry_seconds
        failures = 0
        while True:
            try:
                return call()
            except (redis.ConnectionError, redis.TimeoutError) as exc:
                if isinstance(exc, redis.AuthenticationError):
                    raise self._auth_error(exc) from exc
                failures += 1
                delay = backoff.compute(failures)
                if self._clock() + delay > deadline:
                    raise ServerUnavailableError(
                        f"Redis at {self.url} did not answer {what} for "
                        f"{self.settings.redis_retry_seconds:g} s ({failures} tries): "
                        f"{_clean(exc, self.settings)}"
                    ) from exc
                if failures == 1:
                    log.warning(
                        "Redis at %s unreachable during %s, retrying: %s",
                        self.url,
                        what,
                        _clean(exc, self.settings),
                    )
                self._sleep(delay)
            except redis.ResponseError as exc:
                raise self._response_error(exc, what, queue) from exc

    def _auth_error(self, exc: Exception) -> ServerAuthError:
        return ServerAuthError(
            f"Redis at {self.url} refused the credentials: {_clean(exc, self.settings)} "
            "(check the user and password in WORKQUEUE_REDIS_URL)"
        )

    def _response_error(
        self, exc: redis.ResponseError, what: str, queue: str | None
    ) -> WorkqueueError:
        text = _clean(exc, self.settings)
        upper = text.upper()
        if "WQSEALED" in upper:
            return QueueSealedError(queue or "?")
        denied = isinstance(exc, redis.exceptions.NoPermissionError) or "NOPERM" in upper
        if upper.startswith(("NOAUTH", "WRONGPASS")) or denied:
            if denied:
                return ServerAuthError(
                    f"Redis at {self.url} denied {what}: {text} (the ACL user needs the "
                    "commands listed in docs/security.md)"
                )
            return self._auth_error(exc)
        if isinstance(exc, redis.exceptions.OutOfMemoryError) or upper.startswith("OOM"):
            return ServerOutOfMemoryError(
                f"Redis at {self.url} is at its memory limit (maxmemory) and refused "
                f"{what}: nothing of this call was applied (a script is refused before its "
                "first write); free memory or raise the limit"
            )
        if "UNKNOWN COMMAND" in upper or "WRONG NUMBER OF ARGUMENTS" in upper:
            return ServerTooOldError(
                f"Redis at {self.url} does not support a command used by {what} ({text}); "
                f"workqueue needs Redis {'.'.join(map(str, MIN_SERVER_VERSION))} or newer"
            )
        return ServerError(f"Redis at {self.url} refused {what}: {text}")

    def check_server(self) -> None:
        """Fail early, with the needed version, on a server that is too old."""
        if self._checked:
            return
        try:
            info = self.run("INFO server", lambda: self.client.info("server"))
        except ServerAuthError:
            # An ACL user without INFO is fine: a missing command still fails
            # with ServerTooOldError when it is first used.
            self._checked = True
            return
        found = str(info.get("redis_version", "0"))
        if _version(found) < MIN_SERVER_VERSION:
            raise ServerTooOldError(
                f"Redis at {self.url} is version {found}; workqueue needs "
                f"{'.'.join(map(str, MIN_SERVER_VERSION))} or newer "
                "(for LPOP with a count and SMISMEMBER)"
            )
        self._checked = True


def _clean(exc: BaseException, settings: Settings) -> str:
    """The text of `exc` with the password removed, should it appear."""
    text = str(exc)
    url = settings.redis_url.get_secret_value()
    if url and url in text:
        text = text.replace(url, redact_url(url))
    try:
        password = redis.connection.parse_url(url).get("password")  # type: ignore[no-untyped-call]
    except (ValueError, TypeError):
        password = None
    if password:
        text = text.replace(str(password), "***")
    return text
