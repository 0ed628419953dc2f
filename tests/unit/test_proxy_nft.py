"""The nftables mode's rendering (pure): the table's layout, and partial transactions that land where a
full one would, checked by replaying the text on a small model of the table."""
import struct

import pytest

from agent.proxy import nft
from agent.proxy.model import Endpoint, ServicePort, service_ports
from agent.proxy.render import ProxyState, RenderConfig
from netns import nft_netlink

CFG = RenderConfig(cluster_cidr="10.244.0.0/16", node_name="node-a")
T = nft.FAMILY_TABLE


def port(name="svc1", ip="172.30.0.41", **spec) -> ServicePort:
    spec.setdefault("ports", [{"name": "p80", "port": 80}])
    status = spec.pop("status", None)
    body = {"metadata": {"namespace": "ns1", "name": name}, "spec": {"clusterIP": ip, **spec}}
    if status:
        body["status"] = status
    [sp] = service_ports(body)
    return sp


def eps(*ips, node="node-b", port_number=8080):
    return tuple(Endpoint(ip, port_number, node_name=node) for ip in ips)


def state(*pairs) -> ProxyState:
    return ProxyState({sp.name: sp for sp, _ in pairs}, {sp.name: e for sp, e in pairs if e})


class Table:
    """Replays our `nft -f` text: chains → rules, sets → {key: value}; refuses what nft would refuse
    (a chain or set used before it exists, deleted while in use, an element deleted that is not there)."""

    def __init__(self):
        self.chains: dict[str, list[str]] = {}
        self.sets: dict[str, dict[str, str]] = {}

    def apply(self, text: str) -> "Table":
        for line in text.splitlines():
            verb, kind, rest = line.split(" ", 2)
            assert rest.startswith(T + " ") or rest == T, line
            rest = rest[len(T):].strip()
            name, _, body = rest.partition(" ")
            if kind == "table":
                if verb == "delete":
                    self.chains, self.sets = {}, {}
            elif kind == "chain":
                if verb == "add":
                    self.chains.setdefault(name, [])
                elif verb == "flush":
                    self.chains[name] = []
                else:
                    assert not self.chains.pop(name), f"{name} deleted with rules"
                    assert not any(f" {name}" in r for rules in self.chains.values() for r in rules)
            elif kind in ("set", "map"):
                if verb == "add":
                    self.sets.setdefault(name, {})
                else:
                    assert not any(f"@{name}" in r for rules in self.chains.values() for r in rules), line
                    del self.sets[name]
            elif kind == "rule":
                for ref in (w[1:] for w in body.split() if w.startswith("@")):
                    assert ref in self.sets, line
                for target in (w for w in body.split() if w.startswith(nft.PICK_PREFIX)):
                    assert target in self.chains, line
                self.chains[name].append(body)
            elif kind == "element":
                items = body.strip()[1:-1].strip().split(", ")
                for item in items:
                    key, _, value = item.partition(" : ")
                    if verb == "add":
                        if value.startswith("goto "):
                            assert value[5:] in self.chains, line
                        self.sets[name][key] = value
                    else:
                        assert key in self.sets[name], line
                        del self.sets[name][key]
        return self


def full(st: ProxyState) -> nft.NftRuleset:
    return nft.render_full(st, CFG)


def replay_partial(before: ProxyState, after: ProxyState) -> tuple[Table, nft.NftRuleset]:
    first = full(before)
    changed = set(before.services) | set(after.services)
    part = nft.render_partial(before, after, changed, CFG, first.hairpin, first.picks)
    return Table().apply(first.text).apply(part.text), part


def same_as_full(table: Table, st: ProxyState) -> None:
    """Everything a full render would hold is there; extra pick chains may stay until the next full sync."""
    expected = Table().apply(full(st).text)
    assert table.sets == expected.sets
    assert {k: v for k, v in table.chains.items() if not k.startswith(nft.PICK_PREFIX)} == \
        {k: v for k, v in expected.chains.items() if not k.startswith(nft.PICK_PREFIX)}
    for name, rules in expected.chains.items():
        assert table.chains[name] == rules


def test_layout_cluster_ip_node_port_and_load_balancer():
    sp = port(type="LoadBalancer", externalIPs=["10.201.0.7"], ports=[{"name": "p80", "port": 80, "nodePort": 30080}],
              status={"loadBalancer": {"ingress": [{"ip": "10.200.0.50"}]}})
    table = Table().apply(full(state((sp, eps("10.180.0.1", "10.180.0.2")))).text)
    digest = sp.cluster_chain[len("KUBE-SVC-"):]
    svc, ext = f"svc-{digest}", f"ext-{digest}"
    assert table.sets[nft.SERVICE_IPS] == {"172.30.0.41 . tcp . 80": f"goto {svc}",
                                           "10.201.0.7 . tcp . 80": f"goto {ext}",
                                           "10.200.0.50 . tcp . 80": f"goto {ext}"}
    assert table.sets[nft.SERVICE_NODEPORTS] == {"tcp . 30080": f"goto {ext}"}
    assert table.chains[svc][-1] == "goto pick-cluster-tcp-2"
    assert table.chains["pick-cluster-tcp-2"] == [
        "dnat ip to ip daddr . tcp dport . numgen random mod 2 map @cluster-endpoints-tcp",
        "dnat ip to tcp dport . numgen random mod 2 map @cluster-nodeport-endpoints-tcp"]
    by_ip, by_port = nft.endpoint_maps(False, "tcp")
    assert table.sets[by_ip] == {f"{ip} . 80 . {b}": f"10.180.0.{b + 1} . 8080"
                                 for ip in ("172.30.0.41", "10.201.0.7", "10.200.0.50") for b in (0, 1)}
    assert table.sets[by_port] == {"30080 . 0": "10.180.0.1 . 8080", "30080 . 1": "10.180.0.2 . 8080"}
    assert table.sets[nft.HAIRPIN] == {"10.180.0.1 . 10.180.0.1": "", "10.180.0.2 . 10.180.0.2": ""}
    assert table.chains[ext] == ["meta mark set meta mark | 0x4000", f"goto {svc}"]


def test_no_endpoints_reject_sets():
    sp = port(type="NodePort", externalIPs=["10.201.0.7"], ports=[{"name": "p80", "port": 80, "nodePort": 30080}])
    table = Table().apply(full(state((sp, ()))).text)
    assert table.sets[nft.CLUSTER_NO_ENDPOINTS] == {"172.30.0.41 . tcp . 80": ""}
    assert table.sets[nft.EXTERNAL_REJECT] == {"10.201.0.7 . tcp . 80": ""}
    assert table.sets[nft.NODEPORT_REJECT] == {"tcp . 30080": ""}
    assert not table.sets[nft.SERVICE_IPS] and not any(c.startswith("svc-") for c in table.chains)


def test_same_count_change_moves_elements_only_and_goes_by_netlink():
    sp, other = port(), port("svc2", "172.30.0.42")
    before = state((sp, eps("10.180.0.1", "10.180.0.2")), (other, eps("10.180.0.9")))
    after = state((sp, eps("10.180.0.3", "10.180.0.2")), (other, eps("10.180.0.9")))
    table, part = replay_partial(before, after)
    same_as_full(table, after)
    assert "chain" not in part.text and "172.30.0.42" not in part.text
    assert part.element_changes is not None
    by_ip = nft.endpoint_maps(False, "tcp")[0]
    [delete_ep, delete_hp, add_ep, add_hp] = sorted(part.element_changes, key=lambda c: (c.delete is False, c.set))
    assert (delete_ep.set, delete_ep.delete) == (by_ip, True)
    assert delete_ep.elements == ((bytes([172, 30, 0, 41]) + struct.pack("!H", 80) + b"\0\0"
                                   + struct.pack("=I", 0), None),)
    assert add_ep.elements == ((bytes([172, 30, 0, 41]) + struct.pack("!H", 80) + b"\0\0" + struct.pack("=I", 0),
                                bytes([10, 180, 0, 3]) + struct.pack("!H", 8080) + b"\0\0"),)
    assert (delete_hp.set, add_hp.set) == (nft.HAIRPIN, nft.HAIRPIN)
    assert delete_hp.elements == ((bytes([10, 180, 0, 1]) * 2, None),)


def test_count_change_rewrites_one_chain_and_makes_the_pick_chain_once():
    sp, other = port(), port("svc2", "172.30.0.42")
    before = state((sp, eps("10.180.0.1")), (other, eps("10.180.0.9", "10.180.0.8")))
    after = state((sp, eps("10.180.0.1", "10.180.0.2")), (other, eps("10.180.0.9", "10.180.0.8")))
    table, part = replay_partial(before, after)
    same_as_full(table, after)
    assert part.element_changes is None                       # a chain moves: through nft
    assert "add chain ip shipmate-proxy pick-cluster-tcp-2" not in part.text   # svc2 made it already
    assert f"flush chain {T} svc-" in part.text and part.chains == 1
    grown = state((sp, eps("10.180.0.1", "10.180.0.2", "10.180.0.3")), (other, eps("10.180.0.9", "10.180.0.8")))
    part2 = nft.render_partial(after, grown, {sp.name}, CFG, part.hairpin.commit(), part.picks)
    assert f"add chain {T} pick-cluster-tcp-3" in part2.text and "pick-cluster-tcp-3" in part2.picks
    same_as_full(table.apply(part2.text), grown)


@pytest.mark.parametrize("change", ["add", "remove", "to-empty", "from-empty", "affinity", "affinity-timeout",
                                    "local-policy", "protocol-udp"])
def test_partial_lands_where_full_does(change):
    base = port(type="NodePort", ports=[{"name": "p80", "port": 80, "nodePort": 30080}])
    other = port("svc2", "172.30.0.42")
    shared = eps("10.180.0.1", "10.180.0.2")
    before = state((base, shared), (other, eps("10.180.0.1")))    # 10.180.0.1: hairpin counted twice
    if change == "add":
        after = state((base, shared), (other, eps("10.180.0.1")), (port("svc3", "172.30.0.43"), eps("10.180.0.5")))
    elif change == "remove":
        after = state((other, eps("10.180.0.1")))
    elif change == "to-empty":
        after = state((base, ()), (other, eps("10.180.0.1")))
    elif change == "from-empty":
        before, after = state((base, ()), (other, ())), before
    elif change == "affinity":
        sticky = port(type="NodePort", ports=[{"name": "p80", "port": 80, "nodePort": 30080}],
                      sessionAffinity="ClientIP")
        after = state((sticky, shared), (other, eps("10.180.0.1")))
    elif change == "affinity-timeout":
        def sticky(seconds):
            return port(type="NodePort", ports=[{"name": "p80", "port": 80, "nodePort": 30080}],
                        sessionAffinity="ClientIP", sessionAffinityConfig={"clientIP": {"timeoutSeconds": seconds}})
        before = state((sticky(60), shared), (other, eps("10.180.0.1")))
        after = state((sticky(120), shared), (other, eps("10.180.0.1")))
    elif change == "local-policy":
        local = port(type="NodePort", ports=[{"name": "p80", "port": 80, "nodePort": 30080}],
                     externalTrafficPolicy="Local")
        after = state((local, eps("10.180.0.1", node="node-a") + eps("10.180.0.2")), (other, eps("10.180.0.1")))
    else:
        udp = port("svc2", "172.30.0.42", ports=[{"name": "p80", "port": 80, "protocol": "UDP"}])
        after = state((base, shared), (udp, eps("10.180.0.7")))
    table, _ = replay_partial(before, after)
    same_as_full(table, after)


def test_affinity_sets_and_rules():
    sp = port(sessionAffinity="ClientIP", sessionAffinityConfig={"clientIP": {"timeoutSeconds": 30}})
    text = full(state((sp, eps("10.180.0.1", "10.180.0.2")))).text
    aff = nft.affinity_set(sp, eps("10.180.0.1")[0])
    assert aff.endswith("-30")
    assert f"add set {T} {aff} {{ type ipv4_addr; flags dynamic,timeout; timeout 30s; }}" in text
    assert f"ip saddr @{aff} update @{aff} {{ ip saddr }} meta l4proto tcp dnat to 10.180.0.1:8080" in text
    assert "pick-" not in text


def test_hairpin_refs_child_and_commit():
    parent = nft.HairpinRefs()
    parent.move((), ["a", "b"])
    parent.move((), ["a"])
    child = parent.child()
    assert child.move(["a", "b"], ["c"]) == (["b"], ["c"])     # a still used by the other service
    assert parent.counts == {"a": 2, "b": 1}                    # untouched until committed
    merged = child.commit()
    assert merged is parent and parent.counts == {"a": 1, "c": 1}


def test_netlink_batch_layout():
    key = nft_netlink.encode((nft_netlink.IPV4, nft_netlink.PORT, nft_netlink.U32), "10.96.0.1 . 80 . 3")
    assert key == bytes([10, 96, 0, 1, 0, 80, 0, 0]) + struct.pack("=I", 3)
    with pytest.raises(ValueError):
        nft_netlink.encode((nft_netlink.IPV4, nft_netlink.PORT), "10.96.0.1")
    change = nft_netlink.ElementChange("hairpin", False, ((bytes(8), None),))
    batch, acks = nft_netlink.element_batch("ip", "shipmate-proxy", [change], seq=100)
    assert acks == 1
    messages, offset = [], 0
    while offset < len(batch):
        length, kind, flags, seq = struct.unpack_from("=IHHI", batch, offset)
        messages.append((kind, flags, seq))
        offset += length
    assert offset == len(batch)
    assert [m[0] for m in messages] == [nft_netlink.NFNL_MSG_BATCH_BEGIN, (10 << 8) | 12, nft_netlink.NFNL_MSG_BATCH_END]
    assert messages[1][1] & nft_netlink.NLM_F_ACK and [m[2] for m in messages] == [100, 101, 102]
    ok = struct.pack("=IHHII", 36, nft_netlink.NLMSG_ERROR, 0, 101, 0) + struct.pack("=i", 0) + bytes(16)
    failed = struct.pack("=IHHII", 36, nft_netlink.NLMSG_ERROR, 0, 102, 0) + struct.pack("=i", -2) + bytes(16)
    assert nft_netlink.parse_acks(ok + failed) == (2, -2)


def test_netlink_lookup_of_a_table_or_chain_and_its_ack():
    message = nft_netlink.lookup_message("ip", "shipmate-proxy", "services", seq=7)
    length, kind, flags, seq = struct.unpack_from("=IHHI", message)
    assert length == len(message) and kind == (10 << 8) | nft_netlink.NFT_MSG_GETCHAIN and seq == 7
    assert flags == nft_netlink.NLM_F_REQUEST | nft_netlink.NLM_F_ACK
    assert b"shipmate-proxy\0" in message and b"services\0" in message
    table = nft_netlink.lookup_message("ip", "shipmate-proxy", None, seq=8)
    assert struct.unpack_from("=H", table, 4)[0] == (10 << 8) | nft_netlink.NFT_MSG_GETTABLE
    data = struct.pack("=IHHII", 20, 0x0a00, 0, 8, 0) + bytes(4)          # the object itself, then its ack
    data += struct.pack("=IHHII", 36, nft_netlink.NLMSG_ERROR, 0, 8, 0) + struct.pack("=i", -2) + bytes(16)
    assert nft_netlink.ack_of(data, 8) == -2 and nft_netlink.ack_of(data, 9) is None


def test_full_render_with_bulk_leaves_the_endpoint_elements_out_of_the_text():
    st = state((port(), eps("10.180.0.1", "10.180.0.2", node="node-a")), (port("svc2", "172.30.0.42"), ()))
    whole, split = nft.render_full(st, CFG), nft.render_full(st, CFG, bulk=True)
    assert whole.bulk is None and split.bulk and set(split.bulk) <= set(nft.LAYOUTS)
    assert split.elements == whole.elements
    moved = [f"{key} : {value}" if value else key for items in split.bulk.values() for key, value in items]
    assert moved and all(element in whole.text and element not in split.text for element in moved)
    changes = nft.element_changes({}, split.bulk)
    assert sum(len(change.elements) for change in changes) == len(moved)


def test_full_render_cache_renders_again_only_what_changed_and_gives_the_same_text():
    a, b, c = port(), port("svc2", "172.30.0.42", type="NodePort"), port("svc3", "172.30.0.43")
    first = state((a, eps("10.180.0.1", "10.180.0.2")), (b, eps("10.180.0.3")), (c, ()))
    cache = nft.RenderCache()
    assert nft.render_full(first, CFG, cache=cache).text == nft.render_full(first, CFG).text
    assert cache.rendered == 3

    # The periodic full sync with nothing changed renders nothing again; an equal (not identical) endpoint
    # tuple is a hit too (a slice rewritten with the same endpoints).
    same = state((a, eps("10.180.0.1", "10.180.0.2")), (b, eps("10.180.0.3")), (c, ()))
    assert nft.render_full(same, CFG, cache=cache).text == nft.render_full(same, CFG).text
    assert cache.rendered == 0

    # One service's endpoints, another gone, a new one: only the changed and the new are rendered, the
    # gone one leaves the text and the cache.
    d = port("svc4", "172.30.0.44")
    changed = state((a, eps("10.180.0.1", "10.180.0.9")), (b, eps("10.180.0.3")), (d, eps("10.180.0.4")))
    text = nft.render_full(changed, CFG, cache=cache).text
    assert text == nft.render_full(changed, CFG).text and cache.rendered == 2
    assert "172.30.0.43" not in text and "10.180.0.2" not in text
    assert nft.render_full(state((c, ())), CFG, cache=cache).text == nft.render_full(state((c, ())), CFG).text
    assert cache.rendered == 1   # svc3 had left the cache with the render it was not part of

    # Another configuration renders everything again (the masquerade rule's text depends on it).
    other = RenderConfig(cluster_cidr="10.244.0.0/16", node_name="node-a", masquerade_all=True)
    assert nft.render_full(state((c, ())), other, cache=cache).text == nft.render_full(state((c, ())), other).text
    assert cache.rendered == 1
    assert nft.render_full(changed, other, cache=cache).text == nft.render_full(changed, other).text
    assert cache.rendered == 3
