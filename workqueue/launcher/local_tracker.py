"""The Job controller's rules, applied to the local engine's pods.

A `JobTracker` holds what a Job's status holds (succeeded and failed counts,
completed and failed indexes, the back-off state, the final condition) and
answers the controller's questions: what a failure means, whether the Job is
over, and how many pods (which indexes) to start now. It starts and stops
nothing itself: `local.LocalJobEngine` acts on its answers.
"""

from __future__ import annotations

import collections
from typing import Final

from workqueue.launcher.local_pod import LocalPod
from workqueue.launcher.local_spec import LocalJobSpec, policy_action
from workqueue.launcher.local_status import JobCondition, JobReason

BACKOFF_BASE_SECONDS: Final = 10.0
BACKOFF_MAX_SECONDS: Final = 360.0


def backoff_delay(failures: int, scale: float = 1.0) -> float:
    """The wait before the next attempt after `failures` consecutive failures.

    10 s after the first, doubling with each further one, at most 6 minutes;
    then multiplied by `scale`.
    """
    if failures <= 0:
        return 0.0
    return min(BACKOFF_BASE_SECONDS * 2.0 ** (failures - 1), BACKOFF_MAX_SECONDS) * scale


class JobTracker:
    """A Job's status, and the controller's decisions on it."""

    def __init__(self, spec: LocalJobSpec, backoff_scale: float) -> None:
        self.spec = spec
        self.succeeded = 0
        self.failed = 0
        self.done_indexes: set[int] = set()
        self.failed_indexes: set[int] = set()
        self.finish: tuple[JobCondition, JobReason | None, str] | None = None
        self._scale = backoff_scale
        self._any_success = False
        self._failures_since_success = 0
        self._last_failure_at = 0.0
        self._index_failures: collections.Counter[int] = collections.Counter()

    def decide(self, condition: JobCondition, reason: JobReason | None, message: str) -> None:
        if self.finish is None:
            self.finish = (condition, reason, message)

    # -- what an exit means ----------------------------------------------------

    def pod_succeeded(self, pod: LocalPod) -> None:
        self.succeeded += 1
        self._any_success = True
        self._failures_since_success = 0
        if pod.index is not None:
            self.done_indexes.add(pod.index)

    def pod_terminated(self) -> None:
        """A pod stopped because the Job ended: counted as failed, nothing more."""
        self.failed += 1

    def container_failed(self, pod: LocalPod, active: list[LocalPod], now: float) -> float | None:
        """restartPolicy OnFailure: when to rerun the container, or None if the Job failed.

        The controller sums ``restartCount`` over the running pods and fails the
        Job when that sum reaches backoffLimit (exceeds it, for a limit of 0);
        the restart this failure asks for would add one.
        """
        pod.counted_failures += 1
        limit = self.spec.backoff_limit
        restarts = sum(p.restarts for p in active) + 1
        if restarts > limit if limit == 0 else restarts >= limit:
            message = f"the restarts of running pods reached backoffLimit {limit}"
            self.decide("Failed", JobReason.BACKOFF_LIMIT_EXCEEDED, message)
            return None
        return now + backoff_delay(pod.counted_failures, self._scale)

    def pod_failed(self, pod: LocalPod, code: int, now: float) -> None:
        """A pod ended in failure: apply the podFailurePolicy, count it, check the limits."""
        spec = self.spec
        action, rule = "Count", None
        if spec.failure_rules:
            conditions = frozenset((c, "True") for c in pod.conditions)
            action, rule = policy_action(spec.failure_rules, spec.container.name, code, conditions)
            pod.policy_action = action
        if action == "Ignore":  # not counted, and replaced without delay
            return
        self.failed += 1
        self._failures_since_success += 1
        self._last_failure_at = now
        if action == "FailJob":
            message = (
                f"container {spec.container.name!r} of pod {pod.name!r} failed with exit code "
                f"{code}, which podFailurePolicy rule {rule} answers with FailJob"
            )
            self.decide("Failed", JobReason.POD_FAILURE_POLICY, message)
            return
        per_index = spec.backoff_limit_per_index
        if pod.index is not None and per_index is not None:
            self._index_failures[pod.index] += 1
            if action == "FailIndex" or self._index_failures[pod.index] > per_index:
                self.failed_indexes.add(pod.index)
            most = spec.max_failed_indexes
            if most is not None and len(self.failed_indexes) > most:
                message = f"more than maxFailedIndexes ({most}) indexes failed"
                self.decide("Failed", JobReason.MAX_FAILED_INDEXES_EXCEEDED, message)
                return
        if self.failed > spec.backoff_limit:
            message = f"{self.failed} pods failed, more than backoffLimit {spec.backoff_limit}"
            self.decide("Failed", JobReason.BACKOFF_LIMIT_EXCEEDED, message)

    # -- whether the Job is over -----------------------------------------------

    def check_deadline(self, elapsed: float) -> None:
        deadline = self.spec.active_deadline_seconds
        if deadline is not None and elapsed >= deadline:
            message = f"the Job ran longer than activeDeadlineSeconds ({deadline} s)"
            self.decide("Failed", JobReason.DEADLINE_EXCEEDED, message)

    def check_done(self, active: list[LocalPod]) -> None:
        completions = self.spec.completions
        if completions is None:
            # The work-queue pattern: one success, and every pod has ended.
            if self._any_success and not active:
                self.decide("Complete", None, f"{self.succeeded} pods succeeded")
        elif self.spec.indexed:
            if len(self.done_indexes) + len(self.failed_indexes) < completions:
                return
            if self.failed_indexes:
                failed = ", ".join(map(str, sorted(self.failed_indexes)))
                self.decide("Failed", JobReason.FAILED_INDEXES, f"indexes {failed} failed")
            else:
                self.decide("Complete", None, f"all {completions} indexes succeeded")
        elif self.succeeded >= completions:
            self.decide("Complete", None, f"{self.succeeded} pods succeeded")

    # -- what to start ---------------------------------------------------------

    def pods_to_start(self, active: list[LocalPod], now: float) -> list[int | None]:
        """The indexes (None when not Indexed) of the pods to create now."""
        spec = self.spec
        if spec.completions is None:
            # No new pod once one succeeded: the others drain what is left.
            wanted = 0 if self._any_success else spec.parallelism
        elif spec.indexed:
            left = spec.completions - len(self.done_indexes) - len(self.failed_indexes)
            wanted = min(spec.parallelism, left)
        else:
            wanted = min(spec.parallelism, spec.completions - self.succeeded)
        missing = wanted - len(active)
        if missing <= 0:
            return []
        if now < self._last_failure_at + backoff_delay(self._failures_since_success, self._scale):
            return []
        if not spec.indexed:
            return [None] * missing
        assert spec.completions is not None
        busy = self.done_indexes | self.failed_indexes | {p.index for p in active}
        free: list[int | None] = [i for i in range(spec.completions) if i not in busy]
        return free[:missing]
