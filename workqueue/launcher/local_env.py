"""A local pod's environment and command line, resolved as the kubelet would.

The process environment is built in layers, later ones winning:

1. the caller's base environment (``os.environ`` by default), standing in for
   the image's own environment, with the directory of ``sys.executable``
   prepended to ``PATH`` so that ``workqueue`` is this installation's command;
2. what the kubelet adds: ``HOSTNAME`` (the pod name) and, in an Indexed Job,
   ``JOB_COMPLETION_INDEX``;
3. the container's ``envFrom`` sources, then its ``env`` entries, in order.

Values come from ``value``, from ``secretKeyRef``/``configMapKeyRef`` (looked
up in mappings the caller gives, keyed by ``(object name, key)``) or from a
``fieldRef`` to the pod's metadata. ``$(NAME)`` references in values, command
and arguments are expanded against the variables the container defines, as
Kubernetes does: ``$$`` is a literal ``$`` and an unknown reference stays as is.

A secret that is missing (and not optional) means the pod cannot start: it
raises `LauncherError` naming the variable, the secret and the key, never a
value. Secret values are kept in the process environment only.
"""

from __future__ import annotations

import os
import re
import socket
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field

from kubernetes.client import (
    V1ConfigMapEnvSource,
    V1ConfigMapKeySelector,
    V1Container,
    V1SecretEnvSource,
    V1SecretKeySelector,
)

from workqueue.errors import LauncherError

# {(secret or ConfigMap name, key): value}
ObjectData = Mapping[tuple[str, str], str]

_ENV_NAME = re.compile(r"[-._a-zA-Z][-._a-zA-Z0-9]*\Z")
_LABEL_FIELD = re.compile(r"metadata\.(labels|annotations)\['([^']+)'\]\Z")


@dataclass(frozen=True)
class PodIdentity:
    """What a ``fieldRef`` can read: the pod's name, namespace, labels and annotations."""

    name: str
    namespace: str
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)


def expand(text: str, variables: Mapping[str, str]) -> str:
    """Expand ``$(NAME)`` in `text` from `variables`, with Kubernetes' rules."""
    out: list[str] = []
    i = 0
    while i < len(text):
        char = text[i]
        if char != "$" or i + 1 == len(text):
            out.append(char)
            i += 1
        elif text[i + 1] == "$":
            out.append("$")
            i += 2
        elif text[i + 1] == "(":
            end = text.find(")", i + 2)
            if end == -1:
                out.append(text[i:])
                break
            name = text[i + 2 : end]
            out.append(variables.get(name, text[i : end + 1]))
            i = end + 1
        else:
            out.append(char)
            i += 1
    return "".join(out)


def _field_value(path: str, pod: PodIdentity, where: str) -> str:
    simple = {
        "metadata.name": pod.name,
        "metadata.namespace": pod.namespace,
        "spec.nodeName": socket.gethostname(),
        "status.podIP": "127.0.0.1",
        "status.hostIP": "127.0.0.1",
    }
    if path in simple:
        return simple[path]
    match = _LABEL_FIELD.match(path)
    if match is None:
        raise LauncherError(
            f"{where}: fieldRef {path!r} is not available locally (use metadata.name, "
            "metadata.namespace, metadata.labels['k'], metadata.annotations['k'], "
            "spec.nodeName, status.podIP or status.hostIP)"
        )
    source = pod.labels if match.group(1) == "labels" else pod.annotations
    return source.get(match.group(2), "")


def _from_object(
    kind: str, ref: V1SecretKeySelector | V1ConfigMapKeySelector, data: ObjectData, where: str
) -> str | None:
    value = data.get((ref.name or "", ref.key))
    if value is None and not ref.optional:
        raise LauncherError(
            f"{where}: the pod cannot start: {kind} {ref.name!r} has no key {ref.key!r} "
            f"(the local engine was given no such {kind} value)"
        )
    return value


def container_env(
    container: V1Container,
    pod: PodIdentity,
    *,
    secrets: ObjectData,
    config_maps: ObjectData,
    kubelet: Mapping[str, str],
) -> dict[str, str]:
    """The variables the container itself defines, after the kubelet's ones (layers 2 and 3)."""
    env: dict[str, str] = dict(kubelet)
    where = f"container {container.name!r}"
    for env_from in container.env_from or []:
        prefix = env_from.prefix or ""
        ref: V1SecretEnvSource | V1ConfigMapEnvSource
        if env_from.secret_ref is not None:
            kind, ref, data = "secret", env_from.secret_ref, secrets
        elif env_from.config_map_ref is not None:
            kind, ref, data = "ConfigMap", env_from.config_map_ref, config_maps
        else:
            raise LauncherError(f"{where}: an envFrom entry names no secret or ConfigMap")
        found = {key: value for (name, key), value in data.items() if name == ref.name}
        if not found and not ref.optional:
            raise LauncherError(
                f"{where}: the pod cannot start: envFrom names {kind} {ref.name!r}, "
                f"which the local engine was not given"
            )
        for key, found_value in found.items():
            if _ENV_NAME.match(prefix + key):  # the kubelet skips keys that are no valid name
                env[prefix + key] = found_value
    for var in container.env or []:
        here = f"{where}, env {var.name!r}"
        source = var.value_from
        if source is None:
            env[var.name] = expand(var.value or "", env)
            continue
        value: str | None
        if source.secret_key_ref is not None:
            value = _from_object("secret", source.secret_key_ref, secrets, here)
        elif source.config_map_key_ref is not None:
            value = _from_object("ConfigMap", source.config_map_key_ref, config_maps, here)
        elif source.field_ref is not None:
            value = _field_value(source.field_ref.field_path, pod, here)
        else:
            raise LauncherError(f"{here}: only value, secretKeyRef, configMapKeyRef and fieldRef")
        if value is not None:
            env[var.name] = value
    return env


def process_env(base: Mapping[str, str], defined: Mapping[str, str]) -> dict[str, str]:
    """The full process environment: `base` with this interpreter's bin first on PATH."""
    env = dict(base)
    bin_dir = os.path.dirname(sys.executable)
    path = [p for p in env.get("PATH", os.defpath).split(os.pathsep) if p and p != bin_dir]
    env["PATH"] = os.pathsep.join([bin_dir, *path])
    env.update(defined)
    return env


def command_line(container: V1Container, defined: Mapping[str, str]) -> list[str]:
    """``command`` + ``args`` with ``$(NAME)`` expanded; the image is ignored."""
    return [expand(part, defined) for part in [*(container.command or []), *(container.args or [])]]
