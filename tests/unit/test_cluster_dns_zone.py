"""Cluster zone answers (agent.cluster_dns.zone), per the Kubernetes DNS specification."""
from __future__ import annotations

from agent.cluster_dns import wire
from agent.cluster_dns.wire import Question
from agent.cluster_dns.zone import Zone


def service(name: str, namespace: str = "dev", cluster_ip: str = "10.96.0.10", **spec) -> dict:
    ports = spec.pop("ports", [{"name": "http", "port": 80, "protocol": "TCP"}])
    return {"metadata": {"name": name, "namespace": namespace},
            "spec": {"clusterIP": cluster_ip, "clusterIPs": [cluster_ip], "ports": ports, **spec}}


def endpoint_slice(service_name: str, *endpoints: dict, namespace: str = "dev", name: str = "") -> dict:
    return {"metadata": {"name": name or f"{service_name}-abcde", "namespace": namespace,
                         "labels": {"kubernetes.io/service-name": service_name}},
            "addressType": "IPv4", "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
            "endpoints": list(endpoints)}


def ep(ip: str, ready: bool = True, hostname: str | None = None) -> dict:
    entry = {"addresses": [ip], "conditions": {"ready": ready}}
    if hostname:
        entry["hostname"] = hostname
    return entry


def ask(zone: Zone, name: str, qtype: int = wire.TYPE_A) -> wire.Answer:
    question = Question(name, qtype)
    assert zone.is_ours(question), name
    return zone.resolve(question)


def rdata(answer: wire.Answer) -> list:
    return [r.rdata[0] if len(r.rdata) == 1 else r.rdata for r in answer.answers]


def test_cluster_ip_service_a_record_case_insensitive() -> None:
    zone = Zone("cluster.local")
    zone.set_service(service("db-service"))
    answer = ask(zone, "DB-Service.dev.svc.Cluster.Local")
    assert answer.rcode == wire.RCODE_NOERROR and rdata(answer) == ["10.96.0.10"]
    assert answer.answers[0].name == "DB-Service.dev.svc.Cluster.Local" and answer.answers[0].ttl == 5


def test_unknown_names_are_nxdomain_with_soa_and_missing_types_nodata() -> None:
    zone = Zone("cluster.local")
    zone.set_service(service("db-service"))
    for name in ("nope.dev.svc.cluster.local", "db-service.other.svc.cluster.local",
                 "db-service.dev.svc.cluster.local.dev.svc.cluster.local", "x.cluster.local"):
        answer = ask(zone, name)
        assert answer.rcode == wire.RCODE_NXDOMAIN, name
        assert [r.rtype for r in answer.authority] == [wire.TYPE_SOA]
    nodata = ask(zone, "db-service.dev.svc.cluster.local", wire.TYPE_AAAA)
    assert nodata.rcode == wire.RCODE_NOERROR and not nodata.answers
    assert nodata.authority[0].rdata[:2] == ("ns.dns.cluster.local", "hostmaster.cluster.local")
    for parent in ("dev.svc.cluster.local", "svc.cluster.local", "cluster.local"):
        assert ask(zone, parent).rcode == wire.RCODE_NOERROR, parent
    assert ask(zone, "cluster.local", wire.TYPE_SOA).answers[0].rtype == wire.TYPE_SOA


def test_headless_service_answers_ready_endpoints_and_their_hostnames() -> None:
    zone = Zone("cluster.local")
    zone.set_service(service("db", cluster_ip="None"))
    zone.set_slice(endpoint_slice("db", ep("10.244.0.7"), ep("10.244.0.5", hostname="db-0"),
                                  ep("10.244.0.9", ready=False)))
    assert rdata(ask(zone, "db.dev.svc.cluster.local")) == ["10.244.0.5", "10.244.0.7"]
    assert rdata(ask(zone, "db-0.db.dev.svc.cluster.local")) == ["10.244.0.5"]
    assert rdata(ask(zone, "10-244-0-7.db.dev.svc.cluster.local")) == ["10.244.0.7"]
    assert ask(zone, "10-244-0-9.db.dev.svc.cluster.local").rcode == wire.RCODE_NXDOMAIN

    # A second slice adds endpoints; deleting the first removes its own.
    zone.set_slice(endpoint_slice("db", ep("10.244.1.2"), name="db-second"))
    assert rdata(ask(zone, "db.dev.svc.cluster.local")) == ["10.244.0.5", "10.244.0.7", "10.244.1.2"]
    zone.set_slice(endpoint_slice("db"), deleted=True)
    assert rdata(ask(zone, "db.dev.svc.cluster.local")) == ["10.244.1.2"]

    zone.set_service(service("db", cluster_ip="None", publishNotReadyAddresses=True))
    zone.set_slice(endpoint_slice("db", ep("10.244.0.9", ready=False)))
    assert "10.244.0.9" in rdata(ask(zone, "db.dev.svc.cluster.local"))


def test_service_update_and_delete() -> None:
    zone = Zone("cluster.local")
    zone.set_service(service("web", cluster_ip="10.96.0.20"))
    zone.set_service(service("web", cluster_ip="10.96.0.21"))
    assert rdata(ask(zone, "web.dev.svc.cluster.local")) == ["10.96.0.21"]
    zone.delete_service("dev", "web")
    assert ask(zone, "web.dev.svc.cluster.local").rcode == wire.RCODE_NXDOMAIN


def test_srv_for_named_ports() -> None:
    zone = Zone("cluster.local")
    zone.set_service(service("web", ports=[{"name": "http", "port": 80, "protocol": "TCP"},
                                           {"name": "dns", "port": 53, "protocol": "UDP"},
                                           {"port": 9000}]))
    answer = ask(zone, "_http._tcp.web.dev.svc.cluster.local", wire.TYPE_SRV)
    assert rdata(answer) == [(0, 100, 80, "web.dev.svc.cluster.local")]
    assert answer.additional[0].rdata == ("10.96.0.10",)
    assert rdata(ask(zone, "_dns._udp.web.dev.svc.cluster.local", wire.TYPE_SRV)) == [
        (0, 100, 53, "web.dev.svc.cluster.local")]
    assert ask(zone, "_http._udp.web.dev.svc.cluster.local", wire.TYPE_SRV).rcode == wire.RCODE_NXDOMAIN

    zone.set_service(service("hl", cluster_ip="None"))
    zone.set_slice(endpoint_slice("hl", ep("10.244.0.5", hostname="hl-0")))
    answer = ask(zone, "_http._tcp.hl.dev.svc.cluster.local", wire.TYPE_SRV)
    assert rdata(answer) == [(0, 100, 8080, "hl-0.hl.dev.svc.cluster.local")]


def test_external_name_is_a_cname() -> None:
    zone = Zone("cluster.local")
    zone.set_service({"metadata": {"name": "ext", "namespace": "dev"},
                      "spec": {"type": "ExternalName", "externalName": "db.example.com."}})
    answer = ask(zone, "ext.dev.svc.cluster.local")
    assert [(r.rtype, r.rdata) for r in answer.answers] == [(wire.TYPE_CNAME, ("db.example.com",))]


def test_pod_names_and_reverse_lookups() -> None:
    zone = Zone("cluster.local")
    assert rdata(ask(zone, "10-244-0-5.dev.pod.cluster.local")) == ["10.244.0.5"]
    assert ask(zone, "10-244-0.dev.pod.cluster.local").rcode == wire.RCODE_NXDOMAIN
    zone.set_service(service("web"))
    ptr = Question("10.0.96.10.in-addr.arpa", wire.TYPE_PTR)
    assert zone.is_ours(ptr) and rdata(zone.resolve(ptr)) == ["web.dev.svc.cluster.local"]
    zone.delete_service("dev", "web")
    assert not zone.is_ours(ptr)   # unknown addresses are forwarded


def test_other_names_are_not_ours_and_domain_is_configurable() -> None:
    zone = Zone("Corp.Internal.")
    assert not zone.is_ours(Question("example.com", wire.TYPE_A))
    assert not zone.is_ours(Question("cluster.local", wire.TYPE_A))
    zone.set_service(service("web"))
    assert rdata(ask(zone, "web.dev.svc.corp.internal")) == ["10.96.0.10"]


def test_reverse_names_of_headless_endpoints_follow_the_slices() -> None:
    zone = Zone("cluster.local")
    zone.set_service(service("db", cluster_ip="None"))
    zone.set_slice(endpoint_slice("db", ep("10.244.0.5", hostname="db-0")))
    ptr = Question("5.0.244.10.in-addr.arpa", wire.TYPE_PTR)
    assert rdata(zone.resolve(ptr)) == ["db-0.db.dev.svc.cluster.local"]
    zone.set_slice(endpoint_slice("db", ep("10.244.0.6")))
    assert not zone.is_ours(ptr)
    assert rdata(zone.resolve(Question("6.0.244.10.in-addr.arpa", wire.TYPE_PTR))) == [
        "10-244-0-6.db.dev.svc.cluster.local"]
