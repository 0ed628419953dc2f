"""Which runtime container a logs or exec request means, from the pod and its status; pure.

The rules and messages are kubelet's (validateContainerLogStatus, findContainer), so `kubectl logs`
shows the same errors as against a kubeadm node.
"""
from __future__ import annotations

from typing import Any

Obj = dict[str, Any]
_CONTAINER_LISTS = ("containers", "initContainers", "ephemeralContainers")
_STATUS_LISTS = ("containerStatuses", "initContainerStatuses", "ephemeralContainerStatuses")


class ContainerLookupError(Exception):
    """The request names something the pod cannot serve; message is kubelet's text."""

    def __init__(self, message: str, http_status: int = 400) -> None:
        super().__init__(message)
        self.http_status = http_status


def has_container(pod: Obj, name: str) -> bool:
    spec = pod.get("spec") or {}
    return any(c.get("name") == name for key in _CONTAINER_LISTS for c in spec.get(key) or [])


def container_status(pod: Obj, name: str) -> Obj | None:
    status = pod.get("status") or {}
    for key in _STATUS_LISTS:
        for entry in status.get(key) or []:
            if entry.get("name") == name:
                return entry
    return None


def runtime_id(container_id: str) -> str:
    """`containerd://abc` → `abc`."""
    return container_id.split("://", 1)[-1]


def log_container_id(pod: Obj, name: str, previous: bool) -> str:
    """The runtime id of the container whose log `kubectl logs [--previous]` wants."""
    pod_name = pod["metadata"]["name"]
    status = container_status(pod, name)
    if status is None:
        raise ContainerLookupError(f'container "{name}" in pod "{pod_name}" is not available')
    state, last = status.get("state") or {}, (status.get("lastState") or {}).get("terminated") or {}
    if previous:
        if not last.get("containerID"):
            raise ContainerLookupError(f'previous terminated container "{name}" in pod "{pod_name}" not found')
        return runtime_id(last["containerID"])
    if "running" in state:
        return runtime_id(status.get("containerID", ""))
    if "terminated" in state:
        terminated_id = state["terminated"].get("containerID") or last.get("containerID")
        if not terminated_id:
            raise ContainerLookupError(f'container "{name}" in pod "{pod_name}" is terminated')
        return runtime_id(terminated_id)
    if last:
        if not last.get("containerID"):
            raise ContainerLookupError(f'container "{name}" in pod "{pod_name}" is terminated')
        return runtime_id(last["containerID"])
    if "waiting" in state:
        reason = state["waiting"].get("reason", "")
        detail = {"ErrImagePull": "image can't be pulled",
                  "ImagePullBackOff": "trying and failing to pull image"}.get(reason, reason)
        raise ContainerLookupError(f'container "{name}" in pod "{pod_name}" is waiting to start: {detail}')
    raise ContainerLookupError(f'container "{name}" in pod "{pod_name}" is waiting to start - no logs yet')


def running_container_id(pod: Obj, name: str) -> str:
    """The runtime id of the running container an exec or attach goes to."""
    status = container_status(pod, name)
    if status is None or "running" not in (status.get("state") or {}) or not status.get("containerID"):
        raise ContainerLookupError(f'container not found ("{name}")', 404)
    return runtime_id(status["containerID"])
