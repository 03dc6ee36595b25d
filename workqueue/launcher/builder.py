"""Build the consumers' Job (or CronJob) from `JobOptions`, on the kubernetes client's models.

Every Pod built here meets the Pod Security Standards "restricted" profile and
a little more: it runs as a non-root user with the RuntimeDefault seccomp
profile, its container cannot gain privileges, holds no capability and has a
read-only root filesystem with a writable ``/tmp`` (an emptyDir), and no
service account token is mounted. The Redis URL, which may hold a password,
reaches the container only as a reference to a Secret key.

Failures are handled in one of two ways, after `JobOptions.restart_policy`:

- ``OnFailure`` (default): the kubelet restarts a failed consumer in place,
  and each restart counts towards backoffLimit.
- ``Never`` with a podFailurePolicy: each failure gets a new Pod; a Pod lost to
  a disruption (eviction, preemption, node drain: condition DisruptionTarget)
  does not count, and a consumer exiting 2 (bad handler or settings, which no
  retry can fix) fails the whole Job at once.

podReplacementPolicy is always ``Failed``: a replacement Pod starts only once
the Pod it replaces has fully stopped, so a consumer still handing its items
back after SIGTERM never overlaps its successor. The API server accepts it with
either restart policy and requires it when a podFailurePolicy is set.
"""

from __future__ import annotations

import logging
import string
import zoneinfo

from kubernetes import client

from workqueue.errors import EXIT_USAGE, UsageError
from workqueue.launcher.spec import JobOptions
from workqueue.settings import ENV_PREFIX

log = logging.getLogger(__name__)

CONTAINER_NAME = "consumer"
REDIS_URL_ENV = f"{ENV_PREFIX}REDIS_URL"
TMP_VOLUME = "tmp"
# CronJob names leave room for the suffix the CronJob controller appends.
MAX_CRONJOB_NAME = 52
CONCURRENCY_POLICIES = ("Allow", "Forbid", "Replace")
_CRON_MACROS = frozenset(
    {"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"}
)
_CRON_FIELD_CHARS = frozenset(string.ascii_letters + string.digits + "*/,-?")


def build_job(opts: JobOptions) -> client.V1Job:
    """The consumers' Job for `opts`, ready to create or to print as YAML."""
    spec = _job_spec(opts)
    if opts.selector is not None:
        spec.manual_selector = True
        spec.selector = client.V1LabelSelector(match_labels=dict(opts.selector))
    job = client.V1Job(
        api_version="batch/v1",
        kind="Job",
        metadata=_metadata(opts, opts.name),
        spec=spec,
    )
    log.debug("built Job %s (%s, parallelism %d)", opts.name, opts.pattern, opts.parallelism)
    return job


def build_cronjob(
    opts: JobOptions,
    schedule: str,
    *,
    time_zone: str | None = None,
    concurrency_policy: str = "Forbid",
    starting_deadline_seconds: int | None = None,
    successful_jobs_history_limit: int = 3,
    failed_jobs_history_limit: int = 1,
    suspend: bool = False,
) -> client.V1CronJob:
    """A CronJob that starts the Job of `opts` on `schedule` (standard 5-field cron).

    Each run's Job is named ``<name>-<minutes since the epoch>`` by Kubernetes
    and its Pods carry the same ``workqueue.dev/run`` label (the CronJob's
    name) across runs; the Job controller's own selector keeps runs apart. A
    consumer exits 0 only when its queue is finished, so every run needs a
    queue that is filled and sealed anew (or deleted) between runs.
    """
    if opts.selector is not None:
        raise UsageError("job option selector: a CronJob's Jobs always get a generated selector")
    if len(opts.name) > MAX_CRONJOB_NAME:
        raise UsageError(
            f"job option name: {opts.name!r} is longer than the {MAX_CRONJOB_NAME} "
            "characters a CronJob name may have"
        )
    _check_schedule(schedule)
    if time_zone is not None:
        _check_time_zone(time_zone)
    if concurrency_policy not in CONCURRENCY_POLICIES:
        raise UsageError(
            f"cron option concurrency_policy: {concurrency_policy!r} is not one of "
            + ", ".join(CONCURRENCY_POLICIES)
        )
    if starting_deadline_seconds is not None and starting_deadline_seconds < 1:
        raise UsageError(
            "cron option starting_deadline_seconds: must be at least 1, "
            f"not {starting_deadline_seconds}"
        )
    for option, limit in (
        ("successful_jobs_history_limit", successful_jobs_history_limit),
        ("failed_jobs_history_limit", failed_jobs_history_limit),
    ):
        if limit < 0:
            raise UsageError(f"cron option {option}: must be 0 or more, not {limit}")
    template = client.V1JobTemplateSpec(
        metadata=client.V1ObjectMeta(labels=opts.pod_labels),
        spec=_job_spec(opts),
    )
    return client.V1CronJob(
        api_version="batch/v1",
        kind="CronJob",
        metadata=_metadata(opts, opts.name),
        spec=client.V1CronJobSpec(
            schedule=schedule,
            time_zone=time_zone,
            concurrency_policy=concurrency_policy,
            starting_deadline_seconds=starting_deadline_seconds,
            successful_jobs_history_limit=successful_jobs_history_limit,
            failed_jobs_history_limit=failed_jobs_history_limit,
            suspend=suspend,
            job_template=template,
        ),
    )


def build_pod_template(opts: JobOptions) -> client.V1PodTemplateSpec:
    """The Pod template of the consumers' Job (labels, hardening, the one container)."""
    env = [
        client.V1EnvVar(
            name=REDIS_URL_ENV,
            value_from=client.V1EnvVarSource(
                secret_key_ref=client.V1SecretKeySelector(
                    name=opts.redis_secret, key=opts.redis_secret_key
                )
            ),
        )
    ]
    env += [client.V1EnvVar(name=k, value=v) for k, v in opts.settings_env.items()]
    env += [client.V1EnvVar(name=k, value=v) for k, v in opts.env.items()]
    resources = None
    if opts.resources.requests or opts.resources.limits:
        resources = client.V1ResourceRequirements(
            requests=opts.resources.requests or None, limits=opts.resources.limits or None
        )
    container = client.V1Container(
        name=CONTAINER_NAME,
        image=opts.image,
        image_pull_policy=opts.image_pull_policy,
        command=opts.container_command,
        env=env,
        resources=resources,
        security_context=client.V1SecurityContext(
            allow_privilege_escalation=False,
            capabilities=client.V1Capabilities(drop=["ALL"]),
            read_only_root_filesystem=True,
            run_as_non_root=True,
        ),
        volume_mounts=[client.V1VolumeMount(name=TMP_VOLUME, mount_path="/tmp")],  # noqa: S108
    )
    return client.V1PodTemplateSpec(
        metadata=client.V1ObjectMeta(labels=opts.pod_labels),
        spec=client.V1PodSpec(
            restart_policy=opts.restart_policy,
            termination_grace_period_seconds=opts.termination_grace_seconds,
            service_account_name=opts.service_account,
            automount_service_account_token=False,
            enable_service_links=False,
            security_context=client.V1PodSecurityContext(
                run_as_non_root=True,
                run_as_user=opts.run_as_user,
                run_as_group=opts.run_as_group,
                fs_group=opts.run_as_group,
                seccomp_profile=client.V1SeccompProfile(type="RuntimeDefault"),
            ),
            containers=[container],
            volumes=[
                client.V1Volume(
                    name=TMP_VOLUME,
                    empty_dir=client.V1EmptyDirVolumeSource(size_limit=opts.tmp_size_limit),
                )
            ],
        ),
    )


def build_pod_failure_policy() -> client.V1PodFailurePolicy:
    """Ignore disrupted Pods; fail the Job when the consumer exits with a usage error."""
    return client.V1PodFailurePolicy(
        rules=[
            client.V1PodFailurePolicyRule(
                action="Ignore",
                on_pod_conditions=[
                    client.V1PodFailurePolicyOnPodConditionsPattern(
                        type="DisruptionTarget", status="True"
                    )
                ],
            ),
            client.V1PodFailurePolicyRule(
                action="FailJob",
                on_exit_codes=client.V1PodFailurePolicyOnExitCodesRequirement(
                    container_name=CONTAINER_NAME, operator="In", values=[EXIT_USAGE]
                ),
            ),
        ]
    )


def _metadata(opts: JobOptions, name: str) -> client.V1ObjectMeta:
    return client.V1ObjectMeta(name=name, namespace=opts.namespace, labels=opts.pod_labels)


def _job_spec(opts: JobOptions) -> client.V1JobSpec:
    return client.V1JobSpec(
        parallelism=opts.parallelism,
        completions=opts.completions,
        completion_mode="Indexed" if opts.indexed else "NonIndexed",
        backoff_limit=opts.backoff_limit,
        active_deadline_seconds=opts.active_deadline_seconds,
        ttl_seconds_after_finished=opts.ttl_seconds_after_finished,
        pod_failure_policy=build_pod_failure_policy() if opts.uses_pod_failure_policy else None,
        pod_replacement_policy="Failed",
        template=build_pod_template(opts),
    )


def _check_schedule(schedule: str) -> None:
    # A light check of the standard cron syntax the CronJob controller parses;
    # the API server has the last word on ranges such as minute 61.
    text = schedule.strip()
    if text.upper().startswith(("TZ=", "CRON_TZ=")):
        raise UsageError(
            f"cron option schedule: {schedule!r}: give the time zone as time_zone, "
            "not in the schedule"
        )
    if text in _CRON_MACROS:
        return
    fields = text.split()
    if len(fields) != 5 or not all(_CRON_FIELD_CHARS.issuperset(f) for f in fields):
        raise UsageError(
            f"cron option schedule: {schedule!r} is not a 5-field cron schedule "
            "(minute hour day-of-month month day-of-week) nor one of "
            + ", ".join(sorted(_CRON_MACROS))
        )


def _check_time_zone(time_zone: str) -> None:
    known = zoneinfo.available_timezones()
    # Without a local time zone database there is nothing to check against;
    # the API server will still refuse an unknown zone.
    if known and time_zone not in known:
        raise UsageError(
            f"cron option time_zone: {time_zone!r} is not a known IANA time zone "
            "(like 'Europe/Paris' or 'Etc/UTC')"
        )
