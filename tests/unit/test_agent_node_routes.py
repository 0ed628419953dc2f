"""agent.node_routes pure parts: desired routes from the Node list, the diff, the masquerade text."""
from __future__ import annotations

import asyncio

from agent.node_routes import (MASQUERADE_CHAIN, MASQUERADE_JUMP, NodeRoutes, RouteDiff, desired_routes,
                               jump_rule_text, masquerade_rules, route_diff)

CLUSTER = "10.244.0.0/16"


def node(name: str, cidr: str | None, ip: str | None, *, cidrs: list[str] | None = None) -> dict:
    spec = {}
    if cidr:
        spec["podCIDR"] = cidr
    if cidrs:
        spec["podCIDRs"] = cidrs
    addresses = [{"type": "Hostname", "address": name}]
    if ip:
        addresses.append({"type": "InternalIP", "address": ip})
    return {"metadata": {"name": name}, "spec": spec, "status": {"addresses": addresses}}


def test_routes_to_every_other_node_via_its_internal_ip() -> None:
    nodes = [node("a", "10.244.0.0/24", "192.168.1.1"), node("b", "10.244.1.0/24", "192.168.1.2"),
             node("c", "10.244.2.0/24", "192.168.1.3")]
    assert desired_routes(nodes, "a", CLUSTER) == {"10.244.1.0/24": "192.168.1.2", "10.244.2.0/24": "192.168.1.3"}


def test_nodes_without_pod_cidr_or_address_are_skipped() -> None:
    nodes = [node("a", "10.244.0.0/24", "192.168.1.1"), node("b", None, "192.168.1.2"),
             node("c", "10.244.2.0/24", None), node("d", "not-a-cidr", "192.168.1.4")]
    assert desired_routes(nodes, "a", CLUSTER) == {}


def test_ipv4_pod_cidr_from_dual_stack_list() -> None:
    nodes = [node("b", None, "192.168.1.2", cidrs=["fd00::/64", "10.244.1.0/24"])]
    assert desired_routes(nodes, "a", CLUSTER) == {"10.244.1.0/24": "192.168.1.2"}


def test_ipv6_internal_ip_is_not_a_gateway_for_ipv4() -> None:
    b = node("b", "10.244.1.0/24", "fd00::2")
    assert desired_routes([b], "a", CLUSTER) == {}


def test_duplicate_pod_cidr_is_routed_to_neither_node_regardless_of_order() -> None:
    x, y = node("x", "10.244.5.0/24", "192.168.1.24"), node("y", "10.244.5.0/24", "192.168.1.25")
    assert desired_routes([y, x], "a", CLUSTER) == desired_routes([x, y], "a", CLUSTER) == {}


def test_pod_cidr_overlapping_ours_is_not_routed_away() -> None:
    nodes = [node("a", "10.244.0.0/24", "192.168.1.1"), node("b", "10.244.0.0/23", "192.168.1.2")]
    assert desired_routes(nodes, "a", CLUSTER) == {}


def test_pod_cidr_outside_the_cluster_cidr_is_not_routed(caplog) -> None:
    nodes = [node("a", "10.244.0.0/24", "192.168.1.1"), node("b", "10.244.1.0/24", "192.168.1.2"),
             node("evil", "10.96.0.0/12", "192.168.1.66"), node("wide", "0.0.0.0/0", "192.168.1.67"),
             node("host", "192.168.1.0/24", "192.168.1.68"), node("cover", "10.0.0.0/8", "192.168.1.69")]
    assert desired_routes(nodes, "a", CLUSTER) == {"10.244.1.0/24": "192.168.1.2"}
    assert "outside the cluster CIDR" in caplog.text and "node=evil" in caplog.text


def test_pod_cidr_overlapping_another_nodes_is_routed_to_neither(caplog) -> None:
    """A wider claim over another node's subnet takes neither route, whichever name sorts first."""
    nodes = [node("a", "10.244.0.0/24", "192.168.1.1"), node("b", "10.244.2.0/24", "192.168.1.2"),
             node("aa-evil", "10.244.2.0/23", "192.168.1.66"), node("c", "10.244.5.0/24", "192.168.1.3")]
    assert desired_routes(nodes, "a", CLUSTER) == {"10.244.5.0/24": "192.168.1.3"}
    assert "overlaps another node's" in caplog.text


def test_diff_replaces_changed_and_deletes_stale() -> None:
    diff = route_diff({"10.244.1.0/24": "192.168.1.2", "10.244.2.0/24": "192.168.1.9"},
                      {"10.244.2.0/24": "192.168.1.3", "10.244.3.0/24": "192.168.1.4"})
    assert diff.replace == {"10.244.1.0/24": "192.168.1.2", "10.244.2.0/24": "192.168.1.9"}
    assert diff.delete == ["10.244.3.0/24"]
    assert route_diff({"10.244.1.0/24": "1.1.1.1"}, {"10.244.1.0/24": "1.1.1.1"}).replace == {}


def test_masquerade_keeps_pod_to_pod_and_nats_the_rest() -> None:
    text = masquerade_rules("10.244.0.0/16")
    lines = text.splitlines()
    assert lines[0] == "*nat" and lines[-1] == "COMMIT"
    assert f":{MASQUERADE_CHAIN} - [0:0]" in lines
    rules = [line for line in lines if line.startswith("-A")]
    assert rules[0].startswith(f"-A {MASQUERADE_CHAIN} -s 10.244.0.0/16 -d 10.244.0.0/16") and rules[0].endswith("-j RETURN")
    assert rules[-1].endswith("-j MASQUERADE --random-fully")
    assert "-A POSTROUTING" not in text      # the jump is added once, separately


def test_jump_rule_quotes_the_comment() -> None:
    text = jump_rule_text(MASQUERADE_JUMP)
    assert text.splitlines()[1] == ('-A POSTROUTING -m comment --comment "shipmate pod traffic leaving the cluster" '
                                    f"-j {MASQUERADE_CHAIN}")


# ---------------------------------------------------------------- the loop, with fakes


class FakeRoutes:
    def __init__(self) -> None:
        self.table: dict[str, str] = {}

    def observed(self) -> dict[str, str]:
        return dict(self.table)

    def apply(self, diff: RouteDiff) -> list[str]:
        self.table.update(diff.replace)
        for dst in diff.delete:
            self.table.pop(dst)
        return []


class FailingIptables:
    def __init__(self) -> None:
        self.calls = 0

    async def restore(self, text: str) -> None:
        self.calls += 1
        raise RuntimeError("iptables-restore: no nat table")


async def test_routes_are_kept_while_masquerade_fails_and_node_changes_wake_the_loop() -> None:
    nodes = [node("a", "10.244.0.0/24", "192.168.1.1"), node("b", "10.244.1.0/24", "192.168.1.2")]
    routes, iptables = FakeRoutes(), FailingIptables()
    loop = NodeRoutes("a", "10.244.0.0/16", lambda: nodes, routes=routes, iptables=iptables)  # type: ignore[arg-type]
    task = asyncio.create_task(loop.run())
    try:
        for _ in range(50):
            await asyncio.sleep(0.01)
            if routes.table:
                break
        assert routes.table == {"10.244.1.0/24": "192.168.1.2"} and iptables.calls >= 1
        nodes.append(node("c", "10.244.2.0/24", "192.168.1.3"))
        loop.on_node_change("ADDED", nodes[-1], None)
        for _ in range(50):
            await asyncio.sleep(0.01)
            if len(routes.table) == 2:
                break
        assert routes.table["10.244.2.0/24"] == "192.168.1.3"
    finally:
        task.cancel()
