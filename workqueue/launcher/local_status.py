"""What the local engine reports: progress events while a Job runs, a result at its end.

Reasons are the Job controller's own condition reasons, so a local run and a
cluster run read alike; `JobReason.STOPPED` is the one the engine adds, for a
Job ended by its caller (`LocalJobEngine.stop`, or Ctrl-C in the launcher).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

from workqueue.launcher.local_pod import PodRecord

JobCondition = Literal["Complete", "Failed"]


class JobReason(StrEnum):
    BACKOFF_LIMIT_EXCEEDED = "BackoffLimitExceeded"
    DEADLINE_EXCEEDED = "DeadlineExceeded"
    POD_FAILURE_POLICY = "PodFailurePolicy"
    FAILED_INDEXES = "FailedIndexes"
    MAX_FAILED_INDEXES_EXCEEDED = "MaxFailedIndexesExceeded"
    STOPPED = "Stopped"


class EventKind(StrEnum):
    POD_STARTED = "pod-started"  # a new pod's container started
    CONTAINER_EXITED = "container-exited"  # a container ended; pod.exit_codes[-1] says how
    CONTAINER_RESTARTED = "container-restarted"  # OnFailure: the same pod runs it again
    POD_TERMINATING = "pod-terminating"  # the engine sent SIGTERM (message: why)
    POD_FINISHED = "pod-finished"  # the pod reached Succeeded or Failed
    JOB_FINISHED = "job-finished"  # the Job's condition is decided (message: the reason)


@dataclass(frozen=True)
class JobEvent:
    """One step of progress; `pod` is None for Job-level events.

    `active`, `succeeded` and `failed` are the Job's counts at that moment (as
    in a Job's status), `at` the seconds since the Job started.
    """

    kind: EventKind
    pod: PodRecord | None
    active: int
    succeeded: int
    failed: int
    at: float
    message: str = ""


EventCallback = Callable[[JobEvent], None]


@dataclass(frozen=True)
class JobResult:
    """How a local Job ended.

    `failed` counts failed pods, as a Job's ``status.failed`` does: pods whose
    failure a podFailurePolicy Ignore rule matched are left out, and pods the
    engine terminated when the Job ended are in. In-place restarts
    (restartPolicy OnFailure) are in `restarts`, and per pod in `pods`.
    """

    name: str
    condition: JobCondition
    reason: JobReason | None
    message: str
    succeeded: int
    failed: int
    restarts: int
    pods: tuple[PodRecord, ...]
    completed_indexes: tuple[int, ...]
    failed_indexes: tuple[int, ...]
    wall_seconds: float

    @property
    def complete(self) -> bool:
        return self.condition == "Complete"
