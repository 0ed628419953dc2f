"""The proxy loop's decisions: when to sync, full or partial, and recovery after failure."""
from agent.proxy.proxier import Proxier, is_our_chain
from agent.proxy.render import JUMPS
from agent.proxy.render import RenderConfig
from netns.iptables import NFT


class FakeIptables:
    backend = NFT
    netns = None
    canaries = True

    async def chain_exists(self, table, chain):
        assert chain == "KUBE-PROXY-CANARY" and table in ("mangle", "nat", "filter")
        return self.canaries

    def __init__(self, existing_chains=()):
        self.transactions: list[str] = []
        self.jump_calls = 0
        self.listings = 0
        self.fail_next = False
        self.existing_chains = set(existing_chains)

    async def restore_all(self, transactions):
        if self.fail_next:
            self.fail_next = False
            raise RuntimeError("iptables-restore: line 3 failed")
        self.transactions += transactions

    async def missing_jumps(self, jumps):
        assert tuple(jumps) == JUMPS
        self.jump_calls += 1
        return [j for j in jumps if j.chain == "PREROUTING"]

    async def chain_names(self, table):
        assert table == "nat"
        self.listings += 1
        return self.existing_chains

    def take(self) -> str:
        text, self.transactions = "".join(self.transactions), []
        return text


def svc(i, port=80):
    return {"metadata": {"namespace": "ns", "name": f"s{i}"},
            "spec": {"clusterIP": f"10.96.0.{i + 1}", "ports": [{"name": "http", "port": port}]}}


def eps(i, ip):
    return {"metadata": {"namespace": "ns", "name": f"s{i}-x", "labels": {"kubernetes.io/service-name": f"s{i}"}},
            "ports": [{"name": "http", "port": 8080}], "endpoints": [{"addresses": [ip]}]}


def proxier(iptables):
    return Proxier(iptables, RenderConfig(cluster_cidr="10.244.0.0/16"), min_sync_period=0)


async def test_waits_for_both_lists_then_full_sync_with_stale_cleanup():
    ipt = FakeIptables(existing_chains={"KUBE-SVC-GONEGONEGONEGONE", "KUBE-SERVICES", "CNI-FOO"})
    p = proxier(ipt)
    p.on_service_add(svc(1))
    p.on_endpoint_slice_update(eps(1, "10.244.1.5"))
    p.on_services_synced()
    assert await p.sync() and ipt.take() == ""  # slices not listed yet: nothing programmed
    p.on_endpoint_slices_synced()
    assert await p.sync()
    text = ipt.take()
    assert ":KUBE-SERVICES - [0:0]" in text and "10.244.1.5:8080" in text
    assert "-X KUBE-SVC-GONEGONEGONEGONE" in text and "CNI-FOO" not in text
    assert '-I PREROUTING 1 -m comment --comment "kubernetes service portals" -j KUBE-SERVICES' in text
    assert ipt.jump_calls == 1 and ipt.listings == 1


async def test_later_changes_are_partial_and_nothing_means_no_restore():
    ipt = FakeIptables()
    p = proxier(ipt)
    for i in range(3):
        p.on_service_add(svc(i))
        p.on_endpoint_slice_update(eps(i, f"10.244.1.{i + 1}"))
    p.on_services_synced()
    p.on_endpoint_slices_synced()
    await p.sync()
    ipt.take()
    assert await p.sync() and ipt.take() == ""
    p.on_endpoint_slice_update(eps(2, "10.244.9.9"))
    assert await p.sync()
    text = ipt.take()
    assert "10.244.9.9:8080" in text and ":KUBE-SERVICES" not in text and "ns/s0:http" not in text
    assert ipt.jump_calls == 1 and ipt.listings == 1


async def test_failure_forces_the_next_sync_full():
    ipt = FakeIptables()
    p = proxier(ipt)
    p.on_service_add(svc(1))
    p.on_services_synced()
    p.on_endpoint_slices_synced()
    await p.sync()
    ipt.take()
    p.on_service_update(svc(1), svc(1, port=81))
    ipt.fail_next = True
    assert not await p.sync()
    assert await p.sync()  # no new change, yet a full resync is due
    text = ipt.take()
    assert ":KUBE-SERVICES - [0:0]" in text and "--dport 81" in text


async def test_removed_service_chains_are_known_for_the_next_full_sync():
    ipt = FakeIptables()
    p = proxier(ipt)
    p.on_service_add(svc(1))
    p.on_endpoint_slice_update(eps(1, "10.244.1.5"))
    p.on_services_synced()
    p.on_endpoint_slices_synced()
    await p.sync()
    ipt.take()
    p.on_service_delete(svc(1))
    await p.sync()
    assert "-X KUBE-SVC-" in ipt.take()


def test_cleanup_claims_only_our_chains():
    assert is_our_chain("nat", "KUBE-SEP-SXIVWICOYRO3J4NJ")
    assert is_our_chain("nat", "KUBE-MARK-MASQ")
    assert is_our_chain("filter", "KUBE-FORWARD")
    assert is_our_chain("mangle", "KUBE-IPTABLES-HINT")
    assert is_our_chain("filter", "KUBE-FIREWALL")  # the agent is kubelet and kube-proxy
    assert not is_our_chain("filter", "KUBE-KUBELET-CANARY")
    assert not is_our_chain("nat", "CNI-1234")


async def test_missing_canary_turns_a_quiet_sync_into_a_full_one():
    ipt = FakeIptables()
    p = proxier(ipt)
    p.on_service_add(svc(1))
    p.on_endpoint_slice_update(eps(1, "10.244.1.5"))
    p.on_services_synced()
    p.on_endpoint_slices_synced()
    assert await p.sync()
    assert ":KUBE-PROXY-CANARY - [0:0]" in ipt.take()
    listings = ipt.listings
    assert await p.sync() and ipt.take() == ""       # nothing changed, canaries present: nothing to do
    ipt.canaries = False
    assert await p.sync()
    assert "-A KUBE-SERVICES" in ipt.take() and ipt.listings == listings + 1   # chains listed again
