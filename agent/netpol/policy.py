"""NetworkPolicies + pods + namespaces → what each of this node's pods may receive and send. Pure.

Upstream semantics (networking.k8s.io/v1, the NetworkPolicy API reference):
- a policy selects pods of its own namespace (`podSelector`, empty = all of them); it can never
  select, and so never open, pods of another namespace;
- a pod selected by a policy whose policyTypes include Ingress (Egress) is isolated in that
  direction: only what one of those policies' rules allows gets through (the union of allows);
  a pod no policy selects for a direction is not isolated in it;
- policyTypes left empty mean Ingress, plus Egress when the policy has egress rules;
- a rule's peers (`from`/`to`) are OR'ed; absent or empty peers mean every source/destination; a
  peer with podSelector and namespaceSelector selects the pods matching both (AND), podSelector alone
  means pods of the policy's namespace, namespaceSelector alone every pod of the matching namespaces;
  ipBlock is its CIDR minus its `except` CIDRs;
- a rule's ports are OR'ed; absent or empty means every port; `endPort` makes a range; a named port
  is resolved per pod — on the selected pod for ingress, on each destination pod for egress (an
  ipBlock destination has no named ports, so a named port matches nothing there);
- peers or named ports that resolve to nothing make the rule allow nothing (never everything).
"""
from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from shipmate.selectors import LabelSelector, SelectorError, label_selector_from_dict

Obj = dict[str, Any]
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"
TERMINAL_PHASES = ("Succeeded", "Failed")
PROTOCOLS = ("TCP", "UDP", "SCTP")


@dataclass(frozen=True, slots=True)
class Pod:
    """What policies need of a pod (the informer's slim record)."""
    namespace: str
    name: str
    ip: str
    node: str = ""
    labels: Mapping[str, str] = field(default_factory=dict)
    # (port name, protocol) -> container port, for named ports
    named_ports: Mapping[tuple[str, str], int] = field(default_factory=dict)
    host_network: bool = False

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


def pod_record(obj: Obj) -> Pod | None:
    """The slim record of an API pod; None when it has no IPv4 address or has terminated (it cannot
    send, receive or be a peer then)."""
    meta, spec, status = obj.get("metadata") or {}, obj.get("spec") or {}, obj.get("status") or {}
    ip = status.get("podIP") or ""
    if not ip or status.get("phase") in TERMINAL_PHASES or not _is_ipv4(ip):
        return None
    named: dict[tuple[str, str], int] = {}
    containers = list(spec.get("initContainers") or ()) + list(spec.get("containers") or ())
    for container in containers:
        for port in container.get("ports") or ():
            if port.get("name") and isinstance(port.get("containerPort"), int):
                named.setdefault((port["name"], port.get("protocol") or "TCP"), port["containerPort"])
    return Pod(namespace=meta.get("namespace") or "default", name=meta.get("name") or "", ip=ip,
               node=spec.get("nodeName") or "", labels=dict(meta.get("labels") or {}), named_ports=named,
               host_network=bool(spec.get("hostNetwork")))


@dataclass(frozen=True, slots=True, order=True)
class PortMatch:
    """A protocol, optionally with a port or port range (`end` > 0)."""
    protocol: str
    port: int = 0          # 0: every port of the protocol
    end: int = 0


@dataclass(frozen=True, slots=True)
class Rule:
    """Traffic a rule allows: from/to any of `peers` (CIDRs; None = anywhere) on any of `ports`
    (None = every port and protocol). `origin` names the policy rule, for comments."""
    peers: tuple[str, ...] | None
    ports: tuple[PortMatch, ...] | None
    origin: str


@dataclass(frozen=True, slots=True)
class PodRules:
    """One local pod's verdict: None = not isolated in that direction, () = isolated, nothing allowed."""
    pod: Pod
    ingress: tuple[Rule, ...] | None
    egress: tuple[Rule, ...] | None


@dataclass(frozen=True, slots=True)
class _Policy:
    namespace: str
    name: str
    selector: LabelSelector
    types: frozenset[str]
    ingress: tuple[Obj, ...]
    egress: tuple[Obj, ...]


def policy_types(spec: Obj) -> frozenset[str]:
    """spec.policyTypes, or upstream's default when empty: Ingress, plus Egress with egress rules."""
    types = [t for t in spec.get("policyTypes") or () if t in ("Ingress", "Egress")]
    if types:
        return frozenset(types)
    return frozenset(("Ingress", "Egress") if spec.get("egress") else ("Ingress",))


def _selector(value: Any) -> LabelSelector | None:
    """A parsed label selector; None when it cannot be parsed (it then selects nothing)."""
    try:
        return label_selector_from_dict(value if isinstance(value, dict) else {})
    except SelectorError:
        return None


def _parse_policy(obj: Obj) -> _Policy | None:
    meta, spec = obj.get("metadata") or {}, obj.get("spec") or {}
    selector = _selector(spec.get("podSelector"))
    if selector is None:
        return None
    return _Policy(meta.get("namespace") or "default", meta.get("name") or "", selector, policy_types(spec),
                   tuple(r for r in spec.get("ingress") or () if isinstance(r, dict)),
                   tuple(r for r in spec.get("egress") or () if isinstance(r, dict)))


def _is_ipv4(text: str) -> bool:
    try:
        return isinstance(ipaddress.ip_address(text), ipaddress.IPv4Address)
    except ValueError:
        return False


def ip_block_cidrs(block: Obj) -> tuple[str, ...]:
    """An ipBlock as disjoint IPv4 CIDRs: `cidr` minus every `except` (IPv6 blocks: none here)."""
    try:
        network = ipaddress.ip_network(str(block.get("cidr") or ""), strict=False)
    except ValueError:
        return ()
    if not isinstance(network, ipaddress.IPv4Network):
        return ()
    remaining = [network]
    for text in block.get("except") or ():
        try:
            hole = ipaddress.ip_network(str(text), strict=False)
        except ValueError:
            continue
        if not isinstance(hole, ipaddress.IPv4Network):
            continue
        next_remaining: list[ipaddress.IPv4Network] = []
        for piece in remaining:
            if hole.supernet_of(piece):
                continue                                  # the whole piece is excepted
            if piece.supernet_of(hole):
                next_remaining.extend(piece.address_exclude(hole))
            else:
                next_remaining.append(piece)
        remaining = next_remaining
    return tuple(str(n) for n in sorted(remaining))


class Cluster:
    """The pods, namespaces and policies of the cluster, indexed for evaluation."""

    def __init__(self, pods: Iterable[Pod], namespaces: Mapping[str, Mapping[str, str]],
                 policies: Iterable[Obj]):
        self.pods = [p for p in pods if not p.host_network]
        self.by_namespace: dict[str, list[Pod]] = {}
        for pod in self.pods:
            self.by_namespace.setdefault(pod.namespace, []).append(pod)
        self.namespace_labels = dict(namespaces)
        self.policies: dict[str, list[_Policy]] = {}
        for obj in policies:
            policy = _parse_policy(obj)
            if policy is not None:
                self.policies.setdefault(policy.namespace, []).append(policy)
        for items in self.policies.values():
            items.sort(key=lambda p: p.name)

    def labels_of_namespace(self, namespace: str) -> Mapping[str, str]:
        labels = self.namespace_labels.get(namespace)
        # Every namespace carries its name as a label (upstream sets it on create and keeps it).
        return {**(labels or {}), NAMESPACE_NAME_LABEL: namespace}

    def peer_pods(self, peer: Obj, policy_namespace: str) -> list[Pod] | None:
        """The pods a peer selects; None when the peer is not a pod peer (an ipBlock)."""
        pod_selector_obj, namespace_selector_obj = peer.get("podSelector"), peer.get("namespaceSelector")
        if pod_selector_obj is None and namespace_selector_obj is None:
            return None
        pod_selector = _selector(pod_selector_obj) if pod_selector_obj is not None else LabelSelector()
        if pod_selector is None:
            return []
        if namespace_selector_obj is None:
            namespaces = [policy_namespace]
        else:
            namespace_selector = _selector(namespace_selector_obj)
            if namespace_selector is None:
                return []
            namespaces = [ns for ns in self.by_namespace if namespace_selector.matches(self.labels_of_namespace(ns))]
        return [pod for ns in sorted(namespaces) for pod in self.by_namespace.get(ns, ())
                if pod_selector.matches(pod.labels)]


def _numeric_and_named(ports: Iterable[Any]) -> tuple[list[PortMatch], list[tuple[str, str]]]:
    numeric: list[PortMatch] = []
    named: list[tuple[str, str]] = []
    for entry in ports:
        if not isinstance(entry, dict):
            continue
        protocol = entry.get("protocol") or "TCP"
        if protocol not in PROTOCOLS:
            continue
        port = entry.get("port")
        if port is None:
            numeric.append(PortMatch(protocol))
        elif isinstance(port, int) and not isinstance(port, bool):
            end = entry.get("endPort")
            end = end if isinstance(end, int) and end > port else 0
            numeric.append(PortMatch(protocol, port, end))
        elif isinstance(port, str) and port.isdigit():
            numeric.append(PortMatch(protocol, int(port)))
        elif isinstance(port, str) and port:
            named.append((port, protocol))
    return numeric, named


def _resolve(named: Iterable[tuple[str, str]], pod: Pod) -> list[PortMatch]:
    return [PortMatch(protocol, pod.named_ports[(name, protocol)])
            for name, protocol in named if (name, protocol) in pod.named_ports]


def _unique(items: Iterable[Any]) -> tuple[Any, ...]:
    return tuple(dict.fromkeys(items))


def _rule_peers(cluster: Cluster, rule: Obj, key: str, namespace: str) -> tuple[bool, list[Pod], list[str]]:
    """(any peer, selected pods, ipBlock CIDRs) of a rule's `from`/`to`."""
    peers = [p for p in rule.get(key) or () if isinstance(p, dict)]
    if not peers:
        return True, [], []
    pods: dict[str, Pod] = {}
    cidrs: list[str] = []
    for peer in peers:
        selected = cluster.peer_pods(peer, namespace)
        if selected is not None:
            pods.update((p.key, p) for p in selected)
        elif isinstance(peer.get("ipBlock"), dict):
            cidrs.extend(ip_block_cidrs(peer["ipBlock"]))
    return False, list(pods.values()), cidrs


def ingress_rules(cluster: Cluster, policy: _Policy, pod: Pod) -> list[Rule]:
    out = []
    for index, rule in enumerate(policy.ingress):
        origin = f"{policy.namespace}/{policy.name} ingress[{index}]"
        numeric, named = _numeric_and_named(rule.get("ports") or ())
        if rule.get("ports"):
            ports: tuple[PortMatch, ...] | None = _unique(numeric + _resolve(named, pod))
            if not ports:
                continue           # only named ports, none of which the pod has: allows nothing
        else:
            ports = None
        anyone, pods, cidrs = _rule_peers(cluster, rule, "from", policy.namespace)
        if anyone:
            out.append(Rule(None, ports, origin))
            continue
        peers = _unique([f"{p.ip}/32" for p in pods] + cidrs)
        if peers:
            out.append(Rule(peers, ports, origin))
    return out


def egress_rules(cluster: Cluster, policy: _Policy) -> list[Rule]:
    """The same for every pod the policy selects: egress named ports resolve on the destinations."""
    out = []
    for index, rule in enumerate(policy.egress):
        origin = f"{policy.namespace}/{policy.name} egress[{index}]"
        numeric, named = _numeric_and_named(rule.get("ports") or ())
        has_ports = bool(rule.get("ports"))
        anyone, pods, cidrs = _rule_peers(cluster, rule, "to", policy.namespace)
        numeric_ports = _unique(numeric) if has_ports else None
        if not has_ports or numeric:
            if anyone:
                out.append(Rule(None, numeric_ports, origin))
            else:
                peers = _unique([f"{p.ip}/32" for p in pods] + cidrs)
                if peers:
                    out.append(Rule(peers, numeric_ports, origin))
        if named:
            destinations = cluster.pods if anyone else pods
            by_ports: dict[tuple[PortMatch, ...], list[str]] = {}
            for destination in destinations:
                resolved = _unique(_resolve(named, destination))
                if resolved:
                    by_ports.setdefault(resolved, []).append(f"{destination.ip}/32")
            for resolved, ips in sorted(by_ports.items()):
                out.append(Rule(_unique(ips), resolved, origin))
    return out


def evaluate(cluster: Cluster, local_pods: Iterable[Pod]) -> list[PodRules]:
    """Every local pod that some policy isolates, with the rules that let traffic through; pods no
    policy selects are left out (not isolated: everything is allowed)."""
    result = []
    egress_cache: dict[tuple[str, str], list[Rule]] = {}
    for pod in sorted(local_pods, key=lambda p: p.key):
        if pod.host_network:
            continue           # NetworkPolicy does not apply to host-network pods
        ingress: list[Rule] | None = None
        egress: list[Rule] | None = None
        for policy in cluster.policies.get(pod.namespace, ()):
            if not policy.selector.matches(pod.labels):
                continue
            if "Ingress" in policy.types:
                ingress = (ingress or []) + ingress_rules(cluster, policy, pod)
            if "Egress" in policy.types:
                key = (policy.namespace, policy.name)
                if key not in egress_cache:
                    egress_cache[key] = egress_rules(cluster, policy)
                egress = (egress or []) + egress_cache[key]
        if ingress is not None or egress is not None:
            result.append(PodRules(pod, None if ingress is None else tuple(ingress),
                                   None if egress is None else tuple(egress)))
    return result
