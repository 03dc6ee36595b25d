"""What the local engine reads from a Kubernetes Job, checked as the API server would.

`read_job` turns a `kubernetes.client.V1Job` into a `LocalJobSpec`: plain values
with the Kubernetes defaults filled in (parallelism 1, backoffLimit 6, a grace
period of 30 s). A Job the API server would refuse (restartPolicy Always, a
podFailurePolicy without restartPolicy Never, Indexed without completions...)
or one the engine cannot run (no command, several containers, init containers)
raises `LauncherError` naming the field, before any process starts.

`policy_action` evaluates the podFailurePolicy rules for one failed pod, in
order, the first match winning, as the Job controller does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

from kubernetes.client import V1Container, V1Job, V1PodFailurePolicy

from workqueue.errors import LauncherError

DEFAULT_BACKOFF_LIMIT: Final = 6
# With backoffLimitPerIndex set and backoffLimit unset, Kubernetes sets backoffLimit to MaxInt32.
UNLIMITED_BACKOFF: Final = 2**31 - 1
DEFAULT_GRACE_SECONDS: Final = 30
DISRUPTION_TARGET: Final = "DisruptionTarget"

ACTIONS: Final = ("FailJob", "FailIndex", "Ignore", "Count")


@dataclass(frozen=True)
class ExitCodeRequirement:
    """``onExitCodes`` of a rule: the container's exit code is In (or NotIn) `values`."""

    operator: str
    values: frozenset[int]
    container_name: str | None = None

    def matches(self, container_name: str, exit_code: int) -> bool:
        if exit_code == 0:  # successful containers never take part in the check
            return False
        if self.container_name is not None and self.container_name != container_name:
            return False
        return (exit_code in self.values) == (self.operator == "In")


@dataclass(frozen=True)
class FailureRule:
    """One podFailurePolicy rule: an action and exactly one kind of requirement."""

    action: str
    on_exit_codes: ExitCodeRequirement | None = None
    # (type, status) pairs from onPodConditions; the rule matches if any pair is on the pod.
    on_pod_conditions: tuple[tuple[str, str], ...] = ()

    def matches(
        self, container_name: str, exit_code: int, conditions: frozenset[tuple[str, str]]
    ) -> bool:
        if self.on_exit_codes is not None:
            return self.on_exit_codes.matches(container_name, exit_code)
        return any(pattern in conditions for pattern in self.on_pod_conditions)


@dataclass(frozen=True)
class LocalJobSpec:
    """The parts of a Job the local engine acts on, defaults filled in."""

    name: str
    namespace: str
    parallelism: int
    completions: int | None
    indexed: bool
    backoff_limit: int
    backoff_limit_per_index: int | None
    max_failed_indexes: int | None
    active_deadline_seconds: int | None
    restart_policy: str
    grace_seconds: int
    failure_rules: tuple[FailureRule, ...]
    container: V1Container  # the one container each pod runs
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)


def policy_action(
    rules: tuple[FailureRule, ...],
    container_name: str,
    exit_code: int,
    conditions: frozenset[tuple[str, str]],
) -> tuple[str, int | None]:
    """The action for a failed pod and the index of the rule that chose it (None: default)."""
    for number, rule in enumerate(rules):
        if rule.matches(container_name, exit_code, conditions):
            return rule.action, number
    return "Count", None


def _refuse(job_name: str, where: str, problem: str) -> LauncherError:
    return LauncherError(f"Job {job_name!r}: {where}: {problem}")


def _non_negative(job_name: str, where: str, value: Any, default: int | None) -> int | None:
    if value is None:
        return default
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise _refuse(job_name, where, f"must be a non-negative integer, not {value!r}")
    return value


def _read_rules(
    job_name: str, policy: V1PodFailurePolicy | None, container_name: str
) -> tuple[FailureRule, ...]:
    if policy is None:
        return ()
    rules = []
    for number, raw in enumerate(policy.rules or []):
        where = f"spec.podFailurePolicy.rules[{number}]"
        if raw.action not in ACTIONS:
            raise _refuse(job_name, f"{where}.action", f"must be one of {ACTIONS}")
        if (raw.on_exit_codes is None) == (not raw.on_pod_conditions):
            raise _refuse(job_name, where, "set exactly one of onExitCodes and onPodConditions")
        if raw.on_exit_codes is not None:
            codes = raw.on_exit_codes
            if codes.operator not in ("In", "NotIn"):
                raise _refuse(job_name, f"{where}.onExitCodes.operator", "must be In or NotIn")
            values = frozenset(codes.values or ())
            if not values:
                raise _refuse(job_name, f"{where}.onExitCodes.values", "must not be empty")
            if codes.operator == "In" and 0 in values:
                raise _refuse(job_name, f"{where}.onExitCodes.values", "0 is not allowed with In")
            if codes.container_name not in (None, container_name):
                raise _refuse(
                    job_name,
                    f"{where}.onExitCodes.containerName",
                    f"{codes.container_name!r} is not the pod's container {container_name!r}",
                )
            requirement = ExitCodeRequirement(codes.operator, values, codes.container_name)
            rules.append(FailureRule(raw.action, on_exit_codes=requirement))
        else:
            patterns = tuple((p.type, p.status or "True") for p in raw.on_pod_conditions or [])
            rules.append(FailureRule(raw.action, on_pod_conditions=patterns))
    return tuple(rules)


def read_job(job: V1Job) -> LocalJobSpec:
    """Check a `V1Job` and return what the local engine needs from it.

    Raises `LauncherError` for a Job the API server would refuse, or one this
    engine cannot run; the message names the field. A ``generateName`` is used
    as the Job's name as it is: no random suffix is added locally.
    """
    meta = job.metadata
    name = (meta.name or meta.generate_name or "").rstrip("-") if meta is not None else ""
    if not name:
        raise LauncherError("Job has neither metadata.name nor metadata.generateName")
    spec = job.spec
    if spec is None or spec.template is None or spec.template.spec is None:
        raise _refuse(name, "spec.template.spec", "is missing")
    pod = spec.template.spec

    containers = pod.containers or []
    if len(containers) != 1:
        raise _refuse(
            name,
            "spec.template.spec.containers",
            f"the local engine runs exactly one container per pod, this template has "
            f"{len(containers)}",
        )
    if pod.init_containers:
        raise _refuse(name, "spec.template.spec.initContainers", "not supported locally")
    container = containers[0]
    if not container.command:
        # The image's entrypoint would run on a cluster; locally there is no image to ask.
        raise _refuse(
            name,
            f"container {container.name!r}",
            "has no command; the local engine ignores the image, so it needs an explicit command",
        )

    restart_policy = pod.restart_policy
    if restart_policy not in ("Never", "OnFailure"):
        raise _refuse(
            name,
            "spec.template.spec.restartPolicy",
            f"a Job's pods need Never or OnFailure, not {restart_policy!r}",
        )
    if spec.suspend:
        raise _refuse(name, "spec.suspend", "a suspended Job never starts; unset it to run locally")
    if spec.success_policy is not None:
        raise _refuse(name, "spec.successPolicy", "not supported by the local engine")

    mode = spec.completion_mode or "NonIndexed"
    if mode not in ("NonIndexed", "Indexed"):
        raise _refuse(name, "spec.completionMode", f"must be NonIndexed or Indexed, not {mode!r}")
    indexed = mode == "Indexed"
    completions = _non_negative(name, "spec.completions", spec.completions, None)
    if indexed and completions is None:
        raise _refuse(name, "spec.completions", "an Indexed Job needs completions")
    parallelism = _non_negative(name, "spec.parallelism", spec.parallelism, 1)
    assert parallelism is not None
    if parallelism == 0:
        raise _refuse(name, "spec.parallelism", "0 would run no pod at all")

    per_index = _non_negative(name, "spec.backoffLimitPerIndex", spec.backoff_limit_per_index, None)
    if per_index is not None and not indexed:
        raise _refuse(name, "spec.backoffLimitPerIndex", "needs completionMode Indexed")
    max_failed = _non_negative(name, "spec.maxFailedIndexes", spec.max_failed_indexes, None)
    if max_failed is not None and per_index is None:
        raise _refuse(name, "spec.maxFailedIndexes", "needs backoffLimitPerIndex")
    default_limit = DEFAULT_BACKOFF_LIMIT if per_index is None else UNLIMITED_BACKOFF
    backoff_limit = _non_negative(name, "spec.backoffLimit", spec.backoff_limit, default_limit)
    assert backoff_limit is not None

    deadline = spec.active_deadline_seconds
    if deadline is not None and (not isinstance(deadline, int) or deadline <= 0):
        raise _refuse(name, "spec.activeDeadlineSeconds", f"must be positive, not {deadline!r}")
    grace = _non_negative(
        name,
        "spec.template.spec.terminationGracePeriodSeconds",
        pod.termination_grace_period_seconds,
        DEFAULT_GRACE_SECONDS,
    )
    assert grace is not None

    rules = _read_rules(name, spec.pod_failure_policy, container.name)
    if rules and restart_policy != "Never":
        raise _refuse(name, "spec.podFailurePolicy", "needs restartPolicy Never")
    if any(rule.action == "FailIndex" for rule in rules) and per_index is None:
        raise _refuse(name, "spec.podFailurePolicy", "action FailIndex needs backoffLimitPerIndex")

    template_meta = spec.template.metadata
    return LocalJobSpec(
        name=name,
        namespace=(meta.namespace if meta is not None else None) or "default",
        parallelism=parallelism,
        completions=completions,
        indexed=indexed,
        backoff_limit=backoff_limit,
        backoff_limit_per_index=per_index,
        max_failed_indexes=max_failed,
        active_deadline_seconds=deadline,
        restart_policy=restart_policy,
        grace_seconds=grace,
        failure_rules=rules,
        container=container,
        labels=dict(template_meta.labels or {}) if template_meta is not None else {},
        annotations=dict(template_meta.annotations or {}) if template_meta is not None else {},
    )
