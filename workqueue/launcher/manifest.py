"""Kubernetes objects as plain dicts and as YAML that ``kubectl apply -f -`` accepts.

Objects are serialized the way the kubernetes client sends them to the API
server: camelCase field names, no unset (null) fields. Each object must name
its apiVersion and kind, which the builder always sets.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import yaml
from kubernetes.client import ApiClient

from workqueue.errors import UsageError


def to_dict(obj: Any) -> dict[str, Any]:
    """One object (a kubernetes client model or a dict) as a JSON-ready dict."""
    sanitize: Callable[[Any], Any] = ApiClient().sanitize_for_serialization
    data = sanitize(obj)
    if not isinstance(data, Mapping):
        raise UsageError(f"cannot write {type(obj).__name__} as a Kubernetes object")
    missing = [key for key in ("apiVersion", "kind") if not data.get(key)]
    if missing:
        raise UsageError(
            f"a {type(obj).__name__} without {' and '.join(missing)} cannot be applied"
        )
    return dict(data)


def to_dicts(objects: Iterable[Any]) -> list[dict[str, Any]]:
    """Each object as a JSON-ready dict (see `to_dict`)."""
    return [to_dict(obj) for obj in objects]


def to_yaml(objects: Iterable[Any]) -> str:
    """The objects as one multi-document YAML stream, each starting with ``---``."""
    documents = [
        yaml.safe_dump(data, sort_keys=False, default_flow_style=False, allow_unicode=True)
        for data in to_dicts(objects)
    ]
    return "---\n" + "---\n".join(documents) if documents else ""
