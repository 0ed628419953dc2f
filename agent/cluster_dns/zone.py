"""The cluster zone: Services and EndpointSlices → DNS answers, following the Kubernetes DNS-Based
Service Discovery specification (kubernetes/dns docs/specification.md). Pure; no I/O.

  <svc>.<ns>.svc.<zone>             A: the ClusterIP; headless: the ready endpoints' IPs;
                                    ExternalName: a CNAME to spec.externalName
  <host>.<svc>.<ns>.svc.<zone>      A: a headless service's endpoint (hostname, else dashed IP)
  _<port>._<proto>.<svc>.<ns>.svc.<zone>
                                    SRV for each named port (headless: one per endpoint)
  <a-b-c-d>.<ns>.pod.<zone>         A: a.b.c.d (as CoreDNS's `pods insecure`)
  <d.c.b.a>.in-addr.arpa            PTR for service cluster IPs and headless endpoints
Names under the zone that match nothing get NXDOMAIN with the zone's SOA; names that exist but
have no record of the asked type get an empty NOERROR answer with the SOA (NODATA).
"""
from __future__ import annotations

import ipaddress
import time
from dataclasses import dataclass

from agent.cluster_dns import wire
from agent.cluster_dns.wire import Answer, Question, Record

SERVICE_NAME_LABEL = "kubernetes.io/service-name"
# CoreDNS's kubernetes plugin answers with TTL 5 s and a 5 s SOA minimum (negative caching):
# clients that cache see changes as soon as in an upstream cluster.
RECORD_TTL = 5
SOA_TTL = 5
REVERSE_SUFFIX = "in-addr.arpa"


@dataclass(frozen=True, slots=True)
class ServicePortEntry:
    name: str
    protocol: str
    port: int


@dataclass(frozen=True, slots=True)
class ServiceEntry:
    namespace: str
    name: str
    cluster_ips: tuple[str, ...]        # empty for headless and ExternalName services
    headless: bool
    external_name: str
    ports: tuple[ServicePortEntry, ...]
    publish_not_ready: bool


@dataclass(frozen=True, slots=True)
class EndpointEntry:
    ip: str
    hostname: str       # spec hostname, or the dashed IP when the endpoint has none
    ready: bool
    ports: tuple[ServicePortEntry, ...]


def service_entry(service: dict) -> ServiceEntry | None:
    meta, spec = service.get("metadata") or {}, service.get("spec") or {}
    if not meta.get("name"):
        return None
    cluster_ips = tuple(ip for ip in (spec.get("clusterIPs") or [spec.get("clusterIP") or ""])
                        if ip and ip != "None" and _ipv4(ip))
    service_type = spec.get("type") or "ClusterIP"
    return ServiceEntry(
        namespace=meta.get("namespace") or "default", name=meta["name"],
        cluster_ips=() if service_type == "ExternalName" else cluster_ips,
        headless=service_type != "ExternalName" and spec.get("clusterIP") == "None",
        external_name=(spec.get("externalName") or "").rstrip(".") if service_type == "ExternalName" else "",
        ports=tuple(ServicePortEntry(p.get("name") or "", p.get("protocol") or "TCP", p.get("port") or 0)
                    for p in spec.get("ports") or ()),
        publish_not_ready=bool(spec.get("publishNotReadyAddresses")))


def slice_entries(endpoint_slice: dict) -> tuple[str, str, str, tuple[EndpointEntry, ...]] | None:
    """(namespace, service, slice name, IPv4 endpoints) of an EndpointSlice; None if not a service's."""
    meta = endpoint_slice.get("metadata") or {}
    service = (meta.get("labels") or {}).get(SERVICE_NAME_LABEL)
    if not service or not meta.get("name") or endpoint_slice.get("addressType", "IPv4") != "IPv4":
        return None
    ports = tuple(ServicePortEntry(p.get("name") or "", p.get("protocol") or "TCP", p["port"])
                  for p in endpoint_slice.get("ports") or () if isinstance(p.get("port"), int))
    endpoints = []
    for entry in endpoint_slice.get("endpoints") or ():
        addresses = [a for a in entry.get("addresses") or () if _ipv4(a)]
        if not addresses:
            continue
        ready = (entry.get("conditions") or {}).get("ready") is not False
        hostname = entry.get("hostname") or addresses[0].replace(".", "-")
        endpoints.append(EndpointEntry(addresses[0], hostname, ready, ports))
    return meta.get("namespace") or "default", service, meta["name"], tuple(endpoints)


class Zone:
    """The zone's current content, updated from informer callbacks, queried by `resolve`."""

    def __init__(self, domain: str = "cluster.local"):
        self.domain = domain.strip(".").lower()
        self.services: dict[tuple[str, str], ServiceEntry] = {}
        self.slices: dict[tuple[str, str], dict[str, tuple[EndpointEntry, ...]]] = {}
        self.reverse: dict[str, str] = {}   # ip → the name its PTR points at
        self._reverse_of: dict[tuple[str, str], list[str]] = {}   # service → the IPs it indexed
        self.serial = int(time.time()) & 0xFFFFFFFF
        # Until Services and EndpointSlices have both been listed, "no such name" may be wrong:
        # the server answers SERVFAIL (clients retry) rather than a cached NXDOMAIN.
        self.services_synced = False
        self.slices_synced = False

    @property
    def synced(self) -> bool:
        return self.services_synced and self.slices_synced

    # -------------------------------------------------------------- updates
    def set_service(self, service: dict) -> None:
        entry = service_entry(service)
        if entry is None:
            return
        self.delete_service(entry.namespace, entry.name)
        self.services[(entry.namespace, entry.name)] = entry
        self._index_reverse(entry.namespace, entry.name)
        self._changed()

    def delete_service(self, namespace: str, name: str) -> None:
        entry = self.services.pop((namespace, name), None)
        if entry is not None:
            self._unindex_reverse(namespace, name)
            self._changed()

    def set_slice(self, endpoint_slice: dict, deleted: bool = False) -> None:
        parsed = slice_entries(endpoint_slice)
        if parsed is None:
            return
        namespace, service, slice_name, endpoints = parsed
        self._unindex_reverse(namespace, service)
        slices = self.slices.setdefault((namespace, service), {})
        if deleted:
            slices.pop(slice_name, None)
        else:
            slices[slice_name] = endpoints
        if not slices:
            del self.slices[(namespace, service)]
        self._index_reverse(namespace, service)
        self._changed()

    def _changed(self) -> None:
        self.serial = (self.serial + 1) & 0xFFFFFFFF

    def _service_name(self, namespace: str, name: str) -> str:
        return f"{name}.{namespace}.svc.{self.domain}"

    def _index_reverse(self, namespace: str, name: str) -> None:
        entry = self.services.get((namespace, name))
        if entry is None:
            return
        base = self._service_name(namespace, name)
        indexed = self._reverse_of.setdefault((namespace, name), [])
        for ip in entry.cluster_ips:
            self.reverse[ip] = base
            indexed.append(ip)
        if entry.headless:
            for ep in self.endpoints(entry):
                if ep.ip not in self.reverse:
                    self.reverse[ep.ip] = f"{ep.hostname}.{base}"
                    indexed.append(ep.ip)

    def _unindex_reverse(self, namespace: str, name: str) -> None:
        base = self._service_name(namespace, name)
        for ip in self._reverse_of.pop((namespace, name), ()):
            target = self.reverse.get(ip, "")
            if target == base or target.endswith("." + base):
                del self.reverse[ip]

    def endpoints(self, entry: ServiceEntry) -> list[EndpointEntry]:
        """The endpoints DNS publishes: ready ones (all with publishNotReadyAddresses), by IP."""
        seen: dict[str, EndpointEntry] = {}
        for slice_name in sorted(self.slices.get((entry.namespace, entry.name), {})):
            for ep in self.slices[(entry.namespace, entry.name)][slice_name]:
                if ep.ready or entry.publish_not_ready:
                    seen.setdefault(ep.ip, ep)
        return sorted(seen.values(), key=lambda ep: ipaddress.IPv4Address(ep.ip))

    # -------------------------------------------------------------- queries
    def is_ours(self, question: Question) -> bool:
        """Whether this zone answers the name (else it is forwarded)."""
        name = question.key
        if name == self.domain or name.endswith("." + self.domain):
            return True
        return question.qtype == wire.TYPE_PTR and _reverse_ip(name) in self.reverse

    def soa(self) -> Record:
        return Record(self.domain, wire.TYPE_SOA, SOA_TTL,
                      (f"ns.dns.{self.domain}", f"hostmaster.{self.domain}", self.serial, 7200, 1800, 86400,
                       SOA_TTL))

    def resolve(self, question: Question) -> Answer:
        name = question.key
        if name.endswith(REVERSE_SUFFIX):
            target = self.reverse.get(_reverse_ip(name) or "")
            if target is None:
                return Answer(wire.RCODE_NXDOMAIN, authority=[self.soa()])
            return Answer(answers=[Record(question.name, wire.TYPE_PTR, RECORD_TTL, (target,))])
        labels = name[:-len(self.domain)].rstrip(".").split(".") if name != self.domain else []
        labels = [label for label in labels if label]
        found = self._lookup(question, list(reversed(labels)))
        if found is None:
            return Answer(wire.RCODE_NXDOMAIN, authority=[self.soa()])
        if not found.answers and not found.authority:
            found.authority.append(self.soa())   # NODATA
        return found

    def _lookup(self, question: Question, labels: list[str]) -> Answer | None:
        """`labels` from the zone apex down (e.g. ["svc", "dev", "db-service"]); None: NXDOMAIN."""
        qtype = question.qtype
        if not labels:
            if qtype == wire.TYPE_SOA or qtype == wire.TYPE_ANY:
                return Answer(answers=[self.soa()])
            if qtype == wire.TYPE_NS:
                return Answer(answers=[Record(question.name, wire.TYPE_NS, RECORD_TTL, (f"ns.dns.{self.domain}",))])
            return Answer()
        kind, rest = labels[0], labels[1:]
        if kind == "svc":
            return self._lookup_service(question, rest)
        if kind == "pod":
            return self._lookup_pod(question, rest)
        return None

    def _lookup_pod(self, question: Question, rest: list[str]) -> Answer | None:
        if len(rest) < 2:
            return Answer()   # pod.<zone> and <ns>.pod.<zone> exist as empty parents
        if len(rest) != 2:
            return None
        ip = rest[1].replace("-", ".")
        if not _ipv4(ip) or rest[1].count("-") != 3:
            return None
        return self._a_answer(question, [ip])

    def _namespace_exists(self, namespace: str) -> bool:
        return any(ns == namespace for ns, _ in self.services)

    def _lookup_service(self, question: Question, rest: list[str]) -> Answer | None:
        if not rest:
            return Answer()
        namespace = rest[0]
        if len(rest) == 1:
            return Answer() if self._namespace_exists(namespace) else None
        service = self.services.get((namespace, rest[1]))
        if service is None:
            return None
        below = rest[2:]
        if not below:
            return self._service_answer(question, service)
        if len(below) == 2 and below[0].startswith("_") and below[1].startswith("_"):
            return self._srv_answer(question, service, protocol=below[0][1:], port_name=below[1][1:])
        if len(below) == 1 and service.headless:
            matches = [ep for ep in self.endpoints(service) if ep.hostname.lower() == below[0]]
            return self._a_answer(question, [ep.ip for ep in matches]) if matches else None
        return None

    def _service_answer(self, question: Question, service: ServiceEntry) -> Answer:
        if service.external_name:
            return Answer(answers=[Record(question.name, wire.TYPE_CNAME, RECORD_TTL, (service.external_name,))])
        ips = list(service.cluster_ips) if not service.headless else [ep.ip for ep in self.endpoints(service)]
        if question.qtype == wire.TYPE_SRV:
            return self._srv_records(question, service, [p for p in service.ports if p.name])
        return self._a_answer(question, ips)

    def _srv_answer(self, question: Question, service: ServiceEntry, protocol: str, port_name: str) -> Answer | None:
        ports = [p for p in service.ports if p.name.lower() == port_name and p.protocol.lower() == protocol]
        if not ports:
            return None
        return self._srv_records(question, service, ports)

    def _srv_records(self, question: Question, service: ServiceEntry, ports: list[ServicePortEntry]) -> Answer:
        answer = Answer()
        if question.qtype not in (wire.TYPE_SRV, wire.TYPE_ANY):
            return answer
        base = self._service_name(service.namespace, service.name)
        for port in ports:
            if not service.headless:
                answer.answers.append(Record(question.name, wire.TYPE_SRV, RECORD_TTL, (0, 100, port.port, base)))
                answer.additional += [Record(base, wire.TYPE_A, RECORD_TTL, (ip,)) for ip in service.cluster_ips]
                continue
            for ep in self.endpoints(service):
                target_port = next((p.port for p in ep.ports if p.name == port.name and p.protocol == port.protocol),
                                   None)
                if target_port is None:
                    continue
                target = f"{ep.hostname}.{base}"
                answer.answers.append(Record(question.name, wire.TYPE_SRV, RECORD_TTL, (0, 100, target_port, target)))
                answer.additional.append(Record(target, wire.TYPE_A, RECORD_TTL, (ep.ip,)))
        return answer

    @staticmethod
    def _a_answer(question: Question, ips: list[str]) -> Answer:
        if question.qtype not in (wire.TYPE_A, wire.TYPE_ANY):
            return Answer()
        return Answer(answers=[Record(question.name, wire.TYPE_A, RECORD_TTL, (ip,)) for ip in ips])


def _reverse_ip(name: str) -> str | None:
    """"10.0.96.10.in-addr.arpa" → "10.96.0.10"; None when not an IPv4 reverse name."""
    if not name.endswith("." + REVERSE_SUFFIX):
        return None
    parts = name[:-len(REVERSE_SUFFIX) - 1].split(".")
    if len(parts) != 4:
        return None
    ip = ".".join(reversed(parts))
    return ip if _ipv4(ip) else None


def _ipv4(text: str) -> bool:
    try:
        ipaddress.IPv4Address(text)
        return True
    except ValueError:
        return False
