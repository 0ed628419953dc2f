"""DefaultTolerationSeconds admission: every pod created through the API tolerates the
not-ready/unreachable NoExecute taints for a bounded time unless it says otherwise.

Difference from upstream, for simplicity: tolerationSeconds is --pod-eviction-timeout
(upstream: --default-*-toleration-seconds, 300), so that flag keeps its old meaning.
"""
from __future__ import annotations

from typing import Any

from apiserver.admission.chain import CREATE, Attributes, Step
from apiserver.scheduler.predicates import tolerates

NOT_READY_TAINT = "node.kubernetes.io/not-ready"
UNREACHABLE_TAINT = "node.kubernetes.io/unreachable"


def with_default_tolerations(pod: Any, seconds: int) -> Any:
    """DefaultTolerationSeconds admission: tolerate not-ready/unreachable NoExecute for `seconds`,
    unless the pod already tolerates them (a copy is returned when something is added)."""
    if not isinstance(pod, dict) or not isinstance(pod.get("spec"), dict):
        return pod
    tolerations = pod["spec"].get("tolerations") or []
    if not isinstance(tolerations, list):
        return pod
    added = []
    for key in (NOT_READY_TAINT, UNREACHABLE_TAINT):
        taint = {"key": key, "effect": "NoExecute"}
        if not any(isinstance(t, dict) and tolerates(t, taint) for t in tolerations):
            added.append({"key": key, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": seconds})
    if not added:
        return pod
    return {**pod, "spec": {**pod["spec"], "tolerations": [*tolerations, *added]}}


class DefaultTolerationSeconds:
    """The plugin: pods created through the API get the tolerations above."""
    name = "DefaultTolerationSeconds"

    def __init__(self, seconds: int = 300):
        self.seconds = seconds

    async def start(self, attributes: Attributes) -> Step | None:
        if attributes.operation == CREATE and attributes.is_("", "pods"):
            return _AddTolerations(self.seconds)
        return None


class _AddTolerations(Step):
    def __init__(self, seconds: int):
        self.seconds = seconds

    async def admit(self, obj: Any, old: Any) -> Any:
        return with_default_tolerations(obj, self.seconds)
