"""What a consumers' Job should look like, checked before anything is built.

`JobOptions` groups every choice the launcher makes about the Job; the builder
(`workqueue.launcher.builder`) turns it into Kubernetes objects and adds nothing
the options do not say, except the fixed hardening every Pod gets. All checks
happen here, when the options are made, so a bad value fails on the user's
machine with a `UsageError` that names the option, not later as a refusal
from the API server.

Three Job patterns come out of `parallelism` and `completions`:

- one-shot: ``completions=1, parallelism=1``; one Pod must succeed.
- fixed completions: ``completions=N, parallelism=M``, optionally ``indexed``;
  N Pods must succeed. With the consume command a Pod exits 0 only when the
  queue is finished (or after ``max_items`` items), so the last few successes
  may come from Pods that find nothing left to do.
- work queue: ``completions`` unset, ``parallelism=M``. The Job starts no new
  Pod once one exits 0 and completes when all have terminated, which is why a
  consumer exits 0 only when all the work is done.
"""

from __future__ import annotations

import math
import random
import re
import secrets
import string
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from types import MappingProxyType
from typing import Annotated, Any

from kubernetes.utils import quantity
from pydantic import TypeAdapter, ValidationError

from workqueue.errors import InputError, UsageError
from workqueue.keys import check_queue_name
from workqueue.settings import ENV_PREFIX, Settings

# Labels every Pod and Job made by the launcher carries. The NetworkPolicy in
# k8s/ admits Pods labelled `LABEL_APP: APP_NAME` to Redis.
LABEL_APP = "app.kubernetes.io/name"
APP_NAME = "workqueue"
LABEL_QUEUE = "workqueue.dev/queue"
LABEL_RUN = "workqueue.dev/run"
RESERVED_LABELS = frozenset({LABEL_APP, LABEL_QUEUE, LABEL_RUN})

# The name and key of a Secret, not secrets themselves.
DEFAULT_REDIS_SECRET = "workqueue-redis"  # noqa: S105
DEFAULT_REDIS_SECRET_KEY = "url"  # noqa: S105
DEFAULT_UID = 10001
RESTART_POLICIES = ("OnFailure", "Never")
PULL_POLICIES = ("Always", "IfNotPresent", "Never")
# Seconds the kubelet waits after SIGTERM beyond the consumer's own grace
# period, so that a consumer can hand its items back before it is killed.
TERMINATION_MARGIN_SECONDS = 10
# The Job controller names an Indexed Job's Pod hostnames <job>-<index>.
MAX_INDEXED_PARALLELISM = 100_000
# Generated names keep the queue part short enough for a CronJob (52) and for
# the hostnames of an Indexed Job with up to a million completions.
_NAME_QUEUE_PART = 40
_NAME_SUFFIX_CHARS = string.ascii_lowercase + string.digits

_DNS_LABEL = re.compile(r"[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?")
_DNS_SUBDOMAIN = re.compile(
    r"[a-z0-9](?:[-a-z0-9]*[a-z0-9])?(?:\.[a-z0-9](?:[-a-z0-9]*[a-z0-9])?)*"
)
_LABEL_NAME = re.compile(r"[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SECRET_KEY = re.compile(r"[-._a-zA-Z0-9]{1,253}")
_HANDLER = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*(?::[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)?")
# A URL that carries a password (scheme://user:password@host): such a value
# belongs in a Secret, never in a Pod spec.
_URL_WITH_PASSWORD = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^/@\s]*:[^/@\s]*@")


# The client's parser of quantities ("500m", "1Gi"); it raises ValueError.
parse_quantity: Callable[[object], Decimal] = quantity.parse_quantity


class Pattern(StrEnum):
    """The three Job patterns; see the module docstring."""

    ONE_SHOT = "one-shot"
    FIXED_COMPLETIONS = "fixed-completions"
    WORK_QUEUE = "work-queue"


def _bad(option: str, problem: str) -> UsageError:
    return UsageError(f"job option {option}: {problem}")


def is_dns_label(value: str) -> bool:
    """True if `value` is an RFC 1123 label (the rule for Job and namespace names)."""
    return bool(_DNS_LABEL.fullmatch(value))


def is_dns_subdomain(value: str) -> bool:
    """True if `value` is an RFC 1123 subdomain (Secret and service account names)."""
    return len(value) <= 253 and bool(_DNS_SUBDOMAIN.fullmatch(value))


def is_label_key(key: str) -> bool:
    """True if `key` is a valid label key: ``[prefix/]name``."""
    prefix, slash, name = key.rpartition("/")
    if slash and not is_dns_subdomain(prefix):
        return False
    return bool(_LABEL_NAME.fullmatch(name))


def is_label_value(value: str) -> bool:
    """True if `value` is a valid label value (empty, or up to 63 safe characters)."""
    return value == "" or bool(_LABEL_NAME.fullmatch(value))


def generate_name(queue: str | None, rng: random.Random | None = None) -> str:
    """A fresh Job name ``wq-<queue or "job">-<5 random lowercase letters or digits>``.

    The queue part is lowered, stripped of characters a DNS label forbids and
    cut to 40 characters. `rng` makes the suffix reproducible in tests.
    """
    base = re.sub(r"[^a-z0-9]+", "-", (queue or "").lower()).strip("-")
    base = base[:_NAME_QUEUE_PART].rstrip("-") or "job"
    choose = rng.choice if rng is not None else secrets.choice
    suffix = "".join(choose(_NAME_SUFFIX_CHARS) for _ in range(5))
    return f"wq-{base}-{suffix}"


@dataclass(frozen=True)
class Resources:
    """CPU and memory requests and limits of the consumer container.

    Values are Kubernetes quantities (``"500m"``, ``"2"``, ``"256Mi"``); None
    leaves the entry out. A request above its limit is refused.
    """

    cpu_request: str | None = None
    cpu_limit: str | None = None
    memory_request: str | None = None
    memory_limit: str | None = None

    def __post_init__(self) -> None:
        parsed = {}
        for option in ("cpu_request", "cpu_limit", "memory_request", "memory_limit"):
            value = getattr(self, option)
            if value is None:
                continue
            try:
                quantity = parse_quantity(value)
            except (ValueError, TypeError):
                raise _bad(
                    f"resources.{option}", f"{value!r} is not a Kubernetes quantity"
                ) from None
            if quantity <= 0:
                raise _bad(f"resources.{option}", f"{value!r} must be more than zero")
            parsed[option] = quantity
        for kind in ("cpu", "memory"):
            request, limit = parsed.get(f"{kind}_request"), parsed.get(f"{kind}_limit")
            if request is not None and limit is not None and request > limit:
                raise _bad(
                    f"resources.{kind}_request",
                    f"{getattr(self, f'{kind}_request')!r} is above the limit "
                    f"{getattr(self, f'{kind}_limit')!r}",
                )

    @property
    def requests(self) -> dict[str, str]:
        """The ``requests`` map of the container, without unset entries."""
        return _drop_none({"cpu": self.cpu_request, "memory": self.memory_request})

    @property
    def limits(self) -> dict[str, str]:
        """The ``limits`` map of the container, without unset entries."""
        return _drop_none({"cpu": self.cpu_limit, "memory": self.memory_limit})


def _drop_none(entries: Mapping[str, str | None]) -> dict[str, str]:
    return {key: value for key, value in entries.items() if value is not None}


@dataclass(frozen=True)
class JobOptions:
    """Everything the builder needs to make the consumers' Job.

    Either `queue` and `handler` (the container runs
    ``workqueue consume QUEUE --handler HANDLER``), or a full `command`. The
    fields, with their defaults:

    - `image`: the worker image (required).
    - `queue`: the queue name; also the ``workqueue.dev/queue`` label.
    - `handler`: ``module:function`` called on each item.
    - `command`: the whole container command, instead of the consume command.
    - `concurrency`: items one consumer handles at once (``--concurrency``).
    - `max_items`: a consumer exits 0 after this many items (``--max-items``);
      only with `completions`, since in the work-queue pattern an early exit 0
      would end the Job before the work is done.
    - `name`: the Job name; empty generates ``wq-<queue>-<5 random chars>``.
    - `namespace`: None leaves it to the client's current namespace.
    - `parallelism` (1) and `completions` (None, the work-queue pattern).
    - `indexed`: completionMode Indexed. Kubernetes itself gives each Pod its
      index in the ``JOB_COMPLETION_INDEX`` variable; needs `completions`.
    - `restart_policy`: ``OnFailure`` (restart the container in place) or
      ``Never`` (a new Pod for each failure).
    - `pod_failure_policy`: None means on with ``Never`` and off with
      ``OnFailure`` (Kubernetes allows the policy only with ``Never``). It
      ignores Pods lost to a disruption (eviction, preemption, node drain) and
      fails the Job at once when a consumer exits 2 (a configuration error that
      no retry can fix).
    - `backoff_limit` (6), `active_deadline_seconds`, `ttl_seconds_after_finished`.
    - `resources`: a `Resources`.
    - `settings`: workqueue settings by field name (``{"lease_seconds": 60}``),
      passed as ``WORKQUEUE_<FIELD>`` variables and checked like the settings
      themselves; ``redis_url`` is refused: it comes from the Secret.
    - `env`: other environment variables; ``WORKQUEUE_*`` names belong in
      `settings`, and a URL with a password belongs in a Secret.
    - `redis_secret` / `redis_secret_key`: where ``WORKQUEUE_REDIS_URL`` comes
      from (``workqueue-redis`` / ``url``).
    - `labels`: extra labels on the Job and its Pods.
    - `selector`: a label selector of your own (sets manualSelector); it must
      match the Pods' labels, and keeping it unique is then up to you.
    - `service_account`, `image_pull_policy`.
    - `run_as_user` / `run_as_group` (10001): the non-root ids the Pod runs as.
    - `tmp_size_limit`: size limit of the writable ``/tmp`` (None: no limit).

    Invalid options raise `UsageError` naming the option.
    """

    image: str
    queue: str | None = None
    handler: str | None = None
    command: Sequence[str] | None = None
    concurrency: int | None = None
    max_items: int | None = None
    name: str = ""
    namespace: str | None = None
    parallelism: int = 1
    completions: int | None = None
    indexed: bool = False
    restart_policy: str = "OnFailure"
    pod_failure_policy: bool | None = None
    backoff_limit: int = 6
    active_deadline_seconds: int | None = None
    ttl_seconds_after_finished: int | None = None
    resources: Resources = field(default_factory=Resources)
    settings: Mapping[str, str | int | float] = field(default_factory=dict)
    env: Mapping[str, str] = field(default_factory=dict)
    redis_secret: str = DEFAULT_REDIS_SECRET
    redis_secret_key: str = DEFAULT_REDIS_SECRET_KEY
    labels: Mapping[str, str] = field(default_factory=dict)
    selector: Mapping[str, str] | None = None
    service_account: str | None = None
    image_pull_policy: str | None = None
    run_as_user: int = DEFAULT_UID
    run_as_group: int = DEFAULT_UID
    tmp_size_limit: str | None = None

    def __post_init__(self) -> None:
        # Freeze the containers too, so later changes to the caller's dicts
        # cannot reach options that were already checked.
        freeze = object.__setattr__
        if isinstance(self.command, str):
            raise _bad("command", "must be a list of arguments, not one string")
        if self.command is not None:
            freeze(self, "command", tuple(self.command))
        freeze(self, "settings", MappingProxyType(dict(self.settings)))
        freeze(self, "env", MappingProxyType(dict(self.env)))
        freeze(self, "labels", MappingProxyType(dict(self.labels)))
        if self.selector is not None:
            freeze(self, "selector", MappingProxyType(dict(self.selector)))
        self._check_command()
        if not self.name:
            freeze(self, "name", generate_name(self.queue))
        self._check_names()
        self._check_counts()
        self._check_env()
        self._check_labels()

    # -- checks ---------------------------------------------------------------

    def _check_command(self) -> None:
        if (
            not isinstance(self.image, str)
            or not self.image
            or any(c.isspace() for c in self.image)
        ):
            raise _bad("image", f"{self.image!r} is not an image reference")
        if self.queue is not None:
            try:
                check_queue_name(self.queue)
            except InputError as exc:
                raise _bad("queue", str(exc)) from None
        if self.command is not None:
            if self.handler is not None:
                raise _bad("handler", "give either a handler or a full command, not both")
            if not self.command or not all(isinstance(a, str) and a for a in self.command):
                raise _bad("command", "must be a non-empty list of non-empty strings")
            for option in ("concurrency", "max_items"):
                if getattr(self, option) is not None:
                    raise _bad(option, "only applies to the consume command, not to a command")
            return
        if self.queue is None:
            raise _bad("queue", "required unless a full command is given")
        if self.handler is None:
            raise _bad("handler", "required unless a full command is given")
        if not _HANDLER.fullmatch(self.handler) or (
            ":" not in self.handler and "." not in self.handler
        ):
            raise _bad("handler", f"{self.handler!r} must look like 'module:function'")
        if self.concurrency is not None and not 1 <= self.concurrency <= 1024:
            raise _bad("concurrency", f"must be from 1 to 1024, not {self.concurrency}")
        if "concurrency" in self.settings and self.concurrency is not None:
            raise _bad("concurrency", "given both as an option and in settings")
        if self.max_items is not None:
            if self.max_items < 1:
                raise _bad("max_items", f"must be at least 1, not {self.max_items}")
            if self.completions is None:
                raise _bad(
                    "max_items",
                    "needs completions: in the work-queue pattern a consumer that exits 0 "
                    "early would end the Job before the queue is finished",
                )

    def _check_names(self) -> None:
        if not is_dns_label(self.name):
            raise _bad(
                "name",
                f"{self.name!r} is not a DNS-1123 label (1 to 63 lowercase letters, digits "
                "or '-', starting and ending with a letter or digit)",
            )
        if self.namespace is not None and not is_dns_label(self.namespace):
            raise _bad("namespace", f"{self.namespace!r} is not a DNS-1123 label")
        if not is_dns_subdomain(self.redis_secret):
            raise _bad("redis_secret", f"{self.redis_secret!r} is not a valid Secret name")
        if not _SECRET_KEY.fullmatch(self.redis_secret_key):
            raise _bad("redis_secret_key", f"{self.redis_secret_key!r} is not a valid Secret key")
        if self.service_account is not None and not is_dns_subdomain(self.service_account):
            raise _bad("service_account", f"{self.service_account!r} is not a valid account name")
        if self.image_pull_policy is not None and self.image_pull_policy not in PULL_POLICIES:
            raise _bad(
                "image_pull_policy",
                f"{self.image_pull_policy!r} is not one of {', '.join(PULL_POLICIES)}",
            )
        if self.tmp_size_limit is not None:
            try:
                parse_quantity(self.tmp_size_limit)
            except (ValueError, TypeError):
                raise _bad(
                    "tmp_size_limit", f"{self.tmp_size_limit!r} is not a Kubernetes quantity"
                ) from None

    def _check_counts(self) -> None:
        if self.parallelism < 1:
            raise _bad("parallelism", f"must be at least 1, not {self.parallelism}")
        if self.completions is not None and self.completions < 1:
            raise _bad("completions", f"must be at least 1 or unset, not {self.completions}")
        if self.indexed:
            if self.completions is None:
                raise _bad("indexed", "an Indexed Job needs completions")
            if self.parallelism > MAX_INDEXED_PARALLELISM:
                raise _bad(
                    "parallelism", f"must be at most {MAX_INDEXED_PARALLELISM} for an Indexed Job"
                )
            hostname = f"{self.name}-{self.completions - 1}"
            if not is_dns_label(hostname):
                raise _bad(
                    "name",
                    f"{self.name!r} is too long for {self.completions} indexed completions: "
                    f"the Pod hostname {hostname!r} would not be a DNS-1123 label",
                )
        if self.restart_policy not in RESTART_POLICIES:
            raise _bad(
                "restart_policy",
                f"{self.restart_policy!r} is not one of {', '.join(RESTART_POLICIES)}",
            )
        if self.pod_failure_policy and self.restart_policy != "Never":
            raise _bad("pod_failure_policy", "requires restart_policy 'Never'")
        if self.backoff_limit < 0:
            raise _bad("backoff_limit", f"must be 0 or more, not {self.backoff_limit}")
        if self.active_deadline_seconds is not None and self.active_deadline_seconds < 1:
            raise _bad(
                "active_deadline_seconds", f"must be at least 1, not {self.active_deadline_seconds}"
            )
        if self.ttl_seconds_after_finished is not None and self.ttl_seconds_after_finished < 0:
            raise _bad(
                "ttl_seconds_after_finished",
                f"must be 0 or more, not {self.ttl_seconds_after_finished}",
            )
        for option in ("run_as_user", "run_as_group"):
            value = getattr(self, option)
            if not 1 <= value <= 2**31 - 1:
                raise _bad(option, f"must be a non-root id from 1 to 2147483647, not {value}")

    def _check_env(self) -> None:
        fields = Settings.model_fields
        for key, value in self.settings.items():
            if key == "redis_url":
                raise _bad(
                    "settings.redis_url",
                    "the Redis URL reaches Pods only from a Secret (see redis_secret)",
                )
            info = fields.get(key)
            if info is None:
                known = ", ".join(name for name in fields if name != "redis_url")
                raise _bad(f"settings.{key}", f"unknown setting; known: {known}")
            if isinstance(value, bool) or not isinstance(value, str | int | float):
                raise _bad(f"settings.{key}", f"must be a string or a number, not {value!r}")
            # The field's type with its constraints (bounds, pattern), checked alone.
            constrained: Any = Annotated[info.annotation, *info.metadata]
            adapter: TypeAdapter[Any] = TypeAdapter(constrained)
            try:
                adapter.validate_python(value)
            except ValidationError as exc:
                raise _bad(f"settings.{key}", f"{value!r}: {exc.errors()[0]['msg']}") from None
        for key, value in self.env.items():
            if not isinstance(key, str) or not _ENV_NAME.fullmatch(key):
                raise _bad(f"env.{key}", "not a valid environment variable name")
            if key.startswith(ENV_PREFIX):
                raise _bad(
                    f"env.{key}",
                    "WORKQUEUE_ variables are set through settings (the Redis URL through "
                    "redis_secret)",
                )
            if not isinstance(value, str):
                raise _bad(f"env.{key}", "the value must be a string")
            if _URL_WITH_PASSWORD.search(value):
                # The value is left out of the message: it holds a password.
                raise _bad(
                    f"env.{key}",
                    "holds a URL with a password; put it in a Secret instead",
                )

    def _check_labels(self) -> None:
        for key, value in self.labels.items():
            if not isinstance(key, str) or not is_label_key(key):
                raise _bad(f"labels.{key}", "not a valid label key")
            if key in RESERVED_LABELS:
                raise _bad(f"labels.{key}", "this label is set by workqueue itself")
            if key.startswith("batch.kubernetes.io/") or key in ("controller-uid", "job-name"):
                raise _bad(f"labels.{key}", "this label is set by the Job controller")
            if not isinstance(value, str) or not is_label_value(value):
                raise _bad(f"labels.{key}", f"{value!r} is not a valid label value")
        if self.selector is None:
            return
        if not self.selector:
            raise _bad("selector", "must hold at least one label")
        pod_labels = self.pod_labels
        for key, value in self.selector.items():
            if not isinstance(key, str) or not is_label_key(key):
                raise _bad(f"selector.{key}", "not a valid label key")
            if not isinstance(value, str) or not is_label_value(value):
                raise _bad(f"selector.{key}", f"{value!r} is not a valid label value")
            if pod_labels.get(key) != value:
                raise _bad(
                    f"selector.{key}",
                    "the selector must match the Pods' labels: add the label to labels",
                )

    # -- derived values -------------------------------------------------------

    @property
    def pattern(self) -> Pattern:
        """Which of the three Job patterns these options make."""
        if self.completions is None:
            return Pattern.WORK_QUEUE
        if self.completions == 1 and self.parallelism == 1 and not self.indexed:
            return Pattern.ONE_SHOT
        return Pattern.FIXED_COMPLETIONS

    @property
    def container_command(self) -> list[str]:
        """The consumer container's command."""
        if self.command is not None:
            return list(self.command)
        assert self.queue is not None and self.handler is not None  # checked in __post_init__
        args = ["workqueue", "consume", self.queue, "--handler", self.handler]
        if self.concurrency is not None:
            args += ["--concurrency", str(self.concurrency)]
        if self.max_items is not None:
            args += ["--max-items", str(self.max_items)]
        return args

    @property
    def uses_pod_failure_policy(self) -> bool:
        """Whether the Job gets a podFailurePolicy (see `pod_failure_policy`)."""
        if self.pod_failure_policy is None:
            return self.restart_policy == "Never"
        return self.pod_failure_policy

    @property
    def pod_labels(self) -> dict[str, str]:
        """The labels of the Job and of its Pods: workqueue's own, then the user's."""
        labels = {LABEL_APP: APP_NAME, LABEL_RUN: self.name}
        if self.queue is not None:
            labels[LABEL_QUEUE] = self.queue
        labels.update(self.labels)
        return labels

    @property
    def settings_env(self) -> dict[str, str]:
        """`settings` as ``WORKQUEUE_<FIELD>`` variables, in the order given."""
        return {f"{ENV_PREFIX}{key.upper()}": str(value) for key, value in self.settings.items()}

    @property
    def termination_grace_seconds(self) -> int:
        """Pod terminationGracePeriodSeconds: the consumer's grace_seconds plus a margin.

        The consumer finishes its in-flight items for grace_seconds after
        SIGTERM and then hands the rest back; the kubelet must not kill it first.
        """
        grace = self.settings.get("grace_seconds", Settings.model_fields["grace_seconds"].default)
        return math.ceil(float(grace)) + TERMINATION_MARGIN_SECONDS
