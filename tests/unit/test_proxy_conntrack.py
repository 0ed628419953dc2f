"""Which UDP conntrack flows a sync makes stale (agent.proxy.conntrack)."""
from __future__ import annotations

from agent.proxy.conntrack import stale_udp_flows
from agent.proxy.model import Endpoint, service_ports
from agent.proxy.render import ProxyState


def udp_service(node_port: int = 0, protocol: str = "UDP") -> dict:
    port = {"name": "dns", "port": 53, "protocol": protocol}
    spec = {"clusterIP": "10.96.0.10", "ports": [port]}
    if node_port:
        spec["type"], port["nodePort"] = "NodePort", node_port
    return {"metadata": {"namespace": "kube-system", "name": "dns"}, "spec": spec}


def state(service: dict | None, *ips: str, ready: bool = True) -> ProxyState:
    ports = {sp.name: sp for sp in service_ports(service)} if service else {}
    return ProxyState(ports, {name: tuple(Endpoint(ip, 5353, ready=ready) for ip in ips) for name in ports})


def names(*states: ProxyState) -> set:
    return {name for s in states for name in s.services}


def test_removed_endpoint_flows_are_cleared_for_cluster_ip_and_node_port() -> None:
    before, after = state(udp_service(30053), "10.244.0.5", "10.244.0.6"), state(udp_service(30053), "10.244.0.6")
    assert stale_udp_flows(before, after, names(before)) == [
        ("-p", "udp", "--orig-dst", "10.96.0.10", "--dst-nat", "10.244.0.5"),
        ("-p", "udp", "--orig-port-dst", "30053", "--dst-nat", "10.244.0.5")]


def test_first_endpoint_clears_the_black_holed_flows() -> None:
    before, after = state(udp_service(30053)), state(udp_service(30053), "10.244.0.5")
    assert stale_udp_flows(before, after, names(after)) == [
        ("-p", "udp", "--orig-dst", "10.96.0.10"), ("-p", "udp", "--orig-port-dst", "30053")]
    # Not-ready endpoints do not count as endpoints.
    assert stale_udp_flows(before, state(udp_service(30053), "10.244.0.5", ready=False), names(after)) == []


def test_deleted_service_and_tcp_and_unchanged() -> None:
    before = state(udp_service(), "10.244.0.5")
    assert stale_udp_flows(before, state(None), names(before)) == [
        ("-p", "udp", "--orig-dst", "10.96.0.10", "--dst-nat", "10.244.0.5")]
    tcp_before, tcp_after = state(udp_service(protocol="TCP"), "10.244.0.5"), state(udp_service(protocol="TCP"))
    assert stale_udp_flows(tcp_before, tcp_after, names(tcp_before)) == []
    assert stale_udp_flows(before, before, names(before)) == []


def test_an_endpoint_whose_port_changed_is_stale() -> None:
    before = state(udp_service(), "10.244.0.5")
    after = ProxyState(before.services, {n: (Endpoint("10.244.0.5", 6000),) for n in before.services})
    assert stale_udp_flows(before, after, names(before)) == [
        ("-p", "udp", "--orig-dst", "10.96.0.10", "--dst-nat", "10.244.0.5")]
