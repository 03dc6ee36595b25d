"""The manifests in k8s/: valid against the API schema, restricted, and consistent."""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from k8s_schema import assert_restricted, assert_valid, describe, env_vars, pod_specs

from workqueue.errors import PermanentError
from workqueue.launcher.builder import build_job
from workqueue.launcher.manifest import to_dicts
from workqueue.launcher.spec import APP_NAME, LABEL_APP, JobOptions, Resources

K8S = Path(__file__).resolve().parent.parent / "k8s"
NAMESPACE = "workqueue"
# Files with Kubernetes objects that are deliberately left out of the kustomization.
APPLIED_SEPARATELY = {"cronjob.yaml"}

# The options k8s/consumers.yaml was made from; see test_consumers_manifest_is_the_builders.
CONSUMER_OPTIONS = JobOptions(
    image="workqueue-example:0.1.0",
    queue="demo",
    handler="example_handler:handle",
    concurrency=2,
    name="workqueue-consumers",
    namespace=NAMESPACE,
    parallelism=4,
    restart_policy="Never",
    backoff_limit=6,
    resources=Resources(
        cpu_request="100m", cpu_limit="1", memory_request="128Mi", memory_limit="256Mi"
    ),
    settings={"lease_seconds": 60, "redis_retry_seconds": 120},
    labels={"app.kubernetes.io/component": "consumer"},
    image_pull_policy="IfNotPresent",
    tmp_size_limit="64Mi",
)


def load(name: str) -> list[dict[str, Any]]:
    with (K8S / name).open() as handle:
        return [doc for doc in yaml.safe_load_all(handle) if doc is not None]


def kustomization() -> dict[str, Any]:
    (doc,) = load("kustomization.yaml")
    return doc


def manifest_files() -> list[str]:
    return [*kustomization()["resources"], *sorted(APPLIED_SEPARATELY)]


def all_objects() -> list[tuple[str, dict[str, Any]]]:
    return [(name, obj) for name in manifest_files() for obj in load(name)]


def find(kind: str, name: str) -> dict[str, Any]:
    matches = [o for _, o in all_objects() if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(matches) == 1, f"expected one {kind}/{name}, found {len(matches)}"
    return matches[0]


def secret_value(secret: dict[str, Any], key: str) -> str:
    value: str = secret["stringData"][key]
    return value


def ids(pairs: list[tuple[str, dict[str, Any]]]) -> list[str]:
    return [f"{name}:{describe(obj)}" for name, obj in pairs]


OBJECTS = all_objects()


def test_the_kustomization_lists_every_manifest_file() -> None:
    doc = kustomization()
    assert doc["namespace"] == NAMESPACE
    listed = set(doc["resources"])
    on_disk = {path.name for path in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed | APPLIED_SEPARATELY == on_disk
    assert not listed & APPLIED_SEPARATELY


@pytest.mark.parametrize(("name", "obj"), OBJECTS, ids=ids(OBJECTS))
def test_manifest_passes_the_api_schema(name: str, obj: dict[str, Any]) -> None:
    assert_valid(obj)


@pytest.mark.parametrize(("name", "obj"), OBJECTS, ids=ids(OBJECTS))
def test_manifest_pods_meet_the_restricted_profile(name: str, obj: dict[str, Any]) -> None:
    for pod in pod_specs(obj):
        assert_restricted(pod, f"{name}: {describe(obj)}")


def test_every_object_lives_in_the_namespace() -> None:
    for name, obj in OBJECTS:
        if obj["kind"] == "Namespace":
            assert obj["metadata"]["name"] == NAMESPACE
        else:
            assert obj["metadata"].get("namespace") == NAMESPACE, f"{name}: {describe(obj)}"


def test_the_namespace_enforces_the_restricted_profile() -> None:
    labels = find("Namespace", NAMESPACE)["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"


def test_workloads_exist() -> None:
    kinds = {(o["kind"], o["metadata"]["name"]) for _, o in OBJECTS}
    assert {
        ("StatefulSet", "redis"),
        ("Service", "redis"),
        ("NetworkPolicy", "redis-clients-only"),
        ("Secret", "redis-auth"),
        ("Secret", "workqueue-redis"),
        ("Job", "workqueue-producer"),
        ("Job", "workqueue-consumers"),
        ("CronJob", "workqueue-nightly"),
    } <= kinds


# -- the Redis URL and password -----------------------------------------------------


def test_the_redis_url_reaches_pods_only_through_the_secret() -> None:
    clients = 0
    for name, obj in OBJECTS:
        for container, entry in env_vars(obj):
            assert "redis://" not in entry.get("value", ""), f"{name}: {container}"
            if entry["name"] == "WORKQUEUE_REDIS_URL":
                clients += 1
                assert entry == {
                    "name": "WORKQUEUE_REDIS_URL",
                    "valueFrom": {"secretKeyRef": {"name": "workqueue-redis", "key": "url"}},
                }, f"{name}: {container}"
    # producer, consumers, and the CronJob's producer and consumer
    assert clients == 4


def test_only_secrets_hold_urls_or_the_password() -> None:
    for name, obj in OBJECTS:
        if obj["kind"] == "Secret":
            continue
        text = json.dumps(obj)
        assert "redis://" not in text, f"{name}: {describe(obj)}"
        assert "CHANGE-ME" not in text, f"{name}: {describe(obj)}"


def test_server_password_and_client_url_agree() -> None:
    auth = secret_value(find("Secret", "redis-auth"), "auth.conf").split()
    assert auth[0] == "requirepass"
    url = urlsplit(secret_value(find("Secret", "workqueue-redis"), "url"))
    assert url.scheme == "redis"
    assert url.password == auth[1]
    service = find("Service", "redis")
    assert (url.hostname, url.port) == (service["metadata"]["name"], 6379)


# -- Redis -------------------------------------------------------------------------


def redis_conf() -> dict[str, str]:
    text = find("ConfigMap", "redis-config")["data"]["redis.conf"]
    entries = {}
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.strip().partition(" ")
            entries[key] = value
    return entries


def test_redis_persists_an_append_only_file_on_a_volume() -> None:
    conf = redis_conf()
    assert conf["appendonly"] == "yes"
    assert conf["maxmemory-policy"] == "noeviction"
    redis = find("StatefulSet", "redis")
    (claim,) = redis["spec"]["volumeClaimTemplates"]
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    (container,) = redis["spec"]["template"]["spec"]["containers"]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert mounts[claim["metadata"]["name"]] == conf["dir"]
    config_dir = mounts["config"]
    assert container["command"][-1] == f"{config_dir}/redis.conf"


def test_redis_reads_its_password_from_the_mounted_secret() -> None:
    redis = find("StatefulSet", "redis")["spec"]["template"]["spec"]
    (container,) = redis["containers"]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in redis["volumes"]}
    assert volumes["auth"]["secret"]["secretName"] == "redis-auth"
    assert redis_conf()["include"] == f"{mounts['auth']}/auth.conf"
    assert container.get("env") is None and container.get("args") is None


def test_the_redis_service_selects_the_redis_pods() -> None:
    service = find("Service", "redis")
    labels = find("StatefulSet", "redis")["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    assert service["spec"]["ports"][0]["port"] == 6379


def test_the_network_policy_admits_only_the_queue_pods() -> None:
    policy = find("NetworkPolicy", "redis-clients-only")["spec"]
    redis_labels = find("StatefulSet", "redis")["spec"]["template"]["metadata"]["labels"]
    assert policy["podSelector"]["matchLabels"].items() <= redis_labels.items()
    assert policy["policyTypes"] == ["Ingress"]
    (rule,) = policy["ingress"]
    (peer,) = rule["from"]
    assert set(peer) == {"podSelector"}  # this namespace only, no ipBlock
    admitted = peer["podSelector"]["matchLabels"]
    assert admitted == {LABEL_APP: APP_NAME}
    assert rule["ports"] == [{"protocol": "TCP", "port": 6379}]
    # Every client Pod carries the admitted label, and Redis itself does not.
    for _, obj in OBJECTS:
        for pod_labels in _pod_labels(obj):
            is_client = any(e["name"] == "WORKQUEUE_REDIS_URL" for _, e in env_vars(obj))
            assert (admitted.items() <= pod_labels.items()) == is_client, describe(obj)
    # So do the Jobs `workqueue launch` builds.
    built = build_job(CONSUMER_OPTIONS).spec.template.metadata.labels
    assert admitted.items() <= built.items()


def _pod_labels(obj: dict[str, Any]) -> list[dict[str, str]]:
    spec = obj.get("spec", {})
    if obj["kind"] == "CronJob":
        return [spec["jobTemplate"]["spec"]["template"]["metadata"]["labels"]]
    if obj["kind"] in {"Job", "StatefulSet", "Deployment"}:
        return [spec["template"]["metadata"]["labels"]]
    return []


# -- producer, consumers, CronJob --------------------------------------------------------


def test_the_producer_reads_the_items_config_map() -> None:
    pod = find("Job", "workqueue-producer")["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["command"] == [
        "workqueue",
        "produce",
        "demo",
        "/data/items.jsonl",
        "--id-field",
        "id",
    ]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert mounts["items"] == "/data"
    assert volumes["items"]["configMap"]["name"] == "workqueue-items"
    items = find("ConfigMap", "workqueue-items")["data"]
    assert "items.jsonl" in items


def example_items() -> list[Any]:
    text = find("ConfigMap", "workqueue-items")["data"]["items.jsonl"]
    return [json.loads(line) for line in text.splitlines()]


def test_the_consumers_manifest_is_the_builders() -> None:
    (on_disk,) = load("consumers.yaml")
    (built,) = to_dicts([build_job(CONSUMER_OPTIONS)])
    assert on_disk == built, (
        "k8s/consumers.yaml differs from build_job(CONSUMER_OPTIONS): regenerate it with "
        "workqueue.launcher.manifest.to_yaml"
    )
    assert "completions" not in on_disk["spec"]
    assert on_disk["spec"]["parallelism"] == 4


def test_the_cronjob_gives_each_run_its_own_queue() -> None:
    cron = find("CronJob", "workqueue-nightly")["spec"]
    assert cron["concurrencyPolicy"] == "Forbid"
    job = cron["jobTemplate"]["spec"]
    assert (job["completions"], job["parallelism"]) == (1, 1)
    pod = job["template"]["spec"]
    (producer,) = pod["initContainers"]
    (consumer,) = pod["containers"]
    for container in (producer, consumer):
        queue = {e["name"]: e for e in container["env"]}["QUEUE"]
        assert queue["valueFrom"]["fieldRef"]["fieldPath"] == (
            "metadata.labels['batch.kubernetes.io/job-name']"
        )
        assert container["command"][2] == "$(QUEUE)"
    assert producer["command"][:2] == ["workqueue", "produce"]
    # A replaced Pod runs the producer again: item ids make that add nothing.
    assert producer["command"][-2:] == ["--id-field", "id"]
    assert all("id" in item for item in example_items())
    assert consumer["command"][:2] == ["workqueue", "consume"]


def test_every_image_is_the_example_image_or_redis() -> None:
    images = set()
    for _, obj in OBJECTS:
        for pod in pod_specs(obj):
            images |= {c["image"] for c in [*pod.get("initContainers", []), *pod["containers"]]}
    assert images == {"workqueue-example:0.1.0", "valkey/valkey:8.1-alpine"}


# -- the example image ----------------------------------------------------------------


def load_example_handler() -> ModuleType:
    spec = importlib.util.spec_from_file_location("example_handler", K8S / "example_handler.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_example_handler_squares_the_example_items(monkeypatch: pytest.MonkeyPatch) -> None:
    module = load_example_handler()
    monkeypatch.setattr(module, "WORK_SECONDS", 0)
    items = example_items()
    assert len(items) == 100
    results = [module.handle(item) for item in items]
    assert results[6] == {"n": 7, "square": 49}
    assert len({item["id"] for item in items}) == 100
    with pytest.raises(PermanentError, match="integer 'n'"):
        module.handle({"n": "seven"})


def test_the_dockerfile_runs_as_the_manifests_user_with_the_handler() -> None:
    lines = [line.strip() for line in (K8S / "Dockerfile").read_text().splitlines() if line.strip()]
    users = [line.split()[1] for line in lines if line.startswith("USER ")]
    assert users == ["10001:10001"]
    assert "COPY k8s/example_handler.py ./" in lines
    handlers = {
        c["command"][c["command"].index("--handler") + 1]
        for _, obj in OBJECTS
        for pod in pod_specs(obj)
        for c in pod["containers"]
        if "--handler" in c["command"]
    }
    assert handlers == {"example_handler:handle"}
    uids = {pod["securityContext"]["runAsUser"] for _, o in OBJECTS for pod in pod_specs(o)}
    assert uids == {10001, 999}  # the worker image's user, and Redis's


# -- kubectl's own kustomize -----------------------------------------------------------


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
def test_kubectl_kustomize_renders_valid_objects() -> None:
    done = subprocess.run(
        ["kubectl", "kustomize", str(K8S)], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    rendered = [doc for doc in yaml.safe_load_all(done.stdout) if doc is not None]
    expected = [obj for name in kustomization()["resources"] for obj in load(name)]
    assert sorted(map(describe, rendered)) == sorted(map(describe, expected))
    for obj in rendered:
        assert_valid(obj)
        for pod in pod_specs(obj):
            assert_restricted(pod, f"kustomize output {describe(obj)}")
