"""Table columns and rows per kind, computed like kubectl's printers (server side, wide columns included)."""
from __future__ import annotations

import datetime
from typing import Any

from apiserver.timeutil import parse_rfc3339
from apiserver.tables import AGE_DESCRIPTION, NAME_DESCRIPTION, Column, Row, TableSpec, age

Obj = dict[str, Any]

POD_COLUMNS = [
    Column("Name", "string", "name", NAME_DESCRIPTION),
    Column("Ready", "string", "", "The aggregate readiness state of this pod for accepting traffic."),
    Column("Status", "string", "", "The aggregate status of the containers in this pod."),
    Column("Restarts", "string", "", "The number of times the containers in this pod have been restarted and "
           "when the last container in this pod has restarted."),
    Column("Age", "string", "", AGE_DESCRIPTION),
    Column("IP", "string", "", "podIP is the IP address allocated to the pod. Routable at least within the "
           "cluster. Empty if not yet allocated.", 1),
    Column("Node", "string", "", "NodeName indicates in which node this pod is scheduled. If empty, this pod is "
           "a candidate for scheduling by the scheduler defined in schedulerName.", 1),
    Column("Nominated Node", "string", "", "nominatedNodeName is set only when this pod preempts other pods on "
           "the node, but it cannot be scheduled right away as preemption victims receive their graceful "
           "termination periods.", 1),
    Column("Readiness Gates", "string", "", "If specified, all readiness gates will be evaluated for pod "
           "readiness.", 1),
]

_TERMINAL_PHASES = ("Succeeded", "Failed")


def _terminated_reason(terminated: Obj, prefix: str) -> str:
    if terminated.get("reason"):
        return prefix + terminated["reason"]
    if terminated.get("signal"):
        return f"{prefix}Signal:{terminated['signal']}"
    return f"{prefix}ExitCode:{terminated.get('exitCode', 0)}"


def _condition_true(conditions: list[Obj], kind: str) -> bool:
    return any(c.get("type") == kind and c.get("status") == "True" for c in conditions)


def pod_status_reason(pod: Obj) -> tuple[str, int, int, int, datetime.datetime | None]:
    """(STATUS text, ready containers, total containers, restarts, last restart time) as kubectl shows them."""
    spec, status = pod.get("spec", {}), pod.get("status", {})
    conditions = status.get("conditions") or []
    init_specs = {c.get("name"): c for c in spec.get("initContainers") or []}
    sidecars = {name for name, c in init_specs.items() if c.get("restartPolicy") == "Always"}
    total = len(spec.get("containers") or []) + len(sidecars)
    ready = 0
    restarts = 0
    sidecar_restarts = 0
    last_restart: datetime.datetime | None = None
    sidecar_last_restart: datetime.datetime | None = None
    reason = status.get("reason") or status.get("phase") or ""
    if any(c.get("type") == "PodScheduled" and c.get("reason") == "SchedulingGated" for c in conditions):
        reason = "SchedulingGated"

    def later(current, container):
        finished = parse_rfc3339(((container.get("lastState") or {}).get("terminated") or {}).get("finishedAt"))
        return finished if finished and (current is None or finished > current) else current

    initializing = False
    init_statuses = status.get("initContainerStatuses") or []
    for index, container in enumerate(init_statuses):
        restarts += container.get("restartCount", 0)
        last_restart = later(last_restart, container)
        state = container.get("state") or {}
        is_sidecar = container.get("name") in sidecars
        if is_sidecar:
            sidecar_restarts += container.get("restartCount", 0)
            sidecar_last_restart = later(sidecar_last_restart, container)
            if container.get("started") and container.get("ready"):
                ready += 1
        terminated, waiting = state.get("terminated"), state.get("waiting")
        if terminated is not None and terminated.get("exitCode", 0) == 0:
            continue
        if is_sidecar and container.get("started"):
            continue
        if terminated is not None:
            reason = _terminated_reason(terminated, "Init:")
        elif waiting is not None and waiting.get("reason") and waiting.get("reason") != "PodInitializing":
            reason = "Init:" + waiting["reason"]
        else:
            reason = f"Init:{index}/{len(init_specs)}"
        initializing = True
        break

    if not initializing or _condition_true(conditions, "Initialized"):
        restarts, last_restart = sidecar_restarts, sidecar_last_restart
        has_running = False
        for container in reversed(status.get("containerStatuses") or []):
            restarts += container.get("restartCount", 0)
            last_restart = later(last_restart, container)
            state = container.get("state") or {}
            waiting, terminated = state.get("waiting"), state.get("terminated")
            if waiting is not None and waiting.get("reason"):
                reason = waiting["reason"]
            elif terminated is not None:
                reason = _terminated_reason(terminated, "")
            elif container.get("ready") and state.get("running") is not None:
                has_running = True
                ready += 1
        if reason == "Completed" and has_running:
            reason = "Running" if any(c.get("type") == "Ready" for c in conditions) else "NotReady"

    deleting = bool(pod.get("metadata", {}).get("deletionTimestamp"))
    if deleting and status.get("reason") == "NodeLost":
        reason = "Unknown"
    elif deleting and status.get("phase") not in _TERMINAL_PHASES:
        reason = "Terminating"
    return reason, ready, total, restarts, last_restart


def pod_row(pod: Obj, now: datetime.datetime) -> Row:
    reason, ready, total, restarts, last_restart = pod_status_reason(pod)
    restarts_text = str(restarts)
    if restarts and last_restart is not None:
        restarts_text = f"{restarts} ({age(last_restart.isoformat(), now)} ago)"
    spec, status = pod.get("spec", {}), pod.get("status", {})
    pod_ips = status.get("podIPs") or []
    pod_ip = (pod_ips[0].get("ip") if pod_ips else status.get("podIP")) or "<none>"
    gates = spec.get("readinessGates") or []
    gates_text = "<none>"
    if gates:
        conditions = status.get("conditions") or []
        true_count = sum(1 for g in gates if _condition_true(conditions, g.get("conditionType")))
        gates_text = f"{true_count}/{len(gates)}"
    row = Row([pod["metadata"]["name"], f"{ready}/{total}", reason, restarts_text,
               age(pod["metadata"].get("creationTimestamp"), now), pod_ip, spec.get("nodeName") or "<none>",
               status.get("nominatedNodeName") or "<none>", gates_text])
    if status.get("phase") in _TERMINAL_PHASES:
        row.conditions = [{"type": "Completed", "status": "True", "reason": status["phase"],
                           "message": "The pod has completed successfully."}]
    return row


NODE_COLUMNS = [
    Column("Name", "string", "name", NAME_DESCRIPTION),
    Column("Status", "string", "", "The status of the node"),
    Column("Roles", "string", "", "The roles of the node"),
    Column("Age", "string", "", AGE_DESCRIPTION),
    Column("Version", "string", "", "Kubelet Version reported by the node."),
    Column("Internal-IP", "string", "", "List of addresses reachable to the node. Queried from cloud provider, "
           "if available.", 1),
    Column("External-IP", "string", "", "List of addresses reachable to the node. Queried from cloud provider, "
           "if available.", 1),
    Column("OS-Image", "string", "", "OS Image reported by the node from /etc/os-release (e.g. Debian GNU/Linux "
           "7 (wheezy)).", 1),
    Column("Kernel-Version", "string", "", "Kernel Version reported by the node from 'uname -r' (e.g. "
           "3.16.0-0.bpo.4-amd64).", 1),
    Column("Container-Runtime", "string", "", "ContainerRuntime Version reported by the node through runtime "
           "remote API (e.g. containerd://1.4.2).", 1),
]


def node_roles(labels: dict[str, str]) -> list[str]:
    roles = set()
    for key, value in labels.items():
        if key.startswith("node-role.kubernetes.io/") and key[len("node-role.kubernetes.io/"):]:
            roles.add(key[len("node-role.kubernetes.io/"):])
        elif key == "kubernetes.io/role" and value:
            roles.add(value)
    return sorted(roles)


def node_status_text(node: Obj) -> str:
    ready = [c for c in (node.get("status", {}).get("conditions") or []) if c.get("type") == "Ready"]
    parts = ["Ready" if ready[-1].get("status") == "True" else "NotReady"] if ready else ["Unknown"]
    if node.get("spec", {}).get("unschedulable"):
        parts.append("SchedulingDisabled")
    return ",".join(parts)


def _address(node: Obj, kind: str) -> str:
    for address in node.get("status", {}).get("addresses") or []:
        if address.get("type") == kind:
            return address.get("address", "")
    return "<none>"


def node_row(node: Obj, now: datetime.datetime) -> Row:
    info = node.get("status", {}).get("nodeInfo") or {}
    roles = ",".join(node_roles(node["metadata"].get("labels") or {})) or "<none>"
    return Row([node["metadata"]["name"], node_status_text(node), roles,
                age(node["metadata"].get("creationTimestamp"), now), info.get("kubeletVersion", ""),
                _address(node, "InternalIP"), _address(node, "ExternalIP"), info.get("osImage") or "<unknown>",
                info.get("kernelVersion") or "<unknown>", info.get("containerRuntimeVersion") or "<unknown>"])


NAMESPACE_COLUMNS = [
    Column("Name", "string", "name", NAME_DESCRIPTION),
    Column("Status", "string", "", "The status of the namespace"),
    Column("Age", "string", "", AGE_DESCRIPTION),
]


def namespace_row(namespace: Obj, now: datetime.datetime) -> Row:
    return Row([namespace["metadata"]["name"], namespace.get("status", {}).get("phase", ""),
                age(namespace["metadata"].get("creationTimestamp"), now)])


LEASE_COLUMNS = [
    Column("Name", "string", "name", NAME_DESCRIPTION),
    Column("Holder", "string", "", "holderIdentity contains the identity of the holder of a current lease."),
    Column("Age", "string", "", AGE_DESCRIPTION),
]


def lease_row(lease: Obj, now: datetime.datetime) -> Row:
    return Row([lease["metadata"]["name"], lease.get("spec", {}).get("holderIdentity") or "",
                age(lease["metadata"].get("creationTimestamp"), now)])


EVENT_COLUMNS = [
    Column("Last Seen", "string", "", "The time at which the most recent occurrence of this event was recorded."),
    Column("Type", "string", "", "Type of this event (Normal, Warning), new types could be added in the future"),
    Column("Reason", "string", "", "This should be a short, machine understandable string that gives the reason "
           "for the transition into the object's current status."),
    Column("Object", "string", "", "The object that this event is about."),
    Column("Subobject", "string", "", "If the event is about a sub-object of the involved object, the field path "
           "of that sub-object.", 1),
    Column("Source", "string", "", "The component reporting this event. Should be a short machine understandable "
           "string.", 1),
    Column("Message", "string", "", "A human-readable description of the status of this operation."),
    Column("First Seen", "string", "", "The time at which the event was first recorded. (Time of server receipt "
           "is in TypeMeta.)", 1),
    Column("Count", "string", "", "The number of times this event has occurred.", 1),
    Column("Name", "string", "name", NAME_DESCRIPTION, 1),
]


def event_row(event: Obj, now: datetime.datetime) -> Row:
    first = age(event.get("firstTimestamp"), now) if event.get("firstTimestamp") else age(event.get("eventTime"), now)
    last = age(event.get("lastTimestamp"), now) if event.get("lastTimestamp") else first
    count = event.get("count") or 1
    if event.get("series"):
        last = age(event["series"].get("lastObservedTime"), now)
        count = event["series"].get("count", count)
    involved = event.get("involvedObject") or {}
    kind = (involved.get("kind") or "").lower()
    target = f"{kind}/{involved['name']}" if involved.get("name") else kind
    source = event.get("source") or {}
    component = source.get("component") or event.get("reportingComponent") or ""
    instance = source.get("host") or event.get("reportingInstance") or ""
    source_text = f"{component}, {instance}" if instance else component
    return Row([last, event.get("type", ""), event.get("reason", ""), target, involved.get("fieldPath", ""),
                source_text, (event.get("message") or "").strip(), first, count, event["metadata"]["name"]])


def spec_for(columns: list[Column], row_fn, now: datetime.datetime) -> TableSpec:
    return TableSpec(columns=columns, row=lambda obj: row_fn(obj, now))
