"""agent/netpol/controller.py without a cluster: what a sync writes, and when it writes nothing."""
from __future__ import annotations

import asyncio

from agent.netpol import render
from agent.netpol.controller import NetworkPolicyController
from agent.netpol.policy import Pod

JUMP_FORWARD = '-A FORWARD -m comment --comment "shipmate network policies" -j SHIPMATE-NP-FORWARD'
JUMP_INPUT = '-A INPUT -m comment --comment "shipmate network policies" -j SHIPMATE-NP-INPUT'


class FakeIptables:
    def __init__(self, chains=(), fail=False):
        self.listing = {"FORWARD": "-P FORWARD ACCEPT\n", "INPUT": "-P INPUT ACCEPT\n"}
        self.chains = set(chains)
        self.restored: list[str] = []
        self.fail = fail

    async def rules(self, table, chain):
        return self.listing[chain]

    async def chain_names(self, table):
        return set(self.chains)

    async def restore(self, text):
        if self.fail:
            raise RuntimeError("iptables-restore: line 3 failed")
        self.restored.append(text)
        self.listing = {"FORWARD": f"-P FORWARD ACCEPT\n{JUMP_FORWARD}\n", "INPUT": f"-P INPUT ACCEPT\n{JUMP_INPUT}\n"}


def controller(iptables, interfaces=()):
    return NetworkPolicyController(None, iptables, "n1", interfaces=lambda: list(interfaces))


SERVER = Pod("a", "server", "10.0.0.10", "n1", {"app": "server"})
DENY = {"metadata": {"namespace": "a", "name": "deny"}, "spec": {"podSelector": {}, "policyTypes": ["Ingress"]}}


def test_first_sync_writes_jumps_and_deletes_leftover_chains_then_nothing_until_a_change():
    iptables = FakeIptables(chains={"SHIPMATE-NPI-LEFTOVERLEFTOV", "KUBE-FORWARD"})
    c = controller(iptables, [render.Interface("veth1", "10.0.0.10")])

    async def run():
        rules, interfaces = c.desired([SERVER], {"a": {}}, [DENY])
        assert await c.apply(rules, interfaces)
        text = iptables.restored[-1]
        assert "-X SHIPMATE-NPI-LEFTOVERLEFTOV" in text and "-X KUBE-FORWARD" not in text
        assert '-I FORWARD 1 -m comment --comment "shipmate network policies" -j SHIPMATE-NP-FORWARD' in text
        assert "--physdev-in veth1 ! -s 10.0.0.10/32" in text and 'default deny ingress of a/server' in text
        # Same state again: no restore at all.
        assert not await c.apply(rules, interfaces)
        # Someone moved our jump: the same text goes again with the fix.
        iptables.listing["FORWARD"] = f"-P FORWARD ACCEPT\n-A FORWARD -j DOCKER\n{JUMP_FORWARD}\n"
        assert await c.apply(rules, interfaces)
        assert "-D FORWARD -m comment" in iptables.restored[-1]
        # The policy goes: the pod chain is deleted in the same transaction.
        rules, interfaces = c.desired([SERVER], {"a": {}}, [])
        assert await c.apply(rules, interfaces)
        assert "-X SHIPMATE-NPI-" in iptables.restored[-1] and "default deny" not in iptables.restored[-1]
        assert len(iptables.restored) == 3
    asyncio.run(run())


def test_failed_sync_backs_off_and_rewrites_everything_next_time():
    iptables = FakeIptables(fail=True)
    c = controller(iptables)
    delays = []
    c.runner.retry_after = delays.append
    c.pods = c.namespaces = c.policies = None     # no informers: synced, empty caches

    async def run():
        c.snapshot = lambda: ([SERVER], {}, [DENY])
        assert await c.sync()
        assert await c.sync()
        iptables.fail = False
        assert await c.sync()
    asyncio.run(run())
    assert delays == [0.5, 1.0]
    assert len(iptables.restored) == 1 and c.last_sync > 0


def test_idle_resync_every_30_seconds_as_kube_proxy():
    """Each resync without a change runs two `iptables -S` child processes: every 30 s (kube-proxy's
    iptables resync), not every 10 s; changes still go through at once (min_sync_period)."""
    runner = controller(FakeIptables()).runner
    assert runner._max_interval == 30.0
    assert runner._retry_interval == 30.0
