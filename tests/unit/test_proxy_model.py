"""Service and EndpointSlice JSON → the proxy's typed view."""
import pytest

from agent.proxy.model import (DEFAULT_AFFINITY_TIMEOUT_SECONDS, Endpoint, InvalidObject,
                               ServicePortName, service_ports, slice_endpoints)


def svc(**spec):
    return {"metadata": {"namespace": "ns1", "name": "svc1"},
            "spec": {"clusterIP": "10.96.0.10", "ports": [{"name": "p80", "port": 80}], **spec}}


def test_cluster_ip_service_port_defaults():
    [sp] = service_ports(svc())
    assert sp.name == ServicePortName("ns1", "svc1", "p80", "TCP")
    assert str(sp.name) == "ns1/svc1:p80"
    assert (sp.type, sp.cluster_ip, sp.port, sp.node_port) == ("ClusterIP", "10.96.0.10", 80, 0)
    assert sp.protocol == "tcp"
    assert sp.cluster_chain == "KUBE-SVC-XPGD46QRK7WJZT7O"
    assert sp.session_affinity_seconds == 0
    assert not sp.externally_accessible


def test_unnamed_port_name_string_has_no_colon():
    [sp] = service_ports(svc(ports=[{"port": 53, "protocol": "UDP"}]))
    assert str(sp.name) == "ns1/svc1" and sp.protocol == "udp"


def test_node_port_affinity_and_policies():
    [tcp, udp] = service_ports(svc(
        type="NodePort", sessionAffinity="ClientIP", externalTrafficPolicy="Local",
        ports=[{"name": "web", "port": 80, "nodePort": 30080},
               {"name": "dns", "port": 53, "protocol": "UDP", "nodePort": 30053}]))
    assert (tcp.node_port, udp.node_port) == (30080, 30053)
    assert tcp.session_affinity_seconds == DEFAULT_AFFINITY_TIMEOUT_SECONDS
    assert tcp.external_policy_local and not tcp.internal_policy_local
    assert tcp.externally_accessible


def test_affinity_timeout_from_config():
    [sp] = service_ports(svc(sessionAffinity="ClientIP",
                             sessionAffinityConfig={"clientIP": {"timeoutSeconds": 60}}))
    assert sp.session_affinity_seconds == 60


def test_node_port_ignored_for_cluster_ip_type():
    [sp] = service_ports(svc(ports=[{"port": 80, "nodePort": 30001}]))
    assert sp.node_port == 0


@pytest.mark.parametrize("spec", [{"clusterIP": "None"}, {"type": "ExternalName", "clusterIP": ""},
                                  {"clusterIP": "fd00::10"}])
def test_headless_external_name_and_ipv6_have_no_ports(spec):
    assert service_ports(svc(**spec)) == []


def test_bad_protocol_is_a_clear_error():
    with pytest.raises(InvalidObject, match="unsupported protocol 'ICMP'"):
        service_ports(svc(ports=[{"port": 1, "protocol": "ICMP"}]))


def test_endpoint_slice_conditions_and_ports():
    parsed = slice_endpoints({
        "metadata": {"namespace": "ns1", "name": "svc1-x", "labels": {"kubernetes.io/service-name": "svc1"}},
        "addressType": "IPv4",
        "ports": [{"name": "p80", "port": 8080, "protocol": "TCP"}, {"name": "nope"}],
        "endpoints": [
            {"addresses": ["10.244.0.5"], "nodeName": "n1"},
            {"addresses": ["10.244.0.6"], "conditions": {"ready": False, "serving": True, "terminating": True}},
            {"addresses": []},
        ]})
    assert (parsed.namespace, parsed.service) == ("ns1", "svc1")
    assert parsed.by_port == {("p80", "TCP"): (
        Endpoint("10.244.0.5", 8080, ready=True, serving=True, terminating=False, node_name="n1"),
        Endpoint("10.244.0.6", 8080, ready=False, serving=True, terminating=True))}


def test_slices_without_service_label_or_ipv6_are_skipped():
    assert slice_endpoints({"metadata": {"name": "x"}, "addressType": "IPv4"}) is None
    assert slice_endpoints({"metadata": {"name": "x", "labels": {"kubernetes.io/service-name": "s"}},
                            "addressType": "IPv6"}) is None
