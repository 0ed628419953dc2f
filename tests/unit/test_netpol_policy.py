"""NetworkPolicy semantics (agent/netpol/policy.py) as a table of upstream cases: which traffic reaches
or leaves a local pod once the policies are evaluated."""
from __future__ import annotations

import ipaddress

import pytest

from agent.netpol.policy import Cluster, Pod, PodRules, evaluate, ip_block_cidrs, pod_record, policy_types

NODE = "n1"


def pod(ns: str, name: str, ip: str, node: str = NODE, ports: dict | None = None, **labels: str) -> Pod:
    return Pod(ns, name, ip, node, labels, ports or {})


SERVER = pod("a", "server", "10.0.0.10", app="server", ports={("http", "TCP"): 8080, ("dns", "UDP"): 53})
SERVER2 = pod("a", "server2", "10.0.0.11", app="server", ports={("http", "TCP"): 9090})
CLIENT_A = pod("a", "client", "10.0.0.20", app="client")
OTHER_A = pod("a", "other", "10.0.0.21", app="other")
CLIENT_X = pod("x", "client", "10.0.1.20", node="n2", app="client")
OTHER_X = pod("x", "other", "10.0.1.21", node="n2", app="other")
CLIENT_Y = pod("y", "client", "10.0.2.20", node="n2", app="client")
B_POD = pod("b", "target", "10.0.3.30", app="server")
PODS = [SERVER, SERVER2, CLIENT_A, OTHER_A, CLIENT_X, OTHER_X, CLIENT_Y, B_POD]
NAMESPACES = {"a": {"team": "a"}, "x": {"team": "x", "env": "prod"}, "y": {"team": "y", "env": "prod"},
              "b": {"team": "b"}}


def netpol(ns: str, name: str, **spec) -> dict:
    return {"metadata": {"namespace": ns, "name": name}, "spec": {"podSelector": {}, **spec}}


def rules_for(policies: list[dict], target: Pod = SERVER) -> PodRules | None:
    cluster = Cluster(PODS, NAMESPACES, policies)
    found = [r for r in evaluate(cluster, [p for p in PODS if p.node == NODE]) if r.pod == target]
    return found[0] if found else None


def allowed(rules, peer_ip: str, protocol: str = "TCP", port: int = 80) -> bool:
    """Whether a packet to/from `peer_ip` on (protocol, port) passes (None: not isolated)."""
    if rules is None:
        return True
    for rule in rules:
        if rule.peers is not None and not any(ipaddress.ip_address(peer_ip) in ipaddress.ip_network(c)
                                              for c in rule.peers):
            continue
        if rule.ports is None:
            return True
        for match in rule.ports:
            if match.protocol != protocol:
                continue
            if not match.port or match.port == port or (match.end and match.port <= port <= match.end):
                return True
    return False


def ingress(policies, source: Pod | str, protocol="TCP", port=80, target=SERVER) -> bool:
    entry = rules_for(policies, target)
    ip = source if isinstance(source, str) else source.ip
    return allowed(None if entry is None else entry.ingress, ip, protocol, port)


def egress(policies, destination: Pod | str, protocol="TCP", port=80, source=SERVER) -> bool:
    entry = rules_for(policies, source)
    ip = destination if isinstance(destination, str) else destination.ip
    return allowed(None if entry is None else entry.egress, ip, protocol, port)


def test_no_policy_isolates_nothing():
    assert rules_for([]) is None
    assert ingress([], CLIENT_X) and egress([], CLIENT_X)


def test_default_deny_ingress_with_empty_pod_selector_selects_every_pod_of_the_namespace():
    deny = [netpol("a", "deny", policyTypes=["Ingress"])]
    for target in (SERVER, SERVER2, CLIENT_A, OTHER_A):
        entry = rules_for(deny, target)
        assert entry is not None and entry.ingress == () and entry.egress is None
    assert not ingress(deny, CLIENT_A) and not ingress(deny, CLIENT_X)
    assert egress(deny, CLIENT_X)              # egress stays open


def test_policy_never_selects_pods_of_another_namespace():
    open_all = [netpol("a", "allow-all", ingress=[{}])]
    # B's pod is untouched by A's policies, and A's allow-everything policy opens nothing in b.
    assert rules_for(open_all, B_POD) is None
    deny_b = [netpol("b", "deny", policyTypes=["Ingress"]), *open_all]
    assert not ingress(deny_b, CLIENT_A, target=B_POD)
    assert ingress(deny_b, CLIENT_A)


def test_allow_from_app_client_in_namespace_x_is_exactly_that_path():
    policies = [netpol("a", "deny", policyTypes=["Ingress"]),
                netpol("a", "allow", podSelector={"matchLabels": {"app": "server"}}, ingress=[{"from": [
                    {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "x"}},
                     "podSelector": {"matchLabels": {"app": "client"}}}]}])]
    assert ingress(policies, CLIENT_X)
    assert not ingress(policies, OTHER_X)       # right namespace, wrong pod
    assert not ingress(policies, CLIENT_Y)      # right pod labels, wrong namespace
    assert not ingress(policies, CLIENT_A)      # the policy's own namespace is not implied
    assert not ingress(policies, CLIENT_X, target=CLIENT_A)   # other pods stay denied


def test_namespace_and_pod_selector_in_one_peer_is_and_two_peers_is_or():
    one_peer = [netpol("a", "p", ingress=[{"from": [{"namespaceSelector": {"matchLabels": {"env": "prod"}},
                                                     "podSelector": {"matchLabels": {"app": "client"}}}]}])]
    two_peers = [netpol("a", "p", ingress=[{"from": [{"namespaceSelector": {"matchLabels": {"env": "prod"}}},
                                                     {"podSelector": {"matchLabels": {"app": "client"}}}]}])]
    assert [ingress(one_peer, p) for p in (CLIENT_X, OTHER_X, CLIENT_Y, CLIENT_A)] == [True, False, True, False]
    assert [ingress(two_peers, p) for p in (CLIENT_X, OTHER_X, CLIENT_Y, CLIENT_A, OTHER_A)] == \
        [True, True, True, True, False]


def test_pod_selector_alone_means_the_policys_namespace_and_empty_namespace_selector_all():
    same_ns = [netpol("a", "p", ingress=[{"from": [{"podSelector": {}}]}])]
    assert ingress(same_ns, OTHER_A) and not ingress(same_ns, CLIENT_X)
    all_ns = [netpol("a", "p", ingress=[{"from": [{"namespaceSelector": {}}]}])]
    assert ingress(all_ns, OTHER_X) and ingress(all_ns, B_POD) and not ingress(all_ns, "192.168.1.1")


def test_match_expressions():
    policies = [netpol("a", "p", ingress=[{"from": [{"namespaceSelector": {"matchExpressions": [
        {"key": "team", "operator": "NotIn", "values": ["x"]}]}}]}])]
    assert not ingress(policies, CLIENT_X) and ingress(policies, CLIENT_Y)


def test_peers_selecting_nothing_allow_nothing():
    policies = [netpol("a", "p", ingress=[{"from": [{"podSelector": {"matchLabels": {"app": "nobody"}}}]}])]
    entry = rules_for(policies)
    assert entry.ingress == ()
    assert not ingress(policies, CLIENT_A)


def test_empty_rule_allows_everything_and_policies_add_up():
    assert ingress([netpol("a", "p", ingress=[{}])], "8.8.8.8", "UDP", 5000)
    union = [netpol("a", "p1", ingress=[{"ports": [{"protocol": "TCP", "port": 80}]}]),
             netpol("a", "p2", podSelector={"matchLabels": {"app": "server"}},
                    ingress=[{"from": [{"podSelector": {"matchLabels": {"app": "other"}}}]}])]
    assert ingress(union, CLIENT_X, port=80)            # p1: any source on 80
    assert not ingress(union, CLIENT_X, port=81)
    assert ingress(union, OTHER_A, port=81)             # p2: other, any port
    assert not ingress(union, CLIENT_A, port=81)


def test_ip_block_with_except():
    policies = [netpol("a", "p", ingress=[{"from": [{"ipBlock": {"cidr": "172.16.0.0/16",
                                                                 "except": ["172.16.1.0/24", "172.16.9.128/25"]}}]}])]
    assert ingress(policies, "172.16.0.5") and ingress(policies, "172.16.255.1") and ingress(policies, "172.16.9.1")
    assert not ingress(policies, "172.16.1.7") and not ingress(policies, "172.16.9.200")
    assert not ingress(policies, "172.17.0.1")


def test_ip_block_cidrs_are_disjoint_and_exact():
    cidrs = ip_block_cidrs({"cidr": "10.0.0.0/8", "except": ["10.1.0.0/16", "10.1.2.0/24", "10.200.0.0/13"]})
    networks = [ipaddress.ip_network(c) for c in cidrs]
    assert sum(n.num_addresses for n in networks) == 2 ** 24 - 2 ** 16 - 2 ** 19
    assert ip_block_cidrs({"cidr": "10.0.0.1/32"}) == ("10.0.0.1/32",)
    assert ip_block_cidrs({"cidr": "10.0.0.0/24", "except": ["10.0.0.0/24"]}) == ()
    assert ip_block_cidrs({"cidr": "fd00::/64"}) == ()
    assert ip_block_cidrs({"cidr": "10.0.0.5/24"}) == ("10.0.0.0/24",)   # host bits as the API accepts them


def test_ports_ranges_protocols_and_sctp():
    policies = [netpol("a", "p", ingress=[{"ports": [{"protocol": "TCP", "port": 8000, "endPort": 8010},
                                                     {"protocol": "UDP"}, {"protocol": "SCTP", "port": 9}]}])]
    assert ingress(policies, CLIENT_A, "TCP", 8000) and ingress(policies, CLIENT_A, "TCP", 8010)
    assert not ingress(policies, CLIENT_A, "TCP", 8011) and not ingress(policies, CLIENT_A, "TCP", 7999)
    assert ingress(policies, CLIENT_A, "UDP", 1) and ingress(policies, CLIENT_A, "UDP", 65535)
    assert ingress(policies, CLIENT_A, "SCTP", 9) and not ingress(policies, CLIENT_A, "SCTP", 10)
    assert not ingress(policies, CLIENT_A, "SCTP", 8000)
    # A port without protocol is TCP (the API defaults it too).
    assert ingress([netpol("a", "p", ingress=[{"ports": [{"port": 53}]}])], CLIENT_A, "TCP", 53)
    assert not ingress([netpol("a", "p", ingress=[{"ports": [{"port": 53}]}])], CLIENT_A, "UDP", 53)


def test_named_ports_resolve_on_each_selected_pod_for_ingress():
    policies = [netpol("a", "p", podSelector={"matchLabels": {"app": "server"}},
                       ingress=[{"ports": [{"protocol": "TCP", "port": "http"}]}])]
    assert ingress(policies, CLIENT_A, port=8080) and not ingress(policies, CLIENT_A, port=9090)
    assert ingress(policies, CLIENT_A, port=9090, target=SERVER2) and not ingress(
        policies, CLIENT_A, port=8080, target=SERVER2)
    # The name with another protocol, or a name the pod lacks, matches nothing.
    udp = [netpol("a", "p", ingress=[{"ports": [{"protocol": "UDP", "port": "http"}]}])]
    assert rules_for(udp).ingress == ()


def test_named_ports_resolve_on_the_destinations_for_egress():
    policies = [netpol("a", "p", podSelector={"matchLabels": {"app": "client"}}, policyTypes=["Egress"],
                       egress=[{"ports": [{"protocol": "TCP", "port": "http"}]}])]
    assert egress(policies, SERVER, port=8080, source=CLIENT_A)
    assert not egress(policies, SERVER, port=9090, source=CLIENT_A)
    assert egress(policies, SERVER2, port=9090, source=CLIENT_A)
    assert not egress(policies, "8.8.8.8", port=8080, source=CLIENT_A)    # no named ports off-cluster
    block = [netpol("a", "p", podSelector={"matchLabels": {"app": "client"}}, policyTypes=["Egress"],
                    egress=[{"to": [{"ipBlock": {"cidr": "0.0.0.0/0"}}],
                             "ports": [{"protocol": "TCP", "port": "http"}, {"protocol": "UDP", "port": 53}]}])]
    assert egress(block, "8.8.8.8", "UDP", 53, source=CLIENT_A)
    assert not egress(block, SERVER, "TCP", 8080, source=CLIENT_A)


def test_policy_types_default():
    assert policy_types({}) == {"Ingress"}
    assert policy_types({"egress": [{}]}) == {"Ingress", "Egress"}
    assert policy_types({"egress": []}) == {"Ingress"}
    assert policy_types({"policyTypes": ["Egress"], "ingress": [{}]}) == {"Egress"}
    # Egress rules without policyTypes isolate egress (and ingress, with no ingress rule: denied).
    entry = rules_for([netpol("a", "p", egress=[{"ports": [{"protocol": "UDP", "port": 53}]}])])
    assert entry.ingress == () and entry.egress is not None
    # policyTypes [Egress] with ingress rules: the ingress rules are ignored, ingress stays open.
    entry = rules_for([netpol("a", "p", policyTypes=["Egress"], ingress=[{}])])
    assert entry.ingress is None and entry.egress == ()


def test_egress_deny_and_dns_only_where_allowed():
    deny = [netpol("a", "deny", policyTypes=["Egress"])]
    assert not egress(deny, CLIENT_X) and not egress(deny, "169.254.20.10", "UDP", 53)
    dns = deny + [netpol("a", "dns", policyTypes=["Egress"], egress=[{"ports": [{"protocol": "UDP", "port": 53}]}])]
    assert egress(dns, "169.254.20.10", "UDP", 53) and not egress(dns, CLIENT_X, "TCP", 80)


def test_host_network_and_terminated_pods_are_neither_targets_nor_peers():
    host = Pod("a", "host", "192.168.0.5", NODE, {"app": "client"}, {}, host_network=True)
    cluster = Cluster([*PODS, host], NAMESPACES, [netpol("a", "deny")])
    assert host not in [r.pod for r in evaluate(cluster, [host])]
    policies = [netpol("a", "p", ingress=[{"from": [{"podSelector": {"matchLabels": {"app": "client"}}}]}])]
    entry = evaluate(Cluster([*PODS, host], NAMESPACES, policies), [SERVER])[0]
    assert "192.168.0.5/32" not in {p for r in entry.ingress for p in r.peers}
    assert pod_record({"metadata": {"name": "x"}, "status": {"podIP": "10.0.0.1", "phase": "Succeeded"}}) is None
    assert pod_record({"metadata": {"name": "x"}, "status": {"phase": "Pending"}}) is None


def test_pod_record_keeps_named_ports_and_labels():
    record = pod_record({"metadata": {"namespace": "a", "name": "s", "labels": {"app": "s"}},
                         "spec": {"nodeName": NODE, "containers": [{"ports": [
                             {"name": "http", "containerPort": 80}, {"name": "dns", "containerPort": 53,
                                                                     "protocol": "UDP"}, {"containerPort": 9}]}]},
                         "status": {"podIP": "10.0.0.3", "phase": "Running"}})
    assert record == Pod("a", "s", "10.0.0.3", NODE, {"app": "s"}, {("http", "TCP"): 80, ("dns", "UDP"): 53})


def test_missing_namespace_object_still_has_its_name_label():
    cluster = Cluster(PODS, {}, [netpol("a", "p", ingress=[{"from": [{"namespaceSelector": {"matchLabels": {
        "kubernetes.io/metadata.name": "x"}}}]}])])
    entry = [r for r in evaluate(cluster, [SERVER])][0]
    assert {p for r in entry.ingress for p in r.peers} == {"10.0.1.20/32", "10.0.1.21/32"}


@pytest.mark.parametrize("selector", [{"matchExpressions": [{"key": "app", "operator": "Bogus"}]},
                                      {"matchExpressions": [{"key": "app", "operator": "In", "values": []}]}])
def test_unparsable_selectors_select_nothing(selector):
    assert rules_for([netpol("a", "p", podSelector=selector)]) is None
    policies = [netpol("a", "p", ingress=[{"from": [{"podSelector": selector}]}])]
    assert not ingress(policies, CLIENT_A)
