"""Checks of Kubernetes objects for the tests: the API schema and the restricted profile.

`assert_valid` checks a dict against the OpenAPI schema of the newest
Kubernetes version the installed kubernetes-validate ships, in strict mode
(unknown fields are errors), and fails with the object, the field path and
the reason. `assert_restricted` checks a Pod spec against the Pod Security
Standards "restricted" profile, plus the read-only root filesystem and the
unmounted service account token this project asks of every Pod.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import kubernetes_validate
import pytest
from kubernetes_validate.utils import latest_version

KUBERNETES_VERSION = latest_version()

# Volume types the restricted profile allows.
ALLOWED_VOLUMES = {
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
}


def describe(obj: dict[str, Any]) -> str:
    """``Kind/name`` of an object, for messages."""
    name = obj.get("metadata", {}).get("name", "<unnamed>")
    return f"{obj.get('kind', '<no kind>')}/{name}"


def assert_valid(obj: dict[str, Any], version: str = KUBERNETES_VERSION) -> None:
    """Fail unless `obj` is valid against the strict schema of Kubernetes `version`."""
    # The message is built inside the handlers and the test failed outside them,
    # so that the report shows it alone, not the whole schema the error carries.
    problem = None
    try:
        kubernetes_validate.validate(obj, version, strict=True)
    except kubernetes_validate.ValidationError as exc:
        path = ".".join(str(part) for part in exc.path) or "<top>"
        problem = f"is not valid for Kubernetes {exc.version}: at {path}: {exc.message}"
    except kubernetes_validate.SchemaNotFoundError as exc:
        problem = f"has no schema: {exc.message}"
    if problem is not None:
        pytest.fail(f"{describe(obj)} {problem}", pytrace=False)


def pod_specs(obj: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The Pod specs inside a Pod, Job, CronJob or workload object."""
    kind, spec = obj["kind"], obj.get("spec", {})
    if kind == "Pod":
        yield spec
    elif kind == "CronJob":
        yield spec["jobTemplate"]["spec"]["template"]["spec"]
    elif kind in {"Job", "Deployment", "StatefulSet", "DaemonSet", "ReplicaSet"}:
        yield spec["template"]["spec"]


def containers(pod: dict[str, Any]) -> list[dict[str, Any]]:
    """All containers of a Pod spec, init containers first."""
    return [*pod.get("initContainers", []), *pod["containers"]]


def assert_restricted(pod: dict[str, Any], where: str) -> None:
    """Fail unless the Pod spec meets the restricted profile and the project's hardening."""
    problems = []
    pod_ctx = pod.get("securityContext", {})
    for key in ("hostNetwork", "hostPID", "hostIPC"):
        if pod.get(key):
            problems.append(f"{key} is set")
    if pod.get("automountServiceAccountToken") is not False:
        problems.append("automountServiceAccountToken is not false")
    for volume in pod.get("volumes", []):
        kinds = set(volume) - {"name"}
        if not kinds <= ALLOWED_VOLUMES:
            problems.append(f"volume {volume['name']} is of a forbidden type {sorted(kinds)}")
    if pod_ctx.get("runAsUser") == 0:
        problems.append("the Pod runs as user 0")
    for container in containers(pod):
        name = container["name"]
        ctx = container.get("securityContext", {})
        if ctx.get("privileged"):
            problems.append(f"{name}: privileged")
        if ctx.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{name}: allowPrivilegeEscalation is not false")
        if ctx.get("capabilities", {}).get("drop") != ["ALL"]:
            problems.append(f"{name}: capabilities do not drop ALL")
        if set(ctx.get("capabilities", {}).get("add", [])) - {"NET_BIND_SERVICE"}:
            problems.append(f"{name}: adds capabilities")
        if ctx.get("readOnlyRootFilesystem") is not True:
            problems.append(f"{name}: root filesystem is writable")
        if not (ctx.get("runAsNonRoot") or pod_ctx.get("runAsNonRoot")):
            problems.append(f"{name}: runAsNonRoot is not true")
        if ctx.get("runAsUser", pod_ctx.get("runAsUser")) in (None, 0):
            problems.append(f"{name}: no non-zero runAsUser")
        seccomp = ctx.get("seccompProfile", pod_ctx.get("seccompProfile", {}))
        if seccomp.get("type") not in ("RuntimeDefault", "Localhost"):
            problems.append(f"{name}: seccompProfile is {seccomp.get('type')!r}")
        for port in container.get("ports", []):
            if port.get("hostPort"):
                problems.append(f"{name}: uses a hostPort")
    if problems:
        pytest.fail(f"{where} breaks the restricted profile: " + "; ".join(problems), pytrace=False)


def env_vars(obj: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(container name, env entry) for every environment variable in the object's Pods."""
    for pod in pod_specs(obj):
        for container in containers(pod):
            for entry in container.get("env", []):
                yield container["name"], entry
