"""Observed runtime state → the pod's API status, following kubelet; pure."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from agent.runtime_state import ContainerPhase, ContainerState, PodRuntimeStatus

Obj = dict[str, Any]

CONTAINER_CREATING = "ContainerCreating"
TERMINAL_PHASES = ("Succeeded", "Failed")


@dataclass(frozen=True)
class ContainerWaiting:
    """Why a container is not running, from the last sync (ErrImagePull, ImagePullBackOff,
    CreateContainerConfigError, CreateContainerError, RunContainerError, CrashLoopBackOff...)."""
    reason: str
    message: str = ""


def rfc3339(ns_or_datetime: int | datetime) -> str:
    if isinstance(ns_or_datetime, datetime):
        moment = ns_or_datetime
    else:
        moment = datetime.fromtimestamp(ns_or_datetime / 1e9, timezone.utc)
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _terminated(container: ContainerState, container_id: str) -> Obj:
    reason = container.reason or ("Completed" if container.exit_code == 0 else "Error")
    state: Obj = {"exitCode": container.exit_code, "reason": reason, "containerID": container_id}
    if container.message:
        state["message"] = container.message
    if container.started_at:
        state["startedAt"] = rfc3339(container.started_at)
    if container.finished_at:
        state["finishedAt"] = rfc3339(container.finished_at)
    return state


def container_status(spec_container: Obj, runtime: PodRuntimeStatus, waiting: ContainerWaiting | None,
                     runtime_name: str) -> Obj:
    name = spec_container["name"]
    history = runtime.containers_named(name)
    latest = history[0] if history else None
    result: Obj = {"name": name, "image": spec_container["image"], "imageID": "",
                   "restartCount": 0, "ready": False, "started": False, "state": {}, "lastState": {}}
    if latest is None:
        result["state"] = {"waiting": _waiting(waiting)}
        return result

    container_id = f"{runtime_name}://{latest.id}"
    result.update(image=latest.image or spec_container["image"], imageID=latest.image_ref,
                  containerID=container_id, restartCount=latest.attempt)
    if latest.phase == ContainerPhase.RUNNING:
        result["state"] = {"running": {"startedAt": rfc3339(latest.started_at)}}
        result["ready"] = result["started"] = True
    elif latest.phase == ContainerPhase.EXITED:
        terminated = _terminated(latest, container_id)
        if waiting is not None:
            # It is due to restart: kubelet shows the wait and the run that ended as lastState.
            result["state"] = {"waiting": _waiting(waiting)}
            result["lastState"] = {"terminated": terminated}
            return result
        result["state"] = {"terminated": terminated}
    else:
        result["state"] = {"waiting": _waiting(waiting)}
    previous = next((c for c in history[1:] if c.phase == ContainerPhase.EXITED), None)
    if previous is not None:
        result["lastState"] = {"terminated": _terminated(previous, f"{runtime_name}://{previous.id}")}
    return result


def _waiting(waiting: ContainerWaiting | None) -> Obj:
    if waiting is None:
        return {"reason": CONTAINER_CREATING}
    state: Obj = {"reason": waiting.reason}
    if waiting.message:
        state["message"] = waiting.message
    return state


def pod_phase(pod: Obj, statuses: list[Obj], pod_is_terminal: bool) -> str:
    """kubelet's getPhase for regular containers."""
    spec = pod.get("spec", {})
    restart_policy = spec.get("restartPolicy") or "Always"
    waiting = running = stopped = succeeded = unknown = 0
    by_name = {s["name"]: s for s in statuses}
    for container in spec.get("containers") or []:
        status = by_name.get(container["name"])
        if status is None:
            unknown += 1
            continue
        state = status.get("state", {})
        if "running" in state:
            running += 1
        elif "terminated" in state:
            stopped += 1
            if state["terminated"].get("exitCode") == 0:
                succeeded += 1
        elif "waiting" in state:
            if "terminated" in status.get("lastState", {}):
                stopped += 1
            else:
                waiting += 1
        else:
            unknown += 1

    if waiting > 0:
        return "Pending"
    if running > 0 and unknown == 0:
        return "Running"
    if running == 0 and stopped > 0 and unknown == 0:
        if pod_is_terminal:
            return "Succeeded" if stopped == succeeded else "Failed"
        if restart_policy == "Always":
            return "Running"
        if stopped == succeeded:
            return "Succeeded"
        if restart_policy == "Never":
            return "Failed"
        return "Running"
    return "Pending"


def qos_class(pod: Obj) -> str:
    requests_seen = limits_seen = False
    guaranteed = True
    for container in pod.get("spec", {}).get("containers") or []:
        resources = container.get("resources") or {}
        requests, limits = resources.get("requests") or {}, resources.get("limits") or {}
        requests_seen |= bool(requests)
        limits_seen |= bool(limits)
        for resource in ("cpu", "memory"):
            if resource not in limits or requests.get(resource, limits[resource]) != limits[resource]:
                guaranteed = False
    if not requests_seen and not limits_seen:
        return "BestEffort"
    return "Guaranteed" if guaranteed else "Burstable"


def _condition(kind: str, ok: bool, reason: str = "", message: str = "") -> Obj:
    condition: Obj = {"type": kind, "status": "True" if ok else "False"}
    if not ok and reason:
        condition["reason"] = reason
    if not ok and message:
        condition["message"] = message
    return condition


def pod_conditions(pod: Obj, runtime: PodRuntimeStatus, statuses: list[Obj], phase: str) -> list[Obj]:
    sandbox = runtime.latest_sandbox()
    host_network = bool(pod.get("spec", {}).get("hostNetwork"))
    sandbox_ready = sandbox is not None and sandbox.ready and (host_network or bool(sandbox.ip))
    unready = [s["name"] for s in statuses if not s.get("ready")]
    if phase in TERMINAL_PHASES:
        containers_ready = _condition("ContainersReady", False, "PodCompleted")
        ready = _condition("Ready", False, "PodCompleted")
    else:
        message = f"containers with unready status: [{' '.join(unready)}]"
        containers_ready = _condition("ContainersReady", not unready, "ContainersNotReady", message)
        ready = _condition("Ready", not unready, "ContainersNotReady", message)
    conditions = [
        _condition("PodReadyToStartContainers", sandbox_ready),
        _condition("Initialized", True),
        ready,
        containers_ready,
    ]
    scheduled = next((c for c in pod.get("status", {}).get("conditions") or []
                      if c.get("type") == "PodScheduled"), None)
    if scheduled is not None:
        conditions.append(dict(scheduled))
    return conditions


def carry_transition_times(old: list[Obj], new: list[Obj], now: str) -> list[Obj]:
    """lastTransitionTime changes only when a condition's status does."""
    previous = {c.get("type"): c for c in old}
    for condition in new:
        before = previous.get(condition["type"])
        if before is not None and before.get("status") == condition["status"] \
                and before.get("lastTransitionTime"):
            condition["lastTransitionTime"] = before["lastTransitionTime"]
        else:
            condition.setdefault("lastTransitionTime", now)
        condition.setdefault("lastProbeTime", None)
    return new


def generate_pod_status(pod: Obj, runtime: PodRuntimeStatus, waiting: dict[str, ContainerWaiting],
                        *, host_ips: list[str], runtime_name: str, now: datetime,
                        pod_is_terminal: bool = False) -> Obj:
    old = pod.get("status") or {}
    statuses = [container_status(c, runtime, waiting.get(c["name"]), runtime_name)
                for c in pod.get("spec", {}).get("containers") or []]
    phase = pod_phase(pod, statuses, pod_is_terminal)
    stamp = rfc3339(now)
    status: Obj = {
        "phase": phase,
        "conditions": carry_transition_times(old.get("conditions") or [],
                                             pod_conditions(pod, runtime, statuses, phase), stamp),
        "containerStatuses": statuses,
        "qosClass": old.get("qosClass") or qos_class(pod),
        "startTime": old.get("startTime") or stamp,
    }
    if host_ips:
        status["hostIP"] = host_ips[0]
        status["hostIPs"] = [{"ip": ip} for ip in host_ips]
    sandbox = runtime.latest_sandbox()
    if pod.get("spec", {}).get("hostNetwork") and host_ips:
        pod_ips = list(host_ips)
    elif sandbox is not None and sandbox.ip:
        pod_ips = [sandbox.ip] + sandbox.additional_ips
    else:
        pod_ips = [p["ip"] for p in old.get("podIPs") or []] if phase in TERMINAL_PHASES else []
    if pod_ips:
        status["podIP"] = pod_ips[0]
        status["podIPs"] = [{"ip": ip} for ip in pod_ips]
    return status
