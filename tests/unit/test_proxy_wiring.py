"""Wiring of the service roles: flags, informer fan-out, the informer-shaped proxier callbacks,
host setup, and masquerade-all rendering."""
from __future__ import annotations

import asyncio

import pytest

from agent.config import parse_args
from agent.proxy.host import prepare_host
from agent.proxy.proxier import Proxier
from agent.proxy.render import ProxyState, RenderConfig, render_full
from agent.proxy.model import Endpoint, service_ports
from agent.proxy.sources import ServiceSources
from tests.unit.test_proxy_proxier import FakeIptables, eps, svc


class Recorder:
    def __init__(self, fail: bool = False) -> None:
        self.calls: list[tuple] = []
        self.fail = fail

    def on_service_change(self, kind, service, old):
        self.calls.append(("service", kind))
        if self.fail:
            raise RuntimeError("consumer bug")

    def on_endpoint_slice_change(self, kind, endpoint_slice, old):
        self.calls.append(("slice", kind))

    def on_services_synced(self):
        self.calls.append(("services-synced",))

    def on_endpoint_slices_synced(self):
        self.calls.append(("slices-synced",))


def test_flags_and_defaults() -> None:
    config = parse_args(["--node-ip", "10.0.0.1"])
    # kubeadm's clusterDNS: the kube-dns Service of the DNS addon, served by pods, not by the agent
    assert (config.cluster_cidr, config.cluster_dns, config.cluster_domain, config.serve_cluster_dns) == \
        ("10.244.0.0/16", "10.96.0.10", "cluster.local", False)
    assert parse_args(["--node-ip", "10.0.0.1", "--cluster-dns", "169.254.20.10",
                       "--serve-cluster-dns"]).serve_cluster_dns
    assert not parse_args(["--node-ip", "10.0.0.1", "--cluster-dns", "", "--serve-cluster-dns"]).serve_cluster_dns
    assert not config.cleanup_iptables and not config.masquerade_all
    assert (config.iptables_min_sync_period, config.iptables_sync_period) == (1.0, 30.0)
    config = parse_args(["--node-ip", "10.0.0.1", "--cluster-dns", "", "--cluster-domain", "Corp.Internal.",
                         "--cleanup-iptables", "--cluster-cidr", "10.32.0.0/12"])
    assert (config.cluster_dns, config.cluster_domain, config.cleanup_iptables, config.cluster_cidr) == \
        ("", "corp.internal", True, "10.32.0.0/12")


@pytest.mark.parametrize("argv, message", [
    (["--cluster-cidr", "10.244.0.1/16"], "not an IPv4 network"),
    (["--cluster-dns", "dns.local"], "not an IPv4 address"),
    (["--iptables-sync-period", "0"], "sync-period"),
])
def test_bad_flags_are_clear_errors(argv, message, capsys) -> None:
    with pytest.raises(SystemExit):
        parse_args(["--node-ip", "10.0.0.1", *argv])
    assert message in capsys.readouterr().err


async def test_sources_fan_out_and_survive_a_failing_consumer() -> None:
    broken, healthy = Recorder(fail=True), Recorder()
    sources = ServiceSources(client=None, consumers=[broken, healthy])  # type: ignore[arg-type]
    sources._service_change("ADDED", None, svc(1))
    sources._slice_change("DELETED", eps(1, "10.244.0.5"), None)
    sources.services.synced.set()
    sources.endpoint_slices.synced.set()
    await asyncio.wait_for(asyncio.gather(sources._announce_synced(sources.services, "on_services_synced"),
                                          sources._announce_synced(sources.endpoint_slices,
                                                                   "on_endpoint_slices_synced")), 1)
    assert healthy.calls == [("service", "ADDED"), ("slice", "DELETED"), ("services-synced",), ("slices-synced",)]


async def test_proxier_takes_informer_shaped_changes() -> None:
    ipt = FakeIptables()
    proxier = Proxier(ipt, RenderConfig(cluster_cidr="10.244.0.0/16"), min_sync_period=0)
    proxier.on_service_change("ADDED", svc(1), None)
    proxier.on_endpoint_slice_change("ADDED", eps(1, "10.244.1.5"), None)
    proxier.on_services_synced()
    proxier.on_endpoint_slices_synced()
    assert await proxier.sync()
    assert "10.244.1.5:8080" in ipt.take()
    # A DELETED carries the last state; `old` is what the informer's cache held (a relist passes it twice).
    proxier.on_endpoint_slice_change("DELETED", eps(1, "10.244.1.5"), eps(1, "10.244.1.5"))
    proxier.on_service_change("DELETED", svc(1), None)
    assert await proxier.sync()
    text = ipt.take()
    assert "-X KUBE-SEP-" in text and "-D KUBE-SERVICES" in text
    assert not proxier.applied_state.services and not proxier.applied_state.endpoints


def test_prepare_host_enables_bridge_netfilter_and_route_localnet(tmp_path) -> None:
    bridge, localnet = tmp_path / "bridge-nf-call-iptables", tmp_path / "route_localnet"
    bridge.write_text("0\n")
    localnet.write_text("0\n")
    setup = prepare_host(str(bridge), str(localnet))
    assert setup.bridge_netfilter and setup.route_localnet
    assert bridge.read_text().strip() == "1" and localnet.read_text().strip() == "1"
    setup = prepare_host(str(tmp_path / "missing"), str(tmp_path / "missing-too"))
    assert not setup.bridge_netfilter and not setup.route_localnet


def test_masquerade_all_drops_the_source_condition() -> None:
    state = ProxyState({sp.name: sp for sp in service_ports(svc(1))}, {})
    state = ProxyState(state.services, {name: (Endpoint("10.244.1.5", 8080),) for name in state.services})
    plain = render_full(state, RenderConfig(cluster_cidr="10.244.0.0/16")).transactions[0]
    everything = render_full(state, RenderConfig(cluster_cidr="10.244.0.0/16", masquerade_all=True)).transactions[0]
    assert "! -s 10.244.0.0/16 -j KUBE-MARK-MASQ" in plain
    assert "! -s 10.244.0.0/16" not in everything and "--dport 80 -j KUBE-MARK-MASQ" in everything


@pytest.mark.parametrize("requested, backend, has_nft, mode", [
    ("", "nft", True, "nftables"),          # a host on nftables
    ("", "nft", False, "iptables"),         # ... without the nft command
    ("", "legacy", True, "iptables"),       # a legacy host
    ("iptables", "nft", True, "iptables"),
    ("nftables", "legacy", True, "nftables"),
])
def test_default_proxy_mode(requested, backend, has_nft, mode) -> None:
    from agent.proxy.wiring import choose_proxy_mode
    from netns.iptables import LEGACY, NFT
    assert choose_proxy_mode(requested, NFT if backend == "nft" else LEGACY, has_nft) == mode


def test_proxy_mode_nftables_without_nft_is_an_error() -> None:
    from agent.proxy.wiring import choose_proxy_mode
    from netns.iptables import NFT
    with pytest.raises(RuntimeError, match="nft command is not installed"):
        choose_proxy_mode("nftables", NFT, False)
    assert parse_args(["--node-ip", "10.0.0.1", "--proxy-mode", "iptables"]).proxy_mode == "iptables"
    assert parse_args(["--node-ip", "10.0.0.1"]).proxy_mode == ""


@pytest.mark.parametrize("requested, expected", [("nftables", "NftProxier"), ("iptables", "Proxier")])
async def test_agent_start_removes_the_other_modes_rules(monkeypatch, requested, expected) -> None:
    """At start the agent removes what the other mode left: switching to nftables removes the proxy's
    iptables chains only (hostPort and NetworkPolicy chains stay), switching to iptables the nft table."""
    from agent.proxy import wiring
    from netns.iptables import NFT
    calls: list[tuple] = []

    async def fake_cleanup_iptables(backends=None, proxy_only=False):
        calls.append(("iptables", tuple(b.name for b in backends), proxy_only))
        return []

    async def fake_cleanup_nftables(netns=None):
        calls.append(("nftables",))
        return []

    async def fake_detect_backend():
        return NFT

    class FakeNft:
        netns = None

    class Setup:
        bridge_netfilter, route_localnet = True, True

    monkeypatch.setattr(wiring, "prepare_host", lambda: Setup())
    monkeypatch.setattr(wiring, "detect_backend", fake_detect_backend)
    monkeypatch.setattr(wiring, "nft_available", lambda: True)
    monkeypatch.setattr(wiring, "cleanup_iptables", fake_cleanup_iptables)
    monkeypatch.setattr(wiring, "cleanup_nftables", fake_cleanup_nftables)
    monkeypatch.setattr(wiring, "Nft", FakeNft)
    monkeypatch.setattr(wiring, "Iptables", lambda backend: FakeIptables())
    config = parse_args(["--node-ip", "10.0.0.1", "--proxy-mode", requested, "--cluster-dns", "",
                         "--disable-network-policy"])
    tasks = await wiring.service_role_tasks(client=None, cfg=config, host_resolv=None)
    assert calls == ([("iptables", ("nft",), True)] if requested == "nftables" else [("nftables",)])
    proxy = dict(tasks)["proxy"]
    assert proxy.cr_frame.f_locals["self"].__class__.__name__ == expected
    for _, coroutine in tasks:
        coroutine.close()
