"""The Kubernetes backend of the launcher: create, follow, list and delete Jobs.

`KubeBackend` speaks to the API server through the official client's
`BatchV1Api`. Every failure reaches the caller as a `LauncherError` (exit 5)
that names the API server, the HTTP status and the API's own message, plus
what to do about it; a bad label selector is a `UsageError` (exit 2).
Credentials never appear: messages pass through `kubeconfig.redact`, and
nothing here logs the client's configuration.

How `wait_job` follows a Job. It lists the one Job (``fieldSelector
metadata.name=NAME``) to learn its state and a resourceVersion, then watches
from that version. The server ends a watch after ``timeoutSeconds``; the
backend then watches again from the last version it saw, so no change is
missed. When the server no longer holds that version it answers 410 Gone
(as an HTTP status or as an ERROR event): changes may have been lost, so the
backend lists again and watches from the fresh version. A connection that
breaks, or a server that cannot be reached, is retried with growing pauses
from the last version seen; the wait fails only when the server has not
answered a request for `reconnect_seconds`. The wait ends when the Job has
the condition ``Complete`` or ``Failed`` with status ``True``; the conditions
that announce them (``SuccessCriteriaMet``, ``FailureTarget``) are not enough,
because Pods may still be terminating.

Known limits: creating, listing and deleting are not retried (a refused or
unreachable server fails at once, after urllib3's own three connection
retries); `delete_jobs` lists and then deletes one Job at a time, so a Job
created between the two steps is left alone.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import urllib3
from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException

from workqueue.errors import LauncherError, UsageError, WorkqueueError
from workqueue.launcher.kubeconfig import Cluster, load_cluster, redact, server_of

__all__ = ["JobCounts", "JobOutcome", "JobRef", "JobRow", "KubeBackend", "job_state"]

log = logging.getLogger(__name__)
T = TypeVar("T")

#: (connect, read) seconds for ordinary requests.
REQUEST_TIMEOUT = (10.0, 60.0)
#: Longest watch the backend asks for before watching again.
WATCH_SECONDS = 300
#: Extra read time beyond a watch's own timeout before the connection counts as dead.
WATCH_READ_SLACK = 30.0
#: Page size of list requests.
LIST_PAGE = 500
#: 410 Gone answers in a row, each right after a fresh list, before the wait gives up.
MAX_GONE_IN_A_ROW = 5
#: Longest pause between reconnection attempts of a wait.
MAX_RECONNECT_PAUSE = 10.0

_TRANSPORT_ERRORS = (urllib3.exceptions.HTTPError, OSError)


@dataclass(frozen=True)
class JobCounts:
    """A Job's Pod counts: running now, finished with exit 0, failed."""

    active: int
    succeeded: int
    failed: int


@dataclass(frozen=True)
class JobOutcome:
    """How a Job ended: `condition` is ``Complete`` or ``Failed``.

    `reason` is the API's reason for a failure (``BackoffLimitExceeded``,
    ``DeadlineExceeded``, ``PodFailurePolicy``, ...) and may be empty.
    """

    condition: str
    reason: str
    message: str
    succeeded: int
    failed: int

    @property
    def ok(self) -> bool:
        return self.condition == "Complete"


@dataclass(frozen=True)
class JobRow:
    """One line of `list_jobs`; `condition` is what `job_state` says, `age` None if unknown."""

    name: str
    namespace: str
    active: int
    succeeded: int
    failed: int
    condition: str
    age: timedelta | None


@dataclass(frozen=True)
class JobRef:
    """A Job by namespace and name; prints as ``namespace/name``."""

    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"


def _counts(job: client.V1Job) -> JobCounts:
    status = job.status
    if status is None:
        return JobCounts(0, 0, 0)
    return JobCounts(status.active or 0, status.succeeded or 0, status.failed or 0)


def _finished(job: client.V1Job) -> client.V1JobCondition | None:
    """The Job's ``Complete`` or ``Failed`` condition with status True, if any."""
    status = job.status
    for condition in (status.conditions if status is not None else None) or []:
        if condition.type in ("Complete", "Failed") and condition.status == "True":
            return condition
    return None


def job_state(job: client.V1Job) -> str:
    """``Complete``, ``Failed``, ``Suspended``, ``Running`` (Pods active) or ``Pending``."""
    done = _finished(job)
    if done is not None:
        return str(done.type)
    if job.spec is not None and job.spec.suspend:
        return "Suspended"
    return "Running" if _counts(job).active else "Pending"


def _status_of(exc: ApiException) -> dict[str, Any]:
    """The `Status` object the API server sent with `exc`, or an empty dict."""
    body = exc.body
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    if isinstance(body, str) and body.strip():
        try:
            parsed = json.loads(body)
        except ValueError:
            return {"message": body.strip()[:500]}
        if isinstance(parsed, dict):
            return parsed
    return {}


def _transport_reason(exc: BaseException) -> str:
    """A short phrase for a failure to talk to the server at all."""
    cause: BaseException = exc
    if isinstance(exc, urllib3.exceptions.MaxRetryError) and exc.reason is not None:
        cause = exc.reason
    if isinstance(cause, urllib3.exceptions.NameResolutionError):
        return "its host name does not resolve (DNS)"
    if isinstance(cause, urllib3.exceptions.NewConnectionError):
        if "refused" in str(cause).lower():
            return "connection refused"
        return "cannot connect"
    if isinstance(cause, urllib3.exceptions.ConnectTimeoutError):
        return "the connection timed out"
    if isinstance(cause, urllib3.exceptions.ReadTimeoutError | TimeoutError):
        return "it did not answer in time"
    if isinstance(cause, urllib3.exceptions.ProtocolError):
        return "the connection broke"
    if isinstance(cause, urllib3.exceptions.SSLError):
        return "the TLS handshake failed"
    return type(cause).__name__


class KubeBackend:
    """Jobs on one Kubernetes cluster.

    Give `api_client` to use a ready client (its configuration is used as is);
    otherwise the cluster is found as kubectl finds it (see
    `workqueue.launcher.kubeconfig`), with `kubeconfig` naming a file and
    `context` a context. `clock` and `sleep` drive the waits and reconnection
    pauses, `now` the ages in `list_jobs`; `reconnect_seconds` is how long a
    wait keeps trying to reach the server before it fails.
    """

    def __init__(
        self,
        api_client: client.ApiClient | None = None,
        *,
        kubeconfig: str | None = None,
        context: str | None = None,
        reconnect_seconds: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        if api_client is None:
            cluster = load_cluster(kubeconfig, context)
        else:
            cluster = Cluster(api_client, "the given API client", "default")
        self.api_client = cluster.api_client
        self.source = cluster.source
        self.default_namespace = cluster.namespace
        self.server = server_of(self.api_client)
        self.reconnect_seconds = reconnect_seconds
        self._batch = client.BatchV1Api(self.api_client)
        self._clock = clock
        self._sleep = sleep
        self._now = now

    def __repr__(self) -> str:
        return f"KubeBackend({self.server!r})"

    def close(self) -> None:
        self.api_client.close()  # type: ignore[no-untyped-call]

    def __enter__(self) -> KubeBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- errors ------------------------------------------------------------

    def _unreachable(self, exc: BaseException, doing: str) -> LauncherError:
        reason = _transport_reason(exc)
        hint = (
            f"Check the certificate authority and server name of {self.source}"
            if "TLS" in reason
            else f"Check that the cluster is running and that {self.source} points to it "
            "(`kubectl cluster-info` tells)"
        )
        return LauncherError(
            f"cannot reach the Kubernetes API server at {self.server} to {doing}: {reason}. {hint}"
        )

    def _refused(
        self,
        exc: ApiException,
        doing: str,
        *,
        namespace: str | None,
        verbs: str,
        job: client.V1Job | None = None,
        label_selector: str | None = None,
    ) -> WorkqueueError:
        """Turn the API server's refusal of `doing` into the project's error."""
        status = _status_of(exc)
        code = int(exc.status or status.get("code") or 0)
        reason = str(status.get("reason") or exc.reason or "").strip()
        message = redact(str(status.get("message") or exc.reason or "no message"), self.api_client)
        head = f"the Kubernetes API server at {self.server} refused to {doing}"
        said = f"({code} {reason}): {message}" if reason else f"({code}): {message}"
        where = f"namespace {namespace!r}" if namespace else "all namespaces"
        if code == 0:
            # The client reports TLS failures as status 0.
            return LauncherError(
                f"cannot talk to the Kubernetes API server at {self.server} to {doing}: "
                f"{message.splitlines()[0] if message else 'TLS error'}. Check the certificate "
                f"authority and server name of {self.source}"
            )
        if code == 401:
            return LauncherError(
                f"{head} {said}. The credentials of {self.source} were rejected: log in "
                "again or refresh the token (e.g. with your cloud's get-credentials command)"
            )
        if code == 403:
            return LauncherError(
                f"{head} in {where} {said}. The user or service account needs the RBAC "
                f"verb(s) {verbs} on resource 'jobs' in API group 'batch' in {where} "
                "(a Role and RoleBinding, or ClusterRole for all namespaces)"
            )
        details = status.get("details") or {}
        if code == 404 and details.get("kind") == "namespaces":
            return LauncherError(
                f"{head}: namespace {namespace!r} does not exist {said}. Create it "
                f"(`kubectl create namespace {namespace}`) or choose another namespace"
            )
        if code == 409 and job is not None:
            name = job.metadata.name if job.metadata is not None else "?"
            labels = (job.metadata.labels if job.metadata is not None else None) or {}
            selector = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
            how = (
                f"`workqueue jobs delete -n {namespace} -l {selector}` (every Job with these "
                f"labels) or `kubectl delete job -n {namespace} {name}`"
                if selector
                else f"`kubectl delete job -n {namespace} {name}`"
            )
            return LauncherError(
                f"{head}: a Job named {name!r} already exists in namespace {namespace!r} "
                f"{said}. Delete it first with {how}, or choose another Job name"
            )
        if code == 422:
            return LauncherError(f"{head}: the Job is invalid {said}")
        if code == 400 and label_selector:
            return UsageError(
                f"the Kubernetes API server at {self.server} rejected the label selector "
                f"{label_selector!r}: {message} (use key=value, key!=value, key or !key, "
                "joined by commas)"
            )
        if code == 429 or code >= 500:
            return LauncherError(f"{head} {said}. The server is overloaded or failing; retry later")
        return LauncherError(f"{head} {said}")

    def _call(
        self,
        doing: str,
        call: Callable[[], T],
        *,
        namespace: str | None,
        verbs: str,
        job: client.V1Job | None = None,
        label_selector: str | None = None,
    ) -> T:
        try:
            return call()
        except ApiException as exc:
            raise self._refused(
                exc, doing, namespace=namespace, verbs=verbs, job=job, label_selector=label_selector
            ) from exc
        except _TRANSPORT_ERRORS as exc:
            raise self._unreachable(exc, doing) from exc

    # -- create and read ---------------------------------------------------

    def create_job(self, job: client.V1Job, namespace: str | None = None) -> client.V1Job:
        """Create `job` and return it as the server stored it.

        The namespace is `namespace`, else the Job's own, else the default of
        the configuration (the kubeconfig context's, or ``default``).
        """
        if job.metadata is None or not job.metadata.name:
            raise UsageError("the Job to create has no metadata.name")
        name = job.metadata.name
        own = job.metadata.namespace
        if namespace and own and namespace != own:
            raise UsageError(
                f"Job {name!r} says namespace {own!r} but was to be created in {namespace!r}"
            )
        target = namespace or own or self.default_namespace
        created = self._call(
            f"create Job {target}/{name}",
            lambda: self._batch.create_namespaced_job(
                target, job, _request_timeout=REQUEST_TIMEOUT
            ),
            namespace=target,
            verbs="'create'",
            job=job,
        )
        uid = created.metadata.uid if created.metadata is not None else None
        log.info("created Job %s/%s on %s (uid %s)", target, name, self.server, uid)
        return created

    def read_job(self, name: str, namespace: str) -> client.V1Job:
        """The Job as the server has it now; `LauncherError` if it does not exist."""
        return self._call(
            f"read Job {namespace}/{name}",
            lambda: self._batch.read_namespaced_job(
                name, namespace, _request_timeout=REQUEST_TIMEOUT
            ),
            namespace=namespace,
            verbs="'get'",
        )

    # -- wait --------------------------------------------------------------

    def _list_one(self, name: str, namespace: str) -> tuple[client.V1Job, str]:
        """The Job named `name` and the list's resourceVersion (raises if it is gone)."""
        listed = self._batch.list_namespaced_job(
            namespace, field_selector=f"metadata.name={name}", _request_timeout=REQUEST_TIMEOUT
        )
        if not listed.items:
            raise LauncherError(
                f"Job {namespace}/{name} does not exist on {self.server} (it may have been "
                "deleted, or its ttlSecondsAfterFinished removed it)"
            )
        version = listed.metadata.resource_version if listed.metadata is not None else None
        return listed.items[0], str(version or "")

    def _events(
        self, name: str, namespace: str, version: str, seconds: int, on_open: Callable[[], None]
    ) -> Iterator[tuple[str, client.V1Job | None, str]]:
        """(type, job, resourceVersion) of the watch events after `version`.

        `on_open` is called once the server has answered the watch request.
        Raises `ApiException` (410 when `version` is too old) and transport errors.
        """

        def request(*args: Any, **kwargs: Any) -> Any:
            response = self._batch.list_namespaced_job(*args, **kwargs)
            on_open()
            return response

        # The return type is given because `request` hides the client's annotations.
        watcher = watch.Watch(return_type="V1Job")  # type: ignore[no-untyped-call]
        stream = watcher.stream(  # type: ignore[no-untyped-call]
            request,
            namespace,
            field_selector=f"metadata.name={name}",
            resource_version=version,
            allow_watch_bookmarks=True,
            timeout_seconds=seconds,
            _request_timeout=(REQUEST_TIMEOUT[0], seconds + WATCH_READ_SLACK),
        )
        with contextlib.closing(stream):
            for event in stream:
                kind = str(event.get("type"))
                raw = event.get("raw_object")
                meta = raw.get("metadata") if isinstance(raw, dict) else None
                seen = str((meta or {}).get("resourceVersion") or version)
                obj = event.get("object")
                yield kind, obj if isinstance(obj, client.V1Job) else None, seen

    def wait_job(
        self,
        name: str,
        namespace: str,
        *,
        on_update: Callable[[JobCounts], None] | None = None,
        timeout: float | None = None,
    ) -> JobOutcome:
        """Follow the Job until it is Complete or Failed, and say how it ended.

        `on_update` is called with the Pod counts each time they change (and
        once at the start). After `timeout` seconds, or when the server cannot
        be reached for `reconnect_seconds`, or when the Job disappears, it raises
        `LauncherError`; the Job itself is left as it is.
        """
        started = self._clock()
        deadline = None if timeout is None else started + timeout
        doing = f"follow Job {namespace}/{name}"
        last: JobCounts | None = None

        def observe(job: client.V1Job) -> JobOutcome | None:
            nonlocal last
            counts = _counts(job)
            if counts != last:
                last = counts
                if on_update is not None:
                    on_update(counts)
            done = _finished(job)
            if done is None:
                return None
            return JobOutcome(
                str(done.type),
                done.reason or "",
                done.message or "",
                counts.succeeded,
                counts.failed,
            )

        version: str | None = None
        # Failed attempts since the server last answered, and when the first one failed.
        failures = 0
        failing_since = 0.0
        gone_in_a_row = 0
        outcome: JobOutcome | None = None

        def answered() -> None:
            nonlocal failures
            if failures:
                log.info("reached %s again after %d failed attempts", self.server, failures)
                failures = 0

        while outcome is None:
            seconds = WATCH_SECONDS
            if deadline is not None:
                left = deadline - self._clock()
                if left <= 0:
                    raise LauncherError(
                        f"Job {namespace}/{name} did not finish within {timeout:g} s; it is "
                        "still on the cluster (see `workqueue jobs list`, or delete it with "
                        "`workqueue jobs delete`)"
                    )
                seconds = max(1, min(WATCH_SECONDS, math.ceil(left)))
            try:
                if version is None:
                    job, version = self._list_one(name, namespace)
                    answered()
                    outcome = observe(job)
                    if outcome is not None:
                        break
                events = self._events(name, namespace, version, seconds, answered)
                for kind, job_or_none, seen in events:
                    version = seen
                    gone_in_a_row = 0
                    if kind == "DELETED":
                        raise LauncherError(
                            f"Job {namespace}/{name} was deleted on {self.server} before it "
                            "finished"
                        )
                    if job_or_none is not None and kind in ("ADDED", "MODIFIED"):
                        outcome = observe(job_or_none)
                        if outcome is not None:
                            break
                else:
                    # The server ended the watch after `seconds`: watch again.
                    gone_in_a_row = 0
            except ApiException as exc:
                if exc.status != 410:
                    raise self._refused(
                        exc, doing, namespace=namespace, verbs="'list' and 'watch'"
                    ) from exc
                gone_in_a_row += 1
                if gone_in_a_row > MAX_GONE_IN_A_ROW:
                    raise LauncherError(
                        f"the Kubernetes API server at {self.server} answered 410 Gone to "
                        f"{gone_in_a_row} watches in a row of Job {namespace}/{name}, each "
                        "started from a fresh list"
                    ) from exc
                log.debug("watch of Job %s/%s expired (410 Gone), listing again", namespace, name)
                version = None
            except _TRANSPORT_ERRORS as exc:
                now = self._clock()
                if failures == 0:
                    failing_since = now
                    log.warning(
                        "lost the connection to %s while following Job %s/%s (%s); retrying",
                        self.server,
                        namespace,
                        name,
                        _transport_reason(exc),
                    )
                failures += 1
                if now - failing_since >= self.reconnect_seconds:
                    raise self._unreachable(exc, doing) from exc
                pause = min(MAX_RECONNECT_PAUSE, 0.2 * 2 ** (failures - 1))
                if deadline is not None:
                    pause = max(0.0, min(pause, deadline - now))
                self._sleep(pause)
        log.info(
            "Job %s/%s ended %s%s after %.1f s (succeeded %d, failed %d)",
            namespace,
            name,
            outcome.condition,
            f" ({outcome.reason})" if outcome.reason else "",
            self._clock() - started,
            outcome.succeeded,
            outcome.failed,
        )
        return outcome

    # -- list and delete ---------------------------------------------------

    def _list(
        self, namespace: str, label_selector: str, all_namespaces: bool
    ) -> list[client.V1Job]:
        where = "all namespaces" if all_namespaces else f"namespace {namespace!r}"
        doing = f"list Jobs in {where}" + (
            f" with labels {label_selector!r}" if label_selector else ""
        )

        def page(token: str | None) -> client.V1JobList:
            if all_namespaces:
                return self._batch.list_job_for_all_namespaces(
                    label_selector=label_selector or None,
                    limit=LIST_PAGE,
                    _continue=token,
                    _request_timeout=REQUEST_TIMEOUT,
                )
            return self._batch.list_namespaced_job(
                namespace,
                label_selector=label_selector or None,
                limit=LIST_PAGE,
                _continue=token,
                _request_timeout=REQUEST_TIMEOUT,
            )

        jobs: list[client.V1Job] = []
        token: str | None = None
        while True:
            listed = self._call(
                doing,
                functools.partial(page, token),
                namespace=None if all_namespaces else namespace,
                verbs="'list'",
                label_selector=label_selector,
            )
            jobs.extend(listed.items)
            token = listed.metadata._continue if listed.metadata is not None else None
            if not token:
                return jobs

    def list_jobs(
        self, namespace: str, label_selector: str = "", *, all_namespaces: bool = False
    ) -> list[JobRow]:
        """The Jobs in `namespace` (or all) whose labels match `label_selector`."""
        now = self._now()
        rows = []
        for job in self._list(namespace, label_selector, all_namespaces):
            meta = job.metadata
            created = meta.creation_timestamp if meta is not None else None
            counts = _counts(job)
            rows.append(
                JobRow(
                    name=str(meta.name if meta is not None else ""),
                    namespace=str(meta.namespace if meta is not None else namespace),
                    active=counts.active,
                    succeeded=counts.succeeded,
                    failed=counts.failed,
                    condition=job_state(job),
                    age=(now - created) if created is not None else None,
                )
            )
        return rows

    def delete_jobs(
        self, namespace: str, label_selector: str, *, all_namespaces: bool = False
    ) -> list[JobRef]:
        """Delete the matching Jobs and their Pods; return the Jobs deleted.

        Deletion propagates in the background, so the Pods go too. A Job that
        is already gone when its turn comes is skipped. An empty selector is
        refused, so that no call deletes every Job of a namespace by accident.
        """
        if not label_selector.strip():
            raise UsageError("refusing to delete Jobs without a label selector (-l key=value)")
        options = client.V1DeleteOptions(propagation_policy="Background")
        deleted: list[JobRef] = []
        for job in self._list(namespace, label_selector, all_namespaces):
            if job.metadata is None or not job.metadata.name:
                continue
            ref = JobRef(str(job.metadata.namespace or namespace), job.metadata.name)
            try:
                self._batch.delete_namespaced_job(
                    ref.name, ref.namespace, body=options, _request_timeout=REQUEST_TIMEOUT
                )
            except ApiException as exc:
                if exc.status == 404:
                    log.debug("Job %s was already gone", ref)
                    continue
                raise self._refused(
                    exc,
                    f"delete Job {ref} (after deleting {len(deleted)} others)",
                    namespace=ref.namespace,
                    verbs="'list' and 'delete'",
                ) from exc
            except _TRANSPORT_ERRORS as exc:
                raise self._unreachable(
                    exc, f"delete Job {ref} (after deleting {len(deleted)} others)"
                ) from exc
            deleted.append(ref)
        log.info(
            "deleted %d Job(s) with labels %r in %s on %s",
            len(deleted),
            label_selector,
            "all namespaces" if all_namespaces else f"namespace {namespace}",
            self.server,
        )
        return deleted
