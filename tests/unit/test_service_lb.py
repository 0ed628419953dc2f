"""LoadBalancer Services without a cloud: the server's ingress choice (apiserver/controllers/service_lb.py)
and the proxy programming the ingress IPs (agent/proxy model + render)."""
from __future__ import annotations

from agent.proxy.model import Endpoint, service_ports
from agent.proxy.render import ProxyState, RenderConfig, render_full
from apiserver.controllers.service_lb import load_balancer_ingress


def node(name, internal, external=None, ready=True, **labels):
    addresses = [{"type": "InternalIP", "address": internal}, {"type": "Hostname", "address": name}]
    if external:
        addresses.append({"type": "ExternalIP", "address": external})
    return {"metadata": {"name": name, "labels": labels},
            "status": {"addresses": addresses, "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}


def service(kind="LoadBalancer", **spec):
    return {"metadata": {"namespace": "default", "name": "web"},
            "spec": {"type": kind, "clusterIP": "10.96.0.50", "ports": [{"port": 80, "nodePort": 30080}], **spec}}


def endpoint_slice(*nodes_ready):
    return {"metadata": {"namespace": "default", "name": "web-abc", "labels": {"kubernetes.io/service-name": "web"}},
            "endpoints": [{"addresses": [f"10.244.{i}.5"], "nodeName": n, "conditions": {"ready": r}}
                          for i, (n, r) in enumerate(nodes_ready)]}


NODES = [node("b", "10.0.0.12"), node("a", "10.0.0.11"), node("c", "10.0.0.13", external="203.0.113.7"),
         node("d", "10.0.0.14", ready=False),
         node("e", "10.0.0.15", **{"node.kubernetes.io/exclude-from-external-load-balancers": ""})]


def ips(ingress):
    return [entry["ip"] for entry in ingress]


def test_ingress_is_every_ready_node_address_external_first():
    ingress = load_balancer_ingress(service(), NODES, [])
    assert ips(ingress) == ["10.0.0.11", "10.0.0.12", "203.0.113.7"]
    assert all(entry["ipMode"] == "VIP" for entry in ingress)


def test_local_policy_only_nodes_with_ready_endpoints():
    slices = [endpoint_slice(("a", True), ("b", False), ("d", True))]
    assert ips(load_balancer_ingress(service(externalTrafficPolicy="Local"), NODES, slices)) == ["10.0.0.11"]
    assert load_balancer_ingress(service(externalTrafficPolicy="Local"), NODES, []) == []


def test_not_ours_and_not_a_load_balancer():
    assert load_balancer_ingress(service(loadBalancerClass="example.com/lb"), NODES, []) is None
    assert load_balancer_ingress(service("ClusterIP"), NODES, []) == []
    assert load_balancer_ingress(service("NodePort"), NODES, []) == []


def test_proxy_programs_load_balancer_ips_like_kube_proxy():
    svc = service(externalTrafficPolicy="Cluster")
    svc["status"] = {"loadBalancer": {"ingress": [{"ip": "10.0.0.11", "ipMode": "VIP"}, {"ip": "10.0.0.12"},
                                                  {"ip": "10.0.0.13", "ipMode": "Proxy"}, {"hostname": "lb.example"}]}}
    [sp] = service_ports(svc)
    assert sp.load_balancer_ips == ("10.0.0.11", "10.0.0.12")
    assert sp.externally_accessible
    # NodePort/ClusterIP services never get them, whatever their status says.
    assert service_ports({**svc, "spec": {**svc["spec"], "type": "ClusterIP"}})[0].load_balancer_ips == ()
    config = RenderConfig(cluster_cidr="10.244.0.0/16", node_name="a")
    with_endpoints = "\n".join(render_full(ProxyState({sp.name: sp}, {sp.name: (Endpoint("10.244.1.5", 80, node_name="b"),)}),
                                           config).transactions)
    assert (f'-A KUBE-SERVICES -m comment --comment "default/web loadbalancer IP" -m tcp -p tcp -d 10.0.0.11 '
            f"--dport 80 -j {sp.external_chain}") in with_endpoints
    assert f"-A {sp.external_chain} -m comment --comment \"masquerade traffic for default/web external destinations\"" \
        in with_endpoints
    # Local policy on a node without local endpoints: the LB IP drops (the controller does not announce it).
    local = service_ports({**svc, "spec": {**svc["spec"], "externalTrafficPolicy": "Local", "healthCheckNodePort": 31000}})[0]
    text = "\n".join(render_full(ProxyState({local.name: local}, {local.name: (Endpoint("10.244.1.5", 80, node_name="b"),)}),
                                 config).transactions)
    assert ('-A KUBE-EXTERNAL-SERVICES -m comment --comment "default/web has no local endpoints" -m tcp -p tcp '
            "-d 10.0.0.11 --dport 80 -j DROP") in text
    # Without endpoints at all: REJECT, as for external IPs.
    empty = "\n".join(render_full(ProxyState({sp.name: sp}, {}), config).transactions)
    assert ('-A KUBE-EXTERNAL-SERVICES -m comment --comment "default/web has no endpoints" -m tcp -p tcp '
            "-d 10.0.0.11 --dport 80 -j REJECT") in empty
