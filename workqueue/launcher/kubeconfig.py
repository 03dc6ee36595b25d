"""Finding the cluster the way kubectl does, and keeping its credentials out of messages.

`load_cluster` looks, in this order, at

1. the kubeconfig file given by the caller (the ``--kubeconfig`` flag), which must exist;
2. ``$KUBECONFIG``, a list of files separated by ``os.pathsep``: those that exist
   are merged, the first file to define a cluster, user or context name wins,
   and so does the first file that sets ``current-context`` (as in kubectl);
3. ``~/.kube/config``;
4. the Pod's service account (in-cluster configuration), when
   ``KUBERNETES_SERVICE_HOST`` and ``KUBERNETES_SERVICE_PORT`` are set.

A context may be chosen by name; otherwise the current context is used. The
default namespace is the context's, or the service account's, or ``default``.
Nothing here writes the kubeconfig back (refreshed tokens are kept in memory).

Credentials (bearer tokens, basic-auth headers) live only in the client's
`Configuration`; `redact` removes them from any text before it reaches a
message or a log record, and `server_of` gives the server URL without a password.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client, config
from kubernetes.config.config_exception import ConfigException

from workqueue.errors import LauncherError
from workqueue.settings import redact_url

__all__ = ["Cluster", "load_cluster", "redact", "server_of"]

log = logging.getLogger(__name__)

DEFAULT_KUBECONFIG = "~/.kube/config"
SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


@dataclass(frozen=True)
class Cluster:
    """A ready API client, where its configuration came from, and its default namespace."""

    api_client: client.ApiClient
    source: str
    namespace: str


def server_of(api_client: client.ApiClient) -> str:
    """The API server URL of `api_client`, with any password in it masked."""
    return redact_url(str(api_client.configuration.host or "<no server>"))


def redact(text: str, api_client: client.ApiClient) -> str:
    """`text` with every credential the client holds replaced by ``***``."""
    conf = api_client.configuration
    secrets: set[str] = set()
    for value in [*(conf.api_key or {}).values(), conf.access_token, conf.password]:
        if not value:
            continue
        secrets.add(str(value))
        # "Bearer abc" is stored whole; the bare token may appear on its own.
        secrets.add(str(value).split(" ", 1)[-1])
    for secret in sorted(secrets, key=len, reverse=True):
        if len(secret) >= 4:
            text = text.replace(secret, "***")
    return text


def _kubeconfig_files(explicit: str | None) -> tuple[list[str], str]:
    """The existing kubeconfig files to merge, and a phrase saying where we looked."""
    if explicit:
        path = os.path.expanduser(explicit)
        if not os.path.isfile(path):
            raise LauncherError(f"the kubeconfig file {explicit!r} does not exist")
        return [path], repr(explicit)
    env = os.environ.get("KUBECONFIG", "")
    if env:
        listed = [p for p in env.split(os.pathsep) if p]
        found = [os.path.expanduser(p) for p in listed if os.path.isfile(os.path.expanduser(p))]
        return found, f"KUBECONFIG={env!r}"
    path = os.path.expanduser(DEFAULT_KUBECONFIG)
    return ([path] if os.path.isfile(path) else []), DEFAULT_KUBECONFIG


def _read_contexts(files: list[str]) -> tuple[dict[str, dict[str, Any]], str | None]:
    """Every context by name (first file wins) and the first current-context set."""
    contexts: dict[str, dict[str, Any]] = {}
    current: str | None = None
    for path in files:
        with open(path, encoding="utf-8") as handle:
            data = yaml.safe_load(handle) or {}
        if not isinstance(data, dict):
            raise LauncherError(f"the kubeconfig file {path!r} is not a YAML mapping")
        for entry in data.get("contexts") or []:
            if isinstance(entry, dict) and entry.get("name"):
                contexts.setdefault(str(entry["name"]), entry.get("context") or {})
        if current is None and data.get("current-context"):
            current = str(data["current-context"])
    return contexts, current


def _from_kubeconfig(files: list[str], where: str, context: str | None) -> Cluster:
    try:
        contexts, current = _read_contexts(files)
    except (OSError, yaml.YAMLError) as exc:
        raise LauncherError(f"cannot read the kubeconfig ({where}): {exc}") from exc
    chosen = context or current
    names = ", ".join(sorted(contexts)) or "none"
    if not chosen:
        raise LauncherError(
            f"the kubeconfig ({where}) sets no current context; choose one of its contexts "
            f"({names}) or run `kubectl config use-context NAME`"
        )
    if chosen not in contexts:
        raise LauncherError(
            f"the kubeconfig ({where}) has no context {chosen!r}; its contexts: {names}"
        )
    configuration = client.Configuration()
    try:
        config.load_kube_config(  # type: ignore[no-untyped-call]
            config_file=os.pathsep.join(files),
            context=chosen,
            client_configuration=configuration,
            persist_config=False,
        )
    except (ConfigException, OSError, yaml.YAMLError, KeyError, TypeError, ValueError) as exc:
        raise LauncherError(
            f"the kubeconfig ({where}), context {chosen!r}, cannot be used: {exc}"
        ) from exc
    namespace = str(contexts[chosen].get("namespace") or "default")
    source = f"context {chosen!r} of the kubeconfig ({where})"
    log.debug("using %s, server %s", source, redact_url(str(configuration.host)))
    return Cluster(client.ApiClient(configuration), source, namespace)


def _in_cluster() -> Cluster:
    configuration = client.Configuration()
    try:
        config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
    except ConfigException as exc:
        raise LauncherError(
            f"KUBERNETES_SERVICE_HOST is set, so this looks like a Pod, but its service "
            f"account cannot be used: {exc} (mount a service account token into the Pod, "
            "or set KUBECONFIG)"
        ) from exc
    try:
        namespace = SERVICE_ACCOUNT_NAMESPACE.read_text(encoding="utf-8").strip() or "default"
    except OSError:
        namespace = "default"
    return Cluster(client.ApiClient(configuration), "the Pod's service account", namespace)


def load_cluster(kubeconfig: str | None = None, context: str | None = None) -> Cluster:
    """Find the cluster as kubectl would (see the module docstring) and build a client.

    Raises `LauncherError` when no configuration is found or it cannot be used.
    """
    files, where = _kubeconfig_files(kubeconfig)
    if files:
        return _from_kubeconfig(files, where, context)
    in_pod = os.environ.get("KUBERNETES_SERVICE_HOST") and os.environ.get("KUBERNETES_SERVICE_PORT")
    if in_pod and context is None:
        return _in_cluster()
    if context is not None:
        raise LauncherError(
            f"context {context!r} was asked for, but no kubeconfig file was found ({where})"
        )
    raise LauncherError(
        f"no Kubernetes configuration found: no kubeconfig file at {where}, and not inside "
        "a cluster (KUBERNETES_SERVICE_HOST is unset). Set KUBECONFIG to your kubeconfig "
        "file (or write ~/.kube/config, e.g. with your cloud's get-credentials command), "
        "or run the launcher in a Pod with a service account"
    )
