"""The Job builder: each pattern and option as it lands in the built objects."""

from __future__ import annotations

import dataclasses
import random
import re
import zoneinfo
from typing import Any

import pytest
import yaml
from k8s_schema import (
    KUBERNETES_VERSION,
    assert_restricted,
    assert_valid,
    env_vars,
    pod_specs,
)
from kubernetes import client
from kubernetes_validate.utils import all_versions

from workqueue.errors import UsageError
from workqueue.launcher.builder import (
    CONTAINER_NAME,
    build_cronjob,
    build_job,
    build_pod_template,
)
from workqueue.launcher.manifest import to_dict, to_dicts, to_yaml
from workqueue.launcher.spec import (
    LABEL_APP,
    LABEL_QUEUE,
    LABEL_RUN,
    JobOptions,
    Pattern,
    Resources,
    generate_name,
)

IMAGE = "registry.example/worker:1.0"


def opts(**overrides: Any) -> JobOptions:
    values: dict[str, Any] = {"image": IMAGE, "queue": "demo", "handler": "tasks:handle"}
    values.update(overrides)
    return JobOptions(**values)


def job_dict(**overrides: Any) -> dict[str, Any]:
    return to_dict(build_job(opts(**overrides)))


def container_of(job: client.V1Job) -> client.V1Container:
    (container,) = job.spec.template.spec.containers
    return container


# -- patterns -------------------------------------------------------------------


def test_work_queue_pattern_leaves_completions_unset() -> None:
    options = opts(parallelism=4)
    job = build_job(options)
    assert options.pattern is Pattern.WORK_QUEUE
    assert job.spec.completions is None
    assert job.spec.parallelism == 4
    assert job.spec.completion_mode == "NonIndexed"
    assert "completions" not in to_dict(job)["spec"]


def test_one_shot_pattern_runs_one_pod_to_one_success() -> None:
    options = opts(completions=1, parallelism=1)
    job = build_job(options)
    assert options.pattern is Pattern.ONE_SHOT
    assert (job.spec.completions, job.spec.parallelism) == (1, 1)


def test_fixed_completions_pattern_can_be_indexed() -> None:
    options = opts(completions=8, parallelism=3, indexed=True, max_items=100)
    job = build_job(options)
    assert options.pattern is Pattern.FIXED_COMPLETIONS
    assert (job.spec.completions, job.spec.parallelism) == (8, 3)
    assert job.spec.completion_mode == "Indexed"
    assert container_of(job).command[-2:] == ["--max-items", "100"]
    # Kubernetes sets JOB_COMPLETION_INDEX itself; the builder adds nothing for it.
    assert all(e.name != "JOB_COMPLETION_INDEX" for e in container_of(job).env)


def test_fixed_completions_without_index_stay_non_indexed() -> None:
    job = build_job(opts(completions=5, parallelism=2))
    assert job.spec.completion_mode == "NonIndexed"
    assert job.spec.completions == 5


# -- the consumer container -------------------------------------------------------


def test_consume_command_is_built_from_queue_and_handler() -> None:
    job = build_job(opts(concurrency=8))
    container = container_of(job)
    assert container.name == CONTAINER_NAME
    assert container.image == IMAGE
    assert container.command == [
        "workqueue",
        "consume",
        "demo",
        "--handler",
        "tasks:handle",
        "--concurrency",
        "8",
    ]
    assert container.args is None


def test_a_full_command_replaces_the_consume_command() -> None:
    job = build_job(JobOptions(image=IMAGE, command=["python", "-m", "mytool", "run"]))
    assert container_of(job).command == ["python", "-m", "mytool", "run"]
    assert LABEL_QUEUE not in job.metadata.labels
    assert job.metadata.name.startswith("wq-job-")


def test_redis_url_comes_only_from_the_secret() -> None:
    job = job_dict(settings={"lease_seconds": 60}, env={"MODE": "fast"})
    entries = list(env_vars(job))
    redis = [entry for _, entry in entries if entry["name"] == "WORKQUEUE_REDIS_URL"]
    assert redis == [
        {
            "name": "WORKQUEUE_REDIS_URL",
            "valueFrom": {"secretKeyRef": {"name": "workqueue-redis", "key": "url"}},
        }
    ]
    assert all("redis://" not in entry.get("value", "") for _, entry in entries)
    assert "redis://" not in yaml.safe_dump(job)


def test_redis_secret_name_and_key_can_be_chosen() -> None:
    job = build_job(opts(redis_secret="prod-redis", redis_secret_key="uri"))
    ref = container_of(job).env[0].value_from.secret_key_ref
    assert (ref.name, ref.key) == ("prod-redis", "uri")


def test_settings_become_workqueue_variables() -> None:
    job = build_job(opts(settings={"lease_seconds": 60, "max_attempts": "3", "grace_seconds": 50}))
    env = {e.name: e.value for e in container_of(job).env if e.value is not None}
    assert env == {
        "WORKQUEUE_LEASE_SECONDS": "60",
        "WORKQUEUE_MAX_ATTEMPTS": "3",
        "WORKQUEUE_GRACE_SECONDS": "50",
    }
    # The kubelet waits longer than the consumer's own grace period after SIGTERM.
    assert job.spec.template.spec.termination_grace_period_seconds == 60


def test_default_grace_period_covers_the_default_consumer_grace() -> None:
    job = build_job(opts())
    assert job.spec.template.spec.termination_grace_period_seconds == 35


def test_extra_env_follows_the_settings() -> None:
    job = build_job(opts(settings={"batch_size": 10}, env={"B": "2", "A": "1"}))
    names = [e.name for e in container_of(job).env]
    assert names == ["WORKQUEUE_REDIS_URL", "WORKQUEUE_BATCH_SIZE", "B", "A"]


def test_resources_set_requests_and_limits() -> None:
    job = build_job(opts(resources=Resources("250m", "1", "128Mi", "512Mi")))
    resources = container_of(job).resources
    assert resources.requests == {"cpu": "250m", "memory": "128Mi"}
    assert resources.limits == {"cpu": "1", "memory": "512Mi"}


def test_no_resources_leaves_the_field_out() -> None:
    assert container_of(build_job(opts())).resources is None
    job = build_job(opts(resources=Resources(memory_limit="1Gi")))
    assert container_of(job).resources.to_dict() == {
        "claims": None,
        "limits": {"memory": "1Gi"},
        "requests": None,
    }


def test_service_account_and_pull_policy() -> None:
    job = build_job(opts(service_account="batch-runner", image_pull_policy="IfNotPresent"))
    assert job.spec.template.spec.service_account_name == "batch-runner"
    assert container_of(job).image_pull_policy == "IfNotPresent"
    # Consumers never need the API: the token stays unmounted even with an account.
    assert job.spec.template.spec.automount_service_account_token is False


# -- failure handling ---------------------------------------------------------


def test_default_restart_policy_is_on_failure_without_a_pod_failure_policy() -> None:
    job = build_job(opts())
    assert job.spec.template.spec.restart_policy == "OnFailure"
    assert job.spec.pod_failure_policy is None
    assert job.spec.backoff_limit == 6
    assert job.spec.pod_replacement_policy == "Failed"


def test_never_gets_the_pod_failure_policy() -> None:
    job = job_dict(restart_policy="Never")
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"
    assert job["spec"]["podReplacementPolicy"] == "Failed"
    assert job["spec"]["podFailurePolicy"] == {
        "rules": [
            {
                "action": "Ignore",
                "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}],
            },
            {
                "action": "FailJob",
                "onExitCodes": {"containerName": "consumer", "operator": "In", "values": [2]},
            },
        ]
    }


def test_the_pod_failure_policy_can_be_turned_off_with_never() -> None:
    job = build_job(opts(restart_policy="Never", pod_failure_policy=False))
    assert job.spec.pod_failure_policy is None
    assert job.spec.pod_replacement_policy == "Failed"


def test_deadlines_backoff_and_ttl() -> None:
    job = build_job(
        opts(backoff_limit=0, active_deadline_seconds=3600, ttl_seconds_after_finished=600)
    )
    assert job.spec.backoff_limit == 0
    assert job.spec.active_deadline_seconds == 3600
    assert job.spec.ttl_seconds_after_finished == 600


def test_unset_deadlines_are_left_out() -> None:
    spec = job_dict()["spec"]
    assert "activeDeadlineSeconds" not in spec
    assert "ttlSecondsAfterFinished" not in spec


# -- labels and selector ------------------------------------------------------------


def test_labels_mark_the_app_the_queue_and_a_unique_run() -> None:
    options = opts(labels={"team": "data"})
    job = build_job(options)
    expected = {
        LABEL_APP: "workqueue",
        LABEL_QUEUE: "demo",
        LABEL_RUN: options.name,
        "team": "data",
    }
    assert job.metadata.labels == expected
    assert job.spec.template.metadata.labels == expected
    # The Job controller generates the selector; the builder does not set one.
    assert job.spec.selector is None
    assert job.spec.manual_selector is None


def test_two_option_sets_get_different_run_labels() -> None:
    first, second = build_job(opts()), build_job(opts())
    assert first.metadata.labels[LABEL_RUN] != second.metadata.labels[LABEL_RUN]


def test_a_user_selector_sets_manual_selector() -> None:
    job = build_job(opts(labels={"batch": "b-17"}, selector={"batch": "b-17"}))
    assert job.spec.manual_selector is True
    assert job.spec.selector.match_labels == {"batch": "b-17"}
    assert job.spec.template.metadata.labels["batch"] == "b-17"


def test_name_and_namespace_are_used() -> None:
    job = build_job(opts(name="nightly-sync", namespace="batch"))
    assert (job.metadata.name, job.metadata.namespace) == ("nightly-sync", "batch")
    assert job.metadata.labels[LABEL_RUN] == "nightly-sync"


def test_generated_names_follow_the_queue() -> None:
    assert re.fullmatch(r"wq-demo-[a-z0-9]{5}", opts().name)
    assert re.fullmatch(r"wq-my-queue-v2-[a-z0-9]{5}", opts(queue="My_Queue.v2").name)
    long = opts(queue="q" * 63).name
    assert len(long) <= 52
    assert generate_name("demo", random.Random(7)) == generate_name("demo", random.Random(7))


# -- the restricted profile ----------------------------------------------------------


def test_pods_meet_the_restricted_profile_field_by_field() -> None:
    pod = build_pod_template(opts()).spec
    assert pod.security_context.run_as_non_root is True
    assert pod.security_context.run_as_user == 10001
    assert pod.security_context.run_as_group == 10001
    assert pod.security_context.fs_group == 10001
    assert pod.security_context.seccomp_profile.type == "RuntimeDefault"
    assert pod.automount_service_account_token is False
    (container,) = pod.containers
    ctx = container.security_context
    assert ctx.allow_privilege_escalation is False
    assert ctx.capabilities.drop == ["ALL"]
    assert ctx.capabilities.add is None
    assert ctx.read_only_root_filesystem is True
    assert ctx.privileged is None
    (mount,) = container.volume_mounts
    (volume,) = pod.volumes
    assert (mount.mount_path, mount.name, volume.name) == ("/tmp", "tmp", "tmp")
    assert volume.empty_dir is not None


def test_uid_and_tmp_size_can_be_chosen() -> None:
    pod = build_pod_template(opts(run_as_user=2000, run_as_group=3000, tmp_size_limit="1Gi")).spec
    assert (pod.security_context.run_as_user, pod.security_context.run_as_group) == (2000, 3000)
    assert pod.volumes[0].empty_dir.size_limit == "1Gi"


# -- every built object against the API schema --------------------------------------

BUILT = {
    "work-queue": {"parallelism": 4},
    "one-shot": {"completions": 1},
    "indexed": {"completions": 10, "parallelism": 5, "indexed": True, "max_items": 20},
    "never-with-policy": {"restart_policy": "Never", "backoff_limit": 2},
    "everything": {
        "name": "big-run",
        "namespace": "batch",
        "parallelism": 16,
        "concurrency": 4,
        "restart_policy": "Never",
        "active_deadline_seconds": 7200,
        "ttl_seconds_after_finished": 3600,
        "resources": Resources("100m", "2", "64Mi", "1Gi"),
        "settings": {"lease_seconds": 45.5, "grace_seconds": 20, "key_prefix": "prod"},
        "env": {"LOG_FORMAT": "json"},
        "labels": {"team": "data", "example.com/cost-center": "42"},
        "selector": {"team": "data", "example.com/cost-center": "42"},
        "service_account": "runner",
        "image_pull_policy": "Always",
        "tmp_size_limit": "2Gi",
    },
}


@pytest.mark.parametrize("case", sorted(BUILT))
def test_built_jobs_pass_the_api_schema(case: str) -> None:
    job = job_dict(**BUILT[case])
    assert_valid(job)
    for pod in pod_specs(job):
        assert_restricted(pod, f"job {case}")


@pytest.mark.parametrize("case", sorted(set(BUILT) - {"everything"}))
def test_built_cronjobs_pass_the_api_schema(case: str) -> None:
    cron = to_dict(build_cronjob(opts(**BUILT[case]), "*/15 * * * *", time_zone="Europe/Paris"))
    assert_valid(cron)
    for pod in pod_specs(cron):
        assert_restricted(pod, f"cronjob {case}")


def test_the_schema_check_catches_a_wrong_field() -> None:
    job = job_dict()
    job["spec"]["parallelisme"] = 3
    with pytest.raises(pytest.fail.Exception, match="parallelisme"):
        assert_valid(job)
    job = job_dict()
    job["spec"]["parallelism"] = "four"
    with pytest.raises(pytest.fail.Exception, match=r"spec\.parallelism"):
        assert_valid(job)


def test_the_schema_version_is_the_newest_shipped() -> None:
    newest = max(all_versions(), key=lambda v: tuple(map(int, v.split("."))))
    assert newest == KUBERNETES_VERSION


def test_the_restricted_check_catches_a_root_pod() -> None:
    job = job_dict()
    pod = job["spec"]["template"]["spec"]
    pod["securityContext"]["runAsUser"] = 0
    del pod["containers"][0]["securityContext"]["capabilities"]
    with pytest.raises(pytest.fail.Exception, match=r"user 0.*capabilities"):
        assert_restricted(pod, "tampered job")


# -- the CronJob -------------------------------------------------------------------


def test_cronjob_fields() -> None:
    options = opts(name="nightly", restart_policy="Never", parallelism=2)
    cron = build_cronjob(
        options,
        "0 3 * * 1-5",
        time_zone="Etc/UTC",
        concurrency_policy="Replace",
        starting_deadline_seconds=300,
        successful_jobs_history_limit=5,
        failed_jobs_history_limit=2,
        suspend=True,
    )
    spec = cron.spec
    assert (cron.api_version, cron.kind, cron.metadata.name) == ("batch/v1", "CronJob", "nightly")
    assert (spec.schedule, spec.time_zone) == ("0 3 * * 1-5", "Etc/UTC")
    assert spec.concurrency_policy == "Replace"
    assert spec.starting_deadline_seconds == 300
    assert (spec.successful_jobs_history_limit, spec.failed_jobs_history_limit) == (5, 2)
    assert spec.suspend is True
    job_spec = spec.job_template.spec
    assert job_spec.parallelism == 2
    assert job_spec.pod_failure_policy is not None
    assert job_spec.selector is None
    assert job_spec.manual_selector is None
    assert spec.job_template.metadata.labels[LABEL_RUN] == "nightly"


def test_cronjob_defaults() -> None:
    spec = build_cronjob(opts(), "@daily").spec
    assert spec.concurrency_policy == "Forbid"
    assert (spec.successful_jobs_history_limit, spec.failed_jobs_history_limit) == (3, 1)
    assert spec.suspend is False
    assert spec.time_zone is None
    assert spec.starting_deadline_seconds is None


@pytest.mark.parametrize(
    ("kwargs", "option"),
    [
        ({"schedule": "every day"}, "schedule"),
        ({"schedule": "* * * *"}, "schedule"),
        ({"schedule": "TZ=UTC 0 3 * * *"}, "schedule"),
        ({"schedule": "@daily", "time_zone": "Mars/Olympus"}, "time_zone"),
        ({"schedule": "@daily", "concurrency_policy": "Sometimes"}, "concurrency_policy"),
        ({"schedule": "@daily", "starting_deadline_seconds": 0}, "starting_deadline_seconds"),
        ({"schedule": "@daily", "failed_jobs_history_limit": -1}, "failed_jobs_history_limit"),
    ],
)
def test_cronjob_option_errors_name_the_option(kwargs: dict[str, Any], option: str) -> None:
    if "time_zone" in kwargs and not zoneinfo.available_timezones():
        pytest.skip("no local time zone database to check time_zone against")
    with pytest.raises(UsageError, match=rf"\b{option}\b"):
        build_cronjob(opts(), **kwargs)


def test_cronjob_refuses_a_manual_selector_and_long_names() -> None:
    with pytest.raises(UsageError, match="selector"):
        build_cronjob(opts(labels={"a": "b"}, selector={"a": "b"}), "@hourly")
    with pytest.raises(UsageError, match=r"name.*52"):
        build_cronjob(opts(name="n" * 53), "@hourly")


# -- option checks --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "option"),
    [
        ({"parallelism": 0}, "parallelism"),
        ({"completions": 0}, "completions"),
        ({"indexed": True}, "indexed"),
        ({"indexed": True, "completions": 10, "parallelism": 200_000}, "parallelism"),
        ({"indexed": True, "completions": 10, "name": "x" * 62}, "name"),
        ({"pod_failure_policy": True}, "pod_failure_policy"),
        ({"restart_policy": "Always"}, "restart_policy"),
        ({"name": "Bad_Name"}, "name"),
        ({"name": "a" * 64}, "name"),
        ({"name": "-leading"}, "name"),
        ({"namespace": "Prod"}, "namespace"),
        ({"labels": {"bad key!": "x"}}, "labels.bad key!"),
        ({"labels": {"ok": "bad value!"}}, "labels.ok"),
        ({"labels": {"ok": "v" * 64}}, "labels.ok"),
        ({"labels": {"Bad_Prefix.com/x": "1"}}, "labels.Bad_Prefix.com/x"),
        ({"labels": {LABEL_RUN: "mine"}}, f"labels.{LABEL_RUN}"),
        ({"labels": {"batch.kubernetes.io/job-name": "x"}}, "labels.batch.kubernetes.io/job-name"),
        ({"selector": {"team": "x"}}, "selector.team"),
        ({"selector": {}}, "selector"),
        ({"backoff_limit": -1}, "backoff_limit"),
        ({"active_deadline_seconds": 0}, "active_deadline_seconds"),
        ({"ttl_seconds_after_finished": -5}, "ttl_seconds_after_finished"),
        ({"image": ""}, "image"),
        ({"image": "my image"}, "image"),
        ({"queue": "bad queue"}, "queue"),
        ({"queue": None}, "queue"),
        ({"handler": None}, "handler"),
        ({"handler": "no-colon here"}, "handler"),
        ({"handler": "justaname"}, "handler"),
        ({"command": ["x"]}, "handler"),
        ({"concurrency": 0}, "concurrency"),
        ({"concurrency": 2, "settings": {"concurrency": 3}}, "concurrency"),
        ({"max_items": 5}, "max_items"),
        ({"max_items": 0, "completions": 2}, "max_items"),
        ({"settings": {"redis_url": "redis://x"}}, "settings.redis_url"),
        ({"settings": {"no_such_setting": 1}}, "settings.no_such_setting"),
        ({"settings": {"lease_seconds": 0}}, "settings.lease_seconds"),
        ({"settings": {"max_attempts": "many"}}, "settings.max_attempts"),
        ({"settings": {"max_attempts": True}}, "settings.max_attempts"),
        ({"settings": {"key_prefix": "a b"}}, "settings.key_prefix"),
        ({"env": {"WORKQUEUE_REDIS_URL": "x"}}, "env.WORKQUEUE_REDIS_URL"),
        ({"env": {"1BAD": "x"}}, "env.1BAD"),
        ({"env": {"N": 5}}, "env.N"),
        ({"redis_secret": "Bad_Secret"}, "redis_secret"),
        ({"redis_secret_key": "bad key"}, "redis_secret_key"),
        ({"service_account": "Bad Account"}, "service_account"),
        ({"image_pull_policy": "Sometimes"}, "image_pull_policy"),
        ({"run_as_user": 0}, "run_as_user"),
        ({"run_as_group": 0}, "run_as_group"),
        ({"tmp_size_limit": "lots"}, "tmp_size_limit"),
        ({"resources": None}, "resources"),
    ],
)
def test_bad_options_raise_usage_errors_naming_the_option(
    overrides: dict[str, Any], option: str
) -> None:
    if overrides == {"resources": None}:
        # Resources check themselves when made.
        with pytest.raises(UsageError, match=r"resources\.cpu_request"):
            Resources(cpu_request="2", cpu_limit="1")
        with pytest.raises(UsageError, match=r"resources\.memory_limit"):
            Resources(memory_limit="a lot")
        with pytest.raises(UsageError, match=r"resources\.cpu_limit"):
            Resources(cpu_limit="0")
        return
    with pytest.raises(UsageError, match=f"job option {re.escape(option)}:"):
        opts(**overrides)


def test_a_full_command_refuses_consume_flags() -> None:
    with pytest.raises(UsageError, match="job option concurrency:"):
        JobOptions(image=IMAGE, command=["run"], concurrency=2)
    with pytest.raises(UsageError, match="job option command:"):
        JobOptions(image=IMAGE, command=[])
    with pytest.raises(UsageError, match=r"job option command: .*not one string"):
        JobOptions(image=IMAGE, command="python -m tool")


def test_a_password_in_env_is_refused_without_being_shown() -> None:
    with pytest.raises(UsageError, match=r"env\.CACHE") as caught:
        opts(env={"CACHE": "redis://user:hunter2@cache:6379/0"})
    assert "hunter2" not in str(caught.value)
    # A URL without a password is fine.
    assert opts(env={"API": "https://api.example/v1"}).env["API"] == "https://api.example/v1"


def test_options_are_frozen_and_copy_their_inputs() -> None:
    labels = {"team": "data"}
    options = opts(labels=labels)
    labels["team"] = "other"
    assert options.labels["team"] == "data"
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.parallelism = 3  # type: ignore[misc]
    with pytest.raises(TypeError):
        options.labels["x"] = "y"  # type: ignore[index]


# -- YAML output ---------------------------------------------------------------------


def test_yaml_is_a_multi_document_stream_without_nulls() -> None:
    objects = [build_job(opts(parallelism=2)), build_cronjob(opts(), "@hourly")]
    text = to_yaml(objects)
    documents = list(yaml.safe_load_all(text))
    assert documents == to_dicts(objects)
    assert [(d["apiVersion"], d["kind"]) for d in documents] == [
        ("batch/v1", "Job"),
        ("batch/v1", "CronJob"),
    ]
    assert text.startswith("---\n")
    assert "null" not in text

    def no_none(value: Any) -> bool:
        if isinstance(value, dict):
            return all(no_none(v) for v in value.values())
        if isinstance(value, list):
            return all(no_none(v) for v in value)
        return value is not None

    assert no_none(documents)


def test_yaml_of_nothing_is_empty() -> None:
    assert to_yaml([]) == ""


def test_objects_without_kind_are_refused() -> None:
    with pytest.raises(UsageError, match="apiVersion and kind"):
        to_dict(client.V1Job(metadata=client.V1ObjectMeta(name="x")))
