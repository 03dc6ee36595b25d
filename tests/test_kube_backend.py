"""The Kubernetes backend against an in-process API server speaking batch/v1.

Every test drives the official `kubernetes` client over real HTTP to
`fake_apiserver.FakeApiServer`, which answers like an API server (Status
objects, resourceVersions, chunked watch streams, 410 Gone).
"""

from __future__ import annotations

import functools
import logging
import socket
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from fake_apiserver import FakeApiServer, RecordedRequest
from kubernetes import client

from workqueue.errors import EXIT_LAUNCHER, LauncherError, UsageError
from workqueue.launcher import kube
from workqueue.launcher.kube import JobCounts, JobOutcome, JobRef, KubeBackend

TOKEN = "tok-9f8e7d6c5b4a-very-secret"


def make_job(name: str, labels: dict[str, str] | None = None) -> client.V1Job:
    return client.V1Job(
        api_version="batch/v1",
        kind="Job",
        metadata=client.V1ObjectMeta(name=name, labels=labels or {"app": "workqueue"}),
        spec=client.V1JobSpec(
            parallelism=2,
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(labels=labels or {"app": "workqueue"}),
                spec=client.V1PodSpec(
                    restart_policy="Never",
                    containers=[
                        client.V1Container(
                            name="consumer", image="busybox:1.36", command=["sh", "-c", "true"]
                        )
                    ],
                ),
            ),
        ),
    )


def raw_job(name: str, labels: dict[str, str]) -> dict[str, Any]:
    """A Job as stored by the server, for tests that set up the cluster directly."""
    return {
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "c", "image": "busybox", "command": ["true"]}],
                }
            }
        },
    }


@pytest.fixture
def fake() -> Iterator[FakeApiServer]:
    with FakeApiServer(namespaces=("default", "team-a"), forbidden=("locked",)) as server:
        yield server


@pytest.fixture
def backend(fake: FakeApiServer) -> Iterator[KubeBackend]:
    with KubeBackend(client.ApiClient(client.Configuration(host=fake.url))) as b:
        yield b


def in_background(action: Callable[[], None]) -> threading.Thread:
    errors: list[BaseException] = []

    def run() -> None:
        try:
            action()
        except BaseException as exc:
            errors.append(exc)
            raise

    thread = threading.Thread(target=run, daemon=True)
    thread.errors = errors  # type: ignore[attr-defined]
    thread.start()
    return thread


def finish(thread: threading.Thread) -> None:
    thread.join(timeout=10)
    assert not thread.is_alive()
    assert not thread.errors  # type: ignore[attr-defined]


def watching(fake: FakeApiServer, count: int) -> bool:
    """True once `count` watches were made and one of them is open."""
    return len(fake.watch_requests()) == count and fake.open_watches > 0


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- create ------------------------------------------------------------------


def test_create_posts_the_job_body_to_the_namespace_path(
    fake: FakeApiServer, backend: KubeBackend
) -> None:
    created = backend.create_job(make_job("wq-run-1"), namespace="team-a")

    posts = [r for r in fake.requests if r.method == "POST"]
    assert [r.path for r in posts] == ["/apis/batch/v1/namespaces/team-a/jobs"]
    body = posts[0].body
    assert body["apiVersion"] == "batch/v1"
    assert body["kind"] == "Job"
    assert body["metadata"] == {"name": "wq-run-1", "labels": {"app": "workqueue"}}
    assert body["spec"]["parallelism"] == 2
    pod = body["spec"]["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    assert pod["containers"] == [
        {"name": "consumer", "image": "busybox:1.36", "command": ["sh", "-c", "true"]}
    ]
    assert created.metadata.namespace == "team-a"
    assert created.metadata.uid
    assert created.metadata.resource_version
    assert created.metadata.creation_timestamp is not None


def test_create_without_namespace_uses_the_jobs_own_then_the_default(
    fake: FakeApiServer, backend: KubeBackend
) -> None:
    own = make_job("own-ns")
    own.metadata.namespace = "team-a"
    backend.create_job(own)
    backend.create_job(make_job("default-ns"))
    assert [r.path for r in fake.requests if r.method == "POST"] == [
        "/apis/batch/v1/namespaces/team-a/jobs",
        "/apis/batch/v1/namespaces/default/jobs",
    ]
    with pytest.raises(UsageError, match="team-a"):
        backend.create_job(own, namespace="default")


def test_create_of_an_existing_name_says_the_job_exists_and_how_to_delete(
    backend: KubeBackend,
) -> None:
    backend.create_job(make_job("wq-dup", {"app": "workqueue", "workqueue/queue": "q1"}))
    with pytest.raises(LauncherError) as caught:
        backend.create_job(make_job("wq-dup", {"app": "workqueue", "workqueue/queue": "q1"}))
    text = str(caught.value)
    assert caught.value.exit_code == EXIT_LAUNCHER
    assert "'wq-dup' already exists in namespace 'default'" in text
    assert "409" in text
    assert "workqueue jobs delete -n default -l app=workqueue,workqueue/queue=q1" in text
    assert backend.server in text


def test_create_forbidden_names_the_namespace_and_the_missing_permission(
    backend: KubeBackend,
) -> None:
    with pytest.raises(LauncherError) as caught:
        backend.create_job(make_job("wq-x"), namespace="locked")
    text = str(caught.value)
    assert "403" in text
    assert "namespace 'locked'" in text
    assert "RBAC verb(s) 'create' on resource 'jobs' in API group 'batch'" in text
    # The API's own message is passed on.
    assert 'cannot create resource "jobs"' in text


def test_create_in_a_missing_namespace_names_the_namespace(backend: KubeBackend) -> None:
    with pytest.raises(LauncherError) as caught:
        backend.create_job(make_job("wq-x"), namespace="nope")
    text = str(caught.value)
    assert "namespace 'nope' does not exist" in text
    assert "kubectl create namespace nope" in text


def test_create_of_an_invalid_job_reports_the_apis_message(
    fake: FakeApiServer, backend: KubeBackend
) -> None:
    with pytest.raises(LauncherError) as caught:
        backend.create_job(make_job("Bad_Name"))
    text = str(caught.value)
    assert "422 Invalid" in text
    assert 'Job.batch "Bad_Name" is invalid: metadata.name' in text
    assert fake.job("default", "Bad_Name") is None


def test_read_job_returns_the_stored_job_or_says_it_is_missing(
    fake: FakeApiServer, backend: KubeBackend
) -> None:
    backend.create_job(make_job("wq-read"))
    fake.set_status("default", "wq-read", active=3)
    job = backend.read_job("wq-read", "default")
    assert job.status.active == 3
    with pytest.raises(LauncherError, match=r'404 NotFound\): jobs.batch "gone" not found'):
        backend.read_job("gone", "default")


# -- wait --------------------------------------------------------------------


def test_wait_follows_status_updates_until_complete(
    fake: FakeApiServer, backend: KubeBackend
) -> None:
    created = backend.create_job(make_job("wq-ok"))
    updates: list[JobCounts] = []

    def cluster() -> None:
        fake.wait_for(lambda: fake.open_watches == 1)
        fake.set_status("default", "wq-ok", active=2, ready=2)
        fake.set_status("default", "wq-ok", ready=1)  # counts unchanged: no update
        fake.set_status("default", "wq-ok", active=1, succeeded=1)
        fake.set_status(
            "default",
            "wq-ok",
            active=0,
            succeeded=2,
            conditions=[
                {"type": "SuccessCriteriaMet", "status": "True"},
                {"type": "Complete", "status": "True"},
            ],
        )

    driver = in_background(cluster)
    outcome = backend.wait_job("wq-ok", "default", on_update=updates.append, timeout=30)
    finish(driver)

    assert outcome == JobOutcome("Complete", "", "", succeeded=2, failed=0)
    assert outcome.ok
    assert updates == [
        JobCounts(0, 0, 0),
        JobCounts(2, 0, 0),
        JobCounts(1, 1, 0),
        JobCounts(0, 2, 0),
    ]
    assert len(fake.list_requests()) == 1
    assert fake.list_requests()[0].query["fieldSelector"] == "metadata.name=wq-ok"
    watches = fake.watch_requests()
    assert len(watches) == 1
    assert watches[0].query["fieldSelector"] == "metadata.name=wq-ok"
    # The watch starts where the list left off: at the Job's creation.
    assert watches[0].query["resourceVersion"] == created.metadata.resource_version


def test_wait_reports_failed_with_the_reason_backoff_limit_exceeded(
    fake: FakeApiServer, backend: KubeBackend
) -> None:
    backend.create_job(make_job("wq-bad"))

    def cluster() -> None:
        fake.wait_for(lambda: fake.open_watches == 1)
        fake.set_status("default", "wq-bad", active=1, failed=2)
        # FailureTarget comes first on recent clusters; it does not end the wait.
        fake.set_status(
            "default",
            "wq-bad",
            conditions=[
                {"type": "FailureTarget", "status": "True", "reason": "BackoffLimitExceeded"}
            ],
        )
        fake.set_status(
            "default",
            "wq-bad",
            active=0,
            failed=3,
            conditions=[
                {"type": "FailureTarget", "status": "True", "reason": "BackoffLimitExceeded"},
                {
                    "type": "Failed",
                    "status": "True",
                    "reason": "BackoffLimitExceeded",
                    "message": "Job has reached the specified backoff limit",
                },
            ],
        )

    driver = in_background(cluster)
    outcome = backend.wait_job("wq-bad", "default", timeout=30)
    finish(driver)
    assert outcome == JobOutcome(
        "Failed",
        "BackoffLimitExceeded",
        "Job has reached the specified backoff limit",
        succeeded=0,
        failed=3,
    )
    assert not outcome.ok


def test_wait_on_a_finished_job_returns_without_watching(
    fake: FakeApiServer, backend: KubeBackend
) -> None:
    fake.add_job("default", raw_job("wq-done", {"app": "workqueue"}))
    fake.set_status(
        "default",
        "wq-done",
        succeeded=4,
        conditions=[{"type": "Failed", "status": "True", "reason": "DeadlineExceeded"}],
    )
    outcome = backend.wait_job("wq-done", "default")
    assert (outcome.condition, outcome.reason, outcome.succeeded) == (
        "Failed",
        "DeadlineExceeded",
        4,
    )
    assert fake.watch_requests() == []


@pytest.mark.parametrize("as_http", [False, True], ids=["error-event", "http-status"])
def test_wait_survives_410_gone_by_listing_again(
    fake: FakeApiServer, backend: KubeBackend, as_http: bool
) -> None:
    backend.create_job(make_job("wq-gone"))
    fake.gone_as_http = as_http

    def cluster() -> None:
        fake.wait_for(lambda: len(fake.watch_requests()) == 1 and fake.open_watches == 1)
        fake.set_status("default", "wq-gone", active=2)
        # The history is compacted: the open watch ends with 410 (an ERROR
        # event), and any watch from an older version is refused with 410.
        fake.expire_watches()
        fake.wait_for(lambda: len(fake.list_requests()) == 2 and fake.open_watches == 1)
        fake.set_status(
            "default",
            "wq-gone",
            active=0,
            succeeded=2,
            conditions=[{"type": "Complete", "status": "True"}],
        )

    driver = in_background(cluster)
    outcome = backend.wait_job("wq-gone", "default", timeout=30)
    finish(driver)
    assert outcome.condition == "Complete"
    lists, watches = fake.list_requests(), fake.watch_requests()
    assert len(lists) == 2
    # The second watch starts from the fresh list, newer than the expired one.
    assert int(watches[-1].query["resourceVersion"]) > int(watches[0].query["resourceVersion"])


def test_wait_reconnects_after_a_dropped_stream_from_the_last_version_seen(
    fake: FakeApiServer, backend: KubeBackend
) -> None:
    backend.create_job(make_job("wq-drop"))
    updates: list[JobCounts] = []
    saw_two = threading.Event()

    def record(counts: JobCounts) -> None:
        updates.append(counts)
        if counts.active == 2:
            saw_two.set()

    def cluster() -> None:
        fake.wait_for(lambda: fake.open_watches == 1)
        fake.set_status("default", "wq-drop", active=2)
        assert saw_two.wait(10)
        fake.drop_watches()
        fake.wait_for(lambda: len(fake.watch_requests()) == 2 and fake.open_watches == 1)
        fake.set_status(
            "default",
            "wq-drop",
            active=0,
            succeeded=2,
            conditions=[{"type": "Complete", "status": "True"}],
        )

    driver = in_background(cluster)
    outcome = backend.wait_job("wq-drop", "default", on_update=record, timeout=30)
    finish(driver)
    assert outcome.condition == "Complete"
    watches = fake.watch_requests()
    assert len(watches) == 2
    assert len(fake.list_requests()) == 1, "a dropped stream resumes without listing again"
    # The second watch resumes at the last event received, so nothing is replayed or lost.
    assert int(watches[1].query["resourceVersion"]) == int(watches[0].query["resourceVersion"]) + 1
    assert updates == [JobCounts(0, 0, 0), JobCounts(2, 0, 0), JobCounts(0, 2, 0)]


def test_wait_keeps_following_while_reconnects_succeed(fake: FakeApiServer) -> None:
    # Each cut is followed by a successful reconnection, so however long the
    # cuts go on, the server never stays unreachable for reconnect_seconds.
    backend = KubeBackend(
        client.ApiClient(client.Configuration(host=fake.url)), reconnect_seconds=0.3
    )
    backend.create_job(make_job("wq-flaky"))

    def cluster() -> None:
        for cut in range(1, 6):
            opened = functools.partial(watching, fake, cut)
            fake.wait_for(opened)
            fake.drop_watches()
        fake.wait_for(lambda: len(fake.watch_requests()) == 6 and fake.open_watches == 1)
        fake.set_status(
            "default", "wq-flaky", succeeded=1, conditions=[{"type": "Complete", "status": "True"}]
        )

    driver = in_background(cluster)
    outcome = backend.wait_job("wq-flaky", "default", timeout=30)
    finish(driver)
    assert outcome.condition == "Complete"
    assert len(fake.watch_requests()) == 6


def test_wait_fails_naming_the_server_when_it_stays_unreachable(fake: FakeApiServer) -> None:
    backend = KubeBackend(
        client.ApiClient(client.Configuration(host=fake.url)), reconnect_seconds=0.5
    )
    backend.create_job(make_job("wq-lost"))
    server = fake.url

    def cluster() -> None:
        fake.wait_for(lambda: fake.open_watches == 1)
        fake.stop()

    driver = in_background(cluster)
    with pytest.raises(LauncherError) as caught:
        backend.wait_job("wq-lost", "default", timeout=30)
    finish(driver)
    text = str(caught.value)
    assert f"cannot reach the Kubernetes API server at {server}" in text
    assert "follow Job default/wq-lost" in text


def test_wait_fails_when_the_job_is_deleted(fake: FakeApiServer, backend: KubeBackend) -> None:
    backend.create_job(make_job("wq-del"))

    def cluster() -> None:
        fake.wait_for(lambda: fake.open_watches == 1)
        fake.remove_job("default", "wq-del")

    driver = in_background(cluster)
    with pytest.raises(LauncherError, match=r"Job default/wq-del was deleted"):
        backend.wait_job("wq-del", "default", timeout=30)
    finish(driver)
    with pytest.raises(LauncherError, match=r"Job default/wq-del does not exist"):
        backend.wait_job("wq-del", "default", timeout=30)


def test_wait_gives_up_after_its_timeout(fake: FakeApiServer, backend: KubeBackend) -> None:
    backend.create_job(make_job("wq-slow"))
    with pytest.raises(LauncherError, match=r"did not finish within 1 s"):
        backend.wait_job("wq-slow", "default", timeout=1)
    assert fake.watch_requests()[0].query["timeoutSeconds"] == "1"


def test_wait_forbidden_names_list_and_watch(fake: FakeApiServer, backend: KubeBackend) -> None:
    with pytest.raises(LauncherError) as caught:
        backend.wait_job("wq-x", "locked", timeout=5)
    assert "'list' and 'watch'" in str(caught.value)


# -- list and delete ---------------------------------------------------------


@pytest.fixture
def populated(fake: FakeApiServer) -> FakeApiServer:
    fake.add_job("default", raw_job("q1-a", {"app": "workqueue", "queue": "q1"}))
    fake.add_job("default", raw_job("q1-b", {"app": "workqueue", "queue": "q1"}))
    fake.add_job("default", raw_job("q2-a", {"app": "workqueue", "queue": "q2"}))
    fake.add_job("default", raw_job("other", {"app": "else"}))
    fake.add_job("team-a", raw_job("q1-c", {"app": "workqueue", "queue": "q1"}))
    fake.set_status(
        "default",
        "q1-a",
        succeeded=3,
        conditions=[{"type": "Complete", "status": "True"}],
    )
    fake.set_status("default", "q1-b", active=2, failed=1)
    return fake


def test_list_selects_only_jobs_with_matching_labels(populated: FakeApiServer) -> None:
    later = datetime.now(UTC) + timedelta(hours=1)
    backend = KubeBackend(
        client.ApiClient(client.Configuration(host=populated.url)), now=lambda: later
    )
    rows = backend.list_jobs("default", "app=workqueue,queue=q1")
    assert [(r.namespace, r.name, r.condition) for r in rows] == [
        ("default", "q1-a", "Complete"),
        ("default", "q1-b", "Running"),
    ]
    assert (rows[0].succeeded, rows[1].active, rows[1].failed) == (3, 2, 1)
    assert all(
        r.age is not None and timedelta(minutes=59) < r.age < timedelta(hours=2) for r in rows
    )
    query = populated.list_requests()[-1].query
    assert query["labelSelector"] == "app=workqueue,queue=q1"
    assert [r.name for r in backend.list_jobs("default", "app=workqueue,queue!=q1")] == ["q2-a"]


def test_list_tells_pending_running_suspended_and_finished_jobs_apart(
    fake: FakeApiServer, backend: KubeBackend
) -> None:
    suspended = raw_job("s", {"k": "v"})
    suspended["spec"]["suspend"] = True
    fake.add_job("default", suspended)
    fake.add_job("default", raw_job("p", {"k": "v"}))
    fake.add_job("default", raw_job("r", {"k": "v"}))
    fake.set_status("default", "r", active=1)
    fake.add_job("default", raw_job("f", {"k": "v"}))
    fake.set_status("default", "f", failed=1, conditions=[{"type": "Failed", "status": "True"}])
    fake.add_job("default", raw_job("t", {"k": "v"}))
    fake.set_status(
        "default", "t", active=1, conditions=[{"type": "FailureTarget", "status": "True"}]
    )
    states = {row.name: row.condition for row in backend.list_jobs("default", "k=v")}
    assert states == {
        "f": "Failed",
        "p": "Pending",
        "r": "Running",
        "s": "Suspended",
        "t": "Running",
    }


def test_list_in_all_namespaces_uses_the_cluster_wide_path(
    populated: FakeApiServer, backend: KubeBackend
) -> None:
    rows = backend.list_jobs("ignored", "queue=q1", all_namespaces=True)
    assert [(r.namespace, r.name) for r in rows] == [
        ("default", "q1-a"),
        ("default", "q1-b"),
        ("team-a", "q1-c"),
    ]
    assert populated.list_requests()[-1].path == "/apis/batch/v1/jobs"


def test_list_with_a_bad_selector_is_a_usage_error(backend: KubeBackend) -> None:
    with pytest.raises(UsageError, match="label selector"):
        backend.list_jobs("default", "app in (a b")


def test_delete_removes_only_matching_jobs_in_the_background(
    populated: FakeApiServer, backend: KubeBackend
) -> None:
    deleted = backend.delete_jobs("default", "queue=q1")
    assert deleted == [JobRef("default", "q1-a"), JobRef("default", "q1-b")]
    assert [str(ref) for ref in deleted] == ["default/q1-a", "default/q1-b"]
    deletes = [r for r in populated.requests if r.method == "DELETE"]
    assert [r.path for r in deletes] == [
        "/apis/batch/v1/namespaces/default/jobs/q1-a",
        "/apis/batch/v1/namespaces/default/jobs/q1-b",
    ]
    assert all(r.body["propagationPolicy"] == "Background" for r in deletes)
    left = [row.name for row in backend.list_jobs("default")]
    assert left == ["other", "q2-a"]
    assert populated.job("team-a", "q1-c") is not None


def test_delete_in_all_namespaces_deletes_each_in_its_own_namespace(
    populated: FakeApiServer, backend: KubeBackend
) -> None:
    deleted = backend.delete_jobs("default", "queue=q1", all_namespaces=True)
    assert [str(ref) for ref in deleted] == ["default/q1-a", "default/q1-b", "team-a/q1-c"]
    assert populated.job("team-a", "q1-c") is None


def test_delete_of_a_job_already_gone_is_not_an_error(
    populated: FakeApiServer, backend: KubeBackend
) -> None:
    def vanish_first(request: RecordedRequest) -> None:
        if request.method == "DELETE" and request.path.endswith("/q1-a"):
            populated.before = None
            populated.remove_job("default", "q1-a")

    populated.before = vanish_first
    deleted = backend.delete_jobs("default", "queue=q1")
    assert deleted == [JobRef("default", "q1-b")]
    assert len([r for r in populated.requests if r.method == "DELETE"]) == 2


def test_delete_without_a_selector_is_refused(
    populated: FakeApiServer, backend: KubeBackend
) -> None:
    with pytest.raises(UsageError, match="label selector"):
        backend.delete_jobs("default", " ")
    assert not [r for r in populated.requests if r.method == "DELETE"]


def test_delete_forbidden_names_the_delete_permission(
    populated: FakeApiServer, backend: KubeBackend
) -> None:
    populated.denied.add(("default", "delete"))
    with pytest.raises(LauncherError) as caught:
        backend.delete_jobs("default", "queue=q1")
    text = str(caught.value)
    assert "delete Job default/q1-a (after deleting 0 others)" in text
    assert "403 Forbidden" in text
    assert "verb(s) 'list' and 'delete' on resource 'jobs' in API group 'batch'" in text
    assert populated.job("default", "q1-a") is not None
    with pytest.raises(LauncherError, match=r"namespace 'locked'.*verb\(s\) 'list' on"):
        backend.delete_jobs("locked", "queue=q1")


def test_fake_server_deletes_a_collection_by_label(populated: FakeApiServer) -> None:
    api = client.BatchV1Api(client.ApiClient(client.Configuration(host=populated.url)))
    api.delete_collection_namespaced_job("default", label_selector="queue=q1")
    assert populated.job("default", "q1-a") is None
    assert populated.job("default", "q1-b") is None
    assert populated.job("default", "q2-a") is not None


# -- reaching the server -----------------------------------------------------


def test_connection_refused_is_a_launcher_error_naming_the_server() -> None:
    port = closed_port()
    backend = KubeBackend(client.ApiClient(client.Configuration(host=f"http://127.0.0.1:{port}")))
    with pytest.raises(LauncherError) as caught:
        backend.create_job(make_job("wq-x"))
    text = str(caught.value)
    assert caught.value.exit_code == EXIT_LAUNCHER
    assert f"cannot reach the Kubernetes API server at http://127.0.0.1:{port}" in text
    assert "connection refused" in text
    assert "Traceback" not in text
    with pytest.raises(LauncherError, match="connection refused"):
        backend.list_jobs("default", "app=x")


def test_unknown_host_is_a_launcher_error_about_dns() -> None:
    backend = KubeBackend(
        client.ApiClient(client.Configuration(host="https://no-such-cluster.invalid:6443"))
    )
    with pytest.raises(LauncherError, match=r"no-such-cluster.invalid:6443.*does not resolve"):
        backend.read_job("x", "default")


def test_tls_failure_is_a_launcher_error_pointing_at_the_certificate(
    fake: FakeApiServer,
) -> None:
    https = fake.url.replace("http://", "https://")
    backend = KubeBackend(client.ApiClient(client.Configuration(host=https)))
    with pytest.raises(LauncherError) as caught:
        backend.list_jobs("default")
    text = str(caught.value)
    assert f"API server at {https}" in text
    assert "TLS handshake failed" in text
    assert "certificate authority" in text


def test_a_server_that_never_answers_is_a_launcher_error_about_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(kube, "REQUEST_TIMEOUT", (1.0, 0.3))
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)  # accepts connections in the kernel, never answers
        port = silent.getsockname()[1]
        backend = KubeBackend(
            client.ApiClient(client.Configuration(host=f"http://127.0.0.1:{port}"))
        )
        with pytest.raises(LauncherError, match=r"127.0.0.1:\d+ .*did not answer in time"):
            backend.list_jobs("default")


# -- configuration found the kubectl way --------------------------------------


def write_kubeconfig(
    path: Path,
    contexts: dict[str, tuple[str, str]],
    current: str | None,
    namespace: dict[str, str] | None = None,
) -> Path:
    """contexts: name -> (server URL, token)."""
    data: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": f"c-{n}", "cluster": {"server": s}} for n, (s, _) in contexts.items()
        ],
        "users": [{"name": f"u-{n}", "user": {"token": t}} for n, (_, t) in contexts.items()],
        "contexts": [
            {
                "name": n,
                "context": {
                    "cluster": f"c-{n}",
                    "user": f"u-{n}",
                    **({"namespace": namespace[n]} if namespace and n in namespace else {}),
                },
            }
            for n in contexts
        ],
    }
    if current is not None:
        data["current-context"] = current
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture
def no_cluster_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.delenv("KUBERNETES_SERVICE_PORT", raising=False)
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))


@pytest.mark.usefixtures("no_cluster_env")
def test_missing_kubeconfig_outside_a_cluster_is_a_launcher_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    missing = tmp_path / "nowhere" / "config"
    monkeypatch.setenv("KUBECONFIG", str(missing))
    with pytest.raises(LauncherError) as caught:
        KubeBackend()
    text = str(caught.value)
    assert caught.value.exit_code == EXIT_LAUNCHER
    assert "no Kubernetes configuration found" in text
    assert str(missing) in text
    assert "KUBERNETES_SERVICE_HOST is unset" in text
    with pytest.raises(LauncherError, match="does not exist"):
        KubeBackend(kubeconfig=str(missing))


@pytest.mark.usefixtures("no_cluster_env")
def test_in_cluster_env_without_a_service_account_is_a_launcher_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if Path("/var/run/secrets/kubernetes.io/serviceaccount/token").exists():
        pytest.skip("this machine is a Pod with a service account")
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "443")
    with pytest.raises(LauncherError, match="service account cannot be used"):
        KubeBackend()


@pytest.mark.usefixtures("no_cluster_env")
def test_kubeconfig_with_a_token_is_loaded_and_its_token_sent(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    with FakeApiServer(namespaces=("team-a",), token=TOKEN) as fake:
        path = write_kubeconfig(
            tmp_path / "kubeconfig",
            {"dev": (fake.url, TOKEN)},
            "dev",
            namespace={"dev": "team-a"},
        )
        monkeypatch.setenv("KUBECONFIG", str(path))
        with KubeBackend() as backend:
            assert backend.default_namespace == "team-a"
            assert backend.server == fake.url
            assert "context 'dev'" in backend.source
            backend.create_job(make_job("wq-kc"))
        post = next(r for r in fake.requests if r.method == "POST")
        assert post.path == "/apis/batch/v1/namespaces/team-a/jobs"
        assert post.headers["authorization"] == f"Bearer {TOKEN}"
        assert TOKEN not in repr(backend)


@pytest.mark.usefixtures("no_cluster_env")
def test_default_kubeconfig_location_is_used_without_kubeconfig_env(tmp_path: Path) -> None:
    with FakeApiServer() as fake:
        home_kube = tmp_path / "home" / ".kube"
        home_kube.mkdir(parents=True)
        write_kubeconfig(home_kube / "config", {"home": (fake.url, TOKEN)}, "home")
        backend = KubeBackend()
        assert backend.list_jobs("default") == []
        assert "~/.kube/config" in backend.source


@pytest.mark.usefixtures("no_cluster_env")
def test_kubeconfig_list_merges_files_and_the_first_current_context_wins(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    with FakeApiServer() as first, FakeApiServer() as second:
        a = write_kubeconfig(tmp_path / "a", {"one": (first.url, "t1-xxxx")}, "one")
        b = write_kubeconfig(tmp_path / "b", {"two": (second.url, "t2-xxxx")}, "two")
        monkeypatch.setenv("KUBECONFIG", f"{tmp_path / 'missing'}:{a}:{b}")
        assert KubeBackend().server == first.url
        assert KubeBackend(context="two").server == second.url
        with pytest.raises(LauncherError, match=r"no context 'three'; its contexts: one, two"):
            KubeBackend(context="three")


@pytest.mark.usefixtures("no_cluster_env")
def test_token_appears_in_no_error_message_and_no_log_record(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "wrong-" + TOKEN
    messages: list[str] = []
    with FakeApiServer(forbidden=("locked",), token=TOKEN) as fake:
        path = write_kubeconfig(
            tmp_path / "kubeconfig",
            {"good": (fake.url, TOKEN), "bad": (fake.url, wrong)},
            "good",
        )
        monkeypatch.setenv("KUBECONFIG", str(path))

        bad = KubeBackend(context="bad")
        with pytest.raises(LauncherError) as caught:
            bad.create_job(make_job("wq-t"))
        assert "401" in str(caught.value)
        assert "credentials of context 'bad'" in str(caught.value)
        messages.append(str(caught.value))

        good = KubeBackend()
        with pytest.raises(LauncherError) as caught:
            good.create_job(make_job("wq-t"), namespace="locked")
        messages.append(str(caught.value))
        good.create_job(make_job("wq-t"))
        with pytest.raises(LauncherError) as caught:
            good.create_job(make_job("wq-t"))
        messages.append(str(caught.value))
        # Every request carried the token, so it was there to leak.
        assert all(TOKEN in r.headers.get("authorization", "") for r in fake.requests)

    with pytest.raises(LauncherError) as caught:
        good.list_jobs("default")  # the server is gone now
    messages.append(str(caught.value))

    logged = [record.getMessage() for record in caplog.records]
    assert any("created Job default/wq-t" in line for line in logged)
    for text in messages + logged:
        assert TOKEN not in text
        assert wrong not in text
