"""The local engine: runs a Kubernetes Job's pods as processes on this machine.

``workqueue launch --backend local`` uses it to run the consumers' Job without a
cluster. It reads the same `V1Job` the cluster would get and applies the Job
controller's rules to local processes, so what works (and fails) here works
(and fails) alike there:

- **Image ignored.** A pod runs ``command + args`` of the Job's single
  container on this machine, in the caller's working directory, with the
  caller's environment plus the container's (see `local_env`). Nothing is
  pulled; volumes, resources and probes are ignored.
- **How many pods.** With ``completions`` set, at most ``min(parallelism,
  completions still needed)`` pods run at once; an Indexed Job runs each index
  ``0..completions-1`` until one pod of it succeeds, with
  ``JOB_COMPLETION_INDEX`` set. Without ``completions`` (the work-queue
  pattern), ``parallelism`` pods start, none starts once any pod exited 0,
  and the Job is Complete when one pod succeeded and all have ended.
- **Failures.** With restartPolicy OnFailure a failed container reruns in the
  same pod; with Never the pod fails and a new pod replaces it. Either waits
  first: 10 s, doubling per failure, at most 6 minutes (times ``backoff_scale``).
  The Job fails with BackoffLimitExceeded when more pods failed than
  ``backoffLimit``, or, for OnFailure, when the restarts of its running pods
  reach ``backoffLimit`` (the controller's own rule, which leaves an OnFailure
  Job one attempt fewer than a Never Job), DeadlineExceeded after
  ``activeDeadlineSeconds``, and PodFailurePolicy when a FailJob rule matches.
  Ignore rules replace the pod without counting it; FailIndex (with
  ``backoffLimitPerIndex``) gives up on the index.
- **Stopping pods.** SIGTERM, then SIGKILL after the pod's
  ``terminationGracePeriodSeconds`` (not scaled). `LocalJobEngine.disrupt`
  stops a pod the way a node drain does: its failure carries the
  DisruptionTarget condition that onPodConditions rules match.

The controller loop runs in the calling thread and polls every 50 ms; the
clock and the sleep are injectable. `stop` and `disrupt` may be called from
any thread, or from a signal handler.

Known differences from a cluster, beyond the image: pods share this machine's
host name (``socket.gethostname()``), only ``HOSTNAME`` is the pod's name; an
OnFailure container reruns after the Job's delays (a kubelet caps its own at
5 minutes and forgets them after 10 minutes of running); the back-off is
Job-wide even with backoffLimitPerIndex (a cluster delays each index on its
own); ignored failures add no delay; an OnFailure Job fails at the container
failure whose restart would reach the limit, where a cluster first waits out
the delay and starts that restart; a replacement pod starts only once the pod
it replaces has ended (podReplacementPolicy Failed).
"""

from __future__ import annotations

import collections
import logging
import os
import random
import shutil
import time
from collections.abc import Callable, Mapping
from typing import Any, Final

from kubernetes.client import V1Job

from workqueue.errors import LauncherError
from workqueue.launcher.local_env import (
    ObjectData,
    PodIdentity,
    command_line,
    container_env,
    process_env,
)
from workqueue.launcher.local_pod import LocalPod, OutputCallback, PodPhase, PodRecord, print_output
from workqueue.launcher.local_spec import DISRUPTION_TARGET, read_job
from workqueue.launcher.local_status import (
    EventCallback,
    EventKind,
    JobEvent,
    JobReason,
    JobResult,
)
from workqueue.launcher.local_tracker import JobTracker, backoff_delay

__all__ = [
    "EventKind",
    "JobEvent",
    "JobReason",
    "JobResult",
    "LocalJobEngine",
    "PodPhase",
    "PodRecord",
    "backoff_delay",
    "print_output",
    "run_job_locally",
]

log = logging.getLogger(__name__)

POLL_SECONDS: Final = 0.05
INDEX_KEY: Final = "batch.kubernetes.io/job-completion-index"
_NAME_ALPHABET: Final = "bcdfghjklmnpqrstvwxz2456789"  # the characters Kubernetes suffixes use


class LocalJobEngine:
    """Runs one Job locally; build it, then call `run` once.

    Arguments, all but `job` keyword-only:

    - `job`: the `kubernetes.client.V1Job` to run. It is checked here: a Job the
      API server would refuse, a missing secret or a command not found raise
      `LauncherError` before any process starts.
    - `secrets`, `config_maps`: the values of the secrets and ConfigMaps the
      container's env refers to, keyed by ``(object name, key)``.
    - `cwd`: the pods' working directory (default: the current one).
    - `env`: the base environment of every pod (default: ``os.environ``).
    - `backoff_scale`: multiplies every retry delay (tests use 0.01).
    - `on_output`: receives every output line of every pod, from reader
      threads (default: `print_output`, ``[pod-name] line`` on stderr).
    - `on_event`: receives a `JobEvent` at each step, in the calling thread;
      an exception it raises ends the run, after the pods were stopped.
    - `clock`, `sleep`: the time source and the pause between polls.
    """

    def __init__(
        self,
        job: V1Job,
        *,
        secrets: ObjectData | None = None,
        config_maps: ObjectData | None = None,
        cwd: str | os.PathLike[str] | None = None,
        env: Mapping[str, str] | None = None,
        backoff_scale: float = 1.0,
        on_output: OutputCallback = print_output,
        on_event: EventCallback | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if backoff_scale < 0:
            raise LauncherError(f"backoff_scale must not be negative, not {backoff_scale!r}")
        self.spec = read_job(job)
        self._secrets: ObjectData = dict(secrets or {})
        self._config_maps: ObjectData = dict(config_maps or {})
        self._cwd = os.fspath(cwd) if cwd is not None else os.getcwd()
        self._base_env = dict(os.environ if env is None else env)
        self._on_output = on_output
        self._on_event = on_event
        self._clock = clock
        self._sleep = sleep
        self._names = random.Random(self.spec.name)
        self._pods: list[LocalPod] = []
        self._snapshot: tuple[PodRecord, ...] = ()
        self._disruptions: collections.deque[str] = collections.deque()
        self._stop_requested = False
        self._ran = False
        self._started = 0.0
        self._tracker = JobTracker(self.spec, backoff_scale)
        self._finish_reported = False
        self._check_can_start()

    # -- the public face -------------------------------------------------------

    def run(self) -> JobResult:
        """Run the Job to its end and return how it ended; the pods are gone by then."""
        if self._ran:
            raise LauncherError(f"local Job {self.spec.name!r} already ran; build a new engine")
        self._ran = True
        self._started = self._clock()
        spec = self.spec
        log.info(
            "local Job %s starting: parallelism %d, completions %s%s, restartPolicy %s",
            spec.name,
            spec.parallelism,
            spec.completions,
            " (Indexed)" if spec.indexed else "",
            spec.restart_policy,
        )
        try:
            result = self._control()
        finally:
            self._abandon_pods()
        log.info(
            "local Job %s %s%s after %.1f s: %d succeeded, %d failed, %d restarts",
            spec.name,
            result.condition,
            f" ({result.reason})" if result.reason else "",
            result.wall_seconds,
            result.succeeded,
            result.failed,
            result.restarts,
        )
        return result

    def stop(self) -> None:
        """End the Job (reason Stopped): its pods get SIGTERM, then SIGKILL after the grace."""
        self._stop_requested = True

    def disrupt(self, pod_name: str) -> None:
        """Stop a pod as a node drain would; its failure carries DisruptionTarget.

        Takes effect at the next poll. Raises `LauncherError` if no such pod runs.
        """
        if not any(r.name == pod_name and r.phase is PodPhase.RUNNING for r in self._snapshot):
            raise LauncherError(f"local Job {self.spec.name!r} has no running pod {pod_name!r}")
        self._disruptions.append(pod_name)

    def pods(self) -> tuple[PodRecord, ...]:
        """A snapshot of every pod so far (safe to call from any thread)."""
        return self._snapshot

    # -- pods ------------------------------------------------------------------

    def _pod_identity(self, name: str, index: int | None) -> PodIdentity:
        labels = {**self.spec.labels, "batch.kubernetes.io/job-name": self.spec.name}
        labels["job-name"] = self.spec.name
        annotations = dict(self.spec.annotations)
        if index is not None:
            labels[INDEX_KEY] = annotations[INDEX_KEY] = str(index)
        return PodIdentity(name, self.spec.namespace, labels, annotations)

    def _pod_process(self, name: str, index: int | None) -> tuple[list[str], dict[str, str]]:
        kubelet = {"HOSTNAME": name}
        if index is not None:
            kubelet["JOB_COMPLETION_INDEX"] = str(index)
        defined = container_env(
            self.spec.container,
            self._pod_identity(name, index),
            secrets=self._secrets,
            config_maps=self._config_maps,
            kubelet=kubelet,
        )
        return command_line(self.spec.container, defined), process_env(self._base_env, defined)

    def _check_can_start(self) -> None:
        """Fail now, not in every pod, if the env cannot be resolved or the command is missing."""
        index = 0 if self.spec.indexed else None
        try:
            argv, env = self._pod_process(f"{self.spec.name}-check", index)
        except LauncherError as exc:
            raise LauncherError(f"local Job {self.spec.name!r}: {exc}") from exc
        program = argv[0]
        if os.sep in program:
            found = os.access(os.path.join(self._cwd, program), os.X_OK)
        else:
            found = shutil.which(program, path=env["PATH"]) is not None
        if not found:
            raise LauncherError(
                f"local Job {self.spec.name!r}: command {program!r} is not found on this "
                "machine (the local engine runs the container's command here; the image is "
                "ignored)"
            )

    def _new_pod(self, index: int | None, now: float) -> None:
        taken = {pod.name for pod in self._pods}
        while True:
            suffix = "".join(self._names.choice(_NAME_ALPHABET) for _ in range(5))
            parts = [self.spec.name] + ([str(index)] if index is not None else []) + [suffix]
            name = "-".join(parts)
            if name not in taken:
                break
        argv, env = self._pod_process(name, index)
        pod = LocalPod(
            name,
            index,
            argv=argv,
            env=env,
            cwd=self._cwd,
            on_output=self._on_output,
            created_at=now - self._started,
        )
        self._pods.append(pod)
        pod.start_container()
        self._emit(EventKind.POD_STARTED, pod, now)  # publishes the pid before any output
        pod.read_output()

    def _active(self) -> list[LocalPod]:
        return [pod for pod in self._pods if not pod.terminal]

    # -- the controller loop ---------------------------------------------------

    def _control(self) -> JobResult:
        tracker = self._tracker
        while True:
            now = self._clock()
            if self._stop_requested:
                tracker.decide("Failed", JobReason.STOPPED, "stopped by the caller")
            self._take_disruptions(now)
            for pod in self._active():
                code = pod.poll()
                if code is not None:
                    self._container_exited(pod, code, now)
                else:
                    pod.kill_due(now)
            tracker.check_deadline(now - self._started)
            tracker.check_done(self._active())
            if tracker.finish is not None:
                self._wind_down(now)
                if not self._active():
                    break
            else:
                self._restart_due(now)
                for index in tracker.pods_to_start(self._active(), now):
                    self._new_pod(index, now)
            self._publish()
            self._sleep(POLL_SECONDS)
        self._publish()
        assert tracker.finish is not None
        condition, reason, message = tracker.finish
        return JobResult(
            name=self.spec.name,
            condition=condition,
            reason=reason,
            message=message,
            succeeded=tracker.succeeded,
            failed=tracker.failed,
            restarts=sum(pod.restarts for pod in self._pods),
            pods=self._snapshot,
            completed_indexes=tuple(sorted(tracker.done_indexes)),
            failed_indexes=tuple(sorted(tracker.failed_indexes)),
            wall_seconds=self._clock() - self._started,
        )

    def _take_disruptions(self, now: float) -> None:
        while self._disruptions:
            name = self._disruptions.popleft()
            pod = next((p for p in self._pods if p.name == name and not p.terminal), None)
            if pod is None:
                log.warning("pod %s ended before it could be disrupted", name)
                continue
            pod.disrupted = True
            pod.conditions.append(DISRUPTION_TARGET)
            if pod.pid is not None:
                pod.terminate(now, self.spec.grace_seconds)
                self._emit(EventKind.POD_TERMINATING, pod, now, "disrupted")
            else:  # between two runs of an OnFailure container: the pod just goes
                self._tracker.pod_failed(pod, pod.exit_codes[-1] if pod.exit_codes else 0, now)
                self._end_pod(pod, PodPhase.FAILED, now)

    def _container_exited(self, pod: LocalPod, code: int, now: float) -> None:
        tracker = self._tracker
        self._emit(EventKind.CONTAINER_EXITED, pod, now, f"exit code {code}")
        if code == 0:
            tracker.pod_succeeded(pod)
            self._end_pod(pod, PodPhase.SUCCEEDED, now)
        elif tracker.finish is not None:  # stopped because the Job ended
            tracker.pod_terminated()
            self._end_pod(pod, PodPhase.FAILED, now)
        elif self.spec.restart_policy == "OnFailure" and not pod.disrupted:
            pod.restart_at = tracker.container_failed(pod, self._active(), now)
        else:
            tracker.pod_failed(pod, code, now)
            self._end_pod(pod, PodPhase.FAILED, now)

    def _end_pod(self, pod: LocalPod, phase: PodPhase, now: float) -> None:
        pod.phase = phase
        pod.finished_at = now - self._started
        pod.restart_at = None
        self._emit(EventKind.POD_FINISHED, pod, now, phase.value)

    def _wind_down(self, now: float) -> None:
        """The Job has ended: stop every pod still there, gracefully."""
        if not self._finish_reported:
            self._finish_reported = True
            condition, reason, message = self._tracker.finish or ("Failed", None, "")
            self._emit(EventKind.JOB_FINISHED, None, now, f"{condition} {reason or ''}: {message}")
        for pod in self._active():
            if pod.pid is None:  # waiting for an OnFailure restart: nothing runs, it just goes
                self._tracker.pod_terminated()
                self._end_pod(pod, PodPhase.FAILED, now)
            elif pod.kill_at is None:
                pod.terminate(now, self.spec.grace_seconds)
                self._emit(EventKind.POD_TERMINATING, pod, now, "the Job ended")

    def _restart_due(self, now: float) -> None:
        for pod in self._active():
            if pod.restart_at is not None and now >= pod.restart_at:
                pod.restarts += 1
                pod.start_container()
                self._emit(EventKind.CONTAINER_RESTARTED, pod, now)
                pod.read_output()

    # -- reporting and clean-up ------------------------------------------------

    def _publish(self) -> None:
        self._snapshot = tuple(pod.record() for pod in self._pods)

    def _emit(self, kind: EventKind, pod: LocalPod | None, now: float, message: str = "") -> None:
        self._publish()
        if pod is not None:
            log.debug("local Job %s: %s %s %s", self.spec.name, kind.value, pod.name, message)
        if self._on_event is not None:
            event = JobEvent(
                kind=kind,
                pod=pod.record() if pod is not None else None,
                active=len(self._active()),
                succeeded=self._tracker.succeeded,
                failed=self._tracker.failed,
                at=now - self._started,
                message=message,
            )
            self._on_event(event)

    def _abandon_pods(self) -> None:
        """After an exception (Ctrl-C included): stop whatever still runs, gracefully if we can."""
        alive = [pod for pod in self._pods if pod.pid is not None]
        if not alive:
            return
        log.warning("local Job %s: stopping %d pods left running", self.spec.name, len(alive))
        try:
            now = self._clock()
            for pod in alive:
                pod.terminate(now, self.spec.grace_seconds)
            while any(pod.pid is not None for pod in alive):
                now = self._clock()
                for pod in alive:
                    if pod.poll() is None:
                        pod.kill_due(now)
                self._sleep(POLL_SECONDS)
        finally:
            now = self._clock()
            for pod in alive:
                pod.kill_now()
                pod.reap()
                if not pod.terminal:
                    pod.phase = PodPhase.FAILED
                    pod.finished_at = now - self._started
            self._publish()


def run_job_locally(job: V1Job, **options: Any) -> JobResult:
    """Build a `LocalJobEngine` for `job` with `options` and run it."""
    return LocalJobEngine(job, **options).run()
