"""Pure rules of the endpoints and EndpointSlice controllers: which pods back a Service, on which ports,
as which Endpoints subsets and EndpointSlices (upstream's shapes), and how to get from the stored
slices to the desired ones with few writes."""
from __future__ import annotations

import copy
import ipaddress
from dataclasses import dataclass, field
from typing import Any

Obj = dict[str, Any]

SERVICE_NAME_LABEL = "kubernetes.io/service-name"
MANAGED_BY_LABEL = "endpointslice.kubernetes.io/managed-by"
MANAGED_BY = "endpointslice-controller.k8s.io"
HEADLESS_LABEL = "service.kubernetes.io/headless"
MAX_ENDPOINTS_PER_SLICE = 100  # kube-controller-manager's --max-endpoints-per-slice default
MAX_ENDPOINTS = 1000  # per Endpoints object; beyond it upstream truncates and annotates
OVER_CAPACITY_ANNOTATION = "endpoints.kubernetes.io/over-capacity"
_TERMINAL_PHASES = ("Succeeded", "Failed")


def managed(service: Obj) -> bool:
    """Services whose endpoints the controllers compute: a selector, and not ExternalName."""
    spec = service.get("spec") or {}
    return bool(spec.get("selector")) and spec.get("type") != "ExternalName"


def selects(service: Obj, pod: Obj) -> bool:
    if pod["metadata"].get("namespace") != service["metadata"].get("namespace") or not managed(service):
        return False
    labels = pod["metadata"].get("labels") or {}
    return all(labels.get(key) == value for key, value in service["spec"]["selector"].items())


def pod_ready(pod: Obj) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (pod.get("status") or {}).get("conditions") or [])


def pod_ip(pod: Obj) -> str:
    status = pod.get("status") or {}
    ips = [entry.get("ip") for entry in status.get("podIPs") or [] if entry.get("ip")]
    return status.get("podIP") or (ips[0] if ips else "")


def pod_included(pod: Obj, include_terminating: bool) -> bool:
    """upstream's ShouldPodBeInEndpoints."""
    if (pod.get("status") or {}).get("phase") in _TERMINAL_PHASES or not pod_ip(pod):
        return False
    return include_terminating or not pod["metadata"].get("deletionTimestamp")


def resolve_target_port(service_port: Obj, pod: Obj) -> int | None:
    """upstream's FindPort: a number as is, a name looked up among the containers' ports."""
    target = service_port.get("targetPort", service_port.get("port"))
    if isinstance(target, int):
        return target
    protocol = service_port.get("protocol") or "TCP"
    spec = pod.get("spec") or {}
    sidecars = [c for c in spec.get("initContainers") or [] if c.get("restartPolicy") == "Always"]
    for container in [*(spec.get("containers") or []), *sidecars]:
        for port in container.get("ports") or []:
            if port.get("name") == target and (port.get("protocol") or "TCP") == protocol:
                return port.get("containerPort")
    return None


def _target_ref(pod: Obj) -> Obj:
    meta = pod["metadata"]
    return {"kind": "Pod", "namespace": meta.get("namespace", ""), "name": meta["name"], "uid": meta.get("uid", "")}


def _hostname(service: Obj, pod: Obj) -> str:
    spec = pod.get("spec") or {}
    if spec.get("hostname") and spec.get("subdomain") == service["metadata"]["name"]:
        return spec["hostname"]
    return ""


def _is_headless(service: Obj) -> bool:
    return (service.get("spec") or {}).get("clusterIP") == "None"


def _endpoint_ports(service: Obj, pod: Obj) -> list[Obj]:
    ports = []
    for service_port in (service.get("spec") or {}).get("ports") or []:
        number = resolve_target_port(service_port, pod)
        if number is None:
            continue
        port = {"name": service_port.get("name", ""), "port": number, "protocol": service_port.get("protocol", "TCP")}
        if service_port.get("appProtocol"):
            port["appProtocol"] = service_port["appProtocol"]
        ports.append(port)
    return ports


def _ports_key(ports: list[Obj] | None) -> tuple:
    return tuple(sorted((p.get("name", ""), p.get("port"), p.get("protocol", "TCP"), p.get("appProtocol", ""))
                        for p in ports or []))


def _ip_sort_key(ip: str) -> tuple:
    try:
        address = ipaddress.ip_address(ip)
        return address.version, int(address)
    except ValueError:
        return 9, 0


# --- Endpoints ---------------------------------------------------------------------------------

def desired_subsets(service: Obj, pods: list[Obj]) -> list[Obj]:
    """Endpoints subsets: ready pods in `addresses`, others in `notReadyAddresses`, grouped by port set."""
    spec = service.get("spec") or {}
    publish_not_ready = bool(spec.get("publishNotReadyAddresses"))
    groups: dict[tuple, Obj] = {}
    for pod in pods:
        if not selects(service, pod) or not pod_included(pod, publish_not_ready):
            continue
        address: Obj = {"ip": pod_ip(pod)}
        hostname = _hostname(service, pod)
        if hostname:
            address["hostname"] = hostname
        if (pod.get("spec") or {}).get("nodeName"):
            address["nodeName"] = pod["spec"]["nodeName"]
        address["targetRef"] = _target_ref(pod)
        ports = _endpoint_ports(service, pod)
        if not ports and (spec.get("ports") or not _is_headless(service)):
            continue  # no usable port on this pod (headless services without ports list bare addresses)
        for port in ports:
            if not port["name"]:
                del port["name"]  # omitempty in core/v1 EndpointPort (a slice's port keeps "")
        key = _ports_key(ports)
        subset = groups.setdefault(key, {"ports": sorted(ports, key=lambda p: (p.get("name", ""), p["port"]))})
        bucket = "addresses" if publish_not_ready or pod_ready(pod) else "notReadyAddresses"
        subset.setdefault(bucket, []).append(address)
    subsets = []
    for subset in groups.values():
        for bucket in ("addresses", "notReadyAddresses"):
            if bucket in subset:
                subset[bucket].sort(key=lambda a: (_ip_sort_key(a["ip"]), a["targetRef"]["name"]))
        if not subset["ports"]:
            del subset["ports"]
        subsets.append({k: subset[k] for k in ("addresses", "notReadyAddresses", "ports") if k in subset})
    subsets.sort(key=lambda s: _ip_sort_key(((s.get("addresses") or s.get("notReadyAddresses"))[0])["ip"]))
    return subsets


def _service_labels(service: Obj) -> dict[str, str]:
    labels = dict(service["metadata"].get("labels") or {})
    labels.pop(HEADLESS_LABEL, None)
    if _is_headless(service):
        labels[HEADLESS_LABEL] = ""
    return labels


def desired_endpoints(service: Obj, pods: list[Obj]) -> Obj:
    meta = service["metadata"]
    endpoints: Obj = {"apiVersion": "v1", "kind": "Endpoints",
                      "metadata": {"name": meta["name"], "namespace": meta["namespace"]}}
    labels = _service_labels(service)
    if labels:
        endpoints["metadata"]["labels"] = labels
    subsets = desired_subsets(service, pods)
    if sum(len(s.get("addresses", [])) + len(s.get("notReadyAddresses", [])) for s in subsets) > MAX_ENDPOINTS:
        subsets = truncate_subsets(subsets, MAX_ENDPOINTS)
        endpoints["metadata"]["annotations"] = {OVER_CAPACITY_ANNOTATION: "truncated"}
    if subsets:
        endpoints["subsets"] = subsets
    return endpoints


def truncate_subsets(subsets: list[Obj], limit: int) -> list[Obj]:
    """At most `limit` addresses, ready ones first (upstream caps Endpoints at 1000 and says so)."""
    room = limit
    kept = [{**subset, "addresses": [], "notReadyAddresses": []} for subset in subsets]
    for bucket in ("addresses", "notReadyAddresses"):
        for subset, trimmed in zip(subsets, kept):
            taken = subset.get(bucket, [])[:room]
            trimmed[bucket] = taken
            room -= len(taken)
    return [{k: v for k, v in subset.items() if v} for subset in kept
            if subset["addresses"] or subset["notReadyAddresses"]]


def endpoints_differ(current: Obj, desired: Obj) -> bool:
    over = OVER_CAPACITY_ANNOTATION
    return (current.get("subsets") or []) != (desired.get("subsets") or []) or \
        (current["metadata"].get("labels") or {}) != (desired["metadata"].get("labels") or {}) or \
        (current["metadata"].get("annotations") or {}).get(over) != \
        (desired["metadata"].get("annotations") or {}).get(over)


# --- EndpointSlices ----------------------------------------------------------------------------

def slice_endpoint(service: Obj, pod: Obj) -> Obj:
    publish_not_ready = bool((service.get("spec") or {}).get("publishNotReadyAddresses"))
    terminating = bool(pod["metadata"].get("deletionTimestamp"))
    serving = pod_ready(pod)
    ready = publish_not_ready or (serving and not terminating)
    endpoint: Obj = {"addresses": [pod_ip(pod)],
                     "conditions": {"ready": ready, "serving": serving, "terminating": terminating}}
    hostname = _hostname(service, pod)
    if hostname:
        endpoint["hostname"] = hostname
    endpoint["targetRef"] = _target_ref(pod)
    if (pod.get("spec") or {}).get("nodeName"):
        endpoint["nodeName"] = pod["spec"]["nodeName"]
    return endpoint


def desired_slice_groups(service: Obj, pods: list[Obj]) -> dict[tuple, tuple[list[Obj], list[Obj]]]:
    """Port set key -> (ports, endpoints sorted by address), IPv4 pods only (single-stack cluster)."""
    groups: dict[tuple, tuple[list[Obj], list[Obj]]] = {}
    for pod in pods:
        if not selects(service, pod) or not pod_included(pod, True):
            continue
        if _ip_sort_key(pod_ip(pod))[0] != 4:
            continue
        ports = _endpoint_ports(service, pod)
        if not ports and (service.get("spec") or {}).get("ports"):
            continue
        ports.sort(key=lambda p: (p["name"], p["port"]))
        groups.setdefault(_ports_key(ports), (ports, []))[1].append(slice_endpoint(service, pod))
    for _ports, endpoints in groups.values():
        endpoints.sort(key=lambda e: (_ip_sort_key(e["addresses"][0]), e["targetRef"]["name"]))
    return groups


def slice_labels(service: Obj) -> dict[str, str]:
    labels = {k: v for k, v in _service_labels(service).items() if k not in (SERVICE_NAME_LABEL, MANAGED_BY_LABEL)}
    labels[SERVICE_NAME_LABEL] = service["metadata"]["name"]
    labels[MANAGED_BY_LABEL] = MANAGED_BY
    return labels


def controller_ref(owner: Obj, kind: str) -> Obj:
    meta = owner["metadata"]
    return {"apiVersion": "v1", "kind": kind, "name": meta["name"], "uid": meta.get("uid", ""), "controller": True,
            "blockOwnerDeletion": True}


@dataclass(frozen=True)
class SliceTemplate:
    """What every slice of one owner carries."""
    name: str  # the Service's (and Endpoints') name: slices are named `<name>-xxxxx`
    namespace: str
    labels: dict[str, str]
    owner_ref: Obj
    annotations: dict[str, str] = field(default_factory=dict)

    def new(self, ports: list[Obj] | None, endpoints: list[Obj]) -> Obj:
        meta: Obj = {"generateName": f"{self.name}-", "namespace": self.namespace, "labels": dict(self.labels),
                     "ownerReferences": [dict(self.owner_ref)]}
        if self.annotations:
            meta["annotations"] = dict(self.annotations)
        return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "metadata": meta,
                "addressType": "IPv4", "endpoints": endpoints, "ports": ports}

    def stale(self, current: Obj) -> bool:
        meta = current["metadata"]
        return (meta.get("labels") or {}) != self.labels or (meta.get("annotations") or {}) != self.annotations


def service_slice_template(service: Obj) -> SliceTemplate:
    meta = service["metadata"]
    return SliceTemplate(meta["name"], meta["namespace"], slice_labels(service), controller_ref(service, "Service"))


@dataclass
class SlicePlan:
    create: list[Obj] = field(default_factory=list)
    update: list[Obj] = field(default_factory=list)
    delete: list[Obj] = field(default_factory=list)

    def empty(self) -> bool:
        return not (self.create or self.update or self.delete)


SliceGroups = dict[tuple, tuple[list[Obj] | None, list[Obj]]]


def plan_slice_writes(template: SliceTemplate, groups: SliceGroups, existing: list[Obj],
                      max_per_slice: int) -> SlicePlan:
    """Writes turning `existing` into one slice per `max_per_slice` endpoints of each port group.

    Existing slices with the same port set are reused in order, so a one-endpoint change rewrites one
    slice; slices of another family or another owner (a recreated Service of the same name) go."""
    plan = SlicePlan()
    by_ports: dict[tuple, list[Obj]] = {}
    owner_uid = template.owner_ref["uid"]
    for slice_obj in sorted(existing, key=lambda s: s["metadata"]["name"]):
        refs = slice_obj["metadata"].get("ownerReferences") or []
        if slice_obj.get("addressType") != "IPv4" or not any(r.get("uid") == owner_uid for r in refs):
            plan.delete.append(slice_obj)
        else:
            by_ports.setdefault(_ports_key(slice_obj.get("ports")), []).append(slice_obj)
    for key, (ports, endpoints) in groups.items():
        chunks = [endpoints[i:i + max_per_slice] for i in range(0, len(endpoints), max_per_slice)] or [[]]
        reusable = by_ports.pop(key, [])
        for chunk in chunks:
            if not reusable:
                plan.create.append(template.new(ports, chunk))
                continue
            current = reusable.pop(0)
            if current.get("endpoints") != chunk or current.get("ports") != ports or template.stale(current):
                updated = copy.deepcopy(current)
                updated.update({"endpoints": chunk, "ports": ports})
                updated["metadata"]["labels"] = dict(template.labels)
                updated["metadata"].pop("annotations", None)
                if template.annotations:
                    updated["metadata"]["annotations"] = dict(template.annotations)
                plan.update.append(updated)
        plan.delete.extend(reusable)
    for leftovers in by_ports.values():
        plan.delete.extend(leftovers)
    return plan


def plan_slices(service: Obj | None, pods: list[Obj], existing: list[Obj],
                max_per_slice: int = MAX_ENDPOINTS_PER_SLICE) -> SlicePlan:
    """The EndpointSlice controller's writes for one Service; a Service with no endpoints keeps one
    empty placeholder slice, as upstream."""
    if service is None or not managed(service):
        return SlicePlan(delete=list(existing))
    groups: SliceGroups = desired_slice_groups(service, pods) or {(): (None, [])}
    return plan_slice_writes(service_slice_template(service), groups, existing, max_per_slice)


# --- EndpointSlice mirroring (Endpoints of selector-less Services) -----------------------------

MIRRORING_MANAGED_BY = "endpointslicemirroring-controller.k8s.io"
SKIP_MIRROR_LABEL = "endpointslice.kubernetes.io/skip-mirror"
LEADER_ANNOTATION = "control-plane.alpha.kubernetes.io/leader"
MAX_MIRRORED_PER_SLICE = 1000  # --mirroring-max-endpoints-per-subset
_UNMIRRORED_ANNOTATIONS = ("endpoints.kubernetes.io/last-change-trigger-time",
                           "kubectl.kubernetes.io/last-applied-configuration")


def mirrored(service: Obj | None, endpoints: Obj | None) -> bool:
    """upstream's shouldMirror: a Service without selector, Endpoints not opted out."""
    if service is None or endpoints is None or (service.get("spec") or {}).get("selector"):
        return False
    meta = endpoints["metadata"]
    return (meta.get("labels") or {}).get(SKIP_MIRROR_LABEL) != "true" and \
        LEADER_ANNOTATION not in (meta.get("annotations") or {})


def mirrored_groups(endpoints: Obj) -> SliceGroups:
    groups: SliceGroups = {}
    for subset in endpoints.get("subsets") or []:
        ports = []
        for port in subset.get("ports") or []:
            mirrored_port = {"name": port.get("name", ""), "port": port.get("port"),
                             "protocol": port.get("protocol", "TCP")}
            if port.get("appProtocol"):
                mirrored_port["appProtocol"] = port["appProtocol"]
            ports.append(mirrored_port)
        ports.sort(key=lambda p: (p["name"], p["port"]))
        group = groups.setdefault(_ports_key(ports), (ports or None, []))[1]
        for bucket, ready in (("addresses", True), ("notReadyAddresses", False)):
            for address in subset.get(bucket) or []:
                if _ip_sort_key(address.get("ip", ""))[0] != 4:
                    continue
                endpoint: Obj = {"addresses": [address["ip"]], "conditions": {"ready": ready}}
                for key in ("hostname", "nodeName", "targetRef"):
                    if address.get(key):
                        endpoint[key] = address[key]
                group.append(endpoint)
    return {key: value for key, value in groups.items() if value[1]}


def mirror_template(endpoints: Obj) -> SliceTemplate:
    meta = endpoints["metadata"]
    labels = {k: v for k, v in (meta.get("labels") or {}).items() if k not in (SERVICE_NAME_LABEL, MANAGED_BY_LABEL)}
    labels[SERVICE_NAME_LABEL] = meta["name"]
    labels[MANAGED_BY_LABEL] = MIRRORING_MANAGED_BY
    annotations = {k: v for k, v in (meta.get("annotations") or {}).items() if k not in _UNMIRRORED_ANNOTATIONS}
    return SliceTemplate(meta["name"], meta["namespace"], labels, controller_ref(endpoints, "Endpoints"), annotations)


def plan_mirrored_slices(service: Obj | None, endpoints: Obj | None, existing: list[Obj],
                         max_per_slice: int = MAX_MIRRORED_PER_SLICE) -> SlicePlan:
    if not mirrored(service, endpoints):
        return SlicePlan(delete=list(existing))
    return plan_slice_writes(mirror_template(endpoints), mirrored_groups(endpoints), existing, max_per_slice)
