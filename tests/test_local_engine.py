"""The local engine runs a Job's pods as real processes, with the Job controller's rules.

Every Job here runs `python -c` scripts in tmp_path (the pods' working
directory), which coordinate through small files: an ordinal counter under
flock tells each pod which role it plays, whichever order they start in.
Retry delays are scaled down with `backoff_scale`.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from workqueue.errors import EXIT_LAUNCHER, LauncherError
from workqueue.launcher.local import (
    EventKind,
    JobEvent,
    JobReason,
    LocalJobEngine,
    PodPhase,
    backoff_delay,
)
from workqueue.launcher.local_env import expand
from workqueue.launcher.local_spec import ExitCodeRequirement, FailureRule, policy_action

ORDINAL = """
import fcntl, os, signal, sys, time
def ordinal():
    with open("ordinal", "a+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        f.seek(0)
        n = len(f.read()) + 1
        f.write("x")
    return n
"""


def make_job(
    script: str,
    *,
    name: str = "t",
    parallelism: int | None = None,
    completions: int | None = None,
    restart: str = "Never",
    backoff_limit: int | None = None,
    deadline: int | None = None,
    indexed: bool = False,
    rules: list[client.V1PodFailurePolicyRule] | None = None,
    per_index: int | None = None,
    grace: int | None = None,
    env: list[client.V1EnvVar] | None = None,
    env_from: list[client.V1EnvFromSource] | None = None,
    args: list[str] | None = None,
) -> client.V1Job:
    container = client.V1Container(
        name="main",
        image="registry.example/ignored:1",
        command=[sys.executable, "-c", textwrap.dedent(script)],
        args=args,
        env=env,
        env_from=env_from,
    )
    return client.V1Job(
        metadata=client.V1ObjectMeta(name=name, namespace="batch"),
        spec=client.V1JobSpec(
            parallelism=parallelism,
            completions=completions,
            completion_mode="Indexed" if indexed else None,
            backoff_limit=backoff_limit,
            backoff_limit_per_index=per_index,
            active_deadline_seconds=deadline,
            pod_failure_policy=client.V1PodFailurePolicy(rules=rules) if rules else None,
            template=client.V1PodTemplateSpec(
                spec=client.V1PodSpec(
                    restart_policy=restart,
                    termination_grace_period_seconds=grace,
                    containers=[container],
                )
            ),
        ),
    )


class Recorder:
    """Collects events and output lines; `engine` is set once built, for callbacks."""

    def __init__(self) -> None:
        self.events: list[JobEvent] = []
        self.lines: list[tuple[str, str, str]] = []
        self.engine: LocalJobEngine | None = None
        self._lock = threading.Lock()

    def on_event(self, event: JobEvent) -> None:
        self.events.append(event)

    def on_output(self, pod: str, stream: str, line: str) -> None:
        with self._lock:
            self.lines.append((pod, stream, line))

    def of(self, kind: EventKind) -> list[JobEvent]:
        return [e for e in self.events if e.kind is kind]

    def max_active(self) -> int:
        return max(e.active for e in self.events)


def engine_for(job: client.V1Job, tmp_path: Path, rec: Recorder, **options: Any) -> LocalJobEngine:
    options.setdefault("backoff_scale", 0.01)
    engine = LocalJobEngine(
        job, cwd=tmp_path, on_event=rec.on_event, on_output=rec.on_output, **options
    )
    rec.engine = engine
    return engine


FAIL_TWICE = (
    ORDINAL
    + """
n = ordinal()
print(f"attempt {n}")
sys.exit(0 if n == 3 else 1)
"""
)


def test_on_failure_reruns_the_failed_container_in_the_same_pod(tmp_path: Path) -> None:
    rec = Recorder()
    job = make_job(FAIL_TWICE, completions=1, restart="OnFailure")
    result = engine_for(job, tmp_path, rec).run()

    assert result.condition == "Complete" and result.reason is None
    (pod,) = result.pods
    assert pod.exit_codes == (1, 1, 0)
    assert pod.restarts == 2 and result.restarts == 2
    assert pod.phase is PodPhase.SUCCEEDED
    assert (result.succeeded, result.failed) == (1, 0)
    restarted = rec.of(EventKind.CONTAINER_RESTARTED)
    assert [e.pod.name for e in restarted if e.pod] == [pod.name, pod.name]
    pids = {e.pod.pid for e in [*rec.of(EventKind.POD_STARTED), *restarted] if e.pod}
    assert len(pids) == 3  # a new process each time, in the same pod
    exits = rec.of(EventKind.CONTAINER_EXITED)
    # 10 s, then 20 s, scaled by 0.01: each rerun waits its back-off delay.
    assert restarted[0].at - exits[0].at >= 0.1
    assert restarted[1].at - exits[1].at >= 0.2


def test_never_replaces_each_failed_pod_with_a_new_pod(tmp_path: Path) -> None:
    rec = Recorder()
    result = engine_for(make_job(FAIL_TWICE, completions=1), tmp_path, rec).run()

    assert result.condition == "Complete"
    first, second, third = result.pods
    assert len({first.name, second.name, third.name}) == 3
    assert [p.phase for p in result.pods] == [PodPhase.FAILED, PodPhase.FAILED, PodPhase.SUCCEEDED]
    assert [p.exit_codes for p in result.pods] == [(1,), (1,), (0,)]
    assert all(p.restarts == 0 for p in result.pods)
    assert (result.succeeded, result.failed) == (1, 2)
    assert first.finished_at is not None and second.finished_at is not None
    assert second.started_at - first.finished_at >= 0.1
    assert third.started_at - second.finished_at >= 0.2


ALWAYS_FAIL = "import sys; sys.exit(3)"


def test_backoff_limit_exceeded_fails_the_job_after_limit_plus_one_failed_pods(
    tmp_path: Path,
) -> None:
    rec = Recorder()
    result = engine_for(make_job(ALWAYS_FAIL, backoff_limit=2), tmp_path, rec).run()

    assert result.condition == "Failed"
    assert result.reason == JobReason.BACKOFF_LIMIT_EXCEEDED
    assert f"{result.reason}" == "BackoffLimitExceeded"  # the controller's own reason
    assert result.failed == 3 and len(result.pods) == 3
    assert all(p.exit_codes == (3,) for p in result.pods)
    assert "backoffLimit 2" in result.message


def test_on_failure_backoff_limit_counts_restarts_as_the_controller_does(tmp_path: Path) -> None:
    # The controller fails an OnFailure Job once the running pods' restarts reach
    # backoffLimit: with a limit of 2, the second container failure ends it.
    rec = Recorder()
    job = make_job(ALWAYS_FAIL, restart="OnFailure", backoff_limit=2)
    result = engine_for(job, tmp_path, rec).run()

    assert result.reason == JobReason.BACKOFF_LIMIT_EXCEEDED
    (pod,) = result.pods
    assert pod.exit_codes == (3, 3) and pod.restarts == 1
    assert pod.phase is PodPhase.FAILED and result.failed == 1


def test_backoff_delay_is_ten_seconds_doubling_up_to_six_minutes() -> None:
    assert backoff_delay(0) == 0
    assert [backoff_delay(n) for n in (1, 2, 3, 4, 5, 6, 7, 30)] == [
        10,
        20,
        40,
        80,
        160,
        320,
        360,
        360,
    ]
    assert backoff_delay(2, scale=0.01) == pytest.approx(0.2)


def test_active_deadline_terminates_running_pods_and_fails_the_job(tmp_path: Path) -> None:
    # Index 0 dies of SIGTERM; index 1 ignores it and is killed after the 1 s grace period.
    script = """
    import os, signal, time
    if os.environ["JOB_COMPLETION_INDEX"] == "1":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    print("ready", flush=True)
    time.sleep(60)
    """
    rec = Recorder()
    job = make_job(script, completions=2, parallelism=2, indexed=True, deadline=2, grace=1)
    result = engine_for(job, tmp_path, rec).run()

    assert result.condition == "Failed" and result.reason == JobReason.DEADLINE_EXCEEDED
    by_index = {p.index: p for p in result.pods}
    assert by_index[0].exit_codes == (128 + signal.SIGTERM,)
    assert by_index[1].exit_codes == (128 + signal.SIGKILL,)
    assert all(p.phase is PodPhase.FAILED and p.pid is None for p in result.pods)
    assert result.failed == 2
    assert by_index[1].finished_at is not None and by_index[1].finished_at >= 3.0
    assert result.wall_seconds < 15
    assert len(rec.of(EventKind.POD_TERMINATING)) == 2


def test_indexed_job_runs_each_index_once_with_its_completion_index(tmp_path: Path) -> None:
    script = """
    import os, time
    index = os.environ["JOB_COMPLETION_INDEX"]
    # O_EXCL: a second run of the same index would fail here.
    fd = os.open(f"index-{index}", os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    os.write(fd, os.environ["HOSTNAME"].encode())
    os.close(fd)
    time.sleep(0.3)
    """
    rec = Recorder()
    job = make_job(script, completions=3, parallelism=2, indexed=True)
    result = engine_for(job, tmp_path, rec).run()

    assert result.condition == "Complete"
    assert result.completed_indexes == (0, 1, 2)
    assert sorted(p.index for p in result.pods if p.index is not None) == [0, 1, 2]
    for pod in result.pods:
        assert pod.name.startswith(f"t-{pod.index}-")
        assert (tmp_path / f"index-{pod.index}").read_text() == pod.name
    assert rec.max_active() == 2


def test_fixed_completions_never_run_more_pods_than_parallelism(tmp_path: Path) -> None:
    script = """
    import os, time
    os.makedirs("running", exist_ok=True)
    me = os.path.join("running", os.environ["HOSTNAME"])
    open(me, "w").close()
    with open("seen", "a") as f:
        f.write(f"{len(os.listdir('running'))}\\n")
    time.sleep(0.4)
    os.remove(me)
    """
    rec = Recorder()
    result = engine_for(make_job(script, completions=5, parallelism=2), tmp_path, rec).run()

    assert result.condition == "Complete" and result.succeeded == 5
    assert len(result.pods) == 5  # no pod beyond the completions needed
    seen = [int(n) for n in (tmp_path / "seen").read_text().split()]
    assert max(seen) == 2  # the pods themselves never saw a third one running
    assert rec.max_active() == 2


def test_work_queue_pattern_starts_no_pod_after_the_first_success(tmp_path: Path) -> None:
    # Roles by ordinal: 1 fails at once (before any success, so it is replaced),
    # 2 and 4 succeed, 3 fails after a success (so it is not replaced).
    script = (
        ORDINAL
        + """
plan = {1: (0.0, 1), 2: (1.5, 0), 3: (2.2, 1), 4: (1.0, 0)}
delay, code = plan.get(ordinal(), (0.0, 9))
time.sleep(delay)
sys.exit(code)
"""
    )
    rec = Recorder()
    job = make_job(script, parallelism=3)
    result = engine_for(job, tmp_path, rec, backoff_scale=0.05).run()

    assert result.condition == "Complete", result.message
    assert len(result.pods) == 4
    assert (result.succeeded, result.failed) == (2, 2)
    ends = {p.name: p.finished_at for p in result.pods}
    assert None not in ends.values()
    first_success = min(p.finished_at or 0 for p in result.pods if p.phase is PodPhase.SUCCEEDED)
    assert all(p.started_at < first_success for p in result.pods)
    last_failure = max(p.finished_at or 0 for p in result.pods if p.phase is PodPhase.FAILED)
    assert last_failure > first_success  # a failure after the first success: not replaced
    (finished,) = rec.of(EventKind.JOB_FINISHED)
    assert finished.at >= max(p.finished_at or 0 for p in result.pods)
    assert finished.active == 0


def fail_job_on(code: int) -> client.V1PodFailurePolicyRule:
    return client.V1PodFailurePolicyRule(
        action="FailJob",
        on_exit_codes=client.V1PodFailurePolicyOnExitCodesRequirement(
            container_name="main", operator="In", values=[code]
        ),
    )


def test_fail_job_rule_on_exit_code_fails_the_job_at_once(tmp_path: Path) -> None:
    script = (
        ORDINAL
        + """
if ordinal() == 1:
    sys.exit(2)
time.sleep(60)
"""
    )
    rec = Recorder()
    job = make_job(script, completions=2, parallelism=2, rules=[fail_job_on(2)], grace=5)
    result = engine_for(job, tmp_path, rec).run()

    assert result.condition == "Failed" and result.reason == JobReason.POD_FAILURE_POLICY
    assert len(result.pods) == 2  # neither replaced nor retried
    by_code = {p.exit_codes: p for p in result.pods}
    assert by_code[(2,)].policy_action == "FailJob"
    assert (128 + signal.SIGTERM,) in by_code  # the other pod was terminated
    assert "exit code 2" in result.message
    assert result.wall_seconds < 10


SLEEP_FIRST = (
    ORDINAL
    + """
if ordinal() == 1:
    print("ready", flush=True)
    time.sleep(60)
"""
)

IGNORE_DISRUPTION = client.V1PodFailurePolicyRule(
    action="Ignore",
    on_pod_conditions=[client.V1PodFailurePolicyOnPodConditionsPattern(type="DisruptionTarget")],
)


def disrupt_when_ready(rec: Recorder) -> Any:
    def on_output(pod: str, stream: str, line: str) -> None:
        rec.on_output(pod, stream, line)
        if line == "ready" and rec.engine is not None:
            rec.engine.disrupt(pod)

    return on_output


def test_ignore_rule_on_disruption_replaces_the_pod_without_counting_it(tmp_path: Path) -> None:
    rec = Recorder()
    # backoffLimit 0: one counted failure would fail the Job.
    job = make_job(
        SLEEP_FIRST, completions=1, backoff_limit=0, rules=[IGNORE_DISRUPTION], deadline=30
    )
    engine = LocalJobEngine(
        job,
        cwd=tmp_path,
        backoff_scale=0.01,
        on_event=rec.on_event,
        on_output=disrupt_when_ready(rec),
    )
    rec.engine = engine
    result = engine.run()

    assert result.condition == "Complete", result.message
    disrupted, replacement = result.pods
    assert disrupted.conditions == ("DisruptionTarget",)
    assert disrupted.policy_action == "Ignore"
    assert disrupted.exit_codes == (128 + signal.SIGTERM,)
    assert replacement.phase is PodPhase.SUCCEEDED
    assert result.failed == 0


def test_disruption_without_a_policy_counts_as_a_failure(tmp_path: Path) -> None:
    rec = Recorder()
    job = make_job(SLEEP_FIRST, completions=1, backoff_limit=0, deadline=30)
    engine = LocalJobEngine(
        job, cwd=tmp_path, on_event=rec.on_event, on_output=disrupt_when_ready(rec)
    )
    rec.engine = engine
    result = engine.run()

    assert result.reason == JobReason.BACKOFF_LIMIT_EXCEEDED
    (pod,) = result.pods
    assert pod.conditions == ("DisruptionTarget",) and result.failed == 1


def test_fail_index_gives_up_on_that_index_only(tmp_path: Path) -> None:
    script = """
    import os, sys
    sys.exit(5 if os.environ["JOB_COMPLETION_INDEX"] == "1" else 0)
    """
    rule = client.V1PodFailurePolicyRule(
        action="FailIndex",
        on_exit_codes=client.V1PodFailurePolicyOnExitCodesRequirement(operator="In", values=[5]),
    )
    rec = Recorder()
    job = make_job(script, completions=3, parallelism=3, indexed=True, per_index=1, rules=[rule])
    result = engine_for(job, tmp_path, rec).run()

    assert result.condition == "Failed" and result.reason == JobReason.FAILED_INDEXES
    assert result.failed_indexes == (1,) and result.completed_indexes == (0, 2)
    assert len(result.pods) == 3  # index 1 was not retried, though its limit allowed one more


def test_a_pod_killed_from_outside_fails_and_is_replaced(tmp_path: Path) -> None:
    # How a test finds a running pod's process: its record's pid.
    rec = Recorder()

    def on_output(pod: str, stream: str, line: str) -> None:
        if line == "ready" and rec.engine is not None:
            (record,) = [r for r in rec.engine.pods() if r.name == pod]
            assert record.pid is not None
            os.kill(record.pid, signal.SIGKILL)

    job = make_job(SLEEP_FIRST, completions=1, deadline=30)
    engine = LocalJobEngine(
        job, cwd=tmp_path, backoff_scale=0.01, on_event=rec.on_event, on_output=on_output
    )
    rec.engine = engine
    result = engine.run()

    assert result.condition == "Complete"
    killed, replacement = result.pods
    assert killed.exit_codes == (128 + signal.SIGKILL,) and killed.conditions == ()
    assert replacement.phase is PodPhase.SUCCEEDED and result.failed == 1


def test_stop_terminates_the_pods_gracefully(tmp_path: Path) -> None:
    ready = threading.Event()

    def on_output(pod: str, stream: str, line: str) -> None:
        if line == "ready":
            ready.set()

    script = "import time; print('ready', flush=True); time.sleep(60)"
    engine = LocalJobEngine(
        make_job(script, parallelism=2, grace=5), cwd=tmp_path, on_output=on_output
    )
    results: list[Any] = []
    runner = threading.Thread(target=lambda: results.append(engine.run()))
    runner.start()
    assert ready.wait(20)
    engine.stop()
    runner.join(20)
    assert not runner.is_alive()

    (result,) = results
    assert result.condition == "Failed" and result.reason == JobReason.STOPPED
    assert [p.exit_codes for p in result.pods] == [(128 + signal.SIGTERM,)] * 2
    assert result.wall_seconds < 15


def test_ctrl_c_in_the_engine_stops_its_pods_then_propagates(tmp_path: Path) -> None:
    # The pods run in sessions of their own: the SIGINT reaches only the engine,
    # which then stops them gracefully before letting KeyboardInterrupt through.
    def on_output(pod: str, stream: str, line: str) -> None:
        if line == "ready":
            os.kill(os.getpid(), signal.SIGINT)

    script = "import time; print('ready', flush=True); time.sleep(60)"
    engine = LocalJobEngine(make_job(script, grace=5), cwd=tmp_path, on_output=on_output)
    # A shell starts background commands with SIGINT ignored: make sure Python raises here.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt):
            engine.run()
    finally:
        signal.signal(signal.SIGINT, previous)

    (pod,) = engine.pods()
    assert pod.exit_codes == (128 + signal.SIGTERM,) and pod.pid is None


def test_env_resolves_values_secrets_config_maps_and_pod_fields(tmp_path: Path) -> None:
    script = """
    import json, os, shutil, sys
    names = ["PLAIN", "EXPANDED", "REDIS_PASSWORD", "OPTIONAL", "POD", "NS", "JOB",
             "CFG_QUEUE", "BASE", "HOSTNAME"]
    print(json.dumps({
        "env": {n: os.environ.get(n) for n in names},
        "argv": sys.argv[1:],
        "cwd": os.getcwd(),
        "workqueue": shutil.which("workqueue"),
    }))
    """
    env = [
        client.V1EnvVar(name="PLAIN", value="a"),
        client.V1EnvVar(name="EXPANDED", value="$(PLAIN)-$$(PLAIN)-$(NOPE)"),
        client.V1EnvVar(
            name="REDIS_PASSWORD",
            value_from=client.V1EnvVarSource(
                secret_key_ref=client.V1SecretKeySelector(name="redis", key="password")
            ),
        ),
        client.V1EnvVar(
            name="OPTIONAL",
            value_from=client.V1EnvVarSource(
                secret_key_ref=client.V1SecretKeySelector(name="other", key="k", optional=True)
            ),
        ),
        client.V1EnvVar(
            name="POD",
            value_from=client.V1EnvVarSource(
                field_ref=client.V1ObjectFieldSelector(field_path="metadata.name")
            ),
        ),
        client.V1EnvVar(
            name="NS",
            value_from=client.V1EnvVarSource(
                field_ref=client.V1ObjectFieldSelector(field_path="metadata.namespace")
            ),
        ),
        client.V1EnvVar(
            name="JOB",
            value_from=client.V1EnvVarSource(
                field_ref=client.V1ObjectFieldSelector(
                    field_path="metadata.labels['batch.kubernetes.io/job-name']"
                )
            ),
        ),
    ]
    env_from = [
        client.V1EnvFromSource(
            prefix="CFG_", config_map_ref=client.V1ConfigMapEnvSource(name="settings")
        )
    ]
    job = make_job(script, completions=1, env=env, env_from=env_from, args=["$(PLAIN)", "$$x"])
    rec = Recorder()
    engine = engine_for(
        job,
        tmp_path,
        rec,
        secrets={("redis", "password"): "s3cret-value"},
        config_maps={("settings", "QUEUE"): "jobs"},
        env={"PATH": "/usr/bin:/bin", "BASE": "b"},
    )
    result = engine.run()

    assert result.condition == "Complete"
    (pod,) = result.pods
    (stdout,) = [line for p, stream, line in rec.lines if stream == "stdout"]
    seen = json.loads(stdout)
    assert seen["env"] == {
        "PLAIN": "a",
        "EXPANDED": "a-$(PLAIN)-$(NOPE)",
        "REDIS_PASSWORD": "s3cret-value",
        "OPTIONAL": None,
        "POD": pod.name,
        "NS": "batch",
        "JOB": "t",
        "CFG_QUEUE": "jobs",
        "BASE": "b",
        "HOSTNAME": pod.name,
    }
    assert seen["argv"] == ["a", "$x"]
    assert Path(seen["cwd"]) == tmp_path.resolve()
    assert seen["workqueue"] == str(Path(sys.executable).parent / "workqueue")
    assert "s3cret-value" not in repr(result) + repr(rec.events)


def secret_job() -> client.V1Job:
    env = [
        client.V1EnvVar(
            name="REDIS_PASSWORD",
            value_from=client.V1EnvVarSource(
                secret_key_ref=client.V1SecretKeySelector(name="redis", key="password")
            ),
        )
    ]
    return make_job("pass", completions=1, env=env)


def test_missing_secret_refuses_the_job_before_any_pod_starts(tmp_path: Path) -> None:
    rec = Recorder()
    with pytest.raises(LauncherError) as caught:
        engine_for(secret_job(), tmp_path, rec, secrets={("redis", "user"): "hidden-user"})

    message = str(caught.value)
    assert "REDIS_PASSWORD" in message and "'redis'" in message and "'password'" in message
    assert "hidden-user" not in message
    assert caught.value.exit_code == EXIT_LAUNCHER
    assert rec.events == []


def test_output_lines_are_printed_with_the_pod_name(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    script = """
    import sys
    print("to stdout", flush=True)
    print("to stderr", file=sys.stderr, flush=True)
    sys.stdout.write("no newline at the end")
    """
    result = LocalJobEngine(make_job(script, completions=1), cwd=tmp_path).run()

    (pod,) = result.pods
    err = capsys.readouterr().err.splitlines()
    for line in ("to stdout", "to stderr", "no newline at the end"):
        assert f"[{pod.name}] {line}" in err


def test_command_not_found_is_refused(tmp_path: Path) -> None:
    job: Any = make_job("pass")
    job.spec.template.spec.containers[0].command = ["no-such-command-here"]
    with pytest.raises(LauncherError, match="'no-such-command-here' is not found"):
        LocalJobEngine(job, cwd=tmp_path)


def _change(**fields: Any) -> Any:
    """Set dotted paths of a Job (``containers.0`` is the first container)."""

    def change(job: Any) -> None:
        for path, value in fields.items():
            *parents, last = path.split("__")
            target = job
            for part in parents:
                target = target[0] if part == "0" else getattr(target, part)
            setattr(target, last, value)

    return change


POD = "spec__template__spec__"


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (_change(**{POD + "restart_policy": "Always"}), "restartPolicy: a Job's pods need"),
        (_change(**{POD + "restart_policy": None}), "restartPolicy: a Job's pods need"),
        (
            _change(spec__completion_mode="Indexed", spec__completions=None),
            "an Indexed Job needs completions",
        ),
        (_change(spec__parallelism=0), "parallelism: 0 would run no pod"),
        (_change(spec__backoff_limit=-1), "backoffLimit: must be a non-negative integer"),
        (_change(**{POD + "containers__0__command": None}), "has no command"),
        (
            _change(**{POD + "containers": [client.V1Container(name="a", command=["x"])] * 2}),
            "exactly one container",
        ),
        (
            _change(
                **{POD + "restart_policy": "OnFailure"},
                spec__pod_failure_policy=client.V1PodFailurePolicy(rules=[fail_job_on(2)]),
            ),
            "podFailurePolicy: needs restartPolicy Never",
        ),
        (
            _change(
                spec__pod_failure_policy=client.V1PodFailurePolicy(
                    rules=[client.V1PodFailurePolicyRule(action="Count")]
                )
            ),
            "set exactly one of onExitCodes and onPodConditions",
        ),
    ],
)
def test_invalid_jobs_are_refused_naming_the_field(
    tmp_path: Path, change: Any, expected: str
) -> None:
    job = make_job("pass", completions=1)
    LocalJobEngine(job, cwd=tmp_path)  # valid as built
    change(job)
    with pytest.raises(LauncherError, match=expected) as caught:
        LocalJobEngine(job, cwd=tmp_path)
    assert str(caught.value).startswith("Job 't': ")


def test_fail_index_needs_backoff_limit_per_index(tmp_path: Path) -> None:
    rule = client.V1PodFailurePolicyRule(
        action="FailIndex",
        on_exit_codes=client.V1PodFailurePolicyOnExitCodesRequirement(operator="In", values=[5]),
    )
    job = make_job("pass", completions=2, indexed=True, rules=[rule])
    with pytest.raises(LauncherError, match="FailIndex needs backoffLimitPerIndex"):
        LocalJobEngine(job, cwd=tmp_path)


def test_expand_follows_the_kubernetes_rules() -> None:
    variables = {"A": "1", "B": "$(A)"}
    assert expand("$(A)/$(B)", variables) == "1/$(A)"  # values are not expanded twice
    assert expand("$$(A) $$ $", variables) == "$(A) $ $"
    assert expand("$(MISSING) $(A", variables) == "$(MISSING) $(A"
    assert expand("cost: $5", variables) == "cost: $5"


def test_failure_policy_rules_match_in_order_and_skip_exit_code_zero() -> None:
    disrupted = frozenset({("DisruptionTarget", "True")})
    rules = (
        FailureRule("Ignore", on_pod_conditions=(("DisruptionTarget", "True"),)),
        FailureRule("FailJob", on_exit_codes=ExitCodeRequirement("In", frozenset({42}))),
        FailureRule("Count", on_exit_codes=ExitCodeRequirement("NotIn", frozenset({1}), "other")),
        FailureRule("FailJob", on_exit_codes=ExitCodeRequirement("NotIn", frozenset({1}))),
    )
    assert policy_action(rules, "main", 42, disrupted) == ("Ignore", 0)
    assert policy_action(rules, "main", 42, frozenset()) == ("FailJob", 1)
    assert policy_action(rules, "main", 7, frozenset()) == ("FailJob", 3)  # rule 2 is for "other"
    assert policy_action(rules, "main", 1, frozenset()) == ("Count", None)
    assert not ExitCodeRequirement("NotIn", frozenset({1})).matches("main", 0)
