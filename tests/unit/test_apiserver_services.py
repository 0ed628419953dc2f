import datetime
import random

import pytest

from apiserver.kinds.services import ServiceStrategy
from apiserver.printers import service_row
from apiserver.allocation.service_allocation import (AlreadyAllocated, OutOfRange, OwnedRange, RangeFull, ServiceAllocator,
                                          parse_port_range)


def strategy():
    return ServiceStrategy(allocator=ServiceAllocator("10.96.0.0/12", (30000, 32767), random.Random(7)))


def service(name="web", **spec):
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": "default"},
            "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}], **spec}}


def created(st, obj):
    """What the registry does on create: default, prepare, validate, admit."""
    st.default(obj)
    st.prepare_for_create(obj)
    problems = st.validate(obj) or st.admit(obj, None)
    return obj, [f"{p.field}: {p.message()}" for p in problems]


def test_defaults_like_upstream():
    obj, problems = created(strategy(), service())
    assert problems == []
    spec = obj["spec"]
    assert spec["type"] == "ClusterIP" and spec["sessionAffinity"] == "None"
    assert spec["ports"] == [{"port": 80, "protocol": "TCP", "targetPort": 80}]
    assert spec["ipFamilies"] == ["IPv4"] and spec["ipFamilyPolicy"] == "SingleStack"
    assert spec["internalTrafficPolicy"] == "Cluster" and "externalTrafficPolicy" not in spec
    assert spec["clusterIPs"] == [spec["clusterIP"]] and spec["clusterIP"].startswith("10.")
    assert obj["status"] == {"loadBalancer": {}}
    node_port, _ = created(strategy(), service(type="NodePort", sessionAffinity="ClientIP"))
    assert node_port["spec"]["externalTrafficPolicy"] == "Cluster"
    assert node_port["spec"]["sessionAffinityConfig"] == {"clientIP": {"timeoutSeconds": 10800}}
    assert 30000 <= node_port["spec"]["ports"][0]["nodePort"] <= 32767


def test_dynamic_picks_avoid_the_static_bands():
    st = strategy()
    for index in range(50):
        obj, _ = created(st, service(name=f"s{index}", type="NodePort"))
        assert obj["spec"]["ports"][0]["nodePort"] >= 30000 + 86  # 2768 // 32 ports kept for requests
        offset = st.allocator.ips.offset(obj["spec"]["clusterIP"])
        assert offset > 256 and obj["spec"]["clusterIP"] != "10.96.0.1"


def test_validation_messages_like_upstream():
    st = strategy()
    _, problems = created(st, service(ports=[{"port": 80}, {"port": 80}]))
    assert problems == [
        "spec.ports[0].name: Required value", "spec.ports[1].name: Required value",
        'spec.ports[1]: Duplicate value: core.ServicePort{Name:"", Protocol:"TCP", AppProtocol:(*string)(nil), '
        'Port:80, TargetPort:intstr.IntOrString{Type:0, IntVal:0, StrVal:""}, NodePort:0}']
    _, problems = created(st, service(ports=[{"port": 70000, "targetPort": "no_good"}]))
    assert problems == ["spec.ports[0].port: Invalid value: 70000: must be between 1 and 65535, inclusive",
                        'spec.ports[0].targetPort: Invalid value: "no_good": must contain only alpha-numeric '
                        "characters (a-z, 0-9), and hyphens (-)"]
    _, problems = created(st, service(ports=[{"port": 80, "nodePort": 30001}]))
    assert problems == ["spec.ports[0].nodePort: Forbidden: may not be used when `type` is 'ClusterIP'"]
    _, problems = created(st, service(type="NodePort", clusterIP="None"))
    assert problems == ['spec.clusterIPs[0]: Invalid value: "None": may not be set to \'None\' for NodePort services']
    _, problems = created(st, service(type="Bogus"))
    assert problems[0] == ('spec.type: Unsupported value: "Bogus": supported values: "ClusterIP", "ExternalName", '
                           '"LoadBalancer", "NodePort"')


def test_node_port_requested_taken_and_out_of_range():
    st = strategy()
    obj, problems = created(st, service(name="a", type="NodePort", ports=[{"port": 80, "nodePort": 30008}]))
    assert problems == [] and obj["spec"]["ports"][0]["nodePort"] == 30008
    _, problems = created(st, service(name="b", type="NodePort", ports=[{"port": 80, "nodePort": 30008}]))
    assert problems == ["spec.ports[0].nodePort: Invalid value: 30008: provided port is already allocated"]
    _, problems = created(st, service(name="c", type="NodePort", ports=[{"port": 80, "nodePort": 29999}]))
    assert problems == ["spec.ports[0].nodePort: Invalid value: 29999: provided port is not in the valid range. "
                        "The range of valid ports is 30000-32767"]
    # a deletion (sync with nothing stored) frees it
    st.allocator.sync("default/a", None)
    _, problems = created(st, service(name="b", type="NodePort", ports=[{"port": 80, "nodePort": 30008}]))
    assert problems == []


def test_cluster_ip_requested_taken_and_out_of_range():
    st = strategy()
    _, problems = created(st, service(name="a", clusterIP="10.96.0.10"))
    assert problems == []
    _, problems = created(st, service(name="b", clusterIP="10.96.0.10"))
    assert problems == ['spec.clusterIPs: Invalid value: []string{"10.96.0.10"}: failed to allocate IP 10.96.0.10: '
                        "provided IP is already allocated"]
    _, problems = created(st, service(name="c", clusterIP="10.0.0.1"))
    assert problems == ['spec.clusterIPs: Invalid value: []string{"10.0.0.1"}: failed to allocate IP 10.0.0.1: the '
                        "provided IP (10.0.0.1) is not in the valid range. The range of valid IPs is 10.96.0.0/12"]
    headless, problems = created(st, service(name="h", clusterIP="None"))
    assert problems == [] and headless["spec"]["clusterIPs"] == ["None"]


def test_load_balancer_gets_node_ports_and_a_health_check_port_when_local():
    st = strategy()
    obj, problems = created(st, service(type="LoadBalancer", externalTrafficPolicy="Local",
                                        ports=[{"name": "a", "port": 53, "protocol": "UDP"},
                                               {"name": "b", "port": 53, "protocol": "TCP"}]))
    assert problems == []
    spec = obj["spec"]
    assert spec["ports"][0]["nodePort"] == spec["ports"][1]["nodePort"]  # same port, two protocols
    assert spec["healthCheckNodePort"] not in (0, spec["ports"][0]["nodePort"])
    assert spec["allocateLoadBalancerNodePorts"] is True
    assert service_row(obj, datetime.datetime.now(datetime.timezone.utc)).cells[3] == \
        "<pending>"


def test_update_keeps_allocations_and_drops_them_on_type_change():
    st = strategy()
    old, _ = created(st, service(type="NodePort"))
    new = service(type="NodePort")  # a PUT that omits the allocated values
    st.prepare_for_update(new, old)
    st.default(new)
    assert new["spec"]["clusterIP"] == old["spec"]["clusterIP"]
    assert new["spec"]["ports"][0]["nodePort"] == old["spec"]["ports"][0]["nodePort"]
    to_cluster_ip = service(type="ClusterIP", clusterIP=old["spec"]["clusterIP"],
                            ports=[dict(old["spec"]["ports"][0])], externalTrafficPolicy="Cluster")
    st.prepare_for_update(to_cluster_ip, old)
    assert "nodePort" not in to_cluster_ip["spec"]["ports"][0] and "externalTrafficPolicy" not in to_cluster_ip["spec"]
    moved = service(type="NodePort", clusterIP="10.96.0.99")
    st.prepare_for_update(moved, old)
    st.default(moved)
    assert [f"{p.field}: {p.message()}" for p in st.validate_update(moved, old)] == \
        ['spec.clusterIPs[0]: Invalid value: "10.96.0.99": may not change once set']


def test_owned_range_claims_and_sync():
    values = OwnedRange(1, 4, static_band=2, rng=random.Random(1))
    assert {values.allocate("a"), values.allocate("a")} == {3, 4}  # upper band first
    assert values.allocate("b") in (1, 2) and values.allocate("b") in (1, 2)
    with pytest.raises(RangeFull):
        values.allocate("c")
    with pytest.raises(AlreadyAllocated):
        values.claim(3, "b")
    with pytest.raises(OutOfRange):
        values.claim(9, "b")
    assert values.set_values("a", {4}) == [] and values.owner(3) is None
    assert values.set_values("c", {4}) == [4]
    assert parse_port_range("30000-32767") == (30000, 32767)
    with pytest.raises(ValueError):
        parse_port_range("5-1")


def test_allocator_sync_rebuilds_from_stored_services():
    allocator = ServiceAllocator()
    stored = service(type="NodePort", clusterIP="10.96.5.5", clusterIPs=["10.96.5.5"],
                     ports=[{"port": 80, "nodePort": 30100}])
    assert allocator.sync("default/web", stored) == []
    assert allocator.node_ports.range.owner(30100) == "default/web"
    assert allocator.ips.range.owner(allocator.ips.offset("10.96.5.5")) == "default/web"
    allocator.sync("default/web", None)
    assert allocator.node_ports.range.owner(30100) is None


def test_server_flags_for_services():
    from apiserver.config import parse_args
    config = parse_args(["--bind-address", "127.0.0.1", "--service-node-port-range", "31000-31010",
                         "--service-cluster-ip-range", "10.100.0.0/16"])
    assert config.service_node_port_range == (31000, 31010) and config.advertise_address == "127.0.0.1"
    assert parse_args(["--advertise-address", "192.0.2.9"]).advertise_address == "192.0.2.9"
    with pytest.raises(SystemExit):
        parse_args(["--service-node-port-range", "32000-31000"])


def test_load_balancer_status_only_for_load_balancers():
    st = strategy()
    old, _ = created(st, service())
    new = {**old, "status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.1"}]}}}
    assert [f"{p.field}: {p.message()}" for p in st.validate_status_update(new, old)] == \
        ["status.loadBalancer.ingress: Forbidden: may only be used when `spec.type` is 'LoadBalancer'"]
    lb_old, _ = created(st, service(name="lb", type="LoadBalancer"))
    assert st.validate_status_update({**lb_old, "status": new["status"]}, lb_old) == []
