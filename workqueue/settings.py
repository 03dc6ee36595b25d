"""Settings shared by the producer, the consumer and the launcher.

Every field can be set by an environment variable named ``WORKQUEUE_`` plus
the field name in capitals (``WORKQUEUE_REDIS_URL``, ``WORKQUEUE_LEASE_SECONDS``);
the command-line flags override them. The Redis URL is a `SecretStr`: it may
hold a password, so it is shown only through `redact_url`.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit, urlunsplit

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from workqueue.errors import UsageError

ENV_PREFIX = "WORKQUEUE_"
DEFAULT_REDIS_URL = "redis://localhost:6379/0"
_URL_SCHEMES = ("redis", "rediss", "unix")


def redact_url(url: str) -> str:
    """Return `url` with any password replaced by ``***``."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable URL>"
    query = parts.query
    if query:
        pairs = []
        for piece in query.split("&"):
            key, sep, _ = piece.partition("=")
            pairs.append(f"{key}=***" if sep and key.lower() == "password" else piece)
        query = "&".join(pairs)
    if parts.password is None:
        return urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))
    user = parts.username or ""
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{user}:***@{host}"
    try:
        port = parts.port
    except ValueError:
        port = None
        netloc += ":<bad port>"
    if port is not None:
        netloc += f":{port}"
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


class Settings(BaseSettings):
    """Knobs of a queue run; see the field descriptions or `workqueue --help`."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", frozen=True)

    redis_url: SecretStr = Field(
        SecretStr(DEFAULT_REDIS_URL),
        description="Redis URL: redis://, rediss:// (TLS) or unix://; may carry user:password.",
    )
    key_prefix: str = Field(
        "wq", pattern=r"^[A-Za-z0-9_.-]{1,32}$", description="Prefix of every Redis key."
    )
    lease_seconds: float = Field(
        30.0, gt=0.05, le=86400, description="How long a lease lasts before a peer may reclaim it."
    )
    max_attempts: int = Field(
        5, ge=1, le=1000, description="Attempts before an item goes to the dead-letter set."
    )
    retry_base_seconds: float = Field(
        1.0, ge=0, le=3600, description="First retry delay; it doubles with each attempt."
    )
    retry_max_seconds: float = Field(300.0, ge=0, le=86400, description="Cap of the retry delay.")
    concurrency: int = Field(1, ge=1, le=1024, description="Items handled at once per process.")
    batch_size: int = Field(
        1000, ge=1, le=5000, description="Most items leased or enqueued in one round trip."
    )
    grace_seconds: float = Field(
        25.0, ge=0, le=3600, description="On SIGTERM/SIGINT, time to finish in-flight items."
    )
    poll_seconds: float = Field(
        1.0, gt=0, le=60, description="Longest wait between polls of an empty, unfinished queue."
    )
    max_item_bytes: int = Field(
        1 << 20, ge=16, le=512 << 20, description="Largest encoded item or result, in bytes."
    )
    redis_retry_seconds: float = Field(
        30.0, ge=0, le=3600, description="How long to retry an unreachable server before giving up."
    )
    socket_timeout: float = Field(
        10.0, gt=0, le=600, description="Seconds a Redis command may take before it is retried."
    )

    @field_validator("redis_url")
    @classmethod
    def _check_url(cls, value: SecretStr) -> SecretStr:
        raw = value.get_secret_value()
        scheme = raw.split("://", 1)[0] if "://" in raw else ""
        if scheme not in _URL_SCHEMES:
            raise ValueError(
                f"URL {redact_url(raw)!r} must start with one of "
                + ", ".join(f"{s}://" for s in _URL_SCHEMES)
            )
        try:
            urlsplit(raw).port  # noqa: B018 - parsing it is the check
        except ValueError:
            raise ValueError(f"URL {redact_url(raw)!r} has a port that is not a number") from None
        return value

    def redacted_url(self) -> str:
        """The Redis URL with its password masked, for messages."""
        return redact_url(self.redis_url.get_secret_value())


def load_settings(**overrides: Any) -> Settings:
    """Read the settings from the environment, with `overrides` (flags) on top.

    Overrides that are None are ignored, so callers can pass every flag. A bad
    value raises `UsageError` naming the field and its environment variable.
    """
    given = {key: value for key, value in overrides.items() if value is not None}
    try:
        return Settings(**given)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            field = ".".join(str(part) for part in error["loc"]) or "settings"
            shown = "<hidden>" if field == "redis_url" else repr(error.get("input"))
            problems.append(f"{field} (env {ENV_PREFIX}{field.upper()}) = {shown}: {error['msg']}")
        raise UsageError("invalid settings: " + "; ".join(problems)) from None
