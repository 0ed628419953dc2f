"""Rendering: kube-proxy's rule layout, and partial syncs that land where a full sync would."""
import shlex

import pytest

from agent.proxy import render
from agent.proxy.model import Endpoint, ServicePort, ServicePortName, service_ports
from agent.proxy.render import ProxyState, RenderConfig, render_full, render_partial

CFG = RenderConfig(cluster_cidr="10.244.0.0/16", node_name="node-a")


def port(name="svc1", ip="172.30.0.41", **spec) -> ServicePort:
    spec.setdefault("ports", [{"name": "p80", "port": 80}])
    [sp] = service_ports({"metadata": {"namespace": "ns1", "name": name}, "spec": {"clusterIP": ip, **spec}})
    return sp


def eps(*ips, node="node-b", port_number=80):
    return tuple(Endpoint(ip, port_number, node_name=node) for ip in ips)


def state(*pairs) -> ProxyState:
    return ProxyState({sp.name: sp for sp, _ in pairs}, {sp.name: e for sp, e in pairs if e})


def text(ruleset) -> str:
    return "".join(ruleset.transactions)


def lines(ruleset) -> list[str]:
    return text(ruleset).splitlines()


def test_cluster_ip_layout_matches_upstream():
    sp = port()
    out = lines(render_full(state((sp, eps("10.180.0.1", "10.180.0.2"))), CFG))
    svc, sep1 = sp.cluster_chain, "KUBE-SEP-SXIVWICOYRO3J4NJ"
    assert svc == "KUBE-SVC-XPGD46QRK7WJZT7O"
    expected = [
        f'-A KUBE-SERVICES -m comment --comment "ns1/svc1:p80 cluster IP" -m tcp -p tcp -d 172.30.0.41 --dport 80 -j {svc}',
        f'-A {svc} -m comment --comment "ns1/svc1:p80 cluster IP" -m tcp -p tcp -d 172.30.0.41 --dport 80 '
        "! -s 10.244.0.0/16 -j KUBE-MARK-MASQ",
        f'-A {svc} -m comment --comment "ns1/svc1:p80 -> 10.180.0.1:80" -m statistic --mode random '
        f"--probability 0.5000000000 -j {sep1}",
        f"-A {sep1} -m comment --comment ns1/svc1:p80 -s 10.180.0.1 -j KUBE-MARK-MASQ",
        f"-A {sep1} -m comment --comment ns1/svc1:p80 -m tcp -p tcp -j DNAT --to-destination 10.180.0.1:80",
        "-A KUBE-MARK-MASQ -j MARK --or-mark 0x4000",
        "-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN",
        "-A KUBE-POSTROUTING -j MARK --xor-mark 0x4000",
        '-A KUBE-FORWARD -m comment --comment "kubernetes forwarding rules" -m mark --mark 0x4000/0x4000 -j ACCEPT',
    ]
    for line in expected:
        assert line in out
    last_rule = [line for line in out if line.startswith("-A KUBE-SERVICES")][-1]
    assert last_rule.endswith("-m addrtype --dst-type LOCAL -j KUBE-NODEPORTS")   # localhost NodePorts on
    assert ('-A KUBE-FIREWALL -m comment --comment "block incoming localnet connections" -d 127.0.0.0/8 '
            "! -s 127.0.0.0/8 -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP") in out
    without = render_full(state((port(), eps("10.0.0.1"))),
                          RenderConfig(cluster_cidr="10.0.0.0/8", localhost_node_ports=False)).transactions[0]
    assert "--dst-type LOCAL ! -d 127.0.0.0/8 -j KUBE-NODEPORTS" in without and "-A KUBE-FIREWALL" not in without
    # the last endpoint is an unconditional match
    assert any(line.startswith(f"-A {svc} ") and "10.180.0.2:80\" -j KUBE-SEP-" in line for line in out)


def test_probabilities_are_one_over_remaining():
    sp = port()
    out = text(render_full(state((sp, eps("10.0.0.1", "10.0.0.2", "10.0.0.3"))), CFG))
    assert out.count("--probability 0.3333333333") == 1
    assert out.count("--probability 0.5000000000") == 1


def test_service_without_endpoints_rejects_in_filter_and_has_no_nat_chains():
    sp = port(type="NodePort", ports=[{"name": "p80", "port": 80, "nodePort": 30080}])
    out = lines(render_full(state((sp, ())), CFG))
    assert ('-A KUBE-SERVICES -m comment --comment "ns1/svc1:p80 has no endpoints" -m tcp -p tcp '
            "-d 172.30.0.41 --dport 80 -j REJECT") in out
    assert ('-A KUBE-EXTERNAL-SERVICES -m comment --comment "ns1/svc1:p80 has no endpoints" -m addrtype '
            "--dst-type LOCAL -m tcp -p tcp --dport 30080 -j REJECT") in out
    assert not any(sp.cluster_chain in line for line in out)


def test_node_port_goes_through_ext_chain_with_masquerade():
    sp = port(type="NodePort", ports=[{"name": "p80", "port": 80, "nodePort": 30080}])
    out = lines(render_full(state((sp, eps("10.180.0.1"))), CFG))
    ext = sp.external_chain
    assert f"-A KUBE-NODEPORTS -m comment --comment ns1/svc1:p80 -m tcp -p tcp --dport 30080 -j {ext}" in out
    assert (f'-A {ext} -m comment --comment "masquerade traffic for ns1/svc1:p80 external destinations" '
            "-j KUBE-MARK-MASQ") in out
    assert f"-A {ext} -j {sp.cluster_chain}" in out


def test_external_local_without_local_endpoints_drops_external_but_serves_cluster_ip():
    sp = port(type="NodePort", externalTrafficPolicy="Local", ports=[{"name": "p80", "port": 80, "nodePort": 30080}])
    out = lines(render_full(state((sp, eps("10.180.0.1", node="node-b"))), CFG))
    assert any("has no local endpoints" in line and "--dport 30080 -j DROP" in line for line in out)
    assert any(line.startswith("-A KUBE-SERVICES") and f"-j {sp.cluster_chain}" in line for line in out)
    assert f"-A {sp.external_chain} -j {sp.local_chain}" not in out
    with_local = lines(render_full(state((sp, eps("10.180.0.1", node="node-a"))), CFG))
    assert f"-A {sp.external_chain} -j {sp.local_chain}" in with_local


def test_session_affinity_uses_recent():
    sp = port(sessionAffinity="ClientIP", sessionAffinityConfig={"clientIP": {"timeoutSeconds": 300}})
    out = text(render_full(state((sp, eps("10.180.0.1"))), CFG))
    sep = "KUBE-SEP-SXIVWICOYRO3J4NJ"
    assert f"-m recent --name {sep} --rcheck --seconds 300 --reap -j {sep}" in out
    assert f"-m recent --name {sep} --set -m tcp -p tcp -j DNAT --to-destination 10.180.0.1:80" in out


def test_udp_service():
    sp = port(ports=[{"name": "dns", "port": 53, "protocol": "UDP"}])
    out = text(render_full(state((sp, eps("10.180.0.1", port_number=5353))), CFG))
    assert "-m udp -p udp -d 172.30.0.41 --dport 53" in out
    assert "-m udp -p udp -j DNAT --to-destination 10.180.0.1:5353" in out


def test_unready_endpoints_are_skipped_and_terminating_serving_used_as_fallback():
    sp = port()
    ready = Endpoint("10.0.0.1", 80)
    unready = Endpoint("10.0.0.2", 80, ready=False, serving=False)
    terminating = Endpoint("10.0.0.3", 80, ready=False, serving=True, terminating=True)
    out = text(render_full(state((sp, (ready, unready, terminating))), CFG))
    assert "10.0.0.1:80" in out and "10.0.0.2:80" not in out and "10.0.0.3:80" not in out
    out = text(render_full(state((sp, (unready, terminating))), CFG))
    assert "10.0.0.3:80" in out and "has no endpoints" not in out


def test_large_cluster_mode_drops_endpoint_comments():
    many = [(port(f"s{i}", f"10.96.{i // 200}.{i % 200 + 1}"), eps("10.1.0.1", "10.1.0.2")) for i in range(501)]
    out = text(render_full(state(*many), CFG))
    assert "-> 10.1.0.1:80" not in out
    assert '--comment "ns1/s0:p80 cluster IP"' in out


def test_stale_chains_are_flushed_and_deleted_but_never_foreign_ones():
    ruleset = render_full(state(), CFG, stale_chains={"KUBE-SVC-AAAAAAAAAAAAAAAA", "DOCKER", "KUBE-SERVICES"})
    out = lines(ruleset)
    assert ":KUBE-SVC-AAAAAAAAAAAAAAAA - [0:0]" in out and "-X KUBE-SVC-AAAAAAAAAAAAAAAA" in out
    assert "-X DOCKER" not in out and "-X KUBE-SERVICES" not in out
    assert ruleset.deleted == {"KUBE-SVC-AAAAAAAAAAAAAAAA"}


def test_chunked_full_render_has_the_same_rules_and_switches_last():
    pairs = [(port(f"s{i}", f"10.96.0.{i + 1}"), eps(f"10.1.0.{i + 1}")) for i in range(7)]
    single = render_full(state(*pairs), CFG)
    chunked = render_full(state(*pairs), CFG, chunk_services=3)
    assert len(chunked.transactions) == 1 + 3 + 1
    assert "-A KUBE-MARK-MASQ" in chunked.transactions[0]
    assert "-A KUBE-SERVICES" in chunked.transactions[-1]
    assert not any("-A KUBE-SERVICES" in t for t in chunked.transactions[:-1])
    rules = lambda rs: sorted(line for t in rs.transactions for line in t.splitlines() if line.startswith(("-A", ":")))
    assert rules(single) == rules(chunked)
    assert single.written == chunked.written


class FakeKernel:
    """Just enough of iptables-restore --noflush to check where transactions leave the tables."""

    def __init__(self):
        self.tables: dict[str, dict[str, list[str]]] = {}

    def restore(self, text: str) -> None:
        table = None
        for line in text.splitlines():
            if not line or line == "COMMIT":
                continue
            if line.startswith("*"):
                table = self.tables.setdefault(line[1:], {})
            elif line.startswith(":"):
                table[line[1:].split()[0]] = []  # declaring creates or flushes
            else:
                words = shlex.split(line)
                op, chain = words[0], words[1]
                assert chain in table, f"{line}: no chain {chain}"
                if op == "-A":
                    table[chain].append(" ".join(words[2:]))
                elif op == "-I":
                    table[chain].insert(int(words[2]) - 1, " ".join(words[3:]))
                elif op == "-D":
                    table[chain].remove(" ".join(words[2:]))
                elif op == "-X":
                    assert not any(f"-j {chain}" in r for rules in table.values() for r in rules), line
                    del table[chain]


def apply_all(kernel, ruleset):
    for transaction in ruleset.transactions:
        kernel.restore(transaction)


def two_states():
    a = port("a", "10.96.0.1")
    b = port("b", "10.96.0.2", type="NodePort", ports=[{"name": "p80", "port": 80, "nodePort": 30002}])
    c = port("c", "10.96.0.3", sessionAffinity="ClientIP")
    d = port("d", "10.96.0.4")
    before = state((a, eps("10.1.0.1", "10.1.0.2")), (b, eps("10.1.0.3")), (c, ()), (d, eps("10.1.0.9")))
    e = port("e", "10.96.0.5", ports=[{"name": "dns", "port": 53, "protocol": "UDP"}])
    after = state((a, eps("10.1.0.1", "10.1.0.7")),  # endpoint replaced
                  (b, ()),                            # lost its endpoints
                  (c, eps("10.1.0.4")),               # got endpoints
                  (e, eps("10.1.0.5")))               # new; d deleted
    changed = {a.name, b.name, c.name, d.name, e.name}
    return before, after, changed


@pytest.mark.parametrize("chunk", [None, 2])
def test_partial_sync_lands_exactly_where_a_full_sync_would(chunk):
    before, after, changed = two_states()
    incremental, fresh = FakeKernel(), FakeKernel()
    apply_all(incremental, render_full(before, CFG, chunk_services=chunk))
    apply_all(incremental, render_partial(before, after, changed, CFG))
    apply_all(fresh, render_full(after, CFG))
    # Rules of different services never overlap, so their order in the shared chains is free;
    # only the KUBE-NODEPORTS jump must stay last.
    assert incremental.tables["nat"]["KUBE-SERVICES"][-1].endswith("-j KUBE-NODEPORTS")
    assert normalized(incremental) == normalized(fresh)


def normalized(kernel):
    shared = ("KUBE-SERVICES", "KUBE-NODEPORTS", "KUBE-EXTERNAL-SERVICES")
    return {table: {chain: sorted(rules) if chain in shared else rules for chain, rules in chains.items()}
            for table, chains in kernel.tables.items()}


def test_partial_sync_touches_only_changed_chains():
    before, after, _ = two_states()
    a = next(sp for sp in after.services if sp.name == "a")
    ruleset = render_partial(before, after, {a}, CFG)
    out = lines(ruleset)
    assert ":KUBE-SERVICES - [0:0]" not in out  # never flushed in a partial sync
    assert not any(line.startswith(("-A KUBE-SERVICES", "-D KUBE-SERVICES")) for line in out)
    assert f":{after.services[a].cluster_chain} - [0:0]" in out
    old_sep = render._endpoint_chain("ns1/a:p80", "tcp", "10.1.0.2:80")
    assert f"-X {old_sep}" in out and ruleset.deleted == {old_sep}
    assert "*filter" not in text(ruleset)


def test_deleted_service_leaves_no_chains_or_rules():
    before, after, changed = two_states()
    d = ServicePortName("ns1", "d", "p80", "TCP")
    ruleset = render_partial(before, after, {d}, CFG)
    out = lines(ruleset)
    assert any(line.startswith("-D KUBE-SERVICES") and "ns1/d:p80 cluster IP" in line for line in out)
    assert f"-X {before.services[d].cluster_chain}" in out


def test_missing_jumps_go_in_the_switching_transaction():
    jumps = [j for j in render.JUMPS if j.chain in ("PREROUTING", "FORWARD")]
    ruleset = render_full(state((port(), eps("10.0.0.1"))), CFG, chunk_services=1, missing_jumps=jumps)
    last = ruleset.transactions[-1]
    assert '-I PREROUTING 1 -m comment --comment "kubernetes service portals" -j KUBE-SERVICES' in last
    assert ("-I FORWARD 1 -m conntrack --ctstate NEW -m comment --comment \"kubernetes service portals\" "
            "-j KUBE-SERVICES") in last
    assert last.index("*nat") < last.index("-I PREROUTING")
    assert not any("-I " in t for t in ruleset.transactions[:-1])


def test_jumps_hook_our_chains_into_the_builtin_chains():
    hooks = {(j.table, j.chain, j.target) for j in render.JUMPS}
    assert ("nat", "PREROUTING", "KUBE-SERVICES") in hooks
    assert ("nat", "OUTPUT", "KUBE-SERVICES") in hooks
    assert ("nat", "POSTROUTING", "KUBE-POSTROUTING") in hooks
    assert ("filter", "FORWARD", "KUBE-FORWARD") in hooks
