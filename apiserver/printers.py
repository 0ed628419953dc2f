"""Table columns and rows per kind, computed like kubectl's printers (server side, wide columns included)."""
from __future__ import annotations

import datetime
from typing import Any

from shipmate.timeutil import parse_rfc3339
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


CONFIGMAP_COLUMNS = [
    Column("Name", "string", "name", NAME_DESCRIPTION),
    Column("Data", "string", "", "Data contains the configuration data. Each key must consist of alphanumeric "
           "characters, '-', '_' or '.'."),
    Column("Age", "string", "", AGE_DESCRIPTION),
]


def configmap_row(configmap: Obj, now: datetime.datetime) -> Row:
    count = len(configmap.get("data") or {}) + len(configmap.get("binaryData") or {})
    return Row([configmap["metadata"]["name"], count, age(configmap["metadata"].get("creationTimestamp"), now)])


SECRET_COLUMNS = [
    Column("Name", "string", "name", NAME_DESCRIPTION),
    Column("Type", "string", "", "Used to facilitate programmatic handling of secret data."),
    Column("Data", "string", "", "Data contains the secret data. Each key must consist of alphanumeric "
           "characters, '-', '_' or '.'."),
    Column("Age", "string", "", AGE_DESCRIPTION),
]


def secret_row(secret: Obj, now: datetime.datetime) -> Row:
    return Row([secret["metadata"]["name"], secret.get("type", ""), len(secret.get("data") or {}),
                age(secret["metadata"].get("creationTimestamp"), now)])


SERVICE_COLUMNS = [
    Column("Name", "string", "name", NAME_DESCRIPTION),
    Column("Type", "string", "", "type determines how the Service is exposed: ClusterIP, NodePort, "
           "LoadBalancer or ExternalName."),
    Column("Cluster-IP", "string", "", "clusterIP is the IP address of the service."),
    Column("External-IP", "string", "", "externalIPs is a list of IP addresses for which nodes in the cluster "
           "will also accept traffic for this service."),
    Column("Port(s)", "string", "", "The list of ports that are exposed by this service."),
    Column("Age", "string", "", AGE_DESCRIPTION),
    Column("Selector", "string", "", "Route service traffic to pods with label keys and values matching this "
           "selector.", 1),
]


def format_labels(labels: dict[str, str] | None) -> str:
    """labels.FormatLabels: sorted k=v pairs, `<none>` when empty."""
    if not labels:
        return "<none>"
    return ",".join(f"{key}={labels[key]}" for key in sorted(labels))


def _load_balancer_ips(status: Obj) -> list[str]:
    ingress = ((status or {}).get("loadBalancer") or {}).get("ingress") or []
    return [entry.get("ip") or entry.get("hostname") for entry in ingress if entry.get("ip") or entry.get("hostname")]


def service_external_ip(service: Obj) -> str:
    spec = service.get("spec") or {}
    external = spec.get("externalIPs") or []
    kind = spec.get("type")
    if kind in ("ClusterIP", "NodePort"):
        return ",".join(external) or "<none>"
    if kind == "LoadBalancer":
        addresses = _load_balancer_ips(service.get("status") or {}) + external
        return ",".join(addresses) or "<pending>"
    if kind == "ExternalName":
        return spec.get("externalName", "")
    return "<unknown>"


def service_ports(ports: list[Obj]) -> str:
    pieces = []
    for port in ports:
        if port.get("nodePort"):
            pieces.append(f"{port.get('port')}:{port['nodePort']}/{port.get('protocol', 'TCP')}")
        else:
            pieces.append(f"{port.get('port')}/{port.get('protocol', 'TCP')}")
    return ",".join(pieces)


def service_row(service: Obj, now: datetime.datetime) -> Row:
    spec = service.get("spec") or {}
    cluster_ips = spec.get("clusterIPs") or []
    return Row([service["metadata"]["name"], spec.get("type", ""), cluster_ips[0] if cluster_ips else "<none>",
                service_external_ip(service), service_ports(spec.get("ports") or []) or "<none>",
                age(service["metadata"].get("creationTimestamp"), now), format_labels(spec.get("selector"))])


ENDPOINTS_COLUMNS = [
    Column("Name", "string", "name", NAME_DESCRIPTION),
    Column("Endpoints", "string", "", "The set of all endpoints is the union of all subsets."),
    Column("Age", "string", "", AGE_DESCRIPTION),
]

_MAX_LISTED = 3


def _host_port(ip: str, port: Any) -> str:
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def format_endpoints(endpoints: Obj) -> str:
    """kubectl's formatEndpoints: at most three ready address:port pairs, then `+ N more...`."""
    subsets = endpoints.get("subsets") or []
    if not subsets:
        return "<none>"
    listed: list[str] = []
    count = 0
    for subset in subsets:
        addresses = [a.get("ip", "") for a in subset.get("addresses") or []]
        ports = subset.get("ports") or []
        pairs = [(ip, None) for ip in addresses] if not ports else \
            [(ip, port.get("port")) for port in ports for ip in addresses]
        count += len(pairs)
        for ip, port in pairs:
            if len(listed) < _MAX_LISTED:
                listed.append(ip if port is None else _host_port(ip, port))
    text = ",".join(listed)
    return f"{text} + {count - _MAX_LISTED} more..." if count > _MAX_LISTED else text


def endpoints_row(endpoints: Obj, now: datetime.datetime) -> Row:
    return Row([endpoints["metadata"]["name"], format_endpoints(endpoints),
                age(endpoints["metadata"].get("creationTimestamp"), now)])


ENDPOINTSLICE_COLUMNS = [
    Column("Name", "string", "name", NAME_DESCRIPTION),
    Column("AddressType", "string", "", "addressType specifies the type of address carried by this "
           "EndpointSlice."),
    Column("Ports", "string", "", "ports specifies the list of network ports exposed by each endpoint in this "
           "slice."),
    Column("Endpoints", "string", "", "endpoints is a list of unique endpoints in this slice."),
    Column("Age", "string", "", AGE_DESCRIPTION),
]


def _list_with_more(items: list[str]) -> str:
    text = ",".join(items[:_MAX_LISTED])
    if len(items) > _MAX_LISTED:
        return f"{text} + {len(items) - _MAX_LISTED} more..."
    return text or "<unset>"


def endpointslice_row(endpoint_slice: Obj, now: datetime.datetime) -> Row:
    ports = []
    for port in endpoint_slice.get("ports") or []:
        if port.get("port") is not None:
            ports.append(str(port["port"]))
        elif port.get("name") is not None:
            ports.append(port["name"])
        else:
            ports.append("*")
    addresses = [a for e in endpoint_slice.get("endpoints") or [] for a in e.get("addresses") or []]
    return Row([endpoint_slice["metadata"]["name"], endpoint_slice.get("addressType", ""), _list_with_more(ports),
                _list_with_more(addresses), age(endpoint_slice["metadata"].get("creationTimestamp"), now)])
