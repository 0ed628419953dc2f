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

    def on_service_change(self, kind, old, new):
        self.calls.append(("service", kind))
        if self.fail:
            raise RuntimeError("consumer bug")

    def on_endpoint_slice_change(self, kind, old, new):
        self.calls.append(("slice", kind))

    def on_services_synced(self):
        self.calls.append(("services-synced",))

    def on_endpoint_slices_synced(self):
        self.calls.append(("slices-synced",))


def test_flags_and_defaults() -> None:
    config = parse_args(["--node-ip", "10.0.0.1"])
    assert (config.cluster_cidr, config.cluster_dns, config.cluster_domain) == \
        ("10.244.0.0/16", "169.254.20.10", "cluster.local")
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
    proxier.on_service_change("ADDED", None, svc(1))
    proxier.on_endpoint_slice_change("ADDED", None, eps(1, "10.244.1.5"))
    proxier.on_services_synced()
    proxier.on_endpoint_slices_synced()
    assert await proxier.sync()
    assert "10.244.1.5:8080" in ipt.take()
    # A relist's DELETED carries only the old object; a watch's carries it as `new`.
    proxier.on_endpoint_slice_change("DELETED", eps(1, "10.244.1.5"), None)
    proxier.on_service_change("DELETED", None, svc(1))
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
