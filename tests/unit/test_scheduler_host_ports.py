"""The NodePorts filter (apiserver/scheduler/predicates.py): hostPort conflicts as upstream's
HostPortInfo, and kube-scheduler's message for a pod whose host port is taken on every node."""
from collections import Counter

from apiserver.scheduler.cache import ClusterCache
from apiserver.scheduler.predicates import host_ports, host_ports_conflict, node_info, schedule
from tests.unit.test_apiserver_scheduler import node, pod


def with_ports(*ports, init=()):
    p = pod()
    p["spec"]["containers"][0]["ports"] = list(ports)
    p["spec"]["initContainers"] = list(init)
    return p


def hp(port, protocol=None, ip=None, container=80):
    entry = {"containerPort": container, "hostPort": port}
    if protocol:
        entry["protocol"] = protocol
    if ip:
        entry["hostIP"] = ip
    return entry


def test_host_ports_of_a_pod():
    sidecar = {"name": "s", "restartPolicy": "Always", "ports": [hp(9000)]}
    plain_init = {"name": "i", "ports": [hp(9001)]}
    p = with_ports(hp(8081), hp(53, "UDP", "10.0.0.1"), {"containerPort": 80}, hp(8082, ip="0.0.0.0"),
                   init=[sidecar, plain_init])
    assert host_ports(p) == [("", "TCP", 8081), ("10.0.0.1", "UDP", 53), ("", "TCP", 8082), ("", "TCP", 9000)]


def test_conflict_rules():
    used = Counter({("", "TCP", 8081): 1, ("10.0.0.1", "UDP", 53): 1})
    assert host_ports_conflict([("", "TCP", 8081)], used)
    assert host_ports_conflict([("10.0.0.9", "TCP", 8081)], used)         # wildcard taken
    assert not host_ports_conflict([("", "UDP", 8081)], used)             # other protocol
    assert host_ports_conflict([("", "UDP", 53)], used)                   # wildcard vs a specific address
    assert host_ports_conflict([("10.0.0.1", "UDP", 53)], used)
    assert not host_ports_conflict([("10.0.0.2", "UDP", 53)], used)       # two specific addresses
    assert not host_ports_conflict([("", "TCP", 8082)], used)


def test_second_pod_on_the_same_host_port_gets_upstreams_message():
    first = with_ports(hp(8081))
    first["spec"]["nodeName"] = "a"
    info = node_info(node("a"), [first])
    decision = schedule(with_ports(hp(8081)), [info])
    assert decision.node_name is None
    assert decision.message == ("0/1 nodes are available: 1 node(s) didn't have free ports for the requested pod "
                                "ports. preemption: 0/1 nodes are available: 1 No preemption victims found for "
                                "incoming pod.")
    assert schedule(with_ports(hp(8082)), [info]).node_name == "a"
    assert schedule(with_ports(hp(8081, "UDP")), [info]).node_name == "a"
    # Another node is free: the pod goes there.
    assert schedule(with_ports(hp(8081)), [info, node_info(node("b"))]).node_name == "b"


def test_ports_are_freed_when_the_pod_goes_or_terminates():
    cache = ClusterCache()
    cache.set_node(node("a"))
    first = with_ports(hp(8081))
    first["spec"]["nodeName"] = "a"
    cache.update_pod(first)
    assert schedule(with_ports(hp(8081)), cache.ready_nodes()).node_name is None
    done = {**first, "status": {"phase": "Succeeded"}}
    cache.update_pod(done)
    assert schedule(with_ports(hp(8081)), cache.ready_nodes()).node_name == "a"
    cache.update_pod(first)
    cache.delete_pod(first)
    assert not cache.nodes["a"].used_ports
    assert schedule(with_ports(hp(8081)), cache.ready_nodes()).node_name == "a"
