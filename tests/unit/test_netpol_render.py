"""agent/netpol/render.py: the filter-table text one sync applies."""
from __future__ import annotations

from agent.netpol import render
from agent.netpol.policy import Pod, PodRules, PortMatch, Rule

SERVER = Pod("a", "server", "10.0.0.10", "n1")
CLIENT = Pod("a", "client", "10.0.0.20", "n1")


def lines(text: str) -> list[str]:
    return text.splitlines()


def test_layout_of_isolated_pods_and_anti_spoofing():
    rules = [PodRules(SERVER, ingress=(Rule(("10.0.1.0/24", "10.0.0.20/32"), (PortMatch("TCP", 80),
                                                                               PortMatch("UDP", 1000, 1010)),
                                            "a/allow ingress[0]"),), egress=None),
             PodRules(CLIENT, ingress=None, egress=())]
    ruleset = render.render(rules, [render.Interface("veth1234", "10.0.0.10", "a/server")])
    text = lines(ruleset.text)
    assert text[0] == "*filter" and text[-1] == "COMMIT" and ruleset.text.endswith("COMMIT\n")
    ingress_chain = render.pod_chain(render.INGRESS_PREFIX, "a/server", "10.0.0.10")
    egress_chain = render.pod_chain(render.EGRESS_PREFIX, "a/client", "10.0.0.20")
    assert len(ingress_chain) <= 28 and ingress_chain.startswith("SHIPMATE-NPI-")
    assert ruleset.chains == {render.FORWARD_CHAIN, render.INPUT_CHAIN, ingress_chain, egress_chain}
    for chain in ruleset.chains:
        assert f":{chain} - [0:0]" in text
    forward = [line for line in text if line.startswith(f"-A {render.FORWARD_CHAIN} ")]
    assert forward[0] == ('-A SHIPMATE-NP-FORWARD -m physdev --physdev-in veth1234 ! -s 10.0.0.10/32 '
                          '-m comment --comment "anti-spoofing a/server" -j DROP')
    assert forward[1] == "-A SHIPMATE-NP-FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j RETURN"
    assert f'-A SHIPMATE-NP-FORWARD -m comment --comment "egress of a/client" -s 10.0.0.20/32 -j {egress_chain}' \
        in forward
    assert f'-A SHIPMATE-NP-FORWARD -m comment --comment "ingress of a/server" -d 10.0.0.10/32 -j {ingress_chain}' \
        in forward
    inputs = [line for line in text if line.startswith(f"-A {render.INPUT_CHAIN} ")]
    assert any(egress_chain in line for line in inputs) and not any(ingress_chain in line for line in inputs)
    pod_lines = [line for line in text if line.startswith(f"-A {ingress_chain} ")]
    assert pod_lines == [
        f'-A {ingress_chain} -m comment --comment "a/allow ingress[0]" -s 10.0.1.0/24 -p tcp -m tcp --dport 80 -j RETURN',
        f'-A {ingress_chain} -m comment --comment "a/allow ingress[0]" -s 10.0.1.0/24 -p udp -m udp --dport 1000:1010 '
        "-j RETURN",
        f'-A {ingress_chain} -m comment --comment "a/allow ingress[0]" -s 10.0.0.20/32 -p tcp -m tcp --dport 80 -j RETURN',
        f'-A {ingress_chain} -m comment --comment "a/allow ingress[0]" -s 10.0.0.20/32 -p udp -m udp --dport 1000:1010 '
        "-j RETURN",
        f'-A {ingress_chain} -m comment --comment "default deny ingress of a/server" -j DROP']
    assert [line for line in text if line.startswith(f"-A {egress_chain} ")] == [
        f'-A {egress_chain} -m comment --comment "default deny egress of a/client" -j DROP']


def test_any_peer_any_port_and_protocol_only():
    rules = [PodRules(SERVER, ingress=(Rule(None, None, "a/p ingress[0]"),
                                       Rule(None, (PortMatch("SCTP"),), "a/p ingress[1]")), egress=None)]
    chain = render.pod_chain(render.INGRESS_PREFIX, "a/server", "10.0.0.10")
    assert [line for line in lines(render.render(rules).text) if line.startswith(f"-A {chain} ")][:2] == [
        f'-A {chain} -m comment --comment "a/p ingress[0]" -j RETURN',
        f'-A {chain} -m comment --comment "a/p ingress[1]" -p sctp -j RETURN']


def test_stale_chains_are_deleted_in_the_same_transaction_and_jumps_fixed():
    stale = {"SHIPMATE-NPI-OLDOLDOLDOLDOL", "KUBE-SVC-NOTOURS", render.FORWARD_CHAIN}
    fixes = ["-I FORWARD 1 -m comment --comment \"shipmate network policies\" -j SHIPMATE-NP-FORWARD"]
    text = lines(render.render([], [], stale, fixes).text)
    assert ":SHIPMATE-NPI-OLDOLDOLDOLDOL - [0:0]" in text and "-X SHIPMATE-NPI-OLDOLDOLDOLDOL" in text
    assert "-X KUBE-SVC-NOTOURS" not in text and f"-X {render.FORWARD_CHAIN}" not in text
    assert text.index("-X SHIPMATE-NPI-OLDOLDOLDOLDOL") < text.index(fixes[0]) < text.index("COMMIT")
    assert text.count("COMMIT") == 1


def test_jump_fixes():
    ours = '-A FORWARD -m comment --comment "shipmate network policies" -j SHIPMATE-NP-FORWARD'
    ours_input = '-A INPUT -m comment --comment "shipmate network policies" -j SHIPMATE-NP-INPUT'
    good = {"FORWARD": f"-P FORWARD ACCEPT\n{ours}\n-A FORWARD -j KUBE-FORWARD\n",
            "INPUT": f"-P INPUT ACCEPT\n{ours_input}\n"}
    assert render.jump_fixes(good) == []
    missing = render.jump_fixes({"FORWARD": "-P FORWARD ACCEPT\n-A FORWARD -j KUBE-FORWARD\n", "INPUT": good["INPUT"]})
    assert missing == ['-I FORWARD 1 -m comment --comment "shipmate network policies" -j SHIPMATE-NP-FORWARD']
    second = render.jump_fixes({"FORWARD": f"-P FORWARD ACCEPT\n-A FORWARD -j KUBE-FORWARD\n{ours}\n",
                                "INPUT": good["INPUT"]})
    assert second == ['-D FORWARD -m comment --comment "shipmate network policies" -j SHIPMATE-NP-FORWARD',
                      '-I FORWARD 1 -m comment --comment "shipmate network policies" -j SHIPMATE-NP-FORWARD']
    twice = render.jump_fixes({"FORWARD": f"{ours}\n{ours}\n", "INPUT": good["INPUT"]})
    assert len(twice) == 3
