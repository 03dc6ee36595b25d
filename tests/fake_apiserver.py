"""A small Kubernetes API server for the batch/v1 Job calls of the launcher.

It runs in-process on 127.0.0.1 (a `ThreadingHTTPServer` on a free port, in a
thread) and answers what the official `kubernetes` client sends for Jobs:

    POST   /apis/batch/v1/namespaces/{ns}/jobs          create (201, 409, 404, 403, 422)
    GET    /apis/batch/v1/namespaces/{ns}/jobs          list, or watch with ?watch=true
    DELETE /apis/batch/v1/namespaces/{ns}/jobs          delete a collection by labelSelector
    GET    /apis/batch/v1/namespaces/{ns}/jobs/{name}   read one
    DELETE /apis/batch/v1/namespaces/{ns}/jobs/{name}   delete one
    GET    /apis/batch/v1/jobs                          list or watch in all namespaces

Like a real API server, every object change takes the next resourceVersion
and is kept in an event history; a watch from resourceVersion N replays the
events after N, then streams new ones as newline-delimited JSON in a chunked
response until `timeoutSeconds` pass. Errors are `Status` objects with kind,
code, reason and message. Selectors: labelSelector with `a=b`, `a==b`,
`a!=b`, `a` and `!a` terms joined by commas; fieldSelector
`metadata.name=` and `metadata.namespace=`.

The test drives the cluster's side: `add_job` and `set_status` change objects
(emitting ADDED and MODIFIED events), `expire_watches` makes every older
resourceVersion too old (410 Gone), `drop_watches` cuts open watch streams
mid-response, `remove_job` deletes behind the client's back, and `before`
runs a test's hook ahead of each answer. Every request is recorded in `requests`.

What it does not do: no Pods are run (status only changes when the test says
so), no schema validation beyond a name check and a required spec.template,
no set-based selectors (`in`, `notin`), no bookmarks, no finalizers (a delete
removes the object at once, whatever the propagation policy).
"""

from __future__ import annotations

import contextlib
import copy
import json
import re
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

_NAMESPACED = re.compile(r"^/apis/batch/v1/namespaces/([^/]+)/jobs(?:/([^/]+))?$")
_ALL_NAMESPACES = "/apis/batch/v1/jobs"
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


@dataclass
class RecordedRequest:
    """One request as the fake server saw it.

    `query` holds the last value of each parameter, `body` the parsed JSON (or
    None), `headers` the headers with lower-case names.
    """

    method: str
    path: str
    query: dict[str, str]
    body: Any
    headers: dict[str, str] = field(repr=False)


@dataclass
class _Event:
    version: int
    type: str
    obj: dict[str, Any]


def status_object(code: int, reason: str, message: str, **details: Any) -> dict[str, Any]:
    """A `Status` the way an API server reports a failure."""
    body: dict[str, Any] = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }
    if details:
        body["details"] = details
    return body


def _parse_label_selector(text: str) -> list[tuple[str, str, str | None]] | None:
    """Terms (op, key, value) of an equality-based selector; None if it is not one."""
    terms: list[tuple[str, str, str | None]] = []
    for raw in text.split(","):
        term = raw.strip()
        if not term:
            continue
        if "!=" in term:
            key, value = term.split("!=", 1)
            terms.append(("!=", key.strip(), value.strip()))
        elif "==" in term:
            key, value = term.split("==", 1)
            terms.append(("=", key.strip(), value.strip()))
        elif "=" in term:
            key, value = term.split("=", 1)
            terms.append(("=", key.strip(), value.strip()))
        elif term.startswith("!"):
            terms.append(("!", term[1:].strip(), None))
        else:
            terms.append(("exists", term, None))
    for _, key, _value in terms:
        if not key or " " in key or "(" in key:
            return None
    return terms


def _labels_match(labels: dict[str, str], terms: list[tuple[str, str, str | None]]) -> bool:
    for op, key, value in terms:
        if op == "=" and labels.get(key) != value:
            return False
        if op == "!=" and labels.get(key) == value:
            return False
        if op == "exists" and key not in labels:
            return False
        if op == "!" and key in labels:
            return False
    return True


class FakeApiServer:
    """An in-process batch/v1 API server; use as a context manager or start/stop.

    `namespaces` exist (creating a Job elsewhere is a 404); every request on a
    namespace in `forbidden`, and every (namespace, verb) in `denied`, is
    refused with 403; with `token` set, requests
    without ``Authorization: Bearer <token>`` are refused with 401.
    """

    def __init__(
        self,
        *,
        namespaces: tuple[str, ...] = ("default",),
        forbidden: tuple[str, ...] = (),
        token: str | None = None,
    ) -> None:
        self.namespaces = set(namespaces)
        self.forbidden = set(forbidden)
        self.token = token
        self.requests: list[RecordedRequest] = []
        #: Answer a too-old watch with HTTP 410 instead of a 200 carrying an ERROR event.
        self.gone_as_http = False
        #: (namespace, verb) pairs refused with 403, beside the `forbidden` namespaces.
        self.denied: set[tuple[str, str]] = set()
        #: Called with each request (outside the lock) before it is answered.
        self.before: Callable[[RecordedRequest], None] | None = None
        self._jobs: dict[tuple[str, str], dict[str, Any]] = {}
        self._history: list[_Event] = []
        self._version = 1000
        self._oldest_watchable = 0
        self._expire_generation = 0
        self._drop_generation = 0
        self._open_watches = 0
        self._connections: set[socket.socket] = set()
        self._closing = False
        self._changed = threading.Condition()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------

    def start(self) -> FakeApiServer:
        handler = _make_handler(self)
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, args=(0.05,), name="fake-apiserver", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        with self._changed:
            self._closing = True
            self._changed.notify_all()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        # Kept-alive connections would go on being served by their threads.
        with self._changed:
            for conn in list(self._connections):
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> FakeApiServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._httpd is not None, "the server is not started"
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    # -- the cluster's side, driven by tests -------------------------------

    def add_job(self, namespace: str, job: dict[str, Any]) -> dict[str, Any]:
        """Store `job` as if created (no checks) and emit ADDED; returns the stored copy."""
        with self._changed:
            self.namespaces.add(namespace)
            return self._store_new(namespace, copy.deepcopy(job))

    def remove_job(self, namespace: str, name: str) -> None:
        """Delete the Job behind the client's back (emits DELETED)."""
        with self._changed:
            self._remove(namespace, name)

    def job(self, namespace: str, name: str) -> dict[str, Any] | None:
        with self._changed:
            found = self._jobs.get((namespace, name))
            return copy.deepcopy(found) if found is not None else None

    def set_status(
        self,
        namespace: str,
        name: str,
        *,
        active: int | None = None,
        ready: int | None = None,
        succeeded: int | None = None,
        failed: int | None = None,
        conditions: list[dict[str, Any]] | None = None,
    ) -> None:
        """Change the Job's status fields that are given and emit MODIFIED."""
        with self._changed:
            job = self._jobs[(namespace, name)]
            status = job.setdefault("status", {})
            for key, value in (
                ("active", active),
                ("ready", ready),
                ("succeeded", succeeded),
                ("failed", failed),
            ):
                if value is not None:
                    status[key] = value
            if conditions is not None:
                stamp = _now()
                status["conditions"] = [
                    {"lastProbeTime": stamp, "lastTransitionTime": stamp, **c} for c in conditions
                ]
            self._bump(job)
            self._emit("MODIFIED", job)

    def expire_watches(self) -> None:
        """Forget the history: older resourceVersions get 410 Gone; open watches end so."""
        with self._changed:
            self._oldest_watchable = self._version
            self._expire_generation += 1
            self._changed.notify_all()

    def drop_watches(self) -> None:
        """Cut every open watch connection without ending its response properly."""
        with self._changed:
            self._drop_generation += 1
            self._changed.notify_all()

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 10.0) -> None:
        """Block until `predicate()` is true (checked on every change and request)."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not predicate():
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("fake API server: condition not reached in time")
                self._changed.wait(min(left, 0.05))

    def watch_requests(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.method == "GET" and r.query.get("watch") == "true"]

    def list_requests(self) -> list[RecordedRequest]:
        return [
            r
            for r in self.requests
            if r.method == "GET"
            and r.query.get("watch") != "true"
            and (r.path == _ALL_NAMESPACES or r.path.endswith("/jobs"))
        ]

    @property
    def open_watches(self) -> int:
        return self._open_watches

    # -- state, under self._changed ----------------------------------------

    def _bump(self, obj: dict[str, Any]) -> None:
        self._version += 1
        obj["metadata"]["resourceVersion"] = str(self._version)

    def _emit(self, kind: str, obj: dict[str, Any]) -> None:
        self._history.append(_Event(self._version, kind, copy.deepcopy(obj)))
        self._changed.notify_all()

    def _store_new(self, namespace: str, job: dict[str, Any]) -> dict[str, Any]:
        meta = job.setdefault("metadata", {})
        meta["namespace"] = namespace
        meta["uid"] = str(uuid.uuid4())
        meta.setdefault("creationTimestamp", _now())
        meta["generation"] = 1
        job.setdefault("apiVersion", "batch/v1")
        job.setdefault("kind", "Job")
        job.setdefault("status", {})
        self._bump(job)
        self._jobs[(namespace, meta["name"])] = job
        self._emit("ADDED", job)
        return copy.deepcopy(job)

    def _remove(self, namespace: str, name: str) -> dict[str, Any]:
        job = self._jobs.pop((namespace, name))
        self._bump(job)
        self._emit("DELETED", job)
        return job

    def _select(
        self,
        namespace: str | None,
        labels: list[tuple[str, str, str | None]],
        fields: dict[str, str],
    ) -> Callable[[dict[str, Any]], bool]:
        def matches(obj: dict[str, Any]) -> bool:
            meta = obj["metadata"]
            if namespace is not None and meta["namespace"] != namespace:
                return False
            if "metadata.name" in fields and meta["name"] != fields["metadata.name"]:
                return False
            if "metadata.namespace" in fields and meta["namespace"] != fields["metadata.namespace"]:
                return False
            return _labels_match(meta.get("labels") or {}, labels)

        return matches

    def _matching(self, matches: Callable[[dict[str, Any]], bool]) -> list[dict[str, Any]]:
        found = [copy.deepcopy(j) for j in self._jobs.values() if matches(j)]
        return sorted(found, key=lambda j: (j["metadata"]["namespace"], j["metadata"]["name"]))


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _make_handler(server: FakeApiServer) -> type[BaseHTTPRequestHandler]:
    class Handler(_Handler):
        fake = server

    return Handler


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    fake: FakeApiServer

    def setup(self) -> None:
        super().setup()
        with self.fake._changed:
            self.fake._connections.add(self.connection)

    def finish(self) -> None:
        with self.fake._changed:
            self.fake._connections.discard(self.connection)
        with contextlib.suppress(OSError):
            super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the tests read `fake.requests` instead."""

    # -- plumbing ----------------------------------------------------------

    def _read_body(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if not raw:
            return None
        try:
            return json.loads(raw)
        except ValueError:
            return {"_unparsed": raw.decode("utf-8", "replace")}

    def _send(self, code: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _fail(self, code: int, reason: str, message: str, **details: Any) -> None:
        self._send(code, status_object(code, reason, message, **details))

    def _handle(self, method: str) -> None:
        parts = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        body = self._read_body() if method in ("POST", "DELETE") else None
        fake = self.fake
        headers = {key.lower(): value for key, value in self.headers.items()}
        recorded = RecordedRequest(method, parts.path, query, body, headers)
        with fake._changed:
            fake.requests.append(recorded)
            fake._changed.notify_all()
        if fake.before is not None:
            fake.before(recorded)
        if fake.token is not None and self.headers.get("Authorization") != f"Bearer {fake.token}":
            self._fail(401, "Unauthorized", "Unauthorized")
            return
        if parts.path == _ALL_NAMESPACES:
            namespace, name = None, None
        else:
            match = _NAMESPACED.match(parts.path)
            if match is None:
                self._fail(404, "NotFound", "the server could not find the requested resource")
                return
            namespace, name = match.group(1), match.group(2)
        verb = _verb(method, name, query)
        if verb is None or (namespace is None and verb not in ("list", "watch")):
            self._fail(405, "MethodNotAllowed", f"{method} is not supported on {parts.path}")
            return
        if namespace in fake.forbidden or (namespace, verb) in fake.denied:
            self._fail(
                403,
                "Forbidden",
                f'jobs.batch{" " + repr(name) if name else ""} is forbidden: User "test-user" '
                f'cannot {verb} resource "jobs" in API group "batch" in the namespace '
                f'"{namespace}"',
                group="batch",
                kind="jobs",
                **({"name": name} if name else {}),
            )
            return
        labels = _parse_label_selector(query.get("labelSelector", ""))
        if labels is None:
            self._fail(
                400, "BadRequest", f"unable to parse requirement: {query['labelSelector']!r}"
            )
            return
        fields: dict[str, str] = {}
        for term in filter(None, query.get("fieldSelector", "").split(",")):
            key, _, value = term.partition("=")
            if key not in ("metadata.name", "metadata.namespace"):
                self._fail(400, "BadRequest", f'field label not supported: "{key}"')
                return
            fields[key] = value.lstrip("=")
        selected = fake._select(namespace, labels, fields)
        if verb == "watch":
            self._watch(selected, query)
        elif verb == "list":
            with fake._changed:
                items = fake._matching(selected)
                version = str(fake._version)
            self._send(
                200,
                {
                    "kind": "JobList",
                    "apiVersion": "batch/v1",
                    "metadata": {"resourceVersion": version},
                    "items": items,
                },
            )
        elif verb == "create":
            assert namespace is not None
            self._create(namespace, body)
        elif verb == "get":
            assert namespace is not None and name is not None
            job = fake.job(namespace, name)
            if job is None:
                self._not_found(name)
            else:
                self._send(200, job)
        elif verb == "delete":
            assert namespace is not None and name is not None
            with fake._changed:
                gone = (namespace, name) not in fake._jobs
                removed = None if gone else fake._remove(namespace, name)
            if removed is None:
                self._not_found(name)
            else:
                self._send(
                    200,
                    {
                        "kind": "Status",
                        "apiVersion": "v1",
                        "metadata": {},
                        "status": "Success",
                        "details": {
                            "name": name,
                            "group": "batch",
                            "kind": "jobs",
                            "uid": removed["metadata"]["uid"],
                        },
                    },
                )
        else:  # deletecollection
            with fake._changed:
                victims = fake._matching(selected)
                for job in victims:
                    fake._remove(job["metadata"]["namespace"], job["metadata"]["name"])
                version = str(fake._version)
            self._send(
                200,
                {
                    "kind": "JobList",
                    "apiVersion": "batch/v1",
                    "metadata": {"resourceVersion": version},
                    "items": victims,
                },
            )

    def _not_found(self, name: str) -> None:
        self._fail(
            404, "NotFound", f'jobs.batch "{name}" not found', name=name, group="batch", kind="jobs"
        )

    def _create(self, namespace: str, body: Any) -> None:
        fake = self.fake
        if namespace not in fake.namespaces:
            self._fail(
                404,
                "NotFound",
                f'namespaces "{namespace}" not found',
                name=namespace,
                kind="namespaces",
            )
            return
        if not isinstance(body, dict):
            self._fail(400, "BadRequest", "the body of the request was not a JSON object")
            return
        name = str((body.get("metadata") or {}).get("name") or "")
        problems = []
        if not _DNS_LABEL.match(name) or len(name) > 63:
            problems.append(
                (
                    "metadata.name",
                    "FieldValueInvalid",
                    f'Invalid value: "{name}": a lowercase '
                    "RFC 1123 label must consist of lower case alphanumeric characters or '-'",
                )
            )
        if not isinstance((body.get("spec") or {}).get("template"), dict):
            problems.append(("spec.template", "FieldValueRequired", "Required value"))
        if problems:
            self._fail(
                422,
                "Invalid",
                f'Job.batch "{name}" is invalid: '
                + ", ".join(f"{where}: {text}" for where, _, text in problems),
                name=name,
                group="batch",
                kind="Job",
                causes=[{"reason": r, "message": t, "field": w} for w, r, t in problems],
            )
            return
        with fake._changed:
            if (namespace, name) in fake._jobs:
                exists = True
            else:
                exists = False
                stored = fake._store_new(namespace, copy.deepcopy(body))
        if exists:
            self._fail(
                409,
                "AlreadyExists",
                f'jobs.batch "{name}" already exists',
                name=name,
                group="batch",
                kind="jobs",
            )
            return
        self._send(201, stored)

    # -- watch -------------------------------------------------------------

    def _watch(self, matches: Callable[[dict[str, Any]], bool], query: dict[str, str]) -> None:
        fake = self.fake
        timeout = float(query.get("timeoutSeconds") or 1800)
        deadline = time.monotonic() + timeout
        asked = query.get("resourceVersion", "")
        with fake._changed:
            if asked not in ("", "0") and int(asked) < fake._oldest_watchable:
                too_old = status_object(
                    410,
                    "Expired",
                    f"too old resource version: {asked} ({fake._oldest_watchable})",
                )
                if fake.gone_as_http:
                    self._send(410, too_old)
                    return
                pending = [{"type": "ERROR", "object": too_old}]
                since = fake._version
                expired = True
            else:
                expired = False
                if asked in ("", "0"):
                    pending = [{"type": "ADDED", "object": j} for j in fake._matching(matches)]
                    since = fake._version
                else:
                    pending, since = [], int(asked)
            expire_gen, drop_gen = fake._expire_generation, fake._drop_generation
            fake._open_watches += 1
            fake._changed.notify_all()
        try:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for event in pending:
                self._chunk(event)
            if expired:
                self._end_chunks()
                return
            for change in self._follow(matches, since, deadline, expire_gen, drop_gen):
                if change is None:
                    self._cut()
                    return
                self._chunk(change)
            self._end_chunks()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        finally:
            with fake._changed:
                fake._open_watches -= 1
                fake._changed.notify_all()

    def _follow(
        self,
        matches: Callable[[dict[str, Any]], bool],
        since: int,
        deadline: float,
        expire_gen: int,
        drop_gen: int,
    ) -> Iterator[dict[str, Any] | None]:
        """Events after `since` until the deadline; None means: cut the connection."""
        fake = self.fake
        while True:
            with fake._changed:
                while True:
                    if fake._closing or fake._drop_generation != drop_gen:
                        yield None
                        return
                    if fake._expire_generation != expire_gen:
                        yield {
                            "type": "ERROR",
                            "object": status_object(
                                410, "Expired", f"too old resource version: {since}"
                            ),
                        }
                        return
                    fresh = [e for e in fake._history if e.version > since]
                    if fresh:
                        break
                    left = deadline - time.monotonic()
                    if left <= 0:
                        return
                    fake._changed.wait(min(left, 0.5))
            for event in fresh:
                since = event.version
                if matches(event.obj):
                    yield {"type": event.type, "object": event.obj}

    def _chunk(self, event: dict[str, Any]) -> None:
        data = json.dumps(event).encode() + b"\n"
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def _end_chunks(self) -> None:
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def _cut(self) -> None:
        """Drop the connection mid-response, as a failing proxy or node would."""
        self.close_connection = True
        try:
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_DELETE(self) -> None:
        self._handle("DELETE")


def _verb(method: str, name: str | None, query: dict[str, str]) -> str | None:
    if method == "GET":
        if name is not None:
            return "get"
        return "watch" if query.get("watch") in ("true", "1") else "list"
    if method == "POST" and name is None:
        return "create"
    if method == "DELETE":
        return "delete" if name is not None else "deletecollection"
    return None
