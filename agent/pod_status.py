"""Observed runtime state → the pod's API status, following kubelet; pure."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from agent.pod_actions import is_sidecar, sandbox_needs_replacing, should_container_be_restarted
from shipmate.qos import compute_qos_class
from shipmate.timeutil import rfc3339
from agent.resize import ResizeView, actual_resources, resizable_containers, resize_action
from agent.runtime_state import ContainerPhase, ContainerState, PodRuntimeStatus

Obj = dict[str, Any]

CONTAINER_CREATING = "ContainerCreating"
POD_INITIALIZING = "PodInitializing"
TERMINAL_PHASES = ("Succeeded", "Failed")
MAX_POD_TERMINATION_MESSAGE_BYTES = 12 * 1024     # kubecontainer.MaxPodTerminationMessageLogLength


@dataclass(frozen=True)
class ContainerWaiting:
    """Why a container is not running, from the last sync (ErrImagePull, ImagePullBackOff,
    CreateContainerConfigError, CreateContainerError, RunContainerError, CrashLoopBackOff...)."""
    reason: str
    message: str = ""


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


class ProbeResults(Protocol):
    """What the prober knows (agent.prober.ProbeManager): without it a running container is ready
    and started, as for a container without probes."""
    def readiness(self, pod_uid: str, container_name: str) -> bool: ...
    def started(self, pod_uid: str, container_name: str) -> bool: ...


def container_status(spec_container: Obj, runtime: PodRuntimeStatus, waiting: ContainerWaiting | None,
                     runtime_name: str, *, init: bool = False, default_waiting: str = CONTAINER_CREATING,
                     should_restart: bool = True, probes: ProbeResults | None = None) -> Obj:
    """kubelet's convertToAPIContainerStatuses for one container. `waiting` is why the last sync
    did not start it (kubelet's reason cache); it shows only when the container is due to start."""
    name = spec_container["name"]
    history = runtime.containers_named(name)
    latest = history[0] if history else None
    result: Obj = {"name": name, "image": spec_container["image"], "imageID": "",
                   "restartCount": 0, "ready": False, "started": False, "state": {}, "lastState": {}}
    if latest is None:
        result["state"] = {"waiting": _waiting(waiting, default_waiting)}
        return result

    container_id = f"{runtime_name}://{latest.id}"
    result.update(image=latest.image or spec_container["image"], imageID=latest.image_ref,
                  containerID=container_id, restartCount=latest.attempt)
    if spec_container.get("volumeMounts"):
        result["volumeMounts"] = [_volume_mount_status(m) for m in spec_container["volumeMounts"]]
    stop_signal = (spec_container.get("lifecycle") or {}).get("stopSignal")
    if stop_signal:
        result["stopSignal"] = stop_signal        # the signal the agent stops it with (agent/stop_signal.py)
    if latest.phase == ContainerPhase.RUNNING:
        result["state"] = {"running": {"startedAt": rfc3339(latest.started_at)}}
        if init:
            result["started"] = True
        else:
            started = probes.started(runtime.uid, name) if probes is not None else True
            ready = probes.readiness(runtime.uid, name) if probes is not None else True
            result["started"], result["ready"] = started, started and ready
    elif latest.phase == ContainerPhase.EXITED:
        result["state"] = {"terminated": _terminated(latest, container_id)}
        if init and latest.exit_code == 0:
            result["ready"] = True
    else:
        result["state"] = {"waiting": _waiting(None, default_waiting)}
    previous = next((c for c in history[1:] if c.phase == ContainerPhase.EXITED), None)
    if previous is not None:
        result["lastState"] = {"terminated": _terminated(previous, f"{runtime_name}://{previous.id}")}
    if waiting is not None and should_restart and latest.phase != ContainerPhase.RUNNING \
            and not (init and latest.phase == ContainerPhase.EXITED and latest.exit_code == 0):
        # It is due to (re)start: kubelet shows the wait, and the run that ended as lastState.
        if "terminated" in result["state"]:
            result["lastState"] = result["state"]
        result["state"] = {"waiting": _waiting(waiting, default_waiting)}
    return result


def _volume_mount_status(mount: Obj) -> Obj:
    """VolumeMountStatus (RecursiveReadOnlyMounts): read-only mounts say whether they are
    recursively read-only; ours are not (no recursiveReadOnly support)."""
    status: Obj = {"name": mount.get("name", ""), "mountPath": mount.get("mountPath", "")}
    if mount.get("readOnly"):
        status.update(readOnly=True, recursiveReadOnly="Disabled")
    return status


def _waiting(waiting: ContainerWaiting | None, default: str = CONTAINER_CREATING) -> Obj:
    if waiting is None:
        return {"reason": default}
    state: Obj = {"reason": waiting.reason}
    if waiting.message:
        state["message"] = waiting.message
    return state


def pod_phase(pod: Obj, statuses: list[Obj], pod_is_terminal: bool, init_statuses: list[Obj] | None = None) -> str:
    """kubelet's getPhase (init containers, sidecars and regular containers)."""
    spec = pod.get("spec", {})
    restart_policy = spec.get("restartPolicy") or "Always"
    init_by_name = {s["name"]: s for s in init_statuses or []}
    pending_init = failed_init = pending_sidecars = 0
    waiting = running = stopped = succeeded = unknown = 0
    for container in spec.get("initContainers") or []:
        status = init_by_name.get(container["name"])
        state = (status or {}).get("state", {})
        if is_sidecar(container):
            if status is None:
                unknown += 1
            elif "running" in state:
                pending_sidecars += not status.get("started")
                running += 1
            elif "terminated" in state:
                pass                    # a stopped sidecar is neither running nor stopped
            elif "waiting" in state and "terminated" not in status.get("lastState", {}):
                pending_sidecars += 1
            elif "waiting" not in state:
                pending_sidecars += 1
        elif status is None or "running" in state:
            pending_init += 1
        elif "terminated" in state:
            failed_init += state["terminated"].get("exitCode") != 0
        elif "waiting" in state and "terminated" in status.get("lastState", {}):
            failed_init += status["lastState"]["terminated"].get("exitCode") != 0
        else:
            pending_init += 1

    by_name = {s["name"]: s for s in statuses}
    # Any regular container started: initialized once (a new sandbox's exited sidecars do not make
    # the pod Pending again).
    has_initialized = any("running" in s.get("state", {}) or "terminated" in s.get("state", {})
                          or "terminated" in s.get("lastState", {}) for s in statuses)
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

    if failed_init > 0 and restart_policy == "Never":
        return "Failed"
    if pending_init > 0 or (pending_sidecars > 0 and not has_initialized) or waiting > 0:
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


def _condition(kind: str, ok: bool, reason: str = "", message: str = "") -> Obj:
    condition: Obj = {"type": kind, "status": "True" if ok else "False"}
    if reason:
        condition["reason"] = reason
    if message:
        condition["message"] = message
    return condition


def _go_list(names: list[str]) -> str:
    return f"[{' '.join(names)}]"


def initialized_condition(pod: Obj, init_statuses: list[Obj], phase: str) -> Obj:
    """GeneratePodInitializedCondition."""
    init_containers = pod.get("spec", {}).get("initContainers") or []
    if phase == "Succeeded":
        return _condition("Initialized", True, "PodCompleted")
    if not init_containers:
        return _condition("Initialized", True)
    by_name = {s["name"]: s for s in init_statuses}
    unknown = [c["name"] for c in init_containers if c["name"] not in by_name]
    incomplete = [c["name"] for c in init_containers if c["name"] in by_name and (
        not by_name[c["name"]].get("started") if is_sidecar(c)
        else by_name[c["name"]].get("state", {}).get("terminated", {}).get("exitCode", -1) != 0)]
    if not unknown and not incomplete:
        return _condition("Initialized", True, "PodCompleted")
    messages = []
    if unknown:
        messages.append(f"containers with unknown status: {_go_list(unknown)}")
    if incomplete:
        messages.append(f"containers with incomplete status: {_go_list(incomplete)}")
    return _condition("Initialized", False, "ContainersNotInitialized", ", ".join(messages))


def containers_ready_condition(pod: Obj, statuses: list[Obj], phase: str, kind: str = "ContainersReady") -> Obj:
    """GenerateContainersReadyCondition (and GeneratePodReadyCondition, which copies it when it is
    not True: no readiness gates yet)."""
    by_name = {s["name"]: s for s in statuses}
    spec = pod.get("spec", {})
    containers = [c for c in spec.get("initContainers") or [] if is_sidecar(c)] + (spec.get("containers") or [])
    unknown = [c["name"] for c in containers if c["name"] not in by_name]
    unready = [c["name"] for c in containers if c["name"] in by_name and not by_name[c["name"]].get("ready")]
    if phase == "Succeeded" and not unknown:
        return _condition(kind, False, "PodCompleted")
    if phase == "Failed":
        return _condition(kind, False, "PodFailed")
    messages = []
    if unknown:
        messages.append(f"containers with unknown status: {_go_list(unknown)}")
    if unready:
        messages.append(f"containers with unready status: {_go_list(unready)}")
    if messages:
        return _condition(kind, False, "ContainersNotReady", ", ".join(messages))
    return _condition(kind, True)


def pod_conditions(pod: Obj, runtime: PodRuntimeStatus, statuses: list[Obj], phase: str,
                   init_statuses: list[Obj] | None = None) -> list[Obj]:
    """kubelet's order: PodReadyToStartContainers, Initialized, Ready, ContainersReady, PodScheduled
    (the scheduler's, kept with its transition time)."""
    ready_to_start = not sandbox_needs_replacing(pod, runtime)[0]
    conditions = [
        _condition("PodReadyToStartContainers", ready_to_start),
        initialized_condition(pod, init_statuses or [], phase),
        containers_ready_condition(pod, (init_statuses or []) + statuses, phase, "Ready"),
        containers_ready_condition(pod, (init_statuses or []) + statuses, phase),
    ]
    scheduled = next((c for c in pod.get("status", {}).get("conditions") or []
                      if c.get("type") == "PodScheduled"), None)
    conditions.append(dict(scheduled) if scheduled is not None else _condition("PodScheduled", True))
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


def limit_termination_messages(statuses: list[Obj]) -> None:
    """kubelet's normalizeStatus: a pod's termination messages share MaxPodTerminationMessageLogLength,
    split evenly between its containers (init containers included); each is cut to its share."""
    share = MAX_POD_TERMINATION_MESSAGE_BYTES // len(statuses) if statuses else MAX_POD_TERMINATION_MESSAGE_BYTES
    for status in statuses:
        for key in ("state", "lastState"):
            terminated = (status.get(key) or {}).get("terminated")
            message = terminated.get("message") if terminated else None
            if message and len(encoded := message.encode()) > share:
                terminated["message"] = encoded[:share].decode("utf-8", "ignore")


KUBELET_CONDITIONS = ("PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady", "PodResizePending",
                      "PodResizeInProgress")


def ephemeral_container_status(spec_container: Obj, runtime: PodRuntimeStatus, waiting: ContainerWaiting | None,
                               runtime_name: str) -> Obj:
    """An ephemeral container's status: as a container's, never restarted, never ready (no probes), and
    without `started` (kubelet's prober sets that only for containers and init containers)."""
    status = container_status(spec_container, runtime, waiting, runtime_name, should_restart=False)
    status["ready"] = False
    status.pop("started", None)
    return status


def add_resize_status(status: Obj, pod: Obj, runtime: PodRuntimeStatus, resize: ResizeView) -> None:
    """In-place resize: allocatedResources and the applied resources of each resizable container, and the
    PodResizePending / PodResizeInProgress conditions (agent/resize.py)."""
    names = {c["name"] for c in resizable_containers(pod)}
    for entry in (status.get("initContainerStatuses") or []) + (status.get("containerStatuses") or []):
        allocated = resize.allocated.get(entry["name"])
        if entry["name"] not in names or allocated is None:
            continue
        if allocated.get("requests"):
            entry["allocatedResources"] = dict(allocated["requests"])
        latest = runtime.latest_container(entry["name"])
        running = latest is not None and latest.phase == ContainerPhase.RUNNING
        applied = actual_resources(allocated, latest.resources if running and latest is not None else None)
        if applied:
            entry["resources"] = applied
    if resize.pending is not None:
        reason, message = resize.pending
        status["conditions"].append(_condition("PodResizePending", True, reason, message))
    if resize.in_progress or resize.error:
        status["conditions"].append(_condition("PodResizeInProgress", True, "Error" if resize.error else "",
                                               resize.error))


def resize_in_progress(pod: Obj, runtime: PodRuntimeStatus, resize: ResizeView) -> bool:
    """An admitted allocation some running container does not have applied yet."""
    for container in resizable_containers(pod):
        latest = runtime.latest_container(container["name"])
        allocated = resize.allocated.get(container["name"])
        if latest is not None and latest.phase == ContainerPhase.RUNNING and allocated is not None \
                and resize_action(container, allocated, latest.resources):
            return True
    return False


def generate_pod_status(pod: Obj, runtime: PodRuntimeStatus, waiting: dict[str, ContainerWaiting],
                        *, host_ips: list[str], runtime_name: str, now: datetime,
                        pod_is_terminal: bool = False, probes: ProbeResults | None = None,
                        resize: ResizeView | None = None) -> Obj:
    old = pod.get("status") or {}
    spec = pod.get("spec", {})
    init_containers = spec.get("initContainers") or []
    default_waiting = POD_INITIALIZING if init_containers else CONTAINER_CREATING

    def convert(container: Obj, init: bool) -> Obj:
        latest = runtime.latest_container(container["name"])
        sidecar = init and is_sidecar(container)
        return container_status(container, runtime, waiting.get(container["name"]), runtime_name,
                                init=init and not sidecar, default_waiting=default_waiting,
                                should_restart=sidecar or should_container_be_restarted(pod, latest), probes=probes)

    init_statuses = [convert(c, True) for c in init_containers]
    statuses = [convert(c, False) for c in spec.get("containers") or []]
    ephemeral_statuses = [ephemeral_container_status(c, runtime, waiting.get(c["name"]), runtime_name)
                          for c in spec.get("ephemeralContainers") or []]
    limit_termination_messages(init_statuses + statuses)
    phase = pod_phase(pod, statuses, pod_is_terminal, init_statuses)
    if phase not in TERMINAL_PHASES and old.get("phase") in TERMINAL_PHASES:
        phase = old["phase"]          # a terminal phase never changes back
    stamp = rfc3339(now)
    status: Obj = {
        "phase": phase,
        "conditions": carry_transition_times(old.get("conditions") or [],
                                             pod_conditions(pod, runtime, statuses, phase, init_statuses), stamp),
        "containerStatuses": statuses,
        "qosClass": old.get("qosClass") or compute_qos_class(pod.get("spec")),
        "startTime": old.get("startTime") or stamp,
    }
    if init_statuses:
        status["initContainerStatuses"] = init_statuses
    if ephemeral_statuses:
        status["ephemeralContainerStatuses"] = ephemeral_statuses
    if resize is not None and phase not in TERMINAL_PHASES:
        add_resize_status(status, pod, runtime, resize)
        status["conditions"] = carry_transition_times(old.get("conditions") or [], status["conditions"], stamp)
    generation = (pod.get("metadata") or {}).get("generation")
    if generation:
        # The pod generation this status answers (PodObservedGenerationTracking), on the status and on the
        # conditions the node owns; PodScheduled is the scheduler's and keeps its own.
        status["observedGeneration"] = generation
        for condition in status["conditions"]:
            if condition["type"] in KUBELET_CONDITIONS:
                condition["observedGeneration"] = generation
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
